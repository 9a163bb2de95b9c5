//! Data-subject requests, the services each was sent to with their answers, and the slices of
//! large exports while they arrive.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Channel, RequestStatus, RequestType, Subject, SubjectKind, Verification};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: RequestType,
    pub subject_kind: SubjectKind,
    pub subject_id: Uuid,
    pub status: RequestStatus,
    pub verification: Verification,
    pub verification_method: String,
    pub details: String,
    pub purposes: Vec<String>,
    pub channel: Channel,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub extension_days: i32,
    pub extension_reason: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub resolution: String,
    pub opened_by: String,
    pub overdue: bool,
}

impl RequestRow {
    pub fn subject(&self) -> Subject {
        Subject {
            kind: self.subject_kind,
            id: self.subject_id,
        }
    }
}

/// One service's part in a request sent out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AnswerRow {
    pub request_id: Uuid,
    pub service: String,
    pub attempts: i32,
    pub answered_at: Option<DateTime<Utc>>,
    pub subject_found: bool,
    pub erased: Vec<String>,
    pub retained: serde_json::Value,
}

/// A request as it is received.
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub kind: RequestType,
    pub subject: Subject,
    pub details: &'a str,
    pub purposes: &'a [String],
    pub channel: Channel,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub opened_by: &'a str,
}

pub async fn insert(tx: &mut Tx, r: &NewRequest<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO subject_requests (id, type, subject_kind, subject_id, details, purposes,
             channel, received_at, due_at, opened_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(r.id)
    .bind(r.kind)
    .bind(r.subject.kind)
    .bind(r.subject.id)
    .bind(r.details)
    .bind(r.purposes)
    .bind(r.channel)
    .bind(r.received_at)
    .bind(r.due_at)
    .bind(r.opened_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SELECT: &str = "SELECT r.id, r.type, r.subject_kind, r.subject_id, r.status,
        r.verification, r.verification_method, r.details, r.purposes, r.channel, r.received_at,
        r.due_at, r.extension_days, r.extension_reason, r.completed_at, r.resolution, r.opened_by,
        (r.status IN ('received', 'verified', 'in_progress') AND r.due_at < now()) AS overdue
    FROM subject_requests r";

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// What a list may be narrowed to.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Filter {
    pub status: Option<RequestStatus>,
    pub overdue_only: bool,
    pub subject: Option<Uuid>,
    pub kind: Option<RequestType>,
    /// Received at or after.
    pub from: Option<DateTime<Utc>>,
    /// Received before.
    pub to: Option<DateTime<Utc>>,
}

/// Requests newest first, after the keyset position `before`.
pub async fn list(
    conn: &mut PgConnection,
    filter: Filter,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<RequestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1::text IS NULL OR r.status = $1)
             AND (NOT $2 OR (r.status IN ('received', 'verified', 'in_progress') AND r.due_at < now()))
             AND ($3::uuid IS NULL OR r.subject_id = $3)
             AND ($4::text IS NULL OR r.type = $4)
             AND ($5::timestamptz IS NULL OR r.received_at >= $5)
             AND ($6::timestamptz IS NULL OR r.received_at < $6)
             AND ($7::uuid IS NULL OR r.id < $7)
         ORDER BY r.id DESC LIMIT $8"
    )))
    .bind(filter.status)
    .bind(filter.overdue_only)
    .bind(filter.subject)
    .bind(filter.kind)
    .bind(filter.from)
    .bind(filter.to)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Requests in progress with a service silent for longer than `retry_after`, locked; SKIP LOCKED
/// lets replicas share the work instead of sending a request twice.
pub async fn lock_due_for_resend(
    tx: &mut Tx,
    retry_after_secs: f64,
) -> sqlx::Result<Vec<RequestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.status = 'in_progress' AND EXISTS (
             SELECT 1 FROM subject_request_services s
             WHERE s.request_id = r.id AND s.answered_at IS NULL
               AND s.sent_at < now() - make_interval(secs => $1))
         ORDER BY r.id LIMIT 100 FOR UPDATE OF r SKIP LOCKED"
    )))
    .bind(retry_after_secs)
    .fetch_all(&mut **tx)
    .await
}

