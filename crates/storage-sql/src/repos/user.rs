//! Users, passwords, emails, browser sessions, registration tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{
    Authentication, AuthenticationMethod, BrowserSession, LastActivity, Password,
    RegistrationToken, User, UserEmail, UserEmailAuthentication,
};
use mas_storage::repository::{
    BrowserSessionFilter, BrowserSessionRepository, RegistrationTokenFilter,
    RegistrationTokenRepository, UserEmailFilter, UserEmailRepository, UserFilter,
    UserPasswordRepository, UserRepository, UserState,
};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait, JoinType, LikeExpr, Order, Query, SelectStatement,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use ulid::Ulid;

use super::{Repo, prefixed};
use crate::conv::{gone, new_id, now, ulid, ulid_opt, unsigned};
use crate::entities::{
    browser_session_authentications as auths, browser_sessions, compat_sessions, oauth2_sessions,
    registration_tokens, user_email_authentications as email_auths, user_emails, user_passwords,
    users,
};

pub(crate) fn user(m: users::Model) -> Result<User, StorageError> {
    Ok(User {
        id: ulid("users", &m.id)?,
        username: m.username,
        created_at: m.created_at,
        locked_at: m.locked_at,
        deactivated_at: m.deactivated_at,
        can_request_admin: m.can_request_admin,
    })
}

fn user_condition(filter: &UserFilter) -> Condition {
    let mut condition = Condition::all();
    match filter.state {
        Some(UserState::Active) => {
            condition = condition
                .add(users::Column::LockedAt.is_null())
                .add(users::Column::DeactivatedAt.is_null());
        }
        // As MAS reads it: deactivated users are locked too.
        Some(UserState::Locked) => {
            condition = condition.add(
                Condition::any()
                    .add(users::Column::LockedAt.is_not_null())
                    .add(users::Column::DeactivatedAt.is_not_null()),
            );
        }
        Some(UserState::Deactivated) => {
            condition = condition.add(users::Column::DeactivatedAt.is_not_null());
        }
        None => {}
    }
    if let Some(can) = filter.can_request_admin {
        condition = condition.add(users::Column::CanRequestAdmin.eq(can));
    }
    if let Some(search) = &filter.search {
        // Usernames are lowercase; the wildcards of LIKE in the text match themselves.
        let escaped = search
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        condition = condition.add(
            Expr::col((users::Entity, users::Column::Username))
                .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
        );
    }
    if let Some(has) = filter.has_active_oauth2_session {
        let open = open_sessions_of_user(
            oauth2_sessions::Entity,
            oauth2_sessions::Column::UserId,
            oauth2_sessions::Column::FinishedAt,
        );
        condition = condition.add(if has {
            Expr::exists(open)
        } else {
            Expr::exists(open).not()
        });
    }
    if let Some(has) = filter.has_active_compat_session {
        let open = open_sessions_of_user(
            compat_sessions::Entity,
            compat_sessions::Column::UserId,
            compat_sessions::Column::FinishedAt,
        );
        condition = condition.add(if has {
            Expr::exists(open)
        } else {
            Expr::exists(open).not()
        });
    }
    condition
}

/// `SELECT 1 FROM table WHERE user_id = users.id AND finished_at IS NULL`, for `EXISTS`.
fn open_sessions_of_user<E: sea_orm::EntityTrait>(
    table: E,
    user_id: E::Column,
    finished_at: E::Column,
) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(table)
        .and_where(Expr::col((table, user_id)).equals((users::Entity, users::Column::Id)))
        .and_where(Expr::col((table, finished_at)).is_null())
        .to_owned()
}

fn email_condition(filter: &UserEmailFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user_id) = filter.user_id {
        condition = condition.add(user_emails::Column::UserId.eq(user_id.to_string()));
    }
    if let Some(address) = &filter.email {
        condition = condition.add(user_emails::Column::EmailLower.eq(address.to_lowercase()));
    }
    condition
}

fn browser_session_condition(filter: BrowserSessionFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user_id) = filter.user_id {
        condition = condition.add(browser_sessions::Column::UserId.eq(user_id.to_string()));
    }
    match filter.active {
        Some(true) => condition = condition.add(browser_sessions::Column::FinishedAt.is_null()),
        Some(false) => {
            condition = condition.add(browser_sessions::Column::FinishedAt.is_not_null());
        }
        None => {}
    }
    condition
}

