//! The loyalty ledger through its public gRPC API, with the real parties service beside it, on real
//! PostgreSQL and a real Kafka-protocol broker. After every test the ledger's invariants hold.

use std::time::Duration;

mod common;

use common::*;
use crm_proto::crm::{
    loyalty::v1::*,
    parties::v1::{CreatePersonRequest, Employment, PartyKind, Person, PersonName},
};
use crm_testkit::{eventually, read_topic, token};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn points_accrue_and_settle_through_an_immutable_double_entry_ledger() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;

    let earned = client
        .record_operation(operation("op-1", &member, "purchase", 100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (earned.direction(), earned.balance_after),
        (Direction::Accrue, 100)
    );
    let spent = client
        .record_operation(operation("op-2", &member, "reward_redemption", 30))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spent.balance_after, 70);
    let now = balance(&mut client, &member).await;
    assert_eq!((now.balance, now.held, now.available), (70, 0, 70));

    let entries = client
        .list_ledger_entries(ListLedgerEntriesRequest {
            account: account(&member),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let amounts: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (e.amount, e.balance_after))
        .collect();
    assert_eq!(amounts, [(-30, 70), (100, 100)], "newest first");
    let purchases = client
        .list_ledger_entries(ListLedgerEntriesRequest {
            account: account(&member),
            operation_type: "purchase".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(purchases.len(), 1);

    let refused = client
        .record_operation(operation("op-3", &member, "reward_redemption", 71))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::FailedPrecondition, "INSUFFICIENT_POINTS".into())
    );
    assert_eq!(balance(&mut client, &member).await.balance, 70);

    let mut db = suite.loyalty.db().await;
    for edit in [
        "UPDATE ledger_entries SET amount = 1000",
        "DELETE FROM ledger_entries",
        "UPDATE operations SET points = 1000",
        "DELETE FROM operations",
        "TRUNCATE operations CASCADE",
    ] {
        let refused = sqlx::query(edit).execute(&mut db).await;
        assert!(refused.is_err(), "the ledger refuses {edit:?}");
    }
    suite.assert_invariants().await;

    let records = read_topic(
        &suite.loyalty.broker.brokers(),
        "crm.loyalty.points.v1",
        3,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key.as_deref(), Some(member.id.as_str()));
    let accrued = PointsAccrued::decode(records[0].payload.as_slice()).unwrap();
    assert_eq!((accrued.points, accrued.balance_after), (100, 100));
}

#[tokio::test]
async fn an_operation_id_posts_once() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;

    let first = client
        .record_operation(operation("inv-7", &member, "purchase", 40))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .record_operation(operation("inv-7", &member, "purchase", 40))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(balance(&mut client, &member).await.balance, 40);

    let changed = client
        .record_operation(operation("inv-7", &member, "purchase", 41))
        .await
        .unwrap_err();
    assert_eq!(
        (changed.code(), reason(&changed)),
        (Code::AlreadyExists, "REQUEST_ID_REUSED".into())
    );
    suite.assert_invariants().await;
}

