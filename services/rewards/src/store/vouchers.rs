//! Voucher codes.

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
