//! The funnel of a pipeline: aggregates over its cases and their visits, in one currency.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Filter {
    pub pipeline: Uuid,
    pub currency: String,
    pub owner: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// The cases in each phase now: phase, count, value, probability-weighted value.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Standing {
    pub phase: String,
    pub count: i64,
    pub value: Decimal,
    pub weighted: Decimal,
}

/// Each phase's visits: cases that entered it, those of them that reached a later phase that is
/// not lost, and the average length of a visit in seconds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Flow {
    pub phase: String,
    pub entered: i64,
    pub went_on: i64,
    pub average_seconds: f64,
}

const CASES: &str = "SELECT id, phase, expected_value, probability, furthest FROM cases
    WHERE pipeline_id = $1 AND currency_code = $2 AND ($3::text IS NULL OR owner = $3)
      AND ($4::timestamptz IS NULL OR created_at >= $4)
      AND ($5::timestamptz IS NULL OR created_at < $5)";

pub async fn standing(conn: &mut PgConnection, f: &Filter) -> sqlx::Result<Vec<Standing>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT phase, count(*) AS count, coalesce(sum(expected_value), 0) AS value,
                coalesce(sum(expected_value * probability / 100), 0) AS weighted
           FROM ({CASES}) c GROUP BY phase"
    )))
    .bind(f.pipeline)
    .bind(&f.currency)
    .bind(&f.owner)
    .bind(f.created_after)
    .bind(f.created_before)
    .fetch_all(conn)
    .await
}

/// `order` is the pipeline's phase codes in order. A case went on from a phase it entered when
/// its furthest phase (kept as it moves, lost ones aside) lies beyond it.
pub async fn flow(
    conn: &mut PgConnection,
    f: &Filter,
    order: &[String],
) -> sqlx::Result<Vec<Flow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT v.phase, count(*) FILTER (WHERE v.first) AS entered,
                count(*) FILTER (WHERE v.first AND c.furthest > array_position($6::text[], v.phase))
                    AS went_on,
                coalesce(avg(date_part('epoch', coalesce(v.left_at, now()) - v.entered_at)), 0)
                    AS average_seconds
           FROM phase_visits v JOIN ({CASES}) c ON c.id = v.case_id
          GROUP BY v.phase"
    )))
    .bind(f.pipeline)
    .bind(&f.currency)
    .bind(&f.owner)
    .bind(f.created_after)
    .bind(f.created_before)
    .bind(order)
    .fetch_all(conn)
    .await
}
