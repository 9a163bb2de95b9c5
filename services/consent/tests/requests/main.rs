//! Data-subject requests in the consent service alone: validation, verification, deadlines and
//! overdue requests, extensions, objections, operator work, cancellation, and the API surface.
//! The fan-out to the other services is tested end to end in `tests/tests/privacy.rs`.

mod contract;
mod exports;
mod lifecycle;

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
