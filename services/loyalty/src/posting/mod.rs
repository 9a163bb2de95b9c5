//! The posting engine: the one place points move. Every movement of points — an operation
//! recorded or reversed, a hold placed, captured, voided or lapsed, a lot expired, a bulk or
//! invoice accrual — is a [`Posting`], and [`apply`] applies a batch of them in the caller's
//! transaction as a handful of multi-row statements:
//!
//! 1. the memberships are locked in id order, with their status and their program's;
//! 2. the member accounts are locked in id order (those never used are created by the write);
//! 3. the open lots of accounts that lose points are locked;
//! 4. each posting is decided in memory, in the order given, against the running balances: a
//!    refusal (points not there, a membership not active, the reversal floor) answers that posting
//!    alone and leaves the others standing;
//! 5. balances, operations, both sides of their entries, lots, qualifying days and events are
//!    written in one statement.
//!
//! **Lock order** of every path that posts: memberships, then member accounts, then lots, each in
//! id order, all taken by one `apply` per transaction (a path that posts several things, like the
//! hold sweep, makes them one batch; group commit locks the memberships itself, to read their
//! programs, and goes on with [`apply_locked`]). A path may first lock rows of its own that no posting takes
//! (the holds it settles, the operation it reverses, a bulk job's items).
//!
//! Lots: every credit opens a lot with its expiry; debits take from open lots oldest-expiring
//! first (a reversal first from the lots of what it reverses); the expiry sweep empties a due lot
//! as far as the points not held allow. Open lots always add up to a non-negative balance.

pub(crate) mod batch;
pub(crate) mod capture;
pub(crate) mod hold;
pub(crate) mod record;
mod reversal;
mod running;
mod sql;

pub(crate) use reversal::reverse;
use running::{Lot, Running};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, SubsecRound, Utc};
use crm_kit::{
    error::{Result, ServiceError},
    outbox::{OutboxRows, Outgoing},
    store::{Tx, unique_violation},
};
use crm_proto::crm::loyalty::v1::{PointsAccrued, PointsExpired, PointsRedeemed, PointsReversed};
use tracing::Span;
use uuid::Uuid;

use crate::{
    convert::account_ref,
    domain::{MembershipStatus, ProgramStatus},
    error::Refusal,
    events, tiers,
};

pub(crate) use sql::LockedMembership;

/// A member account: the membership's own (`person` None) or a B2B person's, of one point type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AccountKey {
    pub program: Uuid,
    pub membership: Uuid,
    pub person: Option<Uuid>,
    pub point_type: String,
}

/// How a posting changes its account.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Points in: an accrual, or a spend given back. Opens a lot expiring at `expires_at`.
    Credit {
        points: i64,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Points out: a spend, or an accrual taken back. Refused when it would leave fewer than
    /// `floor` points not held (`None`: no floor). Takes from the lots of `prefer` first.
    Debit {
        points: i64,
        floor: Option<i64>,
        prefer: Option<Uuid>,
    },
    /// A spend given back (its reversal, whole or in part): the points return to the lots the
    /// spend took them from, with those lots' expiry (one already due expires at the next sweep);
    /// what the lots cannot take back opens a lot expiring at `expires_at`.
    Return {
        points: i64,
        spend: Uuid,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Reserves points for a hold; refused when they are not available.
    Hold { points: i64 },
    /// Gives a hold's points back (voided or lapsed).
    Release { points: i64 },
    /// Spends `points` of a hold of `held` points and releases the rest.
    Capture { held: i64, points: i64 },
    /// Expires what is left of a due lot, as far as points not held allow (possibly nothing).
    Expire { lot: i64 },
}

/// The system account an operation's other side is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum System {
    Issuance,
    Redemption,
    Expiry,
}

impl System {
    fn kind(self) -> &'static str {
        match self {
            System::Issuance => "issuance",
            System::Redemption => "redemption",
            System::Expiry => "expiry",
        }
    }
}

/// The event an operation announces on the points topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    Accrued,
    Redeemed,
    /// Reversed: names the operation reversed.
    Reversed(Uuid),
    Expired,
    /// The caller announces it (a capture is a HoldCaptured).
    ByCaller,
}

/// The operation a posting records (holds and releases record none).
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// The idempotency id: unique among operations.
    pub client_id: String,
    pub operation_type: String,
    pub reference: String,
    pub subject: String,
    pub reverses: Option<Uuid>,
    pub system: System,
    pub announce: Announce,
    /// Counts toward tiers: its points are added to (credit) or taken from (debit) the
    /// membership's qualifying points.
    pub qualifying: bool,
}