impl Repo<'_> {
    async fn set_user_column(
        &self,
        id: Ulid,
        column: users::Column,
        value: sea_orm::Value,
    ) -> Result<(), StorageError> {
        let result = users::Entity::update_many()
            .col_expr(column, Expr::value(value))
            .filter(users::Column::Id.eq(id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("users"));
        }
        Ok(())
    }
}

#[async_trait]
impl UserRepository for Repo<'_> {
    #[tracing::instrument(name = "db.user.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<User>, StorageError> {
        users::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(user)
            .transpose()
    }

    #[tracing::instrument(name = "db.user.find_by_username", skip_all)]
    async fn find_by_username(&mut self, username: &str) -> Result<Option<User>, StorageError> {
        users::Entity::find()
            .filter(users::Column::Username.eq(username))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(user)
            .transpose()
    }

    #[tracing::instrument(name = "db.user.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        username: &str,
    ) -> Result<User, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        users::Entity::insert(users::ActiveModel {
            id: Set(id.to_string()),
            username: Set(username.to_owned()),
            created_at: Set(created_at),
            locked_at: Set(None),
            deactivated_at: Set(None),
            can_request_admin: Set(false),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(User {
            id,
            username: username.to_owned(),
            created_at,
            locked_at: None,
            deactivated_at: None,
            can_request_admin: false,
        })
    }

    #[tracing::instrument(name = "db.user.lock", skip_all)]
    async fn lock(&mut self, clock: &dyn Clock, mut user: User) -> Result<User, StorageError> {
        if user.locked_at.is_none() {
            let at = now(clock);
            self.set_user_column(user.id, users::Column::LockedAt, Some(at).into())
                .await?;
            self.revoked(&[user.id]).await?;
            user.locked_at = Some(at);
        }
        Ok(user)
    }

    #[tracing::instrument(name = "db.user.unlock", skip_all)]
    async fn unlock(&mut self, mut user: User) -> Result<User, StorageError> {
        self.set_user_column(
            user.id,
            users::Column::LockedAt,
            Option::<DateTime<Utc>>::None.into(),
        )
        .await?;
        user.locked_at = None;
        Ok(user)
    }

    #[tracing::instrument(name = "db.user.deactivate", skip_all)]
    async fn deactivate(
        &mut self,
        clock: &dyn Clock,
        mut user: User,
    ) -> Result<User, StorageError> {
        if user.deactivated_at.is_none() {
            let at = now(clock);
            self.set_user_column(user.id, users::Column::DeactivatedAt, Some(at).into())
                .await?;
            self.revoked(&[user.id]).await?;
            user.deactivated_at = Some(at);
        }
        Ok(user)
    }

    #[tracing::instrument(name = "db.user.reactivate", skip_all)]
    async fn reactivate(&mut self, mut user: User) -> Result<User, StorageError> {
        self.set_user_column(
            user.id,
            users::Column::DeactivatedAt,
            Option::<DateTime<Utc>>::None.into(),
        )
        .await?;
        user.deactivated_at = None;
        Ok(user)
    }

    #[tracing::instrument(name = "db.user.set_can_request_admin", skip_all)]
    async fn set_can_request_admin(
        &mut self,
        mut user: User,
        can: bool,
    ) -> Result<User, StorageError> {
        self.set_user_column(user.id, users::Column::CanRequestAdmin, can.into())
            .await?;
        if user.can_request_admin && !can {
            // Kept introspection answers may carry an admin scope the user just lost.
            self.revoked(&[user.id]).await?;
        }
        user.can_request_admin = can;
        Ok(user)
    }

    #[tracing::instrument(name = "db.user.list", skip_all)]
    async fn list(
        &mut self,
        filter: &UserFilter,
        pagination: Pagination,
    ) -> Result<Page<User>, StorageError> {
        self.page(
            users::Entity::find().filter(user_condition(filter)),
            users::Column::Id,
            &pagination,
            user,
        )
        .await
    }

    #[tracing::instrument(name = "db.user.count", skip_all)]
    async fn count(&mut self, filter: &UserFilter) -> Result<u64, StorageError> {
        users::Entity::find()
            .filter(user_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }
}

fn password(m: user_passwords::Model) -> Result<Password, StorageError> {
    Ok(Password {
        id: ulid("user_passwords", &m.id)?,
        user_id: ulid("user_passwords", &m.user_id)?,
        hashed_password: m.hashed_password,
        version: u16::try_from(m.version).map_err(|_| StorageError::InvalidData {
            table: "user_passwords",
            reason: format!("version {} out of range", m.version),
        })?,
        upgraded_from_id: ulid_opt("user_passwords", m.upgraded_from_id.as_deref())?,
        created_at: m.created_at,
    })
}

#[async_trait]
impl UserPasswordRepository for Repo<'_> {
    #[tracing::instrument(name = "db.user_password.active", skip_all)]
    async fn active(&mut self, user: &User) -> Result<Option<Password>, StorageError> {
        user_passwords::Entity::find()
            .filter(user_passwords::Column::UserId.eq(user.id.to_string()))
            .order_by_desc(user_passwords::Column::Id)
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(password)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_password.find_user_with_active", skip_all)]
    async fn find_user_with_active(
        &mut self,
        username: &str,
    ) -> Result<Option<(User, Option<Password>)>, StorageError> {
        let (u, p) = (Alias::new("u"), Alias::new("p"));
        let mut query = Query::select();
        query
            .from_as(users::Entity, u.clone())
            .join_as(
                JoinType::LeftJoin,
                user_passwords::Entity,
                p.clone(),
                Expr::col((p.clone(), user_passwords::Column::UserId))
                    .equals((u.clone(), users::Column::Id)),
            )
            .and_where(Expr::col((u.clone(), users::Column::Username)).eq(username))
            // The newest password is the current one.
            .order_by((p.clone(), user_passwords::Column::Id), Order::Desc)
            .limit(1);
        prefixed::<users::Entity>(&mut query, &u, "u_");
        prefixed::<user_passwords::Entity>(&mut query, &p, "p_");
        let Some(row) = self.one_row(&query).await? else {
            return Ok(None);
        };
        let Some(found) = self.part::<users::Model>(&row, "u_")? else {
            return Ok(None);
        };
        let current = self
            .part::<user_passwords::Model>(&row, "p_")?
            .map(password)
            .transpose()?;
        Ok(Some((user(found)?, current)))
    }

    #[tracing::instrument(name = "db.user_password.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        version: u16,
        hashed_password: String,
        upgraded_from: Option<&Password>,
    ) -> Result<Password, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        user_passwords::Entity::insert(user_passwords::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user.id.to_string()),
            hashed_password: Set(hashed_password.clone()),
            version: Set(i32::from(version)),
            upgraded_from_id: Set(upgraded_from.map(|p| p.id.to_string())),
            created_at: Set(created_at),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(Password {
            id,
            user_id: user.id,
            hashed_password,
            version,
            upgraded_from_id: upgraded_from.map(|p| p.id),
            created_at,
        })
    }
}

