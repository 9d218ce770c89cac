//! Subcommands other than `server`.

pub(crate) mod config;
