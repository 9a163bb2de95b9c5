//! What integrators and downstream systems see: reflection, and the topics that rebuild every request and purpose.

use super::*;

#[tokio::test]
async fn reflection_describes_every_consent_rpc_without_a_token() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let service = TestService::start(&CONSENT).await.unwrap();
    let mut reflection = ServerReflectionClient::new(service.channel(""));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "crm.consent.v1.ConsentService".into(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no file descriptor");
    };
    let methods: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .flat_map(|file| file.service)
        .filter(|s| s.name() == "ConsentService")
        .flat_map(|s| s.method)
        .map(|m| m.name().to_owned())
        .collect();
    for rpc in [
        "CreatePurpose",
        "ListPurposes",
        "PublishPurposeText",
        "RecordConsent",
        "WithdrawConsent",
        "GetConsentState",
        "ListConsentHistory",
        "CheckConsent",
        "OpenSubjectRequest",
        "VerifySubjectRequest",
        "GetSubjectRequest",
        "ListSubjectRequests",
        "CancelSubjectRequest",
        "ExtendSubjectRequest",
        "GetExportBundle",
        "ListAuditLog",
    ] {
        assert!(methods.iter().any(|m| m == rpc), "{rpc} in {methods:?}");
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn downstream_systems_rebuild_every_request_and_purpose_from_their_topics() {
    let (service, mut client) = start().await;
    // A rectification through its whole life, and an objection that completes at once.
    let fix = open(&mut client, PrivacyRequestType::Rectification, SUBJECT, 2).await;
    verify(&mut client, &fix.id, true).await;
    client
        .extend_subject_request(ExtendSubjectRequestRequest {
            id: fix.id.clone(),
            days: 10,
            reason: "archives".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .complete_subject_request(CompleteSubjectRequestRequest {
            id: fix.id.clone(),
            resolution: "address corrected".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let objection = open(&mut client, PrivacyRequestType::Objection, SUBJECT, 0).await;
    verify(&mut client, &objection.id, true).await;

    let requests = rebuild(
        &service.broker.brokers(),
        "crm.consent.subject_request.v1",
        6,
        |event: SubjectRequestChanged| event.request.map(|r| (r.id.clone(), r)),
    )
    .await;
    assert_eq!(requests.len(), 2);
    for (id, from_topic) in requests {
        let got = client
            .get_subject_request(GetSubjectRequestRequest { id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            from_topic,
            SubjectRequest {
                details: String::new(),
                verification_method: String::new(),
                ..got
            },
            "the topic carries the request, less the subject's own words"
        );
    }

    for code in ["newsletter", "profiling"] {
        client
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: code.into(),
                    description: "d".into(),
                    legal_basis: LegalBasis::Consent as i32,
                    text: "t".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .publish_purpose_text(PublishPurposeTextRequest {
            code: "newsletter".into(),
            text: "t2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let purposes = rebuild(
        &service.broker.brokers(),
        "crm.consent.purpose.v1",
        3,
        |event: PurposeChanged| event.purpose.map(|p| (p.code.clone(), p)),
    )
    .await;
    assert_eq!(purposes.len(), 2);
    for (code, from_topic) in purposes {
        let got = client
            .get_purpose(GetPurposeRequest { code })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(from_topic, got);
    }
    service.stop().await.unwrap();
}
