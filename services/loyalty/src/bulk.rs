//! Bulk accrual: a campaign credits many members as one job. Starting it records the job and
//! one item per selected membership; workers then credit pending items in batches of [`BATCH`],
//! [`WORKERS`] batches at once per replica, each batch a handful of multi-row statements in one
//! transaction that also marks its items done and counts them. A crash rolls back the batch in
//! flight and the next worker run resumes; an item's operation has the client id
//! `bulk:<job>:<membership>`, so no member is ever credited twice.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_time, timestamp, uuid},
    shutdown::Shutdown,
    store::{Page, Tx},
};
use crm_proto::crm::loyalty::v1::{
    BulkAccrual, CancelBulkAccrualRequest, GetBulkAccrualRequest, ListBulkAccrualsRequest,
    ListBulkAccrualsResponse, StartBulkAccrualRequest, start_bulk_accrual_request::Selection,
};
use tracing::Span;
use uuid::Uuid;

use crate::domain;
use crate::{
    Loyalty,
    error::Refusal,
    events,
    lookups::{require_accrue_type, require_active_program},
    posting::{self, AccountKey, Announce, Change, Posting, System},
    store,
};

/// Members credited per transaction.
pub const BATCH: i64 = 500;
/// Batches a replica credits at once: while one batch waits on PostgreSQL, the other computes.
const WORKERS: usize = 2;

/// How far ahead a job may be scheduled, and how far apart its runs may be.
const MAX_REPEAT_DAYS: i32 = 366;

