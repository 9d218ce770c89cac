//! Registrations waiting for their email code, and account recovery tickets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{RecoveryTicket, User, UserRegistration};
use ulid::Ulid;

use crate::{Clock, Rng, StorageError};

/// What a registration waiting for its code holds.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    /// The username asked for.
    pub username: String,
    /// The address the code goes to.
    pub email: String,
    /// The `passwords.schemes` version of the hash.
    pub password_version: u16,
    /// The password's hash.
    pub password_hash: String,
    /// The registration token to count a use of at the end.
    pub registration_token_id: Option<Ulid>,
    /// The terms of service accepted on the form.
    pub terms_url: Option<String>,
    /// The code, encrypted.
    pub encrypted_code: String,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// Registrations waiting for the code sent to their address.
#[async_trait]
pub trait UserRegistrationRepository: Send {
    /// Stores a registration waiting for its code.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        new: NewRegistration,
    ) -> Result<UserRegistration, StorageError>;
    /// The registration with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UserRegistration>, StorageError>;
    /// Counts one code typed, atomically; returns the registration as it now stands.
    async fn record_attempt(
        &mut self,
        registration: UserRegistration,
    ) -> Result<UserRegistration, StorageError>;
    /// Marks it done, once, forgetting its password hash and code: `None` when it was
    /// completed already.
    async fn complete(
        &mut self,
        clock: &dyn Clock,
        registration: UserRegistration,
    ) -> Result<Option<UserRegistration>, StorageError>;
    /// Records that `user` accepted the terms of service at `terms_url` (once per URL).
    async fn accept_terms(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        terms_url: &str,
    ) -> Result<(), StorageError>;
    /// The terms of service URLs `user` accepted, oldest first.
    async fn accepted_terms(&mut self, user: &User) -> Result<Vec<String>, StorageError>;
    /// Deletes the registrations whose code stopped working before `expired_before`
    /// (each holds an address and a password hash); returns how many.
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// Account recovery tickets: links that set a new password, stored as hashes.
#[async_trait]
pub trait UserRecoveryRepository: Send {
    /// Stores a ticket for `user`, sent to `email`; `ticket` is kept as its hash only.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        email: &str,
        ticket: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<RecoveryTicket, StorageError>;
    /// The ticket with this value, used or not.
    async fn find_by_ticket(
        &mut self,
        ticket: &str,
    ) -> Result<Option<RecoveryTicket>, StorageError>;
    /// Uses the ticket, once, and every other open ticket of its user with it: `None`
    /// when it was used already (a concurrent submission).
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        ticket: RecoveryTicket,
    ) -> Result<Option<RecoveryTicket>, StorageError>;
    /// Deletes the tickets that stopped working before `expired_before`; returns how
    /// many.
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError>;
}
