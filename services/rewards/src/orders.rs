//! Reward orders: placing them, and reading them. The steps after placing are in `saga.rs` (what
//! asks loyalty) and `fulfilment.rs` (shipment, delivery, cancellation, returns).

use std::{collections::HashSet, time::Duration};

use chrono::Utc;
use crm_kit::{
    address::Address,
    error::{FieldViolations, Result, ServiceError},
    request::{self, optional_time, optional_uuid, text, uuid},
    store::{Begun, Page, Tx, answered, begin},
};
use crm_proto::crm::{loyalty::v1::MembershipStatus, rewards::v1::*};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Rewards, convert,
    domain::{
        MovementKind, RewardKind, RewardStatus, VoucherSource,
        orders::{MAX_QUANTITY, allocate, valid_email},
    },
    error::Refusal,
    stock::{Leg, Note, apply_legs},
    store::{
        orders::{self as store, DeliveryRow, ItemRow, NewOrder, OrderRow},
        rewards::{self as reward_store, RewardRow},
        stock as stock_store, vouchers as vouchers_store,
    },
};

/// What a valid order asks for, checked with loyalty and parties before anything is locked.
struct Plan {
    membership: Uuid,
    party: Uuid,
    program: Uuid,
    tier: String,
    /// The party's bases, asked of parties only when a reward is restricted to bases.
    bases: Vec<Uuid>,
    kind: RewardKind,
    point_type: String,
    /// (line, reward, quantity), by reward id: the order rewards are locked in.
    lines: Vec<(i32, Uuid, i32)>,
    delivery: DeliveryRow,
}

impl Rewards {
    pub async fn place_reward_order(
        &self,
        caller: &str,
        req: PlaceRewardOrderRequest,
    ) -> Result<RewardOrder> {
        // A replay is answered without asking loyalty again.
        let mut conn = self.pool.acquire().await?;
        let stored = answered::<RewardOrder, _>(&mut conn, caller, &req).await?;
        drop(conn);
        if let Some(placed) = stored {
            return self.replayed(&placed.id).await;
        }
        let plan = self.plan(&req).await?;
        let (mut tx, claim) = match begin::<RewardOrder, _>(&self.pool, caller, &req).await? {
            Begun::Replay(placed) => return self.replayed(&placed.id).await,
            Begun::Fresh(tx, claim) => (tx, claim),
        };
        let hold_timeout = self.hold_timeout;
        let Some(order) = reserve(&mut tx, &plan, caller, &req.request_id, hold_timeout).await?
        else {
            // Its stored answer purged after a week, the request id still finds the order.
            drop(tx);
            let mut conn = self.pool.acquire().await?;
            let placed = store::placed_by(&mut conn, caller, &req.request_id).await?;
            let placed =
                placed.ok_or_else(|| ServiceError::not_found("RewardOrder", &req.request_id))?;
            return self.replayed(&placed.to_string()).await;
        };
        // A replay finds the order by its id and answers it as it then is.
        let placed = RewardOrder {
            id: order.id.to_string(),
            ..Default::default()
        };
        claim.commit(tx, &placed).await?;
        let advanced = self.advance(order.id).await;
        self.after_step(order.id, advanced).await
    }

    pub async fn get_reward_order(&self, req: GetRewardOrderRequest) -> Result<RewardOrder> {
        let id = request::id(&req.id, "id")?;
        self.answer(id).await
    }

