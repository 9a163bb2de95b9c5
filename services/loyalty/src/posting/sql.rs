//! The engine's statements: the only SQL that changes balances or writes entries and lots.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{LazyLock, Mutex},
};

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{outbox::OutboxRows, store::Tx};
use uuid::Uuid;

use super::{AccountKey, Lot, Operation, Running, Written};
use crate::domain::{Direction, MembershipStatus, ProgramStatus};

/// Stands for "no person" in the member-account index, which has no NULLs.
const NO_PERSON: Uuid = Uuid::nil();

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LockedMembership {
    pub id: Uuid,
    pub program_id: Uuid,
    pub status: MembershipStatus,
    pub pool_to_organization: bool,
    pub program_status: ProgramStatus,
    /// Bumped by every change to the program, its point types and operation types.
    pub program_version: i64,
    /// The program has tiers: qualifying points may move the membership's.
    pub tiered: bool,
}

pub(super) async fn lock_memberships(
    tx: &mut Tx,
    ids: &[Uuid],
) -> sqlx::Result<Vec<LockedMembership>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT m.id, m.program_id, m.status, m.pool_to_organization, p.status AS program_status,
                p.version AS program_version,
                EXISTS (SELECT 1 FROM tiers t WHERE t.program_id = m.program_id) AS tiered
         FROM memberships m JOIN programs p ON p.id = m.program_id
         WHERE m.id = ANY($1) ORDER BY m.id FOR NO KEY UPDATE OF m",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
}

#[derive(sqlx::FromRow)]
pub(super) struct AccountState {
    id: Uuid,
    program_id: Uuid,
    membership_id: Uuid,
    person_id: Option<Uuid>,
    point_type: String,
    balance: i64,
    held: i64,
}

impl AccountState {
    pub(super) fn key(&self) -> AccountKey {
        AccountKey {
            program: self.program_id,
            membership: self.membership_id,
            person: self.person_id,
            point_type: self.point_type.clone(),
        }
    }

    pub(super) fn running(&self) -> Running {
        Running {
            id: self.id,
            new: false,
            balance: self.balance,
            held: self.held,
            touched: false,
            lots: Vec::new(),
        }
    }
}

fn key_columns(keys: &[&AccountKey]) -> (Vec<Uuid>, Vec<Uuid>, Vec<String>) {
    let memberships = keys.iter().map(|k| k.membership).collect();
    let persons = keys.iter().map(|k| k.person.unwrap_or(NO_PERSON)).collect();
    let types = keys.iter().map(|k| k.point_type.clone()).collect();
    (memberships, persons, types)
}

/// The member accounts of `keys` that exist, locked in id order.
pub(super) async fn lock_accounts(
    tx: &mut Tx,
    keys: &[&AccountKey],
) -> sqlx::Result<Vec<AccountState>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (memberships, persons, types) = key_columns(keys);
    sqlx::query_as(
        "SELECT a.id, a.program_id, a.membership_id, a.person_id, a.point_type, a.balance, a.held
         FROM accounts a JOIN unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(m, p, t)
           ON a.kind = 'member' AND a.membership_id = k.m
          AND coalesce(a.person_id, $4) = k.p
          AND a.point_type = k.t
         ORDER BY a.id FOR NO KEY UPDATE OF a",
    )
    .bind(&memberships)
    .bind(&persons)
    .bind(&types)
    .bind(NO_PERSON)
    .fetch_all(&mut **tx)
    .await
}

#[derive(sqlx::FromRow)]
pub(crate) struct OpenLot {
    id: i64,
    pub account_id: Uuid,
    operation_id: Uuid,
    amount: i64,
    remaining: i64,
    expires_at: Option<DateTime<Utc>>,
}

impl From<OpenLot> for Lot {
    fn from(lot: OpenLot) -> Self {
        Lot {
            id: Some(lot.id),
            operation: lot.operation_id,
            amount: lot.amount,
            remaining: lot.remaining,
            expires_at: lot.expires_at,
            changed: false,
        }
    }
}

