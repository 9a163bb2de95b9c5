//! Consents through the gRPC API on real PostgreSQL and the broker: lifecycle, history, checks,
//! re-consent after a new text, expiry, and an audit log nothing can rewrite.

use crm_kit::app::Service;
use std::time::Duration;

use crm_kit::client::TracedChannel;
use crm_proto::crm::consent::v1::{consent_service_client::ConsentServiceClient, *};
use crm_testkit::{TestService, eventually, read_topic, token};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

const CONSENT: Service = crm_consent::SERVICE;

type Client = ConsentServiceClient<TracedChannel>;

fn party(id: &str) -> Option<Subject> {
    Some(Subject {
        kind: SubjectKind::Party as i32,
        id: id.into(),
    })
}

fn evidence(channel: Channel, text_version: i32) -> Option<Evidence> {
    Some(Evidence {
        channel: channel as i32,
        source_system: "webshop".into(),
        text_version,
        reference: "form-7".into(),
    })
}

async fn check(client: &mut Client, subject: &str, purpose: &str) -> (bool, ConsentStatus) {
    let answer = client
        .check_consent(CheckConsentRequest {
            subject: party(subject),
            purpose: purpose.into(),
        })
        .await
        .unwrap()
        .into_inner();
    (answer.granted, answer.state.unwrap().status())
}

