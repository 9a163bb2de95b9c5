//! Invoiced sales earn points. The ERP writes invoices and credit notes to
//! `crm.sales.invoices.v1` (contract: `proto/crm/sales/v1/invoices.proto`); this consumer accrues
//! each invoice line by the accrual rules of every program the buyer is an active member of, and
//! reverses those points on a credit note.
//!
//! Exactly once per line: the kit's inbox skips a redelivered event, and each line's posting has
//! the client id `invoice:<invoice>:<line>:<program>`, so even a document re-sent under a new
//! `ce_id` earns nothing twice; a credit note reverses each line at most once.

use chrono::{DateTime, Utc};
use crm_kit::{
    consumer::{Event, HandleError, Handler},
    error::{FieldViolations, Result, ServiceError},
    store::Tx,
};
use crm_proto::crm::sales::v1::{CreditNote, Invoice, SalesDocument, sales_document::Document};
use prost::Message;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use tracing::Span;
use uuid::Uuid;

use crate::domain;
use crate::{
    domain::MAX_POINTS,
    ledger::Target,
    posting::{self, Announce, Change, Posting, System, reverse},
    store,
};

pub const INVOICE_TOPIC: &str = "crm.sales.invoices.v1";
/// The consumer group, and the `created_by` of the operations it posts.
pub const CONSUMER: &str = "crm-loyalty.invoices";

pub struct InvoiceAccrual;

impl Handler for InvoiceAccrual {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        let document = SalesDocument::decode(event.payload.as_slice()).map_err(|e| {
            HandleError::Reject(anyhow::anyhow!("not a crm.sales.v1.SalesDocument: {e}"))
        })?;
        let applied = match document.document {
            Some(Document::Invoice(invoice)) => accrue(tx, &invoice).await,
            Some(Document::CreditNote(note)) => reverse_lines(tx, &note).await,
            None => {
                return Err(HandleError::Reject(anyhow::anyhow!(
                    "an empty SalesDocument"
                )));
            }
        };
        applied.map_err(|error| match error {
            // Worth another try: the database or a dependency had a moment.
            ServiceError::Database(_)
            | ServiceError::DatabaseUnavailable
            | ServiceError::Conflict
            | ServiceError::Unavailable(_)
            | ServiceError::Internal(_) => HandleError::Retry(error.into()),
            // The document itself is wrong for the ledger: park it for a person to look at.
            _ => HandleError::Reject(error.into()),
        })
    }
}

struct Line<'a> {
    id: &'a str,
    category: &'a str,
    net: Decimal,
}

/// The buyer, the lines and their total, or the fields that make the invoice unusable.
fn invoice_lines(invoice: &Invoice) -> Result<(Uuid, Vec<Line<'_>>, Decimal)> {
    let mut v = FieldViolations::new();
    let party = crm_kit::request::uuid(&invoice.party_id, "invoice.party_id", &mut v);
    v.check(
        plain_id(&invoice.invoice_id),
        "invoice.invoice_id",
        "must be non-empty and without ':'",
    );
    let mut seen = std::collections::HashSet::new();
    let lines: Vec<Line<'_>> = invoice
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            v.check(
                plain_id(&line.line_id),
                format!("invoice.lines[{i}].line_id"),
                "must be non-empty and without ':'",
            );
            v.check(
                seen.insert(line.line_id.as_str()),
                format!("invoice.lines[{i}].line_id"),
                "repeats the id of an earlier line",
            );
            let net = line.net_amount.trim().parse::<Decimal>();
            v.check(
                net.is_ok(),
                format!("invoice.lines[{i}].net_amount"),
                "is not a decimal amount",
            );
            Line {
                id: &line.line_id,
                category: line.category.trim(),
                net: net.unwrap_or_default(),
            }
        })
        .collect();
    v.finish()?;
    // Amounts beyond what a decimal holds are refused, never a panic (which would stop the consumer).
    let Some(total) = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, line| sum.checked_add(line.net))
    else {
        let mut v = FieldViolations::new();
        v.add(
            "invoice.lines",
            "the net amounts add up past what a decimal holds",
        );
        return Err(v.into());
    };
    Ok((party, lines, total))
}

