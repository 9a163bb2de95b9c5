//! Group commit of `RecordOperation`: calls arriving together are posted in one transaction.
//!
//! A call waits in a queue; as soon as one of [`BATCHES_IN_FLIGHT`] slots is free, a batch takes
//! it with whatever else is queued (up to [`MAX_BATCH`]): a lone call does not wait for company,
//! and under load batches grow by themselves while the previous ones commit. Each call keeps its own
//! idempotency claim and its own answer: a refusal (points not there, a suspended membership, a
//! card not usable) answers that call alone. If the batch's transaction fails on something a call
//! caused (an operation id used before, a conflict), the batch is posted again with the reused ids
//! refused, and if it fails again each call alone, so that the error reaches only the call it
//! belongs to; if the database itself fails, every call of
//! the batch hears so at once. A caller that gave up before its batch formed is not posted for.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    store::{self as kit_store, Claim, Claimed, Pool, Tx},
};
use crm_proto::crm::loyalty::v1::{Operation, RecordOperationRequest};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{Instrument, Span};
use uuid::Uuid;

use super::{AccountKey, Announce, Change, LockedMembership, Posting, System, apply_locked};
use crate::{
    cards,
    convert::operation_to_proto,
    domain,
    lookups::{person_account, pick_point_type},
    store::{self, OperationRow, OperationTypeRow, PointTypeRow, ProgramRow},
};

/// Calls posted in one transaction at most.
pub const MAX_BATCH: usize = 64;
/// Batches committing at once; more calls wait and join the next batch.
pub const BATCHES_IN_FLIGHT: usize = 2;

struct Job {
    subject: String,
    request: RecordOperationRequest,
    membership: Uuid,
    person: Option<Uuid>,
    span: Span,
    reply: oneshot::Sender<Result<Operation>>,
}

/// The queue `RecordOperation` calls wait in.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::UnboundedSender<Job>,
}

/// Programs' types as last read, by program id: used while the program's version is the same.
type Setups = Arc<Mutex<HashMap<Uuid, Arc<Setup>>>>;

