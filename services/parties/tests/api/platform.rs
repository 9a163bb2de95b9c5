//! What every service owes its callers and operators: scopes, events, an outage of Kafka, reflection, metrics.

use super::*;

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
    let mut records = read_topic(
        &service.broker.brokers(),
        "crm.parties.party.v1",
        6,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    // Delivery is at least once: a batch the broker took just as the relay gave up on it is sent
    // again by the relay's next session. Consumers deduplicate on ce_id, as this one does.
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert(r.headers["ce_id"].clone()));
    assert_eq!(
        records.len(),
        5,
        "every event written during the outage arrives"
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
async fn calls_on_a_dropped_database_connection_are_unavailable_and_the_service_recovers() {
    let (service, mut client) = start().await;
    let party = create(&mut client, organization("Kept across the drop")).await;
    let get = GetPartyRequest {
        id: party.id.clone(),
    };
    client.get_party(get.clone()).await.unwrap();

    // What a database restart or failover does to the pool: every connection killed at once.
    let mut db = service.db().await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut db)
    .await
    .unwrap();

    // A caller following gRPC retry guidance gets UNAVAILABLE (retryable), never INTERNAL, and
    // succeeds within the pool's size of retries.
    let mut answered = None;
    for _ in 0..12 {
        match client.get_party(get.clone()).await {
            Ok(found) => {
                answered = Some(found.into_inner());
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
    }
    assert_eq!(answered.expect("the service recovered").id, party.id);
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
