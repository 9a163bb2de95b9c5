//! Cards of memberships: parent and child cards, reissues with history.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::CardStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardRow {
    pub id: Uuid,
    pub number: String,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub status: CardStatus,
    pub block_reason: String,
    pub replaces_id: Option<Uuid>,
    pub replaced_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
}

const CARD_SELECT: &str = "SELECT c.id, c.number, c.membership_id, c.person_id, c.parent_id, c.status,
        c.block_reason, c.replaces_id, (SELECT r.id FROM cards r WHERE r.replaces_id = c.id) AS replaced_by,
        c.created_at, c.updated_at, c.created_by, c.updated_by
    FROM cards c";

pub async fn get_card(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_card(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.id = $1 FOR UPDATE OF c"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Inserts the card unless its number is taken (then false, and the transaction goes on).
pub async fn insert_card(tx: &mut Tx, card: &CardRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO cards (id, number, membership_id, person_id, parent_id, replaces_id, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (number) DO NOTHING",
    )
    .bind(card.id)
    .bind(&card.number)
    .bind(card.membership_id)
    .bind(card.person_id)
    .bind(card.parent_id)
    .bind(card.replaces_id)
    .bind(&card.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn set_card_status(
    tx: &mut Tx,
    id: Uuid,
    status: CardStatus,
    reason: &str,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE cards SET status = $2, block_reason = $3, updated_by = $4, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(subject)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn get_card_by_number(
    conn: &mut PgConnection,
    number: &str,
) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.number = $1"
    )))
    .bind(number)
    .fetch_optional(conn)
    .await
}

/// The membership's card with this number, locked; another member's card is neither found nor
/// locked.
pub async fn lock_members_card(
    tx: &mut Tx,
    number: &str,
    membership: Uuid,
) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.number = $1 AND c.membership_id = $2 FOR UPDATE OF c"
    )))
    .bind(number)
    .bind(membership)
    .fetch_optional(&mut **tx)
    .await
}

/// Child cards follow their parent to its new number.
pub async fn move_children(tx: &mut Tx, from: Uuid, to: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE cards SET parent_id = $2 WHERE parent_id = $1 AND status <> 'closed'")
        .bind(from)
        .bind(to)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A membership's cards, newest first, closed ones only when asked for.
pub async fn list_cards(
    conn: &mut PgConnection,
    membership: Uuid,
    include_closed: bool,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<CardRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.membership_id = $1 AND ($2 OR c.status <> 'closed')
             AND ($3::uuid IS NULL OR c.id < $3)
         ORDER BY c.id DESC LIMIT $4"
    )))
    .bind(membership)
    .bind(include_closed)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