async fn accrue(tx: &mut Tx, invoice: &Invoice) -> Result<()> {
    let (party, lines, total) = invoice_lines(invoice)?;
    // Campaigns run on the invoice's issue date (its start, UTC), or now for an undated one.
    let issued_at = invoice
        .issue_date
        .and_then(|d| {
            chrono::NaiveDate::from_ymd_opt(d.year, d.month.max(0) as u32, d.day.max(0) as u32)
        })
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map_or_else(Utc::now, |midnight| midnight.and_utc());

    // Turnover (for automatic discount levels) counts every invoice, member or not, once.
    let ids: Vec<&str> = lines.iter().map(|line| line.id).collect();
    let nets: Vec<Decimal> = lines.iter().map(|line| line.net).collect();
    // A quantity that is not a decimal is kept as unknown: returns of that line go by amount.
    let quantities: Vec<Option<Decimal>> = invoice
        .lines
        .iter()
        .map(|line| line.quantity.trim().parse().ok())
        .collect();
    let currency = invoice.currency_code.trim().to_uppercase();
    store::record_invoice_lines(
        tx,
        &invoice.invoice_id,
        party,
        &currency,
        &ids,
        &nets,
        &quantities,
    )
    .await?;

    for membership in store::accruing_memberships(tx, party).await? {
        let Some(Accrual {
            program,
            rules,
            operation_type,
            point_type,
        }) = accrual_setup(tx, &membership, invoice, total).await?
        else {
            continue;
        };
        let program_id = program.id;
        let target = Target {
            program,
            membership,
            person_id: None,
            point_type,
        };
        let tier_multiplier = target
            .membership
            .tier
            .as_ref()
            .and_then(|tier| rules.tier_multipliers.get(tier))
            .map_or(Decimal::ONE, |m| decimal(m));
        let mut cap_left = (rules.cap_per_invoice > 0).then_some(rules.cap_per_invoice);
        let mut period_left = if rules.cap_per_period > 0 {
            let earned =
                earned_in_period(tx, &target, &invoice.invoice_id, rules.period_days).await?;
            Some((rules.cap_per_period - earned).max(0))
        } else {
            None
        };
        let expires_at = store::expiry_of(&target.point_type, &target.program, Utc::now());
        let mut postings = Vec::new();
        for line in &lines {
            let rate = rules
                .category_rates
                .get(line.category)
                .unwrap_or(&rules.points_per_unit);
            let campaign = campaign_multiplier(&rules.campaigns, line.category, issued_at);
            let mut points = line_points(line.net, &[decimal(rate), tier_multiplier, campaign]);
            for cap in [cap_left.as_mut(), period_left.as_mut()]
                .into_iter()
                .flatten()
            {
                points = points.min(*cap).max(0);
            }
            for cap in [cap_left.as_mut(), period_left.as_mut()]
                .into_iter()
                .flatten()
            {
                *cap -= points;
            }
            let client_id = format!("invoice:{}:{}:{program_id}", invoice.invoice_id, line.id);
            // Computed the same way each time, so a re-sent invoice meets the same cap and skips.
            if points <= 0 || store::operation_exists(tx, &client_id).await? {
                continue;
            }
            postings.push(Posting {
                account: target.key(),
                change: Change::Credit { points, expires_at },
                operation: Some(posting::Operation {
                    client_id,
                    operation_type: operation_type.code.clone(),
                    reference: invoice.number.clone(),
                    subject: CONSUMER.to_owned(),
                    reverses: None,
                    system: System::Issuance,
                    announce: Announce::Accrued,
                    qualifying: target.point_type.qualifying,
                }),
                requires_active: true,
                span: Span::current(),
            });
        }
        for outcome in posting::apply(tx, &postings).await? {
            outcome?;
        }
    }
    Ok(())
}

struct Accrual {
    program: store::ProgramRow,
    rules: store::AccrualRulesJson,
    operation_type: store::OperationTypeRow,
    point_type: store::PointTypeRow,
}

