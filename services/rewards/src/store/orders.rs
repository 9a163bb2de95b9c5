//! Reward orders, their items, returns, and the stock and codes they hold.

use chrono::{DateTime, Utc};
use crm_kit::{address::Address, store::Tx};
use rust_decimal::Decimal;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{MovementKind, RewardKind, orders::OrderStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub membership_id: Uuid,
    pub party_id: Uuid,
    pub program_id: Uuid,
    pub point_type: String,
    pub kind: RewardKind,
    pub status: OrderStatus,
    pub points: i64,
    pub captured_points: i64,
    pub returned_points: i64,
    pub hold_id: String,
    pub hold_seconds: i64,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub recipient_name: Option<String>,
    pub address: Option<Json<Address>>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub failure_reason: Option<String>,
    pub failure_message: Option<String>,
    pub void_due: bool,
    pub request_id: String,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub order_id: Uuid,
    pub line: i32,
    pub reward_id: Uuid,
    pub display_name: String,
    pub quantity: i32,
    pub unit_points: i64,
    pub co_payment_amount: Option<Decimal>,
    pub co_payment_currency: Option<String>,
    pub returned_quantity: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReturnRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub points: i64,
    pub reason: String,
    pub points_returned: bool,
    /// Loyalty's words when it refused the points for good.
    pub refused: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReturnedRow {
    pub return_id: Uuid,
    pub line: i32,
    pub quantity: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub order_id: Uuid,
    pub line: i32,
    pub code: String,
    pub valid_until: Option<chrono::NaiveDate>,
}

/// An order and everything the API shows of it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub order: OrderRow,
    pub items: Vec<ItemRow>,
    pub returns: Vec<(ReturnRow, Vec<ReturnedRow>)>,
    /// Issued codes only.
    pub codes: Vec<CodeRow>,
}

const COLUMNS: &str = "id, membership_id, party_id, program_id, point_type, kind, status, points,
    captured_points, returned_points, hold_id, hold_seconds, hold_expires_at, recipient_name, address, email,
    phone, carrier, tracking_number, cancel_reason, failure_reason, failure_message, void_due,
    request_id, created_by, updated_by, created_at, updated_at, confirmed_at, shipped_at, delivered_at,
    cancelled_at";

/// Serialises the per-member limit checks of one membership's orders.
pub async fn lock_member(tx: &mut Tx, membership: Uuid) -> sqlx::Result<()> {
    crm_kit::store::lock_names(tx, "membership", [membership]).await
}

/// Units of each reward the membership has in live orders.
pub async fn units_of_member(
    tx: &mut Tx,
    membership: Uuid,
    rewards: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(
        "SELECT i.reward_id, sum(i.quantity - i.returned_quantity)::bigint
           FROM reward_order_items i JOIN reward_orders o ON o.id = i.order_id
          WHERE o.membership_id = $1 AND i.reward_id = ANY($2)
            AND o.status NOT IN ('failed', 'cancelled')
          GROUP BY i.reward_id",
    )
    .bind(membership)
    .bind(rewards)
    .fetch_all(&mut **tx)
    .await
}

pub async fn give_back_units(tx: &mut Tx, reward: Uuid, quantity: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE rewards SET ordered_units = ordered_units - $2 WHERE id = $1")
        .bind(reward)
        .bind(quantity)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The delivery details an order keeps until an erasure.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRow {
    pub recipient_name: Option<String>,
    pub address: Option<Address>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A new PLACING order.
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub membership_id: Uuid,
    pub party_id: Uuid,
    pub program_id: Uuid,
    pub point_type: &'a str,
    pub kind: RewardKind,
    pub points: i64,
    pub hold_id: &'a str,
    pub hold_seconds: i64,
    pub delivery: &'a DeliveryRow,
    pub request_id: &'a str,
    pub by: &'a str,
}

/// Writes the order and its items; `None` when the caller placed an order with this request id
/// before (its stored answer purged since).
pub async fn insert(
    tx: &mut Tx,
    o: &NewOrder<'_>,
    items: &[ItemRow],
) -> sqlx::Result<Option<OrderRow>> {
    let inserted: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reward_orders (id, membership_id, party_id, program_id, point_type, kind,
             status, points, hold_id, hold_seconds, recipient_name, address, email, phone,
             request_id, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'placing', $7, $8, $9, $10, $11, $12, $13, $14, $15,
             $15)
         ON CONFLICT (created_by, request_id) WHERE status <> 'failed' DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(o.id)
    .bind(o.membership_id)
    .bind(o.party_id)
    .bind(o.program_id)
    .bind(o.point_type)
    .bind(o.kind)
    .bind(o.points)
    .bind(o.hold_id)
    .bind(o.hold_seconds)
    .bind(&o.delivery.recipient_name)
    .bind(o.delivery.address.clone().map(Json))
    .bind(&o.delivery.email)
    .bind(&o.delivery.phone)
    .bind(o.request_id)
    .bind(o.by)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(order) = inserted else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO reward_order_items (order_id, line, reward_id, display_name, quantity,
             unit_points, co_payment_amount, co_payment_currency)
         SELECT $1, * FROM unnest($2::int[], $3::uuid[], $4::text[], $5::int[], $6::bigint[],
             $7::numeric[], $8::text[])",
    )
    .bind(o.id)
    .bind(items.iter().map(|i| i.line).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.reward_id).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| i.display_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.unit_points).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| i.co_payment_amount)
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|i| i.co_payment_currency.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(Some(order))
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reward_orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The order, locked for a step (orders are locked before rewards, stock and codes).
pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reward_orders WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn items(conn: &mut PgConnection, orders: &[Uuid]) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT order_id, line, reward_id, display_name, quantity, unit_points, co_payment_amount,
                co_payment_currency, returned_quantity
           FROM reward_order_items WHERE order_id = ANY($1) ORDER BY order_id, line",
    )
    .bind(orders)
    .fetch_all(conn)
    .await
}

