//! What happens to a placed order by people: the warehouse ships it (the points are captured),
//! the carrier delivers it, the member cancels it before shipment (the hold is voided) or returns
//! some or all of it after delivery (the points go back through the ledger). The loyalty calls of
//! each step are the saga's (`saga.rs`).

use std::collections::HashMap;

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_uuid, text, uuid},
    store::{Begun, Tx, begin},
};
use crm_proto::crm::rewards::v1::*;
use uuid::Uuid;

use crate::{
    Rewards,
    domain::{
        MovementKind, RewardKind,
        orders::{Line, OrderStatus, returned_units},
    },
    error::Refusal,
    events,
    orders::{lock, order_row},
    saga::HOLD_LAPSED,
    stock::{Leg, Note, move_stock},
    store::{
        orders::{self as store, ItemRow, OrderRow},
        returns, rewards as reward_store, warehouses,
    },
};

/// Why an order is cancelled when the request gives no reason.
const CANCELLED_BY_REQUEST: &str = "cancelled by request";

impl Rewards {
    pub async fn confirm_shipment(
        &self,
        caller: &str,
        req: ConfirmShipmentRequest,
    ) -> Result<RewardOrder> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        let carrier = text(&req.carrier, "carrier", &mut v);
        let tracking = text(&req.tracking_number, "tracking_number", &mut v);
        v.finish()?;
        let (mut tx, claim) = match begin::<RewardOrder, _>(&self.pool, caller, &req).await? {
            Begun::Replay(_) => return self.shipment_answer(id).await,
            Begun::Fresh(tx, claim) => (tx, claim),
        };
        let order = lock(&mut tx, id).await?;
        if order.status != OrderStatus::Confirmed || order.kind != RewardKind::Material {
            return Err(Refusal::NotShippable {
                id,
                status: order.status,
            }
            .into());
        }
        if order.hold_expires_at.is_some_and(|t| t <= Utc::now()) {
            drop(tx);
            let from = [OrderStatus::Confirmed];
            self.start_cancel(id, HOLD_LAPSED, caller, &from).await?;
            let cancelled = self.advance(id).await;
            self.after_step(id, cancelled).await?;
            let why = "the points hold expired".to_owned();
            return Err(Refusal::PointsNotTaken { id, why }.into());
        }
        store::set_shipment(&mut tx, id, &carrier, &tracking).await?;
        store::set_status(&mut tx, id, OrderStatus::Shipping, caller).await?;
        claim.commit(tx, &marker(id)).await?;
        self.shipment_answer(id).await
    }

    /// A shipment is answered OK only once its points are taken: while loyalty does not answer
    /// the warehouse must wait (and send the call again), and a cancelled order must not leave.
    async fn shipment_answer(&self, id: Uuid) -> Result<RewardOrder> {
        let advanced = self.advance(id).await;
        let order = self.answer(id).await?;
        let cancelled = matches!(
            order.status(),
            RewardOrderStatus::Cancelling | RewardOrderStatus::Cancelled
        );
        match advanced {
            _ if cancelled => {
                let why = order.cancel_reason;
                Err(Refusal::PointsNotTaken { id, why }.into())
            }
            Err(error) => Err(error),
            Ok(()) if order.status() == RewardOrderStatus::Shipping => {
                Err(ServiceError::Unavailable(
                    "the loyalty service did not take the points yet; send the shipment again"
                        .into(),
                ))
            }
            Ok(()) => Ok(order),
        }
    }

    pub async fn confirm_delivery(
        &self,
        caller: &str,
        req: ConfirmDeliveryRequest,
    ) -> Result<RewardOrder> {
        let id = crm_kit::request::id(&req.id, "id")?;
        let (mut tx, claim) = match begin::<RewardOrder, _>(&self.pool, caller, &req).await? {
            Begun::Replay(order) => return self.replayed(&order.id).await,
            Begun::Fresh(tx, claim) => (tx, claim),
        };
        let order = lock(&mut tx, id).await?;
        match order.status {
            OrderStatus::Shipped => {
                store::set_status(&mut tx, id, OrderStatus::Delivered, caller).await?;
                let row = order_row(&mut tx, id).await?;
                let loaded = store::load(&mut tx, vec![row]).await?;
                events::order_changed(&mut tx, &loaded[0], "delivered").await?;
            }
            OrderStatus::Delivered if order.kind == RewardKind::Material => {}
            status => return Err(Refusal::NotDeliverable { id, status }.into()),
        }
        claim.commit(tx, &marker(id)).await?;
        self.answer(id).await
    }

    pub async fn cancel_reward_order(
        &self,
        caller: &str,
        req: CancelRewardOrderRequest,
    ) -> Result<RewardOrder> {
        let id = crm_kit::request::id(&req.id, "id")?;
        let reason = match req.reason.trim() {
            "" => CANCELLED_BY_REQUEST,
            reason => reason,
        };
        let (mut tx, claim) = match begin::<RewardOrder, _>(&self.pool, caller, &req).await? {
            Begun::Replay(order) => return self.replayed(&order.id).await,
            Begun::Fresh(tx, claim) => (tx, claim),
        };
        let order = lock(&mut tx, id).await?;
        match order.status {
            OrderStatus::Confirmed if order.kind == RewardKind::Material => {
                store::set_cancel_reason(&mut tx, id, reason).await?;
                store::set_status(&mut tx, id, OrderStatus::Cancelling, caller).await?;
            }
            OrderStatus::Cancelling | OrderStatus::Cancelled => {}
            status => return Err(Refusal::NotCancellable { id, status }.into()),
        }
        claim.commit(tx, &marker(id)).await?;
        let advanced = self.advance(id).await;
        self.after_step(id, advanced).await
    }

    pub async fn return_reward_order(
        &self,
        caller: &str,
        req: ReturnRewardOrderRequest,
    ) -> Result<RewardOrder> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        let warehouse = optional_uuid(&req.warehouse_id, "warehouse_id", &mut v);
        v.finish()?;
        let (mut tx, claim) = match begin::<RewardOrder, _>(&self.pool, caller, &req).await? {
            Begun::Replay(order) => return self.replayed(&order.id).await,
            Begun::Fresh(tx, claim) => (tx, claim),
        };
        let order = lock(&mut tx, id).await?;
        if !order.status.is_returnable() || order.kind != RewardKind::Material {
            return Err(Refusal::NotReturnable {
                id,
                status: order.status,
            }
            .into());
        }
        let items = store::items(&mut tx, &[id]).await?;
        let lines: Vec<Line> = items
            .iter()
            .map(|i| Line {
                line: i.line,
                quantity: i.quantity,
                returned: i.returned_quantity,
                unit_points: i.unit_points,
            })
            .collect();
        let mut v = FieldViolations::new();
        let (units, points) = returned_units(&lines, &req.items, &mut v);
        v.finish()?;
        if let Some(warehouse) = warehouse {
            warehouses::get(&mut tx, warehouse)
                .await?
                .ok_or_else(|| ServiceError::not_found("Warehouse", warehouse))?;
        }
        let return_id = Uuid::now_v7();
        restock(
            &mut tx, &order, &items, &units, warehouse, return_id, caller,
        )
        .await?;
        returns::insert_return(
            &mut tx,
            return_id,
            id,
            &units,
            points,
            req.reason.trim(),
            caller,
        )
        .await?;
        claim.commit(tx, &marker(id)).await?;
        let advanced = self.advance(id).await;
        self.after_step(id, advanced).await
    }
}

