//! Rewards: the catalogue.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{RewardKind, RewardStatus, VoucherSource};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RewardRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub point_type: String,
    pub kind: RewardKind,
    pub status: RewardStatus,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub image_uri: String,
    pub price_points: i64,
    pub co_payment_amount: Option<Decimal>,
    pub co_payment_currency: Option<String>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    pub per_member_limit: i32,
    pub total_limit: i32,
    pub tier_codes: Vec<String>,
    pub base_ids: Vec<Uuid>,
    pub voucher_source: Option<VoucherSource>,
    pub voucher_valid_days: i32,
    pub low_stock_threshold: i32,
    /// Kept by orders; ignored by writes of the catalogue.
    pub ordered_units: i64,
    /// Computed when read: see [`AVAILABLE_UNITS`].
    pub available_units: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

/// What can be ordered now: the stock, the codes not taken and still valid, or the limit left, the
/// least of those that apply; -1 for generated vouchers without a total limit.
const AVAILABLE_UNITS: &str = "CASE
    WHEN r.voucher_source = 'generated' AND r.total_limit = 0 THEN -1
    ELSE least(
        CASE r.kind
            WHEN 'material' THEN coalesce(
                (SELECT sum(s.on_hand - s.reserved) FROM stock_items s WHERE s.reward_id = r.id),
                0)::bigint
            ELSE CASE r.voucher_source
                WHEN 'imported' THEN (SELECT count(*) FROM voucher_codes c
                    WHERE c.reward_id = r.id AND c.order_id IS NULL
                      AND (c.valid_until IS NULL OR c.valid_until >= current_date))
                ELSE 9223372036854775807 END
        END,
        CASE WHEN r.total_limit > 0 THEN greatest(r.total_limit - r.ordered_units, 0)
             ELSE 9223372036854775807 END)
    END";

fn select(filter: &str) -> String {
    format!(
        "SELECT r.id, r.program_id, r.point_type, r.kind, r.status, r.display_name, r.description,
            r.category, r.image_uri, r.price_points, r.co_payment_amount, r.co_payment_currency,
            r.available_from, r.available_until, r.per_member_limit, r.total_limit, r.tier_codes,
            r.base_ids, r.voucher_source, r.voucher_valid_days, r.low_stock_threshold,
            r.ordered_units, {AVAILABLE_UNITS} AS available_units, r.created_at, r.updated_at,
            r.created_by, r.updated_by, r.version
         FROM rewards r {filter}"
    )
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RewardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(select("WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The reward, locked for a change (rewards are locked before their stock and codes).
pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<RewardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(select(
        "WHERE r.id = $1 FOR UPDATE OF r",
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Counts `quantity` more units as ordered and answers the reward, locked (with the units counted:
/// the caller refuses the order when they pass the total limit, and its transaction undoes this).
/// `available_units` is not computed (0).
pub async fn take_units(tx: &mut Tx, id: Uuid, quantity: i64) -> sqlx::Result<Option<RewardRow>> {
    sqlx::query_as(
        "UPDATE rewards SET ordered_units = ordered_units + $2 WHERE id = $1
         RETURNING id, program_id, point_type, kind, status, display_name, description, category,
             image_uri, price_points, co_payment_amount, co_payment_currency, available_from,
             available_until, per_member_limit, total_limit, tier_codes, base_ids, voucher_source,
             voucher_valid_days, low_stock_threshold, ordered_units, 0::bigint AS available_units,
             created_at, updated_at, created_by, updated_by, version",
    )
    .bind(id)
    .bind(quantity)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn insert(tx: &mut Tx, r: &RewardRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO rewards (id, program_id, point_type, kind, status, display_name, description,
             category, image_uri, price_points, co_payment_amount, co_payment_currency,
             available_from, available_until, per_member_limit, total_limit, tier_codes, base_ids,
             voucher_source, voucher_valid_days, low_stock_threshold, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21, $22, $22)",
    )
    .bind(r.id)
    .bind(r.program_id)
    .bind(&r.point_type)
    .bind(r.kind)
    .bind(r.status)
    .bind(&r.display_name)
    .bind(&r.description)
    .bind(&r.category)
    .bind(&r.image_uri)
    .bind(r.price_points)
    .bind(r.co_payment_amount)
    .bind(&r.co_payment_currency)
    .bind(r.available_from)
    .bind(r.available_until)
    .bind(r.per_member_limit)
    .bind(r.total_limit)
    .bind(&r.tier_codes)
    .bind(&r.base_ids)
    .bind(r.voucher_source)
    .bind(r.voucher_valid_days)
    .bind(r.low_stock_threshold)
    .bind(&r.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the editable fields; program, point type, kind and voucher source never change.
pub async fn update(tx: &mut Tx, r: &RewardRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE rewards SET status = $2, display_name = $3, description = $4, category = $5,
             image_uri = $6, price_points = $7, co_payment_amount = $8, co_payment_currency = $9,
             available_from = $10, available_until = $11, per_member_limit = $12,
             total_limit = $13, tier_codes = $14, base_ids = $15, voucher_valid_days = $16,
             low_stock_threshold = $17, updated_by = $18, updated_at = now(),
             version = version + 1
         WHERE id = $1",
    )
    .bind(r.id)
    .bind(r.status)
    .bind(&r.display_name)
    .bind(&r.description)
    .bind(&r.category)
    .bind(&r.image_uri)
    .bind(r.price_points)
    .bind(r.co_payment_amount)
    .bind(&r.co_payment_currency)
    .bind(r.available_from)
    .bind(r.available_until)
    .bind(r.per_member_limit)
    .bind(r.total_limit)
    .bind(&r.tier_codes)
    .bind(&r.base_ids)
    .bind(r.voucher_valid_days)
    .bind(r.low_stock_threshold)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What ListRewards filters by; `None` and empty mean "any".
#[derive(Debug, Default)]
pub struct Filter {
    pub program_id: Option<Uuid>,
    pub kind: Option<RewardKind>,
    pub category: Option<String>,
    pub status: Option<RewardStatus>,
    pub available_now: bool,
    /// Available points by point type: only rewards one unit of which they pay for.
    pub affordable: Option<Vec<(String, i64)>>,
}

/// One page of rewards after `after`, oldest first.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<RewardRow>> {
    let (types, points): (Vec<String>, Vec<i64>) = filter
        .affordable
        .clone()
        .unwrap_or_default()
        .into_iter()
        .unzip();
    let inner = select(
        "WHERE ($1::uuid IS NULL OR r.id > $1)
           AND ($2::uuid IS NULL OR r.program_id = $2)
           AND ($3::text IS NULL OR r.kind = $3)
           AND ($4::text IS NULL OR r.category = $4)
           AND ($5::text IS NULL OR r.status = $5)
           AND (NOT $6 OR (r.status = 'active'
                AND (r.available_from IS NULL OR r.available_from <= now())
                AND (r.available_until IS NULL OR r.available_until > now())))
           AND (NOT $7 OR r.price_points <= (
                SELECT a.points FROM unnest($8::text[], $9::bigint[]) a (point_type, points)
                 WHERE a.point_type = r.point_type))",
    );
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ({inner}) x
          WHERE NOT $6 OR x.available_units <> 0
          ORDER BY x.id LIMIT $10"
    )))
    .bind(after)
    .bind(filter.program_id)
    .bind(filter.kind)
    .bind(&filter.category)
    .bind(filter.status)
    .bind(filter.available_now)
    .bind(filter.affordable.is_some())
    .bind(&types)
    .bind(&points)
    .bind(limit)
    .fetch_all(conn)
    .await
}