impl Recorder {
    /// Starts the batcher; it stops when the last `Recorder` is dropped.
    pub fn start(pool: Pool) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, jobs));
        Self { queue }
    }

    /// Posts a validated call (membership and person parsed) and waits for its answer.
    pub(crate) async fn record(
        &self,
        subject: &str,
        request: RecordOperationRequest,
        membership: Uuid,
        person: Option<Uuid>,
    ) -> Result<Operation> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            subject: subject.to_owned(),
            request,
            membership,
            person,
            span: Span::current(),
            reply,
        };
        let stopped = || ServiceError::Unavailable("the service is shutting down".into());
        self.queue.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: Pool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let setups = Setups::default();
    let mut waiting: Vec<Job> = Vec::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            match queue.recv().await {
                Some(job) => waiting.push(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        // An operation id appears once per batch: a repeat waits for a later one, where it finds
        // the first call's answer, or waits for its claim (or finds the id taken).
        let mut ids = HashSet::new();
        let (mut batch, mut later) = (Vec::new(), Vec::new());
        // A caller that gave up (timed out, disconnected) is not posted for.
        for job in waiting.drain(..).filter(|job| !job.reply.is_closed()) {
            if batch.len() < MAX_BATCH && ids.insert(job.request.operation_id.clone()) {
                batch.push(job);
            } else {
                later.push(job);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        let (pool, setups) = (pool.clone(), setups.clone());
        tokio::spawn(async move {
            post_batch(&pool, &setups, batch).await;
            drop(slot);
        });
    }
}

/// Posts the batch, or on a failure of the whole transaction each call alone.
async fn post_batch(pool: &Pool, setups: &Setups, jobs: Vec<Job>) {
    let span = tracing::info_span!("record_operations", batch = jobs.len());
    let none_taken = HashSet::new();
    let answers = try_batch(pool, setups, &jobs, &none_taken)
        .instrument(span.clone())
        .await;
    let error = match answers {
        Ok(answers) => return answer(jobs, answers),
        Err(error) if jobs.len() == 1 => {
            let job = jobs.into_iter().next().expect("one job");
            let _ = job.reply.send(Err(error));
            return;
        }
        Err(error) => error,
    };
    if !caused_by_a_call(&error) {
        return fail(jobs, &error);
    }
    // Most often an operation id used before (by another caller, or by this one before its
    // request id was forgotten): with those ids known, the calls that reuse them are refused and
    // the batch posted again; if it still fails, each call alone, so that the error reaches only
    // the call it belongs to.
    tracing::info!(%error, "a batch of operations failed; posting it again");
    let ids: Vec<&str> = jobs
        .iter()
        .map(|j| j.request.operation_id.as_str())
        .collect();
    let taken = match pool.acquire().await {
        Ok(mut conn) => store::taken_client_ids(&mut conn, &ids).await,
        Err(error) => Err(error),
    };
    let taken = match taken {
        Ok(taken) => taken,
        Err(error) => return fail(jobs, &error.into()),
    };
    match try_batch(pool, setups, &jobs, &taken)
        .instrument(span)
        .await
    {
        Ok(answers) => return answer(jobs, answers),
        Err(error) if !caused_by_a_call(&error) => return fail(jobs, &error),
        Err(error) => tracing::info!(%error, "the batch failed again; posting each call alone"),
    }
    // Nothing of a caller that gave up meanwhile was committed: it is not posted for.
    for job in jobs.into_iter().filter(|job| !job.reply.is_closed()) {
        let answer = try_batch(pool, setups, std::slice::from_ref(&job), &taken)
            .instrument(job.span.clone())
            .await
            .and_then(|mut answers| answers.pop().expect("one answer"));
        let _ = job.reply.send(answer);
    }
}

fn answer(jobs: Vec<Job>, answers: Vec<Result<Operation>>) {
    for (job, answer) in jobs.into_iter().zip(answers) {
        let _ = job.reply.send(answer);
    }
}

/// The database is unreachable or failing: every call of the batch hears so, at once.
fn fail(jobs: Vec<Job>, error: &ServiceError) {
    let unavailable = matches!(
        error,
        ServiceError::Unavailable(_)
            | ServiceError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
    );
    for job in jobs {
        let answer = if unavailable {
            ServiceError::Unavailable("the database is unavailable; retry later".into())
        } else {
            ServiceError::Internal(anyhow::anyhow!("a batch of operations failed: {error}"))
        };
        let _ = job.reply.send(Err(answer));
    }
}

/// Integrity violations (23xxx, or an operation id found reused when one posting was written)
/// and transaction conflicts (40xxx) come from what calls asked.
fn caused_by_a_call(error: &ServiceError) -> bool {
    match error {
        ServiceError::AlreadyExists(..) => true,
        ServiceError::Database(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|code| code.starts_with("23") || code.starts_with("40")),
        _ => false,
    }
}

/// A program's types, read again only when the program's version changes.
struct Setup {
    program: ProgramRow,
    operation_types: Vec<OperationTypeRow>,
    point_types: Vec<PointTypeRow>,
}

/// What a fresh call resolved to, before it is posted.
struct Resolved {
    job: usize,
    claim: Claimed,
    posting: Posting,
    operation_type: OperationTypeRow,
    card: Option<Uuid>,
}

/// Posts `jobs` in one transaction; a fresh call whose operation id is in `taken` is refused.
async fn try_batch(
    pool: &Pool,
    setups: &Setups,
    jobs: &[Job],
    taken: &HashSet<String>,
) -> Result<Vec<Result<Operation>>> {
    let mut tx = pool.begin().await?;
    let requests: Vec<(&str, &RecordOperationRequest)> = jobs
        .iter()
        .map(|job| (job.subject.as_str(), &job.request))
        .collect();
    let claims = kit_store::claim_all::<Operation, _>(&mut tx, &requests).await?;
    let mut answers: Vec<Option<Result<Operation>>> = jobs.iter().map(|_| None).collect();
    let mut fresh: Vec<(usize, Claimed)> = Vec::new();
    for (i, claim) in claims.into_iter().enumerate() {
        match claim {
            Claim::Fresh(claim) => fresh.push((i, claim)),
            Claim::Replay(answer) => answers[i] = Some(Ok(answer)),
            Claim::Refused(error) => answers[i] = Some(Err(error.into())),
        }
    }
    let memberships =
        super::lock_memberships(&mut tx, fresh.iter().map(|(i, _)| jobs[*i].membership)).await?;
    let mut resolved: Vec<Resolved> = Vec::new();
    let mut failed: Vec<Claimed> = Vec::new();
    for (i, claim) in fresh {
        let job = &jobs[i];
        let outcome = if taken.contains(&job.request.operation_id) {
            let id = job.request.operation_id.clone();
            Err(crate::error::Refusal::IdReused { id }.into())
        } else {
            resolve(&mut tx, job, &memberships, setups).await
        };
        match outcome {
            Ok((posting, operation_type, card)) => resolved.push(Resolved {
                job: i,
                claim,
                posting,
                operation_type,
                card,
            }),
            Err(error) => {
                answers[i] = Some(Err(error));
                failed.push(claim);
            }
        }
    }

    let postings: Vec<Posting> = resolved.iter().map(|r| r.posting.clone()).collect();
    let outcomes = apply_locked(&mut tx, &memberships, &postings).await?;
    let mut answered: Vec<(Claimed, Vec<u8>)> = Vec::new();
    let mut activated = HashSet::new();
    for (r, outcome) in resolved.into_iter().zip(outcomes) {
        let job = &jobs[r.job];
        match outcome {
            Ok(posted) => {
                // Two accruals of one batch may present the same new card: it activates once.
                if let Some(card) = r.card.filter(|card| activated.insert(*card)) {
                    cards::activate(&mut tx, card, job.membership, &job.subject).await?;
                }
                let row = OperationRow {
                    id: posted.operation.expect("an operation posts"),
                    client_id: job.request.operation_id.clone(),
                    account_id: posted.account,
                    membership_id: r.posting.account.membership,
                    person_id: r.posting.account.person,
                    point_type: r.posting.account.point_type.clone(),
                    operation_type: r.operation_type.code.clone(),
                    direction: r.operation_type.direction,
                    points: posted.points,
                    balance_after: posted.balance_after,
                    reference: job.request.reference.trim().to_owned(),
                    reverses: None,
                    reversed_by: None,
                    reversed_points: 0,
                    created_at: posted.created_at,
                };
                let operation = operation_to_proto(&row);
                answered.push((r.claim, operation.encode_to_vec()));
                answers[r.job] = Some(Ok(operation));
            }
            Err(error) => {
                answers[r.job] = Some(Err(error));
                failed.push(r.claim);
            }
        }
    }
    kit_store::settle_all(&mut tx, answered, failed).await?;
    tx.commit().await?;
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every call is answered"))
        .collect())
}

/// The call's posting: its operation type and point type in the membership's program, its
/// account (a B2B person's only where the program has them and does not pool), and the card.
async fn resolve(
    tx: &mut Tx,
    job: &Job,
    memberships: &HashMap<Uuid, LockedMembership>,
    setups: &Setups,
) -> Result<(Posting, OperationTypeRow, Option<Uuid>)> {
    let req = &job.request;
    let membership = memberships
        .get(&job.membership)
        .ok_or_else(|| ServiceError::not_found("Membership", job.membership))?;
    let known = setups
        .lock()
        .expect("setups lock")
        .get(&membership.program_id)
        .filter(|s| s.program.version == membership.program_version)
        .cloned();
    let setup = match known {
        Some(setup) => setup,
        None => {
            let setup = Arc::new(read_setup(tx, membership.program_id).await?);
            let mut cache = setups.lock().expect("setups lock");
            cache.insert(membership.program_id, setup.clone());
            setup
        }
    };
    let code = req.operation_type.trim();
    let Some(operation_type) = setup
        .operation_types
        .iter()
        .find(|t| t.code == code)
        .cloned()
    else {
        let mut v = FieldViolations::new();
        v.add(
            "operation_type",
            format!("{code:?} is not an operation type of the program"),
        );
        return Err(v.into());
    };
    let account = req.account.clone().unwrap_or_default();
    let point_type = pick_point_type(
        &setup.point_types,
        &account.point_type,
        Some(&operation_type.default_point_type),
    )?;
    let person = person_account(
        job.person,
        setup.program.kind,
        membership.pool_to_organization,
    )?;
    let accrue = operation_type.direction == domain::Direction::Accrue;
    let card = match req.card_number.trim() {
        "" => None,
        number => cards::present(tx, number, membership.id, accrue).await?,
    };
    let change = if accrue {
        let expires_at = store::expiry_of(point_type, &setup.program, chrono::Utc::now());
        Change::Credit {
            points: req.points,
            expires_at,
        }
    } else {
        Change::Debit {
            points: req.points,
            floor: (!point_type.allow_negative).then_some(0),
            prefer: None,
        }
    };
    let posting = Posting {
        account: AccountKey {
            program: membership.program_id,
            membership: membership.id,
            person,
            point_type: point_type.code.clone(),
        },
        change,
        operation: Some(super::Operation {
            client_id: req.operation_id.clone(),
            operation_type: operation_type.code.clone(),
            reference: req.reference.trim().to_owned(),
            subject: job.subject.clone(),
            reverses: None,
            system: if accrue {
                System::Issuance
            } else {
                System::Redemption
            },
            announce: if accrue {
                Announce::Accrued
            } else {
                Announce::Redeemed
            },
            qualifying: accrue && point_type.qualifying,
        }),
        requires_active: true,
        span: job.span.clone(),
    };
    Ok((posting, operation_type, card))
}

async fn read_setup(tx: &mut Tx, program: Uuid) -> Result<Setup> {
    let row = store::get_program(tx, program)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", program))?;
    Ok(Setup {
        operation_types: store::operation_types(tx, program).await?,
        point_types: store::point_types(tx, program).await?,
        program: row,
    })
}
