//! The transactional outbox: a service writes its events to a [`Topic`] in the transaction of the
//! state change, and the [`Relay`] publishes them to Kafka in order, so a committed change is never
//! without its event and a crash never loses one.
//!
//! Records: key = aggregate id, value = the protobuf event, CloudEvents binary-mode headers
//! (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`, `ce_time`, `ce_subject`, `content-type`) and
//! the W3C `traceparent`/`tracestate` of the PRODUCER span, a child of the span that wrote the row.

use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::LazyLock,
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::FutureExt;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use sqlx::{Connection, PgConnection, postgres::PgListener};
use tracing::{Instrument, Span, field::Empty};
use uuid::Uuid;

use crate::{
    kafka::Kafka,
    metrics::metrics,
    shutdown::Shutdown,
    store::{self, Pool, Tx},
    telemetry::{adopt_parent, extract, trace_headers},
};

const NOTIFY_CHANNEL: &str = "crm_outbox";
const BATCH: i64 = 500;
/// Any value works as long as every replica of a service uses the same one on its own database.
const RELAY_LOCK: i64 = 0x6372_6d5f_6f75_7462; // "crm_outb"

/// A topic a service writes. `T` names the events it carries (declared with [`topic!`]), so an
/// event cannot be written to a topic whose readers do not expect it.
pub struct Topic<T: ?Sized> {
    pub name: &'static str,
    carries: PhantomData<fn(&T)>,
}

/// Declares which events a topic carries; implemented by [`topic!`].
pub trait Carries<M> {}

impl<T: ?Sized> Topic<T> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            carries: PhantomData,
        }
    }

    /// Writes `event`, keyed by `key` (the aggregate's id: events of one aggregate stay in order),
    /// in the transaction of the change it describes.
    pub async fn enqueue<M: prost::Name>(
        &self,
        tx: &mut Tx,
        key: impl ToString,
        event: &M,
    ) -> Result<(), sqlx::Error>
    where
        T: Carries<M>,
    {
        enqueue(tx, self.name, key, event).await.map(drop)
    }

    /// Writes many events of one type in one statement (batch operations).
    pub async fn enqueue_many<M: prost::Name>(
        &self,
        tx: &mut Tx,
        events: &[(String, M)],
    ) -> Result<(), sqlx::Error>
    where
        T: Carries<M>,
    {
        let events: Vec<Outgoing> = events
            .iter()
            .map(|(key, event)| self.event(key, event))
            .collect();
        enqueue_all(tx, &events).await
    }

    /// `event`, keyed by `key`, ready for [`enqueue_all`], with the trace context of the current
    /// span: events of many requests written together (group commit) each keep their own trace.
    pub fn event<M: prost::Name>(&self, key: impl ToString, event: &M) -> Outgoing
    where
        T: Carries<M>,
    {
        Outgoing {
            topic: self.name,
            key: key.to_string(),
            event_type: M::full_name(),
            payload: event.encode_to_vec(),
            headers: serde_json::to_value(trace_headers(&Span::current())).unwrap_or_default(),
        }
    }
}

/// An event built by [`Topic::event`], not yet written.
pub struct Outgoing {
    topic: &'static str,
    key: String,
    event_type: String,
    payload: Vec<u8>,
    headers: serde_json::Value,
}

