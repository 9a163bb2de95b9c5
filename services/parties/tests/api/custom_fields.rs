//! Custom fields defined at run time, and paging through them and through duplicates.

use super::*;

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
