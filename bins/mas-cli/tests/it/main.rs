//! `mas-cli config ...` as an administrator runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::result_large_err
)]

mod doctor;
mod embedded;
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
    // A generated file sets nothing that goes unused.
    assert_eq!(stderr(&check), "Configuration file looks good\n");

    // A setting that does nothing here is named, and the file still passes.
    std::fs::write(
        dir.path().join("extra.yaml"),
        "http:\n  listeners:\n    - name: more\n      resources: [{name: discovery}, {name: graphql}]\n      binds: [{address: '127.0.0.1:8090'}]\ntelemetry:\n  tracing: {exporter: otlp, propagators: [jaeger]}\n",
    )
    .unwrap();
    let noted = mas_cli(
        dir.path(),
        &["-c", "c.yaml", "-c", "extra.yaml", "config", "check"],
    );
    assert!(noted.status.success(), "{}", stderr(&noted));
    assert_eq!(
        stderr(&noted),
        "warning: http.listeners[2].resources: `graphql` is accepted but not served by this release\n\
         warning: telemetry.tracing.propagators: `jaeger` is accepted but not read nor sent by this release (W3C `tracecontext` and `baggage` are)\n\
         Configuration file looks good\n"
    );

    // The rules of `policy.data` are checked: a bad expression, domain pattern or
    // network is named by its key path, as is a key MAS does not have.
    for (policy, said) in [
        (
            "registration: {banned_usernames: {regexes: ['(']}}",
            "policy.data.registration.banned_usernames: `(` is not a regular expression",
        ),
        (
            "allowed_domains: ['{a,b.example.com']",
            "policy.data.allowed_domains: `{a,b.example.com` is not a domain pattern",
        ),
        (
            "requester: {banned_ips: [somewhere]}",
            "policy.data.requester.banned_ips: `somewhere` is not an IP address or network",
        ),
        ("registraton: {}", "registraton"),
    ] {
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!("policy:\n  data:\n    {policy}\n"),
        )
        .unwrap();
        let refused = mas_cli(
            dir.path(),
            &["-c", "c.yaml", "-c", "policy.yaml", "config", "check"],
        );
        assert!(!refused.status.success(), "{policy}");
        assert!(
            stderr(&refused).contains(said),
            "{said}: {}",
            stderr(&refused)
        );
    }

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

/// The mode bits of `path` (a symlink's own, not its target's).
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn generate_output_replaces_a_readable_file_or_a_symlink_with_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let readable = dir.path().join("existing.yaml");
    std::fs::write(&readable, "old\n").unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = mas_cli(
        dir.path(),
        &["config", "generate", "--output", "existing.yaml"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        mode(&readable),
        0o600,
        "the private keys are not left readable"
    );
    assert!(
        std::fs::read_to_string(&readable)
            .unwrap()
            .contains("BEGIN")
    );

    let target = dir.path().join("elsewhere.txt");
    std::fs::write(&target, "untouched\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = mas_cli(dir.path(), &["config", "generate", "--output", "link.yaml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_file(),
        "the symlink itself is replaced"
    );
    assert_eq!(mode(&link), 0o600);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    assert_eq!(mode(&target), 0o644);

    let output = mas_cli(
        dir.path(),
        &[
            "-c",
            "link.yaml",
            "config",
            "dump",
            "--include-secrets",
            "-o",
            "existing.yaml",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&readable), 0o600);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["elsewhere.txt", "existing.yaml", "link.yaml"],
        "no staging file is left behind"
    );
}

#[test]
fn a_uri_password_that_breaks_url_parsing_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    std::fs::write(dir.path().join("c.yaml"), &generated.stdout).unwrap();
    // `#`, `?` and `/` left unencoded: the URI no longer parses as a URL.
    let unparsable = "postgresql://mas:kXq9#Zr7?Wm4/Tp2@db.example/mas";
    // `4711#Zr7Wm`: parses, with the password taken for port 4711 and a fragment.
    let misparsed = "postgresql://mas:4711#Zr7Wm@127.0.0.1/mas";
    for (uri, password, shown) in [
        (
            unparsable,
            "kXq9#Zr7?Wm4/Tp2",
            "postgresql://mas:REDACTED@db.example/mas",
        ),
        (
            misparsed,
            "4711#Zr7Wm",
            "postgresql://mas:REDACTED@127.0.0.1/mas",
        ),
    ] {
        std::fs::write(
            dir.path().join("db.yaml"),
            format!("database:\n  uri: '{uri}'\n  connect_timeout: 0\n"),
        )
        .unwrap();
        let dump = mas_cli(
            dir.path(),
            &["-c", "c.yaml", "-c", "db.yaml", "config", "dump"],
        );
        assert!(dump.status.success(), "{}", stderr(&dump));
        let text = String::from_utf8(dump.stdout).unwrap();
        assert!(!text.contains(password), "{text}");
        assert!(text.contains(&format!("uri: {shown}")), "{text}");

        for command in [&["database", "migrate"][..], &["server"][..]] {
            let mut args = vec!["-c", "c.yaml", "-c", "db.yaml"];
            args.extend_from_slice(command);
            let failed = mas_cli(dir.path(), &args);
            assert_eq!(failed.status.code(), Some(1), "{command:?}");
            let text = stderr(&failed);
            assert!(text.contains(shown), "{command:?}: {text}");
            assert!(text.contains("percent-encoded"), "{command:?}: {text}");
            assert!(!text.contains(password), "{command:?}: {text}");
            // Digits alone could match a timestamp in a log line.
            let parts = password.split(['#', '?', '/']);
            for part in parts.filter(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
                assert!(!text.contains(part), "{command:?} shows {part:?}: {text}");
            }
        }
    }
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
