//! The suite under test: parties, interactions, cases, consent, loyalty and rewards on one broker,
//! each on its own database, started through the same `Runtime` as their binaries; interactions,
//! loyalty and rewards restartable on the same storage.

use crm_kit::{app::Service, config::Config};
use std::{net::SocketAddr, time::Duration};

use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    cases::v1::{
        cases_service_client::CasesServiceClient, offers_service_client::OffersServiceClient,
        service_desk_service_client::ServiceDeskServiceClient,
    },
    consent::v1::{
        Channel, CreatePurposeRequest, Evidence, LegalBasis, Purpose, RecordConsentRequest,
        Subject, SubjectKind, WithdrawConsentRequest, consent_service_client::ConsentServiceClient,
    },
    interactions::v1::interactions_service_client::InteractionsServiceClient,
    loyalty::v1::{Program, loyalty_service_client::LoyaltyServiceClient},
    parties::v1::{
        ContactPoint, ContactPointKind, CreatePartyRequest, Party, PartyKind, PersonName,
        parties_service_client::PartiesServiceClient,
    },
    rewards::v1::rewards_service_client::RewardsServiceClient,
};
use crm_testkit::{Broker, TestDatabase, TestService, token};
use sqlx::PgConnection;

pub const PARTIES: Service = crm_parties::SERVICE;

pub const LOYALTY: Service = crm_loyalty::SERVICE;

pub const CONSENT: Service = crm_consent::SERVICE;

pub const REWARDS: Service = crm_rewards::SERVICE;

pub const INTERACTIONS: Service = crm_interactions::SERVICE;

pub const CASES: Service = crm_cases::SERVICE;

/// The consent purpose loyalty membership depends on.
pub const LOYALTY_PROGRAM: &str = "loyalty_program";

/// How long consent waits for a silent service before sending the request again, in tests.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

pub struct Suite {
    pub broker: Broker,
    pub parties: TestService,
    pub consent: TestService,
    cases: Restartable,
    interactions: Restartable,
    loyalty: Restartable,
    rewards: Restartable,
}

/// A service the tests stop and start again on the same database and port, as a deployment keeps
/// its address: its peers reach it again once it is back.
struct Restartable {
    name: &'static str,
    addr: Option<SocketAddr>,
    /// None while stopped.
    running: Option<TestService>,
    /// Its storage while it is stopped.
    stopped: Option<TestDatabase>,
}

impl Restartable {
    async fn new(name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            name,
            addr: None,
            running: None,
            stopped: Some(TestDatabase::create().await?),
        })
    }

    async fn start(
        &mut self,
        service: &Service,
        broker: &Broker,
        peers: Vec<(&str, String)>,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let database = self
            .stopped
            .take()
            .ok_or_else(|| anyhow::anyhow!("{} is running", self.name))?;
        let addr = self.addr;
        let started = TestService::start_with(service, database, broker.shared(), |config| {
            for (name, url) in peers {
                config.peers.insert(name.into(), url);
            }
            if let Some(addr) = addr {
                config.grpc.listen = addr.to_string();
            }
            adjust(config);
        })
        .await?;
        self.addr = Some(started.addr);
        self.running = Some(started);
        Ok(())
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        let running = self
            .running
            .take()
            .ok_or_else(|| anyhow::anyhow!("{} is stopped", self.name))?;
        let (database, _) = running.stop_keeping_storage().await?;
        self.stopped = Some(database);
        Ok(())
    }

    fn get(&self) -> &TestService {
        self.running
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", self.name))
    }

    async fn db(&self) -> PgConnection {
        let database = match &self.running {
            Some(running) => &running.database,
            None => self.stopped.as_ref().expect("a database, running or not"),
        };
        database.connect().await
    }
}

fn url(service: &TestService) -> String {
    format!("http://{}", service.addr)
}

impl Suite {
    pub async fn start() -> anyhow::Result<Self> {
        let broker = Broker::start().await?;
        let parties = TestService::start_with(
            &PARTIES,
            TestDatabase::create().await?,
            broker.shared(),
            |_| {},
        )
        .await?;
        let consent = TestService::start_with(
            &CONSENT,
            TestDatabase::create().await?,
            broker.shared(),
            |config| {
                config.privacy.retry_after_secs = RETRY_AFTER.as_secs();
                config.privacy.services = "parties,interactions,cases,loyalty,rewards".into();
            },
        )
        .await?;
        let mut suite = Self {
            broker,
            parties,
            consent,
            cases: Restartable::new("cases").await?,
            interactions: Restartable::new("interactions").await?,
            loyalty: Restartable::new("loyalty").await?,
            rewards: Restartable::new("rewards").await?,
        };
        suite.start_interactions().await?;
        suite.start_loyalty().await?;
        suite.start_rewards().await?;
        suite.start_cases().await?;
        Ok(suite)
    }

