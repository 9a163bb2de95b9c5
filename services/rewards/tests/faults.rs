//! Reward orders when the infrastructure fails: loyalty unreachable while placing, the service
//! killed between the hold and the confirmation, a hold that lapses before shipment. Whatever
//! fails, no point and no unit is lost, doubled or left held, and the ledger balances.

mod common;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use common::*;
use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    loyalty::v1::{GetHoldRequest, HoldStatus, ReverseOperationRequest, SuspendMembershipRequest},
    rewards::v1::{rewards_service_client::RewardsServiceClient, *},
};
use crm_testkit::{JWT_SECRET, TestDatabase, token};
use sqlx::Connection;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn loyalty_unreachable_while_placing_fails_the_order_cleanly() {
    let (mut suite, program) = start().await;
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    receive(&mut client, &kettle, &store, 3).await;
    let member = member_with_points(&suite, &program, "Ola", 1_000).await;

    // Loyalty goes away after the order was checked with it and while its stock is being
    // reserved: the reward's row is held until loyalty is down.
    let mut db = suite.rewards_db().await;
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM rewards WHERE id = $1::uuid FOR UPDATE")
        .bind(&kettle.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let request = order(&member, &[(&kettle, 2)], home(), "order-1");
    let placing = tokio::spawn({
        let mut client = client.clone();
        let request = request.clone();
        async move { client.place_reward_order(request).await }
    });
    let waiting = within(15, || {
        let suite = &suite;
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut suite.rewards_db().await)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        }
    })
    .await;
    assert!(waiting.is_some(), "the order waits for the reward's row");
    suite.stop_loyalty().await.unwrap();
    blocker.rollback().await.unwrap();
    let refused = placing.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!(
        (stock.on_hand, stock.reserved),
        (3, 0),
        "the reservation was released"
    );
    let orders = client
        .list_reward_orders(ListRewardOrdersRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(orders.len(), 1);
    let failed = &orders[0];
    assert_eq!(failed.status(), RewardOrderStatus::Failed);
    assert_eq!(
        failed.failure.as_ref().unwrap().reason,
        "LOYALTY_UNAVAILABLE"
    );

    // With loyalty down from the start, nothing is even reserved.
    let early = client
        .place_reward_order(order(&member, &[(&kettle, 1)], home(), "order-2"))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::Unavailable);

    // Loyalty is back: the same request places the order, and the hold that may have been made
    // for the failed one is voided.
    suite.start_loyalty().await.unwrap();
    let placed = client
        .place_reward_order(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status(), RewardOrderStatus::Confirmed);
    assert_ne!(placed.id, failed.id, "a new order for the retried request");
    let holds = pending_holds(&suite, &member).await;
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].hold_id, placed.hold_id);
    assert_eq!(stock_of(&mut client, &kettle).await.reserved, 2);
    assert_ledger_balanced(&suite).await;
    // Loyalty might still have been making the hold it was asked for: "no such hold" is believed
    // once that call is surely over.
    let void_settled = within(45, || {
        let rewards = &suite;
        let id = failed.id.clone();
        async move {
            let due: bool =
                sqlx::query_scalar("SELECT void_due FROM reward_orders WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(&mut rewards.rewards_db().await)
                    .await
                    .unwrap();
            (!due).then_some(())
        }
    })
    .await;
    assert!(
        void_settled.is_some(),
        "the sweep voids the unwanted hold once loyalty answers"
    );
    suite.stop().await.unwrap();
}

/// `crm-rewards serve` as a process of its own, to be killed with SIGKILL.
struct Process {
    child: Child,
    addr: String,
}

impl Process {
    fn start(suite: &crm_e2e::Suite, database: &TestDatabase, port: u16) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_crm-rewards"))
            .arg("serve")
            .env("CRM__DATABASE__URL", &database.url)
            .env("CRM__KAFKA__BROKERS", suite.broker.brokers())
            .env("CRM__KAFKA__TOPIC_PARTITIONS", "3")
            .env("CRM__PEERS__LOYALTY", suite.loyalty_url())
            .env("CRM__PEERS__PARTIES", suite.parties_url())
            .env("CRM__AUTH__JWT_SECRET", JWT_SECRET)
            .env("CRM__GRPC__LISTEN", &addr)
            .env("CRM__ADMIN__LISTEN", "127.0.0.1:0")
            .env("CRM__TELEMETRY__LOG_FILTER", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting crm-rewards");
        Self { child, addr }
    }