impl Loyalty {
    pub async fn start_bulk_accrual(
        &self,
        subject: &str,
        req: StartBulkAccrualRequest,
    ) -> Result<BulkAccrual> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.job_id, "job_id", &mut v);
        v.check(
            !req.job_id.contains('#'),
            "job_id",
            "must not contain '#' (it numbers runs)",
        );
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        domain::check_points(req.points, "points", &mut v);
        let chosen = parse_selection(req.selection.as_ref(), &mut v);
        let now = Utc::now();
        let start_at = optional_time(req.start_time.as_ref(), "start_time", &mut v)
            .filter(|at| *at > now)
            .unwrap_or(now);
        v.check(
            start_at <= now + chrono::Duration::days(MAX_REPEAT_DAYS.into()),
            "start_time",
            "must be within a year",
        );
        v.check(
            (0..=MAX_REPEAT_DAYS).contains(&req.repeat_every_days),
            "repeat_every_days",
            "must be 0 (runs once) to 366",
        );
        v.check(req.runs >= 0, "runs", "must be 0 (until cancelled) or more");
        v.check(
            req.runs <= 1 || req.repeat_every_days > 0,
            "runs",
            "more than one run needs repeat_every_days",
        );
        v.finish()?;

        // A replay (same caller, same job id, same request) answers as the first call did; the
        // same job id with any other request is refused, whoever sends it.
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        if store::lock_job(&mut tx, &req.job_id).await?.is_some() {
            let job_id = req.job_id.clone();
            return Err(Refusal::JobIdReused { job_id }.into());
        }
        let program = store::share_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        require_active_program(&program)?;
        require_accrue_type(&mut tx, program_id, &req.operation_type, "operation_type").await?;
        if let store::Chosen::Memberships(ids) = &chosen {
            let distinct: std::collections::HashSet<&Uuid> = ids.iter().collect();
            if store::count_program_memberships(&mut tx, program_id, ids).await?
                != distinct.len() as i64
            {
                let mut v = FieldViolations::new();
                v.add(
                    "memberships.membership_ids",
                    "lists memberships that are not of this program",
                );
                return Err(v.into());
            }
        }
        let job = store::NewJob {
            id: Uuid::now_v7(),
            client_id: &req.job_id,
            program_id,
            operation_type: &req.operation_type,
            points: req.points,
            reference: req.reference.trim(),
            created_by: subject,
            status: domain::BulkStatus::Scheduled,
            start_at,
            repeat_every_days: req.repeat_every_days,
            runs: req.runs,
            run: 1,
            series: &req.job_id,
            selection: &chosen,
        };
        // Another caller's job with this id (the claim above is per caller) is a reuse.
        if !store::insert_job(&mut tx, &job).await? {
            let job_id = req.job_id.clone();
            return Err(Refusal::JobIdReused { job_id }.into());
        }
        // A job to start now is started by a worker too, within a moment: listing a million
        // members takes longer than a call may.
        let answer = announce(&mut tx, &req.job_id, "scheduled").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    /// The memberships a job's selection stands for now.
    async fn resolve(&self, chosen: &store::Chosen) -> Result<store::Selection> {
        Ok(match chosen {
            store::Chosen::Memberships(ids) => store::Selection::Memberships(ids.clone()),
            store::Chosen::Base(base) => store::Selection::Parties(self.base_members(base).await?),
            store::Chosen::All => store::Selection::All,
        })
    }

    /// Starts the earliest scheduled run whose time has come; false when there is none.
    async fn start_due_run(&self) -> Result<bool> {
        let Some(due) = store::due_job(&mut *self.pool.acquire().await?).await? else {
            return Ok(false);
        };
        let chosen = due
            .selection
            .as_ref()
            .map_or(store::Chosen::All, |s| s.0.clone());
        let selection = match self.resolve(&chosen).await {
            Ok(selection) => selection,
            // A base deleted since the job was scheduled: the run credits no one.
            Err(ServiceError::NotFound(..) | ServiceError::Invalid(_)) => {
                store::Selection::Memberships(Vec::new())
            }
            Err(error) => return Err(error),
        };
        let mut tx = self.pool.begin().await?;
        // The series' first run first: a cancellation takes it too, so it cannot miss the run
        // this one schedules.
        store::lock_job(&mut tx, &due.series).await?;
        let job = store::lock_job(&mut tx, &due.client_id).await?;
        if let Some(job) = job.filter(|j| j.status == domain::BulkStatus::Scheduled) {
            let open = store::share_program(&mut tx, job.program_id)
                .await?
                .is_some_and(|p| p.status == domain::ProgramStatus::Active);
            if open {
                start_run(&mut tx, &job, &selection).await?;
                announce(&mut tx, &job.client_id, "started").await?;
            } else {
                // A program that closed ends its series: nobody could be credited any more.
                store::cancel_scheduled_runs(&mut tx, &job.series).await?;
                announce(&mut tx, &job.client_id, "cancelled").await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_bulk_accruals(
        &self,
        req: ListBulkAccrualsRequest,
    ) -> Result<ListBulkAccrualsResponse> {
        let mut v = FieldViolations::new();
        let program = uuid(&req.program_id, "program_id", &mut v);
        let status = domain::BulkStatus::optional(req.status, "status", &mut v);
        let filter = (program, req.status);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_program(&mut conn, program)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program))?;
        let mut rows =
            store::list_jobs(&mut conn, program, status, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListBulkAccrualsResponse {
            bulk_accruals: rows.iter().map(job_to_proto).collect(),
            next_page_token,
        })
    }

    /// Stops a running job. The workers hold the job's row while they credit a batch, so a
    /// cancellation waits for the batches in flight and takes effect between batches: no batch is
    /// half credited.
    pub async fn cancel_bulk_accrual(
        &self,
        subject: &str,
        req: CancelBulkAccrualRequest,
    ) -> Result<BulkAccrual> {
        let mut v = FieldViolations::new();
        v.check(!req.job_id.trim().is_empty(), "job_id", "is required");
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let series = store::get_job(&mut tx, &req.job_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("BulkAccrual", &req.job_id))?
            .series;
        // The series' first run first, as a run starting takes it: the runs it schedules are seen.
        store::lock_job(&mut tx, &series).await?;
        let job = store::lock_job(&mut tx, &req.job_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("BulkAccrual", &req.job_id))?;
        // Stopping any run of a series stops the runs to come.
        let stopped = store::cancel_scheduled_runs(&mut tx, &job.series).await?;
        for run in stopped.iter().filter(|run| **run != job.client_id) {
            announce(&mut tx, run, "cancelled").await?;
        }
        let answer = match job.status {
            domain::BulkStatus::Running => {
                store::cancel_job(&mut tx, job.id).await?;
                announce(&mut tx, &job.client_id, "cancelled").await?
            }
            domain::BulkStatus::Scheduled => announce(&mut tx, &job.client_id, "cancelled").await?,
            domain::BulkStatus::Cancelled => job_to_proto(&job),
            domain::BulkStatus::Completed if !stopped.is_empty() => job_to_proto(&job),
            domain::BulkStatus::Completed => {
                let job_id = job.client_id;
                return Err(Refusal::BulkAccrualCompleted { job_id }.into());
            }
        };
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn get_bulk_accrual(&self, req: GetBulkAccrualRequest) -> Result<BulkAccrual> {
        let job = store::get_job(&mut *self.pool.acquire().await?, &req.job_id).await?;
        job.map(|job| job_to_proto(&job))
            .ok_or_else(|| ServiceError::not_found("BulkAccrual", &req.job_id))
    }

    /// Starts scheduled runs when they are due and credits pending items of running jobs, with
    /// [`WORKERS`] batches at once, until `shutdown`.
    pub async fn run_bulk_accruals(self, shutdown: Shutdown) {
        for _ in 1..WORKERS {
            let (worker, shutdown) = (self.clone(), shutdown.clone());
            tokio::spawn(async move {
                while shutdown.sleep(Duration::from_millis(250)).await {
                    worker.credit_while_pending(&shutdown).await;
                }
            });
        }
        while shutdown.sleep(Duration::from_millis(250)).await {
            if let Err(error) = self.start_due_run().await {
                tracing::warn!(%error, "starting a scheduled bulk accrual failed; it will be retried");
            }
            self.credit_while_pending(&shutdown).await;
        }
    }

    async fn credit_while_pending(&self, shutdown: &Shutdown) {
        loop {
            match self.credit_batch().await {
                Ok(true) if !shutdown.is_triggered() => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "a bulk accrual batch failed; it will be retried");
                    break;
                }
            }
        }
    }

    /// Credits one batch of the oldest running job (every worker of every replica takes a batch
    /// of it). False when there was nothing to do.
    async fn credit_batch(&self) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let job = store::lock_running_job(&mut tx).await?;
        let Some(job) = job else { return Ok(false) };
        // Locked before the memberships, so that the program cannot close under the batch.
        let program = store::share_program(&mut tx, job.program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", job.program_id))?;
        let items = store::lock_pending_items(&mut tx, job.id, BATCH).await?;
        if items.is_empty() {
            // The last items may be another worker's batch, which can still fail and leave them
            // pending: the job completes once none is.
            if store::any_pending(&mut tx, job.id).await? {
                return Ok(false);
            }
            if store::complete_job(&mut tx, job.id).await? {
                announce(&mut tx, &job.client_id, "completed").await?;
            }
            tx.commit().await?;
            return Ok(true);
        }
        let all = items;
        let credited = credit(&mut tx, &job, &program, &all).await?;
        let failed = (all.len() - credited.len()) as i64;
        store::record_items(
            &mut tx,
            job.id,
            &all,
            &credited,
            credited.len() as i64,
            failed,
        )
        .await?;
        announce(&mut tx, &job.client_id, "progressed").await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Credits `job.points` to each membership's own account through the posting engine, in one
/// batch; returns the memberships credited (the others are not active, or their program is not).
async fn credit(
    tx: &mut Tx,
    job: &store::JobRow,
    program: &store::ProgramRow,
    memberships: &[Uuid],
) -> Result<Vec<Uuid>> {
    let operation_type = store::operation_types(tx, job.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == job.operation_type)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("the job's operation type vanished"))
        })?;
    let point_type = store::point_types(tx, job.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == operation_type.default_point_type)
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the job's point type vanished")))?;
    let expires_at = store::expiry_of(&point_type, program, Utc::now());
    let postings: Vec<Posting> = memberships
        .iter()
        .map(|&membership| Posting {
            account: AccountKey {
                program: job.program_id,
                membership,
                person: None,
                point_type: point_type.code.clone(),
            },
            change: Change::Credit {
                points: job.points,
                expires_at,
            },
            operation: Some(posting::Operation {
                client_id: format!("bulk:{}:{membership}", job.client_id),
                operation_type: job.operation_type.clone(),
                reference: job.reference.clone(),
                subject: job.created_by.clone(),
                reverses: None,
                system: System::Issuance,
                announce: Announce::Accrued,
                qualifying: point_type.qualifying,
            }),
            requires_active: true,
            span: Span::current(),
        })
        .collect();
    let locked = posting::lock_memberships(tx, memberships.iter().copied()).await?;
    let outcomes = posting::apply_locked(tx, &locked, &postings).await?;
    Ok(memberships
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(membership, _)| *membership)
        .collect())
}

