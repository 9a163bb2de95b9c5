//! The forecast: a currency's cases by month and by owner.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Filter {
    pub pipeline: Option<Uuid>,
    pub currency: String,
    pub owner: Option<String>,
    /// First days of months: from, and before.
    pub from: Option<NaiveDate>,
    pub before: Option<NaiveDate>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Month {
    /// None: open cases with no expected close date.
    pub month: Option<NaiveDate>,
    pub open_count: i64,
    pub open_value: Decimal,
    pub weighted: Decimal,
    pub won_count: i64,
    pub won_value: Decimal,
    pub lost_count: i64,
    pub lost_value: Decimal,
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Figures {
    pub owner: String,
    pub cases: i64,
    pub planned_cost: Decimal,
    pub actual_cost: Decimal,
    pub planned_revenue: Decimal,
    pub actual_revenue: Decimal,
}

/// The cases of the filter with their month: the month an open case is expected to close in, or
/// the month (UTC) a closed one closed; a period leaves out cases without a month.
const CASES: &str = "WITH c AS (
         SELECT status, owner, expected_value, probability, planned_cost, actual_cost,
                planned_revenue, actual_revenue,
                CASE WHEN status = 'open' THEN date_trunc('month', expected_close_date)::date
                     ELSE date_trunc('month', closed_at AT TIME ZONE 'UTC')::date END AS month
           FROM cases
          WHERE currency_code = $1 AND ($2::uuid IS NULL OR pipeline_id = $2)
            AND ($3::text IS NULL OR owner = $3)),
     dated AS (
         SELECT * FROM c
          WHERE ($4::date IS NULL AND $5::date IS NULL)
             OR (month >= coalesce($4, '-infinity') AND month < coalesce($5, 'infinity')))";

pub async fn months(conn: &mut PgConnection, f: &Filter) -> sqlx::Result<Vec<Month>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CASES}
         SELECT month,
                count(*) FILTER (WHERE status = 'open') AS open_count,
                coalesce(sum(expected_value) FILTER (WHERE status = 'open'), 0) AS open_value,
                coalesce(sum(expected_value * probability / 100) FILTER (WHERE status = 'open'), 0)
                    AS weighted,
                count(*) FILTER (WHERE status = 'won') AS won_count,
                coalesce(sum(expected_value) FILTER (WHERE status = 'won'), 0) AS won_value,
                count(*) FILTER (WHERE status = 'lost') AS lost_count,
                coalesce(sum(expected_value) FILTER (WHERE status = 'lost'), 0) AS lost_value
           FROM dated GROUP BY month ORDER BY month NULLS LAST"
    )))
    .bind(&f.currency)
    .bind(f.pipeline)
    .bind(&f.owner)
    .bind(f.from)
    .bind(f.before)
    .fetch_all(conn)
    .await
}

/// Planned against actual figures per owner, in the owners' order.
pub async fn owners(conn: &mut PgConnection, f: &Filter) -> sqlx::Result<Vec<Figures>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CASES}
         SELECT owner, count(*) AS cases,
                coalesce(sum(planned_cost), 0) AS planned_cost,
                coalesce(sum(actual_cost), 0) AS actual_cost,
                coalesce(sum(planned_revenue), 0) AS planned_revenue,
                coalesce(sum(actual_revenue), 0) AS actual_revenue
           FROM dated GROUP BY owner ORDER BY owner"
    )))
    .bind(&f.currency)
    .bind(f.pipeline)
    .bind(&f.owner)
    .bind(f.from)
    .bind(f.before)
    .fetch_all(conn)
    .await
}
