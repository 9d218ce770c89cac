//! Subcommands other than `server`.

pub(crate) mod config;
pub(crate) mod database;
pub(crate) mod doctor;
pub(crate) mod manage;
pub(crate) mod personal;
pub(crate) mod syn2mas;
pub(crate) mod users;
