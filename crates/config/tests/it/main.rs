//! Integration tests of configuration loading, validation and generation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::result_large_err
)]

mod generate;
mod load;
mod properties;
mod validation;

use std::path::PathBuf;

/// The path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The messages of an invalid configuration, one line each.
pub fn messages(error: &mas_config::ConfigError) -> Vec<String> {
    let issues = error.issues();
    assert!(
        !issues.is_empty(),
        "expected validation issues, got: {error}"
    );
    issues.iter().map(ToString::to_string).collect()
}

/// A minimal valid configuration to build test cases on.
pub const MINIMAL: &str = "\
matrix:
  secret: test-secret
secrets:
  encryption: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
";