#[tokio::test]
async fn consent_lives_through_grant_reconsent_withdrawal_and_expiry() {
    let service = TestService::start(&CONSENT).await.unwrap();
    let mut client = ConsentServiceClient::new(
        service.channel(&token("dpo", &["consent.read", "consent.write"])),
    );
    for code in ["loyalty_program", "marketing_email"] {
        client
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: code.into(),
                    description: format!("{code} purpose"),
                    legal_basis: LegalBasis::Consent as i32,
                    text: "I agree to ...".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let taken = client
        .create_purpose(CreatePurposeRequest {
            purpose: Some(Purpose {
                code: "marketing_email".into(),
                description: "again".into(),
                legal_basis: LegalBasis::Consent as i32,
                text: "x".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    let subject = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        check(&mut client, &subject, "marketing_email").await,
        (false, ConsentStatus::None)
    );
    let granted = client
        .record_consent(RecordConsentRequest {
            subject: party(&subject),
            purpose: "marketing_email".into(),
            evidence: evidence(Channel::WebForm, 0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            granted.evidence.as_ref().unwrap().text_version,
            granted.recorded_by.as_str()
        ),
        (1, "dpo")
    );
    assert_eq!(
        check(&mut client, &subject, "marketing_email").await,
        (true, ConsentStatus::Granted)
    );

    // A new text that needs fresh consent: the old grant no longer counts until given again.
    let purpose = client
        .publish_purpose_text(PublishPurposeTextRequest {
            code: "marketing_email".into(),
            text: "I agree to e-mails, including partners' offers".into(),
            requires_reconsent: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (purpose.text_version, purpose.minimum_consented_version),
        (2, 2)
    );
    assert_eq!(
        check(&mut client, &subject, "marketing_email").await,
        (false, ConsentStatus::NeedsReconsent)
    );
    client
        .record_consent(RecordConsentRequest {
            subject: party(&subject),
            purpose: "marketing_email".into(),
            evidence: evidence(Channel::Email, 2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(check(&mut client, &subject, "marketing_email").await.0);

    client
        .withdraw_consent(WithdrawConsentRequest {
            subject: party(&subject),
            purpose: "marketing_email".into(),
            evidence: evidence(Channel::Call, 0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        check(&mut client, &subject, "marketing_email").await,
        (false, ConsentStatus::Withdrawn)
    );

    let history = client
        .list_consent_history(ListConsentHistoryRequest {
            subject: party(&subject),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let statuses: Vec<ConsentStatus> = history.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses,
        [
            ConsentStatus::Withdrawn,
            ConsentStatus::Granted,
            ConsentStatus::Granted
        ],
        "newest first"
    );

    // A consent given until a moment soon lapses by itself.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 2;
    client
        .record_consent(RecordConsentRequest {
            subject: party(&subject),
            purpose: "loyalty_program".into(),
            evidence: evidence(Channel::InStore, 1),
            expire_time: Some(prost_types::Timestamp {
                seconds: soon,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(check(&mut client, &subject, "loyalty_program").await.0);
    let lapsed = eventually(Duration::from_secs(10), || {
        let mut client = client.clone();
        let subject = subject.clone();
        async move {
            (check(&mut client, &subject, "loyalty_program").await.1 == ConsentStatus::Expired)
                .then_some(())
        }
    })
    .await;
    assert!(lapsed.is_some());

    let states = client
        .get_consent_state(GetConsentStateRequest {
            subject: party(&subject),
        })
        .await
        .unwrap()
        .into_inner()
        .states;
    let summary: Vec<(String, ConsentStatus)> = states
        .iter()
        .map(|s| (s.purpose.clone(), s.status()))
        .collect();
    assert_eq!(
        summary,
        [
            ("loyalty_program".to_owned(), ConsentStatus::Expired),
            ("marketing_email".to_owned(), ConsentStatus::Withdrawn)
        ]
    );

    let events = read_topic(
        &service.broker.brokers(),
        "crm.consent.consent.v1",
        5,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 5);
    let withdrawal = ConsentChanged::decode(events[2].payload.as_slice()).unwrap();
    assert_eq!(
        (withdrawal.purpose.as_str(), withdrawal.status()),
        ("marketing_email", ConsentStatus::Withdrawn)
    );
    // The lapsed grant is announced once, as other services must stop relying on it.
    let expiry = ConsentChanged::decode(events[4].payload.as_slice()).unwrap();
    assert_eq!(
        (expiry.purpose.as_str(), expiry.status()),
        ("loyalty_program", ConsentStatus::Expired)
    );
}

#[tokio::test]
async fn the_audit_log_records_every_change_and_cannot_be_rewritten() {
    let service = TestService::start(&CONSENT).await.unwrap();
    let mut client = ConsentServiceClient::new(
        service.channel(&token("dpo", &["consent.read", "consent.write"])),
    );
    client
        .create_purpose(CreatePurposeRequest {
            purpose: Some(Purpose {
                code: "profiling".into(),
                description: "Profiling".into(),
                legal_basis: LegalBasis::LegitimateInterest as i32,
                text: "We analyse purchases".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let subject = uuid::Uuid::now_v7().to_string();
    client
        .record_consent(RecordConsentRequest {
            subject: party(&subject),
            purpose: "profiling".into(),
            evidence: evidence(Channel::Paper, 1),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = client
        .list_audit_log(ListAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["consent.granted", "purpose.created"],
        "newest first"
    );
    let mine = client
        .list_audit_log(ListAuditLogRequest {
            subject: party(&subject),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(mine.len(), 1);
    assert!(
        mine[0].details.contains("\"channel\":\"paper\""),
        "{}",
        mine[0].details
    );

    let mut db = service.db().await;
    for statement in [
        "UPDATE privacy_audit_log SET actor = 'someone else'",
        "DELETE FROM privacy_audit_log",
        "TRUNCATE privacy_audit_log",
        "UPDATE consent_records SET status = 'withdrawn'",
        "DELETE FROM consent_records",
    ] {
        assert!(
            sqlx::query(statement).execute(&mut db).await.is_err(),
            "{statement} must be refused"
        );
    }

    let bad = client
        .record_consent(RecordConsentRequest {
            subject: Some(Subject {
                kind: 0,
                id: "nope".into(),
            }),
            purpose: "nothing".into(),
            evidence: Some(Evidence::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = bad
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["subject.kind", "subject.id", "evidence.channel"]);
}

#[tokio::test]
async fn purposes_are_listed_a_page_at_a_time_in_code_order() {
    let service = TestService::start(&CONSENT).await.unwrap();
    let mut client = ConsentServiceClient::new(
        service.channel(&token("dpo", &["consent.read", "consent.write"])),
    );
    for code in ["newsletter", "analytics", "loyalty_program"] {
        client
            .create_purpose(CreatePurposeRequest {
                purpose: Some(Purpose {
                    code: code.into(),
                    description: format!("{code} purpose"),
                    legal_basis: LegalBasis::Consent as i32,
                    text: "I agree to ...".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let first = client
        .list_purposes(ListPurposesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let codes = |page: &ListPurposesResponse| -> Vec<String> {
        page.purposes.iter().map(|p| p.code.clone()).collect()
    };
    assert_eq!(codes(&first), ["analytics", "loyalty_program"]);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_purposes(ListPurposesRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&second), ["newsletter"]);
    assert!(second.next_page_token.is_empty(), "the last page says so");

    let forged = client
        .list_purposes(ListPurposesRequest {
            page_size: 2,
            page_token: "bm90LWEtdG9rZW4".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::InvalidArgument);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_purpose_is_read_updated_by_etag_and_keeps_the_history_of_its_texts() {
    let service = TestService::start(&CONSENT).await.unwrap();
    let mut client = ConsentServiceClient::new(
        service.channel(&token("dpo", &["consent.read", "consent.write"])),
    );
    let created = client
        .create_purpose(CreatePurposeRequest {
            purpose: Some(Purpose {
                code: "newsletter".into(),
                description: "Monthly newsletter".into(),
                legal_basis: LegalBasis::Consent as i32,
                text: "Send me the newsletter".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_purpose(GetPurposeRequest {
            code: "newsletter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let update = |etag: &str, description: &str| UpdatePurposeRequest {
        purpose: Some(Purpose {
            code: "newsletter".into(),
            description: description.into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["description".into()],
        }),
        ..Default::default()
    };
    let updated = client
        .update_purpose(update(&created.etag, "Weekly newsletter"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "Weekly newsletter");
    assert_ne!(updated.etag, created.etag);
    let stale = client
        .update_purpose(update(&created.etag, "Daily newsletter"))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let mut basis = update(&updated.etag, "x");
    basis.update_mask = Some(prost_types::FieldMask {
        paths: vec!["legal_basis".into()],
    });
    let refused = client.update_purpose(basis).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    client
        .publish_purpose_text(PublishPurposeTextRequest {
            code: "newsletter".into(),
            text: "Send me the weekly newsletter".into(),
            requires_reconsent: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let texts = client
        .list_purpose_texts(ListPurposeTextsRequest {
            code: "newsletter".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .texts;
    let versions: Vec<(i32, &str)> = texts.iter().map(|t| (t.version, t.text.as_str())).collect();
    assert_eq!(
        versions,
        [
            (2, "Send me the weekly newsletter"),
            (1, "Send me the newsletter")
        ]
    );
    let unknown = client
        .list_purpose_texts(ListPurposeTextsRequest {
            code: "nothing".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // The audit log narrows to one action, and to a time window.
    let updates = client
        .list_audit_log(ListAuditLogRequest {
            action: "purpose.updated".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].purpose, "newsletter");
    let future = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    };
    let none = client
        .list_audit_log(ListAuditLogRequest {
            from_time: Some(future),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(none.is_empty());
    service.stop().await.unwrap();
}
