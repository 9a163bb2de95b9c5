//! Data-subject requests carried out across parties, interactions, loyalty and rewards over the
//! privacy topics.

use std::time::Duration;

use crm_e2e::{LOYALTY_PROGRAM, Suite, find_in_database};
use crm_kit::privacy::REQUEST_TOPIC;
use crm_proto::crm::{
    cases::v1::{
        Author, Case, CaseKind, CreateCaseRequest, CreateOfferRequest, CreatePipelineRequest,
        Offer, OfferLine, OpenTicketRequest, Phase, PhaseGroup, Pipeline, RespondToTicketRequest,
        SendOfferRequest, Ticket, TicketType,
    },
    common::v1::{Date, Money, PostalAddress, PrivacyRequestType},
    consent::v1::{
        Channel, GetExportBundleRequest, GetSubjectRequestRequest, ListAuditLogRequest,
        OpenSubjectRequestRequest, Subject, SubjectKind, SubjectRequest, SubjectRequestStatus,
        VerifySubjectRequestRequest,
    },
    interactions::v1::{
        AddNoteRequest, Channel as InteractionChannel, CreateTaskRequest,
        Direction as InteractionDirection, ImportEmailRequest, Interaction, Note,
        Participant as InteractionParticipant, ParticipantKind, ParticipantRole,
        RecordInteractionRequest, Task,
    },
    loyalty::v1::{AccountRef, EnrollRequest, GetBalanceRequest, RecordOperationRequest},
    parties::v1::{
        ContactPoint, ContactPointKind, CreatePartyRequest, GetPartyRequest, Party, PartyKind,
        PersonName, UpdatePersonRequest,
    },
    rewards::v1::{
        CreateRewardRequest, CreateWarehouseRequest, Delivery, ListRewardOrdersRequest,
        MovementKind, OrderItem, PlaceRewardOrderRequest, RecordStockMovementRequest, Reward,
        RewardKind, RewardOrderStatus, RewardStatus, Warehouse,
    },
};
use crm_testkit::{eventually, read_topic};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(60);

/// What identifies the subject; none of it may survive an erasure.
const GIVEN: &str = "Bożydar";
const FAMILY: &str = "Przybyszewski-Kwiatkowski";
const EMAIL: &str = "bozydar.przybyszewski@example.org";
const PHONE: &str = "+48601234567";
const STREET: &str = "ul. Jaśminowa 17/4";
const BIRTHDAY: &str = "1984-07-19";
/// Someone else on the member's call: theirs, not the member's, in an export.
const WITNESS: &str = "witold.swiadek@example.net";
/// In an attachment of the member's e-mail, kept by interactions.
const PASSPORT: &str = "passport ZX9876543";

/// A consumer with contacts, an address and a birthday, enrolled in a loyalty program with points,
/// who ordered a reward to be sent home.
struct Member {
    party: Party,
    membership_id: String,
    /// The call that created the party, with a request id (its reply is stored for replays).
    create: CreatePartyRequest,
}

