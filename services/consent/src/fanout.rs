//! Carrying out a verified request: access, portability and erasure go to every registered
//! service over the privacy topic and complete when all of them answered (a silent service is
//! asked again); an objection withdraws consents at once; rectification and restriction wait for
//! an operator. Also the background work: re-sending to silent services and dropping bundles past
//! their retention.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{
    error::{Result, ServiceError},
    privacy,
    request::timestamp,
    shutdown::Shutdown,
    store::Tx,
};
use crm_proto::crm::common::v1::{DataSubject, DataSubjectKind, PrivacyRequest};
use serde_json::json;
use uuid::Uuid;

use crate::{
    Consents,
    consents::write_record,
    convert,
    domain::SYSTEM_ACTOR,
    domain::{LegalBasis, RecordStatus, RequestStatus, RequestType, Subject, SubjectKind},
    events,
    store::{
        audit::{self, Audit},
        purposes,
        records::{self, RecordRow},
        requests::{self as store, RequestRow},
    },
};

/// What a verified request sets off, by type.
pub async fn carry_out(
    tx: &mut Tx,
    actor: &str,
    row: &RequestRow,
    registry: &[String],
) -> Result<()> {
    if row.kind.fans_out() {
        store::set_status(tx, row.id, RequestStatus::InProgress).await?;
        store::ask(tx, row.id, registry).await?;
        publish(tx, actor, row, registry, 1).await?;
        return finish_if_answered(tx, row.id).await;
    }
    match row.kind {
        RequestType::Objection => {
            let withdrawn = object(tx, actor, row).await?;
            let resolution = if withdrawn.is_empty() {
                "no consent to withdraw".to_owned()
            } else {
                format!("consent withdrawn: {}", withdrawn.join(", "))
            };
            complete(tx, actor, row, &resolution).await
        }
        // Rectification and restriction are carried out by an operator.
        _ => Ok(store::set_status(tx, row.id, RequestStatus::InProgress).await?),
    }
}

/// Completes a fanned-out request once no registered service is still to answer. An erasure then
/// also forgets what consent itself holds of the subject's own words.
pub async fn finish_if_answered(tx: &mut Tx, id: Uuid) -> Result<()> {
    if store::unanswered(tx, id).await? > 0 {
        return Ok(());
    }
    let row = lock(tx, id).await?;
    complete(tx, SYSTEM_ACTOR, &row, "every registered service answered").await?;
    if row.kind == RequestType::Erasure {
        store::forget_subject(tx, row.subject_id).await?;
        privacy::forget_replies(tx, &[row.subject_id]).await?;
    }
    Ok(())
}

/// OBJECTION: withdraws the purposes objected to (all based on consent or legitimate interest when
/// none are named) that are not withdrawn already. Returns their codes.
async fn object(tx: &mut Tx, actor: &str, row: &RequestRow) -> Result<Vec<String>> {
    let purposes: Vec<String> = if row.purposes.is_empty() {
        purposes::all(tx)
            .await?
            .into_iter()
            .filter(|p| {
                matches!(
                    p.legal_basis,
                    LegalBasis::Consent | LegalBasis::LegitimateInterest
                )
            })
            .map(|p| p.code)
            .collect()
    } else {
        row.purposes.clone()
    };
    let mut withdrawn = Vec::new();
    for code in purposes {
        let current = records::current(tx, row.subject_id, &code).await?;
        if current.is_some_and(|r| r.status == RecordStatus::Withdrawn) {
            continue;
        }
        let record = RecordRow {
            id: Uuid::now_v7(),
            subject_kind: row.subject_kind,
            subject_id: row.subject_id,
            purpose: code.clone(),
            status: RecordStatus::Withdrawn,
            channel: row.channel,
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
pub async fn resend(tx: &mut Tx, actor: &str, row: &RequestRow) -> Result<()> {
    let pending = store::send_again_to_silent(tx, row.id).await?;
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
        r#type: row.kind.to_proto() as i32,
        subject: Some(DataSubject {
            kind: match row.subject_kind {
                SubjectKind::Person => DataSubjectKind::Person,
                SubjectKind::Party => DataSubjectKind::Party,
            } as i32,
            id: row.subject_id.to_string(),
        }),
        services: services.to_vec(),
        open_time: Some(timestamp(row.received_at)),
        attempt,
    };
    privacy::REQUESTS
        .enqueue(tx, row.subject_id, &request)
        .await?;
    let details = json!({ "request_id": row.id, "services": services, "attempt": attempt });
    audit(tx, actor, "request.published", row.subject(), details).await
}

pub async fn complete(tx: &mut Tx, actor: &str, row: &RequestRow, resolution: &str) -> Result<()> {
    store::finish(tx, row.id, RequestStatus::Completed, resolution).await?;
    let details = json!({ "request_id": row.id, "resolution": resolution });
    audit(tx, actor, "request.completed", row.subject(), details).await
}

/// The request, locked for the change at hand.
pub(crate) async fn lock(tx: &mut Tx, id: Uuid) -> Result<RequestRow> {
    store::lock(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("SubjectRequest", id))
}

/// A request step's audit entry.
pub async fn audit(
    tx: &mut Tx,
    actor: &str,
    action: &str,
    subject: Subject,
    details: serde_json::Value,
) -> Result<()> {
    let entry = Audit {
        actor,
        action,
        subject: Some(subject),
        purpose: None,
        details,
    };
    Ok(audit::append(tx, entry).await?)
}

impl Consents {
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
            let days = self.bundle_retention_days;
            let dropped =
                async { store::drop_expired_exports(&mut *self.pool.acquire().await?, days).await };
            match dropped.await {
                Ok(0) => {}
                Ok(dropped) => tracing::info!(dropped, "export parts past their retention dropped"),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "dropping expired bundles failed"
                    )
                }
            }
        }
    }

    async fn resend_due(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let due = store::lock_due_for_resend(&mut tx, self.retry_after.as_secs_f64()).await?;
        for row in &due {
            resend(&mut tx, SYSTEM_ACTOR, row).await?;
            let answer = load(&mut tx, row.id).await?;
            events::request_changed(&mut tx, &answer, "sent").await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The request as the API answers it.
pub(crate) async fn load(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<crm_proto::crm::consent::v1::SubjectRequest> {
    let row = store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("SubjectRequest", id))?;
    let answers = store::answers(conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(convert::request(&row, answers))
}
