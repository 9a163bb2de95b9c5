//! Tiers follow qualifying points up and down; a manually assigned tier is a floor.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::loyalty::v1::*;
use crm_testkit::read_topic;
use prost::Message;

async fn tier_of(client: &mut Loyalty, member: &Membership) -> String {
    client
        .get_membership(GetMembershipRequest {
            id: member.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tier
}

#[tokio::test]
async fn tiers_rise_and_fall_with_qualifying_points_and_an_assigned_tier_is_a_floor() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    for (code, threshold) in [("gold", 500), ("silver", 100)] {
        client
            .define_tier(DefineTierRequest {
                program_id: program.id.clone(),
                tier: Some(Tier {
                    code: code.into(),
                    display_name: code.into(),
                    threshold,
                    window_months: 12,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let program = client
        .get_program(GetProgramRequest {
            id: program.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        program
            .tiers
            .iter()
            .map(|t| t.code.as_str())
            .collect::<Vec<_>>(),
        ["silver", "gold"]
    );
    let member = suite.member(&program, "Acme").await;
    assert_eq!(tier_of(&mut client, &member).await, "");

    client
        .record_operation(operation("inv-1", &member, "purchase", 150))
        .await
        .unwrap();
    assert_eq!(tier_of(&mut client, &member).await, "silver");
    client
        .record_operation(operation("inv-2", &member, "purchase", 400))
        .await
        .unwrap();
    assert_eq!(tier_of(&mut client, &member).await, "gold");
    client
        .record_operation(operation("spend", &member, "reward_redemption", 100))
        .await
        .unwrap();
    assert_eq!(
        tier_of(&mut client, &member).await,
        "gold",
        "spending does not lower a tier"
    );
    client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "return-2".into(),
            original_operation_id: "inv-2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        tier_of(&mut client, &member).await,
        "silver",
        "a return takes its points out of the tier"
    );

    let floored = client
        .assign_tier(AssignTierRequest {
            membership_id: member.id.clone(),
            tier: "gold".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (floored.tier.as_str(), floored.assigned_tier.as_str()),
        ("gold", "gold")
    );
    let cleared = client
        .assign_tier(AssignTierRequest {
            membership_id: member.id.clone(),
            tier: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.tier, "silver");
    let unknown = client
        .assign_tier(AssignTierRequest {
            membership_id: member.id.clone(),
            tier: "platinum".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);

    let records = read_topic(
        &suite.loyalty.broker.brokers(),
        "crm.loyalty.membership.v1",
        7,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let moves: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.headers["ce_type"] == "crm.loyalty.v1.TierChanged")
        .map(|r| TierChanged::decode(r.payload.as_slice()).unwrap())
        .map(|e| (e.old_tier, e.new_tier))
        .collect();
    let expected = [
        ("", "silver"),
        ("silver", "gold"),
        ("gold", "silver"),
        ("silver", "gold"),
        ("gold", "silver"),
    ];
    assert_eq!(moves, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    suite.assert_invariants().await;
}

/// A silver tier at 100 qualifying points in 12 months.
async fn define_silver(client: &mut Loyalty, program: &Program) {
    client
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "silver".into(),
                display_name: "Silver".into(),
                threshold: 100,
                window_months: 12,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Reversals and new operations of one member at once, with tiers re-evaluated by each: every one
/// of them succeeds (one lock order everywhere, so no deadlock reaches a caller).
#[tokio::test]
async fn reversals_and_operations_of_one_member_at_once_all_succeed() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    define_silver(&mut client, &program).await;
    let member = suite.member(&program, "Acme").await;
    const N: usize = 30;
    for i in 0..N {
        client
            .record_operation(operation(&format!("early-{i}"), &member, "purchase", 10))
            .await
            .unwrap();
    }
    let reversals = (0..N).map(|i| {
        let mut client = client.clone();
        async move {
            client
                .reverse_operation(ReverseOperationRequest {
                    operation_id: format!("undo-{i}"),
                    original_operation_id: format!("early-{i}"),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }
    });
    let accruals = (0..N).map(|i| {
        let mut client = client.clone();
        let request = operation(&format!("late-{i}"), &member, "purchase", 7);
        async move { client.record_operation(request).await.map(|_| ()) }
    });
    let (reversed, accrued) = futures::future::join(
        futures::future::join_all(reversals),
        futures::future::join_all(accruals),
    )
    .await;
    let failures: Vec<_> = reversed
        .iter()
        .chain(&accrued)
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let balance = client
        .get_balance(GetBalanceRequest {
            account: account(&member),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.balance, 7 * N as i64);
    suite.assert_invariants().await;
}

/// Points older than a tier's window no longer hold it: the window is read from per-day totals,
/// so the cost of a re-evaluation does not grow with the member's history.
#[tokio::test]
async fn points_that_leave_the_window_no_longer_hold_the_tier() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    define_silver(&mut client, &program).await;
    let member = suite.member(&program, "Acme").await;
    client
        .record_operation(operation("old", &member, "purchase", 150))
        .await
        .unwrap();
    assert_eq!(tier_of(&mut client, &member).await, "silver");

    // Thirteen months pass for what was posted (the ledger refuses edits, so the test lifts that
    // for a moment, as only a superuser can).
    let mut db = suite.loyalty.db().await;
    for statement in [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update_or_delete",
        "UPDATE ledger_entries SET created_at = created_at - interval '13 months'",
        "ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update_or_delete",
        "UPDATE qualifying_days SET day = (day - interval '13 months')::date",
    ] {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }
    client
        .record_operation(operation("new", &member, "purchase", 10))
        .await
        .unwrap();
    assert_eq!(tier_of(&mut client, &member).await, "");

    // Points counted stay counted: a point type in use keeps whether it qualifies.
    let flip = client
        .define_point_type(DefinePointTypeRequest {
            program_id: program.id.clone(),
            point_type: Some(PointType {
                code: "basic".into(),
                display_name: "Basic points".into(),
                qualifying: false,
                reversal_floor: -100,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&flip), "POINT_TYPE_IN_USE");
    suite.assert_invariants().await;
}

/// A till or the service desk reads what a member's tier gives it, e.g. its return conditions.
#[tokio::test]
async fn a_member_gets_the_benefits_of_the_tier_it_holds_while_active() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let gold = |other: Vec<Benefit>| DefineTierRequest {
        program_id: program.id.clone(),
        tier: Some(Tier {
            code: "gold".into(),
            display_name: "Gold".into(),
            threshold: 100,
            window_months: 12,
            benefits: Some(TierBenefits {
                return_window_days: 60,
                free_return_shipping: true,
                other,
            }),
        }),
        ..Default::default()
    };
    let support = Benefit {
        name: "priority_support".into(),
        value: "true".into(),
    };
    let twice = client
        .define_tier(gold(vec![support.clone(), support.clone()]))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::InvalidArgument);
    let program = client
        .define_tier(gold(vec![support.clone()]))
        .await
        .unwrap()
        .into_inner();
    let benefits = program.tiers[0].benefits.clone().unwrap();
    assert_eq!(
        (benefits.return_window_days, benefits.free_return_shipping),
        (60, true)
    );

    let member = suite.member(&program, "Acme").await;
    let benefits_of = |client: &mut Loyalty| {
        let mut client = client.clone();
        let membership_id = member.id.clone();
        async move {
            client
                .get_member_benefits(GetMemberBenefitsRequest { membership_id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let none = benefits_of(&mut client).await;
    assert_eq!((none.tier.as_str(), none.benefits), ("", None));
    client
        .record_operation(operation("big", &member, "purchase", 150))
        .await
        .unwrap();
    let now = benefits_of(&mut client).await;
    assert_eq!(now.tier, "gold");
    let benefits = now.benefits.unwrap();
    assert_eq!(
        (
            benefits.return_window_days,
            benefits.free_return_shipping,
            benefits.other
        ),
        (60, true, vec![support])
    );

    client
        .suspend_membership(SuspendMembershipRequest {
            id: member.id.clone(),
            reason: "audit".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let suspended = benefits_of(&mut client).await;
    assert_eq!(suspended.status(), MembershipStatus::Suspended);
    assert_eq!(
        (suspended.tier.as_str(), suspended.benefits),
        ("gold", None)
    );
    suite.assert_invariants().await;
}
