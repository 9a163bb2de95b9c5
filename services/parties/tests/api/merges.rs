//! Finding duplicates and merging them.

use super::*;

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