/// Orders with their items, returns and issued codes, in the order of `rows`.
pub async fn load(conn: &mut PgConnection, rows: Vec<OrderRow>) -> sqlx::Result<Vec<Loaded>> {
    let ids: Vec<Uuid> = rows.iter().map(|o| o.id).collect();
    let items = items(conn, &ids).await?;
    // Only delivered goods have returns, only vouchers codes: the rest need no query.
    let returnable: Vec<Uuid> = rows
        .iter()
        .filter(|o| o.status.was_delivered() && o.kind == RewardKind::Material)
        .map(|o| o.id)
        .collect();
    let vouchers: Vec<Uuid> = rows
        .iter()
        .filter(|o| o.kind == RewardKind::Voucher)
        .map(|o| o.id)
        .collect();
    let (mut returns, mut returned, mut codes) = (Vec::new(), Vec::new(), Vec::new());
    if !returnable.is_empty() {
        returns = sqlx::query_as::<_, ReturnRow>(
            "SELECT id, order_id, points, reason, points_returned, refused, created_at
               FROM reward_order_returns WHERE order_id = ANY($1) ORDER BY id",
        )
        .bind(&returnable)
        .fetch_all(&mut *conn)
        .await?;
    }
    if !returns.is_empty() {
        let return_ids: Vec<Uuid> = returns.iter().map(|r| r.id).collect();
        returned = sqlx::query_as::<_, ReturnedRow>(
            "SELECT return_id, line, quantity FROM reward_order_returned_items
              WHERE return_id = ANY($1) ORDER BY return_id, line",
        )
        .bind(&return_ids)
        .fetch_all(&mut *conn)
        .await?;
    }
    if !vouchers.is_empty() {
        codes = sqlx::query_as::<_, CodeRow>(
            "SELECT order_id, line, code, valid_until FROM voucher_codes
              WHERE order_id = ANY($1) AND issued_at IS NOT NULL ORDER BY order_id, line, code",
        )
        .bind(&vouchers)
        .fetch_all(&mut *conn)
        .await?;
    }
    Ok(rows
        .into_iter()
        .map(|order| Loaded {
            items: items
                .iter()
                .filter(|i| i.order_id == order.id)
                .cloned()
                .collect(),
            returns: returns
                .iter()
                .filter(|r| r.order_id == order.id)
                .map(|r| {
                    let lines = returned.iter().filter(|l| l.return_id == r.id).cloned();
                    (r.clone(), lines.collect())
                })
                .collect(),
            codes: codes
                .iter()
                .filter(|c| c.order_id == order.id)
                .cloned()
                .collect(),
            order,
        })
        .collect())
}

/// What ListRewardOrders filters by.
#[derive(Debug, Default)]
pub struct Filter {
    pub membership_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    pub placed_after: Option<DateTime<Utc>>,
    pub placed_before: Option<DateTime<Utc>>,
}

