//! Holds on member accounts.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::HoldStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HoldRow {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Uuid,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub point_type: String,
    pub program_id: Uuid,
    pub points: i64,
    pub captured_points: i64,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
    pub reference: String,
    pub capture_operation_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub(super) const HOLD_SELECT: &str =
    "SELECT h.id, h.client_id, h.account_id, a.membership_id, a.person_id, a.point_type,
        a.program_id, h.points, h.captured_points, h.status, h.expires_at, h.reference,
        h.capture_operation_id, h.created_at
    FROM holds h JOIN accounts a ON a.id = h.account_id";

pub async fn get_hold(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn get_hold_by_client_id(
    conn: &mut PgConnection,
    client_id: &str,
) -> sqlx::Result<Option<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// A page of the membership's holds, newest first, before `before` (ids are time-ordered).
pub async fn list_holds(
    conn: &mut PgConnection,
    membership: Uuid,
    status: Option<HoldStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE a.membership_id = $1 AND ($2::text IS NULL OR h.status = $2)
           AND ($3::uuid IS NULL OR h.id < $3)
         ORDER BY h.id DESC LIMIT $4"
    )))
    .bind(membership)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn lock_hold_by_client_id(tx: &mut Tx, client_id: &str) -> sqlx::Result<Option<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.client_id = $1 FOR UPDATE OF h"
    )))
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The holds of `client_ids` that exist, locked in id order.
pub async fn lock_holds_by_client_ids(
    tx: &mut Tx,
    client_ids: &[&str],
) -> sqlx::Result<Vec<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.client_id = ANY($1) ORDER BY h.id FOR UPDATE OF h"
    )))
    .bind(client_ids)
    .fetch_all(&mut **tx)
    .await
}

/// Marks holds expired.
pub async fn settle_expired(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE holds SET status = 'expired', captured_points = 0, capture_operation_id = NULL,
             updated_at = now()
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks holds captured: each with the points captured and the operation that spent them.
pub async fn settle_captured(
    tx: &mut Tx,
    ids: &[Uuid],
    points: &[i64],
    operations: &[Uuid],
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE holds h SET status = 'captured', captured_points = u.points,
             capture_operation_id = u.operation, updated_at = now()
         FROM unnest($1::uuid[], $2::bigint[], $3::uuid[]) AS u(id, points, operation)
         WHERE h.id = u.id",
    )
    .bind(ids)
    .bind(points)
    .bind(operations)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts pending holds in one statement.
pub async fn insert_holds(tx: &mut Tx, holds: &[HoldRow]) -> sqlx::Result<()> {
    if holds.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = holds.iter().map(|h| h.id).collect();
    let client_ids: Vec<&str> = holds.iter().map(|h| h.client_id.as_str()).collect();
    let accounts: Vec<Uuid> = holds.iter().map(|h| h.account_id).collect();
    let points: Vec<i64> = holds.iter().map(|h| h.points).collect();
    let expiry: Vec<DateTime<Utc>> = holds.iter().map(|h| h.expires_at).collect();
    let references: Vec<&str> = holds.iter().map(|h| h.reference.as_str()).collect();
    let created: Vec<DateTime<Utc>> = holds.iter().map(|h| h.created_at).collect();
    sqlx::query(
        "INSERT INTO holds (id, client_id, account_id, points, expires_at, reference, created_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::timestamptz[],
             $6::text[], $7::timestamptz[])",
    )
    .bind(&ids)
    .bind(&client_ids)
    .bind(&accounts)
    .bind(&points)
    .bind(&expiry)
    .bind(&references)
    .bind(&created)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Those of `client_ids` that name a hold already.
pub async fn taken_hold_ids(
    conn: &mut PgConnection,
    client_ids: &[&str],
) -> sqlx::Result<HashSet<String>> {
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT client_id FROM holds WHERE client_id = ANY($1)")
            .bind(client_ids)
            .fetch_all(conn)
            .await?;
    Ok(taken.into_iter().collect())
}

pub async fn settle_hold(
    tx: &mut Tx,
    id: Uuid,
    status: HoldStatus,
    captured_points: i64,
    capture_operation_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE holds SET status = $2, captured_points = $3, capture_operation_id = $4, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(captured_points)
    .bind(capture_operation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Pending holds past their timeout, locked; other replicas skip them.
pub async fn lock_expired_holds(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.status = 'pending' AND h.expires_at <= now()
         ORDER BY h.expires_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED"
    )))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}
