//! A subject request from opening to closing: validation, deadlines, objections, operator work, cancelling.

use super::*;

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
