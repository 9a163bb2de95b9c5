//! The kit's storage pieces against a real database: request-id idempotency, housekeeping and
//! the pool.

use std::time::Duration;

use futures::FutureExt;

use crm_kit::store::{self, Begun, Pool};
use crm_proto::crm::parties::v1::{Base, CreateBaseRequest, UpdateBaseRequest};
use crm_testkit::TestDatabase;
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

#[tokio::test]
async fn a_request_id_is_answered_once_and_expires_after_the_replay_window() {
    let database = TestDatabase::create().await.unwrap();
    let pool = database.kit_pool().await.unwrap();
    let request = |id: &str, name: &str| CreateBaseRequest {
        base: Some(Base {
            display_name: name.into(),
            ..Default::default()
        }),
        request_id: id.into(),
    };
    let answer = prost_types::Timestamp {
        seconds: 42,
        nanos: 0,
    };
    let begin = |caller: &'static str, request: CreateBaseRequest| {
        let pool = pool.clone();
        async move {
            store::begin::<prost_types::Timestamp, _>(&pool, caller, &request)
                .await
                .unwrap()
        }
    };

    let Begun::Fresh(tx, claim) = begin("alice", request("r-1", "Customers")).await else {
        panic!("a new request id is fresh");
    };
    claim.commit(tx, &answer).await.unwrap();
    let Begun::Replay(replayed) = begin("alice", request("r-1", "Customers")).await else {
        panic!("a repeated request id replays");
    };
    assert_eq!(replayed, answer);
    let conflict =
        store::begin::<prost_types::Timestamp, _>(&pool, "alice", &request("r-1", "Suppliers"))
            .await;
    assert!(matches!(
        conflict,
        Err(store::IdempotencyError::Conflict(_))
    ));
    // Request ids are the caller's own: another caller's r-1 is a request of its own.
    assert!(matches!(
        begin("bob", request("r-1", "Suppliers")).await,
        Begun::Fresh(..)
    ));
    let other_method = UpdateBaseRequest {
        request_id: "r-1".into(),
        ..Default::default()
    };
    assert!(matches!(
        store::begin::<prost_types::Timestamp, _>(&pool, "alice", &other_method)
            .await
            .unwrap(),
        Begun::Fresh(..)
    ));

    // A rolled-back attempt leaves the id free for a retry.
    let Begun::Fresh(tx, _claim) = begin("alice", request("r-2", "Customers")).await else {
        panic!("fresh");
    };
    tx.rollback().await.unwrap();
    assert!(matches!(
        begin("alice", request("r-2", "Customers")).await,
        Begun::Fresh(..)
    ));

    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("UPDATE crm_idempotency SET created_at = now() - interval '8 days' WHERE request_id = 'r-1'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO crm_outbox (event_id, topic, key, event_type, payload, published_at)
         VALUES (gen_random_uuid(), 't', 'k', 'x', '', now() - interval '8 days'),
                (gen_random_uuid(), 't', 'k', 'x', '', now()),
                (gen_random_uuid(), 't', 'k', 'x', '', NULL)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert_eq!(store::purge_expired(&mut conn).await.unwrap(), 2);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_outbox")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(outbox, 2, "recent and unpublished events stay");
}

/// A pool of one over a fresh database, so that every checkout sees the same connection slot.
async fn pool_of_one(database: &TestDatabase, acquire_timeout: Duration) -> Pool {
    let options: PgConnectOptions = database.url.parse().unwrap();
    Pool::connect(options, 1, acquire_timeout).await.unwrap()
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_before_its_connection_is_reused() {
    let database = TestDatabase::create().await.unwrap();
    let pool = pool_of_one(&database, Duration::from_secs(5)).await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("CREATE TABLE t (id int PRIMARY KEY)")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);

    let mut conn = pool.acquire().await.unwrap();
    // The dropped transaction wrote, so it had an id; a statement of its own has none.
    let own_transaction: bool = sqlx::query_scalar("SELECT txid_current_if_assigned() IS NULL")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(
        own_transaction,
        "the statement is not inside the dropped transaction"
    );
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('t')::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(table, None, "the transaction's work was rolled back");
}

