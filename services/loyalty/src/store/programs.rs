//! Programs with their point and operation types and accrual rules.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::{MEMBERSHIP_COLUMNS, MembershipRow, OPERATION_SELECT, OperationRow};
use crate::domain::{Direction, ExpiryPolicy, ProgramKind, ProgramStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgramRow {
    pub id: Uuid,
    pub display_name: String,
    pub kind: ProgramKind,
    pub currency_code: String,
    pub status: ProgramStatus,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
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
    pub expiry_policy: ExpiryPolicy,
    pub expiry_months: i32,
    pub allow_negative: bool,
    pub reversal_floor: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OperationTypeRow {
    pub code: String,
    pub display_name: String,
    pub direction: Direction,
    pub default_point_type: String,
}

pub(super) const PROGRAM_COLUMNS: &str =
    "id, display_name, kind, currency_code, status, valid_from, valid_to,
    accrual_rules, created_at, updated_at, created_by, updated_by, version";

pub async fn get_program(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The program, held against changes (its status above all) until the transaction ends; calls that
/// only rely on it (enrolments, bulk accrual batches) do not wait for each other.
pub async fn share_program(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1 FOR SHARE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Whether any account holds points of the point type.
pub async fn point_type_used(tx: &mut Tx, program: Uuid, code: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE program_id = $1 AND point_type = $2 AND kind = 'member')",
    )
    .bind(program)
    .bind(code)
    .fetch_one(&mut **tx)
    .await
}

/// The program, locked for a change to it.
pub async fn lock_program(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<ProgramRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1 FOR NO KEY UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn list_programs(
    conn: &mut PgConnection,
    status: Option<ProgramStatus>,
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
             created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(p.id)
    .bind(&p.display_name)
    .bind(p.kind)
    .bind(&p.currency_code)
    .bind(p.status)
    .bind(p.valid_from)
    .bind(p.valid_to)
    .bind(&p.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_program(tx: &mut Tx, p: &ProgramRow, subject: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE programs SET display_name = $2, status = $3, valid_from = $4, valid_to = $5,
             updated_by = $6, updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(p.id)
    .bind(&p.display_name)
    .bind(p.status)
    .bind(p.valid_from)
    .bind(p.valid_to)
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

/// Active memberships of `party` in active programs that have accrual rules, locked in id order
/// for the postings to come (a shared lock would have to be upgraded, which deadlocks against
/// another invoice of the same party).
pub async fn accruing_memberships(tx: &mut Tx, party: Uuid) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
         WHERE party_id = $1 AND status = 'active'
           AND program_id IN (SELECT id FROM programs WHERE status = 'active' AND accrual_rules IS NOT NULL)
         ORDER BY id FOR NO KEY UPDATE"
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

/// The operations whose client id starts with `prefix`, locked in membership order (the lock order
/// of every posting), oldest first within one.
pub async fn lock_operations_by_prefix(
    tx: &mut Tx,
    prefix: &str,
) -> sqlx::Result<Vec<OperationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OPERATION_SELECT} WHERE o.client_id LIKE $1 || '%'
         ORDER BY a.membership_id, o.created_at, o.id FOR UPDATE OF o"
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
    .bind(t.expiry_policy)
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
    .bind(t.direction)
    .bind(&t.default_point_type)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
