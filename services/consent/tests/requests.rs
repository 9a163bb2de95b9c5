//! Data-subject requests in the consent service alone: validation, verification, deadlines and
//! overdue requests, extensions, objections, operator work, cancellation, and the API surface.
//! The fan-out to the other services is tested end to end in `tests/tests/privacy.rs`.

use crm_kit::app::Service;
use std::time::{Duration, SystemTime};

use crm_kit::client::TracedChannel;
use crm_kit::privacy::RECEIPT_TOPIC;
use crm_proto::crm::common::v1::PrivacyReceipt;
use crm_proto::crm::{
    common::v1::PrivacyRequestType,
    consent::v1::{consent_service_client::ConsentServiceClient, *},
};
use crm_testkit::{Broker, TestDatabase, TestService, eventually, rebuild, token};
use prost::Message;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use tonic::Code;
use tonic_types::StatusExt;

const CONSENT: Service = crm_consent::SERVICE;

type Client = ConsentServiceClient<TracedChannel>;

const DAY: u64 = 24 * 3600;

fn party(id: &str) -> Option<Subject> {
    Some(Subject {
        kind: SubjectKind::Party as i32,
        id: id.into(),
    })
}

fn days_ago(days: u64) -> Option<prost_types::Timestamp> {
    Some((SystemTime::now() - Duration::from_secs(days * DAY)).into())
}

async fn start() -> (TestService, Client) {
    let (database, broker) = (
        TestDatabase::create().await.unwrap(),
        Broker::start().await.unwrap(),
    );
    // Re-sends and retention run every half second.
    let service = TestService::start_with(&CONSENT, database, broker, |config| {
        config.privacy.retry_after_secs = 2;
    })
    .await
    .unwrap();
    let client = ConsentServiceClient::new(service.channel(&token(
        "dpo",
        &["consent.read", "consent.write", "privacy.export"],
    )));
    (service, client)
}

