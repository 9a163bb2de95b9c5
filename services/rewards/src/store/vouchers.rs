//! Voucher codes: imported, taken by orders, given back, issued.

use chrono::NaiveDate;
use crm_kit::store::Tx;
use uuid::Uuid;

/// Adds the codes the reward does not hold yet; returns how many were added. The reward is locked
/// by the caller.
pub async fn import(
    tx: &mut Tx,
    reward: Uuid,
    codes: &[String],
    valid_until: &[Option<NaiveDate>],
) -> sqlx::Result<i64> {
    let added: i64 = sqlx::query_scalar(
        "WITH added AS (
             INSERT INTO voucher_codes (reward_id, code, valid_until)
             SELECT $1, c.code, c.valid_until FROM unnest($2::text[], $3::date[]) c (code, valid_until)
             ON CONFLICT DO NOTHING
             RETURNING 1)
         SELECT count(*) FROM added",
    )
    .bind(reward)
    .bind(codes)
    .bind(valid_until)
    .fetch_one(&mut **tx)
    .await?;
    Ok(added)
}

/// Takes up to `quantity` unissued codes of the reward for the order's line (codes other orders
/// are taking are skipped, not waited for); returns how many it took.
pub async fn take_codes(
    tx: &mut Tx,
    reward: Uuid,
    order: Uuid,
    line: i32,
    quantity: i64,
) -> sqlx::Result<i64> {
    let taken = sqlx::query(
        "UPDATE voucher_codes SET order_id = $2, line = $3
          WHERE (reward_id, code) IN (
              SELECT reward_id, code FROM voucher_codes
               WHERE reward_id = $1 AND order_id IS NULL
                 AND (valid_until IS NULL OR valid_until >= current_date)
               ORDER BY imported_at, code LIMIT $4 FOR UPDATE SKIP LOCKED)",
    )
    .bind(reward)
    .bind(order)
    .bind(line)
    .bind(quantity)
    .execute(&mut **tx)
    .await?
    .rows_affected() as i64;
    Ok(taken)
}

/// Gives back the codes an order took and was not issued.
pub async fn give_back_codes(tx: &mut Tx, order: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE voucher_codes SET order_id = NULL, line = NULL
          WHERE order_id = $1 AND issued_at IS NULL",
    )
    .bind(order)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Issues the codes the order took, and adds `generated` (reward, line, code) ones; each is valid
/// until the partner's last day or the reward's validity from today, whichever comes first.
pub async fn issue_codes(
    tx: &mut Tx,
    order: Uuid,
    generated: &[(Uuid, i32, String)],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO voucher_codes (reward_id, code, order_id, line)
         SELECT r, c, $1, l FROM unnest($2::uuid[], $3::int[], $4::text[]) g (r, l, c)",
    )
    .bind(order)
    .bind(generated.iter().map(|g| g.0).collect::<Vec<_>>())
    .bind(generated.iter().map(|g| g.1).collect::<Vec<_>>())
    .bind(generated.iter().map(|g| g.2.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE voucher_codes c SET issued_at = now(),
             valid_until = CASE WHEN r.voucher_valid_days = 0 THEN c.valid_until
                 ELSE least(c.valid_until, current_date + r.voucher_valid_days) END
           FROM rewards r
          WHERE c.order_id = $1 AND c.issued_at IS NULL AND r.id = c.reward_id",
    )
    .bind(order)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
