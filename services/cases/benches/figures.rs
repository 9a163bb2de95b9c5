//! GetFunnel over 100,000 cases, and offers rendered per second, through the gRPC API, each next
//! to a baseline measured in the same run. Not a test: it prints figures.
//!
//! Cases runs in this process with the production pool (10 connections) and concurrency limit,
//! beside parties and loyalty, on durable tables; logging is the test kit's (warnings only).
//!
//! - Funnel: 100,000 cases of one pipeline (six phases, 20 owners, two years of creation dates)
//!   and their 220,000 visits are written straight into the service's tables as the service
//!   writes them (the API would take many minutes to fill them); GetFunnel is then called for the
//!   whole pipeline and for one owner. Baselines: the funnel's two queries on the database alone,
//!   and GetPipeline (one row) through the same stack.
//! - Renders: an offer of 20 lines rendered as PDF (Typst) as many at once as there are cores,
//!   with the process's resident memory before and after. Baselines: the same offer as HTML, and
//!   GetOffer, through the same stack.
//!
//! `cargo bench -p crm-cases --bench figures` (needs what the tests need).

use std::time::{Duration, Instant};

use crm_cases::store::funnel::{self as store, Filter};
use crm_e2e::Suite;
use crm_proto::crm::cases::v1::*;
use crm_testkit::{
    CpuTimes,
    bench::{analyze, ms, ms_per_call, percentiles, phase, rate},
};
use futures::{StreamExt, stream};
use uuid::Uuid;

const CASES: i64 = 100_000;
const FUNNELS: usize = 100;
const RENDERS: usize = 200;
const PHASES: [(&str, PhaseGroup, i32); 6] = [
    ("lead", PhaseGroup::Potential, 10),
    ("qualified", PhaseGroup::Potential, 25),
    ("proposal", PhaseGroup::InProgress, 50),
    ("negotiation", PhaseGroup::InProgress, 75),
    ("won", PhaseGroup::Won, 100),
    ("lost", PhaseGroup::Lost, 0),
];

#[tokio::main]
async fn main() {
    let mut suite = Suite::start().await.unwrap();
    suite.stop_cases().await.unwrap();
    suite
        .start_cases_with(|config| {
            config.database.max_connections = 10;
            config.grpc.concurrency_limit = 256;
        })
        .await
        .unwrap();
    let mut cases = suite.cases_client();
    let pipeline = cases
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "Sales".into(),
                phases: PHASES
                    .iter()
                    .map(|(code, group, probability)| Phase {
                        code: code.to_string(),
                        display_name: code.to_string(),
                        group: *group as i32,
                        probability: *probability,
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let pipeline_id: Uuid = pipeline.id.parse().unwrap();

    phase("seeding");
    let mut db = suite.cases_db().await;
    let visits = seed(&mut db, pipeline_id).await;
    analyze(&mut db).await;

    phase("funnel");
    let request = |owner: &str| GetFunnelRequest {
        pipeline_id: pipeline.id.clone(),
        currency_code: "PLN".into(),
        owner: owner.into(),
        ..Default::default()
    };
    let whole = cases.get_funnel(request("")).await.unwrap().into_inner();
    let counted: i64 = whole.phases.iter().map(|p| p.count).sum();
    assert_eq!(counted, CASES, "every case in the funnel once");
    let funnel = timed(FUNNELS, || {
        let mut cases = cases.clone();
        let request = request("");
        async move { cases.get_funnel(request).await.unwrap() }
    })
    .await;
    let owners = timed(FUNNELS, || {
        let mut cases = cases.clone();
        let request = request("owner-7");
        async move { cases.get_funnel(request).await.unwrap() }
    })
    .await;
    let sql = funnel_sql(&mut db, pipeline_id).await;
    let one_row = timed(FUNNELS, || {
        let mut cases = cases.clone();
        let id = pipeline.id.clone();
        async move { cases.get_pipeline(GetPipelineRequest { id }).await.unwrap() }
    })
    .await;

    phase("renders");
    let offer = offer(&suite).await;
    let offers = suite.offers_client();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let render = |format: DocumentFormat| {
        let offers = offers.clone();
        let id = offer.id.clone();
        move || {
            let mut offers = offers.clone();
            let request = RenderOfferRequest {
                id: id.clone(),
                format: format as i32,
                ..Default::default()
            };
            async move {
                let rendered = offers.render_offer(request).await.unwrap().into_inner();
                assert!(!rendered.content.is_empty());
            }
        }
    };
    concurrently(cores, 10, render(DocumentFormat::Pdf)).await; // warm-up: fonts, template
    let resident_before = resident_mib();
    let before = CpuTimes::now();
    let pdf = concurrently(cores, RENDERS, render(DocumentFormat::Pdf)).await;
    let pdf_cost = CpuTimes::now().since(&before);
    let resident_after = resident_mib();
    let html = concurrently(cores, RENDERS, render(DocumentFormat::Html)).await;
    let get = concurrently(cores, RENDERS, || {
        let mut offers = offers.clone();
        let id = offer.id.clone();
        async move { offers.get_offer(GetOfferRequest { id }).await.unwrap() }
    })
    .await;

    println!("cases benchmark ({cores} cores)");
    println!("  funnel of one pipeline: {CASES} cases, {visits} visits, {FUNNELS} calls each");
    report("GetFunnel, whole pipeline", &funnel);
    report("GetFunnel, one owner's (5,000 cases)", &owners);
    report("  baseline: the funnel's two queries alone", &sql);
    report("  baseline: GetPipeline (one row)", &one_row);
    println!("  offers: one of 20 lines, {RENDERS} renders, {cores} at once");
    println!(
        "    RenderOffer PDF:                      {pdf:>8.1}/s  {:>6.1} ms of processor time each",
        ms_per_call(pdf_cost.own, RENDERS)
    );
    println!("      baseline: RenderOffer HTML:         {html:>8.1}/s");
    println!("      baseline: GetOffer:                 {get:>8.1}/s");
    println!(
        "    resident memory of the process (services and client): {resident_before:.0} MiB before the PDF renders, {resident_after:.0} MiB after"
    );
    suite.stop().await.unwrap();
}

/// 100,000 cases spread over the phases (40 % lead, 20 % qualified, 10 % each of proposal,
/// negotiation, won and lost), 20 owners, two years; each case's visits along its way. The
/// number of visits.
async fn seed(db: &mut sqlx::PgConnection, pipeline: Uuid) -> i64 {
    sqlx::query(
        "INSERT INTO cases (id, pipeline_id, title, kind, owner, phase, status, currency_code,
             expected_value, probability, closed_at, created_at, created_by, updated_by)
         SELECT gen_random_uuid(), $1, 'Case ' || n, 'sales', 'owner-' || (n % 20), p.phase,
                CASE p.phase WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END,
                'PLN', 1000 + (n % 97) * 50, p.probability,
                CASE WHEN p.phase IN ('won', 'lost') THEN now() END,
                now() - (n % 730) * interval '1 day', 'bench', 'bench'
           FROM generate_series(1, $2) n,
                LATERAL (SELECT (ARRAY['lead', 'lead', 'lead', 'lead', 'qualified', 'qualified',
                                       'proposal', 'negotiation', 'won', 'lost'])[1 + n % 10]
                                    AS phase,
                                (ARRAY[10, 10, 10, 10, 25, 25, 50, 75, 100, 0])[1 + n % 10]
                                    AS probability) p",
    )
    .bind(pipeline)
    .bind(CASES)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO phase_visits (case_id, phase, entered_at, left_at)
         SELECT c.id, v.code, c.created_at + (v.i - 1) * interval '3 days',
                CASE WHEN v.code = c.phase THEN NULL ELSE c.created_at + v.i * interval '3 days' END
           FROM cases c,
                LATERAL unnest(CASE c.phase
                    WHEN 'lost' THEN ARRAY['lead', 'lost']
                    WHEN 'won' THEN ARRAY['lead', 'qualified', 'proposal', 'negotiation', 'won']
                    ELSE (ARRAY['lead', 'qualified', 'proposal', 'negotiation'])
                         [1:array_position(ARRAY['lead', 'qualified', 'proposal', 'negotiation'],
                                           c.phase)]
                END) WITH ORDINALITY v (code, i)
          WHERE c.pipeline_id = $1",
    )
    .bind(pipeline)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM phase_visits")
        .fetch_one(&mut *db)
        .await
        .unwrap()
}

