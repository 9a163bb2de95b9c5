//! The rewards service (`crm.rewards.v1`): the reward catalogue of the loyalty programs, voucher
//! codes, warehouses and every movement of their stock, and reward orders that take points
//! through the loyalty ledger's two-phase hold.
//!
//! Laid out as `services/README.md` describes.

pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod fulfilment;
pub mod grpc;
pub mod orders;
pub mod peers;
pub mod privacy;
pub mod rewards;
pub mod saga;
pub mod stock;
pub mod store;
pub mod vouchers;
pub mod warehouses;

use std::time::Duration;

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
    privacy_participant: true,
    start,
    tasks: &[],
};

/// The use cases' shared state: the database, the peers they ask, and how long orders hold points.
#[derive(Clone)]
pub struct Rewards {
    pub(crate) pool: Pool,
    pub(crate) loyalty: LoyaltyServiceClient<TracedChannel>,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
    pub(crate) hold_timeout: Duration,
}

/// The gRPC routes over the runtime's database, loyalty and parties; the sweep that finishes
/// interrupted order steps; the privacy fan-out.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let loyalty =
        LoyaltyServiceClient::new(runtime.peer("loyalty", &["loyalty.read", "loyalty.write"])?);
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let rewards = Rewards {
        pool: runtime.pool.clone(),
        loyalty,
        parties,
        hold_timeout: runtime.config.rewards.hold_timeout(),
    };
    tokio::spawn(rewards.clone().tend_orders(shutdown.clone()));
    crm_kit::privacy::join(runtime, shutdown, privacy::RewardsPrivacy);
    Ok((
        Routes::new(RewardsServiceServer::new(rewards)),
        vec![SERVICE_NAME],
    ))
}
