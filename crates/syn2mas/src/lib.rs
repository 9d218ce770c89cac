//! Moving an existing Synapse to this service (MAS's `syn2mas`). Today: Synapse's
//! configuration read and turned into a starting configuration here
//! (`mas-cli config generate --synapse-config`), and the checks before a move
//! (`mas-cli syn2mas check`), which read Synapse's database (PostgreSQL or SQLite).

mod check;
mod config;
mod database;

pub use self::check::{CheckReport, check};
pub use self::config::{SynapseConfig, SynapseConfigError};
pub use self::database::{
    SynapseCounts, SynapseDatabase, SynapseDatabaseError, SynapseDatabaseOptions,
    TESTED_SCHEMA_VERSIONS,
};
