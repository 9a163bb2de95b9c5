//! The loyalty ledger's speed through its gRPC API, next to this machine's raw PostgreSQL insert
//! rate measured in the same run, into an ordinary durable table. Not a test: it prints figures.
//!
//! The services run in this process with the production pool (10 connections) and concurrency
//! limit; logging is the test kit's (warnings only).
//!
//! `cargo bench -p crm-loyalty --bench ledger` (needs what the tests need: PostgreSQL and tansu).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use crm_proto::crm::loyalty::v1::{start_bulk_accrual_request::Selection, *};
use crm_testkit::pgbench;
use futures::{StreamExt, stream};
use sqlx::Connection;
use uuid::Uuid;

const MEMBERS: usize = 20_000;
const SINGLE_ACCRUALS: usize = 4_000;
const CONCURRENCY: usize = 16;
const BALANCE_READS: usize = 2_000;

#[tokio::main]
async fn main() {
    let suite = Suite::start().await;
    let program = suite.program().await;
    let members = seed_members(&suite, &program).await;
    let client = suite.client.clone();

    // 1. Single accruals: one RecordOperation per call, CONCURRENCY calls in flight.
    let started = Instant::now();
    let results: Vec<bool> = stream::iter(0..SINGLE_ACCRUALS)
        .map(|i| {
            let mut client = client.clone();
            let request = operation(
                &format!("bench-{i}"),
                &members[i % members.len()],
                "purchase",
                10,
            );
            async move { client.record_operation(request).await.is_ok() }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let single = rate(results.iter().filter(|ok| **ok).count(), started.elapsed());
    assert!(results.iter().all(|ok| *ok), "every accrual succeeds");

    // 2. Bulk accrual: one job crediting every member.
    let started = Instant::now();
    let mut bulk_client = client.clone();
    bulk_client
        .start_bulk_accrual(StartBulkAccrualRequest {
            job_id: "bench-bulk".into(),
            program_id: program.id.clone(),
            operation_type: "purchase".into(),
            points: 5,
            selection: Some(Selection::AllMembers(true)),
            reference: "benchmark".into(),
        })
        .await
        .unwrap();
    loop {
        let job = bulk_client
            .get_bulk_accrual(GetBulkAccrualRequest {
                job_id: "bench-bulk".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if job.status() == BulkAccrualStatus::Completed {
            assert_eq!(job.done as usize, MEMBERS);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bulk = rate(MEMBERS, started.elapsed());

    // 3. GetBalance latency, one call at a time.
    let mut latencies = Vec::with_capacity(BALANCE_READS);
    let mut reader = client.clone();
    for i in 0..BALANCE_READS {
        let started = Instant::now();
        reader
            .get_balance(GetBalanceRequest {
                account: account(&members[i % members.len()]),
            })
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];

    // 4. The same PostgreSQL, raw, into an ordinary (durable, WAL-logged) table: one-row INSERT
    // transactions from CONCURRENCY pgbench clients, and one multi-row INSERT.
    let mut db = suite.loyalty.db().await;
    sqlx::query("CREATE TABLE raw_insert (id uuid PRIMARY KEY, amount bigint NOT NULL)")
        .execute(&mut db)
        .await
        .unwrap();
    let raw_single = pgbench(
        &suite.loyalty.database.url,
        "INSERT INTO raw_insert (id, amount) VALUES (gen_random_uuid(), 1);",
        CONCURRENCY,
        SINGLE_ACCRUALS,
    )
    .await
    .unwrap()
    .tps;
    let ids: Vec<Uuid> = (0..MEMBERS).map(|_| Uuid::now_v7()).collect();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO raw_insert (id, amount) SELECT id, 1 FROM unnest($1::uuid[]) AS r(id)",
    )
    .bind(&ids)
    .execute(&mut db)
    .await
    .unwrap();
    let raw_multi = rate(MEMBERS, started.elapsed());
    db.close().await.unwrap();
    suite.assert_invariants().await;
    suite.stop().await;

    println!(
        "loyalty ledger benchmark ({MEMBERS} members, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  RecordOperation accruals/s ({CONCURRENCY} in flight):  {single:>10.0}  = {:.2} × baseline",
        single / raw_single
    );
    println!(
        "    baseline: one-row INSERT transactions/s, {CONCURRENCY} pgbench clients: {raw_single:>8.0}"
    );
    println!(
        "  bulk accrual members credited/s:                {bulk:>10.0}  = {:.2} × baseline",
        bulk / raw_multi
    );
    println!("    baseline: rows/s in one multi-row INSERT:    {raw_multi:>10.0}");
    println!(
        "  GetBalance p50 / p99, one at a time:            {:>7.2} ms / {:.2} ms",
        ms(percentile(0.50)),
        ms(percentile(0.99))
    );
}

/// Memberships inserted straight into the database: the benchmark measures the ledger, not enrolment.
async fn seed_members(suite: &Suite, program: &Program) -> Vec<Membership> {
    let mut db = suite.loyalty.db().await;
    let ids: Vec<Uuid> = (0..MEMBERS).map(|_| Uuid::now_v7()).collect();
    let parties: Vec<Uuid> = (0..MEMBERS).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO memberships (id, program_id, party_id, created_by, updated_by)
         SELECT id, $1, party, 'bench', 'bench' FROM unnest($2::uuid[], $3::uuid[]) AS m(id, party)",
    )
    .bind(Uuid::parse_str(&program.id).unwrap())
    .bind(&ids)
    .bind(&parties)
    .execute(&mut db)
    .await
    .unwrap();
    ids.iter()
        .map(|id| Membership {
            id: id.to_string(),
            program_id: program.id.clone(),
            ..Default::default()
        })
        .collect()
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
