//! Kafka clients configured the one way the suite uses them, and topic provisioning.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
    producer::FutureProducer,
};

use crate::{config::KafkaConfig, local::MockTopics};

/// Brokers plus how to provision topics.
#[derive(Debug, Clone)]
pub struct Kafka {
    pub brokers: String,
    pub create_topics: bool,
    /// The in-process mock cluster of local mode, whose admin API never answers: topics are
    /// created on it directly.
    pub mock: Option<MockTopics>,
    pub topic_partitions: i32,
    pub replication_factor: i32,
    pub message_timeout: Duration,
}

impl Kafka {
    pub fn new(brokers: String, config: &KafkaConfig) -> Self {
        Self {
            brokers,
            create_topics: config.create_topics,
            mock: None,
            topic_partitions: config.topic_partitions,
            replication_factor: config.replication_factor,
            message_timeout: Duration::from_millis(config.message_timeout_ms),
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        if self.mock.is_some() {
            config.set("allow.auto.create.topics", "true");
        }
        config
    }

    /// An idempotent producer with `acks=all`: retries never duplicate or reorder within a partition.
    pub fn producer(&self) -> rdkafka::error::KafkaResult<FutureProducer> {
        self.client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.message_timeout.as_millis().to_string(),
            )
            .create()
    }

    /// Creates the topics that do not exist yet (when `create_topics` is on).
    pub async fn ensure_topics(&self, topics: &[String]) -> anyhow::Result<()> {
        if !self.create_topics || topics.is_empty() {
            return Ok(());
        }
        if let Some(mock) = &self.mock {
            let (mock, topics) = (mock.clone(), topics.to_vec());
            let partitions = self.topic_partitions;
            return tokio::task::spawn_blocking(move || mock.create(&topics, partitions)).await?;
        }
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    self.topic_partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}
