use clap::Parser;

fn main() -> std::process::ExitCode {
    server_tui::main_with(server_tui::cli::Cli::parse())
}
