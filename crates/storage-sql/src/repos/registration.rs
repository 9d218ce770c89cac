//! Registrations waiting for their email code, and account recovery tickets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{RecoveryTicket, User, UserRegistration};
use mas_storage::repository::{
    NewRegistration, UserRecoveryRepository, UserRegistrationRepository,
};
use mas_storage::{Clock, Rng, StorageError};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{gone, hash_token, new_id, now, ulid, ulid_opt, unsigned};
use crate::entities::{
    user_recovery_tickets as tickets, user_registrations as registrations, user_terms,
};

const REGISTRATIONS: &str = "user_registrations";
const TICKETS: &str = "user_recovery_tickets";

fn registration(m: registrations::Model) -> Result<UserRegistration, StorageError> {
    const T: &str = REGISTRATIONS;
    Ok(UserRegistration {
        id: ulid(T, &m.id)?,
        username: m.username,
        email: m.email,
        password_version: u16::try_from(m.password_version).map_err(|_| {
            StorageError::InvalidData {
                table: T,
                reason: format!("version {} out of range", m.password_version),
            }
        })?,
        password_hash: m.password_hash,
        registration_token_id: ulid_opt(T, m.registration_token_id.as_deref())?,
        terms_url: m.terms_url,
        encrypted_code: m.encrypted_code,
        created_at: m.created_at,
        expires_at: m.expires_at,
        attempts: unsigned(T, m.attempts)?,
        completed_at: m.completed_at,
    })
}

fn ticket(m: tickets::Model) -> Result<RecoveryTicket, StorageError> {
    Ok(RecoveryTicket {
        id: ulid(TICKETS, &m.id)?,
        user_id: ulid(TICKETS, &m.user_id)?,
        email: m.email,
        created_at: m.created_at,
        expires_at: m.expires_at,
        consumed_at: m.consumed_at,
    })
}

