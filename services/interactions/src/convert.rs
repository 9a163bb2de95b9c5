//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, timestamp};
use crm_proto::crm::interactions::v1 as proto;
use uuid::Uuid;

use crate::{
    domain::{self, TaskStatus},
    store::{interactions::InteractionRow, notes::NoteRow, tasks::TaskRow},
};

pub fn interaction(row: &InteractionRow) -> proto::Interaction {
    proto::Interaction {
        id: row.id.to_string(),
        channel: row.channel.to_proto() as i32,
        direction: row.direction.to_proto() as i32,
        subject: row.subject.clone(),
        body: row.body.clone(),
        occur_time: Some(timestamp(row.occurred_at)),
        duration_seconds: row.duration_seconds,
        outcome: row.outcome.clone(),
        participants: domain::participants_to_proto(&row.participants),
        links: domain::links_to_proto(&row.links),
        attachments: domain::attachments_to_proto(&row.attachments),
        dialled_number: row.dialled_number.clone(),
        recording_reference: row.recording_reference.clone(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
        message_id: row.message_id.clone().unwrap_or_default(),
        thread_id: row.thread_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub fn note(row: &NoteRow) -> proto::Note {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    proto::Note {
        id: row.id.to_string(),
        party_id: id(row.party_id),
        person_id: id(row.person_id),
        interaction_id: id(row.interaction_id),
        task_id: id(row.task_id),
        case_id: id(row.case_id),
        text: row.text.clone(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn task(row: &TaskRow) -> proto::Task {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let open = matches!(row.status, TaskStatus::Open | TaskStatus::InProgress);
    proto::Task {
        id: row.id.to_string(),
        title: row.title.clone(),
        description: row.description.clone(),
        assignee: row.assignee.clone(),
        due_time: row.due_at.map(timestamp),
        priority: row.priority.to_proto() as i32,
        status: row.status.to_proto() as i32,
        reminder_times: row.reminder_times.iter().copied().map(timestamp).collect(),
        party_id: id(row.party_id),
        person_id: id(row.person_id),
        interaction_id: id(row.interaction_id),
        case_id: id(row.case_id),
        overdue: open && row.due_at.is_some_and(|due| due <= chrono::Utc::now()),
        complete_time: row.completed_at.map(timestamp),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}