/// Declares a topic and the events it carries:
/// `topic!(pub PARTY = "crm.parties.party.v1", PartyTopic: PartyCreated, PartyUpdated);`
#[macro_export]
macro_rules! topic {
    ($(#[$meta:meta])* $vis:vis $name:ident = $topic:literal, $marker:ident: $($event:ty),+ $(,)?) => {
        $(#[$meta])*
        $vis const $name: $crate::outbox::Topic<$marker> = $crate::outbox::Topic::new($topic);
        #[doc = concat!("The events `", $topic, "` carries.")]
        $vis enum $marker {}
        $(impl $crate::outbox::Carries<$event> for $marker {})+
    };
}

/// Adds `event` to the outbox inside `tx`. Its CloudEvents type is the message's full proto name.
pub async fn enqueue<M: prost::Name>(
    tx: &mut Tx,
    topic: &str,
    key: impl ToString,
    event: &M,
) -> Result<Uuid, sqlx::Error> {
    let event_id = Uuid::now_v7();
    let headers = serde_json::to_value(trace_headers(&Span::current())).unwrap_or_default();
    sqlx::query(
        "INSERT INTO crm_outbox (event_id, topic, key, event_type, payload, trace_headers)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event_id)
    .bind(topic)
    .bind(key.to_string())
    .bind(M::full_name())
    .bind(event.encode_to_vec())
    .bind(headers)
    .execute(&mut **tx)
    .await?;
    tx.signal_commit();
    Ok(event_id)
}

/// Adds events of any topics and types to the outbox in one statement, in the order given (the
/// order the relay publishes them in).
pub async fn enqueue_all(tx: &mut Tx, events: &[Outgoing]) -> Result<(), sqlx::Error> {
    static INSERT: LazyLock<String> =
        LazyLock::new(|| format!("WITH {} SELECT 1", OutboxRows::cte("events", 1)));
    let rows = OutboxRows::new(tx, events);
    if rows.is_empty() {
        return Ok(());
    }
    rows.bind(sqlx::query(sqlx::AssertSqlSafe(INSERT.as_str())))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Events as the parameters of one `INSERT INTO crm_outbox`, for a statement that writes them
/// with the change they describe (a batch in one round trip): the statement names
/// [`OutboxRows::cte`] among its CTEs and binds [`OutboxRows::bind`] at that CTE's parameters.
pub struct OutboxRows<'a> {
    ids: Vec<Uuid>,
    topics: Vec<&'static str>,
    keys: Vec<&'a str>,
    types: Vec<&'a str>,
    payloads: Vec<&'a [u8]>,
    headers: Vec<&'a serde_json::Value>,
}

impl<'a> OutboxRows<'a> {
    /// The rows of `events`, to be written in `tx` (which then tells the relay at its commit).
    pub fn new(tx: &mut Tx, events: &'a [Outgoing]) -> Self {
        if !events.is_empty() {
            tx.signal_commit();
        }
        Self {
            ids: events.iter().map(|_| Uuid::now_v7()).collect(),
            topics: events.iter().map(|e| e.topic).collect(),
            keys: events.iter().map(|e| e.key.as_str()).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            payloads: events.iter().map(|e| e.payload.as_slice()).collect(),
            headers: events.iter().map(|e| &e.headers).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The CTE `name AS (INSERT ...)`, its six parameters numbered from `$first`; inserts
    /// nothing for no events.
    pub fn cte(name: &str, first: usize) -> String {
        let p: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
        format!(
            "{name} AS (
                 INSERT INTO crm_outbox (event_id, topic, key, event_type, payload, trace_headers)
                 SELECT id, topic, key, event_type, payload, headers
                 FROM unnest({}::uuid[], {}::text[], {}::text[], {}::text[], {}::bytea[], {}::jsonb[])
                     WITH ORDINALITY AS e(id, topic, key, event_type, payload, headers, n)
                 ORDER BY n
             )",
            p[0], p[1], p[2], p[3], p[4], p[5]
        )
    }

    /// Binds the CTE's parameters, in order, after those bound so far.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.topics)
            .bind(&self.keys)
            .bind(&self.types)
            .bind(&self.payloads)
            .bind(&self.headers)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    topic: String,
    key: String,
    event_type: String,
    payload: Vec<u8>,
    trace_headers: sqlx::types::Json<HashMap<String, String>>,
    created_at: DateTime<Utc>,
}

/// Publishes the outbox. With several replicas only the one holding the relay's advisory lock
/// publishes, so events of one aggregate keep their order.
pub struct Relay {
    pool: Pool,
    kafka: Kafka,
    /// CloudEvents `source`, e.g. `/crm/parties`.
    source: String,
    topics: Vec<String>,
}

/// Tells the relay, wherever it runs (another replica may lead), that events were committed: one
/// NOTIFY for any number of commits since the last, sent off the committing calls' path. (A
/// NOTIFY inside the transaction would serialise the commits of all notifying transactions:
/// measured with pgbench, a third of the commit rate.)
async fn announce_commits(pool: Pool, shutdown: Shutdown) {
    let commits = pool.commits();
    loop {
        tokio::select! {
            _ = commits.notified() => {}
            _ = shutdown.clone().wait() => return,
        }
        let sent = match pool.acquire().await {
            Ok(mut conn) => sqlx::query("SELECT pg_notify($1, '')")
                .bind(NOTIFY_CHANNEL)
                .execute(&mut *conn)
                .await
                .map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            tracing::debug!(%error, "could not wake the outbox relay; it polls every second");
        }
    }
}

impl Relay {
    pub fn new(pool: Pool, kafka: Kafka, service: &str, topics: &[&str]) -> Self {
        Self {
            pool,
            kafka,
            source: format!("/crm/{service}"),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Runs until `shutdown`, then waits for records in flight to be delivered.
    pub async fn run(self, shutdown: Shutdown) {
        tokio::spawn(announce_commits(self.pool.clone(), shutdown.clone()));
        let mut backoff = Backoff::default();
        while !shutdown.is_triggered() {
            if let Err(error) = self.lead(&shutdown).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "outbox relay interrupted; retrying"
                );
                shutdown.sleep(backoff.next_delay()).await;
            } else {
                backoff = Backoff::default();
            }
        }
    }

    /// Takes the relay lock on a connection of its own (released if the process dies), then
    /// publishes until shutdown or an error. Each session has a fresh producer: an idempotent
    /// producer can fail for good when a broker loses its state.
    async fn lead(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?.detach();
        loop {
            let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if locked {
                break;
            }
            if !shutdown.sleep(Duration::from_secs(2)).await {
                return Ok(());
            }
        }
        tracing::info!("outbox relay is publishing");
        let producer = self.kafka.producer()?;
        self.kafka.ensure_topics(&self.topics).await?;
        let mut listener = PgListener::connect_with(&self.pool.listener_pool()).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        // The leader also keeps the kit's tables trim; one replica doing it avoids contention.
        let mut next_purge = Instant::now();
        let mut next_backlog_count = Instant::now();
        loop {
            if Instant::now() >= next_purge {
                let deleted = store::purge_expired(&mut conn).await?;
                tracing::debug!(deleted, "purged expired outbox, idempotency and inbox rows");
                next_purge = Instant::now() + Duration::from_secs(600);
            }
            let published = self.publish_batch(&mut conn, &producer).await?;
            if published > 0 {
                crate::shutdown::event_moved();
            }
            // Counted when caught up (few rows left, cheap) or every 5 s while catching up: a
            // count after every batch would rescan a large backlog 500 rows at a time.
            if (published as i64) < BATCH || Instant::now() >= next_backlog_count {
                let (backlog,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM crm_outbox WHERE published_at IS NULL")
                        .fetch_one(&mut conn)
                        .await?;
                metrics().set_backlog(backlog);
                next_backlog_count = Instant::now() + Duration::from_secs(5);
            }
            if published as i64 == BATCH {
                continue;
            }
            tokio::select! {
                _ = listener.recv() => {}
                // A notification can be missed while reconnecting; a slow poll covers it.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.clone().wait() => break,
            }
        }
        // Publish what committed before shutdown, then let go of the lock. An in-process broker
        // dies with the process: what it was not given stays here for the next run's.
        if self.kafka.mock.is_none() {
            self.publish_batch(&mut conn, &producer).await?;
        }
        let _ = producer.flush(Duration::from_secs(5));
        conn.close().await?;
        Ok(())
    }

    /// Publishes the oldest unpublished events in order; marks the ones Kafka acknowledged.
    async fn publish_batch(
        &self,
        conn: &mut PgConnection,
        producer: &FutureProducer,
    ) -> anyhow::Result<usize> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, event_id, topic, key, event_type, payload, trace_headers, created_at
             FROM crm_outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = tracing::info_span!(
                "outbox.publish",
                otel.name = %format!("{} publish", row.topic),
                otel.kind = "producer",
                otel.status_code = Empty,
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.destination.name = %row.topic,
                messaging.message.id = %row.event_id,
                messaging.kafka.message.key = %row.key,
                trace_id = Empty,
            );
            adopt_parent(&span, extract(&row.trace_headers.0));
            let mut headers = OwnedHeaders::new();
            let time = row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            let event_id = row.event_id.to_string();
            let ce = [
                ("ce_specversion", "1.0"),
                ("ce_id", event_id.as_str()),
                ("ce_source", self.source.as_str()),
                ("ce_type", row.event_type.as_str()),
                ("ce_time", time.as_str()),
                ("ce_subject", row.key.as_str()),
                ("content-type", "application/protobuf"),
            ];
            for (key, value) in ce {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            for (key, value) in trace_headers(&span) {
                headers = headers.insert(Header {
                    key: &key,
                    value: Some(&value),
                });
            }
            let record = FutureRecord::to(&row.topic)
                .key(&row.key)
                .payload(&row.payload)
                .headers(headers);
            // Enqueued one by one in id order; librdkafka keeps that order per partition.
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push((row.id, row.topic.as_str(), delivery, span)),
                Err((error, _)) => {
                    tracing::warn!(%error, "producer queue refused a record; retrying later");
                    break;
                }
            }
        }

        // Acknowledged rows are marked, in send order, whenever the next acknowledgement is not in
        // yet, rather than once for the batch: a relay killed after the broker acknowledged
        // records republishes those acknowledged since its last mark (usually one produce
        // request's), not the whole batch. Marking stops at the first failure, so a record is
        // never marked while an earlier one of its partition may still be sent again.
        let mut acknowledged = 0;
        let mut unmarked = Vec::new();
        let mut failure = None;
        for (id, topic, mut delivery, span) in deliveries {
            let result = match (&mut delivery).now_or_never() {
                Some(result) => result,
                None => {
                    acknowledged += mark_published(conn, &mut unmarked).await?;
                    delivery.instrument(span.clone()).await
                }
            };
            match result {
                Ok(Ok(_)) if failure.is_none() => {
                    unmarked.push(id);
                    metrics().record_published(topic, 1);
                }
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    span.record("otel.status_code", "ERROR");
                    failure.get_or_insert_with(|| error.to_string());
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "the producer was dropped".to_owned());
                }
            }
        }
        acknowledged += mark_published(conn, &mut unmarked).await?;
        if let Some(error) = failure {
            // A broker that lost its topics (restarted without storage) gets them back.
            self.kafka.ensure_topics(&self.topics).await?;
            anyhow::bail!("publishing to Kafka failed: {error}");
        }
        Ok(acknowledged)
    }
}

/// Marks the rows of `ids` published and empties it; how many.
async fn mark_published(conn: &mut PgConnection, ids: &mut Vec<i64>) -> sqlx::Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    sqlx::query("UPDATE crm_outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&*ids)
        .execute(conn)
        .await?;
    Ok(std::mem::take(ids).len())
}

/// Exponential backoff from 100 ms to 10 s.
#[derive(Default)]
pub struct Backoff(u32);

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = Duration::from_millis(100) * 2u32.saturating_pow(self.0);
        self.0 = (self.0 + 1).min(7);
        delay.min(Duration::from_secs(10))
    }
}
