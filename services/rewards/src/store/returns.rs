//! Returns of reward orders: recorded with the goods back on the shelf, then marked when loyalty
//! gave their points back.

use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use super::orders::ReturnRow;

/// A return of some of the order's units, its points not yet given back.
pub async fn insert_return(
    tx: &mut Tx,
    id: Uuid,
    order: Uuid,
    units: &[(i32, i32)],
    points: i64,
    reason: &str,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reward_order_returns (id, order_id, points, reason, created_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(order)
    .bind(points)
    .bind(reason)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    let (lines, quantities): (Vec<i32>, Vec<i32>) = units.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO reward_order_returned_items (return_id, line, quantity)
         SELECT $1, * FROM unnest($2::int[], $3::int[])",
    )
    .bind(id)
    .bind(&lines)
    .bind(&quantities)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE reward_order_items i SET returned_quantity = returned_quantity + r.quantity
           FROM unnest($2::int[], $3::int[]) r (line, quantity)
          WHERE i.order_id = $1 AND i.line = r.line",
    )
    .bind(order)
    .bind(&lines)
    .bind(&quantities)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get_return(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ReturnRow>> {
    sqlx::query_as(
        "SELECT id, order_id, points, reason, points_returned, refused, created_at
           FROM reward_order_returns WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The return, locked, if its points are still to be given back.
pub async fn lock_pending_return(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<ReturnRow>> {
    sqlx::query_as(
        "SELECT id, order_id, points, reason, points_returned, refused, created_at
           FROM reward_order_returns WHERE id = $1 AND NOT points_returned FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// The return's points went back (`points`, as loyalty gave them), or loyalty refused them for
/// good (`refused`, its words, and no points): counted on the order.
pub async fn points_returned(
    tx: &mut Tx,
    ret: &ReturnRow,
    points: i64,
    refused: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE reward_order_returns SET points_returned = true, points = $2, refused = $3
          WHERE id = $1",
    )
    .bind(ret.id)
    .bind(points)
    .bind(refused)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE reward_orders SET returned_points = returned_points + $2 WHERE id = $1")
        .bind(ret.order_id)
        .bind(points)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Returns of the order whose points are still to be given back.
pub async fn pending_returns_of(conn: &mut PgConnection, order: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM reward_order_returns WHERE order_id = $1 AND NOT points_returned ORDER BY id",
    )
    .bind(order)
    .fetch_all(conn)
    .await
}
