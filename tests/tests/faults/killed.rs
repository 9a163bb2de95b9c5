//! Loyalty killed with SIGKILL under concurrent writes and started again on the same database.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_proto::crm::loyalty::v1::{
    AccountRef, GetBalanceRequest, PointsAccrued, RecordOperationRequest,
    loyalty_service_client::LoyaltyServiceClient,
};
use crm_testkit::{
    Broker, Record, TestDatabase, process::ServiceProcess, read_topic_until, seed, token,
};
use prost::Message;
use uuid::Uuid;

use crate::{authorized, with_retries};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 500;
const MEMBERS: usize = 8;
/// Acknowledged writes before the kill: about a third.
const KILL_AFTER: usize = 700;
const ACCRUED: &str = "crm.loyalty.v1.PointsAccrued";
/// Records the outbox relay sends in one round: the most a kill may make it publish again.
const RELAY_BATCH: usize = 500;

/// Points of the `i`th operation: 1 to 7, so a lost or doubled operation shows in a balance.
fn points(i: usize) -> i64 {
    1 + (i % 7) as i64
}

/// Every acknowledged operation has exactly one effect (each balance is the sum of its member's
/// operations), the ledger's invariants hold, and each operation has exactly one event on the
/// points topic (redeliveries of it carry the same `ce_id`).
pub async fn loyalty_killed_under_concurrent_writes() {
    let broker = Broker::start().await.unwrap();
    let database = TestDatabase::create().await.unwrap();
    // Accruals ask neither peer: nothing listens where they are said to be.
    let peers = ["PARTIES", "CONSENT"].map(|peer| {
        (
            format!("CRM__PEERS__{peer}"),
            "http://127.0.0.1:9".to_owned(),
        )
    });
    let mut loyalty =
        ServiceProcess::start("loyalty", &database.url, &broker.brokers(), &peers).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", loyalty.addr))
        .unwrap()
        .connect_lazy();
    let bearer = token("faults", &["loyalty.read", "loyalty.write"]);
    let mut client =
        LoyaltyServiceClient::with_interceptor(channel.clone(), seed::Bearer::new(&bearer));
    let program = seed::loyalty_club(&mut client).await;
    let members: Vec<Uuid> = (0..MEMBERS).map(|_| Uuid::now_v7()).collect();
    seed::memberships(&mut database.connect().await, &program.id, &members).await;

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (channel, bearer, members) = (channel.clone(), bearer.clone(), members.clone());
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let loyalty = LoyaltyServiceClient::new(channel);
                for i in 0..PER_CLIENT {
                    let n = client * PER_CLIENT + i;
                    let request = RecordOperationRequest {
                        operation_id: format!("op-{n}"),
                        account: Some(AccountRef {
                            membership_id: members[n % MEMBERS].to_string(),
                            ..Default::default()
                        }),
                        operation_type: "purchase".into(),
                        points: points(n),
                        ..Default::default()
                    };
                    with_retries("RecordOperation", || {
                        let (mut loyalty, request) = (loyalty.clone(), request.clone());
                        let request = authorized(request, &bearer);
                        async move { loyalty.record_operation(request).await }
                    })
                    .await;
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let give_up = Instant::now() + Duration::from_secs(120);
    while acknowledged.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            Instant::now() < give_up && !clients.iter().any(|c| c.is_finished()),
            "the clients stopped before {KILL_AFTER} acknowledged operations"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loyalty.kill().await;
    let killed_at = acknowledged.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    loyalty.restart().await;
    for client in clients {
        client.await.expect("a client's operations");
    }
    println!("killed after {killed_at} acknowledged operations");

    let mut client = LoyaltyServiceClient::new(channel.clone());
    let total = CLIENTS * PER_CLIENT;
    let mut expected: BTreeMap<Uuid, i64> = BTreeMap::new();
    for n in 0..total {
        *expected.entry(members[n % MEMBERS]).or_default() += points(n);
    }
    for (member, sum) in &expected {
        let balance = client
            .get_balance(authorized(
                GetBalanceRequest {
                    account: Some(AccountRef {
                        membership_id: member.to_string(),
                        ..Default::default()
                    }),
                },
                &bearer,
            ))
            .await
            .expect("a balance")
            .into_inner();
        assert_eq!(balance.balance, *sum, "member {member}'s balance");
    }

    let pool = database.kit_pool().await.unwrap();
    assert!(
        (crm_loyalty::verify::TASK.run)(pool).await.unwrap(),
        "every ledger invariant holds"
    );

    // Each operation's accrual events by their ce_id: redeliveries share one.
    let accruals = |records: &[Record]| {
        let mut events: HashMap<String, HashSet<String>> = HashMap::new();
        for record in records {
            if record.headers.get("ce_type").map(String::as_str) == Some(ACCRUED) {
                let accrued =
                    PointsAccrued::decode(record.payload.as_slice()).expect("PointsAccrued");
                events
                    .entry(accrued.operation_id)
                    .or_default()
                    .insert(record.headers["ce_id"].clone());
            }
        }
        events
    };
    let records = read_topic_until(
        &broker.brokers(),
        crm_loyalty::events::POINTS.name,
        Duration::from_secs(30),
        |records| accruals(records).len() >= total,
    )
    .await
    .unwrap();
    let events = accruals(&records);
    assert_eq!(
        events.len(),
        total,
        "every operation's event is on the topic"
    );
    let doubled: Vec<_> = events.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(doubled.is_empty(), "one event per operation: {doubled:?}");
    // Everything on the topic, to count the records published twice.
    let everything = read_topic_until(
        &broker.brokers(),
        crm_loyalty::events::POINTS.name,
        Duration::from_secs(6),
        |_| false,
    )
    .await
    .unwrap();
    let published = everything
        .iter()
        .filter(|r| r.headers.get("ce_type").map(String::as_str) == Some(ACCRUED))
        .count();
    let again = published.saturating_sub(total);
    println!("{total} operations, {again} records published again (same ce_id)");
    assert!(
        again <= RELAY_BATCH,
        "a killed relay republishes at most one round of records, not {again}"
    );
    loyalty.stop().await;
}
