//! One trace across every hop: a loyalty enrolment from the caller's client span through
//! loyalty's calls to parties and consent to the event it publishes, and a consent withdrawal
//! through its event, loyalty's consumer and the suspension event that consumer causes.
//! Its own test binary: the process's telemetry exports to this file's receiver.

use std::{
    collections::HashMap,
    sync::{OnceLock, mpsc},
    time::Duration,
};

use crm_e2e::{LOYALTY_PROGRAM, Suite};
use crm_kit::{
    config::{LogFormat, TelemetryConfig},
    telemetry::{Telemetry, adopt_parent, extract},
};
use crm_proto::crm::{
    loyalty::v1::{EnrollRequest, Membership},
    parties::v1::{CreatePartyRequest, Party, PartyKind, PersonName},
};
use crm_testkit::{OtlpReceiver, eventually, read_topic};
use opentelemetry_proto::tonic::trace::v1::Span;
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(30);
const MEMBERSHIP_TOPIC: &str = "crm.loyalty.membership.v1";

// Span kinds in OTLP.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// The receiver every span of the process goes to, and the telemetry exporting them: both on a
/// runtime of their own, which outlives each test's.
fn telemetry() -> &'static (OtlpReceiver, Telemetry) {
    static SHARED: OnceLock<(OtlpReceiver, Telemetry)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (started, shared) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async move {
                let (receiver, endpoint) = OtlpReceiver::start().await.expect("the receiver");
                let config = TelemetryConfig {
                    otlp_endpoint: Some(endpoint),
                    log_format: LogFormat::Pretty,
                    log_filter: "warn".into(),
                    sample_ratio: 1.0,
                };
                let telemetry = Telemetry::init("crm-e2e", &config).expect("telemetry");
                started.send((receiver, telemetry)).expect("the test waits");
                std::future::pending::<()>().await;
            });
        });
        shared.recv().expect("telemetry starts")
    })
}

