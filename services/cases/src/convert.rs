//! Rows as the API answers them, one function per resource.

use chrono::{DateTime, Utc};
use crm_kit::request::{audit, date_to_proto, money_to_proto, timestamp};
use crm_proto::crm::{cases::v1 as proto, sales::v1 as sales};

use crate::{
    domain::{
        DocumentKind,
        alarms::{Action, Kind, Level},
        calendar::Calendar,
        sla::Standing,
    },
    store::{
        cases::{CaseRow, VisitRow},
        desk::{CalendarRow, EscalationRow, MessageRow, PolicyRow, TicketRow},
        offers::{OfferRow, VersionRow},
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

pub fn offer<'a>(row: &OfferRow, versions: impl Iterator<Item = &'a VersionRow>) -> proto::Offer {
    let money = |amount: rust_decimal::Decimal| Some(money_to_proto(amount, &row.currency_code));
    let text_money = |amount: &str| {
        Some(crm_proto::crm::common::v1::Money {
            amount: amount.to_owned(),
            currency_code: row.currency_code.clone(),
        })
    };
    proto::Offer {
        id: row.id.to_string(),
        party_id: row.party_id.to_string(),
        case_id: row.case_id.map(|id| id.to_string()).unwrap_or_default(),
        title: row.title.clone(),
        currency_code: row.currency_code.clone(),
        locale: row.locale.clone(),
        valid_until: Some(date_to_proto(row.valid_until)),
        price_list: row.price_list.clone(),
        membership_id: row
            .membership_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        notes: row.notes.clone(),
        status: row.status.to_proto() as i32,
        versions: versions
            .map(|v| proto::OfferVersion {
                number: v.number,
                lines: v
                    .lines
                    .iter()
                    .map(|l| proto::OfferLine {
                        product_id: l.product_id.clone(),
                        description: l.description.clone(),
                        quantity: l.quantity.clone(),
                        unit: l.unit.clone(),
                        unit_price: l.unit_price.clone(),
                        discount_percent: l.discount_percent.clone(),
                        tax_code: l.tax_code.clone(),
                        tax_percent: l.tax_percent.clone(),
                        category: l.category.clone(),
                        member_discount_percent: l.member_discount_percent.clone(),
                        applied_discount_percent: l.applied_discount_percent.clone(),
                        net: l.net.clone(),
                    })
                    .collect(),
                coupon_code: v.coupon_code.clone(),
                coupon_percent: v.coupon_percent.normalize().to_string(),
                tax_totals: v
                    .tax_totals
                    .iter()
                    .map(|t| proto::TaxTotal {
                        tax_code: t.tax_code.clone(),
                        tax_percent: t.tax_percent.clone(),
                        net: text_money(&t.net),
                        tax: text_money(&t.tax),
                        gross: text_money(&t.gross),
                    })
                    .collect(),
                net: money(v.net),
                tax: money(v.tax),
                gross: money(v.gross),
                create_time: Some(timestamp(v.created_at)),
                created_by: v.created_by.clone(),
            })
            .collect(),
        accepted_version: row.accepted_version.unwrap_or_default(),
        order_request_id: row
            .order_request_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        reject_reason: row.reject_reason.clone(),
        client_reference: row.client_reference.clone(),
        send_time: row.sent_at.map(timestamp),
        decide_time: row.decided_at.map(timestamp),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

/// The sales order an accepted version asks the ERP for.
pub fn sales_order(
    row: &OfferRow,
    version: &VersionRow,
    accepted_by: &str,
    at: DateTime<Utc>,
) -> sales::SalesOrderRequested {
    let money = |amount: &str| {
        Some(crm_proto::crm::common::v1::Money {
            amount: amount.to_owned(),
            currency_code: row.currency_code.clone(),
        })
    };
    sales::SalesOrderRequested {
        order_request_id: row
            .order_request_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        offer_id: row.id.to_string(),
        offer_version: version.number,
        party_id: row.party_id.to_string(),
        case_id: row.case_id.map(|id| id.to_string()).unwrap_or_default(),
        currency_code: row.currency_code.clone(),
        lines: version
            .lines
            .iter()
            .zip(1..)
            .map(|(l, number)| sales::SalesOrderLine {
                line_number: number,
                product_id: l.product_id.clone(),
                description: l.description.clone(),
                quantity: l.quantity.clone(),
                unit: l.unit.clone(),
                unit_price: l.unit_price.clone(),
                discount_percent: l.applied_discount_percent.clone(),
                net: l.net.clone(),
                tax_code: l.tax_code.clone(),
                tax_percent: l.tax_percent.clone(),
            })
            .collect(),
        tax_totals: version
            .tax_totals
            .iter()
            .map(|t| sales::SalesOrderTaxTotal {
                tax_code: t.tax_code.clone(),
                tax_percent: t.tax_percent.clone(),
                net: money(&t.net),
                tax: money(&t.tax),
                gross: money(&t.gross),
            })
            .collect(),
        net: money(&version.net.to_string()),
        tax: money(&version.tax.to_string()),
        gross: money(&version.gross.to_string()),
        coupon_code: version.coupon_code.clone(),
        membership_id: row
            .membership_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        client_reference: row.client_reference.clone(),
        accept_time: Some(timestamp(at)),
        accepted_by: accepted_by.to_owned(),
    }
}

pub fn calendar(row: &CalendarRow) -> proto::Calendar {
    let time = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
    proto::Calendar {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        time_zone: row.time_zone.clone(),
        days: row
            .week
            .iter()
            .zip(1..)
            .filter(|(periods, _)| !periods.is_empty())
            .map(|(periods, weekday)| proto::WorkingDay {
                weekday,
                periods: periods
                    .iter()
                    .map(|p| proto::WorkingPeriod {
                        start: time(p.start),
                        end: time(p.end),
                    })
                    .collect(),
            })
            .collect(),
        holidays: row.holidays.iter().copied().map(date_to_proto).collect(),
        always_open: row.always_open,
        audit: Some(audit(
            row.created_at,
            row.created_at,
            &row.created_by,
            &row.created_by,
        )),
    }
}

pub fn escalation(row: &EscalationRow) -> proto::Escalation {
    proto::Escalation {
        clock: Kind::parse(&row.clock).map_or(0, |k| k.to_proto() as i32),
        level: Level::parse(&row.level).map_or(0, |l| l.to_proto() as i32),
        action: Action::parse(&row.action).map_or(0, |a| a.to_proto() as i32),
        to: row.to.clone(),
    }
}

pub fn policy(row: &PolicyRow) -> proto::SlaPolicy {
    use crate::domain::tickets::{Priority, TicketType};
    let c = &row.conditions;
    proto::SlaPolicy {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        rank: row.rank,
        conditions: Some(proto::SlaConditions {
            types: c
                .kinds
                .iter()
                .filter_map(|k| TicketType::parse(k))
                .map(|k| k.to_proto() as i32)
                .collect(),
            priorities: c
                .priorities
                .iter()
                .filter_map(|p| Priority::parse(p))
                .map(|p| p.to_proto() as i32)
                .collect(),
            party_base_ids: c.bases.clone(),
            loyalty_tiers: c.tiers.clone(),
        }),
        calendar_id: row.calendar_id.to_string(),
        first_response_minutes: row.first_response_minutes,
        next_update_minutes: row.next_update_minutes,
        resolution_minutes: row.resolution_minutes,
        near_breach_percent: row.near_breach_percent,
        escalations: row.escalations.iter().map(escalation).collect(),
        audit: Some(audit(
            row.created_at,
            row.created_at,
            &row.created_by,
            &row.created_by,
        )),
    }
}

/// A ticket with its clocks as they stand at `now` on `calendar` (none without a policy).
pub fn ticket(
    row: &TicketRow,
    calendar: Option<&Calendar>,
    now: DateTime<Utc>,
    messages: &[MessageRow],
) -> proto::Ticket {
    let clocks = calendar.map_or_else(Vec::new, |calendar| {
        let clocks = row.clocks.clocks();
        row.clocks
            .each()
            .into_iter()
            .zip([
                &clocks.first_response,
                &clocks.next_update,
                &clocks.resolution,
            ])
            .map(|((kind, record), clock)| proto::SlaClock {
                kind: kind.to_proto() as i32,
                target_minutes: (record.target / 60) as i32,
                spent_seconds: clock.spent_by(now, calendar).num_seconds(),
                running: clock.running_since.is_some(),
                due_time: clock.due(calendar).map(timestamp),
                met_time: clock.met_at.map(timestamp),
                breached: clock.standing(now, calendar) == Standing::Breached,
                near_breach_announced: record.near_announced,
                breach_announced: record.breach_announced,
            })
            .collect()
    });
    proto::Ticket {
        id: row.id.to_string(),
        r#type: row.kind.to_proto() as i32,
        channel: row.channel.to_proto() as i32,
        priority: row.priority.to_proto() as i32,
        subject: row.subject.clone(),
        description: row.description.clone(),
        owner: row.owner.clone(),
        group: row.group.clone(),
        party_id: row.party_id.to_string(),
        person_id: row.person_id.map(|id| id.to_string()).unwrap_or_default(),
        membership_id: row
            .membership_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        order_reference: row.order_reference.clone(),
        invoice_reference: row.invoice_reference.clone(),
        status: row.status.to_proto() as i32,
        sla_policy_id: row
            .sla_policy_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        clocks,
        return_terms: row.return_terms.as_ref().map(|t| proto::ReturnTerms {
            tier: t.tier.clone(),
            return_window_days: t.return_window_days,
            free_return_shipping: t.free_return_shipping,
        }),
        resolution: row.resolution.clone(),
        resolve_time: row.resolved_at.map(timestamp),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
        messages: messages
            .iter()
            .map(|m| proto::TicketMessage {
                author: match m.author.as_str() {
                    "customer" => proto::Author::Customer,
                    _ => proto::Author::Agent,
                } as i32,
                text: m.text.clone(),
                time: Some(timestamp(m.at)),
                recorded_by: m.recorded_by.clone(),
            })
            .collect(),
    }
}
