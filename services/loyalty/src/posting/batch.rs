//! Group commit: calls of one kind arriving together are posted in one transaction.
//!
//! A call waits in a queue; as soon as one of [`BATCHES_IN_FLIGHT`] slots is free, a batch takes
//! it with whatever else is queued (up to [`MAX_BATCH`]): a lone call does not wait for company,
//! and under load batches grow by themselves while the previous ones commit. Each call keeps its
//! own idempotency claim and its own answer: a refusal (points not there, a suspended membership,
//! a card not usable) answers that call alone. If the batch's transaction fails on something a
//! call caused (an id used before, a conflict), the batch is posted again with the reused ids
//! refused, and if it fails again each call alone, so that the error reaches only the call it
//! belongs to; if the database itself fails, every call of the batch hears so at once. A caller
//! that gave up before its batch formed is not posted for.
//!
//! What a kind of call does inside the batch's transaction is its [`Batched`] implementation:
//! `RecordOperation` ([`super::record`]), `HoldPoints` ([`super::hold`]) and `CaptureHold`
//! ([`super::capture`]).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use crm_kit::{
    error::{Result, ServiceError},
    store::{self as kit_store, Claim, Claimed, Idempotent, Pool, Tx},
};
use prost::Message;
use sqlx::PgConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{Instrument, Span};
use uuid::Uuid;

use super::LockedMembership;
use crate::{
    error::Refusal,
    store::{self, OperationTypeRow, PointTypeRow, ProgramRow},
};

/// Calls posted in one transaction at most.
pub const MAX_BATCH: usize = 64;
/// Batches of one kind committing at once; more calls wait and join the next batch.
pub const BATCHES_IN_FLIGHT: usize = 2;

/// A kind of call posted in batches.
pub(crate) trait Batched: Send + Sync + 'static {
    type Request: Idempotent + Message + Send + Sync + 'static;
    type Answer: Message + Default + Send + 'static;
    /// What the handler parsed of the request (ids), ready for the batch.
    type Parsed: Send + Sync + 'static;

    /// The id the call creates, unique among its kind: once per batch.
    fn id(request: &Self::Request) -> &str;

    /// The membership whose points the call moves, locked before [`Batched::post`] (None: the
    /// call locks rows of its own first, and then its membership, in `post`).
    fn membership(parsed: &Self::Parsed) -> Option<Uuid>;

    /// Posts fresh calls in `tx`, their memberships locked; each gets its own outcome (a
    /// refusal). `Err`: the transaction failed (any database error: it aborts the transaction).
    fn post(
        &self,
        tx: &mut Tx,
        calls: &[&Call<Self>],
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> impl Future<Output = Result<Vec<Result<Self::Answer>>>> + Send;

    /// Those of `ids` already used.
    fn taken(
        conn: &mut PgConnection,
        ids: &[&str],
    ) -> impl Future<Output = sqlx::Result<HashSet<String>>> + Send;
}

/// The answers of a batch's fresh calls, filled in as their kind decides them.
pub(super) struct Outcomes<A>(Vec<Option<Result<A>>>);

impl<A> Outcomes<A> {
    pub fn new(calls: usize) -> Self {
        Self((0..calls).map(|_| None).collect())
    }

    pub fn answer(&mut self, call: usize, outcome: Result<A>) {
        self.0[call] = Some(outcome);
    }

    /// A refusal answers its call; a database error fails the batch (it aborted the
    /// transaction).
    pub fn refuse(&mut self, call: usize, error: ServiceError) -> Result<()> {
        if error.database().is_some() {
            return Err(error);
        }
        self.answer(call, Err(error));
        Ok(())
    }

    pub fn finish(self) -> Vec<Result<A>> {
        let answers = self.0.into_iter();
        answers
            .map(|a| a.expect("every call has an outcome"))
            .collect()
    }
}

/// A call waiting for its batch.
pub(crate) struct Call<B: Batched + ?Sized> {
    pub subject: String,
    pub request: B::Request,
    pub parsed: B::Parsed,
    /// The request's span: the call's events carry its trace.
    pub span: Span,
    reply: oneshot::Sender<Result<B::Answer>>,
}

/// The queue calls of one kind wait in.
pub(crate) struct Batcher<B: Batched> {
    queue: mpsc::UnboundedSender<Call<B>>,
}

