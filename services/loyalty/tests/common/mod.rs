//! The loyalty service under test, with the real parties service beside it on its own database,
//! and the ledger's invariants.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use crm_kit::app::Service;
use tonic_types::StatusExt;

use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    consent::v1::{
        Channel, CreatePurposeRequest, Evidence, LegalBasis, Purpose, RecordConsentRequest,
        Subject, SubjectKind, WithdrawConsentRequest, consent_service_client::ConsentServiceClient,
    },
    loyalty::v1::{loyalty_service_client::LoyaltyServiceClient, *},
    parties::v1::{
        CreatePartyRequest, Party, PartyKind, PersonName,
        parties_service_client::PartiesServiceClient,
    },
};
use crm_testkit::{Broker, TestDatabase, TestService, token};

pub const PARTIES: Service = crm_parties::SERVICE;

pub const CONSENT: Service = crm_consent::SERVICE;

pub const LOYALTY: Service = crm_loyalty::SERVICE;

pub type Loyalty = LoyaltyServiceClient<TracedChannel>;

pub struct Suite {
    pub loyalty: TestService,
    parties: TestService,
    consent: TestService,
    pub consent_client: ConsentServiceClient<TracedChannel>,
    pub parties_client: PartiesServiceClient<TracedChannel>,
    pub client: Loyalty,
}

impl Suite {
    pub async fn start() -> Self {
        let parties = TestService::start(&PARTIES).await.unwrap();
        let consent = TestService::start(&CONSENT).await.unwrap();
        let mut consent_client = ConsentServiceClient::new(
            consent.channel(&token("dpo", &["consent.read", "consent.write"])),
        );
        consent_client
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: "loyalty_program".into(),
                    description: "Membership of loyalty programs".into(),
                    legal_basis: LegalBasis::Consent as i32,
                    text: "I want to collect points".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let peers = Peers::of(&parties, &consent);
        let loyalty = start_loyalty(
            &peers,
            TestDatabase::create().await.unwrap(),
            Broker::start().await.unwrap(),
        )
        .await;
        let parties_client = PartiesServiceClient::new(
            parties.channel(&token("admin", &["parties.read", "parties.write"])),
        );
        Self {
            client: client_of(&loyalty),
            loyalty,
            parties,
            consent,
            consent_client,
            parties_client,
        }
    }

    /// Stops loyalty gracefully and starts it again on the same database and broker.
    pub async fn restart_loyalty(self) -> Self {
        let Self {
            loyalty,
            parties,
            consent,
            consent_client,
            parties_client,
            ..
        } = self;
        let (database, broker) = loyalty.stop_keeping_storage().await.unwrap();
        let loyalty = start_loyalty(&Peers::of(&parties, &consent), database, broker).await;
        Self {
            client: client_of(&loyalty),
            loyalty,
            parties,
            consent,
            consent_client,
            parties_client,
        }
    }

