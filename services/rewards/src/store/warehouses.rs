//! Warehouses.

use chrono::{DateTime, Utc};
use crm_kit::{address::Address, store::Tx};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WarehouseRow {
    pub id: Uuid,
    pub code: String,
    pub display_name: String,
    pub address: Option<Json<Address>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const SELECT: &str = "SELECT id, code, display_name, address, created_at, updated_at, created_by,
        updated_by, version
    FROM warehouses";

/// A new warehouse; a unique violation when the code is taken.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    code: &str,
    display_name: &str,
    address: Option<&Address>,
    by: &str,
) -> sqlx::Result<WarehouseRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH w AS (
             INSERT INTO warehouses (id, code, display_name, address, created_by, updated_by)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING *)
         {}",
        SELECT.replace("FROM warehouses", "FROM w")
    )))
    .bind(id)
    .bind(code)
    .bind(display_name)
    .bind(address.map(Json))
    .bind(by)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<WarehouseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// One page by code, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<WarehouseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE $1::text IS NULL OR code > $1 ORDER BY code LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
