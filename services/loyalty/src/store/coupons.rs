//! Coupon definitions, their codes and redemptions.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::CouponKind;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DefinitionRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub display_name: String,
    pub kind: CouponKind,
    pub percentage: Option<Decimal>,
    pub amount: Option<Decimal>,
    pub product_id: String,
    pub uses_per_code: i32,
    pub per_member: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CouponRow {
    pub code: String,
    pub definition_id: Uuid,
    pub membership_id: Option<Uuid>,
    pub uses: i32,
}

pub async fn get_definition(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<DefinitionRow>> {
    sqlx::query_as("SELECT * FROM coupon_definitions WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn lock_definition(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<DefinitionRow>> {
    sqlx::query_as("SELECT * FROM coupon_definitions WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// A page of the program's definitions, newest first, before `before` (ids are time-ordered).
pub async fn list_definitions(
    conn: &mut PgConnection,
    program: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<DefinitionRow>> {
    sqlx::query_as(
        "SELECT * FROM coupon_definitions WHERE program_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(program)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Writes what an update may change, and moves the version (the etag) on.
pub async fn update_definition(tx: &mut Tx, d: &DefinitionRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE coupon_definitions SET display_name = $2, uses_per_code = $3, valid_from = $4,
             valid_to = $5, updated_by = $6, updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(d.id)
    .bind(&d.display_name)
    .bind(d.uses_per_code)
    .bind(d.valid_from)
    .bind(d.valid_to)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_definition(tx: &mut Tx, d: &DefinitionRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO coupon_definitions (id, program_id, display_name, kind, percentage, amount, product_id,
             uses_per_code, per_member, valid_from, valid_to, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(d.id)
    .bind(d.program_id)
    .bind(&d.display_name)
    .bind(d.kind)
    .bind(d.percentage)
    .bind(d.amount)
    .bind(&d.product_id)
    .bind(d.uses_per_code)
    .bind(d.per_member)
    .bind(d.valid_from)
    .bind(d.valid_to)
    .bind(&d.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many of `memberships` belong to `program`.
pub async fn count_in_program(
    tx: &mut Tx,
    memberships: &[Uuid],
    program: Uuid,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE id = ANY($1) AND program_id = $2")
        .bind(memberships)
        .bind(program)
        .fetch_one(&mut **tx)
        .await
}

/// Inserts the codes that are free (with their owners, for per-member coupons); returns those.
pub async fn insert_coupons(
    tx: &mut Tx,
    definition: Uuid,
    codes: &[String],
    owners: &[Option<Uuid>],
) -> sqlx::Result<Vec<CouponRow>> {
    sqlx::query_as(
        "INSERT INTO coupons (code, definition_id, membership_id)
         SELECT code, $1, member FROM unnest($2::text[], $3::uuid[]) AS c(code, member)
         ON CONFLICT DO NOTHING RETURNING code, definition_id, membership_id, uses",
    )
    .bind(definition)
    .bind(codes)
    .bind(owners)
    .fetch_all(&mut **tx)
    .await
}

pub async fn get_coupon(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<CouponRow>> {
    sqlx::query_as("SELECT * FROM coupons WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// Counts one use; false when the coupon has none left. The limit holds under any concurrency:
/// the row only moves while below it.
pub async fn use_coupon(tx: &mut Tx, code: &str, limit: i32) -> sqlx::Result<bool> {
    let used = sqlx::query("UPDATE coupons SET uses = uses + 1 WHERE code = $1 AND uses < $2")
        .bind(code)
        .bind(limit)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(used == 1)
}

/// Records a redemption; returns when it was made.
pub async fn insert_redemption(
    tx: &mut Tx,
    id: Uuid,
    client_id: &str,
    code: &str,
    membership: Uuid,
    reference: &str,
    by: &str,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO coupon_redemptions (id, client_id, code, membership_id, reference, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
    )
    .bind(id)
    .bind(client_id)
    .bind(code)
    .bind(membership)
    .bind(reference)
    .bind(by)
    .fetch_one(&mut **tx)
    .await
}
