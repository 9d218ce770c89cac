//! The embedded default: with no configuration at all, `mas-server` keeps its
//! configuration and SQLite database in `./mas-data/`, generated on first start.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The directory of the embedded default, relative to the working directory.
pub(crate) const DATA_DIR: &str = "mas-data";

/// The embedded configuration file, creating it with fresh secrets on first use.
/// Returns the path and whether it was just created.
pub(crate) fn ensure_config() -> anyhow::Result<(PathBuf, bool)> {
    let dir = Path::new(DATA_DIR);
    let config = dir.join("config.yaml");
    if config.exists() {
        return Ok((config, false));
    }
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let database = format!("{DATA_DIR}/mas.db");
    let yaml = mas_config::generate_embedded(&database)?.to_commented_yaml()?;
    // Written aside, then linked into place: a crash never leaves half a file, and a
    // concurrent first start never replaces the secrets another process already uses.
    let staging = dir.join(format!(".config.yaml.{}", std::process::id()));
    write_private(&staging, &yaml)
        .with_context(|| format!("cannot write {}", staging.display()))?;
    let linked = std::fs::hard_link(&staging, &config);
    let _ = std::fs::remove_file(&staging);
    match linked {
        Ok(()) => Ok((config, true)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok((config, false)),
        Err(error) => Err(error).with_context(|| format!("cannot write {}", config.display())),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file that holds secrets: created readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
