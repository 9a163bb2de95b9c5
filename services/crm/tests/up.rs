//! `crm up` as a new user runs it: the built binary, no configuration, an empty directory. One
//! cross-service flow over gRPC (a party, consent, enrolment, accrual, redemption, then an erasure
//! every service answers),
//! a second `crm up` refused, a stop by SIGTERM that leaves no process behind, and a restart that
//! finds the data kept.
//!
//! It takes the suite's documented ports (50051, 50052, 50054, 50055, 50056, 9051, 9052, 9054, 9055, 9056 and 54320).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crm_proto::crm::{
    common::v1::{PostalAddress, PrivacyRequestType},
    consent::v1::{
        Channel as ConsentChannel, CreatePurposeRequest, Evidence, GetSubjectRequestRequest,
        LegalBasis, OpenSubjectRequestRequest, Purpose, RecordConsentRequest, Subject, SubjectKind,
        SubjectRequestStatus, VerifySubjectRequestRequest,
        consent_service_client::ConsentServiceClient,
    },
    interactions::v1::{
        Channel as InteractionChannel, Direction as InteractionDirection, GetTimelineRequest,
        Interaction, Participant, ParticipantKind, ParticipantRole, RecordInteractionRequest,
        TimelineKind, interactions_service_client::InteractionsServiceClient,
    },
    loyalty::v1::{
        AccountRef, EnrollRequest, GetBalanceRequest, RecordOperationRequest,
        loyalty_service_client::LoyaltyServiceClient,
    },
    parties::v1::{
        ContactPoint, ContactPointKind, CreatePartyRequest, GetPartyRequest, Party, PartyKind,
        PersonName, parties_service_client::PartiesServiceClient,
    },
    rewards::v1::{
        CreateRewardRequest, CreateWarehouseRequest, Delivery, ListRewardsRequest, MovementKind,
        OrderItem, PlaceRewardOrderRequest, RecordStockMovementRequest, Reward, RewardKind,
        RewardOrderStatus, RewardStatus, Warehouse, rewards_service_client::RewardsServiceClient,
    },
};
use crm_testkit::seed::Bearer;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

const CRM: &str = env!("CARGO_BIN_EXE_crm");
const STARTED: &str = "The CRM suite is up";
/// The first start initialises a PostgreSQL cluster and migrates a database per service.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);

/// A running `crm up` and everything it printed.
struct Up {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Up {
    fn start(dir: &Path) -> Self {
        let mut child = crm(dir)
            .arg("up")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting crm up");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                }
            });
        }
        let mut up = Self { child, output };
        let deadline = Instant::now() + START_TIMEOUT;
        while !up.output().contains(STARTED) {
            if let Some(status) = up.child.try_wait().unwrap() {
                panic!("crm up exited ({status}):\n{}", up.output());
            }
            assert!(
                Instant::now() < deadline,
                "crm up did not start:\n{}",
                up.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit; its exit code.
    fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the readers a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.output());
            }
            assert!(
                Instant::now() < deadline,
                "crm up did not stop on SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    /// A failed test still stops the suite as a user would, so that its cluster stops too.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + WAIT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The `crm` binary run in `dir` with none of the suite's settings in its environment.
fn crm(dir: &Path) -> Command {
    let mut command = Command::new(CRM);
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CRM") {
            command.env_remove(name);
        }
    }
    command
}

/// An empty directory the private cluster's owner (`postgres`, when run as root) can enter.
fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crm-up-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chmod").arg("755").arg(&dir).status().unwrap();
    dir
}

type Authed = InterceptedService<Channel, Bearer>;

struct Clients {
    parties: PartiesServiceClient<Authed>,
    consent: ConsentServiceClient<Authed>,
    loyalty: LoyaltyServiceClient<Authed>,
    rewards: RewardsServiceClient<Authed>,
    interactions: InteractionsServiceClient<Authed>,
}

