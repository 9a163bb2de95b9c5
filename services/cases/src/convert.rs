//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, date_to_proto, money_to_proto, timestamp};
use crm_proto::crm::cases::v1 as proto;

use crate::{
    domain::DocumentKind,
    store::{
        cases::{CaseRow, VisitRow},
        pipelines::PipelineRow,
    },
};

pub fn pipeline(row: &PipelineRow) -> proto::Pipeline {
    proto::Pipeline {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        phases: row
            .phases
            .iter()
            .map(|p| proto::Phase {
                code: p.code.clone(),
                display_name: p.display_name.clone(),
                group: p.group.to_proto() as i32,
                probability: i32::from(p.probability),
            })
            .collect(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn case(row: &CaseRow, history: &[VisitRow]) -> proto::Case {
    let money = |amount: Option<rust_decimal::Decimal>| {
        amount.map(|a| money_to_proto(a, &row.currency_code))
    };
    proto::Case {
        id: row.id.to_string(),
        pipeline_id: row.pipeline_id.to_string(),
        title: row.title.clone(),
        description: row.description.clone(),
        kind: row.kind.to_proto() as i32,
        owner: row.owner.clone(),
        party_id: row.party_id.map(|id| id.to_string()).unwrap_or_default(),
        person_ids: row.person_ids.iter().map(ToString::to_string).collect(),
        watchers: row.watchers.clone(),
        phase: row.phase.clone(),
        status: row.status.to_proto() as i32,
        expected_value: money(Some(row.expected_value)),
        probability_override: row.probability_override.map(i32::from),
        probability: i32::from(row.probability),
        expected_close_date: row.expected_close_date.map(date_to_proto),
        planned_cost: money(row.planned_cost),
        actual_cost: money(row.actual_cost),
        planned_revenue: money(row.planned_revenue),
        actual_revenue: money(row.actual_revenue),
        document_links: row
            .document_links
            .iter()
            .map(|l| proto::DocumentLink {
                kind: DocumentKind::parse(&l.kind).map_or(0, |k| k.to_proto() as i32),
                reference: l.reference.clone(),
            })
            .collect(),
        history: history
            .iter()
            .map(|v| proto::PhaseVisit {
                phase: v.phase.clone(),
                enter_time: Some(timestamp(v.entered_at)),
                leave_time: v.left_at.map(timestamp),
            })
            .collect(),
        lost_reason: row.lost_reason.clone(),
        close_time: row.closed_at.map(timestamp),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}
