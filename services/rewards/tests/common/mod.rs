//! The rewards service under test beside the services it asks (loyalty, parties, consent), each
//! on its own database and one broker: `crm_e2e::Suite`. What a shop sets up before selling.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

use crm_e2e::{LOYALTY_PROGRAM, Suite};
use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    common::v1::PostalAddress,
    loyalty::v1::{
        AccountRef, Balance, DefineTierRequest, EnrollRequest, GetBalanceRequest, Hold, HoldStatus,
        ListHoldsRequest, Membership, Program, RecordOperationRequest, Tier,
    },
    parties::v1::{CreatePartyRequest, Party, PartyKind, PersonName},
    rewards::v1::{rewards_service_client::RewardsServiceClient, *},
};

pub type Client = RewardsServiceClient<TracedChannel>;

/// The suite with the enrolment purpose and a program of `basic` points with a `gold` tier.
pub async fn start() -> (Suite, Program) {
    let suite = Suite::start().await.expect("the suite starts");
    suite.loyalty_purpose().await;
    let program = suite.loyalty_program().await;
    let program = suite
        .loyalty_client()
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "gold".into(),
                display_name: "Gold".into(),
                threshold: 10_000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("defining the gold tier")
        .into_inner();
    (suite, program)
}

/// A person enrolled in `program` with `points` accrued.
pub async fn member_with_points(
    suite: &Suite,
    program: &Program,
    name: &str,
    points: i64,
) -> Membership {
    let party = suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: name.into(),
                    family_name: "Kowalska".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    suite.consent_to(&party.id, LOYALTY_PROGRAM, true).await;
    let mut loyalty = suite.loyalty_client();
    let member = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    if points > 0 {
        loyalty
            .record_operation(RecordOperationRequest {
                operation_id: format!("top-up-{}", member.id),
                account: Some(AccountRef {
                    membership_id: member.id.clone(),
                    ..Default::default()
                }),
                operation_type: "purchase".into(),
                points,
                reference: "receipt".into(),
                card_number: String::new(),
            })
            .await
            .unwrap();
    }
    member
}

/// An active material reward of `program` at `price` points.
pub fn material(program: &Program, name: &str, price: i64) -> Reward {
    Reward {
        program_id: program.id.clone(),
        kind: RewardKind::Material as i32,
        status: RewardStatus::Active as i32,
        display_name: name.into(),
        price_points: price,
        ..Default::default()
    }
}

/// An active voucher reward of `program` at `price` points, its codes from `source`.
pub fn voucher(program: &Program, name: &str, price: i64, source: VoucherSource) -> Reward {
    Reward {
        kind: RewardKind::Voucher as i32,
        voucher_source: source as i32,
        ..material(program, name, price)
    }
}

pub async fn create(client: &mut Client, reward: Reward) -> Reward {
    client
        .create_reward(CreateRewardRequest {
            reward: Some(reward),
            ..Default::default()
        })
        .await
        .expect("creating a reward")
        .into_inner()
}

