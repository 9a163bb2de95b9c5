//! Idempotent Kafka consumers: each event is applied at most once per consumer (an inbox row in
//! the transaction of its effect), retried a bounded number of times, and parked on a dead-letter
//! topic `<topic>.dlq` when it cannot be applied, so one bad message never blocks its partition.
//! Offsets are committed only after the effect has committed.

use std::{
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::store::Pool;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers},
    producer::{FutureProducer, FutureRecord},
};
use tracing::{Instrument, field::Empty};

use crate::{
    app::Runtime,
    kafka::Kafka,
    metrics::metrics,
    outbox::Backoff,
    shutdown::Shutdown,
    store::Tx,
    telemetry::{adopt_parent, extract},
};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// An event as a handler sees it.
#[derive(Debug, Clone)]
pub struct Event {
    /// CloudEvents `ce_id`; `topic/partition/offset` for records without one.
    pub id: String,
    /// CloudEvents `ce_type`, e.g. `crm.parties.v1.PartyCreated`; empty when absent.
    pub event_type: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// When it happened: CloudEvents `ce_time`, else the record's timestamp.
    pub time: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying (a dependency was down): retried, then dead-lettered.
    #[error("transient: {0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (undecodable, violates a rule): dead-lettered at once.
    #[error("permanent: {0:#}")]
    Reject(anyhow::Error),
}

/// Applies one event inside the transaction that also records it as processed.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a;
}

pub struct ConsumerOptions {
    /// The consumer group, and the inbox's consumer name.
    pub name: String,
    pub topics: Vec<String>,
    /// Attempts before a transient failure is dead-lettered.
    pub max_attempts: u32,
    pub retry_delay: Duration,
}

