//! Rows as the API answers them, one function per resource.

use chrono::Utc;
use crm_kit::request::timestamp;
use crm_proto::crm::{common::v1::RetainedData, consent::v1 as proto};

use crate::{
    domain::{Subject, current_status},
    store::{
        audit::AuditRow,
        purposes::{PurposeRow, TextRow},
        records::RecordRow,
        requests::{AnswerRow, RequestRow},
    },
};

pub fn subject(subject: Subject) -> proto::Subject {
    proto::Subject {
        kind: subject.kind.to_proto() as i32,
        id: subject.id.to_string(),
    }
}

pub fn purpose(row: &PurposeRow) -> proto::Purpose {
    proto::Purpose {
        code: row.code.clone(),
        description: row.description.clone(),
        legal_basis: row.legal_basis.to_proto() as i32,
        text_version: row.text_version,
        text: row.text.clone(),
        minimum_consented_version: row.minimum_consented_version,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: row.version.to_string(),
    }
}

pub fn purpose_text(row: &TextRow) -> proto::PurposeText {
    proto::PurposeText {
        version: row.version,
        text: row.text.clone(),
        publish_time: Some(timestamp(row.published_at)),
    }
}

pub fn record(row: &RecordRow) -> proto::ConsentRecord {
    proto::ConsentRecord {
        id: row.id.to_string(),
        subject: Some(subject(row.subject())),
        purpose: row.purpose.clone(),
        status: row.status.to_proto() as i32,
        evidence: Some(proto::Evidence {
            channel: row.channel.to_proto() as i32,
            source_system: row.source_system.clone(),
            text_version: row.text_version.unwrap_or_default(),
            reference: row.reference.clone(),
        }),
        record_time: Some(timestamp(row.recorded_at)),
        expire_time: row.expires_at.map(timestamp),
        recorded_by: row.recorded_by.clone(),
    }
}

/// What counts now for a purpose, with the record behind it.
pub fn state(purpose: &PurposeRow, latest: Option<&RecordRow>) -> proto::ConsentState {
    let status = current_status(
        latest.map(RecordRow::latest),
        purpose.minimum_consented_version,
        Utc::now(),
    );
    proto::ConsentState {
        purpose: purpose.code.clone(),
        status: status as i32,
        record: latest.map(record),
    }
}

pub fn audit_entry(row: &AuditRow) -> proto::AuditEntry {
    proto::AuditEntry {
        id: row.id,
        time: Some(timestamp(row.at)),
        actor: row.actor.clone(),
        action: row.action.clone(),
        subject: row
            .subject_kind
            .zip(row.subject_id)
            .map(|(kind, id)| subject(Subject { kind, id })),
        purpose: row.purpose.clone().unwrap_or_default(),
        details: row.details.to_string(),
    }
}

pub fn request(row: &RequestRow, answers: Vec<AnswerRow>) -> proto::SubjectRequest {
    proto::SubjectRequest {
        id: row.id.to_string(),
        r#type: row.kind.to_proto() as i32,
        subject: Some(subject(row.subject())),
        status: row.status.to_proto() as i32,
        verification: row.verification.to_proto() as i32,
        verification_method: row.verification_method.clone(),
        details: row.details.clone(),
        purposes: row.purposes.clone(),
        channel: row.channel.to_proto() as i32,
        receive_time: Some(timestamp(row.received_at)),
        due_time: Some(timestamp(row.due_at)),
        overdue: row.overdue,
        extension_days: row.extension_days,
        extension_reason: row.extension_reason.clone(),
        complete_time: row.completed_at.map(timestamp),
        resolution: row.resolution.clone(),
        answers: answers.into_iter().map(answer).collect(),
        opened_by: row.opened_by.clone(),
    }
}

fn answer(a: AnswerRow) -> proto::ServiceAnswer {
    proto::ServiceAnswer {
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
    }
}