pub async fn warehouse(client: &mut Client, code: &str) -> Warehouse {
    client
        .create_warehouse(CreateWarehouseRequest {
            warehouse: Some(Warehouse {
                code: code.into(),
                display_name: code.replace('_', " "),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("creating a warehouse")
        .into_inner()
}

/// Records `quantity` units of `reward` arriving at `warehouse`.
pub async fn receive(client: &mut Client, reward: &Reward, warehouse: &Warehouse, quantity: i64) {
    client
        .record_stock_movement(RecordStockMovementRequest {
            reward_id: reward.id.clone(),
            warehouse_id: warehouse.id.clone(),
            kind: MovementKind::Receipt as i32,
            quantity,
            reference: "delivery note".into(),
            ..Default::default()
        })
        .await
        .expect("a receipt");
}

pub use crm_testkit::{refusal_reason as reason, violated_fields as fields};

/// Where goods go: a recipient at a postal address.
pub fn home() -> Delivery {
    Delivery {
        recipient_name: "Ola Kowalska".into(),
        address: Some(PostalAddress {
            lines: vec!["ul. Lipowa 3/5".into()],
            postal_code: "30-001".into(),
            city: "Kraków".into(),
            country_code: "PL".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where vouchers go.
pub fn inbox() -> Delivery {
    Delivery {
        email: "ola@example.pl".into(),
        ..Default::default()
    }
}

pub fn order(
    member: &Membership,
    items: &[(&Reward, i32)],
    delivery: Delivery,
    request_id: &str,
) -> PlaceRewardOrderRequest {
    PlaceRewardOrderRequest {
        membership_id: member.id.clone(),
        items: items
            .iter()
            .map(|(reward, quantity)| OrderItem {
                reward_id: reward.id.clone(),
                quantity: *quantity,
            })
            .collect(),
        delivery: Some(delivery),
        request_id: request_id.into(),
    }
}

pub async fn balance(suite: &Suite, member: &Membership) -> Balance {
    suite
        .loyalty_client()
        .get_balance(GetBalanceRequest {
            account: Some(AccountRef {
                membership_id: member.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The member's holds still pending in loyalty.
pub async fn pending_holds(suite: &Suite, member: &Membership) -> Vec<Hold> {
    suite
        .loyalty_client()
        .list_holds(ListHoldsRequest {
            membership_id: member.id.clone(),
            status: HoldStatus::Pending as i32,
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holds
}

pub async fn stock_of(client: &mut Client, reward: &Reward) -> Stock {
    client
        .get_stock(GetStockRequest {
            reward_id: reward.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn get_order(client: &mut Client, id: &str) -> RewardOrder {
    client
        .get_reward_order(GetRewardOrderRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Every rule of `crm-loyalty verify` holds: each operation sums to zero, every balance is the sum
/// of its entries, every account's held points the sum of its pending holds.
pub async fn assert_ledger_balanced(suite: &Suite) {
    let findings = crm_loyalty::verify::check(&mut suite.loyalty_db().await)
        .await
        .unwrap();
    assert!(
        findings.is_empty(),
        "ledger invariants broken:\n{}",
        findings.iter().map(ToString::to_string).collect::<String>()
    );
}

/// Polls `check` until it gives a value, for at most `seconds`.
pub async fn within<T, F, Fut>(seconds: u64, check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    crm_testkit::eventually(std::time::Duration::from_secs(seconds), check).await
}

/// A kettle of `price` points, `stock` of them on a warehouse's shelf, a member with `points`, and
/// the member's order of one (CONFIRMED): where most order stories start.
pub struct Kettle {
    pub client: Client,
    pub reward: Reward,
    pub member: Membership,
    pub order: RewardOrder,
}

pub async fn ordered_kettle(
    suite: &Suite,
    program: &Program,
    price: i64,
    stock: i64,
    points: i64,
) -> Kettle {
    let mut client = suite.rewards_client();
    let store = warehouse(&mut client, "central").await;
    let reward = create(&mut client, material(program, "Kettle", price)).await;
    receive(&mut client, &reward, &store, stock).await;
    let member = member_with_points(suite, program, "Ola", points).await;
    let order = client
        .place_reward_order(order(&member, &[(&reward, 1)], home(), "order-1"))
        .await
        .expect("placing the order")
        .into_inner();
    Kettle {
        client,
        reward,
        member,
        order,
    }
}

pub async fn ship(client: &mut Client, order: &RewardOrder) -> RewardOrder {
    client
        .confirm_shipment(ConfirmShipmentRequest {
            id: order.id.clone(),
            carrier: "InPost".into(),
            tracking_number: "620111222333444".into(),
            request_id: format!("ship-{}", order.id),
        })
        .await
        .expect("shipping")
        .into_inner()
}

pub async fn deliver(client: &mut Client, order: &RewardOrder) -> RewardOrder {
    client
        .confirm_delivery(ConfirmDeliveryRequest {
            id: order.id.clone(),
            request_id: format!("deliver-{}", order.id),
        })
        .await
        .expect("delivering")
        .into_inner()
}
