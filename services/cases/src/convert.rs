//! Rows as the API answers them, one function per resource.

use chrono::{DateTime, Utc};
use crm_kit::request::{audit, date_to_proto, money_to_proto, timestamp};
use crm_proto::crm::{cases::v1 as proto, sales::v1 as sales};

use crate::{
    domain::DocumentKind,
    store::{
        cases::{CaseRow, VisitRow},
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
    client_reference: &str,
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
        client_reference: client_reference.to_owned(),
        accept_time: Some(timestamp(at)),
        accepted_by: accepted_by.to_owned(),
    }
}