/// What a step's claim keeps: the order's id, for a replay to answer the order as it then is.
fn marker(id: Uuid) -> RewardOrder {
    RewardOrder {
        id: id.to_string(),
        ..Default::default()
    }
}

/// Puts the returned units back on a shelf (the one named, or the one each reward left most of
/// the order's units from) and out of the rewards' ordered counts.
async fn restock(
    tx: &mut Tx,
    order: &OrderRow,
    items: &[ItemRow],
    units: &[(i32, i32)],
    warehouse: Option<Uuid>,
    return_id: Uuid,
    by: &str,
) -> Result<()> {
    let issued = store::held_stock(tx, order.id, MovementKind::Issue).await?;
    let mut back: HashMap<Uuid, i64> = HashMap::new();
    for (line, quantity) in units {
        if let Some(item) = items.iter().find(|i| i.line == *line) {
            *back.entry(item.reward_id).or_default() += i64::from(*quantity);
        }
    }
    let mut rewards: Vec<(Uuid, i64)> = back.into_iter().collect();
    rewards.sort();
    for (reward_id, quantity) in rewards {
        store::give_back_units(tx, reward_id, quantity).await?;
        let to = warehouse.or_else(|| {
            issued
                .iter()
                .filter(|(r, _, _)| *r == reward_id)
                .max_by_key(|(_, _, units)| *units)
                .map(|(_, w, _)| *w)
        });
        let to = to.ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "order {} returns reward {reward_id} it never issued",
                order.id
            ))
        })?;
        let reward = reward_store::get(tx, reward_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", reward_id))?;
        let leg = Leg {
            warehouse: to,
            kind: MovementKind::Return,
            quantity,
        };
        // The member's words stay on the return: a stock movement only says which it was.
        let reference = format!("return {return_id}");
        let note = Note {
            reference: &reference,
            order_id: Some(order.id),
            ..Default::default()
        };
        move_stock(tx, &reward, &[leg], &note, by).await?;
    }
    Ok(())
}
