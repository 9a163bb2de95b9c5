//! Cases and their passages through phases.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{CaseKind, CaseStatus};

/// A document of another system, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLink {
    pub kind: String,
    pub reference: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub title: String,
    pub description: String,
    pub kind: CaseKind,
    pub owner: String,
    pub party_id: Option<Uuid>,
    pub person_ids: Vec<Uuid>,
    pub watchers: Vec<String>,
    pub phase: String,
    pub status: CaseStatus,
    pub currency_code: String,
    pub expected_value: Decimal,
    pub probability_override: Option<i16>,
    pub probability: i16,
    pub expected_close_date: Option<NaiveDate>,
    pub planned_cost: Option<Decimal>,
    pub actual_cost: Option<Decimal>,
    pub planned_revenue: Option<Decimal>,
    pub actual_revenue: Option<Decimal>,
    pub document_links: Json<Vec<DocumentLink>>,
    pub lost_reason: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const COLUMNS: &str = "id, pipeline_id, title, description, kind, owner, party_id, person_ids,
    watchers, phase, status, currency_code, expected_value, probability_override, probability,
    expected_close_date, planned_cost, actual_cost, planned_revenue, actual_revenue,
    document_links, lost_reason, closed_at, created_at, updated_at, created_by, updated_by,
    version";

/// A new case, entering its phase at its creation.
pub async fn insert(tx: &mut Tx, c: &CaseRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cases (id, pipeline_id, title, description, kind, owner, party_id, person_ids,
             watchers, phase, status, currency_code, expected_value, probability_override,
             probability, expected_close_date, planned_cost, actual_cost, planned_revenue,
             actual_revenue, document_links, created_at, updated_at, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21, $22, $22, $23, $23)",
    )
    .bind(c.id)
    .bind(c.pipeline_id)
    .bind(&c.title)
    .bind(&c.description)
    .bind(c.kind)
    .bind(&c.owner)
    .bind(c.party_id)
    .bind(&c.person_ids)
    .bind(&c.watchers)
    .bind(&c.phase)
    .bind(c.status)
    .bind(&c.currency_code)
    .bind(c.expected_value)
    .bind(c.probability_override)
    .bind(c.probability)
    .bind(c.expected_close_date)
    .bind(c.planned_cost)
    .bind(c.actual_cost)
    .bind(c.planned_revenue)
    .bind(c.actual_revenue)
    .bind(&c.document_links)
    .bind(c.created_at)
    .bind(&c.created_by)
    .execute(&mut **tx)
    .await?;
    enter(tx, c.id, &c.phase, c.created_at).await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CaseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cases WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<CaseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cases WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Writes everything a case's use cases change.
pub async fn update(tx: &mut Tx, c: &CaseRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cases SET title = $2, description = $3, owner = $4, watchers = $5, phase = $6,
             status = $7, currency_code = $8, expected_value = $9, probability_override = $10,
             probability = $11, expected_close_date = $12, planned_cost = $13, actual_cost = $14,
             planned_revenue = $15, actual_revenue = $16, document_links = $17,
             lost_reason = $18, closed_at = $19, updated_by = $20, updated_at = now(),
             version = version + 1
          WHERE id = $1",
    )
    .bind(c.id)
    .bind(&c.title)
    .bind(&c.description)
    .bind(&c.owner)
    .bind(&c.watchers)
    .bind(&c.phase)
    .bind(c.status)
    .bind(&c.currency_code)
    .bind(c.expected_value)
    .bind(c.probability_override)
    .bind(c.probability)
    .bind(c.expected_close_date)
    .bind(c.planned_cost)
    .bind(c.actual_cost)
    .bind(c.planned_revenue)
    .bind(c.actual_revenue)
    .bind(&c.document_links)
    .bind(&c.lost_reason)
    .bind(c.closed_at)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The case leaves its phase and enters `phase`, at `at` or, when a clock of another replica ran
/// ahead, just after its last passage: visits stay in order. The time it entered.
pub async fn pass(
    tx: &mut Tx,
    id: Uuid,
    phase: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<DateTime<Utc>> {
    let at: DateTime<Utc> = sqlx::query_scalar(
        "SELECT greatest($2::timestamptz, max(entered_at) + interval '1 microsecond')
           FROM phase_visits WHERE case_id = $1",
    )
    .bind(id)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("UPDATE phase_visits SET left_at = $2 WHERE case_id = $1 AND left_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    enter(tx, id, phase, at).await?;
    Ok(at)
}

/// The case enters `phase`. The database marks the visit when it is the case's first to that
/// phase and moves the case's furthest phase on (see the funnel's migration): the funnel reads
/// both.
async fn enter(tx: &mut Tx, id: Uuid, phase: &str, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO phase_visits (case_id, phase, entered_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(phase)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisitRow {
    pub phase: String,
    pub entered_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
}

/// The latest 100 visits of each of `ids`, oldest first.
pub async fn histories(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Vec<VisitRow>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        case_id: Uuid,
        #[sqlx(flatten)]
        visit: VisitRow,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT case_id, phase, entered_at, left_at
           FROM (SELECT *, row_number() OVER (PARTITION BY case_id ORDER BY entered_at DESC) n
                   FROM phase_visits WHERE case_id = ANY($1)) v
          WHERE n <= 100 ORDER BY case_id, entered_at",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut histories: HashMap<Uuid, Vec<VisitRow>> = HashMap::new();
    for row in rows {
        histories.entry(row.case_id).or_default().push(row.visit);
    }
    Ok(histories)
}

#[derive(Debug, Default)]
pub struct Filter {
    pub pipeline: Option<Uuid>,
    pub phase: Option<String>,
    pub owner: Option<String>,
    pub party: Option<Uuid>,
    pub status: Option<CaseStatus>,
}

/// Newest first, after the id of the page before's last.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<CaseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cases
          WHERE ($1::uuid IS NULL OR pipeline_id = $1) AND ($2::text IS NULL OR phase = $2)
            AND ($3::text IS NULL OR owner = $3) AND ($4::uuid IS NULL OR party_id = $4)
            AND ($5::text IS NULL OR status = $5) AND ($6::uuid IS NULL OR id < $6)
          ORDER BY id DESC LIMIT $7"
    )))
    .bind(filter.pipeline)
    .bind(&filter.phase)
    .bind(&filter.owner)
    .bind(filter.party)
    .bind(filter.status)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
