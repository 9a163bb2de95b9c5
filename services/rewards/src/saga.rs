//! The saga that takes an order through loyalty's two-phase hold.
//!
//! Each step that asks loyalty is split around the call. The local state is committed first (the
//! order PLACING, SHIPPING or CANCELLING, or a return recorded), then loyalty is asked with an id
//! that makes the call idempotent (the hold's client id, the capture's and void's request ids, the
//! return's operation id), then the outcome is committed, after checking the order's status again
//! under its lock. A crash, an outage or a lost answer anywhere leaves the order in its in-flight
//! status; `advance` (from the next call, a replay, or the sweep) asks again, and a step done twice
//! changes nothing twice. Whatever cannot go on is compensated: stock released, codes given back,
//! the hold voided.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::Utc;
use crm_kit::{
    client::peer_error,
    error::{Result, ServiceError},
    request,
    shutdown::Shutdown,
    store::{Tx, unclaim},
};
use crm_proto::crm::{loyalty::v1::Hold, rewards::v1::PlaceRewardOrderRequest};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::{
    Rewards,
    domain::{
        MovementKind, RewardKind, VoucherSource,
        orders::{OrderStatus, new_voucher_code},
    },
    error::Refusal,
    events,
    orders::{lock, order_row},
    peers::{reason, refused},
    stock::{Leg, Note, move_stock},
    store::{
        orders::{self as store, OrderRow},
        returns, rewards as reward_store, vouchers as vouchers_store,
    },
};

/// Who the sweep's steps are recorded as.
const SWEEP: &str = "crm-rewards";

/// Why an order whose hold lapsed is cancelled.
pub(crate) const HOLD_LAPSED: &str = "the points hold expired before shipment";

/// A PLACING order younger than this belongs to the call placing it; the sweep leaves it alone.
const PLACING_GRACE: Duration = Duration::from_secs(5);

/// Longer than any call to loyalty can still be at work (its client gives up after 10 s, its
/// server after its own request timeout, 10 s by default).
const IN_FLIGHT_AT_MOST: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

impl Rewards {
    /// Takes the order as far as it goes without a person: through any step in flight, to the
    /// next status that waits (CONFIRMED for goods, DELIVERED for vouchers, or an end), and gives
    /// back the points of recorded returns. A refusal met on the way (the member cannot pay, the
    /// hold lapsed) is answered after its compensation is committed.
    pub(crate) async fn advance(&self, id: Uuid) -> Result<()> {
        loop {
            let order = order_row(&mut *self.pool.acquire().await?, id).await?;
            let moved = match order.status {
                OrderStatus::Placing => self.hold(&order).await?,
                OrderStatus::Confirmed if order.kind == RewardKind::Voucher => {
                    self.capture(&order).await?
                }
                OrderStatus::Confirmed
                    if order.hold_expires_at.is_some_and(|t| t <= Utc::now()) =>
                {
                    let from = [OrderStatus::Confirmed];
                    self.start_cancel(id, HOLD_LAPSED, SWEEP, &from).await?
                }
                OrderStatus::Shipping => self.capture(&order).await?,
                OrderStatus::Cancelling => self.void(&order).await?,
                OrderStatus::Failed if order.void_due => {
                    self.void_unwanted(&order).await?;
                    false
                }
                _ => false,
            };
            if !moved {
                // Returns are recorded only on delivered goods.
                if order.status.was_delivered() {
                    self.give_back_returns(id).await?;
                }
                return Ok(());
            }
        }
    }

    /// PLACING: holds the points, then confirms; a refusal fails the order.
    async fn hold(&self, order: &OrderRow) -> Result<bool> {
        match self.hold_points(order).await {
            Ok(hold) => self.confirm(order.id, &hold).await,
            Err(status) if refused(&status) => {
                let refusal = hold_refusal(&status);
                let message = refusal.to_string();
                // A hold of this id with another body exists (asked for with another timeout by
                // an earlier version): it is not this order's, so it goes.
                let void_due = status.code() == Code::AlreadyExists;
                self.fail(order.id, refusal.reason(), &message, void_due)
                    .await?;
                Err(refusal.into())
            }
            Err(status) => {
                // Loyalty may have made the hold and lost the answer: it is voided when loyalty
                // answers again.
                let message = format!("loyalty did not answer: {}", status.message());
                self.fail(order.id, "LOYALTY_UNAVAILABLE", &message, true)
                    .await?;
                Err(peer_error("loyalty", status))
            }
        }
    }

