//! The cases service (`crm.cases.v1`): cases in pipelines whose phases the company defines, with
//! owners, money and history; offers and a service desk with SLA clocks come next (issue 14),
//! their rules already in `domain`.
//!
//! Laid out as `services/README.md` describes.

pub mod cases;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod funnel;
pub mod grpc;
pub mod peers;
pub mod pipelines;
pub mod privacy;
pub mod store;

use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    client::TracedChannel,
    config::ServiceSpec,
    shutdown::Shutdown,
    store::Pool,
};
use crm_proto::crm::{
    cases::v1::cases_service_server::{CasesServiceServer, SERVICE_NAME},
    parties::v1::parties_service_client::PartiesServiceClient,
};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "cases",
        default_port: 50053,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: events::TOPICS,
    privacy_participant: true,
    start,
    tasks: &[],
};

/// The use cases' shared state: the database and the parties service.
#[derive(Clone)]
pub struct Cases {
    pub(crate) pool: Pool,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
}

/// The gRPC routes over the runtime's database and parties, and the privacy fan-out.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let cases = Cases {
        pool: runtime.pool.clone(),
        parties,
    };
    crm_kit::privacy::join(runtime, shutdown, privacy::CasesPrivacy);
    Ok((
        Routes::new(CasesServiceServer::new(cases)),
        vec![SERVICE_NAME],
    ))
}
