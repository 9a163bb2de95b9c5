//! SQL for programs, memberships, accounts, operations, ledger entries and holds. Every write runs
//! in the caller's transaction: an operation's balance change, entries and event commit together.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgramRow {
    pub id: Uuid,
    pub display_name: String,
    pub kind: String,
    pub currency_code: String,
    pub status: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    pub reward_ids: Vec<String>,
    pub accrual_rules: Option<Json<AccrualRulesJson>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

/// A program's accrual rules as stored; decimals are kept as their exact text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccrualRulesJson {
    pub operation_type: String,
    pub points_per_unit: String,
    pub category_rates: BTreeMap<String, String>,
    pub minimum_amount: String,
    pub cap_per_invoice: i64,
    #[serde(default)]
    pub tier_multipliers: BTreeMap<String, String>,
    #[serde(default)]
    pub campaigns: Vec<CampaignJson>,
    #[serde(default)]
    pub cap_per_period: i64,
    #[serde(default)]
    pub period_days: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignJson {
    pub code: String,
    pub multiplier: String,
    pub categories: Vec<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PointTypeRow {
    pub code: String,
    pub display_name: String,
    pub qualifying: bool,
    pub expiry_policy: String,
    pub expiry_months: i32,
    pub allow_negative: bool,
    pub reversal_floor: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OperationTypeRow {
    pub code: String,
    pub display_name: String,
    pub direction: String,
    pub default_point_type: String,
}

const PROGRAM_COLUMNS: &str =
    "id, display_name, kind, currency_code, status, valid_from, valid_to, reward_ids,
    accrual_rules, created_at, updated_at, created_by, updated_by, version";

pub async fn get_program(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_program(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn list_programs(
    conn: &mut PgConnection,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs
         WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn insert_program(tx: &mut Tx, p: &ProgramRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO programs (id, display_name, kind, currency_code, status, valid_from, valid_to,
             reward_ids, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(p.id)
    .bind(&p.display_name)
    .bind(&p.kind)
    .bind(&p.currency_code)
    .bind(&p.status)
    .bind(p.valid_from)
    .bind(p.valid_to)
    .bind(&p.reward_ids)
    .bind(&p.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_program(tx: &mut Tx, p: &ProgramRow, subject: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE programs SET display_name = $2, status = $3, valid_from = $4, valid_to = $5,
             reward_ids = $6, updated_by = $7, updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(p.id)
    .bind(&p.display_name)
    .bind(&p.status)
    .bind(p.valid_from)
    .bind(p.valid_to)
    .bind(&p.reward_ids)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set_accrual_rules(
    tx: &mut Tx,
    id: Uuid,
    rules: &AccrualRulesJson,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE programs SET accrual_rules = $2, updated_by = $3, updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(Json(rules))
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Active memberships of `party` in active programs that have accrual rules.
pub async fn accruing_memberships(tx: &mut Tx, party: Uuid) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
         WHERE party_id = $1 AND status = 'active'
           AND program_id IN (SELECT id FROM programs WHERE status = 'active' AND accrual_rules IS NOT NULL)
         ORDER BY id FOR SHARE"
    )))
    .bind(party)
    .fetch_all(&mut **tx)
    .await
}

/// Whether an operation with this client id was posted.
pub async fn operation_exists(tx: &mut Tx, client_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operations WHERE client_id = $1)")
        .bind(client_id)
        .fetch_one(&mut **tx)
        .await
}

/// The operations whose client id starts with `prefix`, locked, oldest first.
pub async fn lock_operations_by_prefix(
    tx: &mut Tx,
    prefix: &str,
) -> sqlx::Result<Vec<OperationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OPERATION_SELECT} WHERE o.client_id LIKE $1 || '%' ORDER BY o.created_at FOR UPDATE OF o"
    )))
    .bind(
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_"),
    )
    .fetch_all(&mut **tx)
    .await
}