async fn member(suite: &Suite) -> Member {
    let mut parties = suite.parties_client();
    let create = CreatePartyRequest {
        party: Some(Party {
            kind: PartyKind::Person as i32,
            person_name: Some(PersonName {
                given_name: GIVEN.into(),
                family_name: FAMILY.into(),
            }),
            contact_points: vec![
                ContactPoint {
                    kind: ContactPointKind::Email as i32,
                    value: EMAIL.into(),
                    ..Default::default()
                },
                ContactPoint {
                    kind: ContactPointKind::Phone as i32,
                    value: PHONE.into(),
                    ..Default::default()
                },
            ],
            addresses: vec![PostalAddress {
                lines: vec![STREET.into()],
                postal_code: "00-950".into(),
                city: "Warszawa".into(),
                country_code: "PL".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        request_id: format!("create-{}", uuid::Uuid::now_v7()),
        ..Default::default()
    };
    let party = parties
        .create_party(create.clone())
        .await
        .unwrap()
        .into_inner();
    parties
        .update_person(UpdatePersonRequest {
            person: Some(crm_proto::crm::parties::v1::Person {
                id: party.person_id.clone(),
                birthday: Some(Date {
                    year: 1984,
                    month: 7,
                    day: 19,
                }),
                remarks: format!("prefers calls; {GIVEN} has a dog"),
                ..Default::default()
            }),
            update_mask: Some(prost_types_mask(&["birthday", "remarks"])),
            ..Default::default()
        })
        .await
        .unwrap();

    suite.loyalty_purpose().await;
    suite.consent_to(&party.id, LOYALTY_PROGRAM, true).await;
    let program = suite.loyalty_program().await;
    let mut loyalty = suite.loyalty_client();
    let membership = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    loyalty
        .record_operation(RecordOperationRequest {
            operation_id: format!("purchase-{}", membership.id),
            account: Some(account(&membership.id)),
            operation_type: "purchase".into(),
            points: 120,
            reference: "receipt 7781".into(),
            card_number: String::new(),
        })
        .await
        .unwrap();
    order_a_kettle(suite, &program.id, &membership.id).await;
    call_about_points(suite, &party.id).await;
    write_about_points(suite).await;
    sell_a_fridge(suite, &party.id).await;
    Member {
        create,
        party,
        membership_id: membership.id,
    }
}

/// A sales case about the member, in words that name them.
async fn sell_a_fridge(suite: &Suite, party_id: &str) {
    let mut cases = suite.cases_client();
    let pipeline = cases
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "Sales".into(),
                phases: [
                    ("lead", PhaseGroup::Potential),
                    ("won", PhaseGroup::Won),
                    ("lost", PhaseGroup::Lost),
                ]
                .into_iter()
                .map(|(code, group)| Phase {
                    code: code.into(),
                    group: group as i32,
                    ..Default::default()
                })
                .collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("creating a pipeline")
        .into_inner();
    cases
        .create_case(CreateCaseRequest {
            case: Some(Case {
                pipeline_id: pipeline.id,
                title: format!("{GIVEN} {FAMILY} wants a fridge"),
                description: format!("Deliver to {STREET}"),
                kind: CaseKind::Sales as i32,
                owner: "agent".into(),
                party_id: party_id.into(),
                expected_value: Some(Money {
                    amount: "2499.00".into(),
                    currency_code: "PLN".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("opening a case");
    // And an offer for it, sent, with a free-text line and notes that name the member.
    let mut offers = suite.offers_client();
    let offer = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                party_id: party_id.into(),
                title: format!("Fridge for {GIVEN} {FAMILY}"),
                currency_code: "PLN".into(),
                notes: format!("Deliver to {STREET}"),
                ..Default::default()
            }),
            lines: vec![OfferLine {
                description: format!("Carry it up to {FAMILY}'s flat"),
                quantity: "1".into(),
                unit_price: "80".into(),
                tax_code: "23".into(),
                tax_percent: "23".into(),
                ..Default::default()
            }],
            request_id: format!("offer-for-{party_id}"),
            ..Default::default()
        })
        .await
        .expect("making an offer")
        .into_inner();
    offers
        .send_offer(SendOfferRequest {
            id: offer.id,
            ..Default::default()
        })
        .await
        .expect("sending the offer");
    // And a complaint, with the member's own words.
    let mut desk = suite.desk_client();
    let ticket = desk
        .open_ticket(OpenTicketRequest {
            ticket: Some(Ticket {
                r#type: TicketType::Complaint as i32,
                subject: format!("{GIVEN} {FAMILY}: the fridge hums"),
                description: format!("Call {PHONE}"),
                party_id: party_id.into(),
                order_reference: format!("ZAM/{FAMILY}"),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("opening a ticket")
        .into_inner();
    desk.respond_to_ticket(RespondToTicketRequest {
        id: ticket.id,
        author: Author::Customer as i32,
        text: format!("I am home at {STREET} after five."),
        ..Default::default()
    })
    .await
    .expect("the member's reply");
}

/// The member wrote too, with a scan attached; the message was imported with a request id (its
/// reply, which names the member, is stored for replays).
async fn write_about_points(suite: &Suite) {
    let raw = format!(
        "From: {GIVEN} {FAMILY} <{EMAIL}>\r\nTo: points@ourco.example\r\n\
         Subject: {GIVEN}'s points\r\nDate: Tue, 03 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <points-{GIVEN}@example.org>\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI live at {STREET}.\r\n\
         --b\r\nContent-Type: text/plain; name=scan.txt\r\n\
         Content-Disposition: attachment; filename=scan.txt\r\n\r\n{PASSPORT}\r\n--b--\r\n"
    );
    let imported = suite
        .interactions_client()
        .import_email(ImportEmailRequest {
            raw_message: raw.into_bytes(),
            own_addresses: vec!["points@ourco.example".into()],
            request_id: "import-points-mail".into(),
            ..Default::default()
        })
        .await
        .expect("importing the member's e-mail")
        .into_inner();
    let attachments = imported.interaction.unwrap().attachments;
    assert!(attachments[0].content_stored, "{attachments:?}");
}

/// The member called about their points; the agent noted something about them.
async fn call_about_points(suite: &Suite, party_id: &str) {
    let mut interactions = suite.interactions_client();
    let call = interactions
        .record_interaction(RecordInteractionRequest {
            interaction: Some(Interaction {
                channel: InteractionChannel::PhoneCall as i32,
                direction: InteractionDirection::Inbound as i32,
                subject: format!("{GIVEN} asks about points"),
                body: format!("Wants the statement sent to {EMAIL}"),
                occur_time: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                participants: vec![
                    InteractionParticipant {
                        kind: ParticipantKind::Party as i32,
                        id: party_id.into(),
                        role: ParticipantRole::From as i32,
                        address: PHONE.into(),
                        display_name: format!("{GIVEN} {FAMILY}"),
                    },
                    InteractionParticipant {
                        kind: ParticipantKind::External as i32,
                        role: ParticipantRole::Attendee as i32,
                        address: WITNESS.into(),
                        display_name: "Witold Świadek".into(),
                        ..Default::default()
                    },
                ],
                dialled_number: PHONE.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("recording a call")
        .into_inner();
    interactions
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: party_id.into(),
                interaction_id: call.id,
                text: format!("{GIVEN} has a dog; call after 5 pm"),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("adding a note");
    interactions
        .create_task(CreateTaskRequest {
            task: Some(Task {
                title: format!("Send {GIVEN} the statement"),
                assignee: "agent".into(),
                party_id: party_id.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("creating a task");
}

/// A kettle for 100 points, sent to the member's home.
async fn order_a_kettle(suite: &Suite, program_id: &str, membership_id: &str) {
    let mut rewards = suite.rewards_client();
    let kettle = rewards
        .create_reward(CreateRewardRequest {
            reward: Some(Reward {
                program_id: program_id.into(),
                kind: RewardKind::Material as i32,
                status: RewardStatus::Active as i32,
                display_name: "Kettle".into(),
                price_points: 100,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let store = rewards
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
    rewards
        .record_stock_movement(RecordStockMovementRequest {
            reward_id: kettle.id.clone(),
            warehouse_id: store.id,
            kind: MovementKind::Receipt as i32,
            quantity: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    rewards
        .place_reward_order(PlaceRewardOrderRequest {
            membership_id: membership_id.into(),
            items: vec![OrderItem {
                reward_id: kettle.id,
                quantity: 1,
            }],
            delivery: Some(Delivery {
                recipient_name: format!("{GIVEN} {FAMILY}"),
                address: Some(PostalAddress {
                    lines: vec![STREET.into()],
                    postal_code: "00-950".into(),
                    city: "Warszawa".into(),
                    country_code: "PL".into(),
                    ..Default::default()
                }),
                email: EMAIL.into(),
                phone: PHONE.into(),
            }),
            request_id: format!("kettle-{membership_id}"),
        })
        .await
        .expect("ordering a kettle");
}

fn subject(party: &Party) -> Subject {
    Subject {
        kind: SubjectKind::Party as i32,
        id: party.id.clone(),
    }
}

fn account(membership_id: &str) -> AccountRef {
    AccountRef {
        membership_id: membership_id.into(),
        ..Default::default()
    }
}

fn prost_types_mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

/// Opens a request for the party and verifies the subject's identity, which sends it out.
/// The request as the subject wrote it, in their own words.
fn open_request(party: &Party, kind: PrivacyRequestType) -> OpenSubjectRequestRequest {
    OpenSubjectRequestRequest {
        r#type: kind as i32,
        subject: Some(subject(party)),
        channel: Channel::Email as i32,
        details: format!("I am {GIVEN} {FAMILY}, write to {EMAIL} or call {PHONE}"),
        request_id: format!("open-{kind:?}-{}", party.id),
        ..Default::default()
    }
}

async fn open_verified(suite: &Suite, party: &Party, kind: PrivacyRequestType) -> SubjectRequest {
    let mut consent = suite.consent_client();
    let opened = consent
        .open_subject_request(open_request(party, kind))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.status(), SubjectRequestStatus::Received);
    let verified = consent
        .verify_subject_request(VerifySubjectRequestRequest {
            id: opened.id.clone(),
            verified: true,
            method: "ID card shown in store".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.status(), SubjectRequestStatus::InProgress);
    verified
}

async fn completed(suite: &Suite, id: &str) -> SubjectRequest {
    let consent = suite.consent_client();
    eventually(WAIT, || {
        let mut consent = consent.clone();
        async move {
            let request = consent
                .get_subject_request(GetSubjectRequestRequest { id: id.into() })
                .await
                .ok()?
                .into_inner();
            (request.status() == SubjectRequestStatus::Completed).then_some(request)
        }
    })
    .await
    .expect("the request completes")
}

#[tokio::test]
async fn erasure_completes_after_both_services_answer_and_leaves_no_personal_data() {
    let suite = Suite::start().await.unwrap();
    let member = member(&suite).await;
    for needle in [GIVEN, FAMILY, EMAIL, PHONE, STREET, BIRTHDAY] {
        let found = find_in_database(&mut suite.parties_db().await, needle)
            .await
            .unwrap();
        assert!(
            !found.is_empty(),
            "the scan finds {needle} before the erasure"
        );
    }

    let request = open_verified(&suite, &member.party, PrivacyRequestType::Erasure).await;
    let done = completed(&suite, &request.id).await;

    let answers: Vec<_> = done
        .answers
        .iter()
        .map(|a| (a.service.as_str(), a.answered))
        .collect();
    assert_eq!(
        answers,
        [
            ("cases", true),
            ("interactions", true),
            ("loyalty", true),
            ("parties", true),
            ("rewards", true)
        ]
    );
    for answer in &done.answers {
        assert!(answer.subject_found, "{} knew the subject", answer.service);
        assert!(
            !answer.erased.is_empty(),
            "{} says what it erased",
            answer.service
        );
    }
    let loyalty = done
        .answers
        .iter()
        .find(|a| a.service == "loyalty")
        .unwrap();
    assert!(
        loyalty
            .retained
            .iter()
            .any(|r| r.description.contains("ledger entries")),
        "loyalty keeps the ledger by law: {:?}",
        loyalty.retained
    );

    // Nothing that identifies the person is left in any database, stored replies included.
    for needle in [
        GIVEN,
        FAMILY,
        EMAIL,
        PHONE,
        STREET,
        BIRTHDAY,
        "has a dog",
        PASSPORT,
        WITNESS,
    ] {
        for (service, mut db) in [
            ("parties", suite.parties_db().await),
            ("loyalty", suite.loyalty_db().await),
            ("rewards", suite.rewards_db().await),
            ("interactions", suite.interactions_db().await),
            ("cases", suite.cases_db().await),
            ("consent", suite.consent.db().await),
        ] {
            let found = find_in_database(&mut db, needle).await.unwrap();
            assert!(found.is_empty(), "{needle} still in {service}: {found:?}");
        }
    }
    // Nothing more is recorded about the subject, whatever parties still answers about them.
    let after = suite
        .interactions_client()
        .record_interaction(RecordInteractionRequest {
            interaction: Some(Interaction {
                channel: InteractionChannel::PhoneCall as i32,
                direction: InteractionDirection::Inbound as i32,
                occur_time: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                participants: vec![InteractionParticipant {
                    kind: ParticipantKind::Party as i32,
                    id: member.party.id.clone(),
                    role: ParticipantRole::From as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            after.code(),
            Code::FailedPrecondition | Code::InvalidArgument
        ),
        "{after:?}"
    );
    // Replaying the request that opened the erasure cannot bring the subject's words back.
    let replay = suite
        .consent_client()
        .open_subject_request(open_request(&member.party, PrivacyRequestType::Erasure))
        .await
        .unwrap_err();
    assert_eq!(
        replay.get_details_error_info().map(|i| i.reason),
        Some("REQUEST_ERASED".into()),
        "{replay:?}"
    );
    // Loyalty's ledger is kept, but no longer leads to the party.
    let mut loyalty_db = suite.loyalty_db().await;
    let linked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE party_id = $1::uuid")
            .bind(&member.party.id)
            .fetch_one(&mut loyalty_db)
            .await
            .unwrap();
    assert_eq!(linked, 0);
    let balance = suite
        .loyalty_client()
        .get_balance(GetBalanceRequest {
            account: Some(account(&member.membership_id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.balance, 120);

    // The kettle cannot be delivered to no one: its order is cancelled and its points let go.
    let rewards = suite.rewards_client();
    let cancelled = eventually(WAIT, || {
        let mut rewards = rewards.clone();
        let membership_id = member.membership_id.clone();
        async move {
            let orders = rewards
                .list_reward_orders(ListRewardOrdersRequest {
                    membership_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .orders;
            (orders[0].status() == RewardOrderStatus::Cancelled).then(|| orders[0].clone())
        }
    })
    .await
    .expect("the order is cancelled");
    assert!(cancelled.delivery.unwrap().address.is_none());
    assert_eq!(cancelled.party_id.len(), 36, "a pseudonym");
    assert_ne!(cancelled.party_id, member.party.id);

    // The party's id still resolves, to an anonymous record.
    let party = suite
        .parties_client()
        .get_party(GetPartyRequest {
            id: member.party.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(party.contact_points.is_empty() && party.addresses.is_empty());
    assert!(!party.display_name.contains(FAMILY));
    // A replay of the call that created it cannot bring the data back.
    let replay = suite
        .parties_client()
        .create_party(member.create.clone())
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition, "{replay:?}");
    assert_eq!(
        replay.get_details_error_info().map(|i| i.reason),
        Some("REQUEST_ERASED".into())
    );

    // Parties tells downstream systems.
    let erased = read_topic(
        &suite.broker.brokers(),
        crm_parties::events::PARTY.name,
        100,
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.headers.get("ce_type").map(String::as_str) == Some("crm.parties.v1.PartyErased"))
    .count();
    assert_eq!(erased, 1);

    // Every step is in the audit log, the answers before the completion.
    let actions: Vec<String> = suite
        .consent_client()
        .list_audit_log(ListAuditLogRequest {
            subject: Some(subject(&member.party)),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .rev()
        .map(|e| e.action)
        .filter(|a| a.starts_with("request."))
        .collect();
    // (A slow answer may add a re-send after the first publication.)
    assert_eq!(
        actions[..3],
        ["request.opened", "request.verified", "request.published"]
    );
    assert_eq!(
        actions.last().map(String::as_str),
        Some("request.completed")
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "request.answered").count(),
        5,
        "parties, interactions, cases, loyalty and rewards"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn export_bundle_holds_every_services_part() {
    let suite = Suite::start().await.unwrap();
    let member = member(&suite).await;
    let request = open_verified(&suite, &member.party, PrivacyRequestType::Portability).await;
    completed(&suite, &request.id).await;

    let mut stream = suite
        .consent_client()
        .get_export_bundle(GetExportBundleRequest {
            id: request.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend(chunk.data);
    }
    let bundle: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(bundle["request_id"], request.id.as_str());
    assert_eq!(bundle["subject"]["id"], member.party.id.as_str());
    let parties = &bundle["parts"]["parties"]["tables"];
    assert_eq!(parties["parties"][0]["family_name"], FAMILY);
    assert!(
        parties["parties"][0]["contact_points"]
            .to_string()
            .contains(EMAIL)
    );
    assert_eq!(parties["persons"][0]["birthday"], BIRTHDAY);
    let loyalty = &bundle["parts"]["loyalty"]["tables"];
    assert_eq!(
        loyalty["memberships"][0]["id"],
        member.membership_id.as_str()
    );
    assert_eq!(loyalty["operations"][0]["points"], 120);
    let consent = &bundle["parts"]["consent"]["tables"];
    assert_eq!(consent["consent_records"][0]["purpose"], "loyalty_program");
    let interactions = &bundle["parts"]["interactions"]["tables"];
    let call = interactions["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["channel"] == "phone_call")
        .unwrap();
    assert_eq!(
        call["participants"][0]["address"], PHONE,
        "the member's own"
    );
    assert!(
        !interactions.to_string().contains(WITNESS),
        "another person's address is theirs: {call}"
    );
    assert!(
        interactions["interactions"][0]["subject"]
            .as_str()
            .unwrap()
            .contains(GIVEN)
    );
    assert!(
        interactions["notes"][0]["text"]
            .as_str()
            .unwrap()
            .contains("dog")
    );
    let rewards = &bundle["parts"]["rewards"]["tables"];
    assert_eq!(rewards["reward_orders"][0]["address"]["lines"][0], STREET);
    assert_eq!(rewards["reward_order_items"][0]["display_name"], "Kettle");

    // Nothing was changed by the export.
    let party = suite
        .parties_client()
        .get_party(GetPartyRequest {
            id: member.party.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(party.contact_points.len(), 2);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_service_down_when_the_request_goes_out_answers_when_back() {
    let mut suite = Suite::start().await.unwrap();
    let member = member(&suite).await;
    suite.stop_loyalty().await.unwrap();

    let request = open_verified(&suite, &member.party, PrivacyRequestType::Erasure).await;
    let consent = suite.consent_client();
    // Parties answers; loyalty is down, so the request waits for it, sent again meanwhile.
    let waiting = eventually(WAIT, || {
        let mut consent = consent.clone();
        let id = request.id.clone();
        async move {
            let request = consent
                .get_subject_request(GetSubjectRequestRequest { id })
                .await
                .ok()?
                .into_inner();
            let loyalty = request.answers.iter().find(|a| a.service == "loyalty")?;
            let parties = request.answers.iter().find(|a| a.service == "parties")?;
            (parties.answered && loyalty.attempts >= 2).then_some(request)
        }
    })
    .await
    .expect("parties answers and loyalty is asked again");
    assert_eq!(waiting.status(), SubjectRequestStatus::InProgress);
    assert!(
        !waiting
            .answers
            .iter()
            .find(|a| a.service == "loyalty")
            .unwrap()
            .answered
    );

    suite.start_loyalty().await.unwrap();
    let done = completed(&suite, &request.id).await;
    assert!(done.answers.iter().all(|a| a.answered));
    let linked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE party_id = $1::uuid")
            .bind(&member.party.id)
            .fetch_one(&mut suite.loyalty_db().await)
            .await
            .unwrap();
    assert_eq!(linked, 0);
    // Loyalty read the first request and its re-sends: it erased once and answered each.
    let erasures: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_privacy_receipts")
        .fetch_one(&mut suite.loyalty_db().await)
        .await
        .unwrap();
    assert_eq!(erasures, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_delivered_twice_is_carried_out_once() {
    let suite = Suite::start().await.unwrap();
    let member = member(&suite).await;
    let request = open_verified(&suite, &member.party, PrivacyRequestType::Erasure).await;
    completed(&suite, &request.id).await;
    let version = |db: sqlx::PgConnection| {
        let id = member.party.id.clone();
        async move {
            let mut db = db;
            sqlx::query_scalar::<_, i64>("SELECT version FROM parties WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&mut db)
                .await
                .unwrap()
        }
    };
    let before = version(suite.parties_db().await).await;

    // The same request record again, as a redelivery or a producer retry would bring it.
    let brokers = suite.broker.brokers();
    let published = read_topic(&brokers, REQUEST_TOPIC, 1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for ce_id in [
        published.headers["ce_id"].clone(),
        "a-new-delivery-id".to_owned(),
    ] {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "ce_id",
            value: Some(ce_id.as_str()),
        });
        let record = rdkafka::producer::FutureRecord::to(REQUEST_TOPIC)
            .key(published.key.as_deref().unwrap_or_default())
            .payload(&published.payload)
            .headers(headers);
        producer.send(record, Duration::from_secs(5)).await.unwrap();
    }

    // Parties answers the new delivery (the receipt it gave before) and skips the known one.
    let receipts = eventually(WAIT, || {
        let brokers = brokers.clone();
        async move {
            let receipts = read_topic(
                &brokers,
                crm_kit::privacy::RECEIPT_TOPIC,
                10,
                Duration::from_secs(2),
            )
            .await
            .ok()?;
            let from_parties: Vec<_> = receipts
                .into_iter()
                .map(|r| {
                    crm_proto::crm::common::v1::PrivacyReceipt::decode(r.payload.as_slice())
                        .unwrap()
                })
                .filter(|r| r.service == "parties")
                .collect();
            (from_parties.len() == 2).then_some(from_parties)
        }
    })
    .await
    .expect("parties answers the second delivery");
    assert_eq!(receipts[0].erased, receipts[1].erased);
    assert_eq!(
        version(suite.parties_db().await).await,
        before,
        "the party was not touched again"
    );
    let erased = read_topic(
        &brokers,
        crm_parties::events::PARTY.name,
        100,
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.headers.get("ce_type").map(String::as_str) == Some("crm.parties.v1.PartyErased"))
    .count();
    assert_eq!(erased, 1, "one erased event");
    let request = suite
        .consent_client()
        .get_subject_request(GetSubjectRequestRequest { id: request.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(request.status(), SubjectRequestStatus::Completed);
    suite.stop().await.unwrap();
}
