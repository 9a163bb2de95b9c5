//! Stock items (a reward in a warehouse) and the movements that change them.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{MovementKind, stock::Level};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub warehouse_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    pub low: bool,
    pub updated_at: DateTime<Utc>,
}

impl ItemRow {
    pub fn level(&self) -> Level {
        Level {
            on_hand: self.on_hand,
            reserved: self.reserved,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MovementRow {
    pub id: Uuid,
    pub reward_id: Uuid,
    pub warehouse_id: Uuid,
    pub kind: MovementKind,
    pub quantity: i64,
    pub reason: String,
    pub reference: String,
    pub transfer_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub recorded_by: String,
    pub created_at: DateTime<Utc>,
}

/// The reward's items in `warehouses`, created empty where missing and locked in warehouse order
/// (the one order every writer takes them in).
pub async fn lock_items(
    tx: &mut Tx,
    reward: Uuid,
    warehouses: &[Uuid],
) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query(
        "INSERT INTO stock_items (reward_id, warehouse_id)
         SELECT $1, w FROM unnest($2::uuid[]) w ORDER BY w
         ON CONFLICT DO NOTHING",
    )
    .bind(reward)
    .bind(warehouses)
    .execute(&mut **tx)
    .await?;
    sqlx::query_as(
        "SELECT warehouse_id, on_hand, reserved, low, updated_at FROM stock_items
          WHERE reward_id = $1 AND warehouse_id = ANY($2)
          ORDER BY warehouse_id FOR UPDATE",
    )
    .bind(reward)
    .bind(warehouses)
    .fetch_all(&mut **tx)
    .await
}

/// Every warehouse's item of the reward, locked in warehouse order.
pub async fn lock_all_items(tx: &mut Tx, reward: Uuid) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT warehouse_id, on_hand, reserved, low, updated_at FROM stock_items
          WHERE reward_id = $1 ORDER BY warehouse_id FOR UPDATE",
    )
    .bind(reward)
    .fetch_all(&mut **tx)
    .await
}

/// Writes an item's new level and low flag.
pub async fn set_level(
    tx: &mut Tx,
    reward: Uuid,
    warehouse: Uuid,
    level: Level,
    low: bool,
) -> sqlx::Result<ItemRow> {
    sqlx::query_as(
        "UPDATE stock_items SET on_hand = $3, reserved = $4, low = $5, updated_at = now()
          WHERE reward_id = $1 AND warehouse_id = $2
          RETURNING warehouse_id, on_hand, reserved, low, updated_at",
    )
    .bind(reward)
    .bind(warehouse)
    .bind(level.on_hand)
    .bind(level.reserved)
    .bind(low)
    .fetch_one(&mut **tx)
    .await
}

pub async fn insert_movement(tx: &mut Tx, m: &MovementRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stock_movements (id, reward_id, warehouse_id, kind, quantity, reason,
             reference, transfer_id, order_id, on_hand_after, reserved_after, recorded_by,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(m.id)
    .bind(m.reward_id)
    .bind(m.warehouse_id)
    .bind(m.kind)
    .bind(m.quantity)
    .bind(&m.reason)
    .bind(&m.reference)
    .bind(m.transfer_id)
    .bind(m.order_id)
    .bind(m.on_hand_after)
    .bind(m.reserved_after)
    .bind(&m.recorded_by)
    .bind(m.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every warehouse's stock of the reward, by warehouse id.
pub async fn items(conn: &mut PgConnection, reward: Uuid) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT warehouse_id, on_hand, reserved, low, updated_at FROM stock_items
          WHERE reward_id = $1 ORDER BY warehouse_id",
    )
    .bind(reward)
    .fetch_all(conn)
    .await
}

/// One page of the reward's movements before `before`, newest first.
pub async fn movements(
    conn: &mut PgConnection,
    reward: Uuid,
    warehouse: Option<Uuid>,
    kind: Option<MovementKind>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<MovementRow>> {
    sqlx::query_as(
        "SELECT id, reward_id, warehouse_id, kind, quantity, reason, reference, transfer_id,
                order_id, on_hand_after, reserved_after, recorded_by, created_at
           FROM stock_movements
          WHERE reward_id = $1
            AND ($2::uuid IS NULL OR warehouse_id = $2)
            AND ($3::text IS NULL OR kind = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5",
    )
    .bind(reward)
    .bind(warehouse)
    .bind(kind)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