    /// Starts cases (again) on its database.
    pub async fn start_cases(&mut self) -> anyhow::Result<()> {
        self.start_cases_with(|_| {}).await
    }

    /// Starts cases (again) on its database, with `adjust` applied to its settings.
    pub async fn start_cases_with(
        &mut self,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let peers = vec![
            ("parties", self.parties_url()),
            ("loyalty", self.loyalty_url()),
        ];
        self.cases.start(&CASES, &self.broker, peers, adjust).await
    }

    /// Stops cases gracefully, keeping its database.
    pub async fn stop_cases(&mut self) -> anyhow::Result<()> {
        self.cases.stop().await
    }

    pub fn cases(&self) -> &TestService {
        self.cases.get()
    }

    /// Starts interactions (again) on its database.
    pub async fn start_interactions(&mut self) -> anyhow::Result<()> {
        self.start_interactions_with(|_| {}).await
    }

    /// Starts interactions (again) on its database, with `adjust` applied to its settings.
    pub async fn start_interactions_with(
        &mut self,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let peers = vec![("parties", self.parties_url())];
        self.interactions
            .start(&INTERACTIONS, &self.broker, peers, adjust)
            .await
    }

    /// Stops interactions gracefully, keeping its database.
    pub async fn stop_interactions(&mut self) -> anyhow::Result<()> {
        self.interactions.stop().await
    }

    pub fn interactions(&self) -> &TestService {
        self.interactions.get()
    }

    pub async fn interactions_db(&self) -> PgConnection {
        self.interactions.db().await
    }

    /// Starts loyalty (again) on its database; it consumes from where its consumers stopped.
    pub async fn start_loyalty(&mut self) -> anyhow::Result<()> {
        self.start_loyalty_with(|_| {}).await
    }

    /// Starts loyalty (again) on its database, with `adjust` applied to its settings.
    pub async fn start_loyalty_with(
        &mut self,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let peers = vec![
            ("parties", url(&self.parties)),
            ("consent", url(&self.consent)),
        ];
        self.loyalty
            .start(&LOYALTY, &self.broker, peers, adjust)
            .await
    }

    /// Stops loyalty gracefully, keeping its database (a deployment, an outage).
    pub async fn stop_loyalty(&mut self) -> anyhow::Result<()> {
        self.loyalty.stop().await
    }

    pub fn loyalty(&self) -> &TestService {
        self.loyalty.get()
    }

    /// Starts rewards (again) on its database.
    pub async fn start_rewards(&mut self) -> anyhow::Result<()> {
        self.start_rewards_with(|_| {}).await
    }

    /// Starts rewards (again) on its database, with `adjust` applied to its settings.
    pub async fn start_rewards_with(
        &mut self,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let peers = vec![
            ("loyalty", self.loyalty_url()),
            ("parties", self.parties_url()),
        ];
        self.rewards
            .start(&REWARDS, &self.broker, peers, adjust)
            .await
    }

    /// Where loyalty serves, running or not: it comes back on the same address.
    pub fn loyalty_url(&self) -> String {
        format!(
            "http://{}",
            self.loyalty.addr.expect("loyalty started once")
        )
    }

    pub fn parties_url(&self) -> String {
        url(&self.parties)
    }

    /// Stops rewards gracefully, keeping its database.
    pub async fn stop_rewards(&mut self) -> anyhow::Result<()> {
        self.rewards.stop().await
    }

    pub fn rewards(&self) -> &TestService {
        self.rewards.get()
    }

