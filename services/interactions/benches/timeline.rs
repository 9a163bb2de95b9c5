//! Timeline pages of a party with 100,000 items, and e-mails imported per second, through the
//! gRPC API, each next to a baseline measured in the same run. Not a test: it prints figures.
//!
//! Interactions runs in this process with the production pool (10 connections) and concurrency
//! limit, beside parties, on durable tables; logging is the test kit's (warnings only).
//!
//! - Timeline: the party's 100,000 items (70,000 interactions, 15,000 notes, 5,000 tasks, 10,000
//!   loyalty facts) are written straight into the service's tables as the service writes them
//!   (the API would take minutes to fill them); every page of 50 is then read, first to last,
//!   through GetTimeline. Baselines: the same page's SQL on the database alone, and GetInteraction
//!   (one row) through the same stack.
//! - E-mails: 2,000 distinct messages of ~6 KB with a 4 KB attachment, 16 in flight, each matched
//!   to its client through parties. Baseline: RecordInteraction of the same contact, which asks
//!   parties about the client too.
//!
//! `cargo bench -p crm-interactions --bench timeline` (needs what the tests need).

use std::time::{Duration, Instant};

use crm_e2e::Suite;
use crm_interactions::store::timeline::{self as store, Filter};
use crm_kit::client::TracedChannel;
use crm_proto::crm::interactions::v1::*;
use crm_testkit::{
    CpuTimes,
    bench::{analyze, ms, ms_per_call, percentiles, phase, rate},
};
use futures::{StreamExt, stream};
use uuid::Uuid;

const PAGE: i32 = 50;
const EMAILS: usize = 2_000;
const IN_FLIGHT: usize = 16;
const EMAIL: &str = "anna.kowalska@example.pl";

type Client = interactions_service_client::InteractionsServiceClient<TracedChannel>;

#[tokio::main]
async fn main() {
    let mut suite = Suite::start().await.unwrap();
    suite.stop_interactions().await.unwrap();
    suite
        .start_interactions_with(|config| {
            config.database.max_connections = 10;
            config.grpc.concurrency_limit = 256;
        })
        .await
        .unwrap();
    let anna = suite.consumer("Anna", "Kowalska", EMAIL).await;
    let party: Uuid = anna.id.parse().unwrap();
    let person: Uuid = anna.person_id.parse().unwrap();

    phase("seeding");
    let mut db = suite.interactions_db().await;
    let items = seed(&mut db, party, person).await;
    analyze(&mut db).await;
    let client = suite.interactions_client();

    phase("timeline");
    walk(&client, &anna.id, &[]).await; // warm-up
    let (seen, latencies) = walk(&client, &anna.id, &[]).await;
    assert_eq!(seen as i64, items, "every item once");
    let (points, point_latencies) = walk(&client, &anna.id, &[TimelineKind::Points as i32]).await;
    assert_eq!(points, 10_000, "every fact once");
    let sql = walk_sql(&mut db, party).await;
    let single = get_interactions(&client, &mut db, party).await;

    phase("emails");
    let before = CpuTimes::now();
    let imported = import(&client, "bench").await;
    let import_cost = CpuTimes::now().since(&before);
    let before = CpuTimes::now();
    let recorded = record(&client, &anna.id).await;
    let record_cost = CpuTimes::now().since(&before);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("interactions benchmark ({cores} cores)");
    println!(
        "  timeline of one party: {items} items, {} pages of {PAGE}, read first to last",
        latencies.len()
    );
    report("GetTimeline page", &latencies);
    report(
        &format!("GetTimeline page, its {points} points only"),
        &point_latencies,
    );
    report("  baseline: the page's SQL alone", &sql);
    report("  baseline: GetInteraction (one row)", &single);
    println!("  e-mails ({EMAILS}, {IN_FLIGHT} in flight)");
    println!(
        "    ImportEmail:                          {imported:>8.0}/s  {:>6.2} ms of processor time each",
        per_call(&import_cost, EMAILS)
    );
    println!(
        "      baseline: RecordInteraction:        {recorded:>8.0}/s  {:>6.2} ms of processor time each",
        per_call(&record_cost, EMAILS)
    );
    for (name, cost) in [
        ("ImportEmail", &import_cost),
        ("RecordInteraction", &record_cost),
    ] {
        println!(
            "    {name} processor time per call, ms: services and client {:.2}, PostgreSQL {:.2}, broker {:.2}",
            ms_per_call(cost.own, EMAILS),
            ms_per_call(cost.of("postgres"), EMAILS),
            ms_per_call(cost.of("tansu"), EMAILS),
        );
    }
    suite.stop().await.unwrap();
}