/// The funnel's two queries, straight on the database.
async fn funnel_sql(db: &mut sqlx::PgConnection, pipeline: Uuid) -> Vec<Duration> {
    let filter = Filter {
        pipeline,
        currency: "PLN".into(),
        ..Default::default()
    };
    let order: Vec<String> = PHASES.iter().map(|p| p.0.to_string()).collect();
    let mut latencies = Vec::with_capacity(FUNNELS);
    for _ in 0..FUNNELS {
        let started = Instant::now();
        store::standing(db, &filter).await.unwrap();
        store::flow(db, &filter, &order).await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies
}

/// An offer of 20 lines in Polish for a client of the parties service.
async fn offer(suite: &Suite) -> Offer {
    let anna = suite.consumer("Anna", "Kowalska", "anna@example.pl").await;
    let lines = (1..=20)
        .map(|n| OfferLine {
            description: format!("Pozycja {n}: lodówka z zamrażarką, klasa A, 300 l"),
            quantity: format!("{}.5", n % 4 + 1),
            unit: "szt.".into(),
            unit_price: format!("{}.99", 100 * n),
            discount_percent: (n % 3 * 5).to_string(),
            tax_code: if n % 5 == 0 { "8" } else { "23" }.into(),
            tax_percent: if n % 5 == 0 { "8" } else { "23" }.into(),
            ..Default::default()
        })
        .collect();
    suite
        .offers_client()
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                party_id: anna.id,
                title: "Wyposażenie kuchni".into(),
                currency_code: "PLN".into(),
                locale: "pl-PL".into(),
                notes: "Dostawa w ciągu 14 dni.".into(),
                ..Default::default()
            }),
            lines,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// `calls` calls one after another; each one's time.
async fn timed<F, Fut, T>(calls: usize, call: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        latencies.push(started.elapsed());
    }
    latencies
}

/// `calls` calls, `in_flight` at once; calls per second.
async fn concurrently<F, Fut, T>(in_flight: usize, calls: usize, call: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = Instant::now();
    stream::iter(0..calls)
        .map(|_| call())
        .buffer_unordered(in_flight)
        .for_each(|_| async {})
        .await;
    rate(calls, started.elapsed())
}

fn report(name: &str, latencies: &[Duration]) {
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "    {name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        ms(p50),
        ms(p99),
        ms(max)
    );
}

/// This process's resident set, in MiB.
fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
