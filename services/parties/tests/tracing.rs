//! One trace across a gRPC call and the Kafka event it caused: the caller's trace id is on the
//! exported server span, on the producer span, and in the event's `traceparent` header.
//! Its own test binary: the process's telemetry must export to this test's receiver.

use crm_kit::app::Service;
use std::{collections::HashMap, time::Duration};

use crm_kit::{
    config::{LogFormat, TelemetryConfig},
    telemetry::{Telemetry, adopt_parent, extract},
};
use crm_proto::crm::parties::v1::{
    CreatePartyRequest, Party, PartyKind, parties_service_client::PartiesServiceClient,
};
use crm_testkit::{OtlpReceiver, TestService, eventually, read_topic, token};
use tracing::Instrument;

const PARTIES: Service = crm_parties::SERVICE;

#[tokio::test]
async fn a_calls_trace_id_reaches_its_server_span_and_its_event() {
    let (receiver, endpoint) = OtlpReceiver::start().await.unwrap();
    let telemetry = Telemetry::init(
        "parties",
        &TelemetryConfig {
            otlp_endpoint: Some(endpoint),
            log_format: LogFormat::Pretty,
            log_filter: "warn".into(),
            sample_ratio: 1.0,
        },
    )
    .unwrap();
    let service = TestService::start(&PARTIES).await.unwrap();
    let mut client =
        PartiesServiceClient::new(service.channel(&token("tracer", &["parties.write"])));

    // The call is made inside an upstream service's span, itself continuing a caller's trace:
    // the traced channel carries that trace on to the parties service.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let upstream = tracing::info_span!("upstream", trace_id = tracing::field::Empty);
    let incoming = HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )]);
    adopt_parent(&upstream, extract(&incoming));
    let request = CreatePartyRequest {
        party: Some(Party {
            kind: PartyKind::Organization as i32,
            display_name: "Traced".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let party = client
        .create_party(request)
        .instrument(upstream)
        .await
        .unwrap()
        .into_inner();

    let records = read_topic(
        &service.broker.brokers(),
        "crm.parties.party.v1",
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 1);
    let traceparent = &records[0].headers["traceparent"];
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id),
        "{traceparent}"
    );

    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let spans = eventually(Duration::from_secs(10), || {
        telemetry.flush();
        let spans = receiver.spans();
        let found = |kind: i32, name: &str| {
            spans
                .iter()
                .any(|s| s.kind == kind && s.name == name && hex(&s.trace_id) == trace_id)
        };
        // Span kinds per OTLP: 2 = SERVER, 3 = CLIENT, 4 = PRODUCER.
        let complete = found(3, "crm.parties.v1.PartiesService/CreateParty")
            && found(2, "crm.parties.v1.PartiesService/CreateParty")
            && found(4, "crm.parties.party.v1 publish");
        async move { complete.then_some(spans) }
    })
    .await
    .expect("the server and producer spans of the call are exported with its trace id");

    let producer = spans
        .iter()
        .find(|s| s.kind == 4 && hex(&s.trace_id) == trace_id)
        .unwrap();
    assert_eq!(
        traceparent.split('-').nth(2),
        Some(hex(&producer.span_id).as_str()),
        "consumers continue from the producer span"
    );
    let key = |name: &str| {
        producer
            .attributes
            .iter()
            .find(|a| a.key == name)
            .and_then(|a| a.value.clone())
    };
    assert!(key("messaging.system").is_some() && key("messaging.destination.name").is_some());
    assert_eq!(records[0].key.as_deref(), Some(party.id.as_str()));
}
