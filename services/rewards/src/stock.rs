//! Stock: what each warehouse holds of a material reward, and every movement that changed it.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, optional_uuid, uuid},
    store::{Page, Tx},
};
use crm_proto::crm::rewards::v1::*;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Rewards, convert,
    domain::{
        MovementKind, RewardKind,
        stock::{MAX_MOVEMENT, MAX_ON_HAND, is_low},
    },
    error::Refusal,
    events,
    store::{
        rewards::{self as reward_store, RewardRow},
        stock::{self as store, ItemRow, MovementRow},
        warehouses,
    },
};

/// One warehouse's part of a movement: a transfer has two, every other movement one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    pub warehouse: Uuid,
    pub kind: MovementKind,
    /// Signed for on-hand changes (a transfer's leg out is negative).
    pub quantity: i64,
}

/// What a movement is about besides its legs.
#[derive(Debug, Default)]
pub(crate) struct Note<'a> {
    pub reason: &'a str,
    pub reference: &'a str,
    pub transfer_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
}

impl Rewards {
    pub async fn record_stock_movement(
        &self,
        caller: &str,
        req: RecordStockMovementRequest,
    ) -> Result<RecordStockMovementResponse> {
        let mut v = FieldViolations::new();
        let reward_id = uuid(&req.reward_id, "reward_id", &mut v);
        let warehouse = uuid(&req.warehouse_id, "warehouse_id", &mut v);
        let kind = MovementKind::require(req.kind, "kind", &mut v);
        let to = optional_uuid(&req.to_warehouse_id, "to_warehouse_id", &mut v);
        let reason = req.reason.trim();
        v.check(
            req.quantity.unsigned_abs() <= MAX_MOVEMENT as u64,
            "quantity",
            format!("must be at most {MAX_MOVEMENT} units either way"),
        );
        match kind {
            MovementKind::Adjustment => {
                v.check(req.quantity != 0, "quantity", "must not be 0");
                v.check(!reason.is_empty(), "reason", "an adjustment says why");
            }
            MovementKind::Reservation | MovementKind::Release | MovementKind::Issue => v.add(
                "kind",
                "reservations, releases and issues are recorded by reward orders",
            ),
            _ => v.check(req.quantity > 0, "quantity", "must be positive"),
        }
        let legs = legs_of(kind, warehouse, to, req.quantity, &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let reward = reward_store::get(&mut tx, reward_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", reward_id))?;
        if reward.kind != RewardKind::Material {
            return Err(Refusal::NotMaterial { id: reward_id }.into());
        }
        for leg in &legs {
            warehouses::get(&mut tx, leg.warehouse)
                .await?
                .ok_or_else(|| ServiceError::not_found("Warehouse", leg.warehouse))?;
        }
        let note = Note {
            reason,
            reference: req.reference.trim(),
            transfer_id: (kind == MovementKind::Transfer).then(Uuid::now_v7),
            order_id: None,
        };
        let movements = move_stock(&mut tx, &reward, &legs, &note, caller).await?;
        let items = store::items(&mut tx, reward_id).await?;
        let answer = RecordStockMovementResponse {
            movements: movements.iter().map(convert::movement).collect(),
            stock: Some(convert::stock(reward_id, &items)),
        };
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn get_stock(&self, req: GetStockRequest) -> Result<Stock> {
        let id = request::id(&req.reward_id, "reward_id")?;
        let mut conn = self.pool.acquire().await?;
        reward_store::get(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", id))?;
        let items = store::items(&mut conn, id).await?;
        Ok(convert::stock(id, &items))
    }

    pub async fn list_stock_movements(
        &self,
        req: ListStockMovementsRequest,
    ) -> Result<ListStockMovementsResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(&'a str, &'a str, i32);
        let mut v = FieldViolations::new();
        let filters = Filters(&req.reward_id, &req.warehouse_id, req.kind);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let reward = uuid(&req.reward_id, "reward_id", &mut v);
        let warehouse = optional_uuid(&req.warehouse_id, "warehouse_id", &mut v);
        let kind = MovementKind::optional(req.kind, "kind", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        reward_store::get(&mut conn, reward)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", reward))?;
        let mut rows =
            store::movements(&mut conn, reward, warehouse, kind, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListStockMovementsResponse {
            movements: rows.iter().map(convert::movement).collect(),
            next_page_token,
        })
    }
}

/// A movement's legs: one, or two for a transfer (out of `warehouse`, into `to`).
fn legs_of(
    kind: MovementKind,
    warehouse: Uuid,
    to: Option<Uuid>,
    quantity: i64,
    v: &mut FieldViolations,
) -> Vec<Leg> {
    match (kind, to) {
        (MovementKind::Transfer, Some(to)) => {
            v.check(
                to != warehouse,
                "to_warehouse_id",
                "must be another warehouse",
            );
            let out = Leg {
                warehouse,
                kind,
                quantity: quantity.saturating_neg(),
            };
            vec![
                out,
                Leg {
                    warehouse: to,
                    kind,
                    quantity,
                },
            ]
        }
        (MovementKind::Transfer, None) => {
            v.add("to_warehouse_id", "a transfer names where the goods go");
            Vec::new()
        }
        (_, Some(_)) => {
            v.add("to_warehouse_id", "only transfers name a second warehouse");
            Vec::new()
        }
        (_, None) => vec![Leg {
            warehouse,
            kind,
            quantity,
        }],
    }
}

/// Applies the legs to the reward's stock, all or none, and records each as a movement with its
/// events: the movements and the items after them, and a StockLow for each warehouse whose
/// available stock fell below the threshold just now. Refused when any leg would take stock below
/// zero or below what is reserved.
pub(crate) async fn move_stock(
    tx: &mut Tx,
    reward: &RewardRow,
    legs: &[Leg],
    note: &Note<'_>,
    by: &str,
) -> Result<Vec<MovementRow>> {
    let mut warehouses: Vec<Uuid> = legs.iter().map(|l| l.warehouse).collect();
    warehouses.sort();
    warehouses.dedup();
    let mut items = store::lock_items(tx, reward.id, &warehouses).await?;
    apply_legs(tx, reward, &mut items, legs, note, by).await
}

/// [`move_stock`] on items the caller locked already, one per leg's warehouse.
pub(crate) async fn apply_legs(
    tx: &mut Tx,
    reward: &RewardRow,
    items: &mut [ItemRow],
    legs: &[Leg],
    note: &Note<'_>,
    by: &str,
) -> Result<Vec<MovementRow>> {
    let mut movements = Vec::with_capacity(legs.len());
    let mut lows = Vec::new();
    let now = Utc::now();
    for leg in legs {
        let item = items
            .iter_mut()
            .find(|i| i.warehouse_id == leg.warehouse)
            .ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!(
                    "the stock item of warehouse {} was not locked",
                    leg.warehouse
                ))
            })?;
        let after = item
            .level()
            .apply(leg.kind, leg.quantity)
            .map_err(|short| match leg.kind {
                // Units coming in can only be too many.
                MovementKind::Receipt
                | MovementKind::Return
                | MovementKind::Adjustment
                | MovementKind::Transfer
                    if leg.quantity > 0 =>
                {
                    Refusal::StockCeiling {
                        warehouse: leg.warehouse,
                        max: MAX_ON_HAND,
                    }
                }
                _ => Refusal::InsufficientStock {
                    reward: reward.id,
                    warehouse: leg.warehouse,
                    needed: short.needed,
                    available: short.there,
                },
            })?;
        let low = is_low(after, reward.low_stock_threshold);
        if low && !item.low {
            lows.push(StockLow {
                reward_id: reward.id.to_string(),
                warehouse_id: leg.warehouse.to_string(),
                available: after.available(),
                threshold: reward.low_stock_threshold,
            });
        }
        *item = store::set_level(tx, reward.id, leg.warehouse, after, low).await?;
        let movement = MovementRow {
            id: Uuid::now_v7(),
            reward_id: reward.id,
            warehouse_id: leg.warehouse,
            kind: leg.kind,
            quantity: leg.quantity,
            reason: note.reason.to_owned(),
            reference: note.reference.to_owned(),
            transfer_id: note.transfer_id,
            order_id: note.order_id,
            on_hand_after: after.on_hand,
            reserved_after: after.reserved,
            recorded_by: by.to_owned(),
            created_at: now,
        };
        store::insert_movement(tx, &movement).await?;
        movements.push(movement);
    }
    stock_moved(tx, reward.id, &movements, items, lows).await?;
    Ok(movements)
}

async fn stock_moved(
    tx: &mut Tx,
    reward: Uuid,
    movements: &[MovementRow],
    items: &[ItemRow],
    lows: Vec<StockLow>,
) -> Result<()> {
    let moved = StockMoved {
        reward_id: reward.to_string(),
        movements: movements.iter().map(convert::movement).collect(),
        items: items
            .iter()
            .filter(|i| movements.iter().any(|m| m.warehouse_id == i.warehouse_id))
            .map(convert::stock_item)
            .collect(),
    };
    events::STOCK.enqueue(tx, reward, &moved).await?;
    for low in &lows {
        events::STOCK.enqueue(tx, reward, low).await?;
    }
    Ok(())
}
