//! Organizations and natural persons: create, read, update, list, validation, replays, search.

use super::*;

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
async fn a_request_id_is_one_callers_for_one_method() {
    let (service, mut client) = start().await;
    let request_id = "shared-request-id-1";
    let ours = client
        .create_party(CreatePartyRequest {
            party: Some(organization("Ours Ltd")),
            request_id: request_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Another integrator who happens to pick the same id gets its own party, not ours.
    let mut other = PartiesServiceClient::new(service.channel(&token(
        "other-integrator",
        &["parties.read", "parties.write"],
    )));
    let theirs = other
        .create_party(CreatePartyRequest {
            party: Some(organization("Theirs Ltd")),
            request_id: request_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(theirs.id, ours.id);
    assert_eq!(theirs.display_name, "Theirs Ltd");

    // The same caller may use the id again for another method.
    let base = client
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "Prospects".into(),
                ..Default::default()
            }),
            request_id: request_id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(base.display_name, "Prospects");

    // And each caller's replay still answers its own first call.
    let replayed = other
        .create_party(CreatePartyRequest {
            party: Some(organization("Theirs Ltd")),
            request_id: request_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, theirs);
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