/// What a member's program accrues this invoice with: none where the program has no accrual
/// rules, another currency or a higher minimum, or where its rules' operation type is not one of
/// its ACCRUE types or has no point type.
async fn accrual_setup(
    tx: &mut Tx,
    membership: &store::MembershipRow,
    invoice: &Invoice,
    total: Decimal,
) -> Result<Option<Accrual>> {
    let program = store::get_program(tx, membership.program_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
    let Some(rules) = program.accrual_rules.clone().map(|rules| rules.0) else {
        return Ok(None);
    };
    if !program
        .currency_code
        .eq_ignore_ascii_case(invoice.currency_code.trim())
    {
        return Ok(None);
    }
    if total < rules.minimum_amount.parse().unwrap_or_default() {
        return Ok(None);
    }
    let operation_type = store::operation_types(tx, program.id)
        .await?
        .into_iter()
        .find(|t| t.code == rules.operation_type && t.direction == domain::Direction::Accrue);
    let Some(operation_type) = operation_type else {
        return Ok(None);
    };
    let Some(point_type) = store::point_types(tx, program.id)
        .await?
        .into_iter()
        .find(|t| t.code == operation_type.default_point_type)
    else {
        return Ok(None);
    };
    Ok(Some(Accrual {
        program,
        rules,
        operation_type,
        point_type,
    }))
}

/// A line's points before caps: its net amount times every factor, rounded down. Past i64 (or a
/// decimal), a line earns the most one operation may move.
fn line_points(net: Decimal, factors: &[Decimal]) -> i64 {
    factors
        .iter()
        .try_fold(net, |points, factor| points.checked_mul(*factor))
        .map_or(Some(MAX_POINTS), |p| p.floor().to_i64())
        .unwrap_or(MAX_POINTS)
        .min(MAX_POINTS)
}

/// Takes back the points of what a credit note returns: whole lines all their points, lines
/// returned in part the share of their points that all returns of them so far make up (so that
/// several partial returns never take back more than the line earned, and all of it once the
/// whole line is back).
async fn reverse_lines(tx: &mut Tx, note: &CreditNote) -> Result<()> {
    let mut v = FieldViolations::new();
    v.check(
        plain_id(&note.invoice_id),
        "credit_note.invoice_id",
        "must be non-empty and without ':'",
    );
    v.check(
        plain_id(&note.credit_note_id),
        "credit_note.credit_note_id",
        "must be non-empty and without ':'",
    );
    let returned: Vec<store::ReturnedLine> = note
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let field = |name: &str| format!("credit_note.lines[{i}].{name}");
            v.check(
                plain_id(&line.line_id),
                field("line_id"),
                "must be non-empty and without ':'",
            );
            let amount = returned_measure(&line.net_amount, &field("net_amount"), &mut v);
            let quantity = returned_measure(&line.quantity, &field("quantity"), &mut v);
            v.check(
                amount.is_some() || quantity.is_some(),
                field("net_amount"),
                "give the net amount or the quantity returned",
            );
            store::ReturnedLine {
                line_id: line.line_id.clone(),
                amount: amount.unwrap_or_default(),
                quantity: quantity.unwrap_or_default(),
            }
        })
        .collect();
    v.finish()?;
    let whole_invoice = note.line_ids.is_empty() && note.lines.is_empty();
    store::credit_invoice_lines(tx, &note.invoice_id, &note.line_ids, whole_invoice).await?;
    let shares =
        store::return_invoice_lines(tx, &note.invoice_id, &note.credit_note_id, &returned).await?;
    let prefix = format!("invoice:{}:", note.invoice_id);
    for posted in store::lock_operations_by_prefix(tx, &prefix).await? {
        let Some((line, program)) = posted.client_id[prefix.len()..].split_once(':') else {
            continue;
        };
        let due = if whole_invoice || note.line_ids.iter().any(|id| id == line) {
            posted.points
        } else if let Some(share) = shares.get(line) {
            (Decimal::from(posted.points) * (*share).min(Decimal::ONE))
                .floor()
                .to_i64()
                .unwrap_or(0)
        } else {
            continue;
        };
        let client_id = format!("credit-note:{}:{line}:{program}", note.credit_note_id);
        // Reversed already as far as is due (by this note, redelivered, or by earlier ones).
        let points = due - posted.reversed_points;
        if points <= 0 || store::operation_exists(tx, &client_id).await? {
            continue;
        }
        reverse(
            tx,
            &posted,
            Some(points),
            &client_id,
            &note.number,
            CONSUMER,
        )
        .await?;
    }
    Ok(())
}

/// A returned amount or quantity: empty for none, otherwise a non-negative decimal.
fn returned_measure(text: &str, field: &str, v: &mut FieldViolations) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let parsed = text
        .parse::<Decimal>()
        .ok()
        .filter(|d| !d.is_sign_negative());
    v.check(parsed.is_some(), field, "is not a non-negative decimal");
    parsed
}

/// Points invoices other than `invoice` earned the target within the last `days`, net of reversals.
async fn earned_in_period(tx: &mut Tx, target: &Target, invoice: &str, days: i32) -> Result<i64> {
    let (membership, program) = (target.membership.id, target.program.id);
    Ok(store::invoice_points_since(tx, membership, program, invoice, days).await?)
}

/// The highest multiplier of the campaigns running at `at` for `category`; 1 when none is.
fn campaign_multiplier(
    campaigns: &[store::CampaignJson],
    category: &str,
    at: DateTime<Utc>,
) -> Decimal {
    campaigns
        .iter()
        .filter(|c| {
            c.start_time.is_none_or(|start| start <= at) && c.end_time.is_none_or(|end| at < end)
        })
        .filter(|c| c.categories.is_empty() || c.categories.iter().any(|c| c == category))
        .map(|c| decimal(&c.multiplier))
        .max()
        .unwrap_or(Decimal::ONE)
}

/// Stored rule decimals were validated when set.
fn decimal(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

fn plain_id(id: &str) -> bool {
    !id.trim().is_empty() && !id.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_earns_its_amount_times_every_factor_rounded_down() {
        let factors = [decimal("1.5"), decimal("2"), Decimal::ONE];
        assert_eq!(line_points(decimal("10.99"), &factors), 32);
        assert_eq!(line_points(decimal("10"), &[]), 10);
    }

    #[test]
    fn a_line_past_what_one_operation_moves_earns_the_most_it_may() {
        let huge = Decimal::MAX;
        assert_eq!(line_points(huge, &[decimal("2")]), MAX_POINTS);
        let beyond_i64 = [decimal("1000000")];
        assert_eq!(
            line_points(decimal("1000000000000000"), &beyond_i64),
            MAX_POINTS
        );
        assert_eq!(line_points(decimal("2000000000000"), &[]), MAX_POINTS);
    }
}
