//! The parties service (`crm.parties.v1`): the master file of counterparties — organizations and
//! natural persons — their bases, the persons employed by organizations, contact points,
//! addresses, custom fields, duplicate detection and merge, and its part of data-subject requests.

pub mod domain;
pub mod events;
pub mod grpc;
pub mod privacy;
pub mod service;
pub mod store;

use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    config::ServiceSpec,
    shutdown::Shutdown,
};
use crm_proto::crm::parties::v1::parties_service_server::{PartiesServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "parties",
        default_port: 50051,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: &events::TOPICS,
    start,
};

/// Joins the privacy fan-out and serves the API over the runtime's database.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    crm_kit::privacy::join(runtime, shutdown, privacy::PartiesPrivacy);
    let service = PartiesServiceServer::new(service::Parties::new(runtime.pool.clone()));
    Ok((Routes::new(service), vec![SERVICE_NAME]))
}
