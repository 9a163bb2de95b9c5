//! Reward orders placed per second through the gRPC API, next to the rate of the one remote step
//! every order takes, loyalty's HoldPoints alone, measured in the same run. Not a test: it prints
//! figures.
//!
//! Every service runs in this process with the production pool (10 connections) and concurrency
//! limit, on durable tables; logging is the test kit's (warnings only). Orders go to 200 members
//! and spread over 8 rewards in 2 warehouses, 16 in flight.
//!
//! `cargo bench -p crm-rewards --bench orders` (needs what the tests need: PostgreSQL and tansu).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use crm_proto::crm::{
    loyalty::v1::{AccountRef, HoldPointsRequest, Membership},
    rewards::v1::*,
};
use crm_testkit::{
    CpuTimes,
    bench::{analyze, ms_per_call, phase, rate},
};
use futures::{StreamExt, stream};

const IN_FLIGHT: usize = 16;
const ORDERS: usize = 3_000;
const MEMBERS: usize = 200;

#[tokio::main]
async fn main() {
    let (mut suite, program) = start().await;
    let production = |config: &mut crm_kit::config::Config| {
        config.database.max_connections = 10;
        config.grpc.concurrency_limit = 256;
    };
    suite.stop_rewards().await.unwrap();
    suite.stop_loyalty().await.unwrap();
    suite.start_loyalty_with(production).await.unwrap();
    suite.start_rewards_with(production).await.unwrap();

    let mut client = suite.rewards_client();
    let stores = [
        warehouse(&mut client, "north").await,
        warehouse(&mut client, "south").await,
    ];
    let mut rewards = Vec::new();
    for i in 0..8 {
        let reward = create(&mut client, material(&program, &format!("Reward {i}"), 10)).await;
        for store in &stores {
            receive(&mut client, &reward, store, 1_000_000).await;
        }
        rewards.push(reward);
    }
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(member_with_points(&suite, &program, &format!("Member {i}"), 1_000_000).await);
    }
    let mut db = suite.rewards_db().await;

    // Warm-up: every table holds rows before the statistics are taken.
    place(&client, &members, &rewards, "warm-up", 500).await;
    analyze(&mut db).await;
    analyze(&mut suite.loyalty_db().await).await;

    phase("holds");
    let before = CpuTimes::now();
    let holds = hold(&suite, &members, ORDERS).await;
    let holds_cost = CpuTimes::now().since(&before);
    phase("orders");
    let before = CpuTimes::now();
    let orders = place(&client, &members, &rewards, "bench", ORDERS).await;
    let orders_cost = CpuTimes::now().since(&before);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "reward orders benchmark ({MEMBERS} members, 8 rewards, {cores} cores, {IN_FLIGHT} in flight)"
    );
    println!(
        "  PlaceRewardOrder (reserve, hold, confirm):  {:>8.0}/s  {:>6.2} ms of processor time each",
        orders,
        per_call(&orders_cost, ORDERS)
    );
    println!(
        "    baseline: loyalty HoldPoints alone:        {:>8.0}/s  {:>6.2} ms of processor time each",
        holds,
        per_call(&holds_cost, ORDERS)
    );
    for (name, cost) in [
        ("PlaceRewardOrder", &orders_cost),
        ("HoldPoints", &holds_cost),
    ] {
        println!(
            "  {name} processor time per call, ms: services and client {:.2}, PostgreSQL {:.2}, broker {:.2}",
            ms_per_call(cost.own, ORDERS),
            ms_per_call(cost.of("postgres"), ORDERS),
            ms_per_call(cost.of("tansu"), ORDERS),
        );
    }
    suite.stop().await.unwrap();
}

/// Places `count` orders of one unit, `IN_FLIGHT` at a time; orders per second.
async fn place(
    client: &Client,
    members: &[Membership],
    rewards: &[Reward],
    run: &str,
    count: usize,
) -> f64 {
    let started = Instant::now();
    let placed: Vec<RewardOrder> = stream::iter(0..count)
        .map(|i| {
            let mut client = client.clone();
            let request = order(
                &members[i % members.len()],
                &[(&rewards[i % rewards.len()], 1)],
                home(),
                &format!("{run}-{i}"),
            );
            async move {
                client
                    .place_reward_order(request)
                    .await
                    .unwrap()
                    .into_inner()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(
        placed
            .iter()
            .all(|o| o.status() == RewardOrderStatus::Confirmed)
    );
    rate(count, started.elapsed())
}

/// `count` holds straight to loyalty, `IN_FLIGHT` at a time; holds per second.
async fn hold(suite: &crm_e2e::Suite, members: &[Membership], count: usize) -> f64 {
    let loyalty = suite.loyalty_client();
    let started = Instant::now();
    stream::iter(0..count)
        .map(|i| {
            let mut loyalty = loyalty.clone();
            let request = HoldPointsRequest {
                hold_id: format!("baseline-{i}"),
                account: Some(AccountRef {
                    membership_id: members[i % members.len()].id.clone(),
                    ..Default::default()
                }),
                points: 10,
                timeout_seconds: 3_600,
                reference: "baseline".into(),
            };
            async move { loyalty.hold_points(request).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    rate(count, started.elapsed())
}

/// Processor time of the whole machine (this process, PostgreSQL, the broker) per call, in ms.
fn per_call(cost: &CpuTimes, calls: usize) -> f64 {
    ms_per_call(cost.machine, calls)
}
