//! `mas-server`: runs the Matrix authentication service.

fn main() -> std::process::ExitCode {
    mas_cli::mas_server_main()
}