/// The open lots of `accounts`, and the lots (open or not) opened by `operations`, locked in id
/// order and returned in the order debits take them.
pub(super) async fn lock_lots(
    tx: &mut Tx,
    accounts: &[Uuid],
    operations: &[Uuid],
) -> sqlx::Result<Vec<OpenLot>> {
    if accounts.is_empty() && operations.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT * FROM (
             SELECT id, account_id, operation_id, amount, remaining, expires_at FROM point_lots
             WHERE (account_id = ANY($1) AND remaining > 0) OR operation_id = ANY($2)
             ORDER BY id FOR UPDATE
         ) l ORDER BY account_id, expires_at NULLS LAST, id",
    )
    .bind(accounts)
    .bind(operations)
    .fetch_all(&mut **tx)
    .await
}

/// What each of `spends` took from lots and has not given back yet: (spend, lot operation, points).
pub(super) async fn returnable(
    tx: &mut Tx,
    spends: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Uuid, i64)>> {
    if spends.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT operation_id, lot_operation, sum(points)::bigint FROM lot_takes
         WHERE operation_id = ANY($1) GROUP BY 1, 2 HAVING sum(points) > 0 ORDER BY 1, 2",
    )
    .bind(spends)
    .fetch_all(&mut **tx)
    .await
}

/// What debits took from lots (positive) and what returns gave back (negative), by operation and
/// lot operation.
#[derive(Default)]
pub(super) struct Takes {
    operations: Vec<Uuid>,
    lot_operations: Vec<Uuid>,
    points: Vec<i64>,
}

impl Takes {
    pub(super) fn record(&mut self, operation: Uuid, taken: &[(Uuid, i64)]) {
        for (lot_operation, points) in taken {
            self.operations.push(operation);
            self.lot_operations.push(*lot_operation);
            self.points.push(*points);
        }
    }

    pub(super) fn record_returned(&mut self, spend: Uuid, given: &[(Uuid, i64)]) {
        for (lot_operation, points) in given {
            self.operations.push(spend);
            self.lot_operations.push(*lot_operation);
            self.points.push(-points);
        }
    }
}

/// A system account: (program, point type, kind).
type SystemKey = (Uuid, String, &'static str);

/// System accounts never change once a point type has them, so each is read once per process.
static SYSTEM_ACCOUNTS: LazyLock<Mutex<HashMap<SystemKey, Uuid>>> = LazyLock::new(Default::default);

/// The system account of `key`.
pub(super) async fn system_account(tx: &mut Tx, key: &SystemKey) -> sqlx::Result<Option<Uuid>> {
    if let Some(id) = SYSTEM_ACCOUNTS.lock().expect("cache lock").get(key) {
        return Ok(Some(*id));
    }
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE program_id = $1 AND point_type = $2 AND kind = $3",
    )
    .bind(key.0)
    .bind(&key.1)
    .bind(key.2)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = id {
        SYSTEM_ACCOUNTS
            .lock()
            .expect("cache lock")
            .insert(key.clone(), id);
    }
    Ok(id)
}

/// Operations to insert, column by column.
#[derive(Default)]
pub(super) struct NewOperations {
    ids: Vec<Uuid>,
    client_ids: Vec<String>,
    accounts: Vec<Uuid>,
    systems: Vec<Uuid>,
    types: Vec<String>,
    directions: Vec<&'static str>,
    points: Vec<i64>,
    deltas: Vec<i64>,
    balances: Vec<i64>,
    references: Vec<String>,
    reverses: Vec<Option<Uuid>>,
    subjects: Vec<String>,
    created_at: Vec<DateTime<Utc>>,
}

