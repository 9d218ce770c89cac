//! Sends the service's mail from the job queue: a mail server that is down delays a
//! message, and the worker's retries deliver it once the server is back.

use std::sync::Arc;

use async_trait::async_trait;
use mas_data_model::{Job, RecoveryTicket, Url};
use mas_email::{Mailer, Template};
use mas_storage::jobs::{EmailJob, SEND_EMAIL_QUEUE};
use mas_storage::{Clock, Encrypter, RepositoryFactory, StorageError};
use rand::distr::{Alphanumeric, SampleString};

use crate::{JobError, JobHandler};

/// Runs the `send-email` queue.
pub struct EmailJobs {
    repos: Arc<dyn RepositoryFactory>,
    clock: Arc<dyn Clock>,
    encrypter: Encrypter,
    mailer: Arc<Mailer>,
    service_name: String,
    public_base: Url,
}

impl std::fmt::Debug for EmailJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailJobs")
            .field("mailer", &self.mailer)
            .finish_non_exhaustive()
    }
}

impl EmailJobs {
    /// The handler; codes are decrypted with `encrypter`, messages sent by `mailer` in
    /// the name of `service_name`, links point under `public_base`.
    #[must_use]
    pub fn new(
        repos: Arc<dyn RepositoryFactory>,
        clock: Arc<dyn Clock>,
        encrypter: Encrypter,
        mailer: Arc<Mailer>,
        service_name: String,
        public_base: Url,
    ) -> Self {
        Self {
            repos,
            clock,
            encrypter,
            mailer,
            service_name,
            public_base,
        }
    }

    fn decrypt(&self, sealed: &str) -> Result<String, JobError> {
        self.encrypter
            .decrypt(sealed)
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or_else(|| JobError::Fatal("the payload does not decrypt".to_owned()))
    }

    /// The message of a job and where it goes; `None` when there is nothing to send
    /// any more (a code used or expired, an address no account has).
    async fn message(&self, work: EmailJob) -> Result<Option<(String, Template)>, JobError> {
        let now = self.clock.now();
        match work {
            EmailJob::Verification {
                authentication_id, ..
            } => {
                // Read, then let go of the connection before talking to the mail server.
                let mut repo = self.repos.reader().await.map_err(|e| storage(&e))?;
                let Some(authentication) = repo
                    .user_email()
                    .lookup_authentication(authentication_id)
                    .await
                    .map_err(|e| storage(&e))?
                else {
                    return Ok(None);
                };
                let user = repo
                    .user()
                    .lookup(authentication.user_id)
                    .await
                    .map_err(|e| storage(&e))?;
                // A code already used or expired is not worth sending any more.
                let (Some(user), true) = (user, authentication.is_pending(now)) else {
                    tracing::info!(authentication = %authentication.id, "code no longer pending: not sent");
                    return Ok(None);
                };
                let code = self.decrypt(&authentication.encrypted_code)?;
                let template = Template::Verification {
                    username: user.username,
                    code,
                };
                Ok(Some((authentication.email, template)))
            }
            EmailJob::Registration {
                registration_id, ..
            } => {
                let mut repo = self.repos.reader().await.map_err(|e| storage(&e))?;
                let registration = repo
                    .user_registration()
                    .lookup(registration_id)
                    .await
                    .map_err(|e| storage(&e))?;
                let Some(registration) = registration.filter(|r| r.is_pending(now)) else {
                    tracing::info!(registration = %registration_id, "registration no longer pending: code not sent");
                    return Ok(None);
                };
                let code = self.decrypt(&registration.encrypted_code)?;
                let template = Template::Registration {
                    username: registration.username,
                    code,
                };
                Ok(Some((registration.email, template)))
            }
            EmailJob::Recovery { sealed_email, .. } => {
                let email = self.decrypt(&sealed_email)?;
                self.recovery(email).await.map_err(|e| storage(&e))
            }
        }
    }

    /// A new recovery link for the active account that has `email`, if one has it. A
    /// retry makes a new link (the one before was most likely not delivered); using any
    /// link uses up the others.
    async fn recovery(&self, email: String) -> Result<Option<(String, Template)>, StorageError> {
        let mut repo = self.repos.begin().await?;
        let Some(address) = repo.user_email().find_by_email(&email).await? else {
            tracing::info!("recovery asked for an address no account has: nothing sent");
            return Ok(None);
        };
        let user = repo.user().lookup(address.user_id).await?;
        let Some(user) = user.filter(|u| u.locked_at.is_none() && u.deactivated_at.is_none())
        else {
            tracing::info!(user = %address.user_id, "recovery asked for an inactive account: nothing sent");
            return Ok(None);
        };
        let ticket = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let clock = self.clock.as_ref();
        let stored = repo
            .user_recovery()
            .add(
                &mut rng,
                clock,
                &user,
                &address.email,
                &ticket,
                clock.now() + RecoveryTicket::LIFETIME,
            )
            .await?;
        repo.save().await?;
        tracing::info!(user = %user.id, ticket = %stored.id, "recovery link made");
        let mut link = self
            .public_base
            .join("account/password/recovery")
            .unwrap_or_else(|_| self.public_base.clone());
        link.query_pairs_mut().append_pair("ticket", &ticket);
        let template = Template::Recovery {
            username: user.username,
            link: link.to_string(),
            minutes: RecoveryTicket::LIFETIME.num_minutes(),
        };
        // To the address as the account has it written.
        Ok(Some((address.email, template)))
    }
}

#[async_trait]
impl JobHandler for EmailJobs {
    fn queue(&self) -> &'static str {
        SEND_EMAIL_QUEUE
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let work = EmailJob::from_payload(&job.payload).map_err(JobError::Fatal)?;
        let locale = work
            .locale()
            .and_then(mas_email::Locale::from_tag)
            .unwrap_or_default();
        let Some((to, template)) = self.message(work).await? else {
            return Ok(());
        };
        let message = template
            .render(&self.service_name, locale)
            .map_err(|e| JobError::Fatal(e.to_string()))?;
        match self.mailer.send(&to, &message).await {
            Ok(()) => {
                tracing::info!(job = %job.id, "message sent");
                Ok(())
            }
            Err(error) if error.is_transient() => Err(JobError::Retry(error.to_string())),
            Err(error) => Err(JobError::Fatal(error.to_string())),
        }
    }
}

fn storage(error: &StorageError) -> JobError {
    JobError::Retry(format!("storage: {error}"))
}
