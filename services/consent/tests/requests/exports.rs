//! Exports joined from the slices every registered service sends.

use super::*;

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