impl NewOperations {
    pub(super) fn push(
        &mut self,
        w: &Written,
        operation: &Operation,
        system: Uuid,
        at: DateTime<Utc>,
    ) {
        let direction = if w.delta >= 0 {
            Direction::Accrue
        } else {
            Direction::Settle
        };
        self.ids.push(w.id);
        let client_id = w.client_id.as_ref().unwrap_or(&operation.client_id);
        self.client_ids.push(client_id.clone());
        self.accounts.push(w.account);
        self.systems.push(system);
        self.types.push(operation.operation_type.clone());
        self.directions.push(direction.as_str());
        self.points.push(w.points);
        self.deltas.push(w.delta);
        self.balances.push(w.balance_after);
        self.references.push(operation.reference.clone());
        self.reverses.push(operation.reverses);
        self.subjects.push(operation.subject.clone());
        self.created_at.push(at);
    }
}

/// Lots the batch changed, column by column: existing ones with what is left of them, and new ones.
#[derive(Default)]
pub(super) struct LotChanges {
    ids: Vec<i64>,
    remaining: Vec<i64>,
    new_accounts: Vec<Uuid>,
    new_operations: Vec<Uuid>,
    new_amounts: Vec<i64>,
    new_remaining: Vec<i64>,
    new_expiry: Vec<Option<DateTime<Utc>>>,
}

impl LotChanges {
    pub(super) fn of(accounts: &[(&AccountKey, &Running)]) -> Self {
        let mut changes = Self::default();
        for (_, account) in accounts {
            for lot in account.lots.iter().filter(|l| l.changed) {
                match lot.id {
                    Some(id) => {
                        changes.ids.push(id);
                        changes.remaining.push(lot.remaining);
                    }
                    None => {
                        changes.new_accounts.push(account.id);
                        changes.new_operations.push(lot.operation);
                        changes.new_amounts.push(lot.amount);
                        changes.new_remaining.push(lot.remaining);
                        changes.new_expiry.push(lot.expires_at);
                    }
                }
            }
        }
        changes
    }
}

/// Everything a batch decided, written by [`write_all`].
pub(super) struct Writes<'a> {
    /// The accounts that changed: new ones are created with their balance.
    pub accounts: &'a [(&'a AccountKey, &'a Running)],
    pub operations: &'a NewOperations,
    pub lots: &'a LotChanges,
    pub takes: &'a Takes,
    /// Qualifying points gained (or lost) by membership on `day`.
    pub qualifying: &'a BTreeMap<Uuid, i64>,
    pub day: NaiveDate,
    pub outbox: &'a OutboxRows<'a>,
}

/// The statement of [`write_all`]: its own parameters are $1 to $36, the outbox's follow.
static WRITE_ALL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH balances AS (
             UPDATE accounts a SET balance = u.balance, held = u.held, updated_at = now()
             FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, balance, held)
             WHERE a.id = u.id
         ), created AS (
             INSERT INTO accounts (id, program_id, point_type, kind, membership_id, person_id,
                 balance, held)
             SELECT id, program, point_type, 'member', membership, person, balance, held
             FROM unnest($27::uuid[], $28::uuid[], $29::text[], $30::uuid[], $31::uuid[],
                 $32::bigint[], $33::bigint[])
                 AS a(id, program, point_type, membership, person, balance, held)
         ), operations AS (
             INSERT INTO operations (id, client_id, account_id, operation_type, direction, points,
                 balance_after, reference, reverses, created_by, created_at)
             SELECT * FROM unnest($4::uuid[], $5::text[], $6::uuid[], $7::text[], $8::text[],
                 $9::bigint[], $10::bigint[], $11::text[], $12::uuid[], $13::text[], $14::timestamptz[])
         ), entries AS (
             INSERT INTO ledger_entries (operation_id, account_id, amount, balance_after, created_at)
             SELECT id, account, delta, balance, at
             FROM unnest($4::uuid[], $6::uuid[], $15::bigint[], $10::bigint[], $14::timestamptz[])
                 AS e(id, account, delta, balance, at)
             UNION ALL
             SELECT id, system, -delta, NULL, at
             FROM unnest($4::uuid[], $16::uuid[], $15::bigint[], $14::timestamptz[])
                 AS s(id, system, delta, at)
         ), taken AS (
             UPDATE point_lots l SET remaining = u.remaining
             FROM unnest($17::bigint[], $18::bigint[]) AS u(id, remaining) WHERE l.id = u.id
         ), opened AS (
             INSERT INTO point_lots (account_id, operation_id, amount, remaining, expires_at)
             SELECT * FROM unnest($19::uuid[], $20::uuid[], $21::bigint[], $22::bigint[],
                 $23::timestamptz[])
         ), takes AS (
             INSERT INTO lot_takes (operation_id, lot_operation, points)
             SELECT * FROM unnest($24::uuid[], $25::uuid[], $26::bigint[])
         ), qualifying AS (
             INSERT INTO qualifying_days AS q (membership_id, day, points)
             SELECT m, $36::date, p FROM unnest($34::uuid[], $35::bigint[]) AS u(m, p)
             ON CONFLICT (membership_id, day) DO UPDATE SET points = q.points + excluded.points
         ), {}
         SELECT 1",
        OutboxRows::cte("events", 37)
    )
});