#[tokio::test]
async fn a_call_cancelled_mid_statement_does_not_leave_its_reply_to_the_next_caller() {
    let database = TestDatabase::create().await.unwrap();
    let pool = pool_of_one(&database, Duration::from_secs(5)).await;
    let mut conn = pool.acquire().await.unwrap();
    let slow = sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_sleep(0.3)").fetch_one(&mut *conn);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err()
    );
    drop(conn);

    let mut conn = pool.acquire().await.unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT 2")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(answer, 2);
}

#[tokio::test]
async fn a_connection_the_server_dropped_is_replaced_not_handed_out_again() {
    let database = TestDatabase::create().await.unwrap();
    let pool = pool_of_one(&database, Duration::from_secs(5)).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    drop(conn);
    let mut admin = PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    // Taken straight back (too soon for the idle check): the call finds the connection gone.
    let mut conn = pool.acquire().await.unwrap();
    let lost = sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        matches!(
            lost,
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Database(_)
        ),
        "{lost:?}"
    );
    drop(conn);

    let mut conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&mut conn).await, pid, "a new connection");
}

#[tokio::test]
async fn checkout_waits_at_most_the_acquire_timeout_and_fails_after_close() {
    let database = TestDatabase::create().await.unwrap();
    let pool = pool_of_one(&database, Duration::from_millis(200)).await;
    let held = pool.acquire().await.unwrap();
    assert!(matches!(
        pool.acquire().await,
        Err(sqlx::Error::PoolTimedOut)
    ));
    drop(held);
    let mut conn = pool.acquire().await.unwrap();
    backend_pid(&mut conn).await;
    drop(conn);

    pool.close().await;
    assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
}

#[tokio::test]
async fn a_transaction_cancelled_while_beginning_is_rolled_back_before_reuse() {
    let database = TestDatabase::create().await.unwrap();
    let pool = pool_of_one(&database, Duration::from_secs(5)).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    drop(conn);
    // Polled once: BEGIN is sent, and the call is dropped before its reply arrives (nearly always;
    // if PostgreSQL answered within that one poll, the transaction is dropped instead, which must
    // end the same way).
    drop(pool.begin().now_or_never());
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut admin = PgConnection::connect(&database.url).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(state, "idle", "not idle in the cancelled transaction");
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        backend_pid(&mut conn).await,
        pid,
        "the settled connection is reused"
    );
}

/// A deadlock PostgreSQL broke (or a serialization failure) changed nothing and may be retried as
/// it is: callers get ABORTED, not INTERNAL.
#[tokio::test]
async fn the_loser_of_a_deadlock_is_told_to_retry() {
    let database = TestDatabase::create().await.unwrap();
    let pool = store::connect(&database.url, 2, store::PATIENT)
        .await
        .unwrap();
    let mut setup = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)",
    )
    .execute(&mut *setup)
    .await
    .unwrap();
    drop(setup);
    let (mut a, mut b) = (pool.begin().await.unwrap(), pool.begin().await.unwrap());
    let update = |id: i32| sqlx::query("UPDATE t SET v = v + 1 WHERE id = $1").bind(id);
    update(1).execute(&mut *a).await.unwrap();
    update(2).execute(&mut *b).await.unwrap();
    // Each now waits for the other's row: PostgreSQL aborts one of the two.
    let (first, second) = tokio::join!(update(2).execute(&mut *a), update(1).execute(&mut *b));
    let lost = first
        .err()
        .or(second.err())
        .expect("one of them is aborted");
    let status = tonic::Status::from(crm_kit::error::ServiceError::Database(lost));
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    assert_eq!(
        tonic_types::StatusExt::get_details_error_info(&status)
            .unwrap()
            .reason,
        "TRANSACTION_CONFLICT"
    );
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&status).is_some(),
        "it says when to retry"
    );
}
