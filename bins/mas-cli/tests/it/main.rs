//! `mas-cli config ...` as an administrator runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::result_large_err
)]

mod manage;
mod sync;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `mas-cli` in `dir`.
pub fn mas_cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

/// The standard error of a run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn generate_then_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    std::fs::write(dir.path().join("c.yaml"), &generated.stdout).unwrap();
    let check = mas_cli(dir.path(), &["-c", "c.yaml", "config", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stderr(&check).contains("looks good"));

    let to_file = mas_cli(dir.path(), &["config", "generate", "--output", "d.yaml"]);
    assert!(to_file.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("d.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        mas_cli(dir.path(), &["-c", "d.yaml", "config", "check"])
            .status
            .success()
    );
}

#[test]
fn a_broken_key_gives_the_path_precise_message() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    let mut text = String::from_utf8(generated.stdout).unwrap();
    text.push_str(
        "clients:\n- client_id: 0000000000000000000SYNAPSE\n  client_auth_method: none\n",
    );
    text.push_str("- client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7B\n  client_auth_method: none\n");
    text.push_str("- client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5DIL\n  client_auth_method: none\n");
    std::fs::write(dir.path().join("c.yaml"), text).unwrap();
    let check = mas_cli(dir.path(), &["-c", "c.yaml", "config", "check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("c.yaml: clients[2].client_id: not a valid ULID"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn mas_config_names_the_files_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    std::fs::write(dir.path().join("a.yaml"), &generated.stdout).unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "http:\n  public_base: https://b.example.com/\n",
    )
    .unwrap();
    let dump = Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir.path())
        .env("MAS_CONFIG", "a.yaml:b.yaml")
        .args(["config", "dump"])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", stderr(&dump));
    let text = String::from_utf8(dump.stdout).unwrap();
    assert!(
        text.contains("public_base: https://b.example.com/"),
        "{text}"
    );
}

#[test]
fn dump_redacts_secrets_unless_included() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    let generated_text = String::from_utf8(generated.stdout.clone()).unwrap();
    std::fs::write(dir.path().join("c.yaml"), &generated.stdout).unwrap();
    let encryption = generated_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("encryption: "))
        .unwrap()
        .trim_matches('\'')
        .to_owned();

    let dump = mas_cli(dir.path(), &["-c", "c.yaml", "config", "dump"]);
    let text = String::from_utf8(dump.stdout).unwrap();
    assert!(!text.contains(&encryption), "{text}");
    assert!(!text.contains("BEGIN PRIVATE KEY"));
    assert!(text.contains("encryption: '[REDACTED]'"));

    let full = mas_cli(
        dir.path(),
        &["-c", "c.yaml", "config", "dump", "--include-secrets"],
    );
    let text = String::from_utf8(full.stdout).unwrap();
    assert!(text.contains(&encryption));
    assert!(text.contains("BEGIN PRIVATE KEY"));
}

#[test]
fn no_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let check = mas_cli(dir.path(), &["config", "check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("no configuration file given"),
        "{}",
        stderr(&check)
    );
}
