//! Reward orders through the public API, with loyalty holding and taking the points: the happy
//! path, cancellation, returns, and orders racing for the last units and codes. After each test
//! the ledger balances and no hold is left behind.

mod common;

use std::{collections::HashSet, time::Duration};

use common::*;
use crm_proto::crm::{
    common::v1::Money,
    loyalty::v1::{GetHoldRequest, HoldStatus},
    rewards::v1::*,
};
use crm_testkit::read_topic;
use futures::future::join_all;
use prost::Message;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn an_order_is_placed_shipped_with_its_points_taken_and_delivered() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let kettle = create(
        &mut client,
        Reward {
            co_payment: Some(Money {
                amount: "9.99".into(),
                currency_code: "PLN".into(),
            }),
            ..material(&program, "Kettle", 300)
        },
    )
    .await;
    receive(&mut client, &kettle, &store, 5).await;
    let member = member_with_points(&suite, &program, "Ola", 1_000).await;

    let request = order(&member, &[(&kettle, 2)], home(), "order-1");
    let placed = client
        .place_reward_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status(), RewardOrderStatus::Confirmed);
    assert_eq!((placed.points, placed.captured_points), (600, 0));
    assert_eq!(placed.co_payments[0].amount, "19.98");
    assert_eq!(placed.items[0].unit_points, 300);
    let points = balance(&suite, &member).await;
    assert_eq!(
        (points.balance, points.held, points.available),
        (1_000, 600, 400)
    );
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (5, 2, 3));
    let hold = suite
        .loyalty_client()
        .get_hold(GetHoldRequest {
            hold_id: placed.hold_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((hold.status(), hold.points), (HoldStatus::Pending, 600));

    // Sent again (a lost answer), it is the same order, placed once.
    let again = client
        .place_reward_order(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, placed.id);
    let listed = client
        .list_reward_orders(ListRewardOrdersRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.orders.len(), 1);

    let shipped = ship(&mut client, &placed).await;
    assert_eq!(shipped.status(), RewardOrderStatus::Shipped);
    assert_eq!(shipped.captured_points, 600);
    assert_eq!(
        shipped.shipment.as_ref().unwrap().tracking_number,
        "620111222333444"
    );
    let points = balance(&suite, &member).await;
    assert_eq!(
        (points.balance, points.held, points.available),
        (400, 0, 400)
    );
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (3, 0, 3));
    let twice = client
        .confirm_shipment(ConfirmShipmentRequest {
            id: placed.id.clone(),
            carrier: "DPD".into(),
            tracking_number: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&twice), "ORDER_NOT_SHIPPABLE");

    let delivered = deliver(&mut client, &placed).await;
    assert_eq!(delivered.status(), RewardOrderStatus::Delivered);
    assert!(delivered.deliver_time.is_some());

    let records = read_topic(
        &suite.broker.brokers(),
        "crm.rewards.order.v1",
        3,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    let changes: Vec<(String, RewardOrderStatus)> = records
        .iter()
        .map(|r| {
            let event = RewardOrderChanged::decode(r.payload.as_slice()).unwrap();
            let order = event.order.unwrap();
            assert!(order.delivery.is_none(), "no address in events");
            (event.change, order.status())
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("placed".into(), RewardOrderStatus::Confirmed),
            ("shipped".into(), RewardOrderStatus::Shipped),
            ("delivered".into(), RewardOrderStatus::Delivered),
        ]
    );
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_order_voids_its_hold_and_releases_its_stock() {
    let (suite, program) = start().await;
    let Kettle {
        mut client,
        reward: kettle,
        member,
        order: placed,
    } = ordered_kettle(&suite, &program, 300, 2, 500).await;
    let cancel = CancelRewardOrderRequest {
        id: placed.id.clone(),
        reason: "changed my mind".into(),
        request_id: "cancel-1".into(),
    };
    let cancelled = client
        .cancel_reward_order(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), RewardOrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason, "changed my mind");
    let replayed = client
        .cancel_reward_order(cancel)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.status(), RewardOrderStatus::Cancelled);

    let hold = suite
        .loyalty_client()
        .get_hold(GetHoldRequest {
            hold_id: placed.hold_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.status(), HoldStatus::Voided);
    let points = balance(&suite, &member).await;
    assert_eq!(
        (points.balance, points.available),
        (500, 500),
        "nothing taken"
    );
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!((stock.on_hand, stock.reserved), (2, 0));
    let reward = client
        .get_reward(GetRewardRequest {
            id: kettle.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reward.ordered_units, reward.available_units), (0, 2));

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
    let shipped = client
        .place_reward_order(order(&member, &[(&kettle, 1)], home(), "order-2"))
        .await
        .unwrap()
        .into_inner();
    ship(&mut client, &shipped).await;
    let too_late = client
        .cancel_reward_order(CancelRewardOrderRequest {
            id: shipped.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_late), "ORDER_NOT_CANCELLABLE");
    assert!(pending_holds(&suite, &member).await.is_empty());
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn returns_give_points_back_once_and_restock() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let north = warehouse(&mut client, "north").await;
    let south = warehouse(&mut client, "south").await;
    let kettle = create(&mut client, material(&program, "Kettle", 300)).await;
    let mug = create(&mut client, material(&program, "Mug", 50)).await;
    receive(&mut client, &kettle, &north, 3).await;
    receive(&mut client, &mug, &north, 1).await;
    let member = member_with_points(&suite, &program, "Ola", 2_000).await;

    let placed = client
        .place_reward_order(order(
            &member,
            &[(&kettle, 3), (&mug, 1)],
            home(),
            "order-1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.points, 950);
    ship(&mut client, &placed).await;
    deliver(&mut client, &placed).await;
    assert_eq!(balance(&suite, &member).await.balance, 1_050);

    let kettle_line = placed
        .items
        .iter()
        .find(|i| i.reward_id == kettle.id)
        .unwrap()
        .line;
    let one_kettle = ReturnRewardOrderRequest {
        id: placed.id.clone(),
        items: vec![ReturnedItem {
            line: kettle_line,
            quantity: 1,
        }],
        reason: "broken lid".into(),
        request_id: "return-1".into(),
        ..Default::default()
    };
    let partly = client
        .return_reward_order(one_kettle.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partly.status(), RewardOrderStatus::PartiallyReturned);
    assert_eq!(partly.returned_points, 300);
    assert!(partly.returns[0].points_returned);
    assert_eq!(balance(&suite, &member).await.balance, 1_350);
    let replayed = client
        .return_reward_order(one_kettle)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replayed.returned_points, 300,
        "a replay gives nothing back twice"
    );
    assert_eq!(balance(&suite, &member).await.balance, 1_350);
    assert_eq!(
        stock_of(&mut client, &kettle).await.on_hand,
        1,
        "back where it left from"
    );

    let too_many = client
        .return_reward_order(ReturnRewardOrderRequest {
            id: placed.id.clone(),
            items: vec![ReturnedItem {
                line: kettle_line,
                quantity: 3,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&too_many), ["items[0].quantity"]);

    // The rest, to the other warehouse.
    let rest = client
        .return_reward_order(ReturnRewardOrderRequest {
            id: placed.id.clone(),
            warehouse_id: south.id.clone(),
            reason: "unwanted".into(),
            request_id: "return-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.status(), RewardOrderStatus::Returned);
    assert_eq!((rest.returned_points, rest.captured_points), (950, 950));
    assert_eq!(
        balance(&suite, &member).await.balance,
        2_000,
        "every point back, once"
    );
    let kettles = stock_of(&mut client, &kettle).await;
    let in_south = kettles
        .items
        .iter()
        .find(|i| i.warehouse_id == south.id)
        .unwrap();
    assert_eq!((kettles.on_hand, in_south.on_hand), (3, 2));
    assert_eq!(stock_of(&mut client, &mug).await.on_hand, 1);
    let nothing_left = client
        .return_reward_order(ReturnRewardOrderRequest {
            id: placed.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&nothing_left), "ORDER_NOT_RETURNABLE");
    let movements = client
        .list_stock_movements(ListStockMovementsRequest {
            reward_id: kettle.id.clone(),
            kind: MovementKind::Return as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .movements;
    assert!(movements.iter().all(|m| m.order_id == placed.id));
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_orders_race_for_ten_units_and_ten_win() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let north = warehouse(&mut client, "north").await;
    let south = warehouse(&mut client, "south").await;
    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    receive(&mut client, &kettle, &north, 6).await;
    receive(&mut client, &kettle, &south, 4).await;
    let mut members = Vec::new();
    for name in ["Ola", "Ala", "Ela", "Iza", "Ula"] {
        members.push(member_with_points(&suite, &program, name, 10_000).await);
    }

    let orders = (0..50).map(|i| {
        let mut client = client.clone();
        let request = order(
            &members[i % 5],
            &[(&kettle, 1)],
            home(),
            &format!("race-{i}"),
        );
        async move {
            client
                .place_reward_order(request)
                .await
                .map(|r| r.into_inner())
        }
    });
    let results = join_all(orders).await;
    let confirmed: Vec<&RewardOrder> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(confirmed.len(), 10, "exactly the ten units there were");
    assert!(
        confirmed
            .iter()
            .all(|o| o.status() == RewardOrderStatus::Confirmed)
    );
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert_eq!(reason(refused), "OUT_OF_STOCK", "{refused:?}");
        assert!(refused.message().contains("0 available"), "{refused:?}");
    }
    let stock = stock_of(&mut client, &kettle).await;
    assert_eq!(
        (stock.on_hand, stock.reserved, stock.available),
        (10, 10, 0)
    );
    let mut holds = 0;
    for member in &members {
        for hold in pending_holds(&suite, member).await {
            assert!(
                confirmed.iter().any(|o| o.hold_id == hold.hold_id),
                "a hold of no order"
            );
            holds += 1;
        }
    }
    assert_eq!(
        holds, 10,
        "one hold per confirmed order, none for the refused"
    );
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_voucher_code_goes_to_exactly_one_order() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let cinema = create(
        &mut client,
        voucher(&program, "Cinema", 40, VoucherSource::Imported),
    )
    .await;
    let codes = "code\nCIN-0001\nCIN-0002\nCIN-0003\nCIN-0004\nCIN-0005\n";
    client
        .import_voucher_codes(ImportVoucherCodesRequest {
            reward_id: cinema.id.clone(),
            csv: codes.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let member = member_with_points(&suite, &program, "Ola", 10_000).await;

    let orders = (0..12).map(|i| {
        let mut client = client.clone();
        let request = order(&member, &[(&cinema, 1)], inbox(), &format!("cinema-{i}"));
        async move {
            client
                .place_reward_order(request)
                .await
                .map(|r| r.into_inner())
        }
    });
    let results = join_all(orders).await;
    let delivered: Vec<&RewardOrder> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(delivered.len(), 5);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(refused), "OUT_OF_STOCK", "{refused:?}");
    }
    let mut issued = HashSet::new();
    for order in &delivered {
        assert_eq!(
            order.status(),
            RewardOrderStatus::Delivered,
            "vouchers are taken at once"
        );
        assert_eq!(order.captured_points, 40);
        let codes = &order.items[0].vouchers;
        assert_eq!(codes.len(), 1);
        assert!(
            issued.insert(codes[0].code.clone()),
            "{} issued twice",
            codes[0].code
        );
    }
    assert_eq!(issued.len(), 5);
    assert_eq!(balance(&suite, &member).await.balance, 10_000 - 5 * 40);
    let reward = client
        .get_reward(GetRewardRequest {
            id: cinema.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reward.available_units, reward.ordered_units), (0, 5));

    // Generated codes: one per unit, each new.
    let spa = create(
        &mut client,
        Reward {
            voucher_valid_days: 30,
            ..voucher(&program, "Spa", 100, VoucherSource::Generated)
        },
    )
    .await;
    let spa_order = client
        .place_reward_order(order(&member, &[(&spa, 3)], inbox(), "spa"))
        .await
        .unwrap()
        .into_inner();
    let generated: HashSet<&String> = spa_order.items[0]
        .vouchers
        .iter()
        .map(|v| &v.code)
        .collect();
    assert_eq!(generated.len(), 3);
    assert!(
        spa_order.items[0]
            .vouchers
            .iter()
            .all(|v| v.valid_until.is_some()),
        "valid for the reward's 30 days"
    );
    let refused = client
        .place_reward_order(order(&member, &[(&spa, 1)], home(), "spa-by-post"))
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["delivery.email"]);
    assert!(pending_holds(&suite, &member).await.is_empty());
    assert_ledger_balanced(&suite).await;
    suite.stop().await.unwrap();
}