    async fn confirm(&self, id: Uuid, hold: &Hold) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let order = lock(&mut tx, id).await?;
        if order.status != OrderStatus::Placing {
            // Failed meanwhile (by a call that got no answer from loyalty): this hold is unwanted.
            if order.status == OrderStatus::Failed && !order.void_due {
                store::set_failure(
                    &mut tx,
                    id,
                    order.failure_reason.as_deref().unwrap_or_default(),
                    order.failure_message.as_deref().unwrap_or_default(),
                    true,
                )
                .await?;
                tx.commit().await?;
            }
            return Ok(false);
        }
        let expires = hold
            .expire_time
            .as_ref()
            .and_then(request::time)
            .unwrap_or_else(|| Utc::now() + self.hold_timeout);
        store::confirm(&mut tx, id, expires).await?;
        changed(&mut tx, id, "placed").await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Fails a PLACING order: releases what it took and forgets its request id.
    async fn fail(&self, id: Uuid, reason: &str, message: &str, void_due: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let order = lock(&mut tx, id).await?;
        if order.status != OrderStatus::Placing {
            return Ok(());
        }
        release(&mut tx, &order, SWEEP).await?;
        store::set_failure(&mut tx, id, reason, message, void_due).await?;
        store::set_status(&mut tx, id, OrderStatus::Failed, SWEEP).await?;
        unclaim::<PlaceRewardOrderRequest>(&mut tx, &order.created_by, &order.request_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// SHIPPING (goods) or CONFIRMED (vouchers): captures the hold, then issues the stock or the
    /// codes. A capture loyalty refuses (the hold lapsed, the membership was suspended or erased)
    /// cancels the order instead.
    async fn capture(&self, order: &OrderRow) -> Result<bool> {
        match self.capture_hold(order).await {
            Ok(hold) => self.captured(order.id, &hold).await,
            Err(status) if refused(&status) => {
                let why = status.message().to_owned();
                tracing::info!(order = %order.id, reason = reason(&status), why, "the points cannot be taken; cancelling");
                let cancel_reason = match reason(&status).as_str() {
                    "HOLD_EXPIRED" => HOLD_LAPSED.to_owned(),
                    _ => format!("loyalty would not take the points: {why}"),
                };
                let from = [OrderStatus::Shipping, OrderStatus::Confirmed];
                self.start_cancel(order.id, &cancel_reason, SWEEP, &from)
                    .await?;
                // The refusal stands whatever the void does: the sweep finishes a void loyalty
                // did not answer.
                if let Err(error) = self.advance_cancel(order.id).await {
                    tracing::warn!(order = %order.id, %error, "voiding after a refused capture failed; the sweep retries");
                }
                Err(Refusal::PointsNotTaken { id: order.id, why }.into())
            }
            Err(status) => Err(peer_error("loyalty", status)),
        }
    }

    async fn captured(&self, id: Uuid, hold: &Hold) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let order = lock(&mut tx, id).await?;
        let (to, change) = match (order.status, order.kind) {
            (OrderStatus::Shipping, RewardKind::Material) => {
                issue_stock(&mut tx, &order).await?;
                (OrderStatus::Shipped, "shipped")
            }
            (OrderStatus::Confirmed, RewardKind::Voucher) => {
                issue_codes(&mut tx, &order).await?;
                (OrderStatus::Delivered, "delivered")
            }
            _ => return Ok(false),
        };
        store::set_captured(&mut tx, id, hold.captured_points).await?;
        store::set_status(&mut tx, id, to, &order.updated_by).await?;
        changed(&mut tx, id, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `from` one of those statuses → CANCELLING, with the reason. False when the order is
    /// elsewhere.
    pub(crate) async fn start_cancel(
        &self,
        id: Uuid,
        reason: &str,
        by: &str,
        from: &[OrderStatus],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let order = lock(&mut tx, id).await?;
        if !from.contains(&order.status) {
            return Ok(false);
        }
        store::set_cancel_reason(&mut tx, id, reason).await?;
        store::set_status(&mut tx, id, OrderStatus::Cancelling, by).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn advance_cancel(&self, id: Uuid) -> Result<()> {
        let order = order_row(&mut *self.pool.acquire().await?, id).await?;
        if order.status == OrderStatus::Cancelling {
            self.void(&order).await?;
        }
        Ok(())
    }

    /// CANCELLING: voids the hold, then releases the stock and codes. A hold captured meanwhile
    /// (a capture that won the race with the cancellation) is refunded instead.
    async fn void(&self, order: &OrderRow) -> Result<bool> {
        match self.void_hold(order).await {
            Ok(_) => {}
            Err(status) if reason(&status) == "HOLD_CAPTURED" => {
                tracing::info!(order = %order.id, "the hold was captured before the cancellation; refunding");
                self.refund(order)
                    .await
                    .map_err(|status| unvoided(order, status))?;
            }
            Err(status) => return Err(unvoided(order, status)),
        }
        let mut tx = self.pool.begin().await?;
        let order = lock(&mut tx, order.id).await?;
        if order.status != OrderStatus::Cancelling {
            return Ok(false);
        }
        release(&mut tx, &order, &order.updated_by).await?;
        store::set_status(&mut tx, order.id, OrderStatus::Cancelled, &order.updated_by).await?;
        changed(&mut tx, order.id, "cancelled").await?;
        tx.commit().await?;
        Ok(true)
    }

    /// FAILED with a hold that may exist: voids it. Loyalty may still be making a hold it was
    /// asked for before the order failed (its work outlives the call that timed out), so "no such
    /// hold" is believed only once that call is surely over (decided before asking).
    async fn void_unwanted(&self, order: &OrderRow) -> Result<()> {
        let surely_over = order.updated_at + IN_FLIGHT_AT_MOST <= Utc::now();
        let found = self
            .void_hold(order)
            .await
            .map_err(|status| unvoided(order, status))?;
        if found || surely_over {
            let mut conn = self.pool.acquire().await?;
            store::clear_void_due(&mut conn, order.id, order.updated_at).await?;
        }
        Ok(())
    }

    /// Gives back the points of the order's recorded returns, each once. A return loyalty refuses
    /// for good (the redemption was reversed in loyalty directly, the membership is gone) is
    /// settled with what loyalty said and no points.
    async fn give_back_returns(&self, id: Uuid) -> Result<()> {
        let pending = returns::pending_returns_of(&mut *self.pool.acquire().await?, id).await?;
        for return_id in pending {
            let order = order_row(&mut *self.pool.acquire().await?, id).await?;
            let Some(ret) =
                returns::get_return(&mut *self.pool.acquire().await?, return_id).await?
            else {
                continue;
            };
            if ret.points_returned {
                continue;
            }
            // Keyed by the return: asked twice (a replay and the sweep), loyalty reverses once.
            let (points, refused_why) = match self.give_back(&order, &ret).await {
                Ok(points) => (points, None),
                Err(status) if refused(&status) => {
                    tracing::warn!(order = %id, r#return = %return_id, reason = reason(&status), "loyalty refused the return's points");
                    (0, Some(status.message().to_owned()))
                }
                Err(status) => return Err(peer_error("loyalty", status)),
            };
            let mut tx = self.pool.begin().await?;
            lock(&mut tx, id).await?;
            let Some(ret) = returns::lock_pending_return(&mut tx, return_id).await? else {
                continue;
            };
            returns::points_returned(&mut tx, &ret, points, refused_why.as_deref()).await?;
            let items = store::items(&mut tx, &[id]).await?;
            let all_back = items.iter().all(|i| i.returned_quantity == i.quantity)
                && returns::pending_returns_of(&mut tx, id).await?.is_empty();
            let status = if all_back {
                OrderStatus::Returned
            } else {
                OrderStatus::PartiallyReturned
            };
            store::set_status(&mut tx, id, status, &order.updated_by).await?;
            changed(&mut tx, id, "returned").await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Finishes, every second until `shutdown`, the steps a crash or an outage interrupted, and
    /// cancels confirmed orders whose hold lapsed. An order whose step keeps failing is tried
    /// again less and less often (up to every 5 minutes), so it cannot crowd out the others.
    pub async fn tend_orders(self, shutdown: Shutdown) {
        let mut backoff: HashMap<Uuid, (u32, Instant)> = HashMap::new();
        while shutdown.sleep(Duration::from_secs(1)).await {
            let stale = Utc::now() - PLACING_GRACE;
            let now = Instant::now();
            let waiting: Vec<Uuid> = backoff
                .iter()
                .filter(|(_, (_, next))| *next > now)
                .map(|(id, _)| *id)
                .collect();
            let due = match self.pool.acquire().await {
                Ok(mut conn) => store::to_tend(&mut conn, stale, &waiting, 100).await,
                Err(error) => Err(error),
            };
            let due = match due {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "finding reward orders to tend failed; retrying");
                    continue;
                }
            };
            // Orders neither due nor waiting were finished: they start afresh if they return.
            backoff.retain(|id, _| due.contains(id) || waiting.contains(id));
            for id in due {
                match self.advance(id).await {
                    Ok(()) | Err(ServiceError::Precondition(..)) => {
                        backoff.remove(&id);
                    }
                    Err(error) => {
                        let failures = backoff.get(&id).map_or(1, |(n, _)| n + 1);
                        let wait = Duration::from_secs(2u64.pow(failures.min(9)).min(300));
                        backoff.insert(id, (failures, Instant::now() + wait));
                        tracing::warn!(order = %id, %error, failures, "a reward order step failed; retrying");
                    }
                }
            }
        }
    }
}

async fn changed(tx: &mut Tx, id: Uuid, change: &str) -> Result<()> {
    let row = order_row(tx, id).await?;
    let loaded = store::load(tx, vec![row]).await?;
    events::order_changed(tx, &loaded[0], change).await
}

/// What loyalty's refusal of a hold means to the member.
fn hold_refusal(status: &Status) -> Refusal {
    let why = status.message().to_owned();
    match reason(status).as_str() {
        "INSUFFICIENT_POINTS" => Refusal::InsufficientPoints { why },
        _ => Refusal::PointsNotHeld { why },
    }
}

/// A void loyalty refused: only a captured hold is refused, which no cancellable order has.
fn unvoided(order: &OrderRow, status: Status) -> ServiceError {
    if refused(&status) {
        ServiceError::Internal(anyhow::anyhow!(
            "loyalty refused to void the hold of reward order {} ({}): {}",
            order.id,
            reason(&status),
            status.message()
        ))
    } else {
        peer_error("loyalty", status)
    }
}

/// Gives back what an order took and has not used: its reserved stock, its codes not issued, and
/// its units in the rewards' counts.
async fn release(tx: &mut Tx, order: &OrderRow, by: &str) -> Result<()> {
    let mut items = store::items(tx, &[order.id]).await?;
    items.sort_by_key(|i| i.reward_id);
    for item in &items {
        let units = i64::from(item.quantity - item.returned_quantity);
        store::give_back_units(tx, item.reward_id, units).await?;
    }
    let held = store::held_stock(tx, order.id, MovementKind::Reservation).await?;
    move_back(tx, order.id, &held, MovementKind::Release, by).await?;
    vouchers_store::give_back_codes(tx, order.id).await?;
    Ok(())
}

/// Takes the order's reserved units off the shelves.
async fn issue_stock(tx: &mut Tx, order: &OrderRow) -> Result<()> {
    let held = store::held_stock(tx, order.id, MovementKind::Reservation).await?;
    move_back(tx, order.id, &held, MovementKind::Issue, &order.updated_by).await
}

/// One movement of `kind` per (reward, warehouse, units), grouped by reward.
async fn move_back(
    tx: &mut Tx,
    order: Uuid,
    held: &[(Uuid, Uuid, i64)],
    kind: MovementKind,
    by: &str,
) -> Result<()> {
    let mut rewards: Vec<Uuid> = held.iter().map(|(reward, _, _)| *reward).collect();
    rewards.dedup();
    for reward_id in rewards {
        let reward = reward_store::get(tx, reward_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", reward_id))?;
        let legs: Vec<Leg> = held
            .iter()
            .filter(|(r, _, _)| *r == reward_id)
            .map(|&(_, warehouse, quantity)| Leg {
                warehouse,
                kind,
                quantity,
            })
            .collect();
        let note = Note {
            order_id: Some(order),
            ..Default::default()
        };
        move_stock(tx, &reward, &legs, &note, by).await?;
    }
    Ok(())
}

/// Issues the codes the order took, and makes the generated ones.
async fn issue_codes(tx: &mut Tx, order: &OrderRow) -> Result<()> {
    let items = store::items(tx, &[order.id]).await?;
    let mut generated = Vec::new();
    for item in &items {
        let reward = reward_store::get(tx, item.reward_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", item.reward_id))?;
        if reward.voucher_source == Some(VoucherSource::Generated) {
            for _ in 0..item.quantity {
                generated.push((item.reward_id, item.line, new_voucher_code()));
            }
        }
    }
    vouchers_store::issue_codes(tx, order.id, &generated).await?;
    Ok(())
}
