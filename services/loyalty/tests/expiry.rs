//! Points expire: consumed oldest-expiring first, swept when due (points a hold reserves expire
//! when it ends), and forecast by day.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::loyalty::v1::*;
use crm_testkit::eventually;

fn bonus(membership: &Membership) -> Option<AccountRef> {
    Some(AccountRef {
        membership_id: membership.id.clone(),
        person_id: String::new(),
        point_type: "bonus".into(),
    })
}

fn grant(id: &str, member: &Membership, kind: &str, points: i64) -> RecordOperationRequest {
    RecordOperationRequest {
        account: bonus(member),
        ..operation(id, member, kind, points)
    }
}

/// A program with "bonus" points that expire three months after earning, granted and spent by
/// "bonus_grant" and "bonus_spend".
async fn bonus_program(suite: &Suite) -> Program {
    let mut client = suite.client.clone();
    let program = suite.program().await;
    client
        .define_point_type(DefinePointTypeRequest {
            program_id: program.id.clone(),
            point_type: Some(PointType {
                code: "bonus".into(),
                display_name: "Bonus points".into(),
                expiry_policy: ExpiryPolicy::MonthsAfterEarning as i32,
                expiry_months: 3,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (code, direction) in [
        ("bonus_grant", Direction::Accrue),
        ("bonus_spend", Direction::Settle),
    ] {
        client
            .define_operation_type(DefineOperationTypeRequest {
                program_id: program.id.clone(),
                operation_type: Some(OperationType {
                    code: code.into(),
                    display_name: code.into(),
                    direction: direction as i32,
                    default_point_type: "bonus".into(),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    program
}

#[tokio::test]
async fn points_are_spent_oldest_expiring_first_and_expire_when_due() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = bonus_program(&suite).await;
    let member = suite.member(&program, "Acme").await;
    let first = client
        .record_operation(grant("g-1", &member, "bonus_grant", 100))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .record_operation(grant("g-2", &member, "bonus_grant", 50))
        .await
        .unwrap()
        .into_inner();
    let forecast = client
        .get_expiry_forecast(GetExpiryForecastRequest {
            account: bonus(&member),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forecast.expiring.iter().map(|e| e.points).sum::<i64>(), 150);

    // The second grant is made to expire first (a shorter promotion): spending takes it first.
    let mut db = suite.loyalty.db().await;
    let set_expiry = |operation: &str, interval: &str| {
        format!(
            "UPDATE point_lots SET expires_at = now() + interval '{interval}' WHERE operation_id = '{operation}'"
        )
    };
    sqlx::query(sqlx::AssertSqlSafe(set_expiry(&second.id, "1 month")))
        .execute(&mut db)
        .await
        .unwrap();
    client
        .record_operation(grant("s-1", &member, "bonus_spend", 120))
        .await
        .unwrap();
    let remaining = |operation: String| {
        let url = suite.loyalty.database.url.clone();
        async move {
            let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query_scalar::<_, i64>(
                "SELECT remaining FROM point_lots WHERE operation_id = $1::uuid",
            )
            .bind(operation)
            .fetch_one(&mut db)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        (
            remaining(first.id.clone()).await,
            remaining(second.id.clone()).await
        ),
        (30, 0)
    );

    // A reversal takes back the points of the very operation it reverses.
    let third = client
        .record_operation(grant("g-3", &member, "bonus_grant", 40))
        .await
        .unwrap()
        .into_inner();
    client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "r-3".into(),
            original_operation_id: "g-3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            remaining(first.id.clone()).await,
            remaining(third.id.clone()).await
        ),
        (30, 0)
    );

    // The first grant falls due while 10 of its points are held for an order.
    client
        .hold_points(HoldPointsRequest {
            hold_id: "h-1".into(),
            account: bonus(&member),
            points: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(set_expiry(&first.id, "-1 second")))
        .execute(&mut db)
        .await
        .unwrap();
    // The sweep runs every second: the balance once it has come down to `points`.
    let (watcher, watched) = (client.clone(), member.clone());
    let balance_of = |points: i64| {
        let (watcher, watched) = (&watcher, &watched);
        eventually(Duration::from_secs(10), move || {
            let mut client = watcher.clone();
            let account = bonus(watched);
            async move {
                let now = client
                    .get_balance(GetBalanceRequest { account })
                    .await
                    .ok()?
                    .into_inner();
                (now.balance == points).then_some(now)
            }
        })
    };
    let expired = balance_of(10).await.expect("the due lot expires");
    assert_eq!(
        (expired.held, expired.available),
        (10, 0),
        "held points are spared"
    );
    let expiries = |client: &mut Loyalty| {
        let mut client = client.clone();
        let account = bonus(&member);
        async move {
            let entries = client
                .list_ledger_entries(ListLedgerEntriesRequest {
                    account,
                    operation_type: "expiry".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .entries;
            let mut amounts: Vec<i64> = entries.iter().map(|e| e.amount).collect();
            amounts.sort();
            amounts
        }
    };
    assert_eq!(expiries(&mut client).await, [-20]);
    let forecast = client
        .get_expiry_forecast(GetExpiryForecastRequest {
            account: bonus(&member),
        })
        .await
        .unwrap()
        .into_inner();
    let due: i64 = forecast.expiring.iter().map(|e| e.points).sum();
    assert_eq!(due, 10, "the held points are still due: {forecast:?}");
    suite.assert_invariants().await;

    // The order is cancelled: the held points were due, so they expire now rather than stay
    // spendable for ever.
    client
        .void_hold(VoidHoldRequest {
            hold_id: "h-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let after = balance_of(0)
        .await
        .expect("the formerly held points expire");
    assert_eq!((after.held, after.available), (0, 0));
    assert_eq!(expiries(&mut client).await, [-20, -10]);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn a_returned_redemption_gives_its_points_back_with_their_expiry() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = bonus_program(&suite).await;
    let member = suite.member(&program, "Acme").await;
    let grant_op = client
        .record_operation(grant("g-1", &member, "bonus_grant", 100))
        .await
        .unwrap()
        .into_inner();
    // The grant's points expire in ten days, not in three months.
    let mut db = suite.loyalty.db().await;
    sqlx::query(
        "UPDATE point_lots SET expires_at = date_trunc('day', now()) + interval '10 days'
         WHERE operation_id = $1::uuid",
    )
    .bind(&grant_op.id)
    .execute(&mut db)
    .await
    .unwrap();
    client
        .record_operation(grant("s-1", &member, "bonus_spend", 60))
        .await
        .unwrap();
    let forecast = |client: &Loyalty| {
        let (mut client, account) = (client.clone(), bonus(&member));
        async move {
            client
                .get_expiry_forecast(GetExpiryForecastRequest { account })
                .await
                .unwrap()
                .into_inner()
                .expiring
                .into_iter()
                .map(|e| (e.date.unwrap().day, e.points))
                .collect::<Vec<_>>()
        }
    };
    let before = forecast(&client).await;
    assert_eq!(before.iter().map(|(_, p)| p).sum::<i64>(), 40);

    // Returned: the points go back to the lot they came from, to expire with it.
    let returned = client
        .reverse_operation(ReverseOperationRequest {
            operation_id: "r-1".into(),
            original_operation_id: "s-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(returned.balance_after, 100);
    let after = forecast(&client).await;
    assert_eq!(after.len(), 1, "one expiry date, the grant's: {after:?}");
    assert_eq!(after[0], (before[0].0, 100));
    let fresh: i64 =
        sqlx::query_scalar("SELECT count(*) FROM point_lots WHERE operation_id = $1::uuid")
            .bind(&returned.id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(fresh, 0, "no fresh lot for the returned points");
    suite.assert_invariants().await;
}
