//! Tiers of programs.

use crm_kit::store::Tx;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::{MEMBERSHIP_COLUMNS, MembershipRow};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TierRow {
    pub code: String,
    pub display_name: String,
    pub threshold: i64,
    pub window_months: i32,
    pub return_window_days: i32,
    pub free_return_shipping: bool,
    /// Further benefits as (name, value) pairs.
    pub other_benefits: Json<Vec<(String, String)>>,
}

/// A program's tiers, lowest threshold first.
pub async fn tiers(conn: &mut PgConnection, program: Uuid) -> sqlx::Result<Vec<TierRow>> {
    sqlx::query_as(
        "SELECT code, display_name, threshold, window_months, return_window_days,
             free_return_shipping, other_benefits
         FROM tiers WHERE program_id = $1 ORDER BY threshold, code",
    )
    .bind(program)
    .fetch_all(conn)
    .await
}

/// Qualifying points the membership earned within the last `window_months` (0: ever), counted in
/// whole UTC days: accruals of qualifying point types less their reversals; spending does not
/// count. A sum over the window's days (`qualifying_days`), not over the ledger.
pub async fn qualifying_points(
    conn: &mut PgConnection,
    membership: Uuid,
    window_months: i32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(points), 0)::bigint FROM qualifying_days
         WHERE membership_id = $1
           AND ($2 = 0 OR day >= ((now() AT TIME ZONE 'UTC') - make_interval(months => $2))::date)",
    )
    .bind(membership)
    .bind(window_months)
    .fetch_one(conn)
    .await
}

pub async fn define_tier(tx: &mut Tx, program: Uuid, tier: &TierRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tiers (program_id, code, display_name, threshold, window_months,
             return_window_days, free_return_shipping, other_benefits)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (program_id, code) DO UPDATE
         SET display_name = excluded.display_name, threshold = excluded.threshold,
             window_months = excluded.window_months, return_window_days = excluded.return_window_days,
             free_return_shipping = excluded.free_return_shipping,
             other_benefits = excluded.other_benefits",
    )
    .bind(program)
    .bind(&tier.code)
    .bind(&tier.display_name)
    .bind(tier.threshold)
    .bind(tier.window_months)
    .bind(tier.return_window_days)
    .bind(tier.free_return_shipping)
    .bind(&tier.other_benefits)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tier a membership's qualifying points earned.
pub async fn set_tier(tx: &mut Tx, membership: Uuid, tier: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE memberships SET tier = $2, updated_at = now(), version = version + 1 WHERE id = $1",
    )
    .bind(membership)
    .bind(tier)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A tier given by hand, the floor below which the earned tier does not go.
pub async fn assign_tier(tx: &mut Tx, membership: Uuid, tier: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE memberships SET assigned_tier = $2, updated_at = now(), version = version + 1 WHERE id = $1",
    )
    .bind(membership)
    .bind(tier)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Active memberships of programs with tiers, in id order after `after`.
pub async fn tiered_memberships_after(
    conn: &mut PgConnection,
    after: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships m
         WHERE m.id > $1 AND m.status = 'active'
           AND EXISTS (SELECT 1 FROM tiers t WHERE t.program_id = m.program_id)
         ORDER BY m.id LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