/// A span continuing a caller's new trace, as an integrator's request arrives with a
/// `traceparent`; the trace id with it.
fn caller_span() -> (tracing::Span, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("integrator", trace_id = tracing::field::Empty);
    let incoming = HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )]);
    adopt_parent(&span, extract(&incoming));
    (span, trace_id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace, found by kind and name.
struct Trace(Vec<Span>);

impl Trace {
    /// Waits until the trace holds a span of every (kind, name) in `expected`.
    async fn of(trace_id: &str, expected: &[(i32, &str)]) -> Self {
        let (receiver, telemetry) = telemetry();
        let spans = eventually(WAIT, || {
            telemetry.flush();
            let spans: Vec<Span> = receiver
                .spans()
                .into_iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .collect();
            let complete = expected
                .iter()
                .all(|(kind, name)| spans.iter().any(|s| s.kind == *kind && s.name == *name));
            async move { complete.then_some(spans) }
        })
        .await;
        let spans = spans.unwrap_or_else(|| {
            let seen: Vec<(i32, String)> = receiver
                .spans()
                .into_iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .map(|s| (s.kind, s.name))
                .collect();
            panic!("trace {trace_id} lacks some of {expected:?}; it holds {seen:?}")
        });
        Self(spans)
    }

    fn span(&self, kind: i32, name: &str) -> &Span {
        self.0
            .iter()
            .find(|s| s.kind == kind && s.name == name)
            .expect("a span found before")
    }

    /// Whether `span` descends from `ancestor` through the trace's spans.
    fn descends(&self, span: &Span, ancestor: &Span) -> bool {
        let mut parent = span.parent_span_id.clone();
        while !parent.is_empty() {
            if parent == ancestor.span_id {
                return true;
            }
            match self.0.iter().find(|s| s.span_id == parent) {
                Some(next) => parent = next.parent_span_id.clone(),
                None => return false,
            }
        }
        false
    }
}

/// A person with consent to the loyalty program, and the program.
async fn person_with_consent(suite: &Suite) -> (Party, String) {
    let party = suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: "Teodor".into(),
                    family_name: "Wiśniewski".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    suite.loyalty_purpose().await;
    suite.consent_to(&party.id, LOYALTY_PROGRAM, true).await;
    let program = suite.loyalty_program().await;
    (party, program.id)
}

/// The membership topic's record whose `traceparent` continues `trace_id`.
async fn membership_event_in(suite: &Suite, trace_id: &str) -> HashMap<String, String> {
    let brokers = suite.broker.brokers();
    eventually(WAIT, || {
        let brokers = brokers.clone();
        async move {
            let records = read_topic(
                &brokers,
                MEMBERSHIP_TOPIC,
                usize::MAX,
                Duration::from_secs(2),
            )
            .await
            .ok()?;
            records
                .into_iter()
                .find(|r| {
                    r.headers
                        .get("traceparent")
                        .is_some_and(|t| t.split('-').nth(1) == Some(trace_id))
                })
                .map(|r| r.headers)
        }
    })
    .await
    .unwrap_or_else(|| panic!("no {MEMBERSHIP_TOPIC} event carries trace {trace_id}"))
}

#[tokio::test]
async fn an_enrolment_is_one_trace_from_the_caller_through_its_peers_to_its_event() {
    telemetry();
    let suite = Suite::start().await.unwrap();
    let (party, program_id) = person_with_consent(&suite).await;

    let (caller, trace_id) = caller_span();
    let membership: Membership = suite
        .loyalty_client()
        .enroll(EnrollRequest {
            program_id,
            party_id: party.id.clone(),
            ..Default::default()
        })
        .instrument(caller)
        .await
        .unwrap()
        .into_inner();

    let enroll = "crm.loyalty.v1.LoyaltyService/Enroll";
    let get_party = "crm.parties.v1.PartiesService/GetParty";
    let check_consent = "crm.consent.v1.ConsentService/CheckConsent";
    let publish = "crm.loyalty.membership.v1 publish";
    let trace = Trace::of(
        &trace_id,
        &[
            (CLIENT, enroll),
            (SERVER, enroll),
            (CLIENT, get_party),
            (SERVER, get_party),
            (CLIENT, check_consent),
            (SERVER, check_consent),
            (PRODUCER, publish),
        ],
    )
    .await;
    let server = trace.span(SERVER, enroll);
    assert_eq!(server.parent_span_id, trace.span(CLIENT, enroll).span_id);
    for peer_call in [get_party, check_consent] {
        let client = trace.span(CLIENT, peer_call);
        assert!(
            trace.descends(client, server),
            "{peer_call} is called by Enroll"
        );
        assert_eq!(
            trace.span(SERVER, peer_call).parent_span_id,
            client.span_id,
            "{peer_call}'s server span is a child of loyalty's call"
        );
    }
    let producer = trace.span(PRODUCER, publish);
    assert!(
        trace.descends(producer, server),
        "the event belongs to Enroll"
    );

    let headers = membership_event_in(&suite, &trace_id).await;
    assert_eq!(
        headers["traceparent"].split('-').nth(2),
        Some(hex(&producer.span_id).as_str()),
        "a consumer of {} continues from the producer span",
        membership.id
    );
}

#[tokio::test]
async fn a_withdrawal_is_one_trace_through_loyalty_s_consumer_to_the_suspension() {
    telemetry();
    let suite = Suite::start().await.unwrap();
    let (party, program_id) = person_with_consent(&suite).await;
    suite
        .loyalty_client()
        .enroll(EnrollRequest {
            program_id,
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let (caller, trace_id) = caller_span();
    suite
        .consent_to(&party.id, LOYALTY_PROGRAM, false)
        .instrument(caller)
        .await;

    let withdraw = "crm.consent.v1.ConsentService/WithdrawConsent";
    let published = "crm.consent.consent.v1 publish";
    let consumed = "crm.consent.consent.v1 process";
    let suspension = "crm.loyalty.membership.v1 publish";
    let trace = Trace::of(
        &trace_id,
        &[
            (SERVER, withdraw),
            (PRODUCER, published),
            (CONSUMER, consumed),
            (PRODUCER, suspension),
        ],
    )
    .await;
    let producer = trace.span(PRODUCER, published);
    assert!(trace.descends(producer, trace.span(SERVER, withdraw)));
    // Interactions consumes the topic too (for its timelines): loyalty's span is the one the
    // suspension comes from.
    let suspended = trace.span(PRODUCER, suspension);
    let consumer = trace
        .0
        .iter()
        .find(|s| s.kind == CONSUMER && s.name == consumed && trace.descends(suspended, s))
        .expect("the suspension is published from a consumer's trace");
    assert_eq!(
        consumer.parent_span_id, producer.span_id,
        "loyalty's consumer continues from consent's producer span"
    );

    let headers = membership_event_in(&suite, &trace_id).await;
    assert_eq!(
        headers["traceparent"].split('-').nth(2),
        Some(hex(&suspended.span_id).as_str())
    );
}