/// Everything the batch decided, in one statement: balances (and accounts created), operations
/// with both sides of their entries (which sum to zero per operation), lots, qualifying points and
/// events.
pub(super) async fn write_all(tx: &mut Tx, w: &Writes<'_>) -> sqlx::Result<()> {
    let (created, existing): (Vec<_>, Vec<_>) = w.accounts.iter().partition(|(_, a)| a.new);
    let ids: Vec<Uuid> = existing.iter().map(|(_, a)| a.id).collect();
    let balances: Vec<i64> = existing.iter().map(|(_, a)| a.balance).collect();
    let held: Vec<i64> = existing.iter().map(|(_, a)| a.held).collect();
    let new_ids: Vec<Uuid> = created.iter().map(|(_, a)| a.id).collect();
    let new_programs: Vec<Uuid> = created.iter().map(|(k, _)| k.program).collect();
    let new_types: Vec<&str> = created.iter().map(|(k, _)| k.point_type.as_str()).collect();
    let new_memberships: Vec<Uuid> = created.iter().map(|(k, _)| k.membership).collect();
    let new_persons: Vec<Option<Uuid>> = created.iter().map(|(k, _)| k.person).collect();
    let new_balances: Vec<i64> = created.iter().map(|(_, a)| a.balance).collect();
    let new_held: Vec<i64> = created.iter().map(|(_, a)| a.held).collect();
    // Sorted by membership: two batches add to their memberships' days in the same order.
    let qualified: Vec<Uuid> = w.qualifying.keys().copied().collect();
    let points: Vec<i64> = w.qualifying.values().copied().collect();
    let (ops, lots, takes) = (w.operations, w.lots, w.takes);
    let query = sqlx::query(sqlx::AssertSqlSafe(WRITE_ALL.as_str()))
        .bind(&ids)
        .bind(&balances)
        .bind(&held)
        .bind(&ops.ids)
        .bind(&ops.client_ids)
        .bind(&ops.accounts)
        .bind(&ops.types)
        .bind(&ops.directions)
        .bind(&ops.points)
        .bind(&ops.balances)
        .bind(&ops.references)
        .bind(&ops.reverses)
        .bind(&ops.subjects)
        .bind(&ops.created_at)
        .bind(&ops.deltas)
        .bind(&ops.systems)
        .bind(&lots.ids)
        .bind(&lots.remaining)
        .bind(&lots.new_accounts)
        .bind(&lots.new_operations)
        .bind(&lots.new_amounts)
        .bind(&lots.new_remaining)
        .bind(&lots.new_expiry)
        .bind(&takes.operations)
        .bind(&takes.lot_operations)
        .bind(&takes.points)
        .bind(&new_ids)
        .bind(&new_programs)
        .bind(&new_types)
        .bind(&new_memberships)
        .bind(&new_persons)
        .bind(&new_balances)
        .bind(&new_held)
        .bind(&qualified)
        .bind(&points)
        .bind(w.day);
    w.outbox.bind(query).execute(&mut **tx).await?;
    Ok(())
}
