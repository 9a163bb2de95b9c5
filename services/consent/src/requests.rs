//! Data-subject requests: received → verified → in progress → completed (or rejected, cancelled),
//! with a statutory deadline. Access, portability and erasure are sent to every registered service
//! over the privacy topic and complete when all of them answered; a silent service is asked again.
//! Every step writes its audit entry in the transaction of the change.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use crm_kit::{
    consumer::{Event, HandleError, Handler},
    error::{FieldViolations, Result, ServiceError},
    fresh_or_replay, outbox,
    privacy::{Export, REQUEST_TOPIC},
    request::{time, timestamp, uuid},
    shutdown::Shutdown,
    store::{Tx, begin, decode_page_token, encode_page_token, next_page, page_size},
};
use crm_proto::crm::{
    common::v1::{
        DataSubject, DataSubjectKind, PrivacyReceipt, PrivacyRequest, PrivacyRequestType,
        RetainedData,
    },
    consent::v1::*,
};
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use crate::{
    service::{Consents, channel_from, channel_name, subject, subject_to_proto, write_record},
    store::{self, Audit, RecordRow},
};

/// GDPR art. 12(3): one month from receipt, extendable by two further months.
const DEADLINE_DAYS: i64 = 30;
const MAX_EXTENSION_DAYS: i32 = 60;
/// The actor of steps the service takes on its own (answers, retries, completion).
const SYSTEM_ACTOR: &str = "crm-consent";
/// The bundle is streamed in pieces of this size.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub subject_kind: String,
    pub subject_id: Uuid,
    pub status: String,
    pub verification: String,
    pub verification_method: String,
    pub details: String,
    pub purposes: Vec<String>,
    pub channel: String,
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
    fn subject(&self) -> (&str, Uuid) {
        (&self.subject_kind, self.subject_id)
    }

    fn fanned_out(&self) -> bool {
        matches!(self.kind.as_str(), "access" | "portability" | "erasure")
    }

    fn open(&self) -> bool {
        matches!(
            self.status.as_str(),
            "received" | "verified" | "in_progress"
        )
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct AnswerRow {
    request_id: Uuid,
    service: String,
    attempts: i32,
    answered_at: Option<DateTime<Utc>>,
    subject_found: bool,
    erased: Vec<String>,
    retained: serde_json::Value,
}

impl Consents {
    pub async fn open_subject_request(
        &self,
        actor: &str,
        req: OpenSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let kind = type_name(req.r#type());
        v.check(
            kind.is_some(),
            "type",
            "must be ACCESS, PORTABILITY, ERASURE, RECTIFICATION, RESTRICTION or OBJECTION",
        );
        let (subject_kind, subject_id) = subject(req.subject.as_ref(), &mut v);
        let channel = channel_name(req.channel());
        v.check(
            channel.is_some(),
            "channel",
            "must be WEB_FORM, PAPER, CALL, EMAIL or IN_STORE",
        );
        let received_at = match &req.receive_time {
            Some(t) => time(t),
            None => Some(Utc::now()),
        };
        v.check(
            received_at.is_some_and(|at| at <= Utc::now()),
            "receive_time",
            "must not be in the future",
        );
        v.check(
            req.purposes.is_empty() || kind == Some("objection"),
            "purposes",
            "only an OBJECTION names purposes",
        );
        v.finish()?;
        let received_at = received_at.unwrap_or_else(Utc::now);
        let (mut tx, claim) = fresh_or_replay!(begin(&self.pool, actor, &req).await?);
        let mut v = FieldViolations::new();
        for (i, code) in req.purposes.iter().enumerate() {
            if store::purpose(&mut tx, code).await?.is_none() {
                v.add(
                    format!("purposes[{i}]"),
                    format!("{code:?} is not a purpose"),
                );
            }
        }
        v.finish()?;
        let id = Uuid::now_v7();
        let due_at = received_at + chrono::Duration::days(DEADLINE_DAYS);
        sqlx::query(
            "INSERT INTO subject_requests (id, type, subject_kind, subject_id, details, purposes,
                 channel, received_at, due_at, opened_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(kind)
        .bind(subject_kind)
        .bind(subject_id)
        .bind(req.details.trim())
        .bind(&req.purposes)
        .bind(channel)
        .bind(received_at)
        .bind(due_at)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let details =
            json!({ "request_id": id, "type": kind, "channel": channel, "due_at": due_at });
        audit(
            &mut tx,
            actor,
            "request.opened",
            (subject_kind, subject_id),
            details,
        )
        .await?;
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn verify_subject_request(
        &self,
        actor: &str,
        req: VerifySubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            !req.method.trim().is_empty(),
            "method",
            "say how the subject's identity was checked",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(begin(&self.pool, actor, &req).await?);
        let row = lock(&mut tx, id).await?;
        if row.status != "received" {
            return Err(ServiceError::Precondition(
                "REQUEST_NOT_RECEIVED",
                format!(
                    "request {id} is {}; only a received request is verified",
                    row.status
                ),
            ));
        }
        let (status, verification, action) = if req.verified {
            ("verified", "verified", "request.verified")
        } else {
            ("rejected", "failed", "request.rejected")
        };
        sqlx::query(
            "UPDATE subject_requests SET status = $2, verification = $3, verification_method = $4,
                 resolution = $5, completed_at = CASE WHEN $2 = 'rejected' THEN now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(verification)
        .bind(req.method.trim())
        .bind(req.note.trim())
        .execute(&mut *tx)
        .await?;
        // The method and note stay on the request, which an erasure can clear; the audit log is
        // append-only, so it keeps no free text about the subject.
        let details = json!({ "request_id": id, "verified": req.verified });
        audit(&mut tx, actor, action, row.subject(), details).await?;
        if req.verified {
            self.carry_out(&mut tx, actor, &row).await?;
        }
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    /// What a verified request sets off, by type.
    async fn carry_out(&self, tx: &mut Tx, actor: &str, row: &RequestRow) -> Result<()> {
        match row.kind.as_str() {
            "access" | "portability" | "erasure" => {
                set_status(tx, row.id, "in_progress").await?;
                sqlx::query(
                    "INSERT INTO subject_request_services (request_id, service)
                     SELECT $1, unnest($2::text[])",
                )
                .bind(row.id)
                .bind(&self.registry)
                .execute(&mut **tx)
                .await?;
                publish(tx, actor, row, &self.registry, 1).await?;
                finish_if_answered(tx, row.id).await
            }
            "objection" => {
                let withdrawn = object(tx, actor, row).await?;
                let resolution = if withdrawn.is_empty() {
                    "no consent to withdraw".to_owned()
                } else {
                    format!("consent withdrawn: {}", withdrawn.join(", "))
                };
                complete(tx, actor, row, &resolution).await
            }
            // Rectification and restriction are carried out by an operator.
            _ => set_status(tx, row.id, "in_progress").await,
        }
    }

    pub async fn get_subject_request(
        &self,
        req: GetSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        load(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn list_subject_requests(
        &self,
        req: ListSubjectRequestsRequest,
    ) -> Result<ListSubjectRequestsResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let status = match req.status() {
            SubjectRequestStatus::Unspecified => None,
            status => Some(status_name(status)),
        };
        let subject_id = req.subject.as_ref().map(|s| subject(Some(s), &mut v).1);
        let filter = (status, req.overdue_only, subject_id);
        let before: Option<Uuid> = decode_page_token(&req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows: Vec<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_REQUEST} WHERE ($1::text IS NULL OR r.status = $1)
                 AND (NOT $2 OR (r.status IN ('received', 'verified', 'in_progress') AND r.due_at < now()))
                 AND ($3::uuid IS NULL OR r.subject_id = $3)
                 AND ($4::uuid IS NULL OR r.id < $4)
             ORDER BY r.id DESC LIMIT $5"
        )))
        .bind(status)
        .bind(req.overdue_only)
        .bind(subject_id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &filter)
        });
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut answers = answers(&mut conn, &ids).await?;
        let requests = rows
            .iter()
            .map(|row| to_proto(row, answers.remove(&row.id).unwrap_or_default()))
            .collect();
        Ok(ListSubjectRequestsResponse {
            requests,
            next_page_token,
        })
    }

    pub async fn cancel_subject_request(
        &self,
        actor: &str,
        req: CancelSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            !req.reason.trim().is_empty(),
            "reason",
            "say why it is cancelled",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(begin(&self.pool, actor, &req).await?);
        let row = lock(&mut tx, id).await?;
        open_or_refuse(&row)?;
        if row.kind == "erasure" && row.status == "in_progress" {
            return Err(ServiceError::Precondition(
                "ERASURE_UNDER_WAY",
                format!(
                    "erasure request {id} was already sent to the services and cannot be undone"
                ),
            ));
        }
        finish(&mut tx, id, "cancelled", req.reason.trim()).await?;
        let details = json!({ "request_id": id, "reason": req.reason.trim() });
        audit(&mut tx, actor, "request.cancelled", row.subject(), details).await?;
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn extend_subject_request(
        &self,
        actor: &str,
        req: ExtendSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            (1..=MAX_EXTENSION_DAYS).contains(&req.days),
            "days",
            format!("must be 1 to {MAX_EXTENSION_DAYS}"),
        );
        v.check(
            !req.reason.trim().is_empty(),
            "reason",
            "the subject must be told why: give the reason",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(begin(&self.pool, actor, &req).await?);
        let row = lock(&mut tx, id).await?;
        open_or_refuse(&row)?;
        if row.extension_days + req.days > MAX_EXTENSION_DAYS {
            return Err(ServiceError::Precondition(
                "EXTENSION_EXCEEDED",
                format!(
                    "request {id} was extended by {} days already; at most {MAX_EXTENSION_DAYS} in all",
                    row.extension_days
                ),
            ));
        }
        sqlx::query(
            "UPDATE subject_requests SET extension_days = extension_days + $2,
                 due_at = due_at + make_interval(days => $2), extension_reason = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(req.days)
        .bind(req.reason.trim())
        .execute(&mut *tx)
        .await?;
        let details = json!({ "request_id": id, "days": req.days, "reason": req.reason.trim() });
        audit(&mut tx, actor, "request.extended", row.subject(), details).await?;
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn complete_subject_request(
        &self,
        actor: &str,
        req: CompleteSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            !req.resolution.trim().is_empty(),
            "resolution",
            "say what was done",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(begin(&self.pool, actor, &req).await?);
        let row = lock(&mut tx, id).await?;
        if !matches!(row.kind.as_str(), "rectification" | "restriction")
            || row.status != "in_progress"
        {
            return Err(ServiceError::Precondition(
                "NOT_OPERATOR_WORK",
                format!(
                    "request {id} is a {} request that is {}; only a rectification or restriction in progress is completed by hand",
                    row.kind, row.status
                ),
            ));
        }
        complete(&mut tx, actor, &row, req.resolution.trim()).await?;
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn resume_subject_request(
        &self,
        actor: &str,
        req: ResumeSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) =
            fresh_or_replay!(crm_kit::store::begin(&self.pool, actor, &req).await?);
        let row = lock(&mut tx, id).await?;
        if !row.fanned_out() || row.status != "in_progress" {
            return Err(ServiceError::Precondition(
                "NOT_WAITING",
                format!(
                    "request {id} is not waiting for services (it is {})",
                    row.status
                ),
            ));
        }
        resend(&mut tx, actor, &row).await?;
        let answer = load(&mut tx, id).await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    /// The completed export as one JSON document, in pieces.
    pub async fn export_bundle(
        &self,
        req: GetExportBundleRequest,
    ) -> Result<Vec<ExportBundleChunk>> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let mut tx = self.pool.begin().await?;
        let row = load_row(&mut tx, id).await?;
        if !matches!(row.kind.as_str(), "access" | "portability") || row.status != "completed" {
            return Err(ServiceError::Precondition(
                "NO_BUNDLE",
                format!(
                    "request {id} is a {} request that is {}; bundles come from completed access and portability requests",
                    row.kind, row.status
                ),
            ));
        }
        let stored: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT service, export_json FROM subject_request_services WHERE request_id = $1 ORDER BY service",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut parts = serde_json::Map::new();
        for (service, export) in stored {
            let Some(export) = export else {
                return Err(ServiceError::Precondition(
                    "BUNDLE_GONE",
                    format!(
                        "the bundle of request {id} is no longer kept: its subject was erased since, or it is older than the {}-day retention",
                        self.bundle_retention_days
                    ),
                ));
            };
            let part =
                serde_json::from_slice(&export).map_err(|e| ServiceError::Internal(e.into()))?;
            parts.insert(service, part);
        }
        let consent = Export::default()
            .table(
                &mut tx,
                "consent_records",
                "SELECT * FROM consent_records WHERE subject_id = $1 ORDER BY id",
                row.subject_id,
            )
            .await?
            .table(
                &mut tx,
                "subject_requests",
                "SELECT * FROM subject_requests WHERE subject_id = $1 ORDER BY id",
                row.subject_id,
            )
            .await?;
        parts.insert("consent".into(), consent.into_json("consent"));
        tx.commit().await?;
        let bundle = json!({
            "request_id": id,
            "type": row.kind,
            "subject": { "kind": row.subject_kind, "id": row.subject_id },
            "generated_at": Utc::now(),
            "parts": parts,
        });
        let bytes =
            serde_json::to_vec_pretty(&bundle).map_err(|e| ServiceError::Internal(e.into()))?;
        Ok(bytes
            .chunks(CHUNK)
            .map(|data| ExportBundleChunk {
                data: data.to_vec(),
            })
            .collect())
    }

    /// Until shutdown: sends requests again to services silent for longer than `retry_after`, and
    /// drops export parts of bundles past their retention (they are the subject's data).
    pub async fn tend_requests(self, shutdown: Shutdown) {
        let tick =
            (self.retry_after / 4).clamp(Duration::from_millis(500), Duration::from_secs(60));
        while shutdown.sleep(tick).await {
            if let Err(error) = self.resend_due().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "re-sending data-subject requests failed"
                );
            }
            if let Err(error) = self.drop_expired_bundles().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "dropping expired bundles failed"
                );
            }
        }
    }

    async fn drop_expired_bundles(&self) -> Result<()> {
        let dropped = sqlx::query(
            "UPDATE subject_request_services s SET export_json = NULL FROM subject_requests r
             WHERE r.id = s.request_id AND s.export_json IS NOT NULL
               AND r.completed_at < now() - make_interval(days => $1)",
        )
        .bind(self.bundle_retention_days)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if dropped > 0 {
            tracing::info!(dropped, "export parts past their retention dropped");
        }
        Ok(())
    }

    async fn resend_due(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: replicas share the work instead of sending a request twice.
        let due: Vec<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_REQUEST} WHERE r.status = 'in_progress' AND EXISTS (
                 SELECT 1 FROM subject_request_services s
                 WHERE s.request_id = r.id AND s.answered_at IS NULL
                   AND s.sent_at < now() - make_interval(secs => $1))
             ORDER BY r.id LIMIT 100 FOR UPDATE OF r SKIP LOCKED"
        )))
        .bind(self.retry_after.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        for row in &due {
            resend(&mut tx, SYSTEM_ACTOR, row).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Records a service's receipt; the request completes with the last registered service's answer.
/// The first answer of a service counts; later ones (answers to retries) are ignored.
pub async fn apply_receipt(tx: &mut Tx, receipt: &PrivacyReceipt) -> Result<()> {
    let Ok(id) = receipt.request_id.parse::<Uuid>() else {
        tracing::warn!(request_id = %receipt.request_id, "a receipt for a malformed request id; ignored");
        return Ok(());
    };
    let row = match lock(tx, id).await {
        Ok(row) => row,
        Err(ServiceError::NotFound(..)) => {
            tracing::warn!(%id, service = %receipt.service, "a receipt for an unknown request; ignored");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let retained: Vec<_> = receipt
        .retained
        .iter()
        .map(|r| json!({ "description": r.description, "reason": r.reason }))
        .collect();
    let exported = match receipt.r#type() {
        PrivacyRequestType::Access | PrivacyRequestType::Portability => {
            match join_slices(tx, id, receipt).await? {
                Some(document) => Some(document),
                None => return Ok(()),
            }
        }
        _ => None,
    };
    let recorded = sqlx::query(
        "UPDATE subject_request_services SET answered_at = now(), subject_found = $3, erased = $4,
             retained = $5, export_json = $6
         WHERE request_id = $1 AND service = $2 AND answered_at IS NULL",
    )
    .bind(id)
    .bind(&receipt.service)
    .bind(receipt.subject_found)
    .bind(&receipt.erased)
    .bind(serde_json::Value::Array(retained.clone()))
    .bind(exported)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if recorded == 0 {
        tracing::info!(%id, service = %receipt.service, "answer already recorded, or the service was not asked");
        return Ok(());
    }
    let details = json!({
        "request_id": id, "service": receipt.service, "subject_found": receipt.subject_found,
        "erased": receipt.erased, "retained": retained,
    });
    audit(
        tx,
        &receipt.service,
        "request.answered",
        row.subject(),
        details,
    )
    .await?;
    if row.status == "in_progress" {
        finish_if_answered(tx, id).await?;
    }
    Ok(())
}

/// A one-part export as it is; a sliced one once all its slices are in (None until then).
async fn join_slices(tx: &mut Tx, id: Uuid, receipt: &PrivacyReceipt) -> Result<Option<Vec<u8>>> {
    if receipt.parts <= 1 {
        return Ok(Some(receipt.export_json.clone()));
    }
    if !(1..=receipt.parts).contains(&receipt.part) {
        tracing::warn!(%id, service = %receipt.service, part = receipt.part, parts = receipt.parts, "a receipt slice out of range; ignored");
        return Ok(None);
    }
    let waiting: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subject_request_services
                        WHERE request_id = $1 AND service = $2 AND answered_at IS NULL)",
    )
    .bind(id)
    .bind(&receipt.service)
    .fetch_one(&mut **tx)
    .await?;
    if !waiting {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO subject_request_export_slices (request_id, service, export_id, part, parts, data)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&receipt.service)
    .bind(&receipt.export_id)
    .bind(receipt.part)
    .bind(receipt.parts)
    .bind(&receipt.export_json)
    .execute(&mut **tx)
    .await?;
    let slices: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT data FROM subject_request_export_slices
         WHERE request_id = $1 AND service = $2 AND export_id = $3 ORDER BY part",
    )
    .bind(id)
    .bind(&receipt.service)
    .bind(&receipt.export_id)
    .fetch_all(&mut **tx)
    .await?;
    if slices.len() < receipt.parts as usize {
        return Ok(None);
    }
    sqlx::query("DELETE FROM subject_request_export_slices WHERE request_id = $1 AND service = $2")
        .bind(id)
        .bind(&receipt.service)
        .execute(&mut **tx)
        .await?;
    Ok(Some(slices.concat()))
}

