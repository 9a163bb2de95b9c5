//! Pipelines and their phases.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::pipelines::Phase;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PipelineRow {
    pub id: Uuid,
    pub display_name: String,
    pub phases: Json<Vec<Phase>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

impl PipelineRow {
    pub fn phase(&self, code: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.code == code)
    }
}

const COLUMNS: &str =
    "id, display_name, phases, created_at, updated_at, created_by, updated_by, version";

pub async fn insert(tx: &mut Tx, row: &PipelineRow) -> sqlx::Result<PipelineRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO pipelines (id, display_name, phases, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
    )))
    .bind(row.id)
    .bind(&row.display_name)
    .bind(&row.phases)
    .bind(&row.created_by)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PipelineRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM pipelines WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Oldest first, after the id of the page before's last.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PipelineRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM pipelines WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
