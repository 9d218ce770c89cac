//! Schema migrations, backend-neutral (PostgreSQL and SQLite). A migration is never
//! edited once it has landed: changes come as new files.

mod m20261127_000001_initial;
mod m20261127_000002_client_assertions;
mod m20261127_000003_device_polls;
mod m20261127_000004_one_open_session_per_device;
mod m20261127_000005_revocation_log;
mod m20261127_000006_cleanup_indexes;
mod m20261127_000007_client_first_use;
mod m20261207_000008_email_authentications;
mod m20261207_000009_upstream_sessions;
mod m20261207_000010_personal_session_clients;
mod m20261207_000011_registrations_and_recovery;
mod schema;

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

/// Applies the migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_client_assertions::Migration),
            Box::new(m20261127_000003_device_polls::Migration),
            Box::new(m20261127_000004_one_open_session_per_device::Migration),
            Box::new(m20261127_000005_revocation_log::Migration),
            Box::new(m20261127_000006_cleanup_indexes::Migration),
            Box::new(m20261127_000007_client_first_use::Migration),
            Box::new(m20261207_000008_email_authentications::Migration),
            Box::new(m20261207_000009_upstream_sessions::Migration),
            Box::new(m20261207_000010_personal_session_clients::Migration),
            Box::new(m20261207_000011_registrations_and_recovery::Migration),
        ]
    }
}