/// Completes a fanned-out request once no registered service is still to answer.
async fn finish_if_answered(tx: &mut Tx, id: Uuid) -> Result<()> {
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subject_request_services WHERE request_id = $1 AND answered_at IS NULL",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    if pending > 0 {
        return Ok(());
    }
    let row = lock(tx, id).await?;
    complete(tx, SYSTEM_ACTOR, &row, "every registered service answered").await?;
    if row.kind == "erasure" {
        // Export parts collected earlier, and the subject's own words in their requests, are the
        // subject's data too; what was asked, when, and how it ended stay as proof.
        sqlx::query(
            "UPDATE subject_request_services s SET export_json = NULL FROM subject_requests r
             WHERE r.id = s.request_id AND r.subject_id = $1 AND s.export_json IS NOT NULL",
        )
        .bind(row.subject_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE subject_requests SET details = '', verification_method = '' WHERE subject_id = $1",
        )
        .bind(row.subject_id)
        .execute(&mut **tx)
        .await?;
        crm_kit::privacy::forget_replies(tx, &[row.subject_id]).await?;
    }
    Ok(())
}

/// OBJECTION: withdraws the purposes objected to (all based on consent or legitimate interest when
/// none are named) that are not withdrawn already. Returns their codes.
async fn object(tx: &mut Tx, actor: &str, row: &RequestRow) -> Result<Vec<String>> {
    let purposes: Vec<String> = if row.purposes.is_empty() {
        store::purposes(tx)
            .await?
            .into_iter()
            .filter(|p| matches!(p.legal_basis.as_str(), "consent" | "legitimate_interest"))
            .map(|p| p.code)
            .collect()
    } else {
        row.purposes.clone()
    };
    let mut withdrawn = Vec::new();
    for code in purposes {
        let current = store::current(tx, row.subject_id, &code).await?;
        if current.is_some_and(|r| r.status == "withdrawn") {
            continue;
        }
        let record = RecordRow {
            id: Uuid::now_v7(),
            subject_kind: row.subject_kind.clone(),
            subject_id: row.subject_id,
            purpose: code.clone(),
            status: "withdrawn".into(),
            channel: row.channel.clone(),
            source_system: "subject-request".into(),
            text_version: None,
            reference: row.id.to_string(),
            expires_at: None,
            recorded_by: actor.to_owned(),
            recorded_at: Utc::now(),
        };
        write_record(tx, &record).await?;
        withdrawn.push(code);
    }
    Ok(withdrawn)
}

