//! Invoice lines as the ERP reported them (turnover, credit notes) and the points they earned.

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
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO invoice_lines (invoice_id, line_id, party_id, currency_code, net_amount)
         SELECT $1, line_id, $2, $3, net FROM unnest($4::text[], $5::numeric[]) AS l(line_id, net)
         ON CONFLICT DO NOTHING",
    )
    .bind(invoice)
    .bind(party)
    .bind(currency)
    .bind(line_ids)
    .bind(nets)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks lines credited by a credit note (all of the invoice's when it names none).
pub async fn credit_invoice_lines(
    tx: &mut Tx,
    invoice: &str,
    line_ids: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoice_lines SET credited = true
         WHERE invoice_id = $1 AND (cardinality($2::text[]) = 0 OR line_id = ANY($2))",
    )
    .bind(invoice)
    .bind(line_ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