/// Starts a run: its members become its items, and a repeating series gets its next run.
async fn start_run(tx: &mut Tx, job: &store::JobRow, selection: &store::Selection) -> Result<()> {
    let total = store::add_job_items(tx, job.id, job.program_id, selection).await?;
    store::set_job_total(tx, job.id, total).await?;
    store::set_job_running(tx, job.id).await?;
    let more = job.runs == 0 || job.run < job.runs;
    if job.repeat_every_days > 0 && more {
        let chosen = job
            .selection
            .as_ref()
            .map_or(store::Chosen::All, |s| s.0.clone());
        let client_id = format!("{}#{}", job.series, job.run + 1);
        let next = store::NewJob {
            id: Uuid::now_v7(),
            client_id: &client_id,
            program_id: job.program_id,
            operation_type: &job.operation_type,
            points: job.points,
            reference: &job.reference,
            created_by: &job.created_by,
            status: domain::BulkStatus::Scheduled,
            // After downtime, the missed periods are skipped rather than run back to back.
            start_at: next_start(job.start_at, job.repeat_every_days, Utc::now()),
            repeat_every_days: job.repeat_every_days,
            runs: job.runs,
            run: job.run + 1,
            series: &job.series,
            selection: &chosen,
        };
        if store::insert_job(tx, &next).await? {
            announce(tx, &client_id, "scheduled").await?;
        }
    }
    Ok(())
}

