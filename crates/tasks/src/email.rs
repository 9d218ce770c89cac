//! Sends the service's mail from the job queue: a mail server that is down delays a
//! message, and the worker's retries deliver it once the server is back.

use std::sync::Arc;

use async_trait::async_trait;
use mas_data_model::Job;
use mas_email::{Mailer, Template};
use mas_storage::jobs::{EmailJob, SEND_EMAIL_QUEUE};
use mas_storage::{Clock, Encrypter, RepositoryFactory};

use crate::{JobError, JobHandler};

/// Runs the `send-email` queue.
pub struct EmailJobs {
    repos: Arc<dyn RepositoryFactory>,
    clock: Arc<dyn Clock>,
    encrypter: Encrypter,
    mailer: Arc<Mailer>,
    service_name: String,
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
    /// the name of `service_name`.
    #[must_use]
    pub fn new(
        repos: Arc<dyn RepositoryFactory>,
        clock: Arc<dyn Clock>,
        encrypter: Encrypter,
        mailer: Arc<Mailer>,
        service_name: String,
    ) -> Self {
        Self {
            repos,
            clock,
            encrypter,
            mailer,
            service_name,
        }
    }
}

#[async_trait]
impl JobHandler for EmailJobs {
    fn queue(&self) -> &'static str {
        SEND_EMAIL_QUEUE
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let work = EmailJob::from_payload(&job.payload).map_err(JobError::Fatal)?;
        // Read, then let go of the connection before talking to the mail server.
        let (authentication, user) = {
            let mut repo = self.repos.reader().await.map_err(|e| storage(&e))?;
            let Some(authentication) = repo
                .user_email()
                .lookup_authentication(work.authentication_id)
                .await
                .map_err(|e| storage(&e))?
            else {
                return Ok(());
            };
            let user = repo
                .user()
                .lookup(authentication.user_id)
                .await
                .map_err(|e| storage(&e))?;
            (authentication, user)
        };
        // A code already used or expired is not worth sending any more.
        let (Some(user), true) = (user, authentication.is_pending(self.clock.now())) else {
            tracing::info!(authentication = %authentication.id, "code no longer pending: not sent");
            return Ok(());
        };
        let code = self
            .encrypter
            .decrypt(&authentication.encrypted_code)
            .ok()
            .and_then(|code| String::from_utf8(code).ok())
            .ok_or_else(|| JobError::Fatal("the code does not decrypt".to_owned()))?;
        let message = Template::Verification {
            username: user.username,
            code,
        }
        .render(&self.service_name)
        .map_err(|e| JobError::Fatal(e.to_string()))?;
        match self.mailer.send(&authentication.email, &message).await {
            Ok(()) => {
                tracing::info!(authentication = %authentication.id, "verification code sent");
                Ok(())
            }
            Err(error) if error.is_transient() => Err(JobError::Retry(error.to_string())),
            Err(error) => Err(JobError::Fatal(error.to_string())),
        }
    }
}

fn storage(error: &mas_storage::StorageError) -> JobError {
    JobError::Retry(format!("storage: {error}"))
}