impl ConsumerOptions {
    /// Consumer `name` of `topics`, with the suite's retry policy: 5 attempts, 500 ms apart, before
    /// a transient failure is dead-lettered.
    pub fn new(name: &str, topics: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            max_attempts: 5,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Runs [`run`] in the background on the runtime's database and broker, logging why it stopped.
pub fn spawn<H: Handler>(
    runtime: &Runtime,
    options: ConsumerOptions,
    handler: H,
    shutdown: &Shutdown,
) {
    let (pool, kafka, shutdown) = (
        runtime.pool.clone(),
        runtime.kafka.clone(),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        let name = options.name.clone();
        if let Err(error) = run(pool, kafka, options, handler, shutdown).await {
            tracing::error!(error = format!("{error:#}"), consumer = %name, "the consumer stopped");
        }
    });
}

/// The consumer groups this process runs or ran, with their topics and broker.
static GROUPS: Mutex<Vec<(String, Vec<String>, Kafka)>> = Mutex::new(Vec::new());

/// Whether every consumer group this process has run has committed an offset at the end of every
/// partition of its topics: `crm up` asks before it stops its in-process broker, whose events
/// are gone with it. False when the broker cannot say.
pub async fn caught_up() -> bool {
    let groups = GROUPS.lock().expect("consumer groups lock").clone();
    let checked = tokio::task::spawn_blocking(move || {
        groups
            .iter()
            .all(|(group, topics, kafka)| group_caught_up(group, topics, kafka).unwrap_or(false))
    });
    checked.await.unwrap_or(false)
}

fn group_caught_up(group: &str, topics: &[String], kafka: &Kafka) -> KafkaResult<bool> {
    let timeout = Duration::from_secs(2);
    // Not subscribed: it reads the group's committed offsets without joining the group.
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(partitions, timeout)?;
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let consumed = match element.offset() {
            Offset::Offset(offset) => offset >= high,
            // Nothing committed: caught up only if there was nothing to read.
            _ => low >= high,
        };
        if !consumed {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Consumes until `shutdown`, one event at a time per consumer (order within a partition holds).
pub async fn run<H: Handler>(
    pool: Pool,
    kafka: Kafka,
    options: ConsumerOptions,
    handler: H,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    GROUPS.lock().expect("consumer groups lock").push((
        options.name.clone(),
        options.topics.clone(),
        kafka.clone(),
    ));
    let mut provision: Vec<String> = options.topics.clone();
    provision.extend(options.topics.iter().map(|t| dead_letter_topic(t)));
    loop {
        // A broker that is down delays consuming; it does not end it.
        let mut backoff = Backoff::default();
        while let Err(error) = kafka.ensure_topics(&provision).await {
            tracing::warn!(error = format!("{error:#}"), consumer = %options.name, "creating topics failed; retrying");
            if !shutdown.sleep(backoff.next_delay()).await {
                return Ok(());
            }
        }
        let consumer: StreamConsumer = kafka
            .client_config()
            .set("group.id", &options.name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let clients = ClosedAside(Some((consumer, kafka.producer()?)));
        let (consumer, dead_letters) = &*clients;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let outcome = consume(&pool, &options, &handler, consumer, dead_letters, &shutdown).await;
        // librdkafka 2.12 can crash updating the metadata of a client that saw its topics vanish
        // and come back with new ids (confluentinc/librdkafka#5280): after losing the broker, a
        // fresh client starts over from the committed offsets.
        drop(clients);
        match outcome {
            Consumed::Stopped => return Ok(()),
            Consumed::BrokerLost => {
                if !shutdown.sleep(Duration::from_millis(500)).await {
                    return Ok(());
                }
            }
        }
    }
}

enum Consumed {
    Stopped,
    BrokerLost,
}

/// Kafka clients that close on a thread of their own when dropped, also when the task holding them
/// is cancelled: closing a consumer waits on the network and can block forever inside librdkafka
/// (confluentinc/librdkafka#4041), which must never stall the runtime or its shutdown.
struct ClosedAside<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> std::ops::Deref for ClosedAside<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .expect("the clients are taken only when dropped")
    }
}

impl<T: Send + 'static> Drop for ClosedAside<T> {
    fn drop(&mut self) {
        if let Some(clients) = self.0.take() {
            std::thread::spawn(move || drop(clients));
        }
    }
}

fn broker_lost(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// One client's run: from subscribing until shutdown or losing the broker.
async fn consume<H: Handler>(
    pool: &Pool,
    options: &ConsumerOptions,
    handler: &H,
    consumer: &StreamConsumer,
    dead_letters: &FutureProducer,
    shutdown: &Shutdown,
) -> Consumed {
    let mut backoff = Backoff::default();
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            _ = shutdown.clone().wait() => return Consumed::Stopped,
        };
        let message = match message {
            Ok(message) => {
                backoff = Backoff::default();
                message
            }
            Err(error) if broker_lost(&error) => {
                tracing::warn!(%error, consumer = %options.name, "lost the broker; reconnecting");
                return Consumed::BrokerLost;
            }
            // e.g. a topic not created yet: the same client sees it once it exists.
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, consumer = %options.name, retry_in = ?delay, "receiving from Kafka failed");
                if !shutdown.sleep(delay).await {
                    return Consumed::Stopped;
                }
                continue;
            }
        };
        let event = to_event(&message);
        let span = tracing::info_span!(
            "consumer.process",
            otel.name = %format!("{} process", event.topic),
            otel.kind = "consumer",
            otel.status_code = Empty,
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %event.topic,
            messaging.consumer.group.name = %options.name,
            messaging.message.id = %event.id,
            messaging.kafka.offset = message.offset(),
            trace_id = Empty,
        );
        let producer_context = message
            .headers()
            .map(|headers| extract(&HeaderList(headers)))
            .unwrap_or_default();
        span.add_link(producer_context.span().span_context().clone());
        adopt_parent(&span, producer_context);

        let settled = process(
            pool,
            options,
            handler,
            dead_letters,
            &message,
            &event,
            shutdown,
        )
        .instrument(span)
        .await;
        if !settled {
            // Stopping before the event was applied or parked: leave it for the next consumer.
            return Consumed::Stopped;
        }
        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            // The inbox makes the redelivery this may cause harmless.
            tracing::warn!(%error, "committing the offset failed");
        }
    }
}