    pub async fn list_reward_orders(
        &self,
        req: ListRewardOrdersRequest,
    ) -> Result<ListRewardOrdersResponse> {
        let mut v = FieldViolations::new();
        let filters = (
            &req.membership_id,
            req.status,
            req.placed_after.map(|t| (t.seconds, t.nanos)),
            req.placed_before.map(|t| (t.seconds, t.nanos)),
        );
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let filter = store::Filter {
            membership_id: optional_uuid(&req.membership_id, "membership_id", &mut v),
            status: crate::domain::orders::OrderStatus::optional(req.status, "status", &mut v),
            placed_after: optional_time(req.placed_after.as_ref(), "placed_after", &mut v),
            placed_before: optional_time(req.placed_before.as_ref(), "placed_before", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let loaded = store::load(&mut conn, rows).await?;
        Ok(ListRewardOrdersResponse {
            orders: loaded.iter().map(convert::order).collect(),
            next_page_token,
        })
    }

    /// The order as it now is, after finishing whatever step of it is in flight: what a replay of
    /// any of its calls answers.
    pub(crate) async fn replayed(&self, id: &str) -> Result<RewardOrder> {
        let id = request::id(id, "id")?;
        let advanced = self.advance(id).await;
        self.after_step(id, advanced).await
    }

    /// The answer to a call whose step committed: the order as it now is. Loyalty not answering
    /// after that is not the caller's failure: the order shows the step in flight and the sweep
    /// finishes it. Only an order that was not placed answers with what stopped it.
    pub(crate) async fn after_step(&self, id: Uuid, step: Result<()>) -> Result<RewardOrder> {
        let unanswered = match step {
            Ok(()) => None,
            Err(ServiceError::Unavailable(why)) => Some(why),
            Err(error) => return Err(error),
        };
        let order = self.answer(id).await?;
        if order.status() != RewardOrderStatus::Failed {
            return Ok(order);
        }
        let failure = order.failure.unwrap_or_default();
        let why = failure.message;
        Err(match (unanswered, failure.reason.as_str()) {
            (Some(unanswered), _) => ServiceError::Unavailable(unanswered),
            (None, "LOYALTY_UNAVAILABLE") => ServiceError::Unavailable(why),
            (None, "INSUFFICIENT_POINTS") => Refusal::InsufficientPoints { why }.into(),
            (None, _) => Refusal::PointsNotHeld { why }.into(),
        })
    }

    pub(crate) async fn answer(&self, id: Uuid) -> Result<RewardOrder> {
        let mut conn = self.pool.acquire().await?;
        let row = order_row(&mut conn, id).await?;
        let loaded = store::load(&mut conn, vec![row]).await?;
        Ok(convert::order(&loaded[0]))
    }

    /// Checks the request, the membership and the rewards, before any transaction.
    async fn plan(&self, req: &PlaceRewardOrderRequest) -> Result<Plan> {
        let mut v = FieldViolations::new();
        let membership_id = uuid(&req.membership_id, "membership_id", &mut v);
        v.check(
            !req.items.is_empty(),
            "items",
            "an order holds at least one item",
        );
        v.check(
            !req.request_id.trim().is_empty(),
            "request_id",
            "is required: an order is placed once however often it is sent",
        );
        let wanted = wanted_items(&req.items, &mut v);
        let delivery = request::required(req.delivery.clone(), "delivery", &mut v);
        v.finish()?;

        let membership = self.membership(membership_id, "membership_id").await?;
        if membership.status() != MembershipStatus::Active {
            return Err(Refusal::MembershipNotActive {
                id: membership_id,
                status: membership.status().as_str_name().to_owned(),
            }
            .into());
        }
        let program = request::id(&membership.program_id, "membership.program_id")?;
        let party = request::id(&membership.party_id, "membership.party_id")?;
        let mut v = FieldViolations::new();
        let mut rewards = Vec::new();
        {
            let mut conn = self.pool.acquire().await?;
            for (i, reward, _) in &wanted {
                match reward_store::get(&mut conn, *reward).await? {
                    Some(row) => rewards.push((*i, row)),
                    None => v.add(format!("items[{i}].reward_id"), "is not a reward"),
                }
            }
        }
        let (kind, point_type) = one_kind(&rewards, program, &mut v);
        let delivery = delivery_of(kind, &delivery, &mut v);
        v.finish()?;
        let bases = if rewards.iter().any(|(_, r)| !r.base_ids.is_empty()) {
            self.party_bases(party).await?
        } else {
            Vec::new()
        };
        let mut lines: Vec<(i32, Uuid, i32)> = wanted
            .iter()
            .map(|(i, reward, quantity)| (*i as i32 + 1, *reward, *quantity))
            .collect();
        lines.sort_by_key(|(_, reward, _)| *reward);
        Ok(Plan {
            membership: membership_id,
            party,
            program,
            tier: membership.tier,
            bases,
            kind,
            point_type,
            lines,
            delivery,
        })
    }
}

/// The items' rewards and quantities, each reward once; violations name `items[i]`.
fn wanted_items(items: &[OrderItem], v: &mut FieldViolations) -> Vec<(usize, Uuid, i32)> {
    let mut seen = HashSet::new();
    let mut wanted = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let reward = uuid(&item.reward_id, &format!("items[{i}].reward_id"), v);
        v.check(
            (1..=MAX_QUANTITY).contains(&item.quantity),
            format!("items[{i}].quantity"),
            format!("must be 1 to {MAX_QUANTITY}"),
        );
        if !reward.is_nil() && !seen.insert(reward) {
            v.add(
                format!("items[{i}].reward_id"),
                "appears twice; order more of it instead",
            );
        }
        wanted.push((i, reward, item.quantity));
    }
    wanted
}

/// The order's kind and point type: every reward of the membership's program, all of one kind,
/// all priced in the first one's points.
fn one_kind(
    rewards: &[(usize, RewardRow)],
    program: Uuid,
    v: &mut FieldViolations,
) -> (RewardKind, String) {
    let first = rewards.first().map(|(_, r)| (r.kind, r.point_type.clone()));
    for (i, reward) in rewards {
        let field = format!("items[{i}].reward_id");
        if reward.program_id != program {
            v.add(
                &field,
                "is a reward of another loyalty program than the membership's",
            );
        } else if first.as_ref().is_some_and(|(kind, _)| *kind != reward.kind) {
            v.add(
                &field,
                "an order holds rewards of one kind: order goods and vouchers apart",
            );
        } else if first
            .as_ref()
            .is_some_and(|(_, points)| *points != reward.point_type)
        {
            v.add(
                &field,
                "is priced in other points than the order's first item",
            );
        }
    }
    first.unwrap_or((RewardKind::Material, String::new()))
}

/// Goods need a recipient and a postal address; vouchers an e-mail address.
fn delivery_of(kind: RewardKind, delivery: &Delivery, v: &mut FieldViolations) -> DeliveryRow {
    let optional = |value: &str| Some(value.trim().to_owned()).filter(|s| !s.is_empty());
    match kind {
        RewardKind::Material => DeliveryRow {
            recipient_name: Some(text(&delivery.recipient_name, "delivery.recipient_name", v)),
            address: match &delivery.address {
                Some(address) => Some(Address::parse(address, "delivery.address", v)),
                None => {
                    v.add("delivery.address", "goods need a postal address");
                    None
                }
            },
            email: optional(&delivery.email),
            phone: optional(&delivery.phone),
        },
        RewardKind::Voucher => {
            let email = delivery.email.trim();
            v.check(
                valid_email(email),
                "delivery.email",
                "vouchers go to an e-mail address, e.g. ola@example.pl",
            );
            DeliveryRow {
                recipient_name: optional(&delivery.recipient_name),
                address: None,
                email: Some(email.to_owned()),
                phone: optional(&delivery.phone),
            }
        }
    }
}

/// Takes what the plan orders, in one transaction: the member's orders serialised (for the
/// per-member limits), each reward locked in id order and checked again (status, window,
/// restrictions, limits), its units counted, its stock reserved in the warehouses with the most
/// available or its codes taken, and the PLACING order written. `None` when the caller placed an
/// order with this request id before.
async fn reserve(
    tx: &mut Tx,
    plan: &Plan,
    caller: &str,
    request_id: &str,
    hold_timeout: Duration,
) -> Result<Option<OrderRow>> {
    let id = Uuid::now_v7();
    let mut items = Vec::with_capacity(plan.lines.len());
    store::lock_member(tx, plan.membership).await?;
    let now = Utc::now();
    for &(line, reward_id, quantity) in &plan.lines {
        let reward = reward_store::take_units(tx, reward_id, i64::from(quantity))
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", reward_id))?;
        orderable(&reward, plan, now)?;
        if reward.total_limit > 0 && reward.ordered_units > i64::from(reward.total_limit) {
            let limit = reward.total_limit;
            return Err(Refusal::TotalLimitReached {
                id: reward_id,
                limit,
            }
            .into());
        }
        if reward.per_member_limit > 0 {
            let had = store::units_of_member(tx, plan.membership, &[reward_id])
                .await?
                .first()
                .map_or(0, |(_, units)| *units);
            if had + i64::from(quantity) > i64::from(reward.per_member_limit) {
                let limit = reward.per_member_limit;
                return Err(Refusal::MemberLimitReached {
                    id: reward_id,
                    limit,
                    had,
                }
                .into());
            }
        }
        take_stock(tx, &reward, id, line, i64::from(quantity), caller).await?;
        items.push(ItemRow {
            order_id: id,
            line,
            reward_id,
            display_name: reward.display_name.clone(),
            quantity,
            unit_points: reward.price_points,
            co_payment_amount: reward.co_payment_amount,
            co_payment_currency: reward.co_payment_currency.clone(),
            returned_quantity: 0,
        });
    }
    items.sort_by_key(|i| i.line);
    let points = items
        .iter()
        .map(|i| i.unit_points * i64::from(i.quantity))
        .sum();
    let hold_id = format!("reward-order-{id}");
    let order = NewOrder {
        id,
        membership_id: plan.membership,
        party_id: plan.party,
        program_id: plan.program,
        point_type: &plan.point_type,
        kind: plan.kind,
        points,
        hold_id: &hold_id,
        hold_seconds: hold_timeout.as_secs() as i64,
        delivery: &plan.delivery,
        request_id,
        by: caller,
    };
    Ok(store::insert(tx, &order, &items).await?)
}

/// The reward is for sale now, to this member.
fn orderable(reward: &RewardRow, plan: &Plan, now: chrono::DateTime<Utc>) -> Result<()> {
    let id = reward.id;
    if reward.status != RewardStatus::Active {
        return Err(Refusal::RewardNotOrderable {
            id,
            status: reward.status,
        }
        .into());
    }
    let started = reward.available_from.is_none_or(|from| from <= now);
    let ended = reward.available_until.is_some_and(|until| until <= now);
    if !started || ended {
        return Err(Refusal::RewardNotAvailable { id }.into());
    }
    if !reward.tier_codes.is_empty() && !reward.tier_codes.contains(&plan.tier) {
        let to = format!("the tiers {}", reward.tier_codes.join(", "));
        return Err(Refusal::RewardRestricted { id, to }.into());
    }
    if !reward.base_ids.is_empty() && !reward.base_ids.iter().any(|b| plan.bases.contains(b)) {
        let to = "certain bases".to_owned();
        return Err(Refusal::RewardRestricted { id, to }.into());
    }
    Ok(())
}

/// Reserves a material reward's units in the warehouses with the most available, or takes an
/// imported voucher's codes; generated vouchers need nothing until they are issued.
async fn take_stock(
    tx: &mut Tx,
    reward: &RewardRow,
    order: Uuid,
    line: i32,
    quantity: i64,
    by: &str,
) -> Result<()> {
    let out_of_stock = |available| Refusal::OutOfStock {
        id: reward.id,
        wanted: quantity,
        available,
    };
    match (reward.kind, reward.voucher_source) {
        (RewardKind::Material, _) => {
            let mut items = stock_store::lock_all_items(tx, reward.id).await?;
            let levels: Vec<_> = items.iter().map(|i| (i.warehouse_id, i.level())).collect();
            let available = levels.iter().map(|(_, l)| l.available().max(0)).sum();
            let taken = allocate(&levels, quantity).ok_or_else(|| out_of_stock(available))?;
            let legs: Vec<Leg> = taken
                .into_iter()
                .map(|(warehouse, quantity)| Leg {
                    warehouse,
                    kind: MovementKind::Reservation,
                    quantity,
                })
                .collect();
            let note = Note {
                order_id: Some(order),
                ..Default::default()
            };
            apply_legs(tx, reward, &mut items, &legs, &note, by).await?;
        }
        (RewardKind::Voucher, Some(VoucherSource::Imported)) => {
            let taken = vouchers_store::take_codes(tx, reward.id, order, line, quantity).await?;
            if taken < quantity {
                return Err(out_of_stock(taken).into());
            }
        }
        (RewardKind::Voucher, _) => {}
    }
    Ok(())
}

/// The order, locked for a step.
pub(crate) async fn lock(tx: &mut Tx, id: Uuid) -> Result<OrderRow> {
    store::lock(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("RewardOrder", id))
}

pub(crate) async fn order_row(conn: &mut PgConnection, id: Uuid) -> Result<OrderRow> {
    store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("RewardOrder", id))
}
