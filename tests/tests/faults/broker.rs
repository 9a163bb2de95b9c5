//! The broker stopped and started again while parties takes writes.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crm_e2e::PARTIES;
use crm_proto::crm::parties::v1::{
    CreatePartyRequest, Party, PartyKind, parties_service_client::PartiesServiceClient,
};
use crm_testkit::{Broker, Record, Storage, TestDatabase, TestService, read_topic_until, token};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::authorized;

const TOPIC: &str = crm_parties::events::PARTY.name;
/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(4);
/// The longest a write may take while the broker is down: writes do not wait for it (a write
/// takes milliseconds; the limit leaves room for a slow machine, not for the broker's timeouts).
const WRITE_LIMIT: Duration = Duration::from_secs(3);

/// With SQLite storage the restarted broker has every record it acknowledged: after it returns,
/// every event of every write is on the topic.
pub async fn a_broker_that_keeps_its_data_restarts() {
    let dir = std::env::temp_dir().join(format!("crm-tansu-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        crm_testkit::sqlite_storage_available(&dir).await,
        "this tansu keeps no data in SQLite: install it with the libsql feature (`bash .ci/run` does)"
    );
    let broker = Broker::start_with(Storage::Sqlite(dir.join("tansu.db")))
        .await
        .unwrap();
    let expected =
        |_outage_began: &str| "SELECT event_id FROM crm_outbox WHERE topic = $1".to_owned();
    writes_across_a_broker_restart(broker, expected).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With memory storage the restarted broker has nothing: its topics come back, and every event it
/// had not acknowledged before it stopped is delivered.
pub async fn a_broker_that_loses_its_data_restarts() {
    let broker = Broker::start().await.unwrap();
    let expected = |outage_began: &str| {
        format!(
            "SELECT event_id FROM crm_outbox WHERE topic = $1
             AND NOT coalesce(published_at <= '{outage_began}'::timestamptz, false)"
        )
    };
    writes_across_a_broker_restart(broker, expected).await;
}

/// Writes parties while `broker` is stopped for [`OUTAGE`] and started again; every write
/// succeeds quickly, the outbox drains, and the topic then holds each event `expected` selects
/// (given the moment the broker was down for sure) under its own `ce_id`.
async fn writes_across_a_broker_restart(broker: Broker, expected: impl Fn(&str) -> String) {
    let database = TestDatabase::create().await.unwrap();
    let mut parties = TestService::start_with(&PARTIES, database, broker, crate::quiet)
        .await
        .unwrap();
    let bearer = token("faults", &["parties.read", "parties.write"]);
    let client = PartiesServiceClient::new(parties.channel(&bearer));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = write_parties(client, bearer, writing.clone());

    tokio::time::sleep(Duration::from_secs(1)).await;
    parties.broker.stop().await;
    // Acknowledgements in flight when it died have been marked by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = parties.database.kit_pool().await.unwrap();
    let (outage_began,): (String,) = sqlx::query_as("SELECT clock_timestamp()::text")
        .fetch_one(&mut *pool.acquire().await.unwrap())
        .await
        .unwrap();
    tokio::time::sleep(OUTAGE).await;
    parties.broker.restart().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 10, "writes went on: {written}");

    let drained = crm_testkit::eventually(Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let (left,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM crm_outbox WHERE published_at IS NULL")
                    .fetch_one(&mut *pool.acquire().await.unwrap())
                    .await
                    .unwrap();
            (left == 0).then_some(())
        }
    })
    .await;
    assert!(
        drained.is_some(),
        "the outbox drained after the broker returned"
    );
    let wanted: Vec<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(expected(&outage_began)))
        .bind(TOPIC)
        .fetch_all(&mut *pool.acquire().await.unwrap())
        .await
        .unwrap();
    let wanted: HashSet<String> = wanted.into_iter().map(|(id,)| id.to_string()).collect();
    let ids = |records: &[Record]| -> HashSet<String> {
        records
            .iter()
            .map(|record| record.headers["ce_id"].clone())
            .collect()
    };
    let records = read_topic_until(
        &parties.broker.brokers(),
        TOPIC,
        Duration::from_secs(20),
        |records| wanted.is_subset(&ids(records)),
    )
    .await
    .unwrap();
    let delivered = ids(&records);
    let missing: Vec<_> = wanted.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events missing after the broker returned: {missing:?}",
        missing.len(),
        wanted.len()
    );
    println!(
        "{written} writes, {} events expected and delivered",
        wanted.len()
    );
    parties.stop().await.unwrap();
}

/// Creates parties one after another while `writing`; each must succeed within [`WRITE_LIMIT`].
/// How many.
fn write_parties(
    mut client: PartiesServiceClient<crm_kit::client::TracedChannel>,
    bearer: String,
    writing: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut written = 0;
        while writing.load(Ordering::Relaxed) {
            let request = CreatePartyRequest {
                party: Some(Party {
                    kind: PartyKind::Organization as i32,
                    display_name: format!("Fault {written}"),
                    ..Default::default()
                }),
                request_id: Uuid::now_v7().to_string(),
                ..Default::default()
            };
            let started = Instant::now();
            client
                .create_party(authorized(request, &bearer))
                .await
                .expect("a write while the broker is away");
            let took = started.elapsed();
            assert!(took < WRITE_LIMIT, "a write took {took:?}");
            written += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        written
    })
}