    async fn client(&self) -> RewardsServiceClient<TracedChannel> {
        let bearer = token(
            "storekeeper",
            &[
                "rewards.read",
                "rewards.write",
                "rewards.stock",
                "rewards.order",
            ],
        );
        let channel = TracedChannel::lazy(&format!("http://{}", self.addr))
            .unwrap()
            .with_bearer(&bearer);
        let client = RewardsServiceClient::new(channel);
        let ready = within(60, || {
            let mut client = client.clone();
            async move {
                client
                    .list_warehouses(ListWarehousesRequest::default())
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        assert!(ready.is_some(), "crm-rewards serves");
        client
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_the_hold_and_the_confirmation_the_order_completes_after_restart() {
    let (suite, program) = start().await;
    let database = TestDatabase::create().await.unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = Process::start(&suite, &database, port);
    let mut client = first.client().await;
    let store = warehouse(&mut client, "central").await;
    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    receive(&mut client, &kettle, &store, 2).await;
    let member = member_with_points(&suite, &program, "Ola", 500).await;

    // The confirmation waits at a gate once loyalty has made the hold; the process dies there.
    let mut db = database.connect().await;
    sqlx::raw_sql(
        "CREATE TABLE test_gate (closed boolean);
         INSERT INTO test_gate VALUES (true);
         CREATE FUNCTION wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             WHILE EXISTS (SELECT 1 FROM test_gate) LOOP PERFORM pg_sleep(0.05); END LOOP;
             RETURN NEW;
         END $$;
         CREATE TRIGGER gate BEFORE UPDATE OF status ON reward_orders
             FOR EACH ROW WHEN (NEW.status = 'confirmed') EXECUTE FUNCTION wait_at_gate();",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let placing = tokio::spawn({
        let mut client = client.clone();
        let request = order(&member, &[(&kettle, 1)], home(), "order-1");
        async move { client.place_reward_order(request).await }
    });
    let held = within(15, || {
        let suite = &suite;
        let member = &member;
        async move { pending_holds(suite, member).await.pop() }
    })
    .await
    .expect("loyalty holds the points");
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(
        placing.await.unwrap().is_err(),
        "the caller lost its answer"
    );
    sqlx::query("DELETE FROM test_gate")
        .execute(&mut db)
        .await
        .unwrap();
    let order_id: String = sqlx::query_scalar("SELECT id::text FROM reward_orders")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM reward_orders")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        status, "placing",
        "killed before the confirmation committed"
    );

    // Restarted on the same database, the sweep finishes the order with the hold already made.
    let second = Process::start(&suite, &database, port);
    let mut client = second.client().await;
    let confirmed = within(30, || {
        let mut client = client.clone();
        let id = order_id.clone();
        async move {
            let order = get_order(&mut client, &id).await;
            (order.status() == RewardOrderStatus::Confirmed).then_some(order)
        }
    })
    .await
    .expect("the order completes after the restart");
    assert_eq!(
        confirmed.hold_id, held.hold_id,
        "the hold made before the crash, no other"
    );
    let holds = pending_holds(&suite, &member).await;
    assert_eq!(holds.len(), 1, "no orphan hold");
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!((stock.on_hand, stock.reserved), (2, 1));
    let shipped = client
        .confirm_shipment(ConfirmShipmentRequest {
            id: order_id.clone(),
            carrier: "InPost".into(),
            tracking_number: "1".into(),
            request_id: "ship".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shipped.captured_points, 100);
    assert_eq!(balance(&suite, &member).await.balance, 400);
    assert_ledger_balanced(&suite).await;
    drop(second);
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_that_lapses_cancels_the_order_and_releases_its_stock() {
    let (mut suite, program) = start().await;
    suite.stop_rewards().await.unwrap();
    suite
        .start_rewards_with(|config| config.rewards.hold_timeout_secs = 2)
        .await
        .unwrap();
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    receive(&mut client, &kettle, &store, 1).await;
    let member = member_with_points(&suite, &program, "Ola", 300).await;

    let placed = client
        .place_reward_order(order(&member, &[(&kettle, 1)], home(), "order-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status(), RewardOrderStatus::Confirmed);
    let cancelled = within(15, || {
        let mut client = client.clone();
        let id = placed.id.clone();
        async move {
            let order = get_order(&mut client, &id).await;
            (order.status() == RewardOrderStatus::Cancelled).then_some(order)
        }
    })
    .await
    .expect("the sweep cancels the order");
    assert_eq!(
        cancelled.cancel_reason,
        "the points hold expired before shipment"
    );
    let hold = suite
        .loyalty_client()
        .get_hold(GetHoldRequest {
            hold_id: placed.hold_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.status(), HoldStatus::Expired);
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (1, 0, 1));
    let points = balance(&suite, &member).await;
    assert_eq!((points.balance, points.available), (300, 300));
    let late = client
        .confirm_shipment(ConfirmShipmentRequest {
            id: placed.id.clone(),
            carrier: "InPost".into(),
            tracking_number: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "ORDER_NOT_SHIPPABLE");
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shipment_whose_points_cannot_be_taken_cancels_the_order() {
    let (suite, program) = start().await;
    let Kettle {
        mut client,
        reward: kettle,
        member,
        order: placed,
    } = ordered_kettle(&suite, &program, 100, 1, 300).await;
    suite
        .loyalty_client()
        .suspend_membership(SuspendMembershipRequest {
            id: member.id.clone(),
            reason: "card fraud".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let refused = client
        .confirm_shipment(ConfirmShipmentRequest {
            id: placed.id.clone(),
            carrier: "InPost".into(),
            tracking_number: "1".into(),
            request_id: "ship".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "POINTS_NOT_TAKEN", "{refused:?}");
    assert!(refused.message().contains("do not ship"));
    let cancelled = get_order(&mut client, &placed.id).await;
    assert_eq!(cancelled.status(), RewardOrderStatus::Cancelled);
    assert!(
        cancelled
            .cancel_reason
            .contains("loyalty would not take the points")
    );
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!(
        (stock.on_hand, stock.reserved),
        (1, 0),
        "nothing left the shelf"
    );
    assert!(
        pending_holds(&suite, &member).await.is_empty(),
        "the hold was voided"
    );
    assert_eq!(balance(&suite, &member).await.balance, 300, "nothing taken");
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_return_whose_points_went_back_in_loyalty_already_gives_none_twice() {
    let (suite, program) = start().await;
    let Kettle {
        mut client,
        reward: kettle,
        member,
        order: placed,
    } = ordered_kettle(&suite, &program, 100, 1, 300).await;
    ship(&mut client, &placed).await;
    deliver(&mut client, &placed).await;
    // Customer service gave the points back in loyalty directly.
    suite
        .loyalty_client()
        .reverse_operation(ReverseOperationRequest {
            operation_id: "goodwill-1".into(),
            original_operation_id: format!("hold:{}:capture", placed.hold_id),
            reference: "goodwill".into(),
            points: 0,
        })
        .await
        .unwrap();
    assert_eq!(balance(&suite, &member).await.balance, 300);

    let returned = client
        .return_reward_order(ReturnRewardOrderRequest {
            id: placed.id.clone(),
            request_id: "return".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(returned.status(), RewardOrderStatus::Returned);
    let settled = &returned.returns[0];
    assert!(
        settled.points_returned && settled.points == 0,
        "{settled:?}"
    );
    assert!(!settled.points_refused.is_empty());
    assert_eq!(returned.returned_points, 0);
    assert_eq!(
        balance(&suite, &member).await.balance,
        300,
        "no point given back twice"
    );
    assert_eq!(
        stock_of(&mut client, &kettle).await.on_hand,
        1,
        "the kettle is back"
    );
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}