async fn open(
    client: &mut Client,
    kind: PrivacyRequestType,
    subject: &str,
    received_days_ago: u64,
) -> SubjectRequest {
    client
        .open_subject_request(OpenSubjectRequestRequest {
            r#type: kind as i32,
            subject: party(subject),
            channel: Channel::Paper as i32,
            details: "letter of 3 March".into(),
            receive_time: days_ago(received_days_ago),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn verify(client: &mut Client, id: &str, verified: bool) -> SubjectRequest {
    client
        .verify_subject_request(VerifySubjectRequestRequest {
            id: id.into(),
            verified,
            method: "signature compared with the contract".into(),
            note: if verified {
                ""
            } else {
                "signature does not match"
            }
            .into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

const SUBJECT: &str = "0190b3c4-0000-7000-8000-000000000001";

#[tokio::test]
async fn bad_requests_name_every_field() {
    let (service, mut client) = start().await;
    let error = client
        .open_subject_request(OpenSubjectRequestRequest {
            subject: Some(Subject {
                kind: 0,
                id: "nope".into(),
            }),
            purposes: vec!["marketing_email".into()],
            receive_time: Some((SystemTime::now() + Duration::from_secs(DAY)).into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = error
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "channel",
            "purposes",
            "receive_time",
            "subject.id",
            "subject.kind",
            "type"
        ]
    );

    let opened = open(&mut client, PrivacyRequestType::Access, SUBJECT, 0).await;
    let error = client
        .extend_subject_request(ExtendSubjectRequestRequest {
            id: opened.id.clone(),
            days: 61,
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = error
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["days", "reason"]);
    let missing = client
        .get_subject_request(GetSubjectRequestRequest {
            id: "0190b3c4-0000-7000-8000-0000000000ff".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn overdue_requests_are_listed_as_overdue_until_extended_or_closed() {
    let (service, mut client) = start().await;
    let late = open(&mut client, PrivacyRequestType::Rectification, SUBJECT, 40).await;
    let fresh = open(&mut client, PrivacyRequestType::Restriction, SUBJECT, 1).await;
    let closed = open(&mut client, PrivacyRequestType::Rectification, SUBJECT, 45).await;
    assert!(late.overdue && !fresh.overdue);
    let due = late.due_time.unwrap().seconds - late.receive_time.unwrap().seconds;
    assert_eq!(due, 30 * DAY as i64, "the deadline is 30 days from receipt");
    // A request that ended is not overdue, however old.
    let rejected = verify(&mut client, &closed.id, false).await;
    assert_eq!(rejected.status(), SubjectRequestStatus::Rejected);
    assert_eq!(rejected.verification(), VerificationState::Failed);
    assert!(!rejected.overdue);

    let overdue = client
        .list_subject_requests(ListSubjectRequestsRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(
        overdue.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [late.id.as_str()]
    );
    let received = client
        .list_subject_requests(ListSubjectRequestsRequest {
            status: SubjectRequestStatus::Received as i32,
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(received.requests[0].id, fresh.id, "newest first");
    let next = client
        .list_subject_requests(ListSubjectRequestsRequest {
            status: SubjectRequestStatus::Received as i32,
            page_size: 1,
            page_token: received.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.requests[0].id, late.id);
    assert!(next.next_page_token.is_empty());

    // Narrowed by type, and by when they were received.
    let restrictions = client
        .list_subject_requests(ListSubjectRequestsRequest {
            r#type: PrivacyRequestType::Restriction as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(
        restrictions
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [fresh.id.as_str()]
    );
    let older_than_a_month = client
        .list_subject_requests(ListSubjectRequestsRequest {
            to_time: fresh.receive_time.map(|t| prost_types::Timestamp {
                seconds: t.seconds - 30 * DAY as i64,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(
        older_than_a_month
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [closed.id.as_str(), late.id.as_str()]
    );

    // Extended by 20 days, the 40-day-old request is due in 10 days.
    let extended = client
        .extend_subject_request(ExtendSubjectRequestRequest {
            id: late.id.clone(),
            days: 20,
            reason: "the subject's records span three archives".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!extended.overdue);
    assert_eq!(
        (extended.extension_days, extended.extension_reason.as_str()),
        (20, "the subject's records span three archives")
    );
    let too_long = client
        .extend_subject_request(ExtendSubjectRequestRequest {
            id: late.id.clone(),
            days: 41,
            reason: "more".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::FailedPrecondition);
    assert_eq!(
        too_long.get_details_error_info().unwrap().reason,
        "EXTENSION_EXCEEDED"
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn an_objection_withdraws_the_purposes_and_completes() {
    let (service, mut client) = start().await;
    for (code, basis) in [
        ("marketing_email", LegalBasis::Consent),
        ("profiling", LegalBasis::LegitimateInterest),
        ("loyalty_program", LegalBasis::Contract),
    ] {
        client
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: code.into(),
                    description: code.into(),
                    legal_basis: basis as i32,
                    text: "I agree".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        client
            .record_consent(RecordConsentRequest {
                subject: party(SUBJECT),
                purpose: code.into(),
                evidence: Some(Evidence {
                    channel: Channel::WebForm as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let objection = open(&mut client, PrivacyRequestType::Objection, SUBJECT, 0).await;
    let done = verify(&mut client, &objection.id, true).await;
    assert_eq!(done.status(), SubjectRequestStatus::Completed);
    assert_eq!(
        done.resolution,
        "consent withdrawn: marketing_email, profiling"
    );
    for (code, granted) in [
        ("marketing_email", false),
        ("profiling", false),
        ("loyalty_program", true),
    ] {
        let check = client
            .check_consent(CheckConsentRequest {
                subject: party(SUBJECT),
                purpose: code.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(check.granted, granted, "{code}");
        if !granted {
            let record = check.state.unwrap().record.unwrap();
            assert_eq!(
                record.evidence.unwrap().reference,
                objection.id,
                "the withdrawal cites the request"
            );
        }
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn operator_work_is_completed_by_hand_and_open_requests_can_be_cancelled() {
    let (service, mut client) = start().await;
    let rectification = open(&mut client, PrivacyRequestType::Rectification, SUBJECT, 2).await;
    let in_progress = verify(&mut client, &rectification.id, true).await;
    assert_eq!(in_progress.status(), SubjectRequestStatus::InProgress);
    assert_eq!(in_progress.verification(), VerificationState::Verified);
    assert!(in_progress.answers.is_empty(), "not sent to the services");
    let again = client
        .verify_subject_request(VerifySubjectRequestRequest {
            id: rectification.id.clone(),
            verified: true,
            method: "again".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let done = client
        .complete_subject_request(CompleteSubjectRequestRequest {
            id: rectification.id.clone(),
            resolution: "surname corrected in parties (UpdateParty)".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status(), SubjectRequestStatus::Completed);
    assert!(done.complete_time.is_some());

    let access = open(&mut client, PrivacyRequestType::Access, SUBJECT, 0).await;
    let cancelled = client
        .cancel_subject_request(CancelSubjectRequestRequest {
            id: access.id.clone(),
            reason: "withdrawn by the subject by phone".into(),
            request_id: "cancel-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), SubjectRequestStatus::Cancelled);
    let replayed = client
        .cancel_subject_request(CancelSubjectRequestRequest {
            id: access.id.clone(),
            reason: "withdrawn by the subject by phone".into(),
            request_id: "cancel-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, cancelled, "a replay gets the first answer");
    let closed = client
        .cancel_subject_request(CancelSubjectRequestRequest {
            id: access.id.clone(),
            reason: "again".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        closed.get_details_error_info().unwrap().reason,
        "REQUEST_CLOSED"
    );
    let no_bundle = client
        .get_export_bundle(GetExportBundleRequest { id: access.id })
        .await
        .unwrap_err();
    assert_eq!(no_bundle.code(), Code::FailedPrecondition);

    let actions: Vec<String> = client
        .list_audit_log(ListAuditLogRequest {
            subject: party(SUBJECT),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .rev()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "request.opened",
            "request.verified",
            "request.completed",
            "request.opened",
            "request.cancelled"
        ]
    );
    service.stop().await.unwrap();
}

/// The registered services' side of the contract, played by the test.
async fn answer(brokers: &str, receipt: PrivacyReceipt) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let payload = receipt.encode_to_vec();
    let record = FutureRecord::to(RECEIPT_TOPIC)
        .key(&receipt.request_id)
        .payload(&payload);
    producer.send(record, Duration::from_secs(5)).await.unwrap();
}

async fn status_once(
    client: &Client,
    id: &str,
    wanted: impl Fn(&SubjectRequest) -> bool,
) -> SubjectRequest {
    eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        let id = id.to_owned();
        let wanted = &wanted;
        async move {
            let request = client
                .get_subject_request(GetSubjectRequestRequest { id })
                .await
                .ok()?
                .into_inner();
            wanted(&request).then_some(request)
        }
    })
    .await
    .expect("the request reaches the expected state")
}

#[tokio::test]
async fn a_sliced_export_is_joined_and_the_request_waits_for_every_registered_service() {
    let (service, mut client) = start().await;
    let opened = open(&mut client, PrivacyRequestType::Portability, SUBJECT, 0).await;
    let sent = verify(&mut client, &opened.id, true).await;
    let waiting: Vec<_> = sent
        .answers
        .iter()
        .map(|a| (a.service.as_str(), a.answered, a.attempts))
        .collect();
    assert_eq!(
        waiting,
        [("loyalty", false, 1), ("parties", false, 1)],
        "the registry"
    );

    let loyalty_part = serde_json::json!({
        "service": "loyalty",
        "tables": { "operations": (0..400).map(|i| serde_json::json!({ "id": i, "points": 10 })).collect::<Vec<_>>() },
    });
    let bytes = serde_json::to_vec(&loyalty_part).unwrap();
    let slices: Vec<&[u8]> = bytes.chunks(bytes.len() / 3 + 1).collect();
    assert_eq!(slices.len(), 3);
    let slice = |part: usize| PrivacyReceipt {
        request_id: opened.id.clone(),
        service: "loyalty".into(),
        r#type: PrivacyRequestType::Portability as i32,
        export_json: slices[part - 1].to_vec(),
        part: part as i32,
        parts: 3,
        export_id: "export-1".into(),
        subject_found: true,
        ..Default::default()
    };
    let brokers = service.broker.brokers();
    // Out of order, and one slice of an abandoned export that must not be mixed in.
    answer(&brokers, slice(3)).await;
    answer(
        &brokers,
        PrivacyReceipt {
            export_id: "export-0".into(),
            export_json: b"garbage".to_vec(),
            ..slice(2)
        },
    )
    .await;
    answer(&brokers, slice(1)).await;
    answer(&brokers, slice(2)).await;
    let half = status_once(&client, &opened.id, |r| {
        r.answers
            .iter()
            .any(|a| a.service == "loyalty" && a.answered)
    })
    .await;
    assert_eq!(
        half.status(),
        SubjectRequestStatus::InProgress,
        "parties has not answered"
    );

    let parties_part =
        serde_json::json!({ "service": "parties", "tables": { "parties": [{ "id": SUBJECT }] } });
    answer(
        &brokers,
        PrivacyReceipt {
            request_id: opened.id.clone(),
            service: "parties".into(),
            r#type: PrivacyRequestType::Portability as i32,
            export_json: serde_json::to_vec(&parties_part).unwrap(),
            subject_found: true,
            ..Default::default()
        },
    )
    .await;
    status_once(&client, &opened.id, |r| {
        r.status() == SubjectRequestStatus::Completed
    })
    .await;

    let mut stream = client
        .get_export_bundle(GetExportBundleRequest {
            id: opened.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut document = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        document.extend(chunk.data);
    }
    let bundle: serde_json::Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(bundle["parts"]["loyalty"], loyalty_part);
    assert_eq!(bundle["parts"]["parties"], parties_part);
    assert_eq!(bundle["type"], "portability");

    // Past the 30-day retention the subject's data is no longer kept for download.
    sqlx::query(
        "UPDATE subject_requests SET completed_at = now() - interval '31 days' WHERE id = $1::uuid",
    )
    .bind(&opened.id)
    .execute(&mut service.db().await)
    .await
    .unwrap();
    let gone = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        let id = opened.id.clone();
        async move {
            client
                .get_export_bundle(GetExportBundleRequest { id })
                .await
                .err()
        }
    })
    .await
    .expect("the bundle expires");
    assert_eq!(gone.code(), Code::FailedPrecondition);
    assert_eq!(gone.get_details_error_info().unwrap().reason, "BUNDLE_GONE");
    service.stop().await.unwrap();
}

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
