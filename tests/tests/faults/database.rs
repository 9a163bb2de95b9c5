//! The service's PostgreSQL stopped and started under calls: a cluster of the test's own.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crm_e2e::PARTIES;
use crm_proto::crm::parties::v1::{
    CreatePartyRequest, GetPartyRequest, Party, PartyKind,
    parties_service_client::PartiesServiceClient,
};
use crm_testkit::{Broker, TestDatabase, TestService, postgres::Cluster, token};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::{authorized, with_retries};

const SERVICE: &str = "crm.parties.v1.PartiesService";
/// The acquire timeout of the service's configuration (the default).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// During the outage a call fails with UNAVAILABLE (`DATABASE_UNAVAILABLE`, with `RetryInfo`)
/// within the acquire timeout, and at once once the service has found the database gone; health
/// reports NOT_SERVING. After it, health reports SERVING and calls succeed within seconds, with
/// no restart, and every write a client was told succeeded is there, once.
pub async fn the_database_stops_and_starts() {
    let cluster = Cluster::start().await.unwrap();
    let database = TestDatabase::create_on(&cluster.admin_url()).await.unwrap();
    let broker = Broker::start().await.unwrap();
    let parties = TestService::start_with(&PARTIES, database, broker, |config| {
        crate::quiet(config);
        assert_eq!(
            config.acquire_timeout(),
            ACQUIRE_TIMEOUT,
            "configured as in production"
        );
    })
    .await
    .unwrap();
    let bearer = token("faults", &["parties.read", "parties.write"]);
    let client = PartiesServiceClient::new(parties.channel(&bearer));
    let health = HealthClient::new(parties.channel(""));
    let existing = create(&client, &bearer, "before").await;

    // A client that keeps writing through the outage, retrying each write with its request id.
    let writing = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (client, bearer) = (client.clone(), bearer.clone());
        let (writing, acknowledged) = (writing.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) {
                let id = create(&client, &bearer, &format!("writer {n}")).await;
                acknowledged.lock().unwrap().push(id);
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.pause().await.unwrap();
    let stopped = Instant::now();
    let first = get(&client, &bearer, &existing).await;
    let status = first.1.expect_err("a read while the database is down");
    assert_unavailable(&status);
    assert!(
        first.0 <= ACQUIRE_TIMEOUT + Duration::from_secs(1),
        "UNAVAILABLE within the acquire timeout, not {:?}",
        first.0
    );
    println!("first call after the stop: UNAVAILABLE in {:?}", first.0);
    let not_serving = crm_testkit::eventually(Duration::from_secs(5), || {
        let mut health = health.clone();
        async move { (status_of(&mut health).await == ServingStatus::NotServing).then_some(()) }
    })
    .await;
    assert!(not_serving.is_some(), "health reports NOT_SERVING");
    println!("NOT_SERVING {:?} after the stop", stopped.elapsed());
    let (took, answer) = get(&client, &bearer, &existing).await;
    assert_unavailable(&answer.expect_err("a read while the database is down"));
    assert!(
        took < Duration::from_secs(1),
        "once the database is known gone, calls fail at once, not after {took:?}"
    );
    println!("once NOT_SERVING: UNAVAILABLE in {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.resume().await.unwrap();
    let resumed = Instant::now();
    let serving = crm_testkit::eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move { (status_of(&mut health).await == ServingStatus::Serving).then_some(()) }
    })
    .await;
    assert!(serving.is_some(), "health reports SERVING again");
    let recovered = crm_testkit::eventually(Duration::from_secs(10), || {
        let (client, bearer, existing) = (client.clone(), bearer.clone(), existing.clone());
        async move { get(&client, &bearer, &existing).await.1.ok() }
    })
    .await;
    assert!(recovered.is_some(), "calls succeed again");
    println!("recovered {:?} after the start", resumed.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    writing.store(false, Ordering::Relaxed);
    writer.await.expect("the writer's writes");

    let acknowledged = acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let (_, found) = get(&client, &bearer, id).await;
        found.unwrap_or_else(|status| panic!("acknowledged party {id}: {status:?}"));
    }
    let mut db = parties.db().await;
    let (stored,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM parties WHERE display_name LIKE 'writer %'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(
        stored as usize,
        acknowledged.len(),
        "each write once, retries included"
    );
    println!("{} writes across the outage", acknowledged.len());
    parties.stop().await.unwrap();
}

/// Creates a party named `name`, retrying with the same request id until it is acknowledged.
async fn create(
    client: &PartiesServiceClient<crm_kit::client::TracedChannel>,
    bearer: &str,
    name: &str,
) -> String {
    let request = CreatePartyRequest {
        party: Some(Party {
            kind: PartyKind::Organization as i32,
            display_name: name.to_owned(),
            ..Default::default()
        }),
        request_id: Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let party = with_retries("CreateParty", || {
        let (mut client, request) = (client.clone(), authorized(request.clone(), bearer));
        async move { client.create_party(request).await }
    })
    .await;
    party.into_inner().id
}

/// GetParty `id`: how long it took, and its answer.
async fn get(
    client: &PartiesServiceClient<crm_kit::client::TracedChannel>,
    bearer: &str,
    id: &str,
) -> (Duration, Result<Party, tonic::Status>) {
    let started = Instant::now();
    let request = authorized(GetPartyRequest { id: id.to_owned() }, bearer);
    let answer = client.clone().get_party(request).await;
    (started.elapsed(), answer.map(|r| r.into_inner()))
}

fn assert_unavailable(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let reason = status.get_details_error_info().map(|info| info.reason);
    assert_eq!(
        reason.as_deref(),
        Some("DATABASE_UNAVAILABLE"),
        "{status:?}"
    );
    assert!(
        status.get_details_retry_info().is_some(),
        "it says when to retry: {status:?}"
    );
}

async fn status_of(health: &mut HealthClient<crm_kit::client::TracedChannel>) -> ServingStatus {
    let request = HealthCheckRequest {
        service: SERVICE.to_owned(),
    };
    match health.check(request).await {
        Ok(answer) => answer.into_inner().status(),
        Err(status) => panic!("health check: {status:?}"),
    }
}
