//! Bulk accrual: a campaign credits many members as one job. Starting it records the job and
//! one item per selected membership; a worker then credits pending items in batches of
//! [`BATCH`], each batch a handful of multi-row statements in one transaction that also marks its
//! items done. A crash rolls back the batch in flight and the next worker run resumes; an item's
//! operation has the client id `bulk:<job>:<membership>`, so no member is ever credited twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_uuid, timestamp, uuid},
    shutdown::Shutdown,
    store::Tx,
};
use crm_proto::crm::{
    loyalty::v1::{
        AccountRef, BulkAccrual, BulkAccrualStatus, GetBulkAccrualRequest, PointsAccrued,
        StartBulkAccrualRequest, start_bulk_accrual_request::Selection,
    },
    parties::v1::ListPartiesRequest,
};
use uuid::Uuid;

use crate::domain;
use crate::{Loyalty, domain::BulkStatus, error::Refusal, events, store, tiers};

/// Members credited per transaction.
pub const BATCH: i64 = 500;

#[derive(Debug, Clone, sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    client_id: String,
    program_id: Uuid,
    operation_type: String,
    points: i64,
    reference: String,
    status: BulkStatus,
    total: i64,
    done: i64,
    failed: i64,
    created_by: String,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str =
    "id, client_id, program_id, operation_type, points, reference, status, total, done,
    failed, created_by, created_at, completed_at";

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
        v.check(
            !req.job_id.trim().is_empty(),
            "job_id",
            "is required: the client's idempotency id",
        );
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(
            req.points > 0,
            "points",
            "must be a positive whole number of points",
        );
        let chosen = match &req.selection {
            Some(Selection::Memberships(list)) => Chosen::Memberships(
                list.membership_ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| uuid(id, &format!("memberships.membership_ids[{i}]"), &mut v))
                    .collect(),
            ),
            Some(Selection::AllMembers(true)) => Chosen::All,
            Some(Selection::BaseId(base)) => {
                optional_uuid(base, "base_id", &mut v);
                Chosen::Base(base.clone())
            }
            Some(Selection::AllMembers(false)) | None => {
                v.add("selection", "give memberships, all_members or base_id");
                Chosen::All
            }
        };
        v.finish()?;
        // Resolved before the transaction opens: a base is a call to the parties service.
        let (filter, ids): (&str, Vec<Uuid>) = match chosen {
            Chosen::Memberships(ids) => ("AND id = ANY($3)", ids),
            Chosen::Base(base) => ("AND party_id = ANY($3)", self.base_members(&base).await?),
            Chosen::All => ("AND $3::uuid[] IS NOT NULL", Vec::new()),
        };

        let mut tx = self.pool.begin().await?;
        if let Some(job) = lock_job(&mut tx, &req.job_id).await? {
            let same = job.program_id == program_id
                && job.operation_type == req.operation_type
                && job.points == req.points;
            if !same {
                let job_id = req.job_id.clone();
                return Err(Refusal::JobIdReused { job_id }.into());
            }
            return Ok(job_to_proto(&job));
        }
        let program = store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("Program", program_id.to_string()))?;
        if program.status != domain::ProgramStatus::Active {
            let (id, status) = (program_id, program.status);
            return Err(Refusal::ProgramNotActive { id, status }.into());
        }
        let accrues = store::operation_types(&mut tx, program_id)
            .await?
            .iter()
            .any(|t| t.code == req.operation_type && t.direction == domain::Direction::Accrue);
        if !accrues {
            let mut v = FieldViolations::new();
            v.add(
                "operation_type",
                "must be an ACCRUE operation type of the program",
            );
            return Err(v.into());
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO bulk_accruals (id, client_id, program_id, operation_type, points, reference, total, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(id)
        .bind(&req.job_id)
        .bind(program_id)
        .bind(&req.operation_type)
        .bind(req.points)
        .bind(req.reference.trim())
        .bind(subject)
        .execute(&mut *tx)
        .await?;
        let total = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO bulk_accrual_items (job_id, membership_id)
             SELECT $1, id FROM memberships WHERE program_id = $2 {filter}
             ON CONFLICT DO NOTHING"
        )))
        .bind(id)
        .bind(program_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
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
        sqlx::query("UPDATE bulk_accruals SET total = $2 WHERE id = $1")
            .bind(id)
            .bind(total)
            .execute(&mut *tx)
            .await?;
        let job = lock_job(&mut tx, &req.job_id)
            .await?
            .expect("the job was just inserted");
        tx.commit().await?;
        Ok(job_to_proto(&job))
    }

    pub async fn get_bulk_accrual(&self, req: GetBulkAccrualRequest) -> Result<BulkAccrual> {
        let job: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE client_id = $1"
        )))
        .bind(&req.job_id)
        .fetch_optional(&self.pool)
        .await?;
        job.map(|job| job_to_proto(&job))
            .ok_or_else(|| ServiceError::NotFound("BulkAccrual", req.job_id))
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
        let job: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE status = 'running'
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = job else { return Ok(false) };
        let items: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT i.membership_id, m.status FROM bulk_accrual_items i JOIN memberships m ON m.id = i.membership_id
             WHERE i.job_id = $1 AND i.status = 'pending' ORDER BY i.membership_id LIMIT $2 FOR UPDATE OF i",
        )
        .bind(job.id)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if items.is_empty() {
            sqlx::query(
                "UPDATE bulk_accruals SET status = 'completed', completed_at = now() WHERE id = $1",
            )
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(true);
        }
        let active: Vec<Uuid> = items
            .iter()
            .filter(|(_, status)| status == "active")
            .map(|(id, _)| *id)
            .collect();
        let all: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
        let credited = credit(&mut tx, &job, &active).await?;
        sqlx::query(
            "UPDATE bulk_accrual_items SET status = CASE WHEN membership_id = ANY($3) THEN 'done' ELSE 'failed' END
             WHERE job_id = $1 AND membership_id = ANY($2)",
        )
        .bind(job.id)
        .bind(&all)
        .bind(&active)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE bulk_accruals SET done = done + $2, failed = failed + $3 WHERE id = $1",
        )
        .bind(job.id)
        .bind(credited)
        .bind((all.len() - active.len()) as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Party ids of a base, page by page from the parties service.
    async fn base_members(&self, base: &str) -> Result<Vec<Uuid>> {
        let mut parties = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListPartiesRequest {
                base_id: base.to_owned(),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .parties
                .clone()
                .list_parties(request)
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                        let mut v = FieldViolations::new();
                        v.add("base_id", status.message().to_owned());
                        v.into()
                    }
                    _ => ServiceError::Unavailable(
                        "the parties service is unavailable; retry later".into(),
                    ),
                })?;
            let page = page.into_inner();
            parties.extend(
                page.parties
                    .iter()
                    .filter_map(|p| Uuid::parse_str(&p.id).ok()),
            );
            if page.next_page_token.is_empty() {
                return Ok(parties);
            }
            page_token = page.next_page_token;
        }
    }
}

