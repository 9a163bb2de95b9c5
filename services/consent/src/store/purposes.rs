//! Purposes and their versioned texts.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;

use crate::domain::LegalBasis;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PurposeRow {
    pub code: String,
    pub description: String,
    pub legal_basis: LegalBasis,
    pub text_version: i32,
    pub text: String,
    pub minimum_consented_version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

const SELECT: &str = "SELECT p.code, p.description, p.legal_basis, p.text_version, t.text,
        p.minimum_consented_version, p.created_at, p.updated_at, p.version
    FROM purposes p JOIN purpose_texts t ON t.purpose = p.code AND t.version = p.text_version";

pub async fn all(conn: &mut PgConnection) -> sqlx::Result<Vec<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY p.code")))
        .fetch_all(conn)
        .await
}

pub async fn get(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.code = $1")))
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// A new purpose with its first text; a unique violation when the code is taken.
pub async fn insert(
    tx: &mut Tx,
    code: &str,
    description: &str,
    basis: LegalBasis,
    text: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO purposes (code, description, legal_basis) VALUES ($1, $2, $3)")
        .bind(code)
        .bind(description)
        .bind(basis)
        .execute(&mut **tx)
        .await?;
    insert_text(tx, code, 1, text).await
}

/// The purpose, locked for a change.
pub async fn lock(tx: &mut Tx, code: &str) -> sqlx::Result<Option<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE p.code = $1 FOR UPDATE OF p"
    )))
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_description(tx: &mut Tx, code: &str, description: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE purposes SET description = $2, version = version + 1, updated_at = now()
         WHERE code = $1",
    )
    .bind(code)
    .bind(description)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The purpose's current text version, locking the purpose; none for an unknown code.
pub async fn lock_version(tx: &mut Tx, code: &str) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT text_version FROM purposes WHERE code = $1 FOR UPDATE")
        .bind(code)
        .fetch_optional(&mut **tx)
        .await
}

/// Publishes `version` as the current text; with `requires_reconsent`, older consents stop counting.
pub async fn publish_text(
    tx: &mut Tx,
    code: &str,
    version: i32,
    text: &str,
    requires_reconsent: bool,
) -> sqlx::Result<()> {
    insert_text(tx, code, version, text).await?;
    sqlx::query(
        "UPDATE purposes SET text_version = $2,
             minimum_consented_version = CASE WHEN $3 THEN $2 ELSE minimum_consented_version END,
             version = version + 1, updated_at = now()
         WHERE code = $1",
    )
    .bind(code)
    .bind(version)
    .bind(requires_reconsent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_text(tx: &mut Tx, code: &str, version: i32, text: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO purpose_texts (purpose, version, text) VALUES ($1, $2, $3)")
        .bind(code)
        .bind(version)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A page of purposes in code order, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1::text IS NULL OR p.code > $1) ORDER BY p.code LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One published version of a purpose's text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TextRow {
    pub version: i32,
    pub text: String,
    pub published_at: DateTime<Utc>,
}

/// A page of the purpose's texts, newest first, before the version `before`.
pub async fn texts(
    conn: &mut PgConnection,
    code: &str,
    before: Option<i32>,
    limit: i64,
) -> sqlx::Result<Vec<TextRow>> {
    sqlx::query_as(
        "SELECT version, text, published_at FROM purpose_texts
         WHERE purpose = $1 AND ($2::integer IS NULL OR version < $2)
         ORDER BY version DESC LIMIT $3",
    )
    .bind(code)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
