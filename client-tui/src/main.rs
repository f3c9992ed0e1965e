fn main() -> std::process::ExitCode {
    client_tui::process_elapsed();
    let cli = client_tui::cli::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    client_tui::main_with(cli)
}