/// Clients of the five services at their documented ports, with the token `crm dev-token` prints.
fn clients(dir: &Path) -> Clients {
    let token = crm(dir).arg("dev-token").output().unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap();
    let bearer = Bearer::new(token.trim());
    let channel = |port: u16| {
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy()
    };
    Clients {
        parties: PartiesServiceClient::with_interceptor(channel(50051), bearer.clone()),
        consent: ConsentServiceClient::with_interceptor(channel(50056), bearer.clone()),
        loyalty: LoyaltyServiceClient::with_interceptor(channel(50054), bearer.clone()),
        rewards: RewardsServiceClient::with_interceptor(channel(50055), bearer.clone()),
        interactions: InteractionsServiceClient::with_interceptor(channel(50052), bearer),
    }
}

/// Processes whose command line names `dir`: the PostgreSQL cluster's, or a `crm` left behind.
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn crm_up_runs_the_whole_suite_with_no_configuration() {
    let dir = fresh_dir();
    let up = Up::start(&dir);
    let mut c = clients(&dir);

    // A second `crm up` on the same directory says so and leaves the first one running.
    let second = crm(&dir).arg("up").output().unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("is running on"), "{said}");

    let person = c
        .parties
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: "Jadwiga".into(),
                    family_name: "Nowakowska".into(),
                }),
                contact_points: vec![ContactPoint {
                    kind: ContactPointKind::Email as i32,
                    value: "jadwiga.nowakowska@example.org".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: "create-jadwiga".into(),
            ..Default::default()
        })
        .await
        .expect("parties answers")
        .into_inner();
    let company = c
        .parties
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Organization as i32,
                display_name: "Acme".into(),
                tax_id: "PL5260250995".into(),
                ..Default::default()
            }),
            request_id: "create-acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    c.consent
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
        .expect("consent answers");
    let subject = Subject {
        kind: SubjectKind::Party as i32,
        id: person.id.clone(),
    };
    c.consent
        .record_consent(RecordConsentRequest {
            subject: Some(subject.clone()),
            purpose: "loyalty_program".into(),
            evidence: Some(Evidence {
                channel: ConsentChannel::InStore as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    let program = crm_testkit::seed::loyalty_club(&mut c.loyalty).await;
    // Loyalty asks parties and consent before it enrols: its peers are wired.
    let membership = c
        .loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: person.id.clone(),
            ..Default::default()
        })
        .await
        .expect("enrolment with consent on record")
        .into_inner();
    let account = AccountRef {
        membership_id: membership.id.clone(),
        ..Default::default()
    };
    c.loyalty
        .record_operation(RecordOperationRequest {
            operation_id: "receipt-7781".into(),
            account: Some(account.clone()),
            operation_type: "purchase".into(),
            points: 120,
            reference: "receipt 7781".into(),
            card_number: String::new(),
        })
        .await
        .unwrap();
    c.loyalty
        .record_operation(RecordOperationRequest {
            operation_id: "reward-cinema".into(),
            account: Some(account.clone()),
            operation_type: "reward_redemption".into(),
            points: 50,
            reference: "cinema ticket".into(),
            card_number: String::new(),
        })
        .await
        .expect("a redemption");
    let balance = c
        .loyalty
        .get_balance(GetBalanceRequest {
            account: Some(account),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.balance, 70);

    // Rewards asks loyalty for the program and for the member's points: its peers are wired.
    let kettle = c
        .rewards
        .create_reward(CreateRewardRequest {
            reward: Some(Reward {
                program_id: program.id.clone(),
                kind: RewardKind::Material as i32,
                status: RewardStatus::Active as i32,
                display_name: "Kettle".into(),
                price_points: 60,
                ..Default::default()
            }),
            request_id: "create-kettle".into(),
        })
        .await
        .expect("rewards answers")
        .into_inner();
    assert_eq!(kettle.point_type, "basic", "the program's first point type");
    let affordable = c
        .rewards
        .list_rewards(ListRewardsRequest {
            affordable_for_membership_id: membership.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        affordable.rewards.len(),
        1,
        "70 points buy a 60-point kettle"
    );
    let store = c
        .rewards
        .create_warehouse(CreateWarehouseRequest {
            warehouse: Some(Warehouse {
                code: "central".into(),
                display_name: "Central".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    c.rewards
        .record_stock_movement(RecordStockMovementRequest {
            reward_id: kettle.id.clone(),
            warehouse_id: store.id,
            kind: MovementKind::Receipt as i32,
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let order = c
        .rewards
        .place_reward_order(PlaceRewardOrderRequest {
            membership_id: membership.id.clone(),
            items: vec![OrderItem {
                reward_id: kettle.id,
                quantity: 1,
            }],
            delivery: Some(Delivery {
                recipient_name: "Jadwiga Nowakowska".into(),
                address: Some(PostalAddress {
                    lines: vec!["ul. Lipowa 3".into()],
                    city: "Kraków".into(),
                    country_code: "PL".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: "order-kettle".into(),
        })
        .await
        .expect("rewards holds the points in loyalty")
        .into_inner();
    assert_eq!(order.status(), RewardOrderStatus::Confirmed);

    // Interactions asks parties whether the client is there: its peer is wired.
    c.interactions
        .record_interaction(RecordInteractionRequest {
            interaction: Some(Interaction {
                channel: InteractionChannel::PhoneCall as i32,
                direction: InteractionDirection::Inbound as i32,
                subject: "Where is my kettle?".into(),
                occur_time: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                participants: vec![Participant {
                    kind: ParticipantKind::Party as i32,
                    id: person.id.clone(),
                    role: ParticipantRole::From as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: "call-jadwiga".into(),
        })
        .await
        .expect("interactions answers");

    // Interactions reads the other services' topics over the in-process broker: the member's
    // timeline shows the call beside the reward order and the points.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kinds: Vec<TimelineKind> = c
            .interactions
            .get_timeline(GetTimelineRequest {
                party_id: person.id.clone(),
                ..Default::default()
            })
            .await
            .expect("interactions answers")
            .into_inner()
            .items
            .iter()
            .map(|item| item.kind())
            .collect();
        let wanted = [
            TimelineKind::Interaction,
            TimelineKind::RewardOrder,
            TimelineKind::Points,
        ];
        if wanted.iter().all(|k| kinds.contains(k)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timeline never showed the order and the points: {kinds:?}\n{}",
            up.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An erasure goes out over the in-process broker and every service that holds personal data
    // answers it.
    let opened = c
        .consent
        .open_subject_request(OpenSubjectRequestRequest {
            r#type: PrivacyRequestType::Erasure as i32,
            subject: Some(subject),
            channel: ConsentChannel::Email as i32,
            details: "Please forget me".into(),
            request_id: "erase-jadwiga".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    c.consent
        .verify_subject_request(VerifySubjectRequestRequest {
            id: opened.id.clone(),
            verified: true,
            method: "ID card shown in store".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let request = c
            .consent
            .get_subject_request(GetSubjectRequestRequest {
                id: opened.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if request.status() == SubjectRequestStatus::Completed {
            break request;
        }
        assert!(
            Instant::now() < deadline,
            "the erasure did not complete: {request:?}\n{}",
            up.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let answered: Vec<(&str, bool)> = done
        .answers
        .iter()
        .map(|a| (a.service.as_str(), a.subject_found))
        .collect();
    assert_eq!(
        answered,
        [
            ("cases", false),
            ("interactions", true),
            ("loyalty", true),
            ("parties", true),
            ("rewards", true)
        ]
    );

    let (code, output) = up.stop();
    assert_eq!(code, Some(0), "crm up exits cleanly on SIGTERM:\n{output}");
    assert!(output.contains("Stopped."), "{output}");
    let left = processes_in(&dir);
    assert!(left.is_empty(), "crm up left processes running: {left:?}");

    // The data is kept across runs.
    let again = Up::start(&dir);
    let mut c = clients(&dir);
    let kept = c
        .parties
        .get_party(GetPartyRequest {
            id: company.id.clone(),
        })
        .await
        .expect("the company is still there")
        .into_inner();
    assert_eq!(kept.display_name, "Acme");
    let (code, output) = again.stop();
    assert_eq!(code, Some(0), "{output}");
    assert!(processes_in(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
