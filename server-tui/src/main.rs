fn main() -> std::process::ExitCode {
    server_tui::main()
}