/// Another caller reusing an operation id, sent at once with a replay of it, a call that fails its
/// rule and (every other round) one that posts: each hears its own answer (the reuse
/// ALREADY_EXISTS, never INTERNAL for all). Whether calls share a batch depends on timing; with
/// the reuse and the refusal in one batch, the reuse is the only posting written.
#[tokio::test]
async fn an_operation_id_reused_by_another_caller_is_refused_alone_within_a_batch() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;
    let first = client
        .record_operation(operation("till-1", &member, "purchase", 40))
        .await
        .unwrap()
        .into_inner();
    let other = Loyalty::new(
        suite
            .loyalty
            .channel(&token("other-till", &["loyalty.read", "loyalty.write"])),
    );
    for round in 0..20 {
        let (mut a, mut b, mut c, mut d) = (
            other.clone(),
            client.clone(),
            client.clone(),
            client.clone(),
        );
        let reuse = a.record_operation(operation("till-1", &member, "purchase", 40));
        let replay = b.record_operation(operation("till-1", &member, "purchase", 40));
        let spend = format!("spend-{round}");
        let too_much = c.record_operation(operation(&spend, &member, "reward_redemption", 1_000));
        let earn = format!("earn-{round}");
        // Without it, the reused id is the only posting the batch writes.
        let fresh = async {
            match round % 2 {
                0 => Some(
                    d.record_operation(operation(&earn, &member, "purchase", 1))
                        .await,
                ),
                _ => None,
            }
        };
        let (reuse, replay, too_much, fresh) = tokio::join!(reuse, replay, too_much, fresh);
        let reuse = reuse.unwrap_err();
        assert_eq!(
            (reuse.code(), reason(&reuse)),
            (Code::AlreadyExists, "REQUEST_ID_REUSED".into()),
            "{reuse:?}"
        );
        assert_eq!(replay.unwrap().into_inner(), first);
        assert_eq!(too_much.unwrap_err().code(), Code::FailedPrecondition);
        if let Some(fresh) = fresh {
            assert_eq!(fresh.unwrap().into_inner().points, 1);
        }
    }
    assert_eq!(balance(&mut client, &member).await.balance, 50);
    suite.assert_invariants().await;
}

