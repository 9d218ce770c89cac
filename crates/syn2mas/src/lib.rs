//! Moving an existing Synapse to this service (MAS's `syn2mas`): Synapse's
//! configuration turned into a starting configuration here
//! (`mas-cli config generate --synapse-config`), the checks before a move
//! (`mas-cli syn2mas check`), and the move itself (`mas-cli syn2mas migrate`), which
//! streams Synapse's database (PostgreSQL or SQLite) into a bulk writer.

mod check;
mod config;
mod database;
mod migrate;

pub use self::check::{CheckOptions, CheckReport, TargetState, check};
pub use self::config::{SynapseConfig, SynapseConfigError};
pub use self::database::{
    SynapseCounts, SynapseDatabase, SynapseDatabaseError, SynapseDatabaseOptions,
    TESTED_SCHEMA_VERSIONS,
};
pub use self::migrate::{MigrateError, MigrateOptions, Progress, Tally, migrate};