/// One page of orders before `before`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reward_orders
          WHERE ($1::uuid IS NULL OR id < $1)
            AND ($2::uuid IS NULL OR membership_id = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($4::timestamptz IS NULL OR created_at >= $4)
            AND ($5::timestamptz IS NULL OR created_at < $5)
          ORDER BY id DESC LIMIT $6"
    )))
    .bind(before)
    .bind(filter.membership_id)
    .bind(filter.status)
    .bind(filter.placed_after)
    .bind(filter.placed_before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves the order to `status`, stamping the time that status records.
pub async fn set_status(tx: &mut Tx, id: Uuid, status: OrderStatus, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE reward_orders SET status = $2, updated_by = $3, updated_at = now(),
             confirmed_at = CASE WHEN $2 = 'confirmed' THEN now() ELSE confirmed_at END,
             shipped_at = CASE WHEN $2 = 'shipped' THEN now() ELSE shipped_at END,
             delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END,
             cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// PLACING → CONFIRMED, with the time the hold releases itself.
pub async fn confirm(tx: &mut Tx, id: Uuid, expires: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE reward_orders SET status = 'confirmed', hold_expires_at = $2,
             confirmed_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(expires)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set_captured(tx: &mut Tx, id: Uuid, points: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE reward_orders SET captured_points = $2 WHERE id = $1")
        .bind(id)
        .bind(points)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_shipment(
    tx: &mut Tx,
    id: Uuid,
    carrier: &str,
    tracking: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE reward_orders SET carrier = $2, tracking_number = $3 WHERE id = $1")
        .bind(id)
        .bind(carrier)
        .bind(tracking)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_cancel_reason(tx: &mut Tx, id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE reward_orders SET cancel_reason = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records why the order was not placed, and whether a hold may exist that must be voided.
pub async fn set_failure(
    tx: &mut Tx,
    id: Uuid,
    reason: &str,
    message: &str,
    void_due: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE reward_orders SET failure_reason = $2, failure_message = $3, void_due = $4,
             updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .bind(message)
    .bind(void_due)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// No hold is left to void, unless the order changed since it was read at `read_at` (a hold that
/// arrived meanwhile set the flag again).
pub async fn clear_void_due(
    conn: &mut PgConnection,
    id: Uuid,
    read_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE reward_orders SET void_due = false WHERE id = $1 AND updated_at = $2")
        .bind(id)
        .bind(read_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The stock the order holds in each (reward, warehouse): what its movements reserved and did not
/// release or issue since; `kind` Issue instead: what it issued and got back since.
pub async fn held_stock(
    tx: &mut Tx,
    order: Uuid,
    kind: MovementKind,
) -> sqlx::Result<Vec<(Uuid, Uuid, i64)>> {
    let (plus, minus) = match kind {
        MovementKind::Issue => ("'issue'", "'return'"),
        _ => ("'reservation'", "'release', 'issue'"),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT reward_id, warehouse_id, held FROM (
             SELECT reward_id, warehouse_id,
                    (sum(quantity) FILTER (WHERE kind IN ({plus}))
                     - coalesce(sum(quantity) FILTER (WHERE kind IN ({minus})), 0))::bigint AS held
               FROM stock_movements WHERE order_id = $1
              GROUP BY reward_id, warehouse_id) h
          WHERE held > 0 ORDER BY reward_id, warehouse_id"
    )))
    .bind(order)
    .fetch_all(&mut **tx)
    .await
}

/// The order a caller placed with this request id, unless it failed.
pub async fn placed_by(
    conn: &mut PgConnection,
    caller: &str,
    request_id: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM reward_orders
          WHERE created_by = $1 AND request_id = $2 AND status <> 'failed'",
    )
    .bind(caller)
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

/// What the sweep finds to tend, longest waiting first, but for `waiting` (backing off): orders
/// whose step a crash or an outage interrupted (placing, shipping, cancelling, or a voucher order
/// confirmed but not captured, untouched since `stale`; a hold to void; a return whose points are
/// not back) and confirmed orders whose hold expired.
pub async fn to_tend(
    conn: &mut PgConnection,
    stale: DateTime<Utc>,
    waiting: &[Uuid],
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM (
             (SELECT id, updated_at AS since FROM reward_orders
               WHERE status IN ('placing', 'shipping', 'cancelling') AND updated_at < $1
                 AND id <> ALL($2)
               ORDER BY updated_at LIMIT $3)
             UNION ALL
             (SELECT id, updated_at FROM reward_orders
               WHERE status = 'confirmed' AND kind = 'voucher' AND updated_at < $1
                 AND id <> ALL($2)
               ORDER BY updated_at LIMIT $3)
             UNION ALL
             (SELECT id, hold_expires_at FROM reward_orders
               WHERE status = 'confirmed' AND hold_expires_at <= now() AND id <> ALL($2)
               ORDER BY hold_expires_at LIMIT $3)
             UNION ALL
             (SELECT id, updated_at FROM reward_orders WHERE void_due AND id <> ALL($2)
               ORDER BY updated_at LIMIT $3)
             UNION ALL
             (SELECT order_id, created_at FROM reward_order_returns
               WHERE NOT points_returned AND order_id <> ALL($2)
               ORDER BY id LIMIT $3)) due
         GROUP BY id ORDER BY min(since) LIMIT $3",
    )
    .bind(stale)
    .bind(waiting)
    .bind(limit)
    .fetch_all(conn)
    .await
}
