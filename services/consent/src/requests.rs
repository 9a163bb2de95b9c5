//! Data-subject requests as operators handle them: opened as received, verified (then carried out,
//! see `fanout`), listed with their deadlines, extended, cancelled, completed by hand, or sent
//! again. Every step writes its audit entry in the transaction of the change.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result},
    request::{self, optional_time, text, time, uuid},
    store::Page,
};
use crm_proto::crm::consent::v1::*;
use serde_json::json;
use uuid::Uuid;

use crate::{
    Consents, convert,
    domain::{self, Channel, RequestStatus, RequestType, Verification},
    error::Refusal,
    events,
    fanout::{self, load, lock},
    purposes,
    store::requests::{self as store, Filter, NewRequest, RequestRow},
};

impl Consents {
    pub async fn open_subject_request(
        &self,
        caller: &str,
        req: OpenSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let kind = RequestType::require(req.r#type, "type", &mut v);
        let subject = domain::Subject::parse(req.subject.as_ref(), &mut v);
        let channel = Channel::require(req.channel, "channel", &mut v);
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
            req.purposes.is_empty() || domain::kind_names_purposes(kind),
            "purposes",
            "only an OBJECTION names purposes",
        );
        v.finish()?;
        let received_at = received_at.unwrap_or_else(Utc::now);
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        purposes::check_exist(&mut tx, &req.purposes).await?;
        let id = Uuid::now_v7();
        let due_at = domain::due_at(received_at);
        let request = NewRequest {
            id,
            kind,
            subject,
            details: req.details.trim(),
            purposes: &req.purposes,
            channel,
            received_at,
            due_at,
            opened_by: caller,
        };
        store::insert(&mut tx, &request).await?;
        let details =
            json!({ "request_id": id, "type": kind, "channel": channel, "due_at": due_at });
        fanout::audit(&mut tx, caller, "request.opened", subject, details).await?;
        let answer = load(&mut tx, id).await?;
        events::request_changed(&mut tx, &answer, "opened").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn verify_subject_request(
        &self,
        caller: &str,
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
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = lock(&mut tx, id).await?;
        if row.status != RequestStatus::Received {
            return Err(Refusal::RequestNotReceived {
                id,
                status: row.status,
            }
            .into());
        }
        let (status, verification, action) = if req.verified {
            (
                RequestStatus::Verified,
                Verification::Verified,
                "request.verified",
            )
        } else {
            (
                RequestStatus::Rejected,
                Verification::Failed,
                "request.rejected",
            )
        };
        store::verify(
            &mut tx,
            id,
            status,
            verification,
            req.method.trim(),
            req.note.trim(),
        )
        .await?;
        // The method and note stay on the request, which an erasure can clear; the audit log is
        // append-only, so it keeps no free text about the subject.
        let details = json!({ "request_id": id, "verified": req.verified });
        fanout::audit(&mut tx, caller, action, row.subject(), details).await?;
        if req.verified {
            fanout::carry_out(&mut tx, caller, &row, &self.registry).await?;
        }
        let answer = load(&mut tx, id).await?;
        events::request_changed(
            &mut tx,
            &answer,
            if req.verified { "verified" } else { "rejected" },
        )
        .await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn get_subject_request(
        &self,
        req: GetSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let id = request::id(&req.id, "id")?;
        load(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn list_subject_requests(
        &self,
        req: ListSubjectRequestsRequest,
    ) -> Result<ListSubjectRequestsResponse> {
        let mut v = FieldViolations::new();
        let status = RequestStatus::from_i32(req.status);
        v.check(
            status.is_some() || req.status == 0,
            "status",
            format!("must be {}, or unset for any", RequestStatus::expected()),
        );
        let filter = Filter {
            status,
            overdue_only: req.overdue_only,
            subject: req
                .subject
                .as_ref()
                .map(|s| domain::Subject::parse(Some(s), &mut v).id),
            kind: (req.r#type != 0).then(|| RequestType::require(req.r#type, "type", &mut v)),
            from: optional_time(req.from_time.as_ref(), "from_time", &mut v),
            to: optional_time(req.to_time.as_ref(), "to_time", &mut v),
        };
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut answers = store::answers(&mut conn, &ids).await?;
        let requests = rows
            .iter()
            .map(|row| convert::request(row, answers.remove(&row.id).unwrap_or_default()))
            .collect();
        Ok(ListSubjectRequestsResponse {
            requests,
            next_page_token,
        })
    }

    pub async fn cancel_subject_request(
        &self,
        caller: &str,
        req: CancelSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        let reason = text(&req.reason, "reason", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = lock(&mut tx, id).await?;
        still_open(&row)?;
        if row.kind == RequestType::Erasure && row.status == RequestStatus::InProgress {
            return Err(Refusal::ErasureUnderWay { id }.into());
        }
        store::finish(&mut tx, id, RequestStatus::Cancelled, &reason).await?;
        let details = json!({ "request_id": id, "reason": reason });
        fanout::audit(&mut tx, caller, "request.cancelled", row.subject(), details).await?;
        let answer = load(&mut tx, id).await?;
        events::request_changed(&mut tx, &answer, "cancelled").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn extend_subject_request(
        &self,
        caller: &str,
        req: ExtendSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            domain::extension_fits(0, req.days),
            "days",
            format!("must be 1 to {}", domain::MAX_EXTENSION_DAYS),
        );
        v.check(
            !req.reason.trim().is_empty(),
            "reason",
            "the subject must be told why: give the reason",
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = lock(&mut tx, id).await?;
        still_open(&row)?;
        if !domain::extension_fits(row.extension_days, req.days) {
            let extended = row.extension_days;
            return Err(Refusal::ExtensionExceeded { id, extended }.into());
        }
        store::extend(&mut tx, id, req.days, req.reason.trim()).await?;
        let details = json!({ "request_id": id, "days": req.days, "reason": req.reason.trim() });
        fanout::audit(&mut tx, caller, "request.extended", row.subject(), details).await?;
        let answer = load(&mut tx, id).await?;
        events::request_changed(&mut tx, &answer, "extended").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn complete_subject_request(
        &self,
        caller: &str,
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
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = lock(&mut tx, id).await?;
        if !row.kind.operator_work() || row.status != RequestStatus::InProgress {
            let (kind, status) = (row.kind, row.status);
            return Err(Refusal::NotOperatorWork { id, kind, status }.into());
        }
        fanout::complete(&mut tx, caller, &row, req.resolution.trim()).await?;
        let answer = load(&mut tx, id).await?;
        events::request_changed(&mut tx, &answer, "completed").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn resume_subject_request(
        &self,
        caller: &str,
        req: ResumeSubjectRequestRequest,
    ) -> Result<SubjectRequest> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = lock(&mut tx, id).await?;
        if !row.kind.fans_out() || row.status != RequestStatus::InProgress {
            return Err(Refusal::NotWaiting {
                id,
                status: row.status,
            }
            .into());
        }
        fanout::resend(&mut tx, caller, &row).await?;
        let answer = load(&mut tx, id).await?;
        events::request_changed(&mut tx, &answer, "sent").await?;
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }
}

fn still_open(row: &RequestRow) -> Result<()> {
    if row.status.open() {
        return Ok(());
    }
    Err(Refusal::RequestClosed {
        id: row.id,
        status: row.status,
    }
    .into())
}