    /// A consumer: a person party (with its natural person) reachable at `email`.
    pub async fn consumer(&self, given: &str, family: &str, email: &str) -> Party {
        self.parties_client()
            .create_party(CreatePartyRequest {
                party: Some(Party {
                    kind: PartyKind::Person as i32,
                    person_name: Some(PersonName {
                        given_name: given.into(),
                        family_name: family.into(),
                    }),
                    contact_points: vec![ContactPoint {
                        kind: ContactPointKind::Email as i32,
                        value: email.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("creating a consumer")
            .into_inner()
    }

    pub fn cases_client(&self) -> CasesServiceClient<TracedChannel> {
        CasesServiceClient::new(self.cases().channel(&token(
            "sales",
            &["cases.read", "cases.write", "cases.admin"],
        )))
    }

    pub fn offers_client(&self) -> OffersServiceClient<TracedChannel> {
        OffersServiceClient::new(
            self.cases()
                .channel(&token("sales", &["cases.read", "cases.write"])),
        )
    }

    pub fn desk_client(&self) -> ServiceDeskServiceClient<TracedChannel> {
        ServiceDeskServiceClient::new(self.cases().channel(&token(
            "desk",
            &["cases.read", "cases.write", "cases.admin"],
        )))
    }

    pub async fn cases_db(&self) -> PgConnection {
        self.cases.db().await
    }

    pub fn interactions_client(&self) -> InteractionsServiceClient<TracedChannel> {
        InteractionsServiceClient::new(self.interactions().channel(&token(
            "agent",
            &["interactions.read", "interactions.write"],
        )))
    }

    pub fn rewards_client(&self) -> RewardsServiceClient<TracedChannel> {
        RewardsServiceClient::new(self.rewards().channel(&token(
            "storekeeper",
            &[
                "rewards.read",
                "rewards.write",
                "rewards.stock",
                "rewards.order",
            ],
        )))
    }

    pub async fn rewards_db(&self) -> PgConnection {
        self.rewards.db().await
    }

    pub fn parties_client(&self) -> PartiesServiceClient<TracedChannel> {
        PartiesServiceClient::new(
            self.parties
                .channel(&token("clerk", &["parties.read", "parties.write"])),
        )
    }

    pub fn consent_client(&self) -> ConsentServiceClient<TracedChannel> {
        ConsentServiceClient::new(self.consent.channel(&token(
            "dpo",
            &["consent.read", "consent.write", "privacy.export"],
        )))
    }

    pub fn loyalty_client(&self) -> LoyaltyServiceClient<TracedChannel> {
        LoyaltyServiceClient::new(
            self.loyalty()
                .channel(&token("cashier", &["loyalty.read", "loyalty.write"])),
        )
    }

    /// The consent purpose loyalty enrolment requires.
    pub async fn loyalty_purpose(&self) {
        self.consent_client()
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: LOYALTY_PROGRAM.into(),
                    description: "Membership of loyalty programs".into(),
                    legal_basis: LegalBasis::Consent as i32,
                    text: "I want to collect points".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("creating the loyalty_program purpose");
    }

    /// The party grants (or withdraws) its consent to `purpose`, in store.
    pub async fn consent_to(&self, party_id: &str, purpose: &str, granted: bool) {
        let subject = Some(Subject {
            kind: SubjectKind::Party as i32,
            id: party_id.into(),
        });
        let evidence = Some(Evidence {
            channel: Channel::InStore as i32,
            ..Default::default()
        });
        let mut consent = self.consent_client();
        let recorded = if granted {
            consent
                .record_consent(RecordConsentRequest {
                    subject,
                    purpose: purpose.into(),
                    evidence,
                    ..Default::default()
                })
                .await
        } else {
            consent
                .withdraw_consent(WithdrawConsentRequest {
                    subject,
                    purpose: purpose.into(),
                    evidence,
                    ..Default::default()
                })
                .await
        };
        recorded.expect("recording the consent");
    }

    /// An active B2C program with `basic` points, a `purchase` operation that accrues them and a
    /// `reward_redemption` that settles them (reward orders redeem with it).
    pub async fn loyalty_program(&self) -> Program {
        crm_testkit::seed::loyalty_club(&mut self.loyalty_client()).await
    }

    pub async fn parties_db(&self) -> PgConnection {
        self.parties.db().await
    }

    pub async fn loyalty_db(&self) -> PgConnection {
        self.loyalty.db().await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        for service in [
            &mut self.cases,
            &mut self.rewards,
            &mut self.loyalty,
            &mut self.interactions,
        ] {
            if let Some(running) = service.running.take() {
                running.stop().await?;
            }
        }
        self.consent.stop().await?;
        self.parties.stop().await
    }
}

/// Every place in a database where `needle` appears: `table.column` of text-like columns
/// (matched case-insensitively on their text form) and of bytea columns (stored replies, event
/// payloads, matched as UTF-8 bytes).
pub async fn find_in_database(db: &mut PgConnection, needle: &str) -> anyhow::Result<Vec<String>> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut found = Vec::new();
    for (table, column, data_type) in columns {
        let test = if data_type == "bytea" {
            format!(r#"position(convert_to($1, 'UTF8') IN "{column}") > 0"#)
        } else {
            format!(r#""{column}"::text ILIKE '%' || $1 || '%'"#)
        };
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            r#"SELECT count(*) FROM "{table}" WHERE {test}"#
        )))
        .bind(needle)
        .fetch_one(&mut *db)
        .await?;
        if hits > 0 {
            found.push(format!("{table}.{column} ({hits} rows)"));
        }
    }
    Ok(found)
}
