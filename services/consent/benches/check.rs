//! How fast `CheckConsent` answers through gRPC: it sits in every send and enrolment path.
//! Not a test: it prints figures. `cargo bench -p crm-consent --bench check` (needs PostgreSQL
//! and tansu, as the tests do).

use crm_kit::app::Service;
use std::time::{Duration, Instant};

use crm_proto::crm::consent::v1::{consent_service_client::ConsentServiceClient, *};
use crm_testkit::{TestService, token};
use futures::{StreamExt, stream};
use uuid::Uuid;

const CONSENT: Service = crm_consent::SERVICE;

const SUBJECTS: usize = 2_000;
const SEQUENTIAL: usize = 5_000;
const CONCURRENT: usize = 20_000;
const IN_FLIGHT: usize = 16;

#[tokio::main]
async fn main() {
    let service = TestService::start(&CONSENT).await.unwrap();
    let client = ConsentServiceClient::new(
        service.channel(&token("bench", &["consent.read", "consent.write"])),
    );
    client
        .clone()
        .create_purpose(CreatePurposeRequest {
            purpose: Some(Purpose {
                code: "marketing_email".into(),
                description: "E-mail offers".into(),
                legal_basis: LegalBasis::Consent as i32,
                text: "I agree".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let subjects: Vec<String> = (0..SUBJECTS).map(|_| Uuid::now_v7().to_string()).collect();
    stream::iter(subjects.iter().step_by(2))
        .for_each_concurrent(IN_FLIGHT, |id| {
            let mut client = client.clone();
            async move {
                client
                    .record_consent(RecordConsentRequest {
                        subject: Some(Subject {
                            kind: SubjectKind::Party as i32,
                            id: id.clone(),
                        }),
                        purpose: "marketing_email".into(),
                        evidence: Some(Evidence {
                            channel: Channel::WebForm as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        })
        .await;
    let check = |i: usize| CheckConsentRequest {
        subject: Some(Subject {
            kind: SubjectKind::Party as i32,
            id: subjects[i % SUBJECTS].clone(),
        }),
        purpose: "marketing_email".into(),
    };

    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    let mut sequential = client.clone();
    for i in 0..SEQUENTIAL {
        let started = Instant::now();
        sequential.check_consent(check(i)).await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];

    let started = Instant::now();
    stream::iter(0..CONCURRENT)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let mut client = client.clone();
            let request = check(i);
            async move {
                client.check_consent(request).await.unwrap();
            }
        })
        .await;
    let rate = CONCURRENT as f64 / started.elapsed().as_secs_f64();
    service.stop().await.unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("CheckConsent benchmark ({SUBJECTS} subjects, half of them granted)");
    println!(
        "  latency p50 / p99, one call at a time:  {:.2} ms / {:.2} ms",
        ms(percentile(0.50)),
        ms(percentile(0.99))
    );
    println!("  checks/s with {IN_FLIGHT} in flight:            {rate:>8.0}");
}