/// Writes the party's items as the service does: rows, their clients, their timeline places.
async fn seed(db: &mut sqlx::PgConnection, party: Uuid, person: Uuid) -> i64 {
    let statements = [
        // 70,000 interactions, five minutes apart, on every channel.
        "INSERT INTO interactions (id, channel, direction, subject, body, occurred_at,
             participants, created_by, updated_by)
         SELECT gen_random_uuid(),
                (ARRAY['phone_call','email','meeting','chat','sms','letter'])[1 + n % 6],
                CASE WHEN n % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
                'Subject ' || n, repeat('Words of contact number ' || n || '. ', 20),
                now() - n * interval '5 minutes',
                jsonb_build_array(jsonb_build_object('kind', 'party', 'id', $1::text,
                    'role', 'from', 'address', '', 'display_name', '')),
                'bench', 'bench'
           FROM generate_series(1, 70000) n",
        "INSERT INTO interaction_clients (interaction_id, client_id, client_kind, linked_id,
             occurred_at)
         SELECT id, c.client, 'person', c.linked, occurred_at FROM interactions,
                (VALUES ($1, $2), ($2, $1)) c (client, linked)",
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at, channel)
         SELECT client_id, interaction_id, 'interaction', c.occurred_at, i.channel
           FROM interaction_clients c JOIN interactions i ON i.id = c.interaction_id",
        // 15,000 notes and 5,000 tasks in between.
        "INSERT INTO notes (id, party_id, text, client_ids, created_at, created_by, updated_by)
         SELECT gen_random_uuid(), $1, 'Note ' || n, ARRAY[$1, $2],
                now() - n * interval '23 minutes', 'bench', 'bench'
           FROM generate_series(1, 15000) n",
        "INSERT INTO tasks (id, title, assignee, priority, status, party_id, client_ids,
             created_at, created_by, updated_by)
         SELECT gen_random_uuid(), 'Task ' || n, 'agent', 'normal', 'open', $1, ARRAY[$1, $2],
                now() - n * interval '67 minutes', 'bench', 'bench'
           FROM generate_series(1, 5000) n",
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at)
         SELECT o, id, 'note', created_at FROM notes, unnest(client_ids) o
         UNION ALL
         SELECT o, id, 'task', created_at FROM tasks, unnest(client_ids) o",
        // 10,000 loyalty facts.
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at, source, event_type,
             reference, summary, attributes)
         SELECT o, md5('fact ' || n)::uuid, 'points', now() - n * interval '31 minutes',
                'loyalty', 'crm.loyalty.v1.PointsAccrued', md5('fact ' || n),
                '10 points accrued (purchase); balance ' || (n * 10),
                jsonb_build_object('points', 10, 'balance_after', n * 10)
           FROM generate_series(1, 10000) n, unnest(ARRAY[$1, $2]) o",
    ];
    for statement in statements {
        sqlx::query(statement)
            .bind(party)
            .bind(person)
            .execute(&mut *db)
            .await
            .unwrap();
    }
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM timeline WHERE owner_id = $1 GROUP BY kind ORDER BY kind",
    )
    .bind(party)
    .fetch_all(&mut *db)
    .await
    .unwrap();
    kinds.iter().map(|(_, n)| n).sum()
}