/// Sends the request again to the services that have not answered.
async fn resend(tx: &mut Tx, actor: &str, row: &RequestRow) -> Result<()> {
    let pending: Vec<(String, i32)> = sqlx::query_as(
        "UPDATE subject_request_services SET attempts = attempts + 1, sent_at = now()
         WHERE request_id = $1 AND answered_at IS NULL RETURNING service, attempts",
    )
    .bind(row.id)
    .fetch_all(&mut **tx)
    .await?;
    if pending.is_empty() {
        return Ok(());
    }
    let attempt = pending.iter().map(|(_, n)| *n).max().unwrap_or(1);
    let services: Vec<String> = pending.into_iter().map(|(s, _)| s).collect();
    publish(tx, actor, row, &services, attempt).await
}

async fn publish(
    tx: &mut Tx,
    actor: &str,
    row: &RequestRow,
    services: &[String],
    attempt: i32,
) -> Result<()> {
    let request = PrivacyRequest {
        request_id: row.id.to_string(),
        r#type: type_from(&row.kind) as i32,
        subject: Some(DataSubject {
            kind: match row.subject_kind.as_str() {
                "person" => DataSubjectKind::Person,
                _ => DataSubjectKind::Party,
            } as i32,
            id: row.subject_id.to_string(),
        }),
        services: services.to_vec(),
        open_time: Some(timestamp(row.received_at)),
        attempt,
    };
    outbox::enqueue(tx, REQUEST_TOPIC, row.subject_id, &request).await?;
    let details = json!({ "request_id": row.id, "services": services, "attempt": attempt });
    audit(tx, actor, "request.published", row.subject(), details).await
}

