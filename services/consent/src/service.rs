//! The consent use cases. Every change records its evidence, its audit entry and its event in one
//! transaction; the history is append-only and the current state is derived from its latest record.

use chrono::{DateTime, Utc};
use std::time::Duration;

use crm_kit::{
    config::PrivacyConfig,
    error::{FieldViolations, Result, ServiceError},
    fresh_or_replay, outbox,
    request::{time, timestamp, uuid},
    store::{Tx, decode_page_token, encode_page_token, next_page, page_size, unique_violation},
};
use crm_proto::crm::consent::v1::*;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    CONSENT_TOPIC,
    store::{self, Audit, AuditRow, PurposeRow, RecordRow},
};

#[derive(Clone)]
pub struct Consents {
    pub(crate) pool: PgPool,
    /// The services that must answer every fanned-out data-subject request.
    pub(crate) registry: Vec<String>,
    /// How long a service may stay silent before a request is sent to it again.
    pub(crate) retry_after: Duration,
    /// Days a completed export's bundle can be fetched.
    pub(crate) bundle_retention_days: i32,
}

impl Consents {
    pub fn new(pool: PgPool, privacy: &PrivacyConfig) -> Self {
        Self {
            pool,
            registry: privacy.registry(),
            retry_after: privacy.retry_after(),
            bundle_retention_days: privacy.bundle_retention_days,
        }
    }

    pub async fn create_purpose(
        &self,
        subject: &str,
        req: CreatePurposeRequest,
    ) -> Result<Purpose> {
        let mut v = FieldViolations::new();
        v.check(req.purpose.is_some(), "purpose", "is required");
        let input = req.purpose.clone().unwrap_or_default();
        let code = input.code.trim().to_owned();
        let code_ok = (1..=63).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        v.check(
            code_ok,
            "purpose.code",
            "must be lower snake case, e.g. marketing_email",
        );
        v.check(
            !input.description.trim().is_empty(),
            "purpose.description",
            "must not be empty",
        );
        v.check(
            !input.text.trim().is_empty(),
            "purpose.text",
            "the text subjects consent to is required",
        );
        let basis = match input.legal_basis() {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegitimateInterest => "legitimate_interest",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::Unspecified => {
                v.add(
                    "purpose.legal_basis",
                    "must be CONSENT, CONTRACT, LEGITIMATE_INTEREST or LEGAL_OBLIGATION",
                );
                "consent"
            }
        };
        v.finish()?;
        let (mut tx, claim) =
            fresh_or_replay!(crm_kit::store::begin(&self.pool, subject, &req).await?);
        let created = sqlx::query(
            "INSERT INTO purposes (code, description, legal_basis) VALUES ($1, $2, $3)",
        )
        .bind(&code)
        .bind(input.description.trim())
        .bind(basis)
        .execute(&mut *tx)
        .await;
        if let Err(error) = created {
            return Err(match unique_violation(&error) {
                Some(_) => ServiceError::AlreadyExists(
                    "PURPOSE_EXISTS",
                    format!("purpose {code:?} already exists"),
                ),
                None => error.into(),
            });
        }
        sqlx::query("INSERT INTO purpose_texts (purpose, version, text) VALUES ($1, 1, $2)")
            .bind(&code)
            .bind(input.text.trim())
            .execute(&mut *tx)
            .await?;
        let details = serde_json::json!({ "legal_basis": basis, "text_version": 1 });
        store::audit(
            &mut tx,
            Audit {
                actor: subject,
                action: "purpose.created",
                subject: None,
                purpose: Some(&code),
                details,
            },
        )
        .await?;
        let purpose = purpose_in(&mut tx, &code).await?;
        claim.commit(tx, &purpose).await?;
        Ok(purpose)
    }

    pub async fn list_purposes(&self) -> Result<ListPurposesResponse> {
        let rows = store::purposes(&mut *self.pool.acquire().await?).await?;
        Ok(ListPurposesResponse {
            purposes: rows.iter().map(purpose_to_proto).collect(),
        })
    }

