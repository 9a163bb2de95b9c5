//! The ledger under a storm: for a while (60 s, or `CRM_SOAK_SECONDS`), concurrent accruals,
//! redemptions (group-committed), holds with captures, voids and lapses (released by the hold
//! sweep), reversals and a bulk accrual on the same few members, with tiers re-evaluated by each. Afterwards no caller saw anything but a success or a business
//! refusal (no deadlock, conflict or internal error), every invariant holds, and every accepted
//! operation took effect exactly once while no refused one did.

mod common;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::*;
use crm_proto::crm::loyalty::v1::{start_bulk_accrual_request::Selection, *};
use tonic::Code;

/// Refusals a caller must expect from these calls; anything else is a failure of the service.
const EXPECTED: &[&str] = &[
    "INSUFFICIENT_POINTS",
    "ALREADY_REVERSED",
    "REVERSAL_BELOW_FLOOR",
];

/// A small deterministic generator per worker: the storm differs between workers, not between runs.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

#[derive(Default)]
struct Tally {
    /// Operation ids the ledger accepted, and those it refused.
    accepted: HashSet<String>,
    refused: HashSet<String>,
    /// Calls answered with something other than success or an expected refusal.
    unexpected: Vec<String>,
    calls: usize,
}

#[tokio::test]
async fn a_storm_of_concurrent_postings_on_a_few_members_leaves_a_sound_ledger() {
    let seconds: u64 = std::env::var("CRM_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    client
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "silver".into(),
                display_name: "Silver".into(),
                threshold: 500,
                window_months: 12,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut members = Vec::new();
    for name in ["Anna", "Bolek"] {
        let member = suite.member(&program, name).await;
        client
            .record_operation(operation(&format!("seed-{name}"), &member, "purchase", 300))
            .await
            .unwrap();
        members.push(member);
    }
    let members = Arc::new(members);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let workers = (0..16u64).map(|worker| {
        let (client, members, tally) = (client.clone(), members.clone(), tally.clone());
        tokio::spawn(storm(worker, client, members, tally, deadline))
    });
    // Halfway through, a campaign credits every member at once.
    let campaign = {
        let mut client = client.clone();
        let program = program.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
            client
                .start_bulk_accrual(StartBulkAccrualRequest {
                    job_id: "storm-campaign".into(),
                    program_id: program,
                    operation_type: "purchase".into(),
                    points: 7,
                    selection: Some(Selection::AllMembers(true)),
                    reference: "storm".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        })
    };
    for worker in workers {
        worker.await.unwrap();
    }
    campaign.await.unwrap().unwrap();

    let tally = Arc::into_inner(tally)
        .expect("the workers are done")
        .into_inner()
        .unwrap();
    assert!(
        tally.unexpected.is_empty(),
        "{} of {} calls failed unexpectedly: {:?}",
        tally.unexpected.len(),
        tally.calls,
        &tally.unexpected[..tally.unexpected.len().min(10)]
    );
    assert!(
        tally.accepted.len() > 100,
        "the storm posted too little: {}",
        tally.accepted.len()
    );
    let mut db = suite.loyalty.db().await;
    let posted: HashSet<String> = sqlx::query_scalar("SELECT client_id FROM operations")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<_> = tally.accepted.difference(&posted).collect();
    assert!(missing.is_empty(), "accepted but not posted: {missing:?}");
    let phantom: Vec<_> = tally.refused.intersection(&posted).collect();
    assert!(phantom.is_empty(), "refused but posted: {phantom:?}");
    suite.assert_invariants().await;
}

async fn storm(
    worker: u64,
    mut client: Loyalty,
    members: Arc<Vec<Membership>>,
    tally: Arc<Mutex<Tally>>,
    deadline: Instant,
) {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let member = &members[dice.roll(members.len() as u64) as usize];
        let id = format!("w{worker}-{n}");
        let action = dice.roll(6);
        let reversal = action >= 4;
        let (posts, outcome) = match action {
            0 | 1 => {
                let request = operation(&id, member, "purchase", 1 + dice.roll(20) as i64);
                (Some(id), client.record_operation(request).await.map(|_| ()))
            }
            2 => {
                let points = 1 + dice.roll(40) as i64;
                let request = operation(&id, member, "reward_redemption", points);
                (Some(id), client.record_operation(request).await.map(|_| ()))
            }
            3 => {
                // A third of the holds are left to lapse: the sweep releases them meanwhile.
                let lapse = dice.roll(3) == 0;
                let request = HoldPointsRequest {
                    hold_id: id.clone(),
                    account: account(member),
                    points: 1 + dice.roll(30) as i64,
                    timeout_seconds: if lapse { 1 } else { 0 },
                    ..Default::default()
                };
                let held = client.hold_points(request).await;
                let settled = match held {
                    Ok(_) if lapse => Ok(()),
                    Ok(_) if dice.roll(2) == 0 => client
                        .capture_hold(CaptureHoldRequest {
                            hold_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    Ok(_) => client
                        .void_hold(VoidHoldRequest {
                            hold_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    Err(refused) => Err(refused),
                };
                (None, settled)
            }
            _ => {
                let Some(original) = mine.get(dice.roll(mine.len().max(1) as u64) as usize) else {
                    continue;
                };
                let request = ReverseOperationRequest {
                    operation_id: id.clone(),
                    original_operation_id: original.clone(),
                    ..Default::default()
                };
                (
                    Some(id),
                    client.reverse_operation(request).await.map(|_| ()),
                )
            }
        };
        let mut tally = tally.lock().unwrap();
        tally.calls += 1;
        match outcome {
            Ok(()) => {
                if let Some(id) = posts {
                    // Reversals are not reversed again: only what they may reverse is kept.
                    if !reversal {
                        mine.push(id.clone());
                    }
                    tally.accepted.insert(id);
                }
            }
            Err(status)
                if status.code() == Code::FailedPrecondition
                    && EXPECTED.contains(&reason(&status).as_str()) =>
            {
                if let Some(id) = posts {
                    tally.refused.insert(id);
                }
            }
            Err(status) => {
                tally
                    .unexpected
                    .push(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}
