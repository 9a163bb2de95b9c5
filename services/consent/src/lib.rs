//! The consent service (`crm.consent.v1`): purposes with versioned texts, consent records with
//! their evidence, the current state derived from them, consent checks, and the privacy audit log.

pub mod grpc;
pub mod service;
pub mod store;

use crm_kit::{
    app::{Runtime, ServiceRoutes},
    config::ServiceSpec,
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
pub const TOPICS: [&str; 1] = [CONSENT_TOPIC];

pub fn migrator() -> Migrator {
    sqlx::migrate!("./migrations")
}

pub fn routes(runtime: &Runtime, _: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let service = ConsentServiceServer::new(service::Consents::new(runtime.pool.clone()));
    Ok((Routes::new(service), vec![SERVICE_NAME]))
}