    pub async fn publish_purpose_text(
        &self,
        subject: &str,
        req: PublishPurposeTextRequest,
    ) -> Result<Purpose> {
        let mut v = FieldViolations::new();
        v.check(!req.text.trim().is_empty(), "text", "must not be empty");
        v.finish()?;
        let (mut tx, claim) =
            fresh_or_replay!(crm_kit::store::begin(&self.pool, subject, &req).await?);
        let current: Option<i32> =
            sqlx::query_scalar("SELECT text_version FROM purposes WHERE code = $1 FOR UPDATE")
                .bind(&req.code)
                .fetch_optional(&mut *tx)
                .await?;
        let version = current.ok_or_else(|| ServiceError::not_found("Purpose", &req.code))? + 1;
        sqlx::query("INSERT INTO purpose_texts (purpose, version, text) VALUES ($1, $2, $3)")
            .bind(&req.code)
            .bind(version)
            .bind(req.text.trim())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE purposes SET text_version = $2,
                 minimum_consented_version = CASE WHEN $3 THEN $2 ELSE minimum_consented_version END
             WHERE code = $1",
        )
        .bind(&req.code)
        .bind(version)
        .bind(req.requires_reconsent)
        .execute(&mut *tx)
        .await?;
        let details = serde_json::json!({ "text_version": version, "requires_reconsent": req.requires_reconsent });
        let entry = Audit {
            actor: subject,
            action: "purpose.text_published",
            subject: None,
            purpose: Some(&req.code),
            details,
        };
        store::audit(&mut tx, entry).await?;
        let purpose = purpose_in(&mut tx, &req.code).await?;
        claim.commit(tx, &purpose).await?;
        Ok(purpose)
    }

    pub async fn record_consent(
        &self,
        subject: &str,
        req: RecordConsentRequest,
    ) -> Result<ConsentRecord> {
        let expires_at = req.expire_time.as_ref().and_then(time);
        let mut v = FieldViolations::new();
        v.check(
            expires_at.is_none_or(|at| at > Utc::now()),
            "expire_time",
            "must be in the future",
        );
        let change = Change {
            subject: req.subject.as_ref(),
            purpose: &req.purpose,
            evidence: req.evidence.as_ref(),
        };
        self.change(subject, &req, change, "granted", expires_at, v)
            .await
    }

    pub async fn withdraw_consent(
        &self,
        subject: &str,
        req: WithdrawConsentRequest,
    ) -> Result<ConsentRecord> {
        let change = Change {
            subject: req.subject.as_ref(),
            purpose: &req.purpose,
            evidence: req.evidence.as_ref(),
        };
        let v = FieldViolations::new();
        self.change(subject, &req, change, "withdrawn", None, v)
            .await
    }

    /// Records a grant or a withdrawal with its evidence, audit entry and event.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        actor: &str,
        request: &(impl crm_kit::store::Idempotent + prost::Message),
        change: Change<'_>,
        status: &str,
        expires_at: Option<DateTime<Utc>>,
        mut v: FieldViolations,
    ) -> Result<ConsentRecord> {
        let (kind, subject_id) = subject(change.subject, &mut v);
        v.check(
            change.evidence.is_some(),
            "evidence",
            "is required: how the subject said so",
        );
        let evidence = change.evidence.cloned().unwrap_or_default();
        let channel = channel_name(evidence.channel());
        v.check(
            channel.is_some(),
            "evidence.channel",
            "must be WEB_FORM, PAPER, CALL, EMAIL or IN_STORE",
        );
        v.finish()?;
        let (mut tx, claim) =
            fresh_or_replay!(crm_kit::store::begin(&self.pool, actor, request).await?);
        let Some(purpose) = store::purpose(&mut tx, change.purpose).await? else {
            let mut v = FieldViolations::new();
            v.add("purpose", format!("{:?} is not a purpose", change.purpose));
            return Err(v.into());
        };
        // A grant is to the text the subject saw (default: the current one).
        let shown = if evidence.text_version == 0 {
            purpose.text_version
        } else {
            evidence.text_version
        };
        let text_version = (status == "granted").then_some(shown);
        if let Some(shown) = text_version
            && !(1..=purpose.text_version).contains(&shown)
        {
            let mut v = FieldViolations::new();
            v.add(
                "evidence.text_version",
                format!("the purpose has versions 1 to {}", purpose.text_version),
            );
            return Err(v.into());
        }
        let record = RecordRow {
            id: Uuid::now_v7(),
            subject_kind: kind.to_owned(),
            subject_id,
            purpose: purpose.code.clone(),
            status: status.to_owned(),
            channel: channel.unwrap_or_default().to_owned(),
            source_system: evidence.source_system.trim().to_owned(),
            text_version,
            reference: evidence.reference.trim().to_owned(),
            expires_at,
            recorded_by: actor.to_owned(),
            recorded_at: Utc::now(),
        };
        write_record(&mut tx, &record).await?;
        let answer = record_to_proto(&record);
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn get_consent_state(
        &self,
        req: GetConsentStateRequest,
    ) -> Result<GetConsentStateResponse> {
        let mut v = FieldViolations::new();
        let (_, subject_id) = subject(req.subject.as_ref(), &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let purposes = store::purposes(&mut conn).await?;
        let records = store::current_all(&mut conn, subject_id).await?;
        let states = purposes
            .iter()
            .map(|purpose| state(purpose, records.iter().find(|r| r.purpose == purpose.code)))
            .collect();
        Ok(GetConsentStateResponse { states })
    }

    pub async fn list_consent_history(
        &self,
        req: ListConsentHistoryRequest,
    ) -> Result<ListConsentHistoryResponse> {
        let mut v = FieldViolations::new();
        let (_, subject_id) = subject(req.subject.as_ref(), &mut v);
        let limit = page_size(req.page_size, &mut v);
        let purpose = Some(req.purpose.trim()).filter(|p| !p.is_empty());
        let filter = (subject_id, purpose);
        let before: Option<Uuid> = decode_page_token(&req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::history(&mut conn, subject_id, purpose, before, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &filter)
        });
        Ok(ListConsentHistoryResponse {
            records: rows.iter().map(record_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn check_consent(&self, req: CheckConsentRequest) -> Result<CheckConsentResponse> {
        let mut v = FieldViolations::new();
        let (_, subject_id) = subject(req.subject.as_ref(), &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let purpose = store::purpose(&mut conn, &req.purpose)
            .await?
            .ok_or_else(|| ServiceError::not_found("Purpose", &req.purpose))?;
        let record = store::current(&mut conn, subject_id, &purpose.code).await?;
        let state = state(&purpose, record.as_ref());
        Ok(CheckConsentResponse {
            granted: state.status() == ConsentStatus::Granted,
            state: Some(state),
        })
    }

    pub async fn list_audit_log(&self, req: ListAuditLogRequest) -> Result<ListAuditLogResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let subject_id = req.subject.as_ref().map(|s| subject(Some(s), &mut v).1);
        let before: Option<i64> = decode_page_token(&req.page_token, &subject_id, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::audit_log(&mut conn, subject_id, before, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &subject_id)
        });
        Ok(ListAuditLogResponse {
            entries: rows.iter().map(audit_to_proto).collect(),
            next_page_token,
        })
    }
}

/// Appends a consent record with its audit entry and its event.
pub(crate) async fn write_record(tx: &mut Tx, record: &RecordRow) -> Result<()> {
    store::insert_record(tx, record).await?;
    let details = serde_json::json!({
        "record_id": record.id, "channel": record.channel, "source_system": record.source_system,
        "text_version": record.text_version, "expires_at": record.expires_at,
        "reference": record.reference,
    });
    let action = if record.status == "granted" {
        "consent.granted"
    } else {
        "consent.withdrawn"
    };
    let entry = Audit {
        actor: &record.recorded_by,
        action,
        subject: Some((&record.subject_kind, record.subject_id)),
        purpose: Some(&record.purpose),
        details,
    };
    store::audit(tx, entry).await?;
    let event = ConsentChanged {
        subject: Some(subject_to_proto(&record.subject_kind, record.subject_id)),
        purpose: record.purpose.clone(),
        status: record_status(record) as i32,
        record_id: record.id.to_string(),
    };
    outbox::enqueue(tx, CONSENT_TOPIC, record.subject_id, &event).await?;
    Ok(())
}

struct Change<'a> {
    subject: Option<&'a Subject>,
    purpose: &'a str,
    evidence: Option<&'a Evidence>,
}

pub(crate) fn subject(subject: Option<&Subject>, v: &mut FieldViolations) -> (&'static str, Uuid) {
    let subject = subject.cloned().unwrap_or_default();
    let kind = match subject.kind() {
        SubjectKind::Party => "party",
        SubjectKind::Person => "person",
        SubjectKind::Unspecified => {
            v.add("subject.kind", "must be PARTY or PERSON");
            "party"
        }
    };
    (kind, uuid(&subject.id, "subject.id", v))
}

pub(crate) fn channel_name(channel: Channel) -> Option<&'static str> {
    Some(match channel {
        Channel::WebForm => "web_form",
        Channel::Paper => "paper",
        Channel::Call => "call",
        Channel::Email => "email",
        Channel::InStore => "in_store",
        Channel::Unspecified => return None,
    })
}

/// What counts now for a purpose, from its latest record.
pub(crate) fn state(purpose: &PurposeRow, record: Option<&RecordRow>) -> ConsentState {
    let status = match record {
        None => ConsentStatus::None,
        Some(r) if r.status == "withdrawn" => ConsentStatus::Withdrawn,
        Some(r) if r.expires_at.is_some_and(|at| at <= Utc::now()) => ConsentStatus::Expired,
        Some(r) if r.text_version.unwrap_or(0) < purpose.minimum_consented_version => {
            ConsentStatus::NeedsReconsent
        }
        Some(_) => ConsentStatus::Granted,
    };
    ConsentState {
        purpose: purpose.code.clone(),
        status: status as i32,
        record: record.map(record_to_proto),
    }
}

fn record_status(record: &RecordRow) -> ConsentStatus {
    if record.status == "granted" {
        ConsentStatus::Granted
    } else {
        ConsentStatus::Withdrawn
    }
}

async fn purpose_in(conn: &mut sqlx::PgConnection, code: &str) -> Result<Purpose> {
    let row = store::purpose(conn, code)
        .await?
        .ok_or_else(|| ServiceError::not_found("Purpose", code))?;
    Ok(purpose_to_proto(&row))
}

fn purpose_to_proto(row: &PurposeRow) -> Purpose {
    Purpose {
        code: row.code.clone(),
        description: row.description.clone(),
        legal_basis: match row.legal_basis.as_str() {
            "contract" => LegalBasis::Contract,
            "legitimate_interest" => LegalBasis::LegitimateInterest,
            "legal_obligation" => LegalBasis::LegalObligation,
            _ => LegalBasis::Consent,
        } as i32,
        text_version: row.text_version,
        text: row.text.clone(),
        minimum_consented_version: row.minimum_consented_version,
        create_time: Some(timestamp(row.created_at)),
    }
}

pub(crate) fn subject_to_proto(kind: &str, id: Uuid) -> Subject {
    Subject {
        kind: if kind == "person" {
            SubjectKind::Person
        } else {
            SubjectKind::Party
        } as i32,
        id: id.to_string(),
    }
}

/// A stored channel name back as the enum (only `channel_name`'s names are stored).
pub(crate) fn channel_from(name: &str) -> Channel {
    match name {
        "web_form" => Channel::WebForm,
        "paper" => Channel::Paper,
        "call" => Channel::Call,
        "email" => Channel::Email,
        _ => Channel::InStore,
    }
}

pub(crate) fn record_to_proto(row: &RecordRow) -> ConsentRecord {
    let channel = channel_from(&row.channel);
    ConsentRecord {
        id: row.id.to_string(),
        subject: Some(subject_to_proto(&row.subject_kind, row.subject_id)),
        purpose: row.purpose.clone(),
        status: record_status(row) as i32,
        evidence: Some(Evidence {
            channel: channel as i32,
            source_system: row.source_system.clone(),
            text_version: row.text_version.unwrap_or_default(),
            reference: row.reference.clone(),
        }),
        record_time: Some(timestamp(row.recorded_at)),
        expire_time: row.expires_at.map(timestamp),
        recorded_by: row.recorded_by.clone(),
    }
}

fn audit_to_proto(row: &AuditRow) -> AuditEntry {
    AuditEntry {
        id: row.id,
        time: Some(timestamp(row.at)),
        actor: row.actor.clone(),
        action: row.action.clone(),
        subject: row
            .subject_kind
            .as_deref()
            .zip(row.subject_id)
            .map(|(kind, id)| subject_to_proto(kind, id)),
        purpose: row.purpose.clone().unwrap_or_default(),
        details: row.details.to_string(),
    }
}
