//! Moving an existing Synapse to this service (MAS's `syn2mas`). Today: Synapse's
//! configuration read and turned into a starting configuration here
//! (`mas-cli config generate --synapse-config`).

mod config;

pub use self::config::{SynapseConfig, SynapseConfigError};
