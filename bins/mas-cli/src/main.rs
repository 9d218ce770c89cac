//! `mas-cli`: administration of the Matrix authentication service.

fn main() -> std::process::ExitCode {
    mas_cli::mas_cli_main()
}