/// How long an event waits for its database or a peer to come back before its tries count.
const PATIENCE: Duration = Duration::from_secs(3600);
/// The longest wait between two tries while a dependency is away (the outbox's backoff's most).
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Applies the event, or parks it on the dead-letter topic; false when shutdown came first.
async fn process<H: Handler>(
    pool: &Pool,
    options: &ConsumerOptions,
    handler: &H,
    dead_letters: &FutureProducer,
    message: &BorrowedMessage<'_>,
    event: &Event,
    shutdown: &Shutdown,
) -> bool {
    let mut attempt = 0;
    let mut outage = crate::outbox::Backoff::default();
    let mut waiting_since = None;
    let failure = loop {
        attempt += 1;
        match apply(pool, &options.name, handler, event).await {
            Ok(outcome) => {
                metrics().record_consumed(&options.name, &event.topic, outcome);
                crate::shutdown::event_moved();
                return true;
            }
            // The database or a peer is away: the event is fine and waits (up to an hour, then
            // it counts as a failed attempt), rather than being parked. Each wait is metered.
            Err(HandleError::Retry(error))
                if crate::error::transient(&error)
                    && waiting_since.get_or_insert_with(Instant::now).elapsed() < PATIENCE =>
            {
                crate::shutdown::event_moved();
                attempt -= 1;
                metrics().record_consumed(&options.name, &event.topic, "waiting");
                let delay = outage.next_delay();
                if delay < MAX_WAIT {
                    tracing::debug!(
                        error = format!("{error:#}"),
                        "a dependency is away; waiting"
                    );
                } else {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "a dependency is still away; the event waits"
                    );
                }
                if !shutdown.sleep(delay).await {
                    return false;
                }
            }
            Err(HandleError::Retry(error)) if attempt < options.max_attempts => {
                // Still at work on an event: not quiet (see `shutdown::quiet_for`).
                crate::shutdown::event_moved();
                tracing::warn!(
                    error = format!("{error:#}"),
                    attempt,
                    "handling failed; retrying"
                );
                if !shutdown.sleep(options.retry_delay * attempt).await {
                    return false;
                }
            }
            Err(error) => break error,
        }
    };
    tracing::error!(error = %failure, attempt, "event dead-lettered");
    tracing::Span::current().record("otel.status_code", "ERROR");

    let mut headers = message.headers().map(|h| h.detach()).unwrap_or_default();
    let reason = failure.to_string();
    let attempts = attempt.to_string();
    for (key, value) in [
        ("crm_dlq_consumer", options.name.as_str()),
        ("crm_dlq_error", reason.as_str()),
        ("crm_dlq_attempts", attempts.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let topic = dead_letter_topic(&event.topic);
    let mut backoff = Backoff::default();
    // Never drop an event: keep trying the dead-letter topic until it takes it or we stop.
    loop {
        let mut record = FutureRecord::to(&topic)
            .payload(&event.payload)
            .headers(headers.clone());
        if let Some(key) = &event.key {
            record = record.key(key);
        }
        match dead_letters.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                metrics().record_consumed(&options.name, &event.topic, "dead_lettered");
                return true;
            }
            Err((error, _)) => {
                tracing::warn!(%error, "writing to the dead-letter topic failed; retrying");
                if !shutdown.sleep(backoff.next_delay()).await {
                    return false;
                }
            }
        }
    }
}

/// One transaction: the inbox row, then the handler's effect. A duplicate finds the row and stops.
/// Returns the outcome for the metrics: `applied` or `duplicate`.
async fn apply<H: Handler>(
    pool: &Pool,
    consumer: &str,
    handler: &H,
    event: &Event,
) -> Result<&'static str, HandleError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| HandleError::Retry(e.into()))?;
    let fresh = sqlx::query(
        "INSERT INTO crm_inbox (consumer, event_id, topic) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(&event.id)
    .bind(&event.topic)
    .execute(&mut *tx)
    .await
    .map_err(|e| HandleError::Retry(e.into()))?
    .rows_affected()
        == 1;
    if !fresh {
        tracing::info!("event already processed; skipped");
        return Ok("duplicate");
    }
    handler.handle(&mut tx, event).await?;
    tx.commit()
        .await
        .map_err(|e| HandleError::Retry(e.into()))?;
    Ok("applied")
}

fn to_event(message: &BorrowedMessage<'_>) -> Event {
    let header = |name: &str| -> Option<String> {
        message
            .headers()?
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| {
                h.value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned)
            })
    };
    Event {
        id: header("ce_id").unwrap_or_else(|| {
            format!(
                "{}/{}/{}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        }),
        event_type: header("ce_type").unwrap_or_default(),
        topic: message.topic().to_owned(),
        key: message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned),
        payload: message.payload().unwrap_or_default().to_vec(),
        time: header("ce_time")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc())
            .or_else(|| {
                message
                    .timestamp()
                    .to_millis()
                    .and_then(chrono::DateTime::from_timestamp_millis)
            }),
    }
}

/// Kafka record headers as a trace-context source.
struct HeaderList<'a>(&'a rdkafka::message::BorrowedHeaders);

impl opentelemetry::propagation::Extractor for HeaderList<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}
