//! The kit's storage pieces against a real database: request-id idempotency and housekeeping.

use crm_kit::store::{self, Begun};
use crm_proto::crm::parties::v1::{Base, CreateBaseRequest, UpdateBaseRequest};
use crm_testkit::TestDatabase;

#[tokio::test]
async fn a_request_id_is_answered_once_and_expires_after_the_replay_window() {
    let database = TestDatabase::create().await.unwrap();
    let pool = store::connect(&database.url, 3).await.unwrap();
    store::migrate(&pool, sqlx::migrate::Migrator::DEFAULT)
        .await
        .unwrap();
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

    sqlx::query("UPDATE crm_idempotency SET created_at = now() - interval '8 days' WHERE request_id = 'r-1'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO crm_outbox (event_id, topic, key, event_type, payload, published_at)
         VALUES (gen_random_uuid(), 't', 'k', 'x', '', now() - interval '8 days'),
                (gen_random_uuid(), 't', 'k', 'x', '', now()),
                (gen_random_uuid(), 't', 'k', 'x', '', NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(store::purge_expired(&mut conn).await.unwrap(), 2);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox, 2, "recent and unpublished events stay");
}
