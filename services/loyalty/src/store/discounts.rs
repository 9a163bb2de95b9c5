//! Discounts per party, price list and category, and the turnover that earns automatic levels.

use chrono::{NaiveDate, Utc};
use crm_kit::store::Tx;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DiscountRow {
    pub id: Uuid,
    pub party_id: Option<Uuid>,
    pub price_list: String,
    pub category: String,
    pub percentage: Decimal,
    pub turnover_threshold: Option<Decimal>,
    pub currency_code: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
}

/// A discount as set: `party` none for everyone; a turnover threshold makes it an automatic level.
pub struct NewDiscount<'a> {
    pub id: Uuid,
    pub party: Option<Uuid>,
    pub price_list: &'a str,
    pub category: &'a str,
    pub percentage: Decimal,
    pub turnover_threshold: Option<Decimal>,
    pub currency_code: &'a str,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
}

/// A page of a party's discounts (`None`: the automatic levels) in id order after `after`.
pub async fn list_discounts(
    conn: &mut PgConnection,
    party: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<DiscountRow>> {
    sqlx::query_as(
        "SELECT * FROM discounts WHERE party_id IS NOT DISTINCT FROM $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
    )
    .bind(party)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Deletes the discount and returns it as it was.
pub async fn delete_discount(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<DiscountRow>> {
    sqlx::query_as("DELETE FROM discounts WHERE id = $1 RETURNING *")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Creates the discount, or replaces the one with its id.
pub async fn set_discount(tx: &mut Tx, d: &NewDiscount<'_>, by: &str) -> sqlx::Result<DiscountRow> {
    sqlx::query_as(
        "INSERT INTO discounts (id, party_id, price_list, category, percentage, turnover_threshold, currency_code,
             valid_from, valid_to, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
         ON CONFLICT (id) DO UPDATE
         SET party_id = excluded.party_id, price_list = excluded.price_list, category = excluded.category,
             percentage = excluded.percentage, turnover_threshold = excluded.turnover_threshold,
             currency_code = excluded.currency_code, valid_from = excluded.valid_from,
             valid_to = excluded.valid_to, updated_by = excluded.updated_by, updated_at = now()
         RETURNING *",
    )
    .bind(d.id)
    .bind(d.party)
    .bind(d.price_list)
    .bind(d.category)
    .bind(d.percentage)
    .bind(d.turnover_threshold)
    .bind(d.currency_code)
    .bind(d.valid_from)
    .bind(d.valid_to)
    .bind(by)
    .fetch_one(&mut **tx)
    .await
}

/// The party's invoiced turnover per currency, credit notes taken back.
pub async fn turnover(
    conn: &mut PgConnection,
    party: Uuid,
) -> sqlx::Result<Vec<(String, Decimal)>> {
    sqlx::query_as(
        "SELECT currency_code, sum(net_amount - returned_amount) FROM invoice_lines WHERE party_id = $1 AND NOT credited
         GROUP BY currency_code",
    )
    .bind(party)
    .fetch_all(conn)
    .await
}

/// The discounts of a price list and category valid on a day for the party (or everyone),
/// highest first.
pub async fn discounts_on(
    conn: &mut PgConnection,
    party: Uuid,
    price_list: &str,
    category: &str,
    on: NaiveDate,
) -> sqlx::Result<Vec<DiscountRow>> {
    sqlx::query_as(
        "SELECT * FROM discounts
         WHERE (party_id = $1 OR party_id IS NULL) AND price_list = $2 AND (category = '' OR category = $3)
           AND (valid_from IS NULL OR valid_from <= $4) AND (valid_to IS NULL OR valid_to >= $4)
         ORDER BY percentage DESC, id",
    )
    .bind(party)
    .bind(price_list)
    .bind(category)
    .bind(on)
    .fetch_all(conn)
    .await
}
