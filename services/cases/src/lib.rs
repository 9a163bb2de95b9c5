//! The cases service (`crm.cases.v1`): cases in pipelines whose phases the company defines, with
//! owners, money and history; offers that become sales orders; a service desk whose SLA clocks
//! run in business time.
//!
//! Laid out as `services/README.md` describes.

pub mod cases;
pub mod convert;
pub mod desk;
pub mod domain;
pub mod error;
pub mod events;
pub mod forecast;
pub mod funnel;
pub mod grpc;
pub mod offers;
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
    cases::v1::{
        cases_service_server::{self, CasesServiceServer},
        offers_service_server::{self, OffersServiceServer},
        service_desk_service_server::{self, ServiceDeskServiceServer},
    },
    loyalty::v1::loyalty_service_client::LoyaltyServiceClient,
    parties::v1::parties_service_client::PartiesServiceClient,
};
use std::sync::Arc;

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

/// The use cases' shared state: the database, the parties and loyalty services, and the seller
/// offers are printed for.
#[derive(Clone)]
pub struct Cases {
    pub(crate) pool: Pool,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
    pub(crate) loyalty: LoyaltyServiceClient<TracedChannel>,
    pub(crate) seller: Arc<[String]>,
}

/// The gRPC routes over the runtime's database, parties and loyalty; the offers' expiry sweep and
/// the SLA alarms' sweep; and the privacy fan-out.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let loyalty = LoyaltyServiceClient::new(runtime.peer("loyalty", &["loyalty.read"])?);
    let seller = runtime
        .config
        .cases
        .seller
        .lines()
        .map(str::trim)
        .map(str::to_owned);
    let cases = Cases {
        pool: runtime.pool.clone(),
        parties,
        loyalty,
        seller: seller.filter(|line| !line.is_empty()).collect(),
    };
    tokio::spawn(cases.clone().expire_offers(shutdown.clone()));
    tokio::spawn(cases.clone().sweep_alarms(shutdown.clone()));
    crm_kit::privacy::join(runtime, shutdown, privacy::CasesPrivacy);
    Ok((
        Routes::new(CasesServiceServer::new(cases.clone()))
            .add_service(OffersServiceServer::new(cases.clone()))
            .add_service(ServiceDeskServiceServer::new(cases)),
        vec![
            cases_service_server::SERVICE_NAME,
            offers_service_server::SERVICE_NAME,
            service_desk_service_server::SERVICE_NAME,
        ],
    ))
}
