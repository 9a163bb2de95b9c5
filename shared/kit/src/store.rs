//! PostgreSQL: the pool, migrations (the kit's tables, then the service's), opaque page tokens, and
//! request-id idempotency.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use sqlx::{
    migrate::{MigrateError, Migrator},
    postgres::PgConnectOptions,
};

use crate::error::FieldViolations;
pub use crm_proto::checks::Idempotent;

mod pool;
pub use pool::{Conn, Pool, Tx};

static KIT_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A pool of at most `max_connections` to the database at `url`, whose checkouts wait at most
/// `acquire_timeout`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<Pool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Pool::connect(options, max_connections, acquire_timeout).await
}

/// How long commands and tools other than serving wait for a connection.
pub const PATIENT: Duration = Duration::from_secs(10);

/// Applies the kit's migrations, then the service's. Each set ignores the other's applied versions.
/// Holds, until the transaction ends, one lock per name in `keys` (each hashed to PostgreSQL's
/// 64-bit lock space, under `kind` so different kinds of things never share one): writers of
/// the same thing take turns. Taken in the order of the names, so two transactions naming the
/// same things never wait on each other in a circle.
pub async fn lock_names(
    tx: &mut Tx,
    kind: &str,
    keys: impl IntoIterator<Item = impl std::fmt::Display>,
) -> Result<(), sqlx::Error> {
    let mut names: Vec<String> = keys.into_iter().map(|k| format!("{kind}:{k}")).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub async fn migrate(pool: &Pool, mut service: Migrator) -> Result<(), MigrateError> {
    let mut kit = Migrator {
        migrations: KIT_MIGRATIONS.migrations.clone(),
        ..Migrator::DEFAULT
    };
    let mut conn = pool.acquire().await?;
    kit.set_ignore_missing(true).run(&mut *conn).await?;
    service.set_ignore_missing(true).run(&mut *conn).await
}

/// Deletes what no longer serves: published outbox rows and request ids after 7 days (the replay
/// window), inbox rows after 30 days (longer than Kafka's default retention, so a redelivery is
/// still recognised). Returns the number of rows deleted.
pub async fn purge_expired(conn: &mut sqlx::PgConnection) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    for statement in [
        "DELETE FROM crm_outbox WHERE published_at < now() - interval '7 days'",
        "DELETE FROM crm_idempotency WHERE created_at < now() - interval '7 days'",
        "DELETE FROM crm_inbox WHERE processed_at < now() - interval '30 days'",
    ] {
        deleted += sqlx::query(statement)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// The constraint a unique violation hit, to turn it into ALREADY_EXISTS.
pub fn unique_violation(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}

/// Page sizes: default 50, at most 500.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

/// The page size to use for `requested` (0 means the default; more than the maximum is capped).
fn page_size(requested: i32, violations: &mut FieldViolations) -> i64 {
    if requested < 0 {
        violations.add("page_size", "must not be negative");
    }
    match i64::from(requested) {
        n if n <= 0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// An opaque token holding the keyset position after the last item of a page. The request's
/// filters are hashed in, so a token is only accepted with the filters it was issued for.
fn encode_position<K: Serialize>(position: &K, filters: &str) -> String {
    let body = serde_json::json!({ "k": position, "f": filters });
    URL_SAFE_NO_PAD.encode(body.to_string())
}

/// The position in `token`, or `None` for the first page; a bad token is a field violation.
fn decode_position<K: DeserializeOwned>(
    token: &str,
    filters: &str,
    violations: &mut FieldViolations,
) -> Option<K> {
    if token.is_empty() {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(|body| body["f"].as_str() == Some(filters))
        .and_then(|body| serde_json::from_value(body["k"].clone()).ok());
    if decoded.is_none() {
        violations.add(
            "page_token",
            "is not a token from this list with these filters",
        );
    }
    decoded
}

fn filter_hash(filters: &impl Serialize) -> String {
    let json = serde_json::to_vec(filters).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(&Sha256::digest(json)[..12])
}

/// A mutating call's start in one line: `let (mut tx, claim) = begin!(&pool, caller, &request);`
/// claims the request's id for the caller (method from the request type), returns the stored
/// reply from the enclosing function on a replay, and otherwise yields the transaction to work in
/// and the claim that commits it with the answer.
#[macro_export]
macro_rules! begin {
    ($pool:expr, $caller:expr, $request:expr) => {
        $crate::fresh_or_replay!($crate::store::begin($pool, $caller, $request).await?)
    };
}

/// A replay answered before a call asks other services: `replay_first!(&pool, caller, &request);`
/// returns the stored answer from the enclosing function when the request id was answered before
/// (see [`answered`]); otherwise the call goes on to its checks and [`begin!`].
#[macro_export]
macro_rules! replay_first {
    ($pool:expr, $caller:expr, $request:expr) => {
        let mut conn = $pool.acquire().await?;
        let stored = $crate::store::answered(&mut conn, $caller, $request).await?;
        drop(conn);
        if let Some(answer) = stored {
            return Ok(answer);
        }
    };
}

/// Unpacks [`begin`]'s answer: returns the stored reply from the enclosing function on a replay,
/// or yields `(tx, claim)` to do the work with. Used through [`begin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! fresh_or_replay {
    ($begun:expr) => {
        match $begun {
            $crate::store::Begun::Replay(answer) => return Ok(answer),
            $crate::store::Begun::Fresh(tx, claim) => (tx, claim),
        }
    };
}

/// One page of a List: its size (default 50, at most 500), where it starts, and the filters its
/// token is bound to, hashed once so decode and encode cannot disagree.
#[derive(Debug)]
pub struct Page<K> {
    pub size: i64,
    /// The keyset position after which the page starts; `None` for the first page.
    pub after: Option<K>,
    filters: String,
}

impl<K: Serialize + DeserializeOwned> Page<K> {
    /// Reads `page_size` and `page_token`, recording a violation for a bad size or a token issued
    /// for other filters.
    pub fn new(
        page_size: i32,
        page_token: &str,
        filters: &impl Serialize,
        violations: &mut FieldViolations,
    ) -> Self {
        let filters = filter_hash(filters);
        let size = self::page_size(page_size, violations);
        let after = decode_position(page_token, &filters, violations);
        Self {
            size,
            after,
            filters,
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }

    /// Keeps the page's rows and returns the next page's token, empty on the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, position: impl Fn(&T) -> K) -> String {
        if rows.len() as i64 <= self.size {
            return String::new();
        }
        rows.truncate(self.size as usize);
        rows.last()
            .map(|last| encode_position(&position(last), &self.filters))
            .unwrap_or_default()
    }
}

/// How a mutating call starts: with a transaction, unless its `request_id` was answered before.
pub enum Begun<R> {
    /// Do the work in the transaction, then [`Claimed::commit`] with the answer.
    Fresh(Tx, Claimed),
    /// The same request was done before: answer with this.
    Replay(R),
}

/// A claimed request id; committing stores the answer in the transaction of the work it describes.
#[must_use = "commit the transaction with Claimed::commit"]
pub struct Claimed(Option<(String, &'static str, String)>);

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("request_id {0:?} was already used for a different request")]
    Conflict(String),
    #[error(
        "the answer to request_id {0:?} was erased under a data-subject request; use a new request_id"
    )]
    Erased(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the stored reply for request_id {0:?} cannot be decoded")]
    Corrupt(String, #[source] prost::DecodeError),
}

/// Opens the transaction of a mutating call and claims its request id for `caller` (an empty id
/// opts out). A concurrent call with the same id waits on the first one's row, then sees its
/// answer; the same id with another request is refused.
pub async fn begin<R: prost::Message + Default, Q: Idempotent + prost::Message>(
    pool: &Pool,
    caller: &str,
    request: &Q,
) -> Result<Begun<R>, IdempotencyError> {
    let mut tx = pool.begin().await?;
    let request_id = request.request_id();
    if request_id.is_empty() {
        return Ok(Begun::Fresh(tx, Claimed(None)));
    }
    let key = (caller, Q::METHOD, request_id);
    // The request holds its id, so the hash tells a replay from another request under that id.
    let hash = Sha256::digest(request.encode_to_vec()).to_vec();
    let inserted = sqlx::query(
        "INSERT INTO crm_idempotency (caller, method, request_id, request_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT (caller, method, request_id) DO NOTHING",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(key.2)
    .bind(&hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        let claimed = Claimed(Some((caller.to_owned(), Q::METHOD, request_id.to_owned())));
        return Ok(Begun::Fresh(tx, claimed));
    }

    let (stored_hash, response): (Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, response FROM crm_idempotency
         WHERE caller = $1 AND method = $2 AND request_id = $3",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(key.2)
    .fetch_one(&mut *tx)
    .await?;
    match response {
        _ if stored_hash != hash => Err(IdempotencyError::Conflict(request_id.to_owned())),
        Some(bytes) => R::decode(bytes.as_slice())
            .map(Begun::Replay)
            .map_err(|e| IdempotencyError::Corrupt(request_id.to_owned(), e)),
        // The first call's transaction holds the row until it commits, so an answer is missing
        // only when an erasure removed it.
        None => Err(IdempotencyError::Erased(request_id.to_owned())),
    }
}

/// The stored answer to `request` from `caller`, read without claiming anything: for a call that
/// must ask other services before its transaction, and should not when it is a replay. `None`
/// when the id is new (or has no answer yet); an error when it was used for another request.
pub async fn answered<R: prost::Message + Default, Q: Idempotent + prost::Message>(
    conn: &mut sqlx::PgConnection,
    caller: &str,
    request: &Q,
) -> Result<Option<R>, IdempotencyError> {
    let request_id = request.request_id();
    if request_id.is_empty() {
        return Ok(None);
    }
    let stored: Option<(Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT request_hash, response FROM crm_idempotency
         WHERE caller = $1 AND method = $2 AND request_id = $3",
    )
    .bind(caller)
    .bind(Q::METHOD)
    .bind(request_id)
    .fetch_optional(conn)
    .await?;
    match stored {
        None | Some((_, None)) => Ok(None),
        Some((hash, _)) if hash != Sha256::digest(request.encode_to_vec()).to_vec() => {
            Err(IdempotencyError::Conflict(request_id.to_owned()))
        }
        Some((_, Some(bytes))) => R::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| IdempotencyError::Corrupt(request_id.to_owned(), e)),
    }
}

/// Forgets `caller`'s claim of `request_id` for the request type `Q`, in `tx`: a call whose claim
/// committed with its first step (a saga's) failed at a later one and undid its work, so a retry
/// with the same id runs it again, as it would after any refusal.
pub async fn unclaim<Q: Idempotent>(
    tx: &mut Tx,
    caller: &str,
    request_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM crm_idempotency WHERE caller = $1 AND method = $2 AND request_id = $3",
    )
    .bind(caller)
    .bind(Q::METHOD)
    .bind(request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How [`claim_all`] found one request.
pub enum Claim<R> {
    /// Not seen before: do it, then settle the claim with [`settle_all`].
    Fresh(Claimed),
    /// Done before: answer with this.
    Replay(R),
    /// The id was used for another request, or its answer was erased.
    Refused(IdempotencyError),
}

/// A claimed id's stored request hash and answer, by caller and id.
type Stored = (Vec<u8>, Option<Vec<u8>>);
type StoredRow = (String, String, Vec<u8>, Option<Vec<u8>>);

/// [`begin`] for many requests in one transaction (group commit): claims each request's id for
/// its caller in two statements. Ids must be unique within the batch.
pub async fn claim_all<R: prost::Message + Default, Q: Idempotent + prost::Message>(
    tx: &mut Tx,
    requests: &[(&str, &Q)],
) -> Result<Vec<Claim<R>>, sqlx::Error> {
    let hashes: Vec<Vec<u8>> = requests
        .iter()
        .map(|(_, request)| Sha256::digest(request.encode_to_vec()).to_vec())
        .collect();
    // Claimed in key order, so that two batches claiming the same ids cannot deadlock.
    let mut keyed: Vec<usize> = (0..requests.len())
        .filter(|&i| !requests[i].1.request_id().is_empty())
        .collect();
    keyed.sort_by_key(|&i| (requests[i].0, requests[i].1.request_id()));
    debug_assert!(
        keyed
            .windows(2)
            .all(|w| (requests[w[0]].0, requests[w[0]].1.request_id())
                != (requests[w[1]].0, requests[w[1]].1.request_id())),
        "claim_all takes each caller's request id once"
    );
    let callers: Vec<&str> = keyed.iter().map(|&i| requests[i].0).collect();
    let ids: Vec<&str> = keyed.iter().map(|&i| requests[i].1.request_id()).collect();
    let key_hashes: Vec<&[u8]> = keyed.iter().map(|&i| hashes[i].as_slice()).collect();
    let inserted: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO crm_idempotency (caller, method, request_id, request_hash)
         SELECT caller, $1, request_id, hash
         FROM unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS r(caller, request_id, hash, n)
         ORDER BY n
         ON CONFLICT (caller, method, request_id) DO NOTHING RETURNING caller, request_id",
    )
    .bind(Q::METHOD)
    .bind(&callers)
    .bind(&ids)
    .bind(&key_hashes)
    .fetch_all(&mut **tx)
    .await?;
    let fresh: std::collections::HashSet<(String, String)> = inserted.into_iter().collect();
    let seen: Vec<usize> = keyed
        .iter()
        .copied()
        .filter(|&i| {
            !fresh.contains(&(
                requests[i].0.to_owned(),
                requests[i].1.request_id().to_owned(),
            ))
        })
        .collect();
    let mut stored: std::collections::HashMap<(String, String), Stored> =
        std::collections::HashMap::new();
    if !seen.is_empty() {
        let callers: Vec<&str> = seen.iter().map(|&i| requests[i].0).collect();
        let ids: Vec<&str> = seen.iter().map(|&i| requests[i].1.request_id()).collect();
        let rows: Vec<StoredRow> = sqlx::query_as(
            "SELECT i.caller, i.request_id, i.request_hash, i.response
             FROM crm_idempotency i JOIN unnest($2::text[], $3::text[]) AS r(caller, request_id)
               ON i.caller = r.caller AND i.method = $1 AND i.request_id = r.request_id",
        )
        .bind(Q::METHOD)
        .bind(&callers)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        stored = rows
            .into_iter()
            .map(|(caller, id, hash, response)| ((caller, id), (hash, response)))
            .collect();
    }
    Ok(requests
        .iter()
        .zip(&hashes)
        .map(|((caller, request), hash)| {
            let request_id = request.request_id();
            if request_id.is_empty() {
                return Claim::Fresh(Claimed(None));
            }
            let key = ((*caller).to_owned(), request_id.to_owned());
            match stored.get(&key) {
                None => Claim::Fresh(Claimed(Some((key.0, Q::METHOD, key.1)))),
                Some((stored_hash, _)) if stored_hash != hash => {
                    Claim::Refused(IdempotencyError::Conflict(key.1))
                }
                Some((_, Some(bytes))) => match R::decode(bytes.as_slice()) {
                    Ok(answer) => Claim::Replay(answer),
                    Err(e) => Claim::Refused(IdempotencyError::Corrupt(key.1, e)),
                },
                Some((_, None)) => Claim::Refused(IdempotencyError::Erased(key.1)),
            }
        })
        .collect())
}

/// Settles the claims of a batch in two statements: the answered store their answers for replays,
/// the failed are released so that a retry runs again. The caller then commits.
pub async fn settle_all(
    tx: &mut Tx,
    answered: Vec<(Claimed, Vec<u8>)>,
    failed: Vec<Claimed>,
) -> Result<(), sqlx::Error> {
    let (mut callers, mut methods, mut ids, mut responses) = (vec![], vec![], vec![], vec![]);
    for (claim, response) in answered {
        if let Some((caller, method, id)) = claim.0 {
            callers.push(caller);
            methods.push(method);
            ids.push(id);
            responses.push(response);
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE crm_idempotency i SET response = r.response
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS r(caller, method, request_id, response)
             WHERE i.caller = r.caller AND i.method = r.method AND i.request_id = r.request_id",
        )
        .bind(&callers)
        .bind(&methods)
        .bind(&ids)
        .bind(&responses)
        .execute(&mut **tx)
        .await?;
    }
    let (mut callers, mut methods, mut ids) = (vec![], vec![], vec![]);
    for claim in failed {
        if let Some((caller, method, id)) = claim.0 {
            callers.push(caller);
            methods.push(method);
            ids.push(id);
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "DELETE FROM crm_idempotency i
             USING unnest($1::text[], $2::text[], $3::text[]) AS r(caller, method, request_id)
             WHERE i.caller = r.caller AND i.method = r.method AND i.request_id = r.request_id",
        )
        .bind(&callers)
        .bind(&methods)
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Claimed {
    /// Commits the transaction's work but answers nothing: the call failed after changing state
    /// that must stay (e.g. a hold found expired and released), and a retry runs it again.
    pub async fn commit_failed(self, mut tx: Tx) -> Result<(), sqlx::Error> {
        if let Some((caller, method, request_id)) = self.0 {
            sqlx::query(
                "DELETE FROM crm_idempotency WHERE caller = $1 AND method = $2 AND request_id = $3",
            )
            .bind(caller)
            .bind(method)
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Stores `response` as the answer to replays, and commits.
    pub async fn commit(
        self,
        mut tx: Tx,
        response: &impl prost::Message,
    ) -> Result<(), sqlx::Error> {
        if let Some((caller, method, request_id)) = self.0 {
            sqlx::query(
                "UPDATE crm_idempotency SET response = $4
                 WHERE caller = $1 AND method = $2 AND request_id = $3",
            )
            .bind(caller)
            .bind(method)
            .bind(request_id)
            .bind(response.encode_to_vec())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_only_with_their_filters() {
        let token = encode_position(&("0190-id", 3), &filter_hash(&("kind", 1)));
        let mut v = FieldViolations::new();
        let page: Page<(String, i32)> = Page::new(10, &token, &("kind", 1), &mut v);
        assert_eq!(page.after, Some(("0190-id".into(), 3)));
        assert!(v.is_empty());

        let other: Page<(String, i32)> = Page::new(10, &token, &("kind", 2), &mut v);
        assert!(other.after.is_none());
        assert_eq!(v.fields().collect::<Vec<_>>(), ["page_token"]);

        let mut v = FieldViolations::new();
        let garbage: Page<(String, i32)> = Page::new(10, "%%%", &(), &mut v);
        assert!(garbage.after.is_none() && !v.is_empty());
    }

    #[test]
    fn a_page_hands_out_the_next_token_only_when_more_follow() {
        let filters = ("kind", 1);
        let mut v = FieldViolations::new();
        let first: Page<i64> = Page::new(2, "", &filters, &mut v);
        assert_eq!((first.after, first.limit()), (None, 3));
        let mut rows = vec![10, 20, 30];
        let token = first.finish(&mut rows, |row| *row);
        assert_eq!(rows, [10, 20]);
        let second: Page<i64> = Page::new(2, &token, &filters, &mut v);
        assert_eq!(second.after, Some(20));
        let mut last = vec![30];
        assert_eq!(second.finish(&mut last, |row| *row), "");
        assert!(v.is_empty());
        let _: Page<i64> = Page::new(2, &token, &("kind", 2), &mut v);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["page_token"]);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        let mut v = FieldViolations::new();
        assert_eq!(page_size(0, &mut v), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(10_000, &mut v), MAX_PAGE_SIZE);
        assert_eq!(page_size(7, &mut v), 7);
        assert!(v.is_empty());
        page_size(-1, &mut v);
        assert!(!v.is_empty());
    }
}
