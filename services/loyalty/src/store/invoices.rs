//! Invoice lines as the ERP reported them (turnover, credit notes) and the points they earned.

use std::collections::HashMap;

use crm_kit::store::Tx;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Records an invoice's lines once (a redelivered invoice adds nothing).
pub async fn record_invoice_lines(
    tx: &mut Tx,
    invoice: &str,
    party: Uuid,
    currency: &str,
    line_ids: &[&str],
    nets: &[Decimal],
    quantities: &[Option<Decimal>],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO invoice_lines (invoice_id, line_id, party_id, currency_code, net_amount, quantity)
         SELECT $1, line_id, $2, $3, net, quantity
         FROM unnest($4::text[], $5::numeric[], $6::numeric[]) AS l(line_id, net, quantity)
         ON CONFLICT DO NOTHING",
    )
    .bind(invoice)
    .bind(party)
    .bind(currency)
    .bind(line_ids)
    .bind(nets)
    .bind(quantities)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks lines credited whole by a credit note (all of the invoice's with `whole_invoice`).
pub async fn credit_invoice_lines(
    tx: &mut Tx,
    invoice: &str,
    line_ids: &[String],
    whole_invoice: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoice_lines SET credited = true
         WHERE invoice_id = $1 AND ($3 OR line_id = ANY($2))",
    )
    .bind(invoice)
    .bind(line_ids)
    .bind(whole_invoice)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Part of an invoice line a credit note returns.
pub struct ReturnedLine {
    pub line_id: String,
    pub amount: Decimal,
    pub quantity: Decimal,
}

/// Adds what a credit note returns to its lines, once per note and line (never past the line's
/// amount or quantity); returns, per line the note newly returns, the share of it returned so far
/// (by net amount, or by quantity where the line has one; the larger, at most 1).
pub async fn return_invoice_lines(
    tx: &mut Tx,
    invoice: &str,
    credit_note: &str,
    lines: &[ReturnedLine],
) -> sqlx::Result<HashMap<String, Decimal>> {
    if lines.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = lines.iter().map(|l| l.line_id.as_str()).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let quantities: Vec<Decimal> = lines.iter().map(|l| l.quantity).collect();
    let rows: Vec<(String, Decimal)> = sqlx::query_as(
        "WITH fresh AS (
             INSERT INTO invoice_line_returns (invoice_id, credit_note_id, line_id, amount, quantity)
             SELECT $1, $5, line_id, sum(amount), sum(quantity)
             FROM unnest($2::text[], $3::numeric[], $4::numeric[]) AS r(line_id, amount, quantity)
             GROUP BY line_id
             ON CONFLICT DO NOTHING
             RETURNING line_id, amount, quantity
         )
         UPDATE invoice_lines l
         SET returned_amount = least(l.net_amount, l.returned_amount + f.amount),
             returned_quantity = least(coalesce(l.quantity, 0), l.returned_quantity + f.quantity)
         FROM fresh f
         WHERE l.invoice_id = $1 AND l.line_id = f.line_id
         RETURNING l.line_id, round(least(1, greatest(
             CASE WHEN l.net_amount > 0 THEN l.returned_amount / l.net_amount ELSE 0 END,
             CASE WHEN l.quantity > 0 THEN l.returned_quantity / l.quantity ELSE 0 END)), 12)",
    )
    .bind(invoice)
    .bind(&ids)
    .bind(&amounts)
    .bind(&quantities)
    .bind(credit_note)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Points invoices other than `invoice` earned the membership in `program` within the last
/// `days`, net of reversals.
pub async fn invoice_points_since(
    tx: &mut Tx,
    membership: Uuid,
    program: Uuid,
    invoice: &str,
    days: i32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(o.points), 0)::bigint
         FROM operations o JOIN accounts a ON a.id = o.account_id
         WHERE a.kind = 'member' AND a.membership_id = $1 AND o.client_id LIKE 'invoice:%'
           AND o.client_id LIKE '%:' || $2 AND o.client_id NOT LIKE 'invoice:' || $3 || ':%'
           AND o.created_at >= now() - make_interval(days => $4)
           AND NOT EXISTS (SELECT 1 FROM operations r WHERE r.reverses = o.id)",
    )
    .bind(membership)
    .bind(program.to_string())
    .bind(invoice)
    .bind(days)
    .fetch_one(&mut **tx)
    .await
}
