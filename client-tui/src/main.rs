use clap::Parser;

fn main() -> std::process::ExitCode {
    client_tui::process_elapsed();
    client_tui::main_with(client_tui::cli::Cli::parse())
}
