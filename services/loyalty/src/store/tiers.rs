//! Tiers of programs.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TierRow {
    pub code: String,
    pub display_name: String,
    pub threshold: i64,
    pub window_months: i32,
}

/// A program's tiers, lowest threshold first.
pub async fn tiers(conn: &mut PgConnection, program: Uuid) -> sqlx::Result<Vec<TierRow>> {
    sqlx::query_as(
        "SELECT code, display_name, threshold, window_months FROM tiers WHERE program_id = $1
         ORDER BY threshold, code",
    )
    .bind(program)
    .fetch_all(conn)
    .await
}