/// One movement of points.
#[derive(Debug, Clone)]
pub(crate) struct Posting {
    pub account: AccountKey,
    pub change: Change,
    pub operation: Option<Operation>,
    /// Earning and spending need an active membership of an active program; giving back,
    /// reversing and expiring do not.
    pub requires_active: bool,
    /// The span of the request it serves: its events carry that trace.
    pub span: Span,
}

/// What a posting did.
#[derive(Debug, Clone)]
pub(crate) struct Posted {
    /// The operation recorded, if the posting records one and moved points.
    pub operation: Option<Uuid>,
    pub account: Uuid,
    /// Points moved (an expiry may move fewer than the lot held, or none).
    pub points: i64,
    pub balance_after: i64,
    pub created_at: DateTime<Utc>,
}

pub(crate) type Outcome = std::result::Result<Posted, ServiceError>;

/// The membership a posting may apply to, locked.
pub(crate) async fn lock_memberships(
    tx: &mut Tx,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, LockedMembership>> {
    let ids: Vec<Uuid> = ids
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = sql::lock_memberships(tx, &ids).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// A decided posting with an operation, to be written.
struct Written {
    index: usize,
    /// The operation's client id, where the engine names it (an expiry, by what its lot held).
    client_id: Option<String>,
    id: Uuid,
    account: Uuid,
    delta: i64,
    points: i64,
    balance_after: i64,
}

/// Applies `postings` in the caller's transaction, in order; each gets its own outcome. An `Err`
/// from this function means the transaction itself failed and must be rolled back.
pub(crate) async fn apply(tx: &mut Tx, postings: &[Posting]) -> Result<Vec<Outcome>> {
    let memberships = lock_memberships(tx, postings.iter().map(|p| p.account.membership)).await?;
    apply_locked(tx, &memberships, postings).await
}

/// [`apply`] where the caller has locked the postings' memberships ([`lock_memberships`], in this
/// transaction); a posting whose membership is not among them is refused as not found.
pub(crate) async fn apply_locked(
    tx: &mut Tx,
    memberships: &HashMap<Uuid, LockedMembership>,
    postings: &[Posting],
) -> Result<Vec<Outcome>> {
    // What PostgreSQL stores (microseconds), so that answers match later reads.
    let now = Utc::now().trunc_subsecs(6);
    let mut keys: Vec<&AccountKey> = postings
        .iter()
        .filter(|p| memberships.contains_key(&p.account.membership))
        .map(|p| &p.account)
        .collect();
    keys.sort_by_key(|k| (k.membership, k.person, k.point_type.as_str()));
    keys.dedup();
    let mut accounts: HashMap<AccountKey, Running> = HashMap::new();
    for row in sql::lock_accounts(tx, &keys).await? {
        accounts.insert(row.key(), row.running());
    }
    // Accounts never used are made only for postings that go through (below): a refusal
    // leaves nothing behind.
    for key in keys {
        accounts
            .entry(key.clone())
            .or_insert_with(|| Running::new(Uuid::now_v7()));
    }
    let debited: Vec<Uuid> = postings
        .iter()
        .filter(|p| {
            matches!(
                p.change,
                Change::Debit { .. } | Change::Capture { .. } | Change::Expire { .. }
            )
        })
        .filter_map(|p| accounts.get(&p.account).map(|a| a.id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let by_id: HashMap<Uuid, AccountKey> =
        accounts.iter().map(|(k, a)| (a.id, k.clone())).collect();
    let spends: Vec<Uuid> = postings
        .iter()
        .filter_map(|p| match p.change {
            Change::Return { spend, .. } => Some(spend),
            _ => None,
        })
        .collect();
    let mut returnable: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
    for (spend, lot_operation, points) in sql::returnable(tx, &spends).await? {
        returnable
            .entry(spend)
            .or_default()
            .push((lot_operation, points));
    }
    let lot_operations: Vec<Uuid> = returnable.values().flatten().map(|(op, _)| *op).collect();
    for lot in sql::lock_lots(tx, &debited, &lot_operations).await? {
        if let Some(account) = by_id.get(&lot.account_id).and_then(|k| accounts.get_mut(k)) {
            account.lots.push(lot.into());
        }
    }

    let mut outcomes = Vec::with_capacity(postings.len());
    let mut written = Vec::new();
    let mut takes = sql::Takes::default();
    for (index, posting) in postings.iter().enumerate() {
        let outcome = decide(
            posting,
            memberships,
            &mut accounts,
            &mut returnable,
            &mut takes,
            now,
        )
        .map(|(posted, delta, client_id)| {
            if let (Some(id), Some(_)) = (posted.operation, &posting.operation) {
                written.push(Written {
                    index,
                    client_id,
                    id,
                    account: posted.account,
                    delta,
                    points: posted.points,
                    balance_after: posted.balance_after,
                });
            }
            posted
        });
        outcomes.push(outcome);
    }
    write(tx, postings, memberships, &accounts, &written, &takes, now)
        .await
        .map_err(|error| id_reused(error, postings, &written))?;
    Ok(outcomes)
}

/// Applies one posting; its refusal is the `Err`.
pub(crate) async fn apply_one(tx: &mut Tx, posting: Posting) -> Result<Posted> {
    let mut outcomes = apply(tx, std::slice::from_ref(&posting)).await?;
    outcomes.pop().expect("one outcome per posting")
}

/// Decides one posting against the running state; returns what it did and the balance change.
fn decide(
    posting: &Posting,
    memberships: &HashMap<Uuid, LockedMembership>,
    accounts: &mut HashMap<AccountKey, Running>,
    returnable: &mut HashMap<Uuid, Vec<(Uuid, i64)>>,
    takes: &mut sql::Takes,
    now: DateTime<Utc>,
) -> std::result::Result<(Posted, i64, Option<String>), ServiceError> {
    let membership = memberships
        .get(&posting.account.membership)
        .ok_or_else(|| ServiceError::not_found("Membership", posting.account.membership))?;
    if posting.requires_active {
        if membership.status != MembershipStatus::Active {
            let (id, status) = (membership.id, membership.status);
            return Err(Refusal::MembershipNotActive { id, status }.into());
        }
        if membership.program_status != ProgramStatus::Active {
            let (id, status) = (membership.program_id, membership.program_status);
            return Err(Refusal::ProgramNotActive { id, status }.into());
        }
    }
    let account = accounts
        .get_mut(&posting.account)
        .expect("every posting's account was locked or created");
    let operation = posting.operation.as_ref().map(|_| Uuid::now_v7());
    let mut client_id = None;
    let (delta, points) = match posting.change {
        Change::Credit { points, expires_at } => {
            account.balance += points;
            if let Some(id) = operation {
                account.open_lot(id, points, expires_at);
            }
            (points, points)
        }
        Change::Debit {
            points,
            floor,
            prefer,
        } => {
            if let Some(floor) = floor
                && account.available() - points < floor
            {
                return Err(match posting.operation.as_ref().and_then(|o| o.reverses) {
                    Some(_) => Refusal::ReversalBelowFloor { points, floor },
                    None => Refusal::InsufficientPoints {
                        needed: points,
                        available: account.available().max(0),
                    },
                }
                .into());
            }
            account.balance -= points;
            let taken = account.take(points, prefer);
            if let Some(id) = operation {
                takes.record(id, &taken);
            }
            (-points, points)
        }
        Change::Return {
            points,
            spend,
            expires_at,
        } => {
            // Open lots hold the balance when it is positive: that is all the room there is.
            let before = account.balance.max(0);
            account.balance += points;
            let room = account.balance.max(0) - before;
            let taken = returnable.entry(spend).or_default();
            let given = account.give_back(room, taken);
            // Recorded against the spend: what it took, less what came back, is what may still.
            takes.record_returned(spend, &given);
            let returned: i64 = given.iter().map(|(_, n)| n).sum();
            if let Some(id) = operation {
                account.open_lot(id, (room - returned).max(0), expires_at);
            }
            (points, points)
        }
        Change::Hold { points } => {
            if account.available() < points {
                let available = account.available().max(0);
                return Err(Refusal::InsufficientPoints {
                    needed: points,
                    available,
                }
                .into());
            }
            account.held += points;
            (0, points)
        }
        Change::Release { points } => {
            account.held -= points;
            (0, points)
        }
        Change::Capture { held, points } => {
            account.held -= held;
            account.balance -= points;
            let taken = account.take(points, None);
            if let Some(id) = operation {
                takes.record(id, &taken);
            }
            (-points, points)
        }
        Change::Expire { lot } => {
            let available = account.available();
            let Some(lot) = account.lots.iter_mut().find(|l| l.id == Some(lot)) else {
                return Ok((nothing(account, now), 0, None));
            };
            let points = lot.remaining.min(available.max(0));
            if points == 0 {
                return Ok((nothing(account, now), 0, None));
            }
            // A lot may expire in parts (what a hold spared expires when it ends, what a return
            // put back into a due lot expires at the next sweep): each part is named by its own
            // operation; the lot's row lock keeps two sweeps from expiring the same points.
            client_id = operation.map(|id| format!("expiry:{}:{id}", lot.id.unwrap_or_default()));
            lot.remaining -= points;
            lot.changed = true;
            account.balance -= points;
            (-points, points)
        }
    };
    account.touched = true;
    Ok((
        Posted {
            operation,
            account: account.id,
            points,
            balance_after: account.balance,
            created_at: now,
        },
        delta,
        client_id,
    ))
}

fn nothing(account: &Running, now: DateTime<Utc>) -> Posted {
    Posted {
        operation: None,
        account: account.id,
        points: 0,
        balance_after: account.balance,
        created_at: now,
    }
}

/// Writes what the batch decided in one statement, then lets tiers follow qualifying points.
async fn write(
    tx: &mut Tx,
    postings: &[Posting],
    memberships: &HashMap<Uuid, LockedMembership>,
    accounts: &HashMap<AccountKey, Running>,
    written: &[Written],
    takes: &sql::Takes,
    now: DateTime<Utc>,
) -> Result<()> {
    let touched: Vec<(&AccountKey, &Running)> =
        accounts.iter().filter(|(_, a)| a.touched).collect();
    if touched.is_empty() {
        return Ok(());
    }
    let mut rows = sql::NewOperations::default();
    let mut qualifying: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut outgoing: Vec<Outgoing> = Vec::new();
    for w in written {
        let posting = &postings[w.index];
        let operation = posting.operation.as_ref().expect("written postings record");
        let key = (
            posting.account.program,
            posting.account.point_type.clone(),
            operation.system.kind(),
        );
        let system = sql::system_account(tx, &key)
            .await?
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no {key:?} system account")))?;
        rows.push(w, operation, system, now);
        if operation.qualifying {
            *qualifying.entry(posting.account.membership).or_default() += w.delta;
        }
        // Points events first: a TierChanged they cause follows them.
        if let Some(event) = announce(posting, operation, w) {
            outgoing.push(event);
        }
    }
    let lots = sql::LotChanges::of(&touched);
    let outbox = OutboxRows::new(tx, &outgoing);
    let writes = sql::Writes {
        accounts: &touched,
        operations: &rows,
        lots: &lots,
        takes,
        qualifying: &qualifying,
        day: now.date_naive(),
        outbox: &outbox,
    };
    sql::write_all(tx, &writes).await?;
    let tiered = qualifying
        .keys()
        .filter(|id| memberships.get(id).is_some_and(|m| m.tiered));
    for membership in tiered {
        tiers::evaluate(tx, *membership).await?;
    }
    Ok(())
}

/// The points event of a written operation, in its request's trace.
fn announce(posting: &Posting, operation: &Operation, w: &Written) -> Option<Outgoing> {
    let key = posting.account.membership;
    let account = Some(account_ref(
        key,
        posting.account.person,
        &posting.account.point_type,
    ));
    let operation_id = w.id.to_string();
    let (points, balance_after) = (w.points, w.balance_after);
    let operation_type = operation.operation_type.clone();
    let _in_request = posting.span.enter();
    Some(match operation.announce {
        Announce::Accrued => events::POINTS.event(
            key,
            &PointsAccrued {
                operation_id,
                account,
                operation_type,
                points,
                balance_after,
            },
        ),
        Announce::Redeemed => events::POINTS.event(
            key,
            &PointsRedeemed {
                operation_id,
                account,
                operation_type,
                points,
                balance_after,
            },
        ),
        Announce::Reversed(original) => events::POINTS.event(
            key,
            &PointsReversed {
                operation_id,
                reversed_operation_id: original.to_string(),
                account,
                points: w.delta,
                balance_after,
            },
        ),
        Announce::Expired => events::POINTS.event(
            key,
            &PointsExpired {
                operation_id,
                account,
                points,
                balance_after,
            },
        ),
        Announce::ByCaller => return None,
    })
}

/// An operation id taken meanwhile (by another replica or caller) fails the statement; with one
/// operation in the batch, that is the caller's refusal.
fn id_reused(error: ServiceError, postings: &[Posting], written: &[Written]) -> ServiceError {
    let ServiceError::Database(db) = &error else {
        return error;
    };
    match (unique_violation(db), written) {
        (Some("operations_client_id_key"), [only]) => {
            let operation = postings[only.index].operation.as_ref();
            Refusal::IdReused {
                id: operation.map(|o| o.client_id.clone()).unwrap_or_default(),
            }
            .into()
        }
        _ => error,
    }
}
