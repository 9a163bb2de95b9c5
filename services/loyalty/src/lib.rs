//! The loyalty service (`crm.loyalty.v1`): programs with their point and operation types,
//! memberships of parties, point accounts, and the immutable double-entry ledger with two-phase
//! holds.

pub mod bulk;
pub mod cards;
pub mod consumers;
pub mod convert;
pub mod coupons;
pub mod discounts;
pub mod domain;
pub mod error;
pub mod events;
pub mod expiry;
pub mod grpc;
pub mod holds;
pub mod ledger;
pub mod lookups;
pub mod memberships;
pub mod peers;
pub(crate) mod posting;
pub mod privacy;
pub mod programs;
pub mod store;
pub mod tiers;
pub mod verify;

use crm_kit::client::TracedChannel;
use crm_kit::store::Pool;
use crm_kit::{
    app::{Runtime, Service, ServiceRoutes},
    config::ServiceSpec,
    consumer::{self, ConsumerOptions},
    shutdown::Shutdown,
};
use crm_proto::crm::{
    consent::v1::consent_service_client::ConsentServiceClient,
    loyalty::v1::loyalty_service_server::{LoyaltyServiceServer, SERVICE_NAME},
    parties::v1::parties_service_client::PartiesServiceClient,
};
use tonic::service::Routes;

pub const SERVICE: Service = Service {
    spec: ServiceSpec {
        name: "loyalty",
        default_port: 50054,
    },
    migrator: || sqlx::migrate!("./migrations"),
    topics: events::TOPICS,
    privacy_participant: true,
    start,
    tasks: &[verify::TASK],
};

/// The gRPC routes over the runtime's database and the parties service, plus the workers: the
/// ones that release expired holds, run bulk accruals, sweep tiers and expire points, and the
/// invoice consumer.
fn start(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<ServiceRoutes> {
    let parties = PartiesServiceClient::new(runtime.peer("parties", &["parties.read"])?);
    let consent = ConsentServiceClient::new(runtime.peer("consent", &["consent.read"])?);
    let loyalty = Loyalty::new(runtime.pool.clone(), parties, consent);
    tokio::spawn(loyalty.clone().expire_holds(shutdown.clone()));
    tokio::spawn(loyalty.clone().run_bulk_accruals(shutdown.clone()));
    tokio::spawn(loyalty.clone().sweep_tiers(shutdown.clone()));
    tokio::spawn(loyalty.clone().expire_points(shutdown.clone()));
    use consumers::{consents, invoices, merges};
    let invoices = ConsumerOptions::new(invoices::CONSUMER, &[invoices::INVOICE_TOPIC]);
    consumer::spawn(runtime, invoices, invoices::InvoiceAccrual, shutdown);
    let consents = ConsumerOptions::new(consents::CONSUMER, &[consents::CONSENT_TOPIC]);
    consumer::spawn(runtime, consents, consents::ConsentGate, shutdown);
    let merges = ConsumerOptions::new(merges::CONSUMER, &[merges::PARTY_TOPIC]);
    consumer::spawn(runtime, merges, merges::PartyMerges, shutdown);
    crm_kit::privacy::join(runtime, shutdown, privacy::LoyaltyPrivacy);
    Ok((
        Routes::new(LoyaltyServiceServer::new(loyalty)),
        vec![SERVICE_NAME],
    ))
}

/// The use cases' shared state: the database and the peers they ask.
#[derive(Clone)]
pub struct Loyalty {
    pub(crate) pool: Pool,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
    pub(crate) consent: ConsentServiceClient<TracedChannel>,
    /// Where RecordOperation calls wait to be posted together (group commit).
    pub(crate) recorder: posting::batch::Batcher<posting::record::Records>,
    /// Where HoldPoints calls wait to be posted together.
    pub(crate) holder: posting::batch::Batcher<posting::hold::Holds>,
    /// Where CaptureHold calls wait to be posted together.
    pub(crate) capturer: posting::batch::Batcher<posting::capture::Captures>,
}

impl Loyalty {
    pub fn new(
        pool: Pool,
        parties: PartiesServiceClient<TracedChannel>,
        consent: ConsentServiceClient<TracedChannel>,
    ) -> Self {
        Self {
            recorder: posting::batch::Batcher::start(pool.clone(), Default::default()),
            holder: posting::batch::Batcher::start(pool.clone(), Default::default()),
            capturer: posting::batch::Batcher::start(pool.clone(), Default::default()),
            pool,
            parties,
            consent,
        }
    }
}
