//! Bases and memberships of parties in them; what a merge moves.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BaseRow {
    pub id: Uuid,
    pub display_name: String,
    pub description: String,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const BASE_COLUMNS: &str = "id, display_name, description, archived, created_at, updated_at, created_by, updated_by, version";

pub async fn get_base(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_base(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn insert_base(
    tx: &mut Tx,
    id: Uuid,
    display_name: &str,
    description: &str,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bases (id, display_name, description, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(display_name)
    .bind(description)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_base(tx: &mut Tx, base: &BaseRow, subject: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bases SET display_name = $2, description = $3, archived = $4, updated_by = $5,
             updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(base.id)
    .bind(&base.display_name)
    .bind(&base.description)
    .bind(base.archived)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn list_bases(
    conn: &mut PgConnection,
    include_archived: bool,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases
         WHERE ($1 OR NOT archived) AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(include_archived)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Adds the membership; false when the party was already in the base.
pub async fn add_to_base(tx: &mut Tx, party_id: Uuid, base_id: Uuid) -> sqlx::Result<bool> {
    let added = sqlx::query(
        "INSERT INTO party_bases (party_id, base_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(party_id)
    .bind(base_id)
    .execute(&mut **tx)
    .await?;
    Ok(added.rows_affected() == 1)
}

pub async fn remove_from_base(tx: &mut Tx, party_id: Uuid, base_id: Uuid) -> sqlx::Result<bool> {
    let removed = sqlx::query("DELETE FROM party_bases WHERE party_id = $1 AND base_id = $2")
        .bind(party_id)
        .bind(base_id)
        .execute(&mut **tx)
        .await?;
    Ok(removed.rows_affected() == 1)
}

/// Moves every base membership of `from` to `to`; returns the bases `to` newly joined.
pub async fn move_bases(tx: &mut Tx, from: Uuid, to: Uuid) -> sqlx::Result<Vec<Uuid>> {
    let moved: Vec<(Uuid,)> = sqlx::query_as(
        "WITH gone AS (DELETE FROM party_bases WHERE party_id = $1 RETURNING base_id)
         INSERT INTO party_bases (party_id, base_id) SELECT $2, base_id FROM gone
         ON CONFLICT DO NOTHING RETURNING base_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<Uuid> = moved.into_iter().map(|(id,)| id).collect();
    ids.sort();
    Ok(ids)
}

/// Moves the current employments at organization `from` to `to` (former ones stay with the
/// organization the person worked for); returns the persons concerned.
pub async fn move_employments(
    tx: &mut Tx,
    from: Uuid,
    to: Uuid,
    subject: &str,
) -> sqlx::Result<Vec<Uuid>> {
    // A person working for both keeps the survivor's employment; the other one ends today.
    let mut moved: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE employments SET end_date = GREATEST(current_date, coalesce(start_date, current_date))
         WHERE organization_party_id = $1 AND end_date IS NULL
           AND person_id IN (SELECT person_id FROM employments
                             WHERE organization_party_id = $2 AND end_date IS NULL)
         RETURNING person_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    moved.extend(
        sqlx::query_as::<_, (Uuid,)>(
            "UPDATE employments SET organization_party_id = $2
             WHERE organization_party_id = $1 AND end_date IS NULL
             RETURNING person_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&mut **tx)
        .await?,
    );
    let mut ids: Vec<Uuid> = moved.into_iter().map(|(id,)| id).collect();
    ids.sort();
    ids.dedup();
    sqlx::query(
        "UPDATE persons SET updated_by = $2, updated_at = now(), version = version + 1
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(ids)
}