impl<B: Batched> Clone for Batcher<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<B: Batched> Batcher<B> {
    /// Starts the batcher; it stops when the last `Batcher` is dropped.
    pub fn start(pool: Pool, kind: B) -> Self {
        let (queue, calls) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, Arc::new(kind), calls));
        Self { queue }
    }

    /// Posts a validated call and waits for its answer.
    pub async fn call(
        &self,
        subject: &str,
        request: B::Request,
        parsed: B::Parsed,
    ) -> Result<B::Answer> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            subject: subject.to_owned(),
            request,
            parsed,
            span: Span::current(),
            reply,
        };
        let stopped = || ServiceError::Unavailable("the service is shutting down".into());
        self.queue.send(call).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run<B: Batched>(pool: Pool, kind: Arc<B>, mut queue: mpsc::UnboundedReceiver<Call<B>>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let mut waiting: Vec<Call<B>> = Vec::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            match queue.recv().await {
                Some(call) => waiting.push(call),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(call) => waiting.push(call),
                Err(_) => break,
            }
        }
        // An id, and a caller's request id, appear once per batch: a repeat waits for a later
        // one, where it finds the first call's answer, or waits for its claim (or finds the id
        // taken, or the request id used for another request).
        let (mut ids, mut request_ids) = (HashSet::new(), HashSet::new());
        let (mut batch, mut later) = (Vec::new(), Vec::new());
        // A caller that gave up (timed out, disconnected) is not posted for.
        for call in waiting.drain(..).filter(|call| !call.reply.is_closed()) {
            let request_id = call.request.request_id();
            let keyed =
                (!request_id.is_empty()).then(|| (call.subject.clone(), request_id.to_owned()));
            let first = !ids.contains(B::id(&call.request))
                && keyed.as_ref().is_none_or(|key| !request_ids.contains(key));
            if batch.len() < MAX_BATCH && first {
                ids.insert(B::id(&call.request).to_owned());
                request_ids.extend(keyed);
                batch.push(call);
            } else {
                later.push(call);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        let (pool, kind) = (pool.clone(), kind.clone());
        tokio::spawn(async move {
            post_batch(&pool, &*kind, batch).await;
            drop(slot);
        });
    }
}

/// Posts the batch, or on a failure of the whole transaction again as described above.
async fn post_batch<B: Batched>(pool: &Pool, kind: &B, calls: Vec<Call<B>>) {
    let kind_name = std::any::type_name::<B>()
        .rsplit("::")
        .next()
        .unwrap_or_default();
    let span = tracing::info_span!("post_batch", kind = kind_name, batch = calls.len());
    let none_taken = HashSet::new();
    let answers = try_batch(pool, kind, &calls, &none_taken)
        .instrument(span.clone())
        .await;
    let error = match answers {
        Ok(answers) => return answer(calls, answers),
        Err(error) => error,
    };
    if !caused_by_a_call(&error) {
        return fail(calls, &error);
    }
    // Most often an id used before (by another caller, or by this one before its request id
    // was forgotten): with those ids known, the calls that reuse them are refused and the batch
    // posted again; if it still fails, each call alone.
    tracing::info!(%error, "a batch failed; posting it again");
    let ids: Vec<&str> = calls.iter().map(|c| B::id(&c.request)).collect();
    let taken = match pool.acquire().await {
        Ok(mut conn) => B::taken(&mut conn, &ids).await,
        Err(error) => Err(error),
    };
    let taken = match taken {
        Ok(taken) => taken,
        Err(error) => return fail(calls, &error.into()),
    };
    match try_batch(pool, kind, &calls, &taken).instrument(span).await {
        Ok(answers) => return answer(calls, answers),
        Err(error) if !caused_by_a_call(&error) => return fail(calls, &error),
        Err(error) if calls.len() == 1 => {
            let call = calls.into_iter().next().expect("one call");
            let _ = call.reply.send(Err(error));
            return;
        }
        Err(error) => tracing::info!(%error, "the batch failed again; posting each call alone"),
    }
    // Nothing of a caller that gave up meanwhile was committed: it is not posted for.
    for call in calls.into_iter().filter(|call| !call.reply.is_closed()) {
        let answer = try_batch(pool, kind, std::slice::from_ref(&call), &taken)
            .instrument(call.span.clone())
            .await
            .and_then(|mut answers| answers.pop().expect("one answer"));
        let _ = call.reply.send(answer);
    }
}

