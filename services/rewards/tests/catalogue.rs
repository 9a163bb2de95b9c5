//! The catalogue through the public API: a reward's life, what is refused and why, what a member
//! can order, and partners' voucher codes.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::{
    common::v1::Money,
    parties::v1::{Base, CreateBaseRequest},
    rewards::v1::*,
};
use crm_testkit::read_topic;
use prost::Message;
use prost_types::{FieldMask, Timestamp};
use tonic::Code;
use tonic_types::StatusExt;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn in_days(days: i64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Some(Timestamp {
        seconds: now + days * 86_400,
        nanos: 0,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reward_is_drafted_activated_updated_and_archived() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let base = suite
        .parties_client()
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "VIP".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let draft = client
        .create_reward(CreateRewardRequest {
            reward: Some(Reward {
                status: RewardStatus::Unspecified as i32,
                description: "1.7 l, stainless steel\nTwo-year warranty".into(),
                category: "kitchen".into(),
                image_uri: "https://cdn.example.com/kettle.png".into(),
                co_payment: Some(Money {
                    amount: "19.90".into(),
                    currency_code: "pln".into(),
                }),
                available_from: in_days(-1),
                available_until: in_days(30),
                per_member_limit: 2,
                total_limit: 100,
                tier_codes: vec!["gold".into(), "gold".into()],
                base_ids: vec![base.id.clone()],
                low_stock_threshold: 5,
                ..material(&program, "Kettle", 1_200)
            }),
            request_id: "kettle".into(),
        })
        .await
        .expect("a draft")
        .into_inner();
    assert_eq!(
        draft.status(),
        RewardStatus::Draft,
        "a draft unless it says ACTIVE"
    );
    assert_eq!(draft.point_type, "basic", "the program's first point type");
    assert_eq!(draft.tier_codes, ["gold"], "each tier once");
    let payment = draft.co_payment.clone().unwrap();
    assert_eq!(
        (payment.amount.as_str(), payment.currency_code.as_str()),
        ("19.90", "PLN")
    );
    assert_eq!(draft.available_units, 0, "no stock yet");
    assert_eq!(draft.etag, "1");
    let fetched = client
        .get_reward(GetRewardRequest {
            id: draft.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, draft);

    let activated = client
        .update_reward(UpdateRewardRequest {
            reward: Some(Reward {
                id: draft.id.clone(),
                status: RewardStatus::Active as i32,
                price_points: 1_000,
                etag: draft.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["status", "price_points"]),
            request_id: "activate-kettle".into(),
        })
        .await
        .expect("activating")
        .into_inner();
    assert_eq!(activated.status(), RewardStatus::Active);
    assert_eq!(activated.price_points, 1_000);
    assert_eq!(
        activated.description, draft.description,
        "fields off the mask kept"
    );

    let stale = client
        .update_reward(UpdateRewardRequest {
            reward: Some(Reward {
                id: draft.id.clone(),
                display_name: "Electric kettle".into(),
                etag: draft.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let back_to_draft = client
        .update_reward(UpdateRewardRequest {
            reward: Some(Reward {
                id: draft.id.clone(),
                status: RewardStatus::Draft as i32,
                program_id: program.id.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["status", "program_id"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&back_to_draft),
        ["update_mask"],
        "program_id never changes"
    );

    let archived = client
        .archive_reward(ArchiveRewardRequest {
            id: draft.id.clone(),
            etag: activated.etag.clone(),
            request_id: "archive-kettle".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.status(), RewardStatus::Archived);
    let again = client
        .archive_reward(ArchiveRewardRequest {
            id: draft.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, archived, "archiving twice changes nothing");
    let after = client
        .update_reward(UpdateRewardRequest {
            reward: Some(Reward {
                id: draft.id.clone(),
                display_name: "Electric kettle".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&after), "REWARD_ARCHIVED");

    let records = read_topic(
        &suite.broker.brokers(),
        "crm.rewards.reward.v1",
        3,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    let changes: Vec<String> = records
        .iter()
        .map(|r| RewardChanged::decode(r.payload.as_slice()).unwrap().change)
        .collect();
    assert_eq!(changes, ["created", "activated", "archived"]);
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(draft.id.as_str()))
    );
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rewards_are_refused_naming_every_field() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let create = |reward: Reward| CreateRewardRequest {
        reward: Some(reward),
        ..Default::default()
    };

    let bad = client
        .create_reward(create(Reward {
            kind: RewardKind::Unspecified as i32,
            display_name: " ".into(),
            category: "Big Stuff".into(),
            image_uri: "kettle.png".into(),
            price_points: 0,
            co_payment: Some(Money {
                amount: "12,50".into(),
                currency_code: "zł".into(),
            }),
            available_from: in_days(2),
            available_until: in_days(1),
            per_member_limit: -1,
            ..material(&program, "", 0)
        }))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "reward.available_until",
            "reward.category",
            "reward.co_payment.amount",
            "reward.co_payment.currency_code",
            "reward.display_name",
            "reward.image_uri",
            "reward.kind",
            "reward.per_member_limit",
            "reward.price_points",
        ]
    );

    let mut unknown_program = material(&program, "Kettle", 100);
    unknown_program.program_id = uuid::Uuid::now_v7().to_string();
    let refused = client
        .create_reward(create(unknown_program))
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["reward.program_id"]);

    let not_of_the_program = client
        .create_reward(create(Reward {
            point_type: "miles".into(),
            tier_codes: vec!["platinum".into()],
            ..material(&program, "Kettle", 100)
        }))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&not_of_the_program),
        ["reward.point_type", "reward.tier_codes[0]"]
    );

    let no_base = client
        .create_reward(create(Reward {
            base_ids: vec![uuid::Uuid::now_v7().to_string()],
            ..material(&program, "Kettle", 100)
        }))
        .await
        .unwrap_err();
    assert_eq!(fields(&no_base), ["reward.base_ids[0]"]);

    let mixed_up = client
        .create_reward(create(Reward {
            voucher_source: VoucherSource::Generated as i32,
            voucher_valid_days: 30,
            ..material(&program, "Kettle", 100)
        }))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&mixed_up),
        ["reward.voucher_source", "reward.voucher_valid_days"]
    );
    let sourceless = client
        .create_reward(create(Reward {
            low_stock_threshold: 3,
            ..voucher(&program, "Cinema", 100, VoucherSource::Unspecified)
        }))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&sourceless),
        ["reward.low_stock_threshold", "reward.voucher_source"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rewards_are_listed_by_what_a_member_can_order() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let kettle = create(
        &mut client,
        Reward {
            category: "kitchen".into(),
            ..material(&program, "Kettle", 100)
        },
    )
    .await;
    receive(&mut client, &kettle, &store, 5).await;
    let bike = create(&mut client, material(&program, "Bike", 500)).await;
    receive(&mut client, &bike, &store, 3).await;
    let cinema = create(
        &mut client,
        voucher(&program, "Cinema", 50, VoucherSource::Generated),
    )
    .await;
    let draft = create(
        &mut client,
        Reward {
            status: RewardStatus::Draft as i32,
            ..voucher(&program, "Spa", 10, VoucherSource::Generated)
        },
    )
    .await;
    let later = create(
        &mut client,
        Reward {
            available_from: in_days(7),
            ..voucher(&program, "Concert", 80, VoucherSource::Generated)
        },
    )
    .await;
    let empty = create(&mut client, material(&program, "Toaster", 90)).await;
    let member = member_with_points(&suite, &program, "Ola", 120).await;

    let lister = client.clone();
    let list = |req: ListRewardsRequest| {
        let mut client = lister.clone();
        async move {
            let listed = client.list_rewards(req).await.unwrap().into_inner();
            listed
                .rewards
                .into_iter()
                .map(|r| r.display_name)
                .collect::<Vec<_>>()
        }
    };
    let of_program = ListRewardsRequest {
        program_id: program.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        list(of_program.clone()).await,
        ["Kettle", "Bike", "Cinema", "Spa", "Concert", "Toaster"]
    );
    let now = ListRewardsRequest {
        available_now: true,
        ..of_program.clone()
    };
    assert_eq!(
        list(now.clone()).await,
        ["Kettle", "Bike", "Cinema"],
        "active, in their window, with stock"
    );
    let affordable = ListRewardsRequest {
        affordable_for_membership_id: member.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        list(affordable.clone()).await,
        ["Kettle", "Cinema", "Spa", "Concert", "Toaster"]
    );
    assert_eq!(
        list(ListRewardsRequest {
            available_now: true,
            ..affordable
        })
        .await,
        ["Kettle", "Cinema"]
    );
    assert_eq!(
        list(ListRewardsRequest {
            kind: RewardKind::Voucher as i32,
            status: RewardStatus::Active as i32,
            ..Default::default()
        })
        .await,
        ["Cinema", "Concert"]
    );
    assert_eq!(
        list(ListRewardsRequest {
            category: "kitchen".into(),
            ..Default::default()
        })
        .await,
        ["Kettle"]
    );

    // Stock written off takes the kettle out of what can be ordered now.
    client
        .record_stock_movement(RecordStockMovementRequest {
            reward_id: kettle.id.clone(),
            warehouse_id: store.id.clone(),
            kind: MovementKind::Adjustment as i32,
            quantity: -5,
            reason: "water damage".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list(now).await, ["Bike", "Cinema"]);

    // Pages of two, each token bound to its filters.
    let first = client
        .list_rewards(ListRewardsRequest {
            page_size: 2,
            ..of_program.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rewards.len(), 2);
    let second = client
        .list_rewards(ListRewardsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..of_program.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.rewards[0].id, cinema.id);
    let misused = client
        .list_rewards(ListRewardsRequest {
            page_token: first.next_page_token,
            kind: RewardKind::Material as i32,
            ..of_program
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&misused), ["page_token"]);
    let stranger = client
        .list_rewards(ListRewardsRequest {
            affordable_for_membership_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&stranger), ["affordable_for_membership_id"]);
    let _ = (bike, draft, later, empty);
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn voucher_codes_are_imported_all_or_nothing_and_once() {
    let (suite, program) = start().await;
    let mut client = suite.rewards_client();
    let cinema = create(
        &mut client,
        voucher(&program, "Cinema", 50, VoucherSource::Imported),
    )
    .await;
    let import = |csv: &str| ImportVoucherCodesRequest {
        reward_id: cinema.id.clone(),
        csv: csv.as_bytes().to_vec(),
        ..Default::default()
    };

    let bad = client
        .import_voucher_codes(import(
            "code,valid_until\nCIN-0001\nab\nCIN-0002,2027-02-30\n",
        ))
        .await
        .unwrap_err();
    let details = bad.get_details_bad_request().unwrap().field_violations;
    let said: Vec<(&str, &str)> = details
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].0 == "csv" && said[0].1.starts_with("line 3:"),
        "{said:?}"
    );
    assert!(said[1].1.starts_with("line 4:"), "{said:?}");
    let untouched = client
        .get_reward(GetRewardRequest {
            id: cinema.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.available_units, 0, "nothing of a refused file");

    let file = "code,valid_until\nCIN-0001\nCIN-0002,2027-03-31\nCIN-0003\nCIN-0003\n";
    let first = client
        .import_voucher_codes(import(file))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.imported, first.skipped, first.available), (3, 1, 3));
    let again = client
        .import_voucher_codes(import(&format!("{file}CIN-0004\n")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.imported, again.skipped, again.available), (1, 4, 4));

    let kettle = create(&mut client, material(&program, "Kettle", 100)).await;
    let generated = create(
        &mut client,
        voucher(&program, "Spa", 10, VoucherSource::Generated),
    )
    .await;
    for reward in [kettle, generated] {
        let refused = client
            .import_voucher_codes(ImportVoucherCodesRequest {
                reward_id: reward.id,
                csv: b"CODE-0001\n".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "CODES_NOT_IMPORTED");
    }
    suite.stop().await.unwrap();
}
