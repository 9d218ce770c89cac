//! The job queue: `FOR UPDATE SKIP LOCKED` claiming and `NOTIFY` wake-ups on PostgreSQL;
//! on SQLite the write transaction already serialises claimers and workers poll.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{Job, JobState};
use mas_storage::repository::{JobRepository, NewJob};
use mas_storage::{Clock, Rng, StorageError};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
};
use ulid::Ulid;

use super::Repo;
use crate::conv::{gone, json, new_id, now, to_json, ulid, unsigned};
use crate::entities::queue_jobs as jobs;

/// The PostgreSQL notification channel workers listen on.
pub(crate) const CHANNEL: &str = "mas_jobs";

fn job(m: jobs::Model) -> Result<Job, StorageError> {
    const T: &str = "queue_jobs";
    Ok(Job {
        id: ulid(T, &m.id)?,
        queue: m.queue,
        payload: json(T, &m.payload)?,
        state: JobState::parse(&m.state).ok_or_else(|| StorageError::InvalidData {
            table: T,
            reason: format!("unknown state {}", m.state),
        })?,
        attempts: unsigned(T, m.attempts)?,
        scheduled_at: m.scheduled_at,
        created_at: m.created_at,
        last_error: m.last_error,
    })
}

#[async_trait]
impl JobRepository for Repo<'_> {
    #[tracing::instrument(name = "db.job.schedule", skip_all, fields(queue = %new.queue))]
    async fn schedule(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        new: NewJob,
    ) -> Result<Job, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let scheduled_at = new.run_at.unwrap_or(created_at);
        jobs::Entity::insert(jobs::ActiveModel {
            id: Set(id.to_string()),
            queue: Set(new.queue.clone()),
            payload: Set(to_json(&new.payload)),
            state: Set(JobState::Available.as_str().to_owned()),
            attempts: Set(0),
            scheduled_at: Set(scheduled_at),
            lease_expires_at: Set(None),
            created_at: Set(created_at),
            completed_at: Set(None),
            last_error: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        if self.conn.get_database_backend() == DbBackend::Postgres {
            // Delivered when the unit of work commits, never before.
            self.conn
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_notify($1, $2)",
                    [CHANNEL.into(), new.queue.clone().into()],
                ))
                .await
                .map_err(|e| self.db_err(e))?;
        }
        Ok(Job {
            id,
            queue: new.queue,
            payload: new.payload,
            state: JobState::Available,
            attempts: 0,
            scheduled_at,
            created_at,
            last_error: None,
        })
    }

    #[tracing::instrument(name = "db.job.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Job>, StorageError> {
        jobs::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(job)
            .transpose()
    }

    // At `debug`: the worker asks every second, which would make a trace a second.
    #[tracing::instrument(name = "db.job.claim", level = "debug", skip_all)]
    async fn claim(
        &mut self,
        clock: &dyn Clock,
        queues: &[&str],
        count: u32,
        lease: Duration,
    ) -> Result<Vec<Job>, StorageError> {
        let at = now(clock);
        let due = Condition::any()
            .add(
                Condition::all()
                    .add(jobs::Column::State.eq(JobState::Available.as_str()))
                    .add(jobs::Column::ScheduledAt.lte(at)),
            )
            .add(
                Condition::all()
                    .add(jobs::Column::State.eq(JobState::Running.as_str()))
                    .add(jobs::Column::LeaseExpiresAt.lt(at)),
            );
        let mut query = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(jobs::Column::Queue.is_in(queues.iter().copied()))
            .filter(due)
            .order_by_asc(jobs::Column::ScheduledAt)
            .order_by_asc(jobs::Column::Id)
            .limit(u64::from(count));
        if self.conn.get_database_backend() == DbBackend::Postgres {
            // Concurrent workers skip each other's rows instead of waiting on them.
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let ids: Vec<String> = query
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        jobs::Entity::update_many()
            .col_expr(jobs::Column::State, Expr::value(JobState::Running.as_str()))
            .col_expr(
                jobs::Column::Attempts,
                Expr::col(jobs::Column::Attempts).add(1),
            )
            .col_expr(jobs::Column::LeaseExpiresAt, Expr::value(at + lease))
            .filter(jobs::Column::Id.is_in(ids.clone()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        jobs::Entity::find()
            .filter(jobs::Column::Id.is_in(ids))
            .order_by_asc(jobs::Column::ScheduledAt)
            .order_by_asc(jobs::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(job)
            .collect()
    }

    #[tracing::instrument(name = "db.job.complete", skip_all)]
    async fn complete(&mut self, clock: &dyn Clock, mut job: Job) -> Result<Job, StorageError> {
        let at = now(clock);
        let result = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::State,
                Expr::value(JobState::Completed.as_str()),
            )
            .col_expr(jobs::Column::CompletedAt, Expr::value(at))
            .col_expr(
                jobs::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(jobs::Column::Id.eq(job.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("queue_jobs"));
        }
        job.state = JobState::Completed;
        Ok(job)
    }

    #[tracing::instrument(name = "db.job.count_waiting", level = "debug", skip_all)]
    async fn count_waiting(&mut self) -> Result<u64, StorageError> {
        jobs::Entity::find()
            .filter(jobs::Column::State.eq(JobState::Available.as_str()))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.job.fail", skip_all)]
    async fn fail(
        &mut self,
        clock: &dyn Clock,
        mut job: Job,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<Job, StorageError> {
        let (state, scheduled_at) = match retry_at {
            Some(at) => (JobState::Available, at),
            None => (JobState::Failed, job.scheduled_at),
        };
        let completed_at = retry_at.is_none().then(|| now(clock));
        let result = jobs::Entity::update_many()
            .col_expr(jobs::Column::State, Expr::value(state.as_str()))
            .col_expr(jobs::Column::ScheduledAt, Expr::value(scheduled_at))
            .col_expr(jobs::Column::LastError, Expr::value(error))
            .col_expr(jobs::Column::CompletedAt, Expr::value(completed_at))
            .col_expr(
                jobs::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(jobs::Column::Id.eq(job.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("queue_jobs"));
        }
        job.state = state;
        job.scheduled_at = scheduled_at;
        job.last_error = Some(error.to_owned());
        Ok(job)
    }
}
