//! The parties service through its public gRPC API, against real PostgreSQL and a real
//! Kafka-protocol broker (tansu).

// `assert_eq!(ids, [id.clone()])` reads as the list a user expects; `slice::from_ref` would not.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crm_kit::app::Service;
use std::time::Duration;

use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    common::v1::{Date, PostalAddress},
    parties::v1::{parties_service_client::PartiesServiceClient, *},
};
use crm_testkit::{TestService, read_topic, token};
use prost::Message;
use prost_types::FieldMask;
use sqlx::Row;
use tonic::Code;
use tonic_types::StatusExt;

const PARTIES: Service = crm_parties::SERVICE;

type Client = PartiesServiceClient<TracedChannel>;

async fn start() -> (TestService, Client) {
    let service = TestService::start(&PARTIES)
        .await
        .expect("starting the parties service");
    let client = PartiesServiceClient::new(
        service.channel(&token("tester", &["parties.read", "parties.write"])),
    );
    (service, client)
}

fn organization(name: &str) -> Party {
    Party {
        kind: PartyKind::Organization as i32,
        display_name: name.into(),
        ..Default::default()
    }
}

fn natural_person(given: &str, family: &str) -> Party {
    Party {
        kind: PartyKind::Person as i32,
        person_name: Some(PersonName {
            given_name: given.into(),
            family_name: family.into(),
        }),
        ..Default::default()
    }
}

fn contact(kind: ContactPointKind, value: &str) -> ContactPoint {
    ContactPoint {
        kind: kind as i32,
        value: value.into(),
        ..Default::default()
    }
}

