//! Offers and their versions. A version is written once and never changed; the offer row holds
//! the status and what may still be edited.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::offers::OfferStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub id: Uuid,
    pub party_id: Uuid,
    pub case_id: Option<Uuid>,
    pub title: String,
    pub currency_code: String,
    pub locale: String,
    pub valid_until: NaiveDate,
    pub price_list: String,
    pub membership_id: Option<Uuid>,
    pub notes: String,
    pub status: OfferStatus,
    pub accepted_version: Option<i32>,
    pub order_request_id: Option<Uuid>,
    pub reject_reason: String,
    pub client_reference: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const COLUMNS: &str = "id, party_id, case_id, title, currency_code, locale, valid_until,
    price_list, membership_id, notes, status, accepted_version, order_request_id, reject_reason,
    client_reference, sent_at, decided_at, created_at, updated_at, created_by, updated_by, version";

/// A priced line as stored: decimals as the API writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRow {
    pub product_id: String,
    pub description: String,
    pub quantity: String,
    pub unit: String,
    pub unit_price: String,
    pub discount_percent: String,
    pub tax_code: String,
    pub tax_percent: String,
    pub category: String,
    pub member_discount_percent: String,
    pub applied_discount_percent: String,
    pub net: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRow {
    pub tax_code: String,
    pub tax_percent: String,
    pub net: String,
    pub tax: String,
    pub gross: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub offer_id: Uuid,
    pub number: i32,
    pub lines: Json<Vec<LineRow>>,
    pub coupon_code: String,
    pub coupon_percent: Decimal,
    pub tax_totals: Json<Vec<TaxRow>>,
    pub net: Decimal,
    pub tax: Decimal,
    pub gross: Decimal,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

const VERSION_COLUMNS: &str = "offer_id, number, lines, coupon_code, coupon_percent, tax_totals,
    net, tax, gross, created_at, created_by";

pub async fn insert(tx: &mut Tx, o: &OfferRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO offers (id, party_id, case_id, title, currency_code, locale, valid_until,
             price_list, membership_id, notes, status, created_at, updated_at, created_by,
             updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13)",
    )
    .bind(o.id)
    .bind(o.party_id)
    .bind(o.case_id)
    .bind(&o.title)
    .bind(&o.currency_code)
    .bind(&o.locale)
    .bind(o.valid_until)
    .bind(&o.price_list)
    .bind(o.membership_id)
    .bind(&o.notes)
    .bind(o.status)
    .bind(o.created_at)
    .bind(&o.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_version(tx: &mut Tx, v: &VersionRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO offer_versions (offer_id, number, lines, coupon_code, coupon_percent,
             tax_totals, net, tax, gross, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(v.offer_id)
    .bind(v.number)
    .bind(&v.lines)
    .bind(&v.coupon_code)
    .bind(v.coupon_percent)
    .bind(&v.tax_totals)
    .bind(v.net)
    .bind(v.tax)
    .bind(v.gross)
    .bind(v.created_at)
    .bind(&v.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM offers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM offers WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Writes everything an offer's use cases change.
pub async fn update(tx: &mut Tx, o: &OfferRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE offers SET case_id = $2, title = $3, locale = $4, valid_until = $5,
             price_list = $6, membership_id = $7, notes = $8, status = $9,
             accepted_version = $10, order_request_id = $11, reject_reason = $12, sent_at = $13,
             decided_at = $14, updated_by = $15, client_reference = $16, updated_at = now(),
             version = version + 1
          WHERE id = $1",
    )
    .bind(o.id)
    .bind(o.case_id)
    .bind(&o.title)
    .bind(&o.locale)
    .bind(o.valid_until)
    .bind(&o.price_list)
    .bind(o.membership_id)
    .bind(&o.notes)
    .bind(o.status)
    .bind(o.accepted_version)
    .bind(o.order_request_id)
    .bind(&o.reject_reason)
    .bind(o.sent_at)
    .bind(o.decided_at)
    .bind(by)
    .bind(&o.client_reference)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every version of an offer, oldest first.
pub async fn versions(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<VersionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM offer_versions WHERE offer_id = $1 ORDER BY number"
    )))
    .bind(id)
    .fetch_all(conn)
    .await
}

/// The latest version of each of `ids`.
pub async fn current_versions(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, VersionRow>> {
    let rows: Vec<VersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (offer_id) {VERSION_COLUMNS} FROM offer_versions
          WHERE offer_id = ANY($1) ORDER BY offer_id, number DESC"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|v| (v.offer_id, v)).collect())
}

#[derive(Debug, Default)]
pub struct Filter {
    pub party: Option<Uuid>,
    pub case: Option<Uuid>,
    pub status: Option<OfferStatus>,
}

/// Newest first, after the id of the page before's last.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<OfferRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM offers
          WHERE ($1::uuid IS NULL OR party_id = $1) AND ($2::uuid IS NULL OR case_id = $2)
            AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5"
    )))
    .bind(filter.party)
    .bind(filter.case)
    .bind(filter.status)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Up to `limit` sent offers whose last valid day is before `today`, locked; those another
/// replica is expiring are skipped.
pub async fn lock_expired(
    tx: &mut Tx,
    today: NaiveDate,
    limit: i64,
) -> sqlx::Result<Vec<OfferRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM offers WHERE status = 'sent' AND valid_until < $1
          ORDER BY valid_until LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(today)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}
