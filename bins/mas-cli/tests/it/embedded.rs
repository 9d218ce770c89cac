//! `mas-cli` next to the embedded default: with no `-c` and no `MAS_CONFIG`, the
//! commands that need a configuration use `./mas-data/config.yaml` when it exists.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{mas_cli, stderr};

/// The line that says which file was picked.
const USING: &str = "using ./mas-data/config.yaml";

/// A directory holding `mas-data/config.yaml` as `mas-server`'s first start writes it.
fn embedded_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mas-data")).unwrap();
    let yaml = mas_config::generate_embedded("mas-data/mas.db")
        .unwrap()
        .to_commented_yaml()
        .unwrap();
    std::fs::write(dir.path().join("mas-data/config.yaml"), yaml).unwrap();
    dir
}

/// Runs `mas-cli` in `dir` without a terminal on stdin.
fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn commands_use_the_embedded_default_and_say_so_once() {
    let dir = embedded_dir();

    let check = mas_cli(dir.path(), &["config", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert_eq!(
        stderr(&check).matches(USING).count(),
        1,
        "{}",
        stderr(&check)
    );

    let migrate = mas_cli(dir.path(), &["database", "migrate"]);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(dir.path().join("mas-data/mas.db").exists());

    let register = run(
        dir.path(),
        &[
            "manage",
            "register-user",
            "alice",
            "-p",
            "correct horse battery staple",
            "-y",
        ],
    );
    // The embedded configuration is used: its homeserver (none runs here) is asked
    // about the name, and the command stops before creating anything.
    assert_eq!(register.status.code(), Some(1), "{}", stderr(&register));
    assert_eq!(stderr(&register).matches(USING).count(), 1);
    assert!(
        stderr(&register).contains("http://localhost:8008/ (matrix.endpoint)"),
        "{}",
        stderr(&register)
    );

    let admins = run(dir.path(), &["manage", "list-admin-users"]);
    assert!(admins.status.success(), "{}", stderr(&admins));

    // `generate` reads no configuration, so it names none.
    let generate = mas_cli(dir.path(), &["config", "generate"]);
    assert!(generate.status.success(), "{}", stderr(&generate));
    assert!(!stderr(&generate).contains(USING), "{}", stderr(&generate));
}

#[test]
fn a_named_configuration_wins_over_the_embedded_default() {
    let dir = embedded_dir();
    std::fs::write(dir.path().join("broken.yaml"), "matrix:\n  kind: nope\n").unwrap();

    let flag = mas_cli(dir.path(), &["-c", "broken.yaml", "config", "check"]);
    assert_eq!(flag.status.code(), Some(1));
    assert!(!stderr(&flag).contains(USING), "{}", stderr(&flag));
    assert!(stderr(&flag).contains("broken.yaml"), "{}", stderr(&flag));

    let env = Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir.path())
        .env("MAS_CONFIG", "broken.yaml")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(1));
    assert!(!stderr(&env).contains(USING), "{}", stderr(&env));
}

#[test]
fn no_command_creates_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["config", "check"][..],
        &["database", "migrate"],
        &["manage", "list-admin-users"],
        &["doctor"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("no configuration file given"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!dir.path().join("mas-data").exists());
}
