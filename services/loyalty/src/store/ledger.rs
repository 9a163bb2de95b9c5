//! Accounts, operations and ledger entries (entries and operations are append-only).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Direction;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub membership_id: Option<Uuid>,
    pub person_id: Option<Uuid>,
    pub point_type: String,
    pub balance: i64,
    pub held: i64,
    pub updated_at: DateTime<Utc>,
}

pub(super) const ACCOUNT_COLUMNS: &str =
    "id, membership_id, person_id, point_type, balance, held, updated_at";

/// A member account, if it was ever used.
pub async fn find_account(
    conn: &mut PgConnection,
    membership: Uuid,
    person: Option<Uuid>,
    point_type: &str,
) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts
         WHERE kind = 'member' AND membership_id = $1 AND person_id IS NOT DISTINCT FROM $2 AND point_type = $3"
    )))
    .bind(membership)
    .bind(person)
    .bind(point_type)
    .fetch_optional(conn)
    .await
}

/// A membership's point types in program order, each with the account of `person` (the
/// membership's own where `person` is None or the membership pools its persons' points), for
/// reads that resolve an account in one statement. No rows: no such membership.
pub async fn accounts_by_point_type(
    conn: &mut PgConnection,
    membership: Uuid,
    person: Option<Uuid>,
) -> sqlx::Result<Vec<PointTypeAccount>> {
    sqlx::query_as(
        "SELECT m.pool_to_organization AS pooled, t.code, a.id, a.person_id, a.balance, a.held,
                a.updated_at
         FROM memberships m
         LEFT JOIN point_types t ON t.program_id = m.program_id
         LEFT JOIN accounts a ON a.kind = 'member' AND a.membership_id = m.id
              AND a.point_type = t.code
              AND coalesce(a.person_id, $3) =
                  coalesce(CASE WHEN m.pool_to_organization THEN NULL ELSE $2::uuid END, $3)
         WHERE m.id = $1
         ORDER BY t.position",
    )
    .bind(membership)
    .bind(person)
    // The member-account index's stand-in for "no person".
    .bind(Uuid::nil())
    .fetch_all(conn)
    .await
}

/// A row of [`accounts_by_point_type`]: `code` is None when the program has no point type, the
/// account's columns when the account was never used.
#[derive(Debug, sqlx::FromRow)]
pub struct PointTypeAccount {
    pub pooled: bool,
    pub code: Option<String>,
    id: Option<Uuid>,
    person_id: Option<Uuid>,
    balance: Option<i64>,
    held: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
}

impl PointTypeAccount {
    pub fn account(&self, membership: Uuid) -> Option<AccountRow> {
        Some(AccountRow {
            id: self.id?,
            membership_id: Some(membership),
            person_id: self.person_id,
            point_type: self.code.clone()?,
            balance: self.balance?,
            held: self.held?,
            updated_at: self.updated_at?,
        })
    }
}

pub async fn membership_accounts(
    conn: &mut PgConnection,
    membership: Uuid,
) -> sqlx::Result<Vec<AccountRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE kind = 'member' AND membership_id = $1
         ORDER BY person_id NULLS FIRST, point_type"
    )))
    .bind(membership)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperationRow {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Uuid,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub point_type: String,
    pub operation_type: String,
    pub direction: Direction,
    pub points: i64,
    pub balance_after: i64,
    pub reference: String,
    pub reverses: Option<Uuid>,
    /// Its latest reversal.
    pub reversed_by: Option<Uuid>,
    /// The points its reversals took back (all of them, or part after partial returns).
    pub reversed_points: i64,
    pub created_at: DateTime<Utc>,
}

pub(super) const OPERATION_SELECT: &str =
    "SELECT o.id, o.client_id, o.account_id, a.membership_id, a.person_id, a.point_type,
        o.operation_type, o.direction, o.points, o.balance_after, o.reference, o.reverses,
        (SELECT r.id FROM operations r WHERE r.reverses = o.id ORDER BY r.id DESC LIMIT 1) AS reversed_by,
        (SELECT coalesce(sum(r.points), 0)::bigint FROM operations r WHERE r.reverses = o.id) AS reversed_points,
        o.created_at
    FROM operations o JOIN accounts a ON a.id = o.account_id";

pub async fn get_operation(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<OperationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OPERATION_SELECT} WHERE o.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn get_operation_by_client_id(
    conn: &mut PgConnection,
    client_id: &str,
) -> sqlx::Result<Option<OperationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OPERATION_SELECT} WHERE o.client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// The points reversals of `operation` took back, and its latest reversal.
pub async fn reversals_of(tx: &mut Tx, operation: Uuid) -> sqlx::Result<(i64, Option<Uuid>)> {
    sqlx::query_as(
        "SELECT coalesce(sum(points), 0)::bigint, (array_agg(id ORDER BY id DESC))[1]
         FROM operations WHERE reverses = $1",
    )
    .bind(operation)
    .fetch_one(&mut **tx)
    .await
}

pub async fn lock_operation_by_client_id(
    tx: &mut Tx,
    client_id: &str,
) -> sqlx::Result<Option<OperationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OPERATION_SELECT} WHERE o.client_id = $1 FOR UPDATE OF o"
    )))
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub operation_id: Uuid,
    pub operation_type: String,
    pub amount: i64,
    pub balance_after: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// An account's entries, newest first, after (below) `before_id`.
pub async fn entries(
    conn: &mut PgConnection,
    account: Uuid,
    operation_type: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before_id: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as(
        "SELECT e.id, e.operation_id, o.operation_type, e.amount, e.balance_after, e.created_at
         FROM ledger_entries e JOIN operations o ON o.id = e.operation_id
         WHERE e.account_id = $1
           AND ($2::text IS NULL OR o.operation_type = $2)
           AND ($3::timestamptz IS NULL OR e.created_at >= $3)
           AND ($4::timestamptz IS NULL OR e.created_at < $4)
           AND ($5::bigint IS NULL OR e.id < $5)
         ORDER BY e.id DESC LIMIT $6",
    )
    .bind(account)
    .bind(operation_type)
    .bind(from)
    .bind(to)
    .bind(before_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A page of the membership's accounts in id order, after `after`.
pub async fn list_membership_accounts(
    conn: &mut PgConnection,
    membership: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<AccountRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts
         WHERE kind = 'member' AND membership_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(membership)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Those of `client_ids` that name an operation already.
pub async fn taken_client_ids(
    conn: &mut PgConnection,
    client_ids: &[&str],
) -> sqlx::Result<HashSet<String>> {
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT client_id FROM operations WHERE client_id = ANY($1)")
            .bind(client_ids)
            .fetch_all(conn)
            .await?;
    Ok(taken.into_iter().collect())
}
