//! The consent service (`crm.consent.v1`): purposes with versioned texts, consent records with
//! their evidence, the current state derived from them, consent checks, data-subject requests
//! carried out across every service, and the privacy audit log.

pub mod grpc;
pub mod requests;
pub mod service;
pub mod store;

use std::time::Duration;

use crm_kit::{
    app::{Runtime, ServiceRoutes},
    config::ServiceSpec,
    consumer::{self, ConsumerOptions},
    privacy,
    shutdown::Shutdown,
};
use crm_proto::crm::consent::v1::consent_service_server::{ConsentServiceServer, SERVICE_NAME};
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "consent",
    default_port: 50056,
};

/// Key: subject id. ConsentChanged.
pub const CONSENT_TOPIC: &str = "crm.consent.consent.v1";
/// The topics consent writes: its own, and the privacy fan-out's requests.
pub const TOPICS: [&str; 2] = [CONSENT_TOPIC, privacy::REQUEST_TOPIC];

/// The consumer of the services' receipts.
pub const RECEIPTS_CONSUMER: &str = "consent-receipts";

pub fn migrator() -> Migrator {
    sqlx::migrate!("./migrations")
}

pub fn routes(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let consents = service::Consents::new(runtime.pool.clone(), &runtime.config.privacy);
    tokio::spawn(consents.clone().tend_requests(shutdown.clone()));
    let receipts = ConsumerOptions {
        name: RECEIPTS_CONSUMER.into(),
        topics: vec![privacy::RECEIPT_TOPIC.into()],
        max_attempts: 5,
        retry_delay: Duration::from_millis(500),
    };
    consumer::spawn(runtime, receipts, requests::Receipts, shutdown);
    Ok((
        Routes::new(ConsentServiceServer::new(consents)),
        vec![SERVICE_NAME],
    ))
}
