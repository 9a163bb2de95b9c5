//! Bases (groups of parties), and rebuilding bases and custom-field definitions from their topics.

use super::*;

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