/// Credits `job.points` to each membership's own account in a few multi-row statements: accounts
/// created where missing, balances, operations, both sides of the entries, and the events.
async fn credit(tx: &mut Tx, job: &JobRow, memberships: &[Uuid]) -> Result<i64> {
    if memberships.is_empty() {
        return Ok(0);
    }
    let operation_type = store::operation_types(tx, job.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == job.operation_type)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("the job's operation type vanished"))
        })?;
    let point_type = operation_type.default_point_type;
    let new_ids: Vec<Uuid> = memberships.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO accounts (id, program_id, point_type, kind, membership_id)
         SELECT id, $1, $2, 'member', membership FROM unnest($3::uuid[], $4::uuid[]) AS a(id, membership)
         ON CONFLICT DO NOTHING",
    )
    .bind(job.program_id)
    .bind(&point_type)
    .bind(&new_ids)
    .bind(memberships)
    .execute(&mut **tx)
    .await?;
    let credited: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "UPDATE accounts SET balance = balance + $3, updated_at = now()
         WHERE kind = 'member' AND membership_id = ANY($1) AND person_id IS NULL AND point_type = $2
         RETURNING id, membership_id, balance",
    )
    .bind(memberships)
    .bind(&point_type)
    .bind(job.points)
    .fetch_all(&mut **tx)
    .await?;
    let operation_ids: Vec<Uuid> = credited.iter().map(|_| Uuid::now_v7()).collect();
    let client_ids: Vec<String> = credited
        .iter()
        .map(|(_, m, _)| format!("bulk:{}:{m}", job.client_id))
        .collect();
    let accounts: Vec<Uuid> = credited.iter().map(|(a, _, _)| *a).collect();
    let balances: Vec<i64> = credited.iter().map(|(_, _, b)| *b).collect();
    sqlx::query(
        "INSERT INTO operations (id, client_id, account_id, operation_type, direction, points, balance_after,
             reference, created_by)
         SELECT id, client_id, account_id, $5, 'accrue', $6, balance, $7, $8
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[]) AS o(id, client_id, account_id, balance)",
    )
    .bind(&operation_ids)
    .bind(&client_ids)
    .bind(&accounts)
    .bind(&balances)
    .bind(&job.operation_type)
    .bind(job.points)
    .bind(&job.reference)
    .bind(&job.created_by)
    .execute(&mut **tx)
    .await?;
    let issuance = store::system_account(tx, job.program_id, &point_type, "issuance").await?;
    sqlx::query(
        "INSERT INTO ledger_entries (operation_id, account_id, amount, balance_after)
         SELECT id, account_id, $4, balance FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS e(id, account_id, balance)
         UNION ALL
         SELECT id, $5, -$4, NULL FROM unnest($1::uuid[]) AS s(id)",
    )
    .bind(&operation_ids)
    .bind(&accounts)
    .bind(&balances)
    .bind(job.points)
    .bind(issuance)
    .execute(&mut **tx)
    .await?;
    let events: Vec<(String, PointsAccrued)> = credited
        .iter()
        .zip(&operation_ids)
        .map(|((_, membership, balance), operation)| {
            let event = PointsAccrued {
                operation_id: operation.to_string(),
                account: Some(AccountRef {
                    membership_id: membership.to_string(),
                    person_id: String::new(),
                    point_type: point_type.clone(),
                }),
                operation_type: job.operation_type.clone(),
                points: job.points,
                balance_after: *balance,
            };
            (membership.to_string(), event)
        })
        .collect();
    events::POINTS.enqueue_many(tx, &events).await?;
    let point_type_row = store::point_types(tx, job.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == point_type)
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the job's point type vanished")))?;
    let program = store::get_program(tx, job.program_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", job.program_id))?;
    sqlx::query(
        "INSERT INTO point_lots (account_id, operation_id, amount, remaining, expires_at)
         SELECT account_id, id, $3, $3, $4 FROM unnest($1::uuid[], $2::uuid[]) AS l(account_id, id)",
    )
    .bind(&accounts)
    .bind(&operation_ids)
    .bind(job.points)
    .bind(store::expiry_of(&point_type_row, &program, Utc::now()))
    .execute(&mut **tx)
    .await?;
    if point_type_row.qualifying && !store::tiers(tx, job.program_id).await?.is_empty() {
        for (_, membership, _) in &credited {
            tiers::evaluate(tx, *membership).await?;
        }
    }
    Ok(credited.len() as i64)
}

async fn lock_job(tx: &mut Tx, client_id: &str) -> Result<Option<JobRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE client_id = $1 FOR UPDATE"
    )))
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await?)
}

fn job_to_proto(job: &JobRow) -> BulkAccrual {
    BulkAccrual {
        id: job.id.to_string(),
        job_id: job.client_id.clone(),
        program_id: job.program_id.to_string(),
        operation_type: job.operation_type.clone(),
        points: job.points,
        status: if job.status == domain::BulkStatus::Completed {
            BulkAccrualStatus::Completed
        } else {
            BulkAccrualStatus::Running
        } as i32,
        total: job.total,
        done: job.done,
        failed: job.failed,
        create_time: Some(timestamp(job.created_at)),
        complete_time: job.completed_at.map(timestamp),
    }
}
