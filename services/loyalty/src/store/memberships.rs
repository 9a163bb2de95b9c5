//! Memberships of parties in programs.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::MembershipStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub party_id: Uuid,
    pub status: MembershipStatus,
    pub pool_to_organization: bool,
    pub tier: Option<String>,
    pub assigned_tier: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
    /// Suspended because the party withdrew its consent: a new grant lifts it, not a person.
    pub suspended_for_consent: bool,
}

pub(super) const MEMBERSHIP_COLUMNS: &str =
    "id, program_id, party_id, status, pool_to_organization, tier, assigned_tier, created_at,
    updated_at, created_by, updated_by, version, suspended_for_consent";

pub async fn get_membership(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_membership(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE id = $1 FOR NO KEY UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Inserts the membership; false when the party is already a member of the program.
pub async fn insert_membership(tx: &mut Tx, m: &MembershipRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO memberships (id, program_id, party_id, pool_to_organization, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (program_id, party_id) DO NOTHING",
    )
    .bind(m.id)
    .bind(m.program_id)
    .bind(m.party_id)
    .bind(m.pool_to_organization)
    .bind(&m.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The party's membership of the program, locked.
pub async fn lock_membership_of(
    tx: &mut Tx,
    program: Uuid,
    party: Uuid,
) -> sqlx::Result<Option<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE program_id = $1 AND party_id = $2
         FOR NO KEY UPDATE"
    )))
    .bind(program)
    .bind(party)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_membership_status(
    tx: &mut Tx,
    id: Uuid,
    status: MembershipStatus,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE memberships SET status = $2, suspended_for_consent = false, updated_by = $3,
             updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Memberships of a program or of a party, by id.
pub async fn list_memberships(
    conn: &mut PgConnection,
    program: Option<Uuid>,
    party: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
         WHERE ($1::uuid IS NULL OR program_id = $1) AND ($2::uuid IS NULL OR party_id = $2)
           AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4"
    )))
    .bind(program)
    .bind(party)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Locks the parties' memberships in id order, the lock order of every posting, before statements
/// that change several of them (which would lock them in whatever order they find them).
pub async fn lock_memberships_of(tx: &mut Tx, parties: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("SELECT 1 FROM memberships WHERE party_id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(parties)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Suspends the party's active memberships for a withdrawn consent; returns them.
pub async fn suspend_for_consent(tx: &mut Tx, party: Uuid, by: &str) -> sqlx::Result<Vec<Uuid>> {
    lock_memberships_of(tx, &[party]).await?;
    sqlx::query_scalar(
        "UPDATE memberships SET status = 'suspended', suspended_for_consent = true,
             updated_by = $2, updated_at = now(), version = version + 1
         WHERE party_id = $1 AND status = 'active' RETURNING id",
    )
    .bind(party)
    .bind(by)
    .fetch_all(&mut **tx)
    .await
}

/// Reactivates the memberships a withdrawal suspended, and only those; returns them.
pub async fn reactivate_after_consent(
    tx: &mut Tx,
    party: Uuid,
    by: &str,
) -> sqlx::Result<Vec<Uuid>> {
    lock_memberships_of(tx, &[party]).await?;
    sqlx::query_scalar(
        "UPDATE memberships SET status = 'active', suspended_for_consent = false,
             updated_by = $2, updated_at = now(), version = version + 1
         WHERE party_id = $1 AND status = 'suspended' AND suspended_for_consent RETURNING id",
    )
    .bind(party)
    .bind(by)
    .fetch_all(&mut **tx)
    .await
}

/// Moves the party's memberships to `to`, except in programs `to` belongs to already; returns
/// the moved ones.
pub async fn move_memberships(
    tx: &mut Tx,
    from: Uuid,
    to: Uuid,
    by: &str,
) -> sqlx::Result<Vec<Uuid>> {
    lock_memberships_of(tx, &[from]).await?;
    sqlx::query_scalar(
        "UPDATE memberships m SET party_id = $2, updated_by = $3, updated_at = now(),
             version = version + 1
         WHERE m.party_id = $1
           AND NOT EXISTS (SELECT 1 FROM memberships s WHERE s.party_id = $2 AND s.program_id = m.program_id)
         RETURNING m.id",
    )
    .bind(from)
    .bind(to)
    .bind(by)
    .fetch_all(&mut **tx)
    .await
}

/// The ids of the party's memberships.
pub async fn memberships_of(tx: &mut Tx, party: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM memberships WHERE party_id = $1")
        .bind(party)
        .fetch_all(&mut **tx)
        .await
}

/// The party's discounts and invoiced turnover now belong to `to`.
pub async fn move_party_records(tx: &mut Tx, from: Uuid, to: Uuid) -> sqlx::Result<()> {
    for statement in [
        "UPDATE discounts SET party_id = $2 WHERE party_id = $1",
        "UPDATE invoice_lines SET party_id = $2 WHERE party_id = $1",
    ] {
        sqlx::query(statement)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
