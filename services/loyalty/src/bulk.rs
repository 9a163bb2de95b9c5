//! Bulk accrual: a campaign credits many members as one job. Starting it records the job and
//! one item per selected membership; a worker then credits pending items in batches of
//! [`BATCH`], each batch a handful of multi-row statements in one transaction that also marks its
//! items done. A crash rolls back the batch in flight and the next worker run resumes; an item's
//! operation has the client id `bulk:<job>:<membership>`, so no member is ever credited twice.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{timestamp, uuid},
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

/// Who a job credits, resolved to membership ids or a rule over the program's memberships.
enum Chosen {
    Memberships(Vec<Uuid>),
    All,
    /// A parties base, resolved to its parties once the request is known to be valid.
    Base(String),
}

impl Loyalty {
    pub async fn start_bulk_accrual(
        &self,
        subject: &str,
        req: StartBulkAccrualRequest,
    ) -> Result<BulkAccrual> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.job_id, "job_id", &mut v);
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        domain::check_points(req.points, "points", &mut v);
        let chosen = parse_selection(req.selection.as_ref(), &mut v);
        v.finish()?;
        // Resolved before the transaction opens: a base is a call to the parties service.
        let selection = match chosen {
            Chosen::Memberships(ids) => store::Selection::Memberships(ids),
            Chosen::Base(base) => store::Selection::Parties(self.base_members(&base).await?),
            Chosen::All => store::Selection::All,
        };

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
        let id = Uuid::now_v7();
        let job = store::NewJob {
            id,
            client_id: &req.job_id,
            program_id,
            operation_type: &req.operation_type,
            points: req.points,
            reference: req.reference.trim(),
            created_by: subject,
        };
        // Another caller's job with this id (the claim above is per caller) is a reuse.
        store::insert_job(&mut tx, &job).await.map_err(|error| {
            match crm_kit::store::unique_violation(&error) {
                Some(_) => Refusal::JobIdReused {
                    job_id: req.job_id.clone(),
                }
                .into(),
                None => ServiceError::from(error),
            }
        })?;
        let total = store::add_job_items(&mut tx, id, program_id, &selection).await?;
        if let Some(Selection::Memberships(list)) = &req.selection
            && total
                != list
                    .membership_ids
                    .iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len() as i64
        {
            let mut v = FieldViolations::new();
            v.add(
                "memberships.membership_ids",
                "lists memberships that are not of this program",
            );
            return Err(v.into());
        }
        store::set_job_total(&mut tx, id, total).await?;
        let job = store::lock_job(&mut tx, &req.job_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("BulkAccrual", &req.job_id))?;
        let answer = job_to_proto(&job);
        events::bulk_accrual_changed(&mut tx, &answer, "started").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
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

    /// Stops a running job. The worker holds the job's row while it credits a batch, so a
    /// cancellation takes effect between batches: no batch is half credited.
    pub async fn cancel_bulk_accrual(
        &self,
        subject: &str,
        req: CancelBulkAccrualRequest,
    ) -> Result<BulkAccrual> {
        let mut v = FieldViolations::new();
        v.check(!req.job_id.trim().is_empty(), "job_id", "is required");
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let job = store::lock_job(&mut tx, &req.job_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("BulkAccrual", &req.job_id))?;
        let answer = match job.status {
            domain::BulkStatus::Running => {
                store::cancel_job(&mut tx, job.id).await?;
                announce(&mut tx, &job.client_id, "cancelled").await?
            }
            domain::BulkStatus::Cancelled => job_to_proto(&job),
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

    /// Credits pending items of running jobs until `shutdown`.
    pub async fn run_bulk_accruals(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_millis(250)).await {
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
    }

    /// Credits one batch of one running job (other replicas take other jobs). False when there
    /// was nothing to do.
    async fn credit_batch(&self) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let job = store::lock_running_job(&mut tx).await?;
        let Some(job) = job else { return Ok(false) };
        // Locked before the memberships, so that the program cannot close under the batch.
        store::share_program(&mut tx, job.program_id).await?;
        let items = store::lock_pending_items(&mut tx, job.id, BATCH).await?;
        if items.is_empty() {
            store::complete_job(&mut tx, job.id).await?;
            announce(&mut tx, &job.client_id, "completed").await?;
            tx.commit().await?;
            return Ok(true);
        }
        let all = items;
        let credited = credit(&mut tx, &job, &all).await?;
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
async fn credit(tx: &mut Tx, job: &store::JobRow, memberships: &[Uuid]) -> Result<Vec<Uuid>> {
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
    let program = store::get_program(tx, job.program_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", job.program_id))?;
    let expires_at = store::expiry_of(&point_type, &program, Utc::now());
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
    let outcomes = posting::apply(tx, &postings).await?;
    Ok(memberships
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(membership, _)| *membership)
        .collect())
}

/// Tells downstream systems where the job now is.
async fn announce(tx: &mut Tx, client_id: &str, change: &str) -> Result<BulkAccrual> {
    let job = store::lock_job(tx, client_id)
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
    }
}

/// The members a bulk accrual asked for, as given (a base is resolved later, outside the transaction).
fn parse_selection(selection: Option<&Selection>, v: &mut FieldViolations) -> Chosen {
    match selection {
        Some(Selection::Memberships(list)) => Chosen::Memberships(
            list.membership_ids
                .iter()
                .enumerate()
                .map(|(i, id)| uuid(id, &format!("memberships.membership_ids[{i}]"), v))
                .collect(),
        ),
        Some(Selection::AllMembers(true)) => Chosen::All,
        Some(Selection::BaseId(base)) => {
            uuid(base, "base_id", v);
            Chosen::Base(base.clone())
        }
        Some(Selection::AllMembers(false)) | None => {
            v.add("selection", "give memberships, all_members or base_id");
            Chosen::All
        }
    }
}