async fn create(client: &mut Client, party: Party) -> Party {
    client
        .create_party(CreatePartyRequest {
            party: Some(party),
            ..Default::default()
        })
        .await
        .expect("CreateParty")
        .into_inner()
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries a BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn create_get_update_and_list_parties() {
    let (_service, mut client) = start().await;
    let acme = create(
        &mut client,
        Party {
            tax_id: "526-025-09-95".into(),
            tags: vec!["vip".into(), "vip".into(), "wholesale".into()],
            contact_points: vec![
                ContactPoint {
                    preferred: true,
                    ..contact(ContactPointKind::Email, "Office@Acme.PL")
                },
                contact(ContactPointKind::Phone, "+48 601 234 567"),
            ],
            addresses: vec![PostalAddress {
                lines: vec!["ul. Prosta 1".into()],
                postal_code: "00-001".into(),
                city: "Warszawa".into(),
                country_code: "pl".into(),
                ..Default::default()
            }],
            ..organization("Acme Trading")
        },
    )
    .await;
    assert_eq!(acme.tax_id, "PL5260250995");
    assert_eq!(acme.tags, ["vip", "wholesale"]);
    assert_eq!(acme.contact_points[0].value, "office@acme.pl");
    assert_eq!(acme.contact_points[1].value, "+48601234567");
    assert_eq!(acme.addresses[0].country_code, "PL");
    assert_eq!(acme.status(), PartyStatus::Active);
    assert_eq!(acme.audit.as_ref().unwrap().created_by, "tester");

    let fetched = client
        .get_party(GetPartyRequest {
            id: acme.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, acme);

    let renamed = client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: acme.id.clone(),
                etag: acme.etag.clone(),
                ..organization("Acme Trading S.A.")
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "Acme Trading S.A.");
    assert_eq!(renamed.tax_id, acme.tax_id, "fields outside the mask stay");
    assert_ne!(renamed.etag, acme.etag);

    let stale = client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: acme.id.clone(),
                etag: acme.etag.clone(),
                ..organization("Lost update")
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    for name in ["Beta", "Gamma", "Delta"] {
        create(
            &mut client,
            Party {
                tags: vec!["wholesale".into()],
                ..organization(name)
            },
        )
        .await;
    }
    create(&mut client, natural_person("Jan", "Kowalski")).await;

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_parties(ListPartiesRequest {
                page_size: 2,
                page_token: page_token.clone(),
                kind: PartyKind::Organization as i32,
                tag: "wholesale".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.parties.len() <= 2);
        seen.extend(page.parties.into_iter().map(|p| p.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["Acme Trading S.A.", "Beta", "Gamma", "Delta"]);

    let archived = client
        .archive_party(ArchivePartyRequest {
            id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.status(), PartyStatus::Archived);
    let listed = client
        .list_parties(ListPartiesRequest {
            status: PartyStatus::Archived as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.parties.len(), 1);
    let refused = client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: acme.id.clone(),
                ..organization("Zombie")
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn validation_names_every_bad_field_and_writes_nothing() {
    let (service, mut client) = start().await;
    let status = client
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Organization as i32,
                display_name: "  ".into(),
                tax_id: "5260250996".into(),
                contact_points: vec![
                    contact(ContactPointKind::Email, "not-an-email"),
                    contact(ContactPointKind::Phone, "601 234 567"),
                ],
                addresses: vec![PostalAddress {
                    city: "Berlin".into(),
                    country_code: "Germany".into(),
                    ..Default::default()
                }],
                person_name: Some(PersonName {
                    given_name: "Jan".into(),
                    family_name: String::new(),
                }),
                ..Default::default()
            }),
            base_ids: vec!["nope".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&status),
        [
            "party.display_name",
            "party.person_name",
            "party.tax_id",
            "party.contact_points[0].value",
            "party.contact_points[1].value",
            "party.addresses[0].country_code",
            "base_ids[0]",
        ]
    );

    let status = client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: "not-a-uuid".into(),
                ..Default::default()
            }),
            update_mask: mask(&["colour"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["party.id", "update_mask"]);

    let mut db = service.db().await;
    let parties: i64 = sqlx::query_scalar("SELECT count(*) FROM parties")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_outbox")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!((parties, events), (0, 0));

    let missing = client
        .get_party(GetPartyRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_replayed_request_id_returns_the_first_answer_once() {
    let (service, mut client) = start().await;
    let request = CreatePartyRequest {
        party: Some(organization("Replay Ltd")),
        request_id: "3f1c9a52-create-replay".into(),
        ..Default::default()
    };
    let first = client
        .create_party(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client
        .create_party(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);

    let mut db = service.db().await;
    let parties: i64 = sqlx::query_scalar("SELECT count(*) FROM parties")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM crm_outbox WHERE event_type = 'crm.parties.v1.PartyCreated'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((parties, events), (1, 1));

    let reused = client
        .create_party(CreatePartyRequest {
            party: Some(organization("Someone else")),
            ..request
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(
        reused.get_details_error_info().unwrap().reason,
        "REQUEST_ID_REUSED"
    );
}

#[tokio::test]
async fn calls_need_a_token_with_the_right_scope_but_health_does_not() {
    let service = TestService::start(&PARTIES).await.unwrap();
    let get = GetPartyRequest {
        id: uuid::Uuid::now_v7().to_string(),
    };

    let mut anonymous = PartiesServiceClient::new(service.channel(""));
    let status = anonymous.get_party(get.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut forged =
        PartiesServiceClient::new(service.channel("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"));
    assert_eq!(
        forged.get_party(get.clone()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut reader =
        PartiesServiceClient::new(service.channel(&token("reader", &["parties.read"])));
    let status = reader
        .create_party(CreatePartyRequest {
            party: Some(organization("Nope")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Permission is checked before existence: the reader may read, and learns the party is missing.
    assert_eq!(
        reader.get_party(get.clone()).await.unwrap_err().code(),
        Code::NotFound
    );

    let mut other_service =
        PartiesServiceClient::new(service.channel(&token("x", &["loyalty.read"])));
    assert_eq!(
        other_service.get_party(get).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(service.channel(""));
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "crm.parties.v1.PartiesService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn each_event_reaches_its_topic_once_with_cloudevents_headers() {
    let (service, mut client) = start().await;
    let party = create(&mut client, organization("Evented")).await;
    client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: party.id.clone(),
                tags: vec!["new".into()],
                ..Default::default()
            }),
            update_mask: mask(&["tags"]),
            ..Default::default()
        })
        .await
        .unwrap();

    // Ask for more than expected: a duplicate would show up here.
    let records = read_topic(
        &service.broker.brokers(),
        "crm.parties.party.v1",
        3,
        Duration::from_secs(8),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let types: Vec<&str> = records
        .iter()
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["crm.parties.v1.PartyCreated", "crm.parties.v1.PartyUpdated"]
    );
    for record in &records {
        assert_eq!(record.key.as_deref(), Some(party.id.as_str()));
        assert_eq!(record.headers["ce_specversion"], "1.0");
        assert_eq!(record.headers["ce_source"], "/crm/parties");
        assert_eq!(record.headers["ce_subject"], party.id);
        assert_eq!(record.headers["content-type"], "application/protobuf");
        assert!(uuid::Uuid::parse_str(&record.headers["ce_id"]).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(&record.headers["ce_time"]).is_ok());
        assert!(record.headers["traceparent"].starts_with("00-"));
    }
    let created = PartyCreated::decode(records[0].payload.as_slice()).unwrap();
    assert_eq!(
        (created.party_id.as_str(), created.kind()),
        (party.id.as_str(), PartyKind::Organization)
    );
    let updated = PartyUpdated::decode(records[1].payload.as_slice()).unwrap();
    assert_eq!(updated.changed_fields, ["tags"]);

    let persons = read_topic(
        &service.broker.brokers(),
        "crm.parties.person.v1",
        1,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert!(persons.is_empty(), "an organization has no person record");
}

#[tokio::test]
async fn writes_succeed_while_kafka_is_down_and_events_follow_when_it_returns() {
    let (mut service, mut client) = start().await;
    let before = create(&mut client, organization("Before the outage")).await;
    let early = read_topic(
        &service.broker.brokers(),
        "crm.parties.party.v1",
        1,
        Duration::from_secs(8),
    )
    .await
    .unwrap();
    assert_eq!(early.len(), 1);

    service.broker.stop().await;
    let mut during = Vec::new();
    for name in ["During outage 1", "During outage 2", "During outage 3"] {
        during.push(create(&mut client, organization(name)).await.id);
    }
    // One party changed twice more: its three events must arrive in the order they happened.
    let changed = during[0].clone();
    for tag in ["first", "second"] {
        client
            .update_party(UpdatePartyRequest {
                party: Some(Party {
                    id: changed.clone(),
                    tags: vec![tag.into()],
                    ..Default::default()
                }),
                update_mask: mask(&["tags"]),
                ..Default::default()
            })
            .await
            .expect("writes succeed while Kafka is down");
    }
    service.broker.restart().await.unwrap();

    // The restarted broker kept nothing (memory storage): everything it now has, the relay re-sent.
    let records = read_topic(
        &service.broker.brokers(),
        "crm.parties.party.v1",
        6,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(
        records.len(),
        5,
        "every event written during the outage arrives once"
    );
    let mut keys: Vec<String> = records.iter().filter_map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    during.sort();
    assert_eq!(keys, during);
    assert!(
        !keys.contains(&before.id),
        "events published before the outage are not sent again"
    );

    // Order holds per key (partition), which is what consumers rely on.
    let history: Vec<&str> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some(changed.as_str()))
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(
        history,
        [
            "crm.parties.v1.PartyCreated",
            "crm.parties.v1.PartyUpdated",
            "crm.parties.v1.PartyUpdated"
        ]
    );
}

#[tokio::test]
async fn search_by_fuzzy_name_tax_id_email_and_phone() {
    let (_service, mut client) = start().await;
    let jan = create(
        &mut client,
        Party {
            contact_points: vec![contact(ContactPointKind::Email, "jan@kowalski.pl")],
            ..natural_person("Jan", "Kowalski")
        },
    )
    .await;
    let acme = create(
        &mut client,
        Party {
            tax_id: "PL5260250995".into(),
            contact_points: vec![contact(ContactPointKind::Phone, "+48 22 111 22 33")],
            ..organization("Acme Trading Sp. z o.o.")
        },
    )
    .await;
    create(&mut client, organization("Nowak Logistics")).await;

    let search = |req: SearchPartiesRequest| {
        let mut client = client.clone();
        async move {
            client
                .search_parties(req)
                .await
                .unwrap()
                .into_inner()
                .parties
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        search(SearchPartiesRequest {
            name: "Kowalsky".into(),
            ..Default::default()
        })
        .await,
        [jan.id.clone()]
    );
    assert_eq!(
        search(SearchPartiesRequest {
            name: "acme trading".into(),
            ..Default::default()
        })
        .await,
        [acme.id.clone()]
    );
    assert_eq!(
        search(SearchPartiesRequest {
            tax_id: "526 025 09 95".into(),
            ..Default::default()
        })
        .await,
        [acme.id.clone()]
    );
    assert_eq!(
        search(SearchPartiesRequest {
            email: "JAN@kowalski.pl".into(),
            ..Default::default()
        })
        .await,
        [jan.id.clone()]
    );
    assert_eq!(
        search(SearchPartiesRequest {
            phone: "+48221112233".into(),
            ..Default::default()
        })
        .await,
        [acme.id]
    );
    assert!(
        search(SearchPartiesRequest {
            name: "Kowalski".into(),
            phone: "+48221112233".into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    let status = client
        .search_parties(SearchPartiesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["name"]);
}

#[tokio::test]
async fn bases_group_parties() {
    let (_service, mut client) = start().await;
    let customers = client
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "Customers".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let taken = client
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "customers".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    let acme = client
        .create_party(CreatePartyRequest {
            party: Some(organization("Acme")),
            base_ids: vec![customers.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme.base_ids, [customers.id.clone()]);
    let beta = create(&mut client, organization("Beta")).await;
    let beta = client
        .add_party_to_base(AddPartyToBaseRequest {
            party_id: beta.id,
            base_id: customers.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beta.base_ids, [customers.id.clone()]);

    let members = client
        .list_parties(ListPartiesRequest {
            base_id: customers.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.parties.len(), 2);

    let acme = client
        .remove_party_from_base(RemovePartyFromBaseRequest {
            party_id: acme.id,
            base_id: customers.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(acme.base_ids.is_empty());

    let renamed = client
        .update_base(UpdateBaseRequest {
            base: Some(Base {
                id: customers.id.clone(),
                display_name: "Key customers".into(),
                archived: true,
                ..Default::default()
            }),
            update_mask: mask(&["display_name", "archived"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (renamed.display_name.as_str(), renamed.archived),
        ("Key customers", true)
    );
    let active = client
        .list_bases(ListBasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(active.bases.is_empty());
    let all = client
        .list_bases(ListBasesRequest {
            include_archived: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.bases.len(), 1);
    let closed = client
        .add_party_to_base(AddPartyToBaseRequest {
            party_id: acme.id,
            base_id: customers.id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(closed.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn persons_are_employed_and_natural_persons_share_their_data() {
    let (_service, mut client) = start().await;
    let acme = create(&mut client, organization("Acme")).await;
    let employee = |given: &str, supervisor: &str| Person {
        name: Some(PersonName {
            given_name: given.into(),
            family_name: "Nowak".into(),
        }),
        gender: Gender::Female as i32,
        birthday: Some(Date {
            year: 1990,
            month: 5,
            day: 17,
        }),
        name_day: Some(Date {
            year: 0,
            month: 7,
            day: 26,
        }),
        hobbies: vec!["sailing".into()],
        employments: vec![Employment {
            organization_party_id: acme.id.clone(),
            position: "Buyer".into(),
            supervisor_person_id: supervisor.into(),
            business_contact_points: vec![contact(ContactPointKind::Email, "anna@acme.pl")],
            start_date: Some(Date {
                year: 2020,
                month: 1,
                day: 1,
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let boss = client
        .create_person(CreatePersonRequest {
            person: Some(employee("Anna", "")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        boss.employments[0].business_contact_points[0].value,
        "anna@acme.pl"
    );
    assert_eq!(
        boss.name_day.as_ref().map(|d| (d.month, d.day)),
        Some((7, 26))
    );
    let report = client
        .create_person(CreatePersonRequest {
            person: Some(employee("Ewa", &boss.id)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.employments[0].supervisor_person_id, boss.id);

    let stranger = client
        .create_person(CreatePersonRequest {
            person: Some(employee("Olga", &uuid::Uuid::now_v7().to_string())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::FailedPrecondition);

    let ended = client
        .end_employment(EndEmploymentRequest {
            person_id: report.id.clone(),
            end_date: Some(Date {
                year: 2025,
                month: 6,
                day: 30,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ended.employments[0].end_date.is_some());
    let current = client
        .list_persons(ListPersonsRequest {
            organization_party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        current
            .persons
            .iter()
            .map(|p| p.id.clone())
            .collect::<Vec<_>>(),
        [boss.id.clone()]
    );
    let everyone = client
        .list_persons(ListPersonsRequest {
            organization_party_id: acme.id.clone(),
            include_former: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everyone.persons.len(), 2);

    // Anna changes jobs: her Acme employment ends the day before the new one starts.
    let beta = create(&mut client, organization("Beta")).await;
    let moved = client
        .update_person(UpdatePersonRequest {
            person: Some(Person {
                id: boss.id.clone(),
                employments: vec![Employment {
                    organization_party_id: beta.id.clone(),
                    position: "Head of purchasing".into(),
                    start_date: Some(Date {
                        year: 2026,
                        month: 3,
                        day: 1,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            update_mask: mask(&["employments"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let history: Vec<(&str, Option<Date>)> = moved
        .employments
        .iter()
        .map(|e| (e.organization_party_id.as_str(), e.end_date))
        .collect();
    let ended = Date {
        year: 2026,
        month: 2,
        day: 28,
    };
    assert_eq!(
        history,
        [(beta.id.as_str(), None), (acme.id.as_str(), Some(ended))]
    );
    let at_beta = client
        .list_persons(ListPersonsRequest {
            organization_party_id: beta.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at_beta.persons.len(), 1);
    let at_acme = client
        .list_persons(ListPersonsRequest {
            organization_party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(at_acme.persons.is_empty());

    // A natural person: one party, one person, the same name, contacts and address in both.
    let jan = create(&mut client, natural_person("Jan", "Kowalski")).await;
    assert_eq!(jan.display_name, "Jan Kowalski");
    let person = client
        .get_person(GetPersonRequest {
            id: jan.person_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(person.natural_party_id, jan.id);

    let person = client
        .update_person(UpdatePersonRequest {
            person: Some(Person {
                id: person.id.clone(),
                etag: person.etag.clone(),
                name: Some(PersonName {
                    given_name: "Janusz".into(),
                    family_name: "Kowalski".into(),
                }),
                private_contact_points: vec![contact(ContactPointKind::Email, "janusz@example.pl")],
                interests: vec!["chess".into()],
                ..Default::default()
            }),
            update_mask: mask(&["name", "private_contact_points", "interests"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let party = client
        .get_party(GetPartyRequest { id: jan.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(party.display_name, "Janusz Kowalski");
    assert_eq!(party.contact_points[0].value, "janusz@example.pl");
    assert_eq!(person.interests, ["chess"]);

    let party = client
        .update_party(UpdatePartyRequest {
            party: Some(Party {
                id: jan.id.clone(),
                addresses: vec![PostalAddress {
                    lines: vec!["ul. Długa 5".into()],
                    city: "Kraków".into(),
                    country_code: "PL".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            update_mask: mask(&["addresses"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let after = client
        .get_person(GetPersonRequest {
            id: jan.person_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.home_addresses, party.addresses);
    assert_ne!(
        after.etag, person.etag,
        "the person's etag moves with its shared data"
    );
}

#[tokio::test]
async fn duplicates_are_found_and_merged() {
    let (service, mut client) = start().await;
    let base = client
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "Suppliers".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let survivor = create(
        &mut client,
        Party {
            tax_id: "PL5260250995".into(),
            contact_points: vec![contact(ContactPointKind::Email, "info@acme.pl")],
            ..organization("Acme Trading Sp. z o.o.")
        },
    )
    .await;
    let duplicate = client
        .create_party(CreatePartyRequest {
            party: Some(Party {
                tax_id: "5260250995".into(),
                contact_points: vec![
                    contact(ContactPointKind::Email, "info@acme.pl"),
                    contact(ContactPointKind::Phone, "+48221112233"),
                ],
                ..organization("ACME Trading Spółka z o.o.")
            }),
            base_ids: vec![base.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    create(&mut client, organization("Unrelated Bakery")).await;
    let worker = client
        .create_person(CreatePersonRequest {
            person: Some(Person {
                name: Some(PersonName {
                    given_name: "Piotr".into(),
                    family_name: "Zieliński".into(),
                }),
                employments: vec![Employment {
                    organization_party_id: duplicate.id.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let found = client
        .find_duplicates(FindDuplicatesRequest {
            party_id: survivor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.candidates.len(), 1);
    assert_eq!(found.candidates[0].party.as_ref().unwrap().id, duplicate.id);
    assert_eq!(found.candidates[0].reasons, ["tax_id", "name", "email"]);

    let merge = MergePartiesRequest {
        surviving_party_id: survivor.id.clone(),
        merged_party_id: duplicate.id.clone(),
        dry_run: true,
        ..Default::default()
    };
    let preview = client
        .merge_parties(merge.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(preview.dry_run);
    assert_eq!(preview.moved_person_ids, [worker.id.clone()]);
    assert_eq!(preview.moved_base_ids, [base.id.clone()]);
    assert_eq!(
        preview.moved_contact_points.len(),
        1,
        "the shared e-mail is not moved twice"
    );
    let untouched = client
        .get_party(GetPartyRequest {
            id: duplicate.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        untouched.status(),
        PartyStatus::Active,
        "a dry run changes nothing"
    );

    let merged = client
        .merge_parties(MergePartiesRequest {
            dry_run: false,
            ..merge
        })
        .await
        .unwrap()
        .into_inner();
    let survivor_after = merged.surviving_party.unwrap();
    assert_eq!(
        without_audit(&survivor_after),
        without_audit(&preview.surviving_party.unwrap())
    );
    assert_eq!(survivor_after.base_ids, [base.id.clone()]);
    assert_eq!(survivor_after.contact_points.len(), 2);
    let archived = client
        .get_party(GetPartyRequest {
            id: duplicate.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.status(), PartyStatus::Archived);
    assert_eq!(archived.merged_into_party_id, survivor.id);
    let staff = client
        .list_persons(ListPersonsRequest {
            organization_party_id: survivor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(staff.persons[0].id, worker.id);

    let mut db = service.db().await;
    let types: Vec<String> = sqlx::query("SELECT event_type FROM crm_outbox ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        types.ends_with(&[
            "crm.parties.v1.PartiesMerged".to_owned(),
            "crm.parties.v1.PartyUpdated".to_owned(),
            "crm.parties.v1.PartyArchived".to_owned(),
            "crm.parties.v1.PersonUpdated".to_owned(),
        ]),
        "{types:?}"
    );
}

/// A preview and the real merge differ only in when they ran.
fn without_audit(party: &Party) -> Party {
    Party {
        audit: None,
        ..party.clone()
    }
}

#[tokio::test]
async fn custom_fields_are_defined_without_code_and_validated() {
    let (_service, mut client) = start().await;
    let industry = client
        .define_custom_field(DefineCustomFieldRequest {
            field: Some(CustomFieldDefinition {
                entity: CustomFieldEntity::Party as i32,
                key: "industry".into(),
                label: "Industry".into(),
                r#type: CustomFieldType::Enum as i32,
                required: true,
                options: vec!["retail".into(), "it".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(industry.options, ["retail", "it"]);
    let bad_definition = client
        .define_custom_field(DefineCustomFieldRequest {
            field: Some(CustomFieldDefinition {
                key: "Bad Key".into(),
                r#type: CustomFieldType::Enum as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&bad_definition),
        ["field.key", "field.entity", "field.label", "field.options"]
    );

    let missing = client
        .create_party(CreatePartyRequest {
            party: Some(organization("No industry")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&missing), ["party.custom_fields"]);

    let value = |option: &str| CustomFieldValue {
        key: "industry".into(),
        value: Some(custom_field_value::Value::Option(option.into())),
    };
    let wrong = client
        .create_party(CreatePartyRequest {
            party: Some(Party {
                custom_fields: vec![value("mining")],
                ..organization("Miner")
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&wrong), ["party.custom_fields[0].option"]);

    let shop = create(
        &mut client,
        Party {
            custom_fields: vec![value("retail")],
            ..organization("Shop")
        },
    )
    .await;
    assert_eq!(shop.custom_fields, [value("retail")]);

    let listed = client
        .list_custom_fields(ListCustomFieldsRequest {
            entity: CustomFieldEntity::Party as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.fields.len(), 1);
    let retyped = client
        .define_custom_field(DefineCustomFieldRequest {
            field: Some(CustomFieldDefinition {
                r#type: CustomFieldType::Text as i32,
                options: vec![],
                ..industry
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(retyped.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn reflection_describes_the_api_without_a_token() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let service = TestService::start(&PARTIES).await.unwrap();
    let mut reflection = ServerReflectionClient::new(service.channel(""));
    let ask = |request: MessageRequest| {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };

    let mut answers = reflection
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"crm.parties.v1.PartiesService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    let symbol =
        MessageRequest::FileContainingSymbol("crm.parties.v1.PartiesService.MergeParties".into());
    let mut answers = reflection
        .server_reflection_info(ask(symbol))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected the file describing MergeParties");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn metrics_count_calls_and_the_outbox() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (service, mut client) = start().await;
    create(&mut client, organization("Measured")).await;
    let missing = client
        .get_party(GetPartyRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);

    let scrape = || async {
        let mut stream = tokio::net::TcpStream::connect(service.admin_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text
    };
    // Metrics are per process and tests share it: look for at least these calls.
    let count = |text: &str, series: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let text = crm_testkit::eventually(Duration::from_secs(10), || async {
        let text = scrape().await;
        (count(
            &text,
            r#"crm_outbox_published_total{topic="crm.parties.party.v1"}"#,
        ) >= 1.0)
            .then_some(text)
    })
    .await
    .expect("the relay's publication is counted");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        count(
            &text,
            r#"crm_rpc_calls_total{method="crm.parties.v1.PartiesService/CreateParty",code="Ok"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        count(
            &text,
            r#"crm_rpc_calls_total{method="crm.parties.v1.PartiesService/GetParty",code="NotFound"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(text.contains("crm_rpc_duration_seconds_bucket"), "{text}");
    assert!(text.contains("crm_outbox_backlog"), "{text}");
}

#[tokio::test]
async fn custom_fields_and_duplicates_come_a_page_at_a_time() {
    let (_service, mut client) = start().await;
    for key in ["vip_level", "industry", "region"] {
        client
            .define_custom_field(DefineCustomFieldRequest {
                field: Some(CustomFieldDefinition {
                    entity: CustomFieldEntity::Party as i32,
                    key: key.into(),
                    label: key.into(),
                    r#type: CustomFieldType::Text as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_custom_fields(ListCustomFieldsRequest {
                entity: CustomFieldEntity::Party as i32,
                page_size: 2,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.fields.len() <= 2);
        keys.extend(page.fields.into_iter().map(|f| f.key));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(keys, ["industry", "region", "vip_level"]);

    let original = create(
        &mut client,
        organization("Przedsiębiorstwo Handlowe Kowalski"),
    )
    .await;
    for suffix in ["A", "B", "C"] {
        create(
            &mut client,
            organization(&format!("Przedsiębiorstwo Handlowe Kowalski {suffix}")),
        )
        .await;
    }
    let all = client
        .find_duplicates(FindDuplicatesRequest {
            party_id: original.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.candidates.len(), 3);
    assert!(all.next_page_token.is_empty());
    let first = client
        .find_duplicates(FindDuplicatesRequest {
            party_id: original.id.clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let second = client
        .find_duplicates(FindDuplicatesRequest {
            party_id: original.id.clone(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids = |candidates: &[DuplicateCandidate]| -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.party.as_ref().unwrap().id.clone())
            .collect()
    };
    assert_eq!((first.candidates.len(), second.candidates.len()), (2, 1));
    assert!(second.next_page_token.is_empty());
    assert_eq!(
        [ids(&first.candidates), ids(&second.candidates)].concat(),
        ids(&all.candidates),
        "the pages are the whole list, most similar first"
    );
}

#[tokio::test]
async fn persons_are_found_by_name_email_or_phone_and_bases_by_id() {
    let (_service, mut client) = start().await;
    let acme = create(&mut client, organization("Acme")).await;
    let other = create(&mut client, organization("Other Ltd")).await;
    let anna = client
        .create_person(CreatePersonRequest {
            person: Some(Person {
                name: Some(PersonName {
                    given_name: "Anna".into(),
                    family_name: "Nowak_Kowalska".into(),
                }),
                employments: vec![Employment {
                    organization_party_id: acme.id.clone(),
                    business_contact_points: vec![contact(
                        ContactPointKind::Email,
                        "Anna.Nowak@Acme.example",
                    )],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut jan = natural_person("Jan", "Nowakowski");
    jan.contact_points = vec![contact(ContactPointKind::Phone, "+48 601 234 567")];
    let jan = create(&mut client, jan).await;

    let search = |request: SearchPersonsRequest| {
        let mut client = client.clone();
        async move {
            let found = client.search_persons(request).await?.into_inner();
            Ok::<_, tonic::Status>(
                found
                    .persons
                    .into_iter()
                    .map(|p| p.name.unwrap().family_name)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let by_name = search(SearchPersonsRequest {
        name: "nowak".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_name.len(), 2, "{by_name:?}");
    let by_email = search(SearchPersonsRequest {
        email: "anna.nowak@acme.example".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_email, ["Nowak_Kowalska"]);
    let by_phone = search(SearchPersonsRequest {
        phone: "+48601234567".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_phone, ["Nowakowski"]);
    let at_acme = search(SearchPersonsRequest {
        name: "nowak".into(),
        organization_party_id: acme.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(at_acme, ["Nowak_Kowalska"]);
    let elsewhere = search(SearchPersonsRequest {
        name: "nowak".into(),
        organization_party_id: other.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(elsewhere.is_empty());
    // Wildcards are letters like any other: "_" matches an underscore, "%" matches nothing here.
    let underscore = search(SearchPersonsRequest {
        name: "k_k".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(underscore, ["Nowak_Kowalska"]);
    let percent = search(SearchPersonsRequest {
        name: "%".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(percent.is_empty());
    let nothing_asked = search(SearchPersonsRequest::default()).await.unwrap_err();
    assert_eq!(nothing_asked.code(), Code::InvalidArgument);
    assert!(!anna.id.is_empty() && !jan.id.is_empty());

    let base = client
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "Suppliers".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_base(GetBaseRequest {
            id: base.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, base);
    let missing = client
        .get_base(GetBaseRequest {
            id: "0190b3c4-0000-7000-8000-0000000000ff".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn downstream_systems_rebuild_bases_and_custom_fields_from_their_topics() {
    let (service, mut client) = start().await;
    let mut bases = Vec::new();
    for name in ["Customers", "Suppliers"] {
        let base = client
            .create_base(CreateBaseRequest {
                base: Some(Base {
                    display_name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        bases.push(base);
    }
    client
        .update_base(UpdateBaseRequest {
            base: Some(Base {
                id: bases[1].id.clone(),
                display_name: "Vendors".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let rebuilt = crm_testkit::rebuild(
        &service.broker.brokers(),
        "crm.parties.base.v1",
        3,
        |event: BaseChanged| event.base.map(|b| (b.id.clone(), b)),
    )
    .await;
    assert_eq!(rebuilt.len(), 2);
    for (id, from_topic) in rebuilt {
        let got = client
            .get_base(GetBaseRequest { id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(from_topic, got);
    }

    for (key, label) in [
        ("industry", "Industry"),
        ("region", "Region"),
        ("industry", "Sector"),
    ] {
        client
            .define_custom_field(DefineCustomFieldRequest {
                field: Some(CustomFieldDefinition {
                    entity: CustomFieldEntity::Party as i32,
                    key: key.into(),
                    label: label.into(),
                    r#type: CustomFieldType::Text as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let rebuilt = crm_testkit::rebuild(
        &service.broker.brokers(),
        "crm.parties.custom_field.v1",
        3,
        |event: CustomFieldChanged| event.field.map(|f| (format!("party/{}", f.key), f)),
    )
    .await;
    let listed = client
        .list_custom_fields(ListCustomFieldsRequest {
            entity: CustomFieldEntity::Party as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fields;
    assert_eq!(
        rebuilt.into_values().collect::<Vec<_>>(),
        listed,
        "the latest definition of each key, as listed"
    );
}

#[tokio::test]
async fn a_merge_keeps_what_the_survivor_lacks_and_leaves_former_employments_in_place() {
    let (_service, mut client) = start().await;
    let survivor = create(&mut client, organization("Kowalski i Syn")).await;
    let mut duplicate = organization("Kowalski & Syn sp. j.");
    duplicate.tax_id = "5260250995".into();
    duplicate.tags = vec!["wholesale".into()];
    duplicate.addresses = vec![PostalAddress {
        lines: vec!["ul. Polna 1".into()],
        postal_code: "00-001".into(),
        city: "Warszawa".into(),
        country_code: "PL".into(),
        ..Default::default()
    }];
    let duplicate = create(&mut client, duplicate).await;
    let employee = |given: &str| CreatePersonRequest {
        person: Some(Person {
            name: Some(PersonName {
                given_name: given.into(),
                family_name: "Wiśniewski".into(),
            }),
            employments: vec![Employment {
                organization_party_id: duplicate.id.clone(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let current = client
        .create_person(employee("Adam"))
        .await
        .unwrap()
        .into_inner();
    let former = client
        .create_person(employee("Bartosz"))
        .await
        .unwrap()
        .into_inner();
    client
        .end_employment(EndEmploymentRequest {
            person_id: former.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let merged = client
        .merge_parties(MergePartiesRequest {
            surviving_party_id: survivor.id.clone(),
            merged_party_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let kept = merged.surviving_party.unwrap();
    assert_eq!(
        kept.display_name, "Kowalski i Syn",
        "the survivor's name stays"
    );
    assert_eq!(kept.tax_id, "PL5260250995");
    assert_eq!(kept.tags, ["wholesale"]);
    assert_eq!(kept.addresses.len(), 1);
    assert_eq!(merged.moved_person_ids, [current.id.clone()]);

    let employer = |person: Person| {
        person
            .employments
            .into_iter()
            .map(|e| e.organization_party_id)
            .collect::<Vec<_>>()
    };
    let adam = client
        .get_person(GetPersonRequest { id: current.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(employer(adam), [survivor.id.clone()]);
    let bartosz = client
        .get_person(GetPersonRequest { id: former.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        employer(bartosz),
        [duplicate.id.clone()],
        "a former employment stays with the organization the person worked for"
    );
}

#[tokio::test]
async fn a_person_may_work_for_several_organizations_at_once() {
    let (_service, mut client) = start().await;
    let acme = create(&mut client, organization("Acme")).await;
    let beta = create(&mut client, organization("Beta")).await;
    let marta = client
        .create_person(CreatePersonRequest {
            person: Some(Person {
                name: Some(PersonName {
                    given_name: "Marta".into(),
                    family_name: "Lis".into(),
                }),
                employments: vec![Employment {
                    organization_party_id: acme.id.clone(),
                    position: "Accountant".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let add = |organization: &str| AddEmploymentRequest {
        person_id: marta.id.clone(),
        employment: Some(Employment {
            organization_party_id: organization.into(),
            position: "Auditor".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let both = client
        .add_employment(add(&beta.id))
        .await
        .unwrap()
        .into_inner();
    let current: Vec<&str> = both
        .employments
        .iter()
        .filter(|e| e.end_date.is_none())
        .map(|e| e.organization_party_id.as_str())
        .collect();
    assert_eq!(current.len(), 2, "{current:?}");
    let twice = client.add_employment(add(&beta.id)).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // Which employment a change means must be said once there are two.
    let promote = |organization: &str| UpdatePersonRequest {
        person: Some(Person {
            id: marta.id.clone(),
            employments: vec![Employment {
                organization_party_id: organization.into(),
                position: "Chief accountant".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        update_mask: mask(&["employment.position"]),
        ..Default::default()
    };
    let unnamed = client.update_person(promote("")).await.unwrap_err();
    assert_eq!(
        bad_fields(&unnamed),
        ["person.employments[0].organization_party_id"]
    );
    let promoted = client
        .update_person(promote(&acme.id))
        .await
        .unwrap()
        .into_inner();
    let position = |person: &Person, organization: &str| {
        person
            .employments
            .iter()
            .find(|e| e.organization_party_id == organization && e.end_date.is_none())
            .map(|e| e.position.clone())
    };
    assert_eq!(
        position(&promoted, &acme.id).as_deref(),
        Some("Chief accountant")
    );
    assert_eq!(position(&promoted, &beta.id).as_deref(), Some("Auditor"));

    // Merging one employer into the other leaves her one current employment there.
    client
        .merge_parties(MergePartiesRequest {
            surviving_party_id: acme.id.clone(),
            merged_party_id: beta.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let merged = client
        .get_person(GetPersonRequest {
            id: marta.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let current: Vec<&str> = merged
        .employments
        .iter()
        .filter(|e| e.end_date.is_none())
        .map(|e| e.organization_party_id.as_str())
        .collect();
    assert_eq!(current, [acme.id.as_str()]);

    let ended = client
        .end_employment(EndEmploymentRequest {
            person_id: marta.id.clone(),
            organization_party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ended.employments.iter().all(|e| e.end_date.is_some()));
}
