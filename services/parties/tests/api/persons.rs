//! Persons (contacts of organizations and natural persons): employment, search.

use super::*;

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
