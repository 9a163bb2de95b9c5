//! Consent records: grants and withdrawals with their evidence, the state derived from the latest
//! one, and the check every decision asks. Each record writes its audit entry and its event in
//! its transaction.

use chrono::{DateTime, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_time, required},
    store::{Idempotent, Page},
};
use crm_proto::crm::consent::v1::*;
use uuid::Uuid;

use crate::{
    Consents, convert,
    domain::{self, RecordStatus},
    events,
    store::{
        audit::{self, Audit},
        purposes,
        records::{self, RecordRow},
    },
};

/// What a grant and a withdrawal both say.
struct Change<'a> {
    subject: domain::Subject,
    purpose: &'a str,
    evidence: Option<&'a Evidence>,
}

impl Consents {
    pub async fn record_consent(
        &self,
        caller: &str,
        req: RecordConsentRequest,
    ) -> Result<ConsentRecord> {
        let mut v = FieldViolations::new();
        let expires_at = optional_time(req.expire_time.as_ref(), "expire_time", &mut v);
        v.check(
            expires_at.is_none_or(|at| at > Utc::now()),
            "expire_time",
            "must be in the future",
        );
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        let change = Change {
            subject,
            purpose: &req.purpose,
            evidence: req.evidence.as_ref(),
        };
        self.change(caller, &req, change, RecordStatus::Granted, expires_at, v)
            .await
    }

    pub async fn withdraw_consent(
        &self,
        caller: &str,
        req: WithdrawConsentRequest,
    ) -> Result<ConsentRecord> {
        let mut v = FieldViolations::new();
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        let change = Change {
            subject,
            purpose: &req.purpose,
            evidence: req.evidence.as_ref(),
        };
        self.change(caller, &req, change, RecordStatus::Withdrawn, None, v)
            .await
    }

    /// Records a grant or a withdrawal with its evidence, audit entry and event.
    async fn change(
        &self,
        caller: &str,
        request: &(impl Idempotent + prost::Message),
        change: Change<'_>,
        status: RecordStatus,
        expires_at: Option<DateTime<Utc>>,
        mut v: FieldViolations,
    ) -> Result<ConsentRecord> {
        let evidence = required(change.evidence.cloned(), "evidence", &mut v);
        let channel = domain::Channel::require(evidence.channel, "evidence.channel", &mut v);
        v.finish()?;
        let subject = change.subject;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, request);
        let Some(purpose) = purposes::get(&mut tx, change.purpose).await? else {
            let mut v = FieldViolations::new();
            v.add("purpose", format!("{:?} is not a purpose", change.purpose));
            return Err(v.into());
        };
        // A grant is to the text the subject saw (default: the current one).
        let shown = match evidence.text_version {
            0 => purpose.text_version,
            shown => shown,
        };
        let text_version = (status == RecordStatus::Granted).then_some(shown);
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
            subject_kind: subject.kind,
            subject_id: subject.id,
            purpose: purpose.code.clone(),
            status,
            channel,
            source_system: evidence.source_system.trim().to_owned(),
            text_version,
            reference: evidence.reference.trim().to_owned(),
            expires_at,
            recorded_by: caller.to_owned(),
            recorded_at: Utc::now(),
        };
        write_record(&mut tx, &record).await?;
        let answer = convert::record(&record);
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn get_consent_state(
        &self,
        req: GetConsentStateRequest,
    ) -> Result<GetConsentStateResponse> {
        let mut v = FieldViolations::new();
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let purposes = purposes::all(&mut conn).await?;
        let records = records::current_all(&mut conn, subject.id).await?;
        let states = purposes
            .iter()
            .map(|purpose| {
                convert::state(purpose, records.iter().find(|r| r.purpose == purpose.code))
            })
            .collect();
        Ok(GetConsentStateResponse { states })
    }

    pub async fn list_consent_history(
        &self,
        req: ListConsentHistoryRequest,
    ) -> Result<ListConsentHistoryResponse> {
        let mut v = FieldViolations::new();
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        let purpose = Some(req.purpose.trim()).filter(|p| !p.is_empty());
        let page: Page<Uuid> = Page::new(
            req.page_size,
            &req.page_token,
            &(subject.id, purpose),
            &mut v,
        );
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            records::history(&mut conn, subject.id, purpose, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListConsentHistoryResponse {
            records: rows.iter().map(convert::record).collect(),
            next_page_token,
        })
    }

    pub async fn check_consent(&self, req: CheckConsentRequest) -> Result<CheckConsentResponse> {
        let mut v = FieldViolations::new();
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        v.finish()?;
        let (purpose, record) =
            records::check(&mut *self.pool.acquire().await?, subject.id, &req.purpose)
                .await?
                .ok_or_else(|| ServiceError::not_found("Purpose", &req.purpose))?;
        let state = convert::state(&purpose, record.as_ref());
        Ok(CheckConsentResponse {
            granted: state.status() == ConsentStatus::Granted,
            state: Some(state),
        })
    }
}

/// Appends a consent record with its audit entry and its event.
pub(crate) async fn write_record(tx: &mut crm_kit::store::Tx, record: &RecordRow) -> Result<()> {
    records::insert(tx, record).await?;
    let action = match record.status {
        RecordStatus::Granted => "consent.granted",
        RecordStatus::Withdrawn => "consent.withdrawn",
    };
    let entry = Audit {
        actor: &record.recorded_by,
        action,
        subject: Some(record.subject()),
        purpose: Some(&record.purpose),
        details: serde_json::json!({
            "record_id": record.id, "channel": record.channel, "source_system": record.source_system,
            "text_version": record.text_version, "expires_at": record.expires_at,
            "reference": record.reference,
        }),
    };
    audit::append(tx, entry).await?;
    let event = ConsentChanged {
        subject: Some(convert::subject(record.subject())),
        purpose: record.purpose.clone(),
        status: record.status.to_proto() as i32,
        record_id: record.id.to_string(),
    };
    events::CONSENT
        .enqueue(tx, record.subject_id, &event)
        .await?;
    Ok(())
}

impl Consents {
    /// Until shutdown: announces consents as their expiry passes, within seconds (one indexed
    /// query a tick).
    pub async fn announce_expiries_until(self, shutdown: crm_kit::shutdown::Shutdown) {
        while shutdown.sleep(std::time::Duration::from_secs(2)).await {
            if let Err(error) = self.announce_expiries().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "announcing expired consents failed"
                );
            }
        }
    }

    /// Announces consents whose expiry passed (ConsentChanged EXPIRED, with an audit entry), each
    /// once, so services holding a local view stop relying on them. Returns how many.
    pub(crate) async fn announce_expiries(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let expired = records::lock_newly_expired(&mut tx, 100).await?;
        for record in &expired {
            let entry = Audit {
                actor: domain::SYSTEM_ACTOR,
                action: "consent.expired",
                subject: Some(record.subject()),
                purpose: Some(&record.purpose),
                details: serde_json::json!({ "record_id": record.id, "expires_at": record.expires_at }),
            };
            audit::append(&mut tx, entry).await?;
            let event = ConsentChanged {
                subject: Some(convert::subject(record.subject())),
                purpose: record.purpose.clone(),
                status: ConsentStatus::Expired as i32,
                record_id: record.id.to_string(),
            };
            events::CONSENT
                .enqueue(&mut tx, record.subject_id, &event)
                .await?;
            records::mark_expiry_announced(&mut tx, record.subject_id, &record.purpose).await?;
        }
        tx.commit().await?;
        Ok(expired.len())
    }
}
