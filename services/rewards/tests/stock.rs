//! Warehouses and stock through the public API: movements and what they refuse, their history,
//! low-stock events, and stock that never goes negative however many movements race.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::{common::v1::PostalAddress, rewards::v1::*};
use crm_testkit::read_topic;
use futures::future::join_all;
use prost::Message;
use tonic::Code;

fn movement(
    reward: &Reward,
    warehouse: &Warehouse,
    kind: MovementKind,
    quantity: i64,
) -> RecordStockMovementRequest {
    RecordStockMovementRequest {
        reward_id: reward.id.clone(),
        warehouse_id: warehouse.id.clone(),
        kind: kind as i32,
        quantity,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warehouses_have_unique_codes_and_real_addresses() {
    let (suite, _) = start().await;
    let mut client = suite.rewards_client();
    let created = client
        .create_warehouse(CreateWarehouseRequest {
            warehouse: Some(Warehouse {
                code: "warsaw_central".into(),
                display_name: "Warsaw central".into(),
                address: Some(PostalAddress {
                    lines: vec!["ul. Magazynowa 1".into()],
                    postal_code: "02-001".into(),
                    city: "Warszawa".into(),
                    country_code: "pl".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: "warsaw".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.address.unwrap().country_code, "PL");
    let taken = client
        .create_warehouse(CreateWarehouseRequest {
            warehouse: Some(Warehouse {
                code: "warsaw_central".into(),
                display_name: "Another".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(reason(&taken), "WAREHOUSE_EXISTS");
    let bad = client
        .create_warehouse(CreateWarehouseRequest {
            warehouse: Some(Warehouse {
                code: "Gdańsk".into(),
                display_name: String::new(),
                address: Some(PostalAddress {
                    country_code: "Poland".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "warehouse.address.country_code",
            "warehouse.address.lines",
            "warehouse.code",
            "warehouse.display_name"
        ]
    );
    for code in ["krakow", "gdansk"] {
        warehouse(&mut client, code).await;
    }
    let first = client
        .list_warehouses(ListWarehousesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rest = client
        .list_warehouses(ListWarehousesRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<String> = first
        .warehouses
        .iter()
        .chain(&rest.warehouses)
        .map(|w| w.code.clone())
        .collect();
    assert_eq!(codes, ["gdansk", "krakow", "warsaw_central"]);
    assert!(rest.next_page_token.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stock_moves_between_warehouses_and_never_below_what_is_there() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let north = warehouse(&mut client, "north").await;
    let south = warehouse(&mut client, "south").await;
    let kettle = create(
        &mut client,
        Reward {
            low_stock_threshold: 5,
            ..material(&program, "Kettle", 100)
        },
    )
    .await;

    let received = client
        .record_stock_movement(RecordStockMovementRequest {
            reference: "WZ 2026/11/7".into(),
            request_id: "delivery-7".into(),
            ..movement(&kettle, &north, MovementKind::Receipt, 10)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(received.stock.unwrap().available, 10);
    let replayed = client
        .record_stock_movement(RecordStockMovementRequest {
            reference: "WZ 2026/11/7".into(),
            request_id: "delivery-7".into(),
            ..movement(&kettle, &north, MovementKind::Receipt, 10)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replayed.movements, received.movements,
        "a retried receipt counts once"
    );

    let moved = client
        .record_stock_movement(RecordStockMovementRequest {
            to_warehouse_id: south.id.clone(),
            ..movement(&kettle, &north, MovementKind::Transfer, 4)
        })
        .await
        .unwrap()
        .into_inner();
    let legs: Vec<(String, i64)> = moved
        .movements
        .iter()
        .map(|m| (m.warehouse_id.clone(), m.quantity))
        .collect();
    assert_eq!(legs, [(north.id.clone(), -4), (south.id.clone(), 4)]);
    assert_eq!(
        moved.movements[0].transfer_id,
        moved.movements[1].transfer_id
    );
    assert!(!moved.movements[0].transfer_id.is_empty());

    let too_much = client
        .record_stock_movement(RecordStockMovementRequest {
            reason: "stocktaking".into(),
            ..movement(&kettle, &north, MovementKind::Adjustment, -7)
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_much), "INSUFFICIENT_STOCK");
    let too_far = client
        .record_stock_movement(RecordStockMovementRequest {
            to_warehouse_id: north.id.clone(),
            ..movement(&kettle, &south, MovementKind::Transfer, 5)
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_far), "INSUFFICIENT_STOCK");
    let written_off = client
        .record_stock_movement(RecordStockMovementRequest {
            reason: "damaged in transit".into(),
            ..movement(&kettle, &north, MovementKind::Adjustment, -2)
        })
        .await
        .unwrap()
        .into_inner();
    let north_now = &written_off.stock.as_ref().unwrap().items[0];
    assert_eq!(
        (north_now.on_hand, north_now.low),
        (4, true),
        "4 is below the threshold of 5"
    );
    client
        .record_stock_movement(movement(&kettle, &north, MovementKind::Return, 1))
        .await
        .unwrap();

    let unexplained = client
        .record_stock_movement(movement(&kettle, &north, MovementKind::Adjustment, -1))
        .await
        .unwrap_err();
    assert_eq!(fields(&unexplained), ["reason"]);
    let mut huge = movement(&kettle, &north, MovementKind::Receipt, 1_000_000_001);
    let too_big = client
        .record_stock_movement(huge.clone())
        .await
        .unwrap_err();
    assert_eq!(fields(&too_big), ["quantity"]);
    huge.kind = MovementKind::Adjustment as i32;
    huge.quantity = i64::MIN;
    huge.reason = "overflow".into();
    let too_small = client.record_stock_movement(huge).await.unwrap_err();
    assert_eq!(fields(&too_small), ["quantity"]);
    let by_hand = client
        .record_stock_movement(movement(&kettle, &north, MovementKind::Reservation, 1))
        .await
        .unwrap_err();
    assert_eq!(fields(&by_hand), ["kind"]);
    let nowhere = client
        .record_stock_movement(movement(&kettle, &north, MovementKind::Transfer, 1))
        .await
        .unwrap_err();
    assert_eq!(fields(&nowhere), ["to_warehouse_id"]);
    let mut unknown = movement(&kettle, &north, MovementKind::Receipt, 1);
    unknown.warehouse_id = uuid::Uuid::now_v7().to_string();
    let unknown = client.record_stock_movement(unknown).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let cinema = create(
        &mut client,
        voucher(&program, "Cinema", 50, VoucherSource::Generated),
    )
    .await;
    let shelfless = client
        .record_stock_movement(movement(&cinema, &north, MovementKind::Receipt, 1))
        .await
        .unwrap_err();
    assert_eq!(reason(&shelfless), "NOT_MATERIAL");

    let stock = client
        .get_stock(GetStockRequest {
            reward_id: kettle.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut levels: Vec<(String, i64, bool)> = stock
        .items
        .iter()
        .map(|i| (i.warehouse_id.clone(), i.on_hand, i.low))
        .collect();
    levels.sort();
    let mut expected = vec![(north.id.clone(), 5, false), (south.id.clone(), 4, true)];
    expected.sort();
    assert_eq!(levels, expected);
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (9, 0, 9));

    // History, newest first, a page at a time, by warehouse and by kind.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_stock_movements(ListStockMovementsRequest {
                reward_id: kettle.id.clone(),
                page_size: 2,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.movements.iter().map(|m| (m.kind(), m.quantity)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    use MovementKind::*;
    assert_eq!(
        seen,
        [
            (Return, 1),
            (Adjustment, -2),
            (Transfer, 4),
            (Transfer, -4),
            (Receipt, 10)
        ]
    );
    let south_only = client
        .list_stock_movements(ListStockMovementsRequest {
            reward_id: kettle.id.clone(),
            warehouse_id: south.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(south_only.movements.len(), 1);
    let receipts = client
        .list_stock_movements(ListStockMovementsRequest {
            reward_id: kettle.id.clone(),
            kind: Receipt as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipts.movements[0].reference, "WZ 2026/11/7");

    // Downstream: every movement, and a low-stock event each time a warehouse falls below 5.
    let records = read_topic(
        &suite.broker.brokers(),
        "crm.rewards.stock.v1",
        6,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    let types: Vec<&str> = records
        .iter()
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "crm.rewards.v1.StockMoved",
            "crm.rewards.v1.StockMoved",
            "crm.rewards.v1.StockLow",
            "crm.rewards.v1.StockMoved",
            "crm.rewards.v1.StockLow",
            "crm.rewards.v1.StockMoved",
        ]
    );
    let low = StockLow::decode(records[2].payload.as_slice()).unwrap();
    assert_eq!(
        (low.warehouse_id.as_str(), low.available),
        (south.id.as_str(), 4)
    );
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_write_offs_never_take_stock_below_zero() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    receive(&mut client, &kettle, &store, 20).await;

    let write_offs = (0..40).map(|i| {
        let mut client = client.clone();
        let request = RecordStockMovementRequest {
            reason: format!("broken #{i}"),
            ..movement(&kettle, &store, MovementKind::Adjustment, -1)
        };
        async move { client.record_stock_movement(request).await }
    });
    let results = join_all(write_offs).await;
    let done = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(done, 20, "exactly what was there");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(refused), "INSUFFICIENT_STOCK", "{refused:?}");
    }
    let stock = client
        .get_stock(GetStockRequest {
            reward_id: kettle.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stock.on_hand, 0);
    let movements = client
        .list_stock_movements(ListStockMovementsRequest {
            reward_id: kettle.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .movements;
    assert_eq!(movements.len(), 21);
    assert!(movements.iter().all(|m| m.on_hand_after >= 0));
    suite.stop().await.unwrap();
}
