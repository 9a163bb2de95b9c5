//! The consumer kit against a real broker and database, with a test consumer: each event applied
//! once despite redelivery, transient failures retried, an event that meets a database outage
//! kept however many tries it takes, poison messages dead-lettered without blocking the ones after
//! them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use crm_kit::{
    consumer::{self, ConsumerOptions, Event, HandleError, Handler},
    shutdown,
    store::Tx,
};
use crm_testkit::{Broker, TestDatabase, eventually, read_topic};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

const TOPIC: &str = "crm.test.things.v1";

/// Records each event's payload; rejects "poison"; fails "flaky" twice before it succeeds, and
/// "outage" five times (more than the consumer's attempts) as a database that is away.
struct Recorder {
    flaky_attempts: Arc<AtomicU32>,
    outage_attempts: Arc<AtomicU32>,
}

impl Handler for Recorder {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        let body = String::from_utf8_lossy(&event.payload).into_owned();
        match body.as_str() {
            "poison" => {
                return Err(HandleError::Reject(anyhow::anyhow!(
                    "cannot decode {body:?}"
                )));
            }
            "flaky" if self.flaky_attempts.fetch_add(1, Ordering::SeqCst) < 2 => {
                return Err(HandleError::Retry(anyhow::anyhow!(
                    "dependency unavailable"
                )));
            }
            "outage" if self.outage_attempts.fetch_add(1, Ordering::SeqCst) < 5 => {
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                return Err(HandleError::Retry(sqlx::Error::Io(refused).into()));
            }
            _ => {}
        }
        sqlx::query("INSERT INTO effects (event_id, body) VALUES ($1, $2)")
            .bind(&event.id)
            .bind(&body)
            .execute(&mut **tx)
            .await
            .map_err(|e| HandleError::Retry(e.into()))?;
        Ok(())
    }
}

async fn send(producer: &FutureProducer, id: &str, body: &str) {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "ce_id",
            value: Some(id),
        })
        .insert(Header {
            key: "ce_type",
            value: Some("crm.test.v1.Thing"),
        });
    producer
        .send(
            FutureRecord::to(TOPIC)
                .key("thing-1")
                .payload(body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("producing a test record");
}

#[tokio::test]
async fn events_apply_once_retry_then_dead_letter() {
    let database = TestDatabase::create().await.unwrap();
    let broker = Broker::start().await.unwrap();
    let pool = database.kit_pool().await.unwrap();
    sqlx::query("CREATE TABLE effects (event_id text NOT NULL, body text NOT NULL)")
        .execute(&mut *pool.acquire().await.unwrap())
        .await
        .unwrap();

    let kafka = broker.kafka(1);
    let (trigger, shutdown) = shutdown::channel();
    let flaky_attempts = Arc::new(AtomicU32::new(0));
    let options = ConsumerOptions {
        name: "test-recorder".into(),
        topics: vec![TOPIC.into()],
        max_attempts: 3,
        retry_delay: Duration::from_millis(20),
    };
    let outage_attempts = Arc::new(AtomicU32::new(0));
    let recorder = Recorder {
        flaky_attempts: flaky_attempts.clone(),
        outage_attempts: outage_attempts.clone(),
    };
    let running = tokio::spawn(consumer::run(
        pool.clone(),
        kafka.clone(),
        options,
        recorder,
        shutdown,
    ));

    kafka.ensure_topics(&[TOPIC.into()]).await.unwrap();
    let producer = kafka.producer().unwrap();
    send(&producer, "e1", "first").await;
    send(&producer, "e1", "first").await; // redelivered by an at-least-once producer
    send(&producer, "e2", "poison").await;
    send(&producer, "e3", "flaky").await;
    send(&producer, "e4", "last").await;
    send(&producer, "e5", "outage").await;

    let effects: Vec<(String, String)> = eventually(Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT event_id, body FROM effects ORDER BY event_id")
                    .fetch_all(&mut *pool.acquire().await.ok()?)
                    .await
                    .ok()?;
            (rows.len() >= 4).then_some(rows)
        }
    })
    .await
    .expect("the good events are applied");
    assert_eq!(
        effects,
        [
            ("e1".into(), "first".into()),
            ("e3".into(), "flaky".into()),
            ("e4".into(), "last".into()),
            ("e5".into(), "outage".into())
        ],
        "each event once; the poison one does not block those after it; the one that met an \
         outage waited for it"
    );
    assert_eq!(outage_attempts.load(Ordering::SeqCst), 6);
    assert_eq!(
        flaky_attempts.load(Ordering::SeqCst),
        3,
        "two failed attempts, then success"
    );

    let dead = read_topic(
        &broker.brokers(),
        "crm.test.things.v1.dlq",
        2,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, b"poison");
    assert_eq!(dead[0].headers["ce_id"], "e2");
    assert_eq!(dead[0].headers["crm_dlq_consumer"], "test-recorder");
    assert!(dead[0].headers["crm_dlq_error"].contains("cannot decode"));

    let inbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm_inbox WHERE consumer = 'test-recorder'")
            .fetch_one(&mut *pool.acquire().await.unwrap())
            .await
            .unwrap();
    assert_eq!(inbox, 4, "only applied events are in the inbox");

    trigger.trigger();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn consuming_goes_on_after_the_broker_loses_everything() {
    let database = TestDatabase::create().await.unwrap();
    let mut broker = Broker::start().await.unwrap();
    let pool = database.kit_pool().await.unwrap();
    sqlx::query("CREATE TABLE effects (event_id text NOT NULL, body text NOT NULL)")
        .execute(&mut *pool.acquire().await.unwrap())
        .await
        .unwrap();
    let kafka = broker.kafka(1);
    let (trigger, shutdown) = shutdown::channel();
    let options = ConsumerOptions {
        name: "test-survivor".into(),
        topics: vec![TOPIC.into()],
        max_attempts: 3,
        retry_delay: Duration::from_millis(20),
    };
    let recorder = Recorder {
        flaky_attempts: Arc::new(AtomicU32::new(0)),
        outage_attempts: Arc::new(AtomicU32::new(0)),
    };
    let running = tokio::spawn(consumer::run(
        pool.clone(),
        kafka.clone(),
        options,
        recorder,
        shutdown,
    ));
    let applied = |count: i64| {
        let pool = pool.clone();
        eventually(Duration::from_secs(30), move || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
                    .fetch_one(&mut *pool.acquire().await.ok()?)
                    .await
                    .ok()?;
                (n >= count).then_some(n)
            }
        })
    };

    kafka.ensure_topics(&[TOPIC.into()]).await.unwrap();
    send(&kafka.producer().unwrap(), "before", "before").await;
    assert_eq!(applied(1).await, Some(1));

    // In-memory storage: the restarted broker has no topics, offsets or groups.
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart().await.unwrap();
    kafka.ensure_topics(&[TOPIC.into()]).await.unwrap();
    send(&kafka.producer().unwrap(), "after", "after").await;
    assert_eq!(applied(2).await, Some(2), "the consumer came back");

    trigger.trigger();
    running.await.unwrap().unwrap();
}