/// Claims every call's request id, posts the fresh ones whose id is not in `taken`, stores their
/// answers and commits.
async fn try_batch<B: Batched>(
    pool: &Pool,
    kind: &B,
    calls: &[Call<B>],
    taken: &HashSet<String>,
) -> Result<Vec<Result<B::Answer>>> {
    let mut tx = pool.begin().await?;
    let requests: Vec<(&str, &B::Request)> = calls
        .iter()
        .map(|call| (call.subject.as_str(), &call.request))
        .collect();
    let claims = kit_store::claim_all::<B::Answer, _>(&mut tx, &requests).await?;
    let mut answers: Vec<Option<Result<B::Answer>>> = calls.iter().map(|_| None).collect();
    let mut fresh: Vec<(usize, Claimed)> = Vec::new();
    let mut failed: Vec<Claimed> = Vec::new();
    for (i, claim) in claims.into_iter().enumerate() {
        match claim {
            Claim::Fresh(claim) if taken.contains(B::id(&calls[i].request)) => {
                let id = B::id(&calls[i].request).to_owned();
                answers[i] = Some(Err(Refusal::IdReused { id }.into()));
                failed.push(claim);
            }
            Claim::Fresh(claim) => fresh.push((i, claim)),
            Claim::Replay(answer) => answers[i] = Some(Ok(answer)),
            Claim::Refused(error) => answers[i] = Some(Err(error.into())),
        }
    }
    let memberships = super::lock_memberships(
        &mut tx,
        fresh
            .iter()
            .filter_map(|(i, _)| B::membership(&calls[*i].parsed)),
    )
    .await?;
    let posted: Vec<&Call<B>> = fresh.iter().map(|(i, _)| &calls[*i]).collect();
    let outcomes = kind.post(&mut tx, &posted, &memberships).await?;
    let mut answered: Vec<(Claimed, Vec<u8>)> = Vec::new();
    for ((i, claim), outcome) in fresh.into_iter().zip(outcomes) {
        match &outcome {
            Ok(answer) => answered.push((claim, answer.encode_to_vec())),
            Err(_) => failed.push(claim),
        }
        answers[i] = Some(outcome);
    }
    kit_store::settle_all(&mut tx, answered, failed).await?;
    tx.commit().await?;
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every call is answered"))
        .collect())
}

fn answer<B: Batched>(calls: Vec<Call<B>>, answers: Vec<Result<B::Answer>>) {
    for (call, answer) in calls.into_iter().zip(answers) {
        let _ = call.reply.send(answer);
    }
}

/// The database is unreachable or failing: every call of the batch hears so, at once.
fn fail<B: Batched>(calls: Vec<Call<B>>, error: &ServiceError) {
    for call in calls {
        let _ = call.reply.send(Err(error.shared()));
    }
}

/// Integrity violations (23xxx, or an id found reused when one posting was written) and
/// transaction conflicts (40xxx) come from what calls asked.
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
pub(super) struct Setup {
    pub program: ProgramRow,
    pub operation_types: Vec<OperationTypeRow>,
    pub point_types: Vec<PointTypeRow>,
}

/// Programs' setups as last read, by program id.
#[derive(Default)]
pub(super) struct Setups(Mutex<HashMap<Uuid, Arc<Setup>>>);

impl Setups {
    /// The setup of the membership's program, read only when its version moved on.
    pub async fn of(&self, tx: &mut Tx, membership: &LockedMembership) -> Result<Arc<Setup>> {
        let program = membership.program_id;
        let known = self
            .0
            .lock()
            .expect("setups lock")
            .get(&program)
            .filter(|s| s.program.version == membership.program_version)
            .cloned();
        if let Some(setup) = known {
            return Ok(setup);
        }
        let row = store::get_program(tx, program)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program))?;
        let setup = Arc::new(Setup {
            operation_types: store::operation_types(tx, program).await?,
            point_types: store::point_types(tx, program).await?,
            program: row,
        });
        self.0
            .lock()
            .expect("setups lock")
            .insert(program, setup.clone());
        Ok(setup)
    }
}