/// Moves the program's version on after a change to its point or operation types.
pub async fn touch_program(tx: &mut Tx, id: Uuid, subject: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE programs SET updated_by = $2, updated_at = now(), version = version + 1 WHERE id = $1")
        .bind(id)
        .bind(subject)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn point_types(
    conn: &mut PgConnection,
    program: Uuid,
) -> sqlx::Result<Vec<PointTypeRow>> {
    sqlx::query_as(
        "SELECT code, display_name, qualifying, expiry_policy, expiry_months, allow_negative, reversal_floor
         FROM point_types WHERE program_id = $1 ORDER BY position",
    )
    .bind(program)
    .fetch_all(conn)
    .await
}

pub async fn operation_types(
    conn: &mut PgConnection,
    program: Uuid,
) -> sqlx::Result<Vec<OperationTypeRow>> {
    sqlx::query_as(
        "SELECT code, display_name, direction, default_point_type
         FROM operation_types WHERE program_id = $1 ORDER BY position",
    )
    .bind(program)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces a point type and makes sure its system accounts exist.
pub async fn define_point_type(tx: &mut Tx, program: Uuid, t: &PointTypeRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO point_types (program_id, code, display_name, qualifying, expiry_policy, expiry_months,
             allow_negative, reversal_floor, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 (SELECT coalesce(max(position), 0) + 1 FROM point_types WHERE program_id = $1))
         ON CONFLICT (program_id, code) DO UPDATE
         SET display_name = excluded.display_name, qualifying = excluded.qualifying,
             expiry_policy = excluded.expiry_policy, expiry_months = excluded.expiry_months,
             allow_negative = excluded.allow_negative, reversal_floor = excluded.reversal_floor",
    )
    .bind(program)
    .bind(&t.code)
    .bind(&t.display_name)
    .bind(t.qualifying)
    .bind(&t.expiry_policy)
    .bind(t.expiry_months)
    .bind(t.allow_negative)
    .bind(t.reversal_floor)
    .execute(&mut **tx)
    .await?;
    for kind in ["issuance", "redemption", "expiry"] {
        sqlx::query(
            "INSERT INTO accounts (id, program_id, point_type, kind) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(program)
        .bind(&t.code)
        .bind(kind)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub async fn define_operation_type(
    tx: &mut Tx,
    program: Uuid,
    t: &OperationTypeRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO operation_types (program_id, code, display_name, direction, default_point_type, position)
         VALUES ($1, $2, $3, $4, $5,
                 (SELECT coalesce(max(position), 0) + 1 FROM operation_types WHERE program_id = $1))
         ON CONFLICT (program_id, code) DO UPDATE
         SET display_name = excluded.display_name, direction = excluded.direction,
             default_point_type = excluded.default_point_type",
    )
    .bind(program)
    .bind(&t.code)
    .bind(&t.display_name)
    .bind(&t.direction)
    .bind(&t.default_point_type)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub party_id: Uuid,
    pub status: String,
    pub pool_to_organization: bool,
    pub tier: Option<String>,
    pub assigned_tier: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const MEMBERSHIP_COLUMNS: &str =
    "id, program_id, party_id, status, pool_to_organization, tier, assigned_tier, created_at,
    updated_at, created_by, updated_by, version";

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
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE id = $1 FOR UPDATE"
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

pub async fn set_membership_status(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
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

const ACCOUNT_COLUMNS: &str = "id, membership_id, person_id, point_type, balance, held, updated_at";

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

/// The member account's id, created on first use.
pub async fn member_account(
    tx: &mut Tx,
    program: Uuid,
    membership: Uuid,
    person: Option<Uuid>,
    point_type: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query(
        "INSERT INTO accounts (id, program_id, point_type, kind, membership_id, person_id)
         VALUES ($1, $2, $3, 'member', $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(program)
    .bind(point_type)
    .bind(membership)
    .bind(person)
    .execute(&mut **tx)
    .await?;
    let account = find_account(tx, membership, person, point_type).await?;
    Ok(account.expect("the account was just ensured").id)
}

/// The program's issuance or redemption account for a point type.
pub async fn system_account(
    tx: &mut Tx,
    program: Uuid,
    point_type: &str,
    kind: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM accounts WHERE program_id = $1 AND point_type = $2 AND kind = $3",
    )
    .bind(program)
    .bind(point_type)
    .bind(kind)
    .fetch_one(&mut **tx)
    .await
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

/// Credits (positive) or debits (negative) a member account. A debit only happens while it keeps
/// the balance at or above `floor` after pending holds are set aside (`None`: no floor). Returns the
/// new balance, or `None` when the points are not there. The row lock serialises concurrent debits.
pub async fn change_balance(
    tx: &mut Tx,
    account: Uuid,
    delta: i64,
    floor: Option<i64>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE accounts SET balance = balance + $2, updated_at = now()
         WHERE id = $1 AND ($2 >= 0 OR $3::bigint IS NULL OR balance - held + $2 >= $3)
         RETURNING balance",
    )
    .bind(account)
    .bind(delta)
    .bind(floor)
    .fetch_optional(&mut **tx)
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
    pub direction: String,
    pub points: i64,
    pub balance_after: i64,
    pub reference: String,
    pub reverses: Option<Uuid>,
    pub reversed_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const OPERATION_SELECT: &str =
    "SELECT o.id, o.client_id, o.account_id, a.membership_id, a.person_id, a.point_type,
        o.operation_type, o.direction, o.points, o.balance_after, o.reference, o.reverses,
        (SELECT r.id FROM operations r WHERE r.reverses = o.id) AS reversed_by, o.created_at
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

/// What a new operation posts.
pub struct NewOperation<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub account_id: Uuid,
    pub system_account_id: Uuid,
    pub operation_type: &'a str,
    pub direction: &'a str,
    pub points: i64,
    /// The member account's change: +points (accrue) or −points (settle).
    pub delta: i64,
    pub balance_after: i64,
    pub reference: &'a str,
    pub reverses: Option<Uuid>,
    pub subject: &'a str,
}

/// Inserts the operation and its two entries, which sum to zero.
pub async fn post_operation(tx: &mut Tx, op: &NewOperation<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO operations (id, client_id, account_id, operation_type, direction, points, balance_after,
             reference, reverses, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(op.id)
    .bind(op.client_id)
    .bind(op.account_id)
    .bind(op.operation_type)
    .bind(op.direction)
    .bind(op.points)
    .bind(op.balance_after)
    .bind(op.reference)
    .bind(op.reverses)
    .bind(op.subject)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO ledger_entries (operation_id, account_id, amount, balance_after)
         VALUES ($1, $2, $3, $4), ($1, $5, -$3, NULL)",
    )
    .bind(op.id)
    .bind(op.account_id)
    .bind(op.delta)
    .bind(op.balance_after)
    .bind(op.system_account_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub reference: String,
    pub capture_operation_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const HOLD_SELECT: &str =
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

pub async fn lock_hold_by_client_id(tx: &mut Tx, client_id: &str) -> sqlx::Result<Option<HoldRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{HOLD_SELECT} WHERE h.client_id = $1 FOR UPDATE OF h"
    )))
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await
}

/// When points credited now to a point type expire: never, N months after earning, or at the end
/// of the program's last valid day.
pub fn expiry_of(
    point_type: &PointTypeRow,
    program: &ProgramRow,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match point_type.expiry_policy.as_str() {
        "months_after_earning" => {
            now.checked_add_months(chrono::Months::new(point_type.expiry_months.max(0) as u32))
        }
        "end_of_program" => program
            .valid_to
            .and_then(|day| day.succ_opt())
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|midnight| midnight.and_utc()),
        _ => None,
    }
}

/// Records a credit as a lot that later debits and the expiry sweep draw from.
pub async fn add_lot(
    tx: &mut Tx,
    account: Uuid,
    operation: Uuid,
    amount: i64,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO point_lots (account_id, operation_id, amount, remaining, expires_at) VALUES ($1, $2, $3, $3, $4)",
    )
    .bind(account)
    .bind(operation)
    .bind(amount)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes `amount` from the account's open lots: first the lot of `prefer` (a reversal takes back
/// the very points it reverses), then oldest-expiring first. A debit into a negative balance
/// takes what the lots hold.
pub async fn consume_lots(
    tx: &mut Tx,
    account: Uuid,
    amount: i64,
    prefer: Option<Uuid>,
) -> sqlx::Result<()> {
    let lots: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, remaining FROM point_lots WHERE account_id = $1 AND remaining > 0
         ORDER BY operation_id IS DISTINCT FROM $2, expires_at NULLS LAST, id FOR UPDATE",
    )
    .bind(account)
    .bind(prefer)
    .fetch_all(&mut **tx)
    .await?;
    let mut left = amount;
    let mut taken: Vec<(i64, i64)> = Vec::new();
    for (id, remaining) in lots {
        if left == 0 {
            break;
        }
        let take = remaining.min(left);
        taken.push((id, take));
        left -= take;
    }
    let (ids, takes): (Vec<i64>, Vec<i64>) = taken.into_iter().unzip();
    sqlx::query(
        "UPDATE point_lots l SET remaining = l.remaining - t.take
         FROM unnest($1::bigint[], $2::bigint[]) AS t(id, take) WHERE l.id = t.id",
    )
    .bind(&ids)
    .bind(&takes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueLot {
    pub id: i64,
    pub account_id: Uuid,
    pub remaining: i64,
    pub program_id: Uuid,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub point_type: String,
    pub balance: i64,
    pub held: i64,
}

/// Lots past their expiry with points left, locked with their account; replicas skip them.
pub async fn lock_due_lots(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<DueLot>> {
    sqlx::query_as(
        "SELECT l.id, l.account_id, l.remaining, a.program_id, a.membership_id, a.person_id, a.point_type,
                a.balance, a.held
         FROM point_lots l JOIN accounts a ON a.id = l.account_id
         WHERE l.remaining > 0 AND l.expires_at <= now()
         ORDER BY l.expires_at LIMIT $1 FOR UPDATE OF l, a SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

pub async fn close_lot(tx: &mut Tx, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE point_lots SET remaining = 0 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Open points of an account by the day they expire, soonest first.
pub async fn expiry_forecast(
    conn: &mut PgConnection,
    account: Uuid,
) -> sqlx::Result<Vec<(NaiveDate, i64)>> {
    sqlx::query_as(
        "SELECT (expires_at AT TIME ZONE 'UTC')::date AS day, sum(remaining)::bigint
         FROM point_lots WHERE account_id = $1 AND remaining > 0 AND expires_at IS NOT NULL
         GROUP BY 1 ORDER BY 1",
    )
    .bind(account)
    .fetch_all(conn)
    .await
}

/// Reserves `points` of the account's available points; false when they are not available.
pub async fn reserve(tx: &mut Tx, account: Uuid, points: i64) -> sqlx::Result<bool> {
    let reserved = sqlx::query(
        "UPDATE accounts SET held = held + $2, updated_at = now() WHERE id = $1 AND balance - held >= $2",
    )
    .bind(account)
    .bind(points)
    .execute(&mut **tx)
    .await?;
    Ok(reserved.rows_affected() == 1)
}

/// Gives reserved points back to the available balance.
pub async fn release(tx: &mut Tx, account: Uuid, points: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET held = held - $2, updated_at = now() WHERE id = $1")
        .bind(account)
        .bind(points)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn insert_hold(
    tx: &mut Tx,
    id: Uuid,
    client_id: &str,
    account: Uuid,
    points: i64,
    expires_at: DateTime<Utc>,
    reference: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO holds (id, client_id, account_id, points, expires_at, reference)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(client_id)
    .bind(account)
    .bind(points)
    .bind(expires_at)
    .bind(reference)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn settle_hold(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
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