/// Holds placed at once are posted together: exactly what the points allow goes through, each
/// answer is what GetHold reads later, a replay answers the same, and another caller's reuse of a
/// hold id is refused alone. Captured at once, each capture spends its own hold.
#[tokio::test]
async fn holds_placed_at_once_reserve_exactly_what_is_there() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member_with_points(&program, "Acme", 100).await;
    let hold = |id: String| HoldPointsRequest {
        hold_id: id,
        account: account(&member),
        points: 10,
        ..Default::default()
    };
    let placed = (0..30).map(|i| {
        let mut client = client.clone();
        let request = hold(format!("order-{i}"));
        async move { client.hold_points(request).await }
    });
    let placed = futures::future::join_all(placed).await;
    let held: Vec<Hold> = placed
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|h| h.get_ref().clone()))
        .collect();
    assert_eq!(held.len(), 10, "100 points hold ten holds of 10");
    for refused in placed.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(refused), "INSUFFICIENT_POINTS", "{refused:?}");
    }
    let first = &held[0];
    let read = client
        .get_hold(GetHoldRequest {
            hold_id: first.hold_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&read, first);
    let replay = client
        .hold_points(hold(first.hold_id.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&replay, first);
    // Room for one more hold, so that the reuse is what refuses it.
    client
        .void_hold(VoidHoldRequest {
            hold_id: held[1].hold_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut other = Loyalty::new(
        suite
            .loyalty
            .channel(&token("other-till", &["loyalty.read", "loyalty.write"])),
    );
    let reused = other
        .hold_points(hold(first.hold_id.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        (reused.code(), reason(&reused)),
        (Code::AlreadyExists, "REQUEST_ID_REUSED".into()),
        "{reused:?}"
    );
    let before = balance(&mut client, &member).await;
    assert_eq!((before.balance, before.held), (100, 90));

    // The nine holds left captured at once, each with its own answer; capturing one again as it
    // was captured answers the same.
    let pending: Vec<&Hold> = held
        .iter()
        .filter(|h| h.hold_id != held[1].hold_id)
        .collect();
    let captures = pending.iter().map(|h| {
        let mut client = client.clone();
        let request = CaptureHoldRequest {
            hold_id: h.hold_id.clone(),
            ..Default::default()
        };
        async move { client.capture_hold(request).await.map(|r| r.into_inner()) }
    });
    let captured = futures::future::join_all(captures).await;
    for (hold, answer) in pending.iter().zip(&captured) {
        let answer = answer.as_ref().unwrap();
        assert_eq!(
            (
                answer.hold_id.as_str(),
                answer.status(),
                answer.captured_points
            ),
            (hold.hold_id.as_str(), HoldStatus::Captured, 10)
        );
    }
    let again = client
        .capture_hold(CaptureHoldRequest {
            hold_id: pending[0].hold_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&again, captured[0].as_ref().unwrap());
    let after = balance(&mut client, &member).await;
    assert_eq!((after.balance, after.held), (10, 0));
    suite.assert_invariants().await;
}

/// One request id sent with captures of two different holds at once: it names one request, so
/// one hold is captured and the other call is refused as a reuse of the id.
#[tokio::test]
async fn a_request_id_sent_with_two_captures_at_once_captures_one_hold() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member_with_points(&program, "Acme", 100).await;
    for id in ["a", "b"] {
        client
            .hold_points(HoldPointsRequest {
                hold_id: id.into(),
                account: account(&member),
                points: 10,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let capture = |hold: &str| {
        let mut client = client.clone();
        let request = CaptureHoldRequest {
            hold_id: hold.into(),
            request_id: "till-7-capture".into(),
            ..Default::default()
        };
        async move { client.capture_hold(request).await }
    };
    let (a, b) = tokio::join!(capture("a"), capture("b"));
    let (done, refused): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(|r| r.is_ok());
    assert_eq!((done.len(), refused.len()), (1, 1));
    let refused = refused.into_iter().next().unwrap().unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::AlreadyExists, "REQUEST_ID_REUSED".into()),
        "{refused:?}"
    );
    let after = balance(&mut client, &member).await;
    assert_eq!((after.balance, after.held), (90, 10));
    suite.assert_invariants().await;
}

#[tokio::test]
async fn a_hundred_concurrent_debits_against_ten_debits_worth_leave_exactly_ten() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member_with_points(&program, "Acme", 100).await;

    let debits = (0..100).map(|i| {
        let mut client = client.clone();
        let request = operation(&format!("debit-{i}"), &member, "reward_redemption", 10);
        async move { client.record_operation(request).await }
    });
    let results = futures::future::join_all(debits).await;
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(s) if reason(s) == "INSUFFICIENT_POINTS"))
        .count();
    assert_eq!((succeeded, refused), (10, 90));
    assert_eq!(balance(&mut client, &member).await.balance, 0);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn a_reversal_posts_the_opposite_once_down_to_the_floor() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;
    client
        .record_operation(operation("invoice-1", &member, "purchase", 80))
        .await
        .unwrap();
    client
        .record_operation(operation("spend-1", &member, "reward_redemption", 50))
        .await
        .unwrap();

    // The invoice is returned after most of its points were spent: the balance may go to -50.
    let reversal = client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "credit-note-1".into(),
            original_operation_id: "invoice-1".into(),
            reference: "CN/1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            reversal.direction(),
            reversal.points,
            reversal.balance_after
        ),
        (Direction::Settle, 80, -50)
    );

    let twice = client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "credit-note-2".into(),
            original_operation_id: "invoice-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&twice), "ALREADY_REVERSED");

    // -50 + 200 - 150 = 0; returning the 200 would take it to -200, below the floor of -100.
    client
        .record_operation(operation("invoice-2", &member, "purchase", 200))
        .await
        .unwrap();
    client
        .record_operation(operation("spend-2", &member, "reward_redemption", 150))
        .await
        .unwrap();
    let below = client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "credit-note-3".into(),
            original_operation_id: "invoice-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&below), "REVERSAL_BELOW_FLOOR");
    assert_eq!(balance(&mut client, &member).await.balance, 0);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn holds_reserve_then_capture_void_or_expire() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member_with_points(&program, "Acme", 100).await;

    let hold = |id: &str, points: i64, timeout_seconds: i64| HoldPointsRequest {
        hold_id: id.into(),
        account: account(&member),
        points,
        timeout_seconds,
        reference: format!("order-{id}"),
    };
    let placed = client
        .hold_points(hold("h-1", 60, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status(), HoldStatus::Pending);
    let now = balance(&mut client, &member).await;
    assert_eq!((now.balance, now.held, now.available), (100, 60, 40));
    let blocked = client
        .record_operation(operation("spend", &member, "reward_redemption", 50))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&blocked),
        "INSUFFICIENT_POINTS",
        "held points cannot be spent twice"
    );

    let captured = client
        .capture_hold(CaptureHoldRequest {
            hold_id: "h-1".into(),
            points: 45,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (captured.status(), captured.captured_points),
        (HoldStatus::Captured, 45)
    );
    // The same capture again answers the same; a capture with another operation type is refused.
    let again = client
        .capture_hold(CaptureHoldRequest {
            hold_id: "h-1".into(),
            points: 45,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, captured);
    let retyped = client
        .capture_hold(CaptureHoldRequest {
            hold_id: "h-1".into(),
            points: 45,
            operation_type: "correction".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&retyped), "HOLD_CAPTURED");
    let now = balance(&mut client, &member).await;
    assert_eq!(
        (now.balance, now.held),
        (55, 0),
        "the uncaptured rest is released"
    );
    let late = client
        .void_hold(VoidHoldRequest {
            hold_id: "h-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "HOLD_CAPTURED");

    client.hold_points(hold("h-2", 20, 0)).await.unwrap();
    let voided = client
        .void_hold(VoidHoldRequest {
            hold_id: "h-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.status(), HoldStatus::Voided);

    client.hold_points(hold("h-3", 30, 1)).await.unwrap();
    let released = eventually(Duration::from_secs(10), || {
        let mut client = client.clone();
        let member = member.clone();
        async move { (balance(&mut client, &member).await.held == 0).then_some(()) }
    })
    .await;
    assert!(released.is_some(), "an expired hold releases itself");
    let expired = client
        .capture_hold(CaptureHoldRequest {
            hold_id: "h-3".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&expired), "HOLD_EXPIRED");
    assert_eq!(balance(&mut client, &member).await.available, 55);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn enrolment_is_checked_with_the_parties_service_and_b2b_persons_have_accounts() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;

    let nobody = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound);

    let acme = suite.party(PartyKind::Organization, "Acme").await;
    let enroll = EnrollRequest {
        program_id: program.id.clone(),
        party_id: acme.id.clone(),
        ..Default::default()
    };
    // No consent to the loyalty program yet: refused, naming the purpose.
    let refused = client.enroll(enroll.clone()).await.unwrap_err();
    assert_eq!(reason(&refused), "CONSENT_REQUIRED");
    assert!(
        refused.message().contains("loyalty_program"),
        "{}",
        refused.message()
    );
    suite.consent_to_loyalty(&acme.id).await;
    let member = client.enroll(enroll.clone()).await.unwrap().into_inner();
    assert_eq!(member.status(), MembershipStatus::Active);
    let twice = client.enroll(enroll).await.unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);

    let anna = suite
        .parties_client
        .clone()
        .create_person(CreatePersonRequest {
            person: Some(Person {
                name: Some(PersonName {
                    given_name: "Anna".into(),
                    family_name: "Nowak".into(),
                }),
                employments: vec![Employment {
                    organization_party_id: acme.id.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let annas = AccountRef {
        membership_id: member.id.clone(),
        person_id: anna.id.clone(),
        point_type: String::new(),
    };
    client
        .record_operation(RecordOperationRequest {
            operation_id: "anna-1".into(),
            account: Some(annas.clone()),
            operation_type: "purchase".into(),
            points: 25,
            ..Default::default()
        })
        .await
        .unwrap();
    let balances = client
        .list_balances(ListBalancesRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .balances;
    let owners: Vec<(String, i64)> = balances
        .iter()
        .map(|b| (b.account.clone().unwrap().person_id, b.balance))
        .collect();
    assert_eq!(owners, [(anna.id.clone(), 25)]);
    // GetBalance resolves the same accounts: the person's, and the organization's own (unused).
    let annas_balance = client
        .get_balance(GetBalanceRequest {
            account: Some(annas.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (annas_balance.account.unwrap(), annas_balance.balance),
        (
            AccountRef {
                point_type: "basic".into(),
                ..annas.clone()
            },
            25
        )
    );
    assert_eq!(balance(&mut client, &member).await.balance, 0);
    for (account, code, field) in [
        (
            AccountRef {
                point_type: "gold".into(),
                ..annas.clone()
            },
            Code::InvalidArgument,
            "account.point_type",
        ),
        (
            AccountRef {
                membership_id: "not-a-uuid".into(),
                ..annas.clone()
            },
            Code::InvalidArgument,
            "account.membership_id",
        ),
        (
            AccountRef {
                membership_id: uuid::Uuid::now_v7().to_string(),
                ..annas.clone()
            },
            Code::NotFound,
            "",
        ),
    ] {
        let refused = client
            .get_balance(GetBalanceRequest {
                account: Some(account),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{refused:?}");
        if !field.is_empty() {
            assert_eq!(bad_fields(&refused), [field]);
        }
    }

    let stranger = suite.party(PartyKind::Person, "Stranger").await;
    let refused = client
        .record_operation(RecordOperationRequest {
            operation_id: "stranger-1".into(),
            account: Some(AccountRef {
                person_id: stranger.person_id.clone(),
                ..annas
            }),
            operation_type: "purchase".into(),
            points: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "PERSON_NOT_EMPLOYED");

    // A hold placed before the suspension cannot be spent during it, but can be let go.
    client
        .record_operation(operation("before-suspension", &member, "purchase", 20))
        .await
        .unwrap();
    for id in ["order-1", "order-2"] {
        client
            .hold_points(HoldPointsRequest {
                hold_id: id.into(),
                account: account(&member),
                points: 5,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let suspended = client
        .suspend_membership(SuspendMembershipRequest {
            id: member.id.clone(),
            reason: "audit".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.status(), MembershipStatus::Suspended);
    let frozen = client
        .record_operation(operation("while-suspended", &member, "purchase", 5))
        .await
        .unwrap_err();
    assert_eq!(reason(&frozen), "MEMBERSHIP_NOT_ACTIVE");
    let capture = client
        .capture_hold(CaptureHoldRequest {
            hold_id: "order-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&capture), "MEMBERSHIP_NOT_ACTIVE");
    let voided = client
        .void_hold(VoidHoldRequest {
            hold_id: "order-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.status(), HoldStatus::Voided);
    // A withdrawal is honoured by every later decision.
    suite.withdraw_loyalty_consent(&acme.id).await;
    let second = suite.program().await;
    let later = client
        .enroll(EnrollRequest {
            program_id: second.id.clone(),
            party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&later), "CONSENT_REQUIRED");
    suite.assert_invariants().await;
}

#[tokio::test]
async fn bad_requests_name_every_field() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let status = client
        .create_program(CreateProgramRequest {
            program: Some(Program {
                currency_code: "zloty".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "program.kind",
            "program.currency_code",
            "program.display_name"
        ]
    );

    let status = client
        .record_operation(RecordOperationRequest {
            points: -5,
            operation_type: "Purchase!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "operation_id",
            "points",
            "operation_type",
            "account.membership_id"
        ]
    );
    suite.assert_invariants().await;
}

#[tokio::test]
async fn reflection_lists_the_loyalty_api_without_a_token() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let suite = Suite::start().await;
    let mut reflection = ServerReflectionClient::new(suite.loyalty.channel(""));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "crm.loyalty.v1.LoyaltyService.GetExpiryForecast".into(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap().message_response;
    assert!(
        matches!(answer, Some(MessageResponse::FileDescriptorResponse(files)) if !files.file_descriptor_proto.is_empty())
    );
}

/// `crm-loyalty verify` as an operator runs it against the service's database.
async fn verify(suite: &Suite) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-loyalty"))
        .arg("verify")
        .env("CRM__DATABASE__URL", &suite.loyalty.database.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), stdout)
}

#[tokio::test]
async fn the_verify_command_passes_a_sound_ledger_and_names_what_breaks_one() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;
    client
        .record_operation(operation("op-1", &member, "purchase", 100))
        .await
        .unwrap();
    let (ok, report) = verify(&suite).await;
    assert!(ok, "{report}");
    assert!(report.contains("ledger verified"), "{report}");

    let mut db = suite.loyalty.db().await;
    sqlx::query("UPDATE accounts SET balance = balance + 5 WHERE membership_id = $1::uuid")
        .bind(&member.id)
        .execute(&mut db)
        .await
        .unwrap();
    let (ok, report) = verify(&suite).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains("BROKEN: a member account's balance is the sum of its entries")
            && report.contains("balance 105, entries sum to 100"),
        "{report}"
    );
    assert!(
        report.contains("open lots hold 100"),
        "the lots disagree too: {report}"
    );
    sqlx::query("UPDATE accounts SET balance = balance - 5 WHERE membership_id = $1::uuid")
        .bind(&member.id)
        .execute(&mut db)
        .await
        .unwrap();

    // Lots carry no foreign keys (the engine writes them with their operation): the check does.
    let orphan = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO point_lots (account_id, operation_id, amount, remaining)
         SELECT id, $2, 10, 0 FROM accounts WHERE membership_id = $1::uuid",
    )
    .bind(&member.id)
    .bind(orphan)
    .execute(&mut db)
    .await
    .unwrap();
    let (ok, report) = verify(&suite).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(
            "BROKEN: every entry, lot and lot take names an operation and an account that exist"
        ) && report.contains(&format!("operation {orphan}")),
        "{report}"
    );
    sqlx::query("DELETE FROM point_lots WHERE operation_id = $1")
        .bind(orphan)
        .execute(&mut db)
        .await
        .unwrap();
}

/// The consent service said yes, but loyalty has since heard of a newer withdrawal (processed while
/// the enrolment was on its way): the withdrawal wins, and no active membership is left without
/// consent.
#[tokio::test]
async fn an_enrolment_racing_a_withdrawal_loyalty_has_heard_of_is_refused() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let party = suite.party(PartyKind::Organization, "Acme").await;
    suite.consent_to_loyalty(&party.id).await;
    // What the consent consumer records on a withdrawal newer than the grant the service reports.
    let mut db = suite.loyalty.db().await;
    sqlx::query(
        "INSERT INTO party_consents (party_id, record_id, stage, granted) VALUES ($1::uuid, $2, 1, false)",
    )
    .bind(&party.id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut db)
    .await
    .unwrap();
    let refused = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "CONSENT_REQUIRED");

    // A grant newer than that withdrawal counts again.
    suite.consent_to_loyalty(&party.id).await;
    let member = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(member.status(), MembershipStatus::Active);
}

/// What a till and a service desk look up: an operation and a hold by the ids they were sent
/// with, a membership's holds by status, and a membership by the card in hand.
#[tokio::test]
async fn operations_holds_and_cards_are_found_by_the_ids_callers_know() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;
    let posted = client
        .record_operation(operation("till-7/0001", &member, "purchase", 100))
        .await
        .unwrap()
        .into_inner();
    let found = client
        .get_operation(GetOperationRequest {
            operation_id: "till-7/0001".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found, posted);
    let missing = client
        .get_operation(GetOperationRequest {
            operation_id: "till-7/9999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    for id in ["order-1", "order-2", "order-3"] {
        client
            .hold_points(HoldPointsRequest {
                hold_id: id.into(),
                account: account(&member),
                points: 10,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .void_hold(VoidHoldRequest {
            hold_id: "order-2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let hold = client
        .get_hold(GetHoldRequest {
            hold_id: "order-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.status(), HoldStatus::Voided);
    let list = |status: HoldStatus, page_token: String| ListHoldsRequest {
        membership_id: member.id.clone(),
        status: status as i32,
        page_size: 1,
        page_token,
    };
    let mut pending = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_holds(list(HoldStatus::Pending, token))
            .await
            .unwrap()
            .into_inner();
        pending.extend(page.holds.into_iter().map(|h| h.hold_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pending, ["order-3", "order-1"], "newest first");
    let bad = client
        .list_holds(ListHoldsRequest {
            membership_id: member.id.clone(),
            status: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let card = client
        .issue_card(IssueCardRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let printed = card
        .number
        .as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let found = client
        .find_card(FindCardRequest {
            card_number: printed,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (found.id, found.membership_id),
        (card.id, member.id.clone())
    );
    let typo = client
        .find_card(FindCardRequest {
            card_number: "1234 5678 9012 3456".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(typo.code(), Code::InvalidArgument);
    suite.assert_invariants().await;
}

/// A suspension by hand ends by hand (one for a withdrawn consent does not: tests/tests/consent.rs);
/// a membership that left is not reactivated, but its party may enrol again.
#[tokio::test]
async fn a_membership_suspended_by_hand_is_reactivated_by_hand_and_one_that_left_comes_back() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Acme").await;
    let suspend = SuspendMembershipRequest {
        id: member.id.clone(),
        reason: "audit".into(),
        ..Default::default()
    };
    let reactivate = |request_id: &str| ReactivateMembershipRequest {
        id: member.id.clone(),
        reason: "audit closed".into(),
        request_id: request_id.into(),
    };
    client.suspend_membership(suspend).await.unwrap();
    let active = client
        .reactivate_membership(reactivate("r-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.status(), MembershipStatus::Active);
    client
        .record_operation(operation("after", &member, "purchase", 5))
        .await
        .unwrap();

    client
        .leave_program(LeaveProgramRequest {
            id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let left = client
        .reactivate_membership(reactivate("r-2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&left), "MEMBERSHIP_LEFT");
    // ... but the party may enrol again: its membership comes back with its points.
    let back = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: member.party_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (back.id.as_str(), back.status()),
        (member.id.as_str(), MembershipStatus::Active)
    );
    assert_eq!(balance(&mut client, &member).await.balance, 5);
    let twice = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: member.party_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&twice), "ALREADY_ENROLLED");
    suite.assert_invariants().await;
}

/// Calls that arrive together are posted together (group commit); each still gets its own answer.
#[tokio::test]
async fn calls_posted_together_each_get_their_own_answer_and_effect() {
    let suite = Suite::start().await;
    let client = suite.client.clone();
    let program = suite.program().await;
    let rich = suite.member(&program, "Rich").await;
    let poor = suite.member(&program, "Poor").await;
    let away = suite.member(&program, "Away").await;
    let mut admin = client.clone();
    admin
        .suspend_membership(SuspendMembershipRequest {
            id: away.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let card = admin
        .issue_card(IssueCardRequest {
            membership_id: rich.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let with_card = |id: &str| RecordOperationRequest {
        card_number: card.number.clone(),
        ..operation(id, &rich, "purchase", 10)
    };
    let requests = vec![
        operation("together-1", &rich, "purchase", 100),
        operation("together-1", &rich, "purchase", 100),
        operation("together-2", &poor, "reward_redemption", 5),
        operation("together-3", &away, "purchase", 5),
        with_card("together-4"),
        with_card("together-5"),
    ];
    let calls = requests.into_iter().map(|request| {
        let mut client = client.clone();
        async move { client.record_operation(request).await }
    });
    let answers = futures::future::join_all(calls).await;
    let first = answers[0].as_ref().unwrap().get_ref();
    assert_eq!(
        answers[1].as_ref().unwrap().get_ref(),
        first,
        "a repeat is answered as the first"
    );
    assert_eq!(
        reason(answers[2].as_ref().unwrap_err()),
        "INSUFFICIENT_POINTS"
    );
    assert_eq!(
        reason(answers[3].as_ref().unwrap_err()),
        "MEMBERSHIP_NOT_ACTIVE"
    );
    assert!(answers[4].is_ok() && answers[5].is_ok(), "{answers:?}");
    assert_eq!(balance(&mut admin, &rich).await.balance, 120);

    // A refused call leaves nothing behind: no account for the members it named.
    for refused in [&poor, &away] {
        let balances = admin
            .list_balances(ListBalancesRequest {
                membership_id: refused.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .balances;
        assert!(balances.is_empty(), "{balances:?}");
    }
    // The card presented twice in one go is activated once.
    let mut db = suite.loyalty.db().await;
    let activations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM crm_outbox WHERE event_type = 'crm.loyalty.v1.CardActivated'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(activations, 1);
    suite.assert_invariants().await;
}
