//! Custom field definitions.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;

use crate::domain::{FieldEntity, FieldType};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FieldRow {
    pub entity: FieldEntity,
    pub key: String,
    pub label: String,
    #[sqlx(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    pub options: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
}

pub async fn custom_fields(
    conn: &mut PgConnection,
    entity: Option<FieldEntity>,
) -> sqlx::Result<Vec<FieldRow>> {
    sqlx::query_as(
        "SELECT entity, key, label, type, required, options, created_at, updated_at, created_by, updated_by
         FROM custom_field_definitions WHERE $1::text IS NULL OR entity = $1
         ORDER BY entity, key",
    )
    .bind(entity)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces a definition; returns the stored type when the key already had another.
pub async fn define_custom_field(
    tx: &mut Tx,
    f: &FieldRow,
    subject: &str,
) -> sqlx::Result<Option<FieldType>> {
    let existing: Option<(FieldType,)> = sqlx::query_as(
        "SELECT type FROM custom_field_definitions WHERE entity = $1 AND key = $2 FOR UPDATE",
    )
    .bind(f.entity)
    .bind(&f.key)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((stored,)) = existing.filter(|(stored,)| *stored != f.field_type) {
        return Ok(Some(stored));
    }
    sqlx::query(
        "INSERT INTO custom_field_definitions (entity, key, label, type, required, options, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (entity, key) DO UPDATE
         SET label = excluded.label, required = excluded.required, options = excluded.options,
             updated_by = excluded.updated_by, updated_at = now()",
    )
    .bind(f.entity)
    .bind(&f.key)
    .bind(&f.label)
    .bind(f.field_type)
    .bind(f.required)
    .bind(&f.options)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(None)
}

/// A page of definitions in (entity, key) order, after the position `after`.
pub async fn list_custom_fields(
    conn: &mut PgConnection,
    entity: Option<FieldEntity>,
    after: Option<&(String, String)>,
    limit: i64,
) -> sqlx::Result<Vec<FieldRow>> {
    sqlx::query_as(
        "SELECT entity, key, label, type, required, options, created_at, updated_at, created_by, updated_by
         FROM custom_field_definitions
         WHERE ($1::text IS NULL OR entity = $1) AND ($2::text IS NULL OR (entity, key) > ($2, $3))
         ORDER BY entity, key LIMIT $4",
    )
    .bind(entity)
    .bind(after.map(|(entity, _)| entity))
    .bind(after.map(|(_, key)| key))
    .bind(limit)
    .fetch_all(conn)
    .await
}