/// The first start `every_days` apart from `start` that is not in the past.
fn next_start(
    start: chrono::DateTime<Utc>,
    every_days: i32,
    now: chrono::DateTime<Utc>,
) -> chrono::DateTime<Utc> {
    let period = chrono::Duration::days(every_days.into());
    let mut next = start + period;
    if next < now {
        let missed = (now - next).num_seconds() / period.num_seconds().max(1);
        next += period * (missed as i32 + 1);
    }
    next
}

/// Tells downstream systems where the job now is. Two batches of a job committing at once each
/// count the other's only if it committed first: the counts of "progressed" events may arrive
/// out of order; those of the last event are the job's.
async fn announce(tx: &mut Tx, client_id: &str, change: &str) -> Result<BulkAccrual> {
    let job = store::get_job(tx, client_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("BulkAccrual", client_id))?;
    let job = job_to_proto(&job);
    events::bulk_accrual_changed(tx, &job, change).await?;
    Ok(job)
}

fn job_to_proto(job: &store::JobRow) -> BulkAccrual {
    BulkAccrual {
        id: job.id.to_string(),
        job_id: job.client_id.clone(),
        program_id: job.program_id.to_string(),
        operation_type: job.operation_type.clone(),
        points: job.points,
        status: job.status.to_proto() as i32,
        total: job.total,
        done: job.done,
        failed: job.failed,
        create_time: Some(timestamp(job.created_at)),
        complete_time: job.completed_at.map(timestamp),
        start_time: Some(timestamp(job.start_at)),
        repeat_every_days: job.repeat_every_days,
        runs: job.runs,
        run: job.run,
        series_id: job.series.clone(),
    }
}

/// The members a bulk accrual asked for, as given (a base is resolved later, outside the transaction).
fn parse_selection(selection: Option<&Selection>, v: &mut FieldViolations) -> store::Chosen {
    match selection {
        Some(Selection::Memberships(list)) => store::Chosen::Memberships(
            list.membership_ids
                .iter()
                .enumerate()
                .map(|(i, id)| uuid(id, &format!("memberships.membership_ids[{i}]"), v))
                .collect(),
        ),
        Some(Selection::AllMembers(true)) => store::Chosen::All,
        Some(Selection::BaseId(base)) => {
            uuid(base, "base_id", v);
            store::Chosen::Base(base.clone())
        }
        Some(Selection::AllMembers(false)) | None => {
            v.add("selection", "give memberships, all_members or base_id");
            store::Chosen::All
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_series_resumes_at_its_next_period_not_its_missed_ones() {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap();
        let on_time = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 1).unwrap();
        assert_eq!(
            next_start(start, 1, on_time),
            start + chrono::Duration::days(1)
        );
        let days_later = Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 0).unwrap();
        assert_eq!(
            next_start(start, 1, days_later),
            Utc.with_ymd_and_hms(2026, 11, 6, 9, 0, 0).unwrap()
        );
    }
}
