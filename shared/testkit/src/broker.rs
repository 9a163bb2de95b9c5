//! The Kafka-protocol broker of the tests (a tansu process per test) and a downstream reader of
//! its topics.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use tokio::{net::TcpListener, process::Child};
use uuid::Uuid;

/// The header that marks the reader's probe records (see [`read_topic`]).
pub const PROBE_HEADER: &str = "crm-testkit-probe";

/// Where a broker keeps its records.
#[derive(Clone, Debug)]
pub enum Storage {
    /// In memory: a restart loses every topic and record.
    Memory,
    /// In an SQLite file (tansu's `libsql` feature): a restart keeps them.
    Sqlite(PathBuf),
}

/// A tansu broker process on a port of its own.
pub struct Broker {
    pub port: u16,
    storage: Storage,
    child: Option<Child>,
}

impl Broker {
    /// A broker with in-memory storage.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Storage::Memory).await
    }

    pub async fn start_with(storage: Storage) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let mut broker = Self {
            port,
            storage,
            child: None,
        };
        broker.restart().await?;
        Ok(broker)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The kit's view of this broker, creating topics of `partitions` each, as a service under
    /// test has it.
    pub fn kafka(&self, partitions: i32) -> crm_kit::kafka::Kafka {
        let config = crm_kit::config::KafkaConfig {
            brokers: None,
            create_topics: true,
            topic_partitions: partitions,
            replication_factor: 1,
            message_timeout_ms: 5_000,
        };
        crm_kit::kafka::Kafka::new(self.brokers(), &config)
    }

    /// Another handle on this broker for a second service under test; it does not own the process
    /// (stopping or dropping it leaves the broker running).
    pub fn shared(&self) -> Self {
        Self {
            port: self.port,
            storage: self.storage.clone(),
            child: None,
        }
    }

    /// Kills the broker (SIGKILL). With in-memory storage its topics and records are gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the broker (again) on the same port and storage, and waits until it accepts
    /// connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = tokio::process::Command::new(tansu_binary());
        let storage = match &self.storage {
            Storage::Memory => "memory://tansu/".to_owned(),
            // tansu takes the file from the URL's host, relative to its working directory.
            Storage::Sqlite(file) => {
                let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
                    anyhow::bail!("{} is not a file path", file.display());
                };
                command.current_dir(dir);
                format!("sqlite://{}", name.to_string_lossy())
            }
        };
        let child = command
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &storage, "--silent"])
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting tansu ({}): {e}; `bash .ci/run` installs it",
                    tansu_binary().display()
                )
            })?;
        self.child = Some(child);
        if crate::listening(self.port).await {
            return Ok(());
        }
        anyhow::bail!(
            "tansu ({}) did not start listening on port {} with storage {storage}",
            tansu_binary().display(),
            self.port
        )
    }
}

/// `CRM_TANSU`, else the build `.ci/run` installs (with SQLite storage), else `tansu` on the
/// PATH, else `~/.cargo/bin/tansu`.
fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CRM_TANSU") {
        return path.into();
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let installed = home.join(".cache/crm-tools/tansu/bin/tansu");
    if installed.exists() {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| home.join(".cargo/bin/tansu"))
}

/// Whether tansu here keeps data in SQLite (built with its `libsql` feature): it starts and
/// listens with such storage in `dir`.
pub async fn sqlite_storage_available(dir: &Path) -> bool {
    match Broker::start_with(Storage::Sqlite(dir.join("probe.db"))).await {
        Ok(mut broker) => {
            broker.stop().await;
            true
        }
        Err(_) => false,
    }
}

/// A Kafka record as a downstream consumer sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub key: Option<String>,
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

/// What a downstream system rebuilds from `topic`: the state the latest of `count` events of each
/// key carries (`state` reads it from an event, `None` to skip one). Fails unless all arrive.
pub async fn rebuild<E: prost::Message + Default, R>(
    brokers: &str,
    topic: &str,
    count: usize,
    state: impl Fn(E) -> Option<(String, R)>,
) -> BTreeMap<String, R> {
    let records = read_topic(brokers, topic, count, Duration::from_secs(15))
        .await
        .expect("reading the topic");
    assert_eq!(records.len(), count, "every change is on {topic}");
    records
        .iter()
        .filter_map(|record| state(E::decode(record.payload.as_slice()).expect("an event")))
        .collect()
}

/// Reads `topic` from the beginning until `count` records arrived or `timeout` passed (see
/// [`read_topic_until`]).
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Record>> {
    read_topic_until(brokers, topic, timeout, |records| records.len() >= count).await
}

/// Reads `topic` from the beginning until `done` says the records so far are enough, or
/// `timeout` passed.
///
/// tansu sometimes keeps the last records of a partition from consumers after a producer was
/// killed or replaced, until another record is written to that partition. So before concluding
/// that records are missing (halfway to `timeout`), the reader writes one probe record to every
/// partition (empty, keyed `probe`, with the [`PROBE_HEADER`] header), which brings a hidden tail
/// into view. Probes are not returned; a consumer of the topic under test skips them as records
/// of an unknown type.
pub async fn read_topic_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> anyhow::Result<Vec<Record>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("testkit-{}", Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut records = Vec::new();
    let started = tokio::time::Instant::now();
    let mut probe_at = Some(started + timeout / 2);
    let deadline = started + timeout;
    while !done(&records) {
        let wait_until = probe_at.unwrap_or(deadline).min(deadline);
        let message = match tokio::time::timeout_at(wait_until, consumer.recv()).await {
            Ok(Ok(message)) => message,
            // The topic may not exist yet: its producer creates it when it starts.
            Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                continue;
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) if probe_at.take().is_some() => {
                probe(brokers, topic).await?;
                continue;
            }
            Err(_) => break,
        };
        let headers: HashMap<String, String> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if headers.contains_key(PROBE_HEADER) {
            continue;
        }
        records.push(Record {
            topic: message.topic().to_owned(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }
    Ok(records)
}

/// Writes one probe record to every partition of `topic`.
async fn probe(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "5000")
        .create()?;
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect::<Vec<_>>();
    for partition in partitions {
        let headers = OwnedHeaders::new().insert(Header {
            key: PROBE_HEADER,
            value: Some("1"),
        });
        let record = FutureRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .key("probe")
            .payload(&[])
            .headers(headers);
        producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(error, _)| error)?;
    }
    Ok(())
}