/// The identity check's outcome: the request moves on (or is rejected, and so finished).
pub async fn verify(
    tx: &mut Tx,
    id: Uuid,
    status: RequestStatus,
    verification: Verification,
    method: &str,
    note: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE subject_requests SET status = $2, verification = $3, verification_method = $4,
             resolution = $5, completed_at = CASE WHEN $2 = 'rejected' THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(verification)
    .bind(method)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set_status(tx: &mut Tx, id: Uuid, status: RequestStatus) -> sqlx::Result<()> {
    sqlx::query("UPDATE subject_requests SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends the request (completed or cancelled) with how it ended.
pub async fn finish(
    tx: &mut Tx,
    id: Uuid,
    status: RequestStatus,
    resolution: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE subject_requests SET status = $2, resolution = $3, completed_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(resolution)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn extend(tx: &mut Tx, id: Uuid, days: i32, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE subject_requests SET extension_days = extension_days + $2,
             due_at = due_at + make_interval(days => $2), extension_reason = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(days)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records that the request goes to `services`, each to answer.
pub async fn ask(tx: &mut Tx, id: Uuid, services: &[String]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO subject_request_services (request_id, service)
         SELECT $1, unnest($2::text[])",
    )
    .bind(id)
    .bind(services)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts another attempt for each service still silent; returns them with their attempt.
pub async fn send_again_to_silent(tx: &mut Tx, id: Uuid) -> sqlx::Result<Vec<(String, i32)>> {
    sqlx::query_as(
        "UPDATE subject_request_services SET attempts = attempts + 1, sent_at = now()
         WHERE request_id = $1 AND answered_at IS NULL RETURNING service, attempts",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
}

pub async fn unanswered(tx: &mut Tx, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM subject_request_services WHERE request_id = $1 AND answered_at IS NULL",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}

/// Whether `service` was asked and has not answered yet.
pub async fn awaiting(tx: &mut Tx, id: Uuid, service: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subject_request_services
                        WHERE request_id = $1 AND service = $2 AND answered_at IS NULL)",
    )
    .bind(id)
    .bind(service)
    .fetch_one(&mut **tx)
    .await
}

/// A service's answer, as it reported it.
pub struct Answer<'a> {
    pub service: &'a str,
    pub subject_found: bool,
    pub erased: &'a [String],
    pub retained: serde_json::Value,
    pub export: Option<Vec<u8>>,
}

/// Records the first answer of a service that was asked; false when it had answered already or
/// was not asked.
pub async fn record_answer(tx: &mut Tx, id: Uuid, answer: Answer<'_>) -> sqlx::Result<bool> {
    let recorded = sqlx::query(
        "UPDATE subject_request_services SET answered_at = now(), subject_found = $3, erased = $4,
             retained = $5, export_json = $6
         WHERE request_id = $1 AND service = $2 AND answered_at IS NULL",
    )
    .bind(id)
    .bind(answer.service)
    .bind(answer.subject_found)
    .bind(answer.erased)
    .bind(answer.retained)
    .bind(answer.export)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(recorded > 0)
}

/// One slice of a sliced export, kept until all its slices are in.
pub struct Slice<'a> {
    pub service: &'a str,
    pub export_id: &'a str,
    pub part: i32,
    pub parts: i32,
    pub data: &'a [u8],
}

/// Keeps the slice (once), then returns every slice of its export received so far, in order.
pub async fn add_slice(tx: &mut Tx, id: Uuid, slice: Slice<'_>) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query(
        "INSERT INTO subject_request_export_slices (request_id, service, export_id, part, parts, data)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(slice.service)
    .bind(slice.export_id)
    .bind(slice.part)
    .bind(slice.parts)
    .bind(slice.data)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar(
        "SELECT data FROM subject_request_export_slices
         WHERE request_id = $1 AND service = $2 AND export_id = $3 ORDER BY part",
    )
    .bind(id)
    .bind(slice.service)
    .bind(slice.export_id)
    .fetch_all(&mut **tx)
    .await
}

pub async fn drop_slices(tx: &mut Tx, id: Uuid, service: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM subject_request_export_slices WHERE request_id = $1 AND service = $2")
        .bind(id)
        .bind(service)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every service's answers to the requests `ids`, by request, services in name order.
pub async fn answers(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Vec<AnswerRow>>> {
    let rows: Vec<AnswerRow> = sqlx::query_as(
        "SELECT request_id, service, attempts, answered_at, subject_found, erased, retained
         FROM subject_request_services WHERE request_id = ANY($1) ORDER BY service",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut by_request: HashMap<Uuid, Vec<AnswerRow>> = HashMap::new();
    for row in rows {
        by_request.entry(row.request_id).or_default().push(row);
    }
    Ok(by_request)
}

/// Each service's export part of the request, none where it is no longer kept.
pub async fn exports(tx: &mut Tx, id: Uuid) -> sqlx::Result<Vec<(String, Option<Vec<u8>>)>> {
    sqlx::query_as(
        "SELECT service, export_json FROM subject_request_services WHERE request_id = $1 ORDER BY service",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
}

/// After an erasure: export parts collected earlier, and the subject's own words in their
/// requests, are the subject's data too; what was asked, when, and how it ended stay as proof.
pub async fn forget_subject(tx: &mut Tx, subject: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE subject_request_services s SET export_json = NULL FROM subject_requests r
         WHERE r.id = s.request_id AND r.subject_id = $1 AND s.export_json IS NOT NULL",
    )
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE subject_requests SET details = '', verification_method = '' WHERE subject_id = $1",
    )
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops export parts of requests completed more than `retention_days` ago; returns how many.
pub async fn drop_expired_exports(
    conn: &mut PgConnection,
    retention_days: i32,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE subject_request_services s SET export_json = NULL FROM subject_requests r
         WHERE r.id = s.request_id AND s.export_json IS NOT NULL
           AND r.completed_at < now() - make_interval(days => $1)",
    )
    .bind(retention_days)
    .execute(conn)
    .await?
    .rows_affected())
}
