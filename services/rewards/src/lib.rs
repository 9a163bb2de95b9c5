//! The rewards service (`crm.rewards.v1`): the reward catalogue of the loyalty programs, voucher
//! codes, warehouses and every movement of their stock.
//!
//! Laid out as `services/README.md` describes.

pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod peers;
pub mod rewards;
pub mod stock;
pub mod store;
pub mod vouchers;
pub mod warehouses;

use crm_kit::client::TracedChannel;
use crm_kit::store::Pool;
use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    config::ServiceSpec,
    shutdown::Shutdown,
};
use crm_proto::crm::{
    loyalty::v1::loyalty_service_client::LoyaltyServiceClient,
    parties::v1::parties_service_client::PartiesServiceClient,
    rewards::v1::rewards_service_server::{RewardsServiceServer, SERVICE_NAME},
};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "rewards",
        default_port: 50055,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: events::TOPICS,
    privacy_participant: false,
    start,
    tasks: &[],
};

/// The use cases' shared state: the database and the peers they ask.
#[derive(Clone)]
pub struct Rewards {
    pub(crate) pool: Pool,
    pub(crate) loyalty: LoyaltyServiceClient<TracedChannel>,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
}

/// The gRPC routes over the runtime's database, loyalty and parties.
fn start(runtime: &Runtime, _shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let loyalty = LoyaltyServiceClient::new(runtime.peer("loyalty", &["loyalty.read"])?);
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let rewards = Rewards {
        pool: runtime.pool.clone(),
        loyalty,
        parties,
    };
    Ok((
        Routes::new(RewardsServiceServer::new(rewards)),
        vec![SERVICE_NAME],
    ))
}