async fn complete(tx: &mut Tx, actor: &str, row: &RequestRow, resolution: &str) -> Result<()> {
    finish(tx, row.id, "completed", resolution).await?;
    let details = json!({ "request_id": row.id, "resolution": resolution });
    audit(tx, actor, "request.completed", row.subject(), details).await
}

async fn finish(tx: &mut Tx, id: Uuid, status: &str, resolution: &str) -> Result<()> {
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

async fn set_status(tx: &mut Tx, id: Uuid, status: &str) -> Result<()> {
    sqlx::query("UPDATE subject_requests SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn open_or_refuse(row: &RequestRow) -> Result<()> {
    if row.open() {
        return Ok(());
    }
    Err(ServiceError::Precondition(
        "REQUEST_CLOSED",
        format!("request {} is {} already", row.id, row.status),
    ))
}

async fn audit(
    tx: &mut Tx,
    actor: &str,
    action: &str,
    subject: (&str, Uuid),
    details: serde_json::Value,
) -> Result<()> {
    let entry = Audit {
        actor,
        action,
        subject: Some(subject),
        purpose: None,
        details,
    };
    store::audit(tx, entry).await?;
    Ok(())
}

const SELECT_REQUEST: &str = "SELECT r.id, r.type, r.subject_kind, r.subject_id, r.status,
        r.verification, r.verification_method, r.details, r.purposes, r.channel, r.received_at,
        r.due_at, r.extension_days, r.extension_reason, r.completed_at, r.resolution, r.opened_by,
        (r.status IN ('received', 'verified', 'in_progress') AND r.due_at < now()) AS overdue
    FROM subject_requests r";

async fn load_row(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<RequestRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_REQUEST} WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ServiceError::not_found("SubjectRequest", id))
}

