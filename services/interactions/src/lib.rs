//! The interactions service (`crm.interactions.v1`): the contact history of every client across
//! every channel, and the notes operators keep about them.
//!
//! Laid out as `services/README.md` describes.

pub mod convert;
pub mod domain;
pub mod email;
pub mod error;
pub mod events;
pub mod facts;
pub mod grpc;
pub mod imap;
pub mod interactions;
pub mod mailboxes;
pub mod notes;
pub mod occasions;
pub mod peers;
pub mod privacy;
pub mod store;
pub mod tasks;
pub mod timeline;

use crm_kit::client::TracedChannel;
use crm_kit::config::InteractionsConfig;
use crm_kit::consumer::{self, ConsumerOptions};
use crm_kit::store::Pool;
use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    config::ServiceSpec,
    shutdown::Shutdown,
};
use crm_proto::crm::{
    interactions::v1::interactions_service_server::{InteractionsServiceServer, SERVICE_NAME},
    parties::v1::parties_service_client::PartiesServiceClient,
};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "interactions",
        default_port: 50052,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: events::TOPICS,
    privacy_participant: true,
    start,
    tasks: &[],
};

/// The use cases' shared state: the database and the parties service.
#[derive(Clone)]
pub struct Interactions {
    pub(crate) pool: Pool,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
    pub(crate) limits: InteractionsConfig,
    /// TLS for mailbox connections.
    pub(crate) tls: tokio_rustls::TlsConnector,
    /// Raw e-mail being imported at once, in KiB: each message is held several times over
    /// while it is parsed and stored.
    pub(crate) importing: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The gRPC routes over the runtime's database and parties, the announcer of overdue tasks, and
/// the privacy fan-out.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let interactions = Interactions {
        pool: runtime.pool.clone(),
        parties,
        limits: runtime.config.interactions.clone(),
        tls: imap::tls(&runtime.config.interactions.mailbox_ca_file)?,
        importing: std::sync::Arc::new(tokio::sync::Semaphore::new(email::IMPORT_BUDGET_KIB)),
    };
    // An e-mail travels whole in ImportEmail: the service takes messages as large as it imports.
    let max_message = interactions.limits.max_email_bytes + (64 << 10);
    tokio::spawn(
        interactions
            .clone()
            .announce_overdue_tasks(shutdown.clone()),
    );
    tokio::spawn(interactions.clone().read_mailboxes(shutdown.clone()));
    tokio::spawn(interactions.clone().remind_of_occasions(shutdown.clone()));
    let timeline = ConsumerOptions::new(facts::CONSUMER, facts::TOPICS);
    consumer::spawn(runtime, timeline, facts::Timeline, shutdown);
    crm_kit::privacy::join(runtime, shutdown, privacy::InteractionsPrivacy);
    Ok((
        Routes::new(
            InteractionsServiceServer::new(interactions).max_decoding_message_size(max_message),
        ),
        vec![SERVICE_NAME],
    ))
}