    /// The party grants the `loyalty_program` consent, as a member signing up would.
    pub async fn consent_to_loyalty(&self, party_id: &str) {
        self.consent_client
            .clone()
            .record_consent(RecordConsentRequest {
                subject: Some(Subject {
                    kind: SubjectKind::Party as i32,
                    id: party_id.into(),
                }),
                purpose: "loyalty_program".into(),
                evidence: Some(Evidence {
                    channel: Channel::InStore as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// The party withdraws its `loyalty_program` consent.
    pub async fn withdraw_loyalty_consent(&self, party_id: &str) {
        self.consent_client
            .clone()
            .withdraw_consent(WithdrawConsentRequest {
                subject: Some(Subject {
                    kind: SubjectKind::Party as i32,
                    id: party_id.into(),
                }),
                purpose: "loyalty_program".into(),
                evidence: Some(Evidence {
                    channel: Channel::Call as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Stops both services gracefully (workers and relays finish before the databases go).
    pub async fn stop(self) {
        self.loyalty.stop().await.unwrap();
        self.parties.stop().await.unwrap();
        self.consent.stop().await.unwrap();
    }

    pub async fn party(&self, kind: PartyKind, name: &str) -> Party {
        self.parties_client
            .clone()
            .create_party(CreatePartyRequest {
                party: Some(Party {
                    kind: kind as i32,
                    display_name: name.into(),
                    person_name: (kind == PartyKind::Person).then(|| PersonName {
                        given_name: name.into(),
                        family_name: String::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// An active B2B program with basic points (returns may go 100 below zero) and three
    /// operation types: purchase, reward_redemption, correction.
    pub async fn program(&self) -> Program {
        let mut client = self.client.clone();
        let program = client
            .create_program(CreateProgramRequest {
                program: Some(Program {
                    display_name: "Partner club".into(),
                    kind: ProgramKind::B2b as i32,
                    currency_code: "pln".into(),
                    status: ProgramStatus::Active as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(program.currency_code, "PLN");
        client
            .define_point_type(DefinePointTypeRequest {
                program_id: program.id.clone(),
                point_type: Some(PointType {
                    code: "basic".into(),
                    display_name: "Basic points".into(),
                    qualifying: true,
                    reversal_floor: -100,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut last = program;
        for (code, direction) in [
            ("purchase", Direction::Accrue),
            ("reward_redemption", Direction::Settle),
            ("correction", Direction::Settle),
        ] {
            last = client
                .define_operation_type(DefineOperationTypeRequest {
                    program_id: last.id.clone(),
                    operation_type: Some(OperationType {
                        code: code.into(),
                        display_name: code.replace('_', " "),
                        direction: direction as i32,
                        default_point_type: "basic".into(),
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        }
        assert_eq!(last.operation_types.len(), 3);
        last
    }

    /// A member with `points` accrued (operation id "top-up").
    pub async fn member_with_points(
        &self,
        program: &Program,
        name: &str,
        points: i64,
    ) -> Membership {
        let member = self.member(program, name).await;
        self.client
            .clone()
            .record_operation(operation("top-up", &member, "purchase", points))
            .await
            .unwrap();
        member
    }

    pub async fn member(&self, program: &Program, name: &str) -> Membership {
        let party = self.party(PartyKind::Organization, name).await;
        self.consent_to_loyalty(&party.id).await;
        self.client
            .clone()
            .enroll(EnrollRequest {
                program_id: program.id.clone(),
                party_id: party.id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// For every member account the balance is the sum of its entries and `held` the sum of its
    /// pending holds; every operation's entries, and so the whole ledger, sum to zero.
    /// Every rule of `crm-loyalty verify` holds.
    pub async fn assert_invariants(&self) {
        let mut db = self.loyalty.db().await;
        let findings = crm_loyalty::verify::check(&mut db).await.unwrap();
        assert!(
            findings.is_empty(),
            "ledger invariants broken:\n{}",
            findings.iter().map(ToString::to_string).collect::<String>()
        );
    }
}

/// The gRPC URLs of the services loyalty calls.
struct Peers {
    parties: String,
    consent: String,
}

impl Peers {
    fn of(parties: &TestService, consent: &TestService) -> Self {
        Self {
            parties: format!("http://{}", parties.addr),
            consent: format!("http://{}", consent.addr),
        }
    }
}

async fn start_loyalty(peers: &Peers, database: TestDatabase, broker: Broker) -> TestService {
    let (parties, consent) = (peers.parties.clone(), peers.consent.clone());
    TestService::start_with(&LOYALTY, database, broker, |config| {
        config.peers.insert("parties".into(), parties);
        config.peers.insert("consent".into(), consent);
        // The production defaults: the concurrency test sends 100 calls at once.
        config.grpc.concurrency_limit = 256;
        config.database.max_connections = 10;
    })
    .await
    .unwrap()
}

fn client_of(loyalty: &TestService) -> Loyalty {
    LoyaltyServiceClient::new(
        loyalty.channel(&token("cashier", &["loyalty.read", "loyalty.write"])),
    )
}

pub fn account(membership: &Membership) -> Option<AccountRef> {
    Some(AccountRef {
        membership_id: membership.id.clone(),
        ..Default::default()
    })
}

pub fn operation(
    id: &str,
    membership: &Membership,
    kind: &str,
    points: i64,
) -> RecordOperationRequest {
    RecordOperationRequest {
        operation_id: id.into(),
        account: account(membership),
        operation_type: kind.into(),
        points,
        reference: format!("doc-{id}"),
        card_number: String::new(),
    }
}

pub async fn balance(client: &mut Loyalty, membership: &Membership) -> Balance {
    client
        .get_balance(GetBalanceRequest {
            account: account(membership),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The fields an INVALID_ARGUMENT names, in order.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

pub fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}