fn email(m: user_emails::Model) -> Result<UserEmail, StorageError> {
    Ok(UserEmail {
        id: ulid("user_emails", &m.id)?,
        user_id: ulid("user_emails", &m.user_id)?,
        email: m.email,
        created_at: m.created_at,
    })
}

#[async_trait]
impl UserEmailRepository for Repo<'_> {
    #[tracing::instrument(name = "db.user_email.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UserEmail>, StorageError> {
        user_emails::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(email)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_email.find_by_email", skip_all)]
    async fn find_by_email(&mut self, address: &str) -> Result<Option<UserEmail>, StorageError> {
        user_emails::Entity::find()
            .filter(user_emails::Column::EmailLower.eq(address.to_lowercase()))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(email)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_email.all", skip_all)]
    async fn all(&mut self, user: &User) -> Result<Vec<UserEmail>, StorageError> {
        user_emails::Entity::find()
            .filter(user_emails::Column::UserId.eq(user.id.to_string()))
            .order_by_asc(user_emails::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(email)
            .collect()
    }

    #[tracing::instrument(name = "db.user_email.list", skip_all)]
    async fn list(
        &mut self,
        filter: &UserEmailFilter,
        pagination: Pagination,
    ) -> Result<Page<UserEmail>, StorageError> {
        self.page(
            user_emails::Entity::find().filter(email_condition(filter)),
            user_emails::Column::Id,
            &pagination,
            email,
        )
        .await
    }

    #[tracing::instrument(name = "db.user_email.count", skip_all)]
    async fn count(&mut self, filter: &UserEmailFilter) -> Result<u64, StorageError> {
        user_emails::Entity::find()
            .filter(email_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.user_email.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        address: &str,
    ) -> Result<UserEmail, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        user_emails::Entity::insert(user_emails::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user.id.to_string()),
            email: Set(address.to_owned()),
            email_lower: Set(address.to_lowercase()),
            created_at: Set(created_at),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(UserEmail {
            id,
            user_id: user.id,
            email: address.to_owned(),
            created_at,
        })
    }

    #[tracing::instrument(name = "db.user_email.remove", skip_all)]
    async fn remove(&mut self, email: UserEmail) -> Result<(), StorageError> {
        user_emails::Entity::delete_by_id(email.id.to_string())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    #[tracing::instrument(name = "db.user_email.start_authentication", skip_all)]
    async fn start_authentication(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        address: &str,
        encrypted_code: String,
        expires_at: DateTime<Utc>,
    ) -> Result<UserEmailAuthentication, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        email_auths::Entity::insert(email_auths::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(session.user_id.to_string()),
            browser_session_id: Set(session.id.to_string()),
            email: Set(address.to_owned()),
            encrypted_code: Set(encrypted_code.clone()),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            attempts: Set(0),
            completed_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(UserEmailAuthentication {
            id,
            user_id: session.user_id,
            browser_session_id: session.id,
            email: address.to_owned(),
            encrypted_code,
            created_at,
            expires_at,
            attempts: 0,
            completed_at: None,
        })
    }

    #[tracing::instrument(name = "db.user_email.lookup_authentication", skip_all)]
    async fn lookup_authentication(
        &mut self,
        id: Ulid,
    ) -> Result<Option<UserEmailAuthentication>, StorageError> {
        email_auths::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(email_authentication)
            .transpose()
    }

    #[tracing::instrument(name = "db.user_email.record_attempt", skip_all)]
    async fn record_attempt(
        &mut self,
        authentication: UserEmailAuthentication,
    ) -> Result<UserEmailAuthentication, StorageError> {
        // Counted in the database, so concurrent guesses all count.
        email_auths::Entity::update_many()
            .col_expr(
                email_auths::Column::Attempts,
                Expr::col(email_auths::Column::Attempts).add(1),
            )
            .filter(email_auths::Column::Id.eq(authentication.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.lookup_authentication(authentication.id)
            .await?
            .ok_or_else(|| gone("user_email_authentications"))
    }

    #[tracing::instrument(name = "db.user_email.cleanup_authentications", skip_all)]
    async fn cleanup_authentications(
        &mut self,
        expired_before: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let done = email_auths::Entity::delete_many()
            .filter(email_auths::Column::ExpiresAt.lt(expired_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected)
    }

    #[tracing::instrument(name = "db.user_email.complete_authentication", skip_all)]
    async fn complete_authentication(
        &mut self,
        clock: &dyn Clock,
        authentication: UserEmailAuthentication,
    ) -> Result<Option<UserEmailAuthentication>, StorageError> {
        let at = now(clock);
        let done = email_auths::Entity::update_many()
            .col_expr(email_auths::Column::CompletedAt, Expr::value(at))
            .filter(email_auths::Column::Id.eq(authentication.id.to_string()))
            .filter(email_auths::Column::CompletedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(
            (done.rows_affected == 1).then_some(UserEmailAuthentication {
                completed_at: Some(at),
                ..authentication
            }),
        )
    }
}

fn email_authentication(m: email_auths::Model) -> Result<UserEmailAuthentication, StorageError> {
    const T: &str = "user_email_authentications";
    Ok(UserEmailAuthentication {
        id: ulid(T, &m.id)?,
        user_id: ulid(T, &m.user_id)?,
        browser_session_id: ulid(T, &m.browser_session_id)?,
        email: m.email,
        encrypted_code: m.encrypted_code,
        created_at: m.created_at,
        expires_at: m.expires_at,
        attempts: unsigned(T, m.attempts)?,
        completed_at: m.completed_at,
    })
}

fn browser_session(m: browser_sessions::Model) -> Result<BrowserSession, StorageError> {
    Ok(BrowserSession {
        id: ulid("browser_sessions", &m.id)?,
        user_id: ulid("browser_sessions", &m.user_id)?,
        created_at: m.created_at,
        finished_at: m.finished_at,
        user_agent: m.user_agent,
        last_activity: LastActivity {
            at: m.last_active_at,
            ip: m.last_active_ip,
        },
    })
}

fn authentication(m: auths::Model) -> Result<Authentication, StorageError> {
    const T: &str = "browser_session_authentications";
    let method = match (m.user_password_id, m.upstream_link_id) {
        (Some(password), None) => AuthenticationMethod::Password {
            password_id: ulid(T, &password)?,
        },
        (None, Some(link)) => AuthenticationMethod::Upstream {
            link_id: ulid(T, &link)?,
        },
        _ => {
            return Err(StorageError::InvalidData {
                table: T,
                reason: "exactly one of password and upstream link must be set".to_owned(),
            });
        }
    };
    Ok(Authentication {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.browser_session_id)?,
        method,
        created_at: m.created_at,
    })
}

impl Repo<'_> {
    async fn add_authentication(
        &self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        method: AuthenticationMethod,
    ) -> Result<Authentication, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let (password, link) = match &method {
            AuthenticationMethod::Password { password_id } => (Some(password_id.to_string()), None),
            AuthenticationMethod::Upstream { link_id } => (None, Some(link_id.to_string())),
        };
        auths::Entity::insert(auths::ActiveModel {
            id: Set(id.to_string()),
            browser_session_id: Set(session.id.to_string()),
            user_password_id: Set(password),
            upstream_link_id: Set(link),
            created_at: Set(created_at),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(Authentication {
            id,
            session_id: session.id,
            method,
            created_at,
        })
    }
}

#[async_trait]
impl BrowserSessionRepository for Repo<'_> {
    #[tracing::instrument(name = "db.browser_session.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<BrowserSession>, StorageError> {
        browser_sessions::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(browser_session)
            .transpose()
    }

    #[tracing::instrument(name = "db.browser_session.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        user_agent: Option<String>,
    ) -> Result<BrowserSession, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        browser_sessions::Entity::insert(browser_sessions::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user.id.to_string()),
            created_at: Set(created_at),
            finished_at: Set(None),
            user_agent: Set(user_agent.clone()),
            last_active_at: Set(None),
            last_active_ip: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(BrowserSession {
            id,
            user_id: user.id,
            created_at,
            finished_at: None,
            user_agent,
            last_activity: LastActivity::default(),
        })
    }

    #[tracing::instrument(name = "db.browser_session.finish", skip_all)]
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        mut session: BrowserSession,
    ) -> Result<BrowserSession, StorageError> {
        let at = now(clock);
        browser_sessions::Entity::update_many()
            .col_expr(browser_sessions::Column::FinishedAt, Expr::value(at))
            .filter(browser_sessions::Column::Id.eq(session.id.to_string()))
            .filter(browser_sessions::Column::FinishedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        session.finished_at.get_or_insert(at);
        Ok(session)
    }

    #[tracing::instrument(name = "db.browser_session.finish_all", skip_all)]
    async fn finish_all(&mut self, clock: &dyn Clock, user: &User) -> Result<u64, StorageError> {
        let result = browser_sessions::Entity::update_many()
            .col_expr(
                browser_sessions::Column::FinishedAt,
                Expr::value(now(clock)),
            )
            .filter(browser_sessions::Column::UserId.eq(user.id.to_string()))
            .filter(browser_sessions::Column::FinishedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.browser_session.list", skip_all)]
    async fn list(
        &mut self,
        user: &User,
        active_only: bool,
        pagination: Pagination,
    ) -> Result<Page<BrowserSession>, StorageError> {
        let mut query = browser_sessions::Entity::find()
            .filter(browser_sessions::Column::UserId.eq(user.id.to_string()));
        if active_only {
            query = query.filter(browser_sessions::Column::FinishedAt.is_null());
        }
        self.page(
            query,
            browser_sessions::Column::Id,
            &pagination,
            browser_session,
        )
        .await
    }

    #[tracing::instrument(name = "db.browser_session.list_by", skip_all)]
    async fn list_by(
        &mut self,
        filter: BrowserSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<BrowserSession>, StorageError> {
        self.page(
            browser_sessions::Entity::find().filter(browser_session_condition(filter)),
            browser_sessions::Column::Id,
            &pagination,
            browser_session,
        )
        .await
    }

    #[tracing::instrument(name = "db.browser_session.count", skip_all)]
    async fn count(&mut self, filter: BrowserSessionFilter) -> Result<u64, StorageError> {
        browser_sessions::Entity::find()
            .filter(browser_session_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.browser_session.authenticate_with_password", skip_all)]
    async fn authenticate_with_password(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        password: &Password,
    ) -> Result<Authentication, StorageError> {
        let method = AuthenticationMethod::Password {
            password_id: password.id,
        };
        self.add_authentication(rng, clock, session, method).await
    }

    #[tracing::instrument(name = "db.browser_session.authenticate_with_upstream", skip_all)]
    async fn authenticate_with_upstream(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        link_id: Ulid,
    ) -> Result<Authentication, StorageError> {
        self.add_authentication(
            rng,
            clock,
            session,
            AuthenticationMethod::Upstream { link_id },
        )
        .await
    }

    #[tracing::instrument(name = "db.browser_session.last_authentication", skip_all)]
    async fn last_authentication(
        &mut self,
        session: &BrowserSession,
    ) -> Result<Option<Authentication>, StorageError> {
        auths::Entity::find()
            .filter(auths::Column::BrowserSessionId.eq(session.id.to_string()))
            .order_by_desc(auths::Column::Id)
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(authentication)
            .transpose()
    }

    #[tracing::instrument(name = "db.browser_session.record_activity", skip_all)]
    async fn record_activity(
        &mut self,
        id: Ulid,
        at: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<(), StorageError> {
        browser_sessions::Entity::update_many()
            .col_expr(browser_sessions::Column::LastActiveAt, Expr::value(at))
            .col_expr(browser_sessions::Column::LastActiveIp, Expr::value(ip))
            .filter(browser_sessions::Column::Id.eq(id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

fn registration_token(m: registration_tokens::Model) -> Result<RegistrationToken, StorageError> {
    const T: &str = "registration_tokens";
    Ok(RegistrationToken {
        id: ulid(T, &m.id)?,
        token: m.token,
        usage_limit: m.usage_limit.map(|l| unsigned(T, l)).transpose()?,
        times_used: unsigned(T, m.times_used)?,
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
    })
}

#[async_trait]
impl RegistrationTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.registration_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<RegistrationToken>, StorageError> {
        registration_tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(registration_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.registration_token.find_by_token", skip_all)]
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<RegistrationToken>, StorageError> {
        registration_tokens::Entity::find()
            .filter(registration_tokens::Column::Token.eq(token))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(registration_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.registration_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        token: &str,
        usage_limit: Option<u32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<RegistrationToken, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let limit = usage_limit
            .map(|l| {
                i32::try_from(l)
                    .map_err(|_| StorageError::Conflict("usage limit too large".to_owned()))
            })
            .transpose()?;
        registration_tokens::Entity::insert(registration_tokens::ActiveModel {
            id: Set(id.to_string()),
            token: Set(token.to_owned()),
            usage_limit: Set(limit),
            times_used: Set(0),
            created_at: Set(created_at),
            last_used_at: Set(None),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(RegistrationToken {
            id,
            token: token.to_owned(),
            usage_limit,
            times_used: 0,
            created_at,
            last_used_at: None,
            expires_at,
            revoked_at: None,
        })
    }

    #[tracing::instrument(name = "db.registration_token.use_token", skip_all)]
    async fn use_token(
        &mut self,
        clock: &dyn Clock,
        token: &RegistrationToken,
    ) -> Result<Option<RegistrationToken>, StorageError> {
        use registration_tokens::Column as C;
        let at = now(clock);
        // One conditional statement: concurrent uses never exceed the limit.
        let result = registration_tokens::Entity::update_many()
            .col_expr(C::TimesUsed, Expr::col(C::TimesUsed).add(1))
            .col_expr(C::LastUsedAt, Expr::value(at))
            .filter(C::Id.eq(token.id.to_string()))
            .filter(C::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(C::ExpiresAt.is_null())
                    .add(C::ExpiresAt.gt(at)),
            )
            .filter(
                Condition::any()
                    .add(C::UsageLimit.is_null())
                    .add(Expr::col(C::TimesUsed).lt(Expr::col(C::UsageLimit))),
            )
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        RegistrationTokenRepository::lookup(self, token.id).await
    }

    #[tracing::instrument(name = "db.registration_token.revoke", skip_all)]
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        mut token: RegistrationToken,
    ) -> Result<RegistrationToken, StorageError> {
        let at = now(clock);
        registration_tokens::Entity::update_many()
            .col_expr(registration_tokens::Column::RevokedAt, Expr::value(at))
            .filter(registration_tokens::Column::Id.eq(token.id.to_string()))
            .filter(registration_tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        token.revoked_at.get_or_insert(at);
        Ok(token)
    }

    #[tracing::instrument(name = "db.registration_token.unrevoke", skip_all)]
    async fn unrevoke(
        &mut self,
        mut token: RegistrationToken,
    ) -> Result<RegistrationToken, StorageError> {
        registration_tokens::Entity::update_many()
            .col_expr(
                registration_tokens::Column::RevokedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(registration_tokens::Column::Id.eq(token.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        token.revoked_at = None;
        Ok(token)
    }

    #[tracing::instrument(name = "db.registration_token.set_limits", skip_all)]
    async fn set_limits(
        &mut self,
        token: RegistrationToken,
        usage_limit: Option<u32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<RegistrationToken, StorageError> {
        let limit = usage_limit
            .map(|l| {
                i32::try_from(l)
                    .map_err(|_| StorageError::Conflict("usage limit too large".to_owned()))
            })
            .transpose()?;
        let result = registration_tokens::Entity::update_many()
            .col_expr(registration_tokens::Column::UsageLimit, Expr::value(limit))
            .col_expr(
                registration_tokens::Column::ExpiresAt,
                Expr::value(expires_at),
            )
            .filter(registration_tokens::Column::Id.eq(token.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("registration_tokens"));
        }
        // Read back: its uses may have moved on since `token` was read.
        RegistrationTokenRepository::lookup(self, token.id)
            .await?
            .ok_or_else(|| gone("registration_tokens"))
    }

    #[tracing::instrument(name = "db.registration_token.list", skip_all)]
    async fn list(
        &mut self,
        filter: RegistrationTokenFilter,
        pagination: Pagination,
    ) -> Result<Page<RegistrationToken>, StorageError> {
        self.page(
            registration_tokens::Entity::find().filter(registration_token_condition(filter)),
            registration_tokens::Column::Id,
            &pagination,
            registration_token,
        )
        .await
    }

    #[tracing::instrument(name = "db.registration_token.count", skip_all)]
    async fn count(&mut self, filter: RegistrationTokenFilter) -> Result<u64, StorageError> {
        registration_tokens::Entity::find()
            .filter(registration_token_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }
}

/// `condition` when `wanted` is `Some(true)`, its negation for `Some(false)`.
fn either(wanted: Option<bool>, condition: Condition) -> Option<Condition> {
    wanted.map(|yes| if yes { condition } else { condition.not() })
}

fn registration_token_condition(filter: RegistrationTokenFilter) -> Condition {
    use registration_tokens::Column as C;
    let at = filter.now;
    let expired = Condition::all()
        .add(C::ExpiresAt.is_not_null())
        .add(C::ExpiresAt.lte(at));
    let used_up = Condition::all()
        .add(C::UsageLimit.is_not_null())
        .add(Expr::col(C::TimesUsed).gte(Expr::col(C::UsageLimit)));
    // What `RegistrationToken::is_valid` says, in SQL.
    let valid = Condition::all()
        .add(C::RevokedAt.is_null())
        .add(expired.clone().not())
        .add(used_up.not());
    let mut condition = Condition::all();
    for part in [
        either(filter.used, Condition::all().add(C::TimesUsed.gt(0))),
        either(
            filter.revoked,
            Condition::all().add(C::RevokedAt.is_not_null()),
        ),
        either(filter.expired, expired),
        either(filter.valid, valid),
    ]
    .into_iter()
    .flatten()
    {
        condition = condition.add(part);
    }
    condition
}