#[async_trait]
impl UserRegistrationRepository for Repo<'_> {
    #[tracing::instrument(name = "db.user_registration.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        new: NewRegistration,
    ) -> Result<UserRegistration, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        registrations::Entity::insert(registrations::ActiveModel {
            id: Set(id.to_string()),
            username: Set(new.username.clone()),
            email: Set(new.email.clone()),
            password_version: Set(i32::from(new.password_version)),
            password_hash: Set(new.password_hash.clone()),
            registration_token_id: Set(new.registration_token_id.map(|t| t.to_string())),
            terms_url: Set(new.terms_url.clone()),
            encrypted_code: Set(new.encrypted_code.clone()),
            attempts: Set(0),
            created_at: Set(created_at),
            expires_at: Set(new.expires_at),
            completed_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(UserRegistration {
            id,
            username: new.username,
            email: new.email,
            password_version: new.password_version,
            password_hash: new.password_hash,
            registration_token_id: new.registration_token_id,
            terms_url: new.terms_url,
            encrypted_code: new.encrypted_code,
            created_at,
            expires_at: new.expires_at,
            attempts: 0,
            completed_at: None,
        })
    }

    #[tracing::instrument(name = "db.user_registration.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UserRegistration>, StorageError> {
        registrations::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(registration)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_registration.record_attempt", skip_all)]
    async fn record_attempt(
        &mut self,
        registration: UserRegistration,
    ) -> Result<UserRegistration, StorageError> {
        // Counted in the database, so concurrent guesses all count.
        registrations::Entity::update_many()
            .col_expr(
                registrations::Column::Attempts,
                Expr::col(registrations::Column::Attempts).add(1),
            )
            .filter(registrations::Column::Id.eq(registration.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        UserRegistrationRepository::lookup(self, registration.id)
            .await?
            .ok_or_else(|| gone(REGISTRATIONS))
    }

    #[tracing::instrument(name = "db.user_registration.complete", skip_all)]
    async fn complete(
        &mut self,
        clock: &dyn Clock,
        registration: UserRegistration,
    ) -> Result<Option<UserRegistration>, StorageError> {
        let at = now(clock);
        let done = registrations::Entity::update_many()
            .col_expr(registrations::Column::CompletedAt, Expr::value(at))
            // The account holds the password now; the row keeps neither it nor the code.
            .col_expr(registrations::Column::PasswordHash, Expr::value(""))
            .col_expr(registrations::Column::EncryptedCode, Expr::value(""))
            .filter(registrations::Column::Id.eq(registration.id.to_string()))
            .filter(registrations::Column::CompletedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok((done.rows_affected == 1).then_some(UserRegistration {
            completed_at: Some(at),
            password_hash: String::new(),
            encrypted_code: String::new(),
            ..registration
        }))
    }

    #[tracing::instrument(name = "db.user_registration.accept_terms", skip_all)]
    async fn accept_terms(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        terms_url: &str,
    ) -> Result<(), StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let inserted = user_terms::Entity::insert(user_terms::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user.id.to_string()),
            terms_url: Set(terms_url.to_owned()),
            created_at: Set(created_at),
        })
        .on_conflict(
            OnConflict::columns([user_terms::Column::UserId, user_terms::Column::TermsUrl])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.conn)
        .await;
        match inserted {
            // Accepted already: once per URL is enough.
            Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => Ok(()),
            Err(e) => Err(self.db_err(e)),
        }
    }

    #[tracing::instrument(name = "db.user_registration.accepted_terms", skip_all)]
    async fn accepted_terms(&mut self, user: &User) -> Result<Vec<String>, StorageError> {
        let rows = user_terms::Entity::find()
            .filter(user_terms::Column::UserId.eq(user.id.to_string()))
            .order_by_asc(user_terms::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.into_iter().map(|r| r.terms_url).collect())
    }

    #[tracing::instrument(name = "db.user_registration.cleanup", skip_all)]
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError> {
        let done = registrations::Entity::delete_many()
            .filter(registrations::Column::ExpiresAt.lt(expired_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected)
    }
}

#[async_trait]
impl UserRecoveryRepository for Repo<'_> {
    #[tracing::instrument(name = "db.user_recovery.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        email: &str,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<RecoveryTicket, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        tickets::Entity::insert(tickets::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user.id.to_string()),
            email: Set(email.to_owned()),
            ticket_hash: Set(hash_token(value)),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            consumed_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(RecoveryTicket {
            id,
            user_id: user.id,
            email: email.to_owned(),
            created_at,
            expires_at,
            consumed_at: None,
        })
    }

    #[tracing::instrument(name = "db.user_recovery.find_by_ticket", skip_all)]
    async fn find_by_ticket(
        &mut self,
        value: &str,
    ) -> Result<Option<RecoveryTicket>, StorageError> {
        tickets::Entity::find()
            .filter(tickets::Column::TicketHash.eq(hash_token(value)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(ticket)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_recovery.consume", skip_all)]
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        used: RecoveryTicket,
    ) -> Result<Option<RecoveryTicket>, StorageError> {
        let at = now(clock);
        let done = tickets::Entity::update_many()
            .col_expr(tickets::Column::ConsumedAt, Expr::value(at))
            .filter(tickets::Column::Id.eq(used.id.to_string()))
            .filter(tickets::Column::ConsumedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if done.rows_affected != 1 {
            return Ok(None);
        }
        // The other links sent meanwhile would set the password again.
        tickets::Entity::update_many()
            .col_expr(tickets::Column::ConsumedAt, Expr::value(at))
            .filter(tickets::Column::UserId.eq(used.user_id.to_string()))
            .filter(tickets::Column::ConsumedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(Some(RecoveryTicket {
            consumed_at: Some(at),
            ..used
        }))
    }

    #[tracing::instrument(name = "db.user_recovery.cleanup", skip_all)]
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError> {
        let done = tickets::Entity::delete_many()
            .filter(tickets::Column::ExpiresAt.lt(expired_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected)
    }
}
