//! The embedded default: with no configuration at all, `mas-server` keeps its
//! configuration and SQLite database in `./mas-data/`, generated on first start.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The directory of the embedded default, relative to the working directory.
pub(crate) const DATA_DIR: &str = "mas-data";

/// The embedded default's configuration file, if an earlier `mas-server` start made
/// it; never created here, since only the server may pick fresh secrets.
pub(crate) fn existing_config() -> Option<PathBuf> {
    let config = Path::new(DATA_DIR).join("config.yaml");
    config.is_file().then_some(config)
}

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
    let staging = write_staging(&config, &yaml)
        .with_context(|| format!("cannot write beside {}", config.display()))?;
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

/// Writes a file that holds secrets, readable by its owner only, in place of whatever
/// `path` was. The text goes to a new file beside it that is then renamed over `path`,
/// so an existing file's looser mode is not kept, a symlink at `path` is replaced
/// instead of followed (its target is left alone), and a crash never leaves half a file.
pub(crate) fn replace_private(path: &Path, text: &str) -> io::Result<()> {
    let staging = write_staging(path, text)?;
    std::fs::rename(&staging, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&staging);
    })
}

/// Writes `text` to a new file (mode 0600) beside `path`, under a name no other file
/// has, and returns that name. `create_new` refuses anything already there, a symlink
/// planted under the name included, and a random part makes the name hard to guess.
fn write_staging(path: &Path, text: &str) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    let mut attempts = 0;
    loop {
        let staging = dir.join(format!(
            ".{}.{}.{:016x}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            rand::random::<u64>()
        ));
        match write_new_private(&staging, text) {
            Ok(()) => return Ok(staging),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                attempts += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Creates `path`, which must not exist yet, readable by its owner only, with `text`.
fn write_new_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if written.is_err() {
        // A half-written file of secrets is no use to anyone.
        let _ = std::fs::remove_file(path);
    }
    written
}