/// Reads every page of the party's timeline (of `kinds`); the page count and each page's time.
async fn walk(client: &Client, party: &str, kinds: &[i32]) -> (usize, Vec<Duration>) {
    let mut client = client.clone();
    let mut token = String::new();
    let mut latencies = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let started = Instant::now();
        let page = client
            .get_timeline(GetTimelineRequest {
                party_id: party.into(),
                kinds: kinds.to_vec(),
                page_size: PAGE,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        latencies.push(started.elapsed());
        assert!(!page.items.is_empty());
        seen.extend(page.items.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            return (seen.len(), latencies);
        }
        token = page.next_page_token;
    }
}

/// The same walk as SQL on the database alone.
async fn walk_sql(db: &mut sqlx::PgConnection, party: Uuid) -> Vec<Duration> {
    let filter = Filter {
        owner: party,
        kinds: Vec::new(),
        channel: None,
        after: None,
        before: None,
    };
    let mut after = None;
    let mut latencies = Vec::new();
    loop {
        let started = Instant::now();
        let page = store::page(db, &filter, after, i64::from(PAGE) + 1)
            .await
            .unwrap();
        latencies.push(started.elapsed());
        if page.len() <= PAGE as usize {
            return latencies;
        }
        let last = &page[PAGE as usize - 1];
        after = Some((last.occurred_at, last.item_id));
    }
}

/// GetInteraction of 2,000 of the party's interactions, one after another.
async fn get_interactions(
    client: &Client,
    db: &mut sqlx::PgConnection,
    party: Uuid,
) -> Vec<Duration> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT interaction_id FROM interaction_clients WHERE client_id = $1 LIMIT 2000",
    )
    .bind(party)
    .fetch_all(db)
    .await
    .unwrap();
    let mut client = client.clone();
    let mut latencies = Vec::new();
    for id in ids {
        let started = Instant::now();
        client
            .get_interaction(GetInteractionRequest { id: id.to_string() })
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies
}

/// A message from the client with a 4 KB attachment, ~6 KB in all.
fn message(n: usize, run: &str) -> Vec<u8> {
    let attachment = "QmVuY2ggYXR0YWNobWVudCBjb250ZW50Lg==\r\n".repeat(110);
    format!(
        "From: Anna Kowalska <{EMAIL}>\r\nTo: sales@ourco.example\r\n\
         Subject: =?utf-8?q?Zam=C3=B3wienie_{n}?=\r\nDate: Mon, 02 Nov 2026 09:15:00 +0100\r\n\
         Message-ID: <{run}-{n}@mail.example.pl>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--b\r\n\
         Content-Type: application/pdf; name=order.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}--b--\r\n",
        "Proszę o wycenę zamówienia. ".repeat(40)
    )
    .into_bytes()
}

async fn import(client: &Client, run: &str) -> f64 {
    let started = Instant::now();
    let answers: Vec<ImportEmailResponse> = stream::iter(0..EMAILS)
        .map(|n| {
            let mut client = client.clone();
            let request = ImportEmailRequest {
                raw_message: message(n, run),
                own_addresses: vec!["sales@ourco.example".into()],
                ..Default::default()
            };
            async move { client.import_email(request).await.unwrap().into_inner() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(answers.iter().all(|a| !a.duplicate));
    rate(EMAILS, started.elapsed())
}

async fn record(client: &Client, party: &str) -> f64 {
    let started = Instant::now();
    stream::iter(0..EMAILS)
        .map(|n| {
            let mut client = client.clone();
            let request = RecordInteractionRequest {
                interaction: Some(Interaction {
                    channel: Channel::Email as i32,
                    direction: Direction::Inbound as i32,
                    subject: format!("Zamówienie {n}"),
                    body: "Proszę o wycenę zamówienia. ".repeat(40),
                    occur_time: Some(prost_types::Timestamp {
                        seconds: 1_793_607_300,
                        nanos: 0,
                    }),
                    participants: vec![Participant {
                        kind: ParticipantKind::Party as i32,
                        id: party.into(),
                        role: ParticipantRole::From as i32,
                        address: EMAIL.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            async move { client.record_interaction(request).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    rate(EMAILS, started.elapsed())
}

fn report(name: &str, latencies: &[Duration]) {
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "    {name:<44} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} calls)",
        ms(p50),
        ms(p99),
        ms(max),
        latencies.len()
    );
}

/// Processor time of the whole machine (this process, PostgreSQL, the broker) per call, in ms.
fn per_call(cost: &CpuTimes, calls: usize) -> f64 {
    ms_per_call(cost.machine, calls)
}
