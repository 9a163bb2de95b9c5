//! The consent service (`crm.consent.v1`): purposes with versioned texts, consent records with
//! their evidence, the current state derived from them, consent checks, data-subject requests
//! carried out across every service, and the privacy audit log.
//!
//! Laid out as `services/README.md` describes.

pub mod audit_log;
pub mod bundles;
pub mod consents;
pub mod consumers;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod fanout;
pub mod grpc;
pub mod purposes;
pub mod requests;
pub mod store;

use std::time::Duration;

use crm_kit::store::Pool;
use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    config::{PrivacyConfig, ServiceSpec},
    consumer::{self, ConsumerOptions},
    privacy,
    shutdown::Shutdown,
};
use crm_proto::crm::consent::v1::consent_service_server::{ConsentServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "consent",
        default_port: 50056,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: events::TOPICS,
    privacy_participant: false,
    start,
    tasks: &[],
};

/// The use cases' shared state: the database and the privacy fan-out's settings.
#[derive(Clone)]
pub struct Consents {
    pub(crate) pool: Pool,
    /// The services that must answer every fanned-out data-subject request.
    pub(crate) registry: Vec<String>,
    /// How long a service may stay silent before a request is sent to it again.
    pub(crate) retry_after: Duration,
    /// Days a completed export's bundle can be fetched.
    pub(crate) bundle_retention_days: i32,
}

impl Consents {
    pub fn new(pool: Pool, privacy: &PrivacyConfig) -> Self {
        Self {
            pool,
            registry: privacy.registry(),
            retry_after: privacy.retry_after(),
            bundle_retention_days: privacy.bundle_retention_days,
        }
    }
}

/// Tends the fanned-out requests in the background, consumes the services' receipts, and serves
/// the API.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let consents = Consents::new(runtime.pool.clone(), &runtime.config.privacy);
    tokio::spawn(consents.clone().tend_requests(shutdown.clone()));
    tokio::spawn(consents.clone().announce_expiries_until(shutdown.clone()));
    let receipts = ConsumerOptions::new(consumers::RECEIPTS, &[privacy::RECEIPTS.name]);
    consumer::spawn(runtime, receipts, consumers::Receipts, shutdown);
    let merges = ConsumerOptions::new(consumers::MERGES, &[consumers::PARTY_TOPIC]);
    consumer::spawn(runtime, merges, consumers::PartyMerges, shutdown);
    Ok((
        Routes::new(ConsentServiceServer::new(consents)),
        vec![SERVICE_NAME],
    ))
}
