//! The kit's storage pieces against a real database: request-id idempotency and housekeeping.

use crm_kit::store::{self, Begun};
use crm_testkit::TestDatabase;

#[tokio::test]
async fn a_request_id_is_answered_once_and_expires_after_the_replay_window() {
    let database = TestDatabase::create().await.unwrap();
    let pool = store::connect(&database.url, 3).await.unwrap();
    store::migrate(&pool, sqlx::migrate::Migrator::DEFAULT)
        .await
        .unwrap();
    let request = prost_types::Duration {
        seconds: 1,
        nanos: 0,
    };
    let answer = prost_types::Timestamp {
        seconds: 42,
        nanos: 0,
    };

    let Begun::Fresh(tx, claim) =
        store::begin::<prost_types::Timestamp>(&pool, "r-1", "Do", &request)
            .await
            .unwrap()
    else {
        panic!("a new request id is fresh");
    };
    claim.commit(tx, &answer).await.unwrap();
    let Begun::Replay(replayed) =
        store::begin::<prost_types::Timestamp>(&pool, "r-1", "Do", &request)
            .await
            .unwrap()
    else {
        panic!("a repeated request id replays");
    };
    assert_eq!(replayed, answer);
    let other = prost_types::Duration {
        seconds: 2,
        nanos: 0,
    };
    assert!(
        store::begin::<prost_types::Timestamp>(&pool, "r-1", "Do", &other)
            .await
            .is_err()
    );

    // A rolled-back attempt leaves the id free for a retry.
    let Begun::Fresh(tx, _claim) =
        store::begin::<prost_types::Timestamp>(&pool, "r-2", "Do", &request)
            .await
            .unwrap()
    else {
        panic!("fresh");
    };
    tx.rollback().await.unwrap();
    assert!(matches!(
        store::begin::<prost_types::Timestamp>(&pool, "r-2", "Do", &request)
            .await
            .unwrap(),
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