async fn lock(tx: &mut Tx, id: Uuid) -> Result<RequestRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_REQUEST} WHERE r.id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ServiceError::not_found("SubjectRequest", id))
}

async fn load(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<SubjectRequest> {
    let row = load_row(conn, id).await?;
    let answers = answers(conn, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(to_proto(&row, answers))
}

async fn answers(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<AnswerRow>>> {
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

fn to_proto(row: &RequestRow, answers: Vec<AnswerRow>) -> SubjectRequest {
    SubjectRequest {
        id: row.id.to_string(),
        r#type: type_from(&row.kind) as i32,
        subject: Some(subject_to_proto(&row.subject_kind, row.subject_id)),
        status: match row.status.as_str() {
            "received" => SubjectRequestStatus::Received,
            "verified" => SubjectRequestStatus::Verified,
            "in_progress" => SubjectRequestStatus::InProgress,
            "completed" => SubjectRequestStatus::Completed,
            "rejected" => SubjectRequestStatus::Rejected,
            _ => SubjectRequestStatus::Cancelled,
        } as i32,
        verification: match row.verification.as_str() {
            "verified" => VerificationState::Verified,
            "failed" => VerificationState::Failed,
            _ => VerificationState::Pending,
        } as i32,
        verification_method: row.verification_method.clone(),
        details: row.details.clone(),
        purposes: row.purposes.clone(),
        channel: channel_from(&row.channel) as i32,
        receive_time: Some(timestamp(row.received_at)),
        due_time: Some(timestamp(row.due_at)),
        overdue: row.overdue,
        extension_days: row.extension_days,
        extension_reason: row.extension_reason.clone(),
        complete_time: row.completed_at.map(timestamp),
        resolution: row.resolution.clone(),
        answers: answers
            .into_iter()
            .map(|a| ServiceAnswer {
                service: a.service,
                answered: a.answered_at.is_some(),
                answer_time: a.answered_at.map(timestamp),
                attempts: a.attempts,
                subject_found: a.subject_found,
                erased: a.erased,
                retained: serde_json::from_value::<Vec<serde_json::Value>>(a.retained)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| RetainedData {
                        description: r["description"].as_str().unwrap_or_default().to_owned(),
                        reason: r["reason"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
            })
            .collect(),
        opened_by: row.opened_by.clone(),
    }
}

fn type_name(kind: PrivacyRequestType) -> Option<&'static str> {
    Some(match kind {
        PrivacyRequestType::Access => "access",
        PrivacyRequestType::Portability => "portability",
        PrivacyRequestType::Erasure => "erasure",
        PrivacyRequestType::Rectification => "rectification",
        PrivacyRequestType::Restriction => "restriction",
        PrivacyRequestType::Objection => "objection",
        PrivacyRequestType::Unspecified => return None,
    })
}

fn type_from(name: &str) -> PrivacyRequestType {
    match name {
        "access" => PrivacyRequestType::Access,
        "portability" => PrivacyRequestType::Portability,
        "erasure" => PrivacyRequestType::Erasure,
        "rectification" => PrivacyRequestType::Rectification,
        "restriction" => PrivacyRequestType::Restriction,
        _ => PrivacyRequestType::Objection,
    }
}

fn status_name(status: SubjectRequestStatus) -> &'static str {
    match status {
        SubjectRequestStatus::Received => "received",
        SubjectRequestStatus::Verified => "verified",
        SubjectRequestStatus::InProgress => "in_progress",
        SubjectRequestStatus::Completed => "completed",
        SubjectRequestStatus::Rejected => "rejected",
        _ => "cancelled",
    }
}

/// Consumes the services' receipts (`crm.privacy.receipts.v1`).
pub struct Receipts;

impl Handler for Receipts {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> std::result::Result<(), HandleError> {
        let receipt = PrivacyReceipt::decode(event.payload.as_slice())
            .map_err(|e| HandleError::Reject(e.into()))?;
        apply_receipt(tx, &receipt)
            .await
            .map_err(|e| HandleError::Retry(e.into()))
    }
}
