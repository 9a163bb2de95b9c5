//! The parties service (`crm.parties.v1`): the master file of counterparties — organizations and
//! natural persons — their bases, the persons employed by organizations, contact points,
//! addresses, custom fields, duplicate detection and merge, and its part of data-subject requests.

pub mod bases;
pub mod convert;
pub mod custom_fields;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod lookups;
pub mod merge;
pub mod parties;
pub mod persons;
pub mod privacy;
pub mod store;

use crm_kit::store::Pool;
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
    topics: events::TOPICS,
    privacy_participant: true,
    start,
    tasks: &[],
};

/// Joins the privacy fan-out and serves the API over the runtime's database.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    crm_kit::privacy::join(runtime, shutdown, privacy::PartiesPrivacy);
    let service = PartiesServiceServer::new(Parties {
        pool: runtime.pool.clone(),
    });
    Ok((Routes::new(service), vec![SERVICE_NAME]))
}

/// The use cases' shared state.
#[derive(Clone)]
pub struct Parties {
    pub(crate) pool: Pool,
}
