//! Calendars, SLA policies and tickets.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{
    alarms::ClockRecords,
    calendar::Period,
    tickets::{Channel, Priority, Status, TicketType},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodRow {
    pub start: u16,
    pub end: u16,
}

impl From<PeriodRow> for Period {
    fn from(p: PeriodRow) -> Self {
        Period {
            start: p.start,
            end: p.end,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CalendarRow {
    pub id: Uuid,
    pub display_name: String,
    pub time_zone: String,
    /// Monday first.
    pub week: Json<Vec<Vec<PeriodRow>>>,
    pub holidays: Vec<NaiveDate>,
    pub always_open: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

pub async fn insert_calendar(tx: &mut Tx, c: &CalendarRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO calendars (id, display_name, time_zone, week, holidays, always_open,
             created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.id)
    .bind(&c.display_name)
    .bind(&c.time_zone)
    .bind(&c.week)
    .bind(&c.holidays)
    .bind(c.always_open)
    .bind(c.created_at)
    .bind(&c.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn calendar(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CalendarRow>> {
    sqlx::query_as("SELECT * FROM calendars WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn calendars(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<CalendarRow>> {
    sqlx::query_as("SELECT * FROM calendars WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// A policy's conditions as stored: words, each list empty to match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionsRow {
    pub kinds: Vec<String>,
    pub priorities: Vec<String>,
    pub bases: Vec<String>,
    pub tiers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationRow {
    pub clock: String,
    pub level: String,
    pub action: String,
    pub to: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub id: Uuid,
    pub display_name: String,
    pub rank: i32,
    pub conditions: Json<ConditionsRow>,
    pub is_default: bool,
    pub calendar_id: Uuid,
    pub first_response_minutes: i32,
    pub next_update_minutes: i32,
    pub resolution_minutes: i32,
    pub near_breach_percent: i32,
    pub escalations: Json<Vec<EscalationRow>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

pub async fn insert_policy(tx: &mut Tx, p: &PolicyRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sla_policies (id, display_name, rank, conditions, is_default, calendar_id,
             first_response_minutes, next_update_minutes, resolution_minutes,
             near_breach_percent, escalations, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(p.id)
    .bind(&p.display_name)
    .bind(p.rank)
    .bind(&p.conditions)
    .bind(p.is_default)
    .bind(p.calendar_id)
    .bind(p.first_response_minutes)
    .bind(p.next_update_minutes)
    .bind(p.resolution_minutes)
    .bind(p.near_breach_percent)
    .bind(&p.escalations)
    .bind(p.created_at)
    .bind(&p.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn policies_by_id(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<PolicyRow>> {
    sqlx::query_as("SELECT * FROM sla_policies WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// In the stated order, after the rank of the page before's last.
pub async fn policies(
    conn: &mut PgConnection,
    after: Option<i32>,
    limit: i64,
) -> sqlx::Result<Vec<PolicyRow>> {
    sqlx::query_as(
        "SELECT * FROM sla_policies WHERE ($1::int IS NULL OR rank > $1) ORDER BY rank LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// What the member's tier allowed when the ticket opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnTermsRow {
    pub tier: String,
    pub return_window_days: i32,
    pub free_return_shipping: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: TicketType,
    pub channel: Channel,
    pub priority: Priority,
    pub subject: String,
    pub description: String,
    pub owner: String,
    pub group: String,
    pub party_id: Uuid,
    pub person_id: Option<Uuid>,
    pub membership_id: Option<Uuid>,
    pub order_reference: String,
    pub invoice_reference: String,
    pub status: Status,
    pub sla_policy_id: Option<Uuid>,
    pub clocks: Json<ClockRecords>,
    pub return_terms: Option<Json<ReturnTermsRow>>,
    pub resolution: String,
    pub resolved_at: Option<DateTime<Utc>>,
    pub next_alarm_at: Option<DateTime<Utc>>,
    pub breached: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

pub async fn insert_ticket(tx: &mut Tx, t: &TicketRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tickets (id, type, channel, priority, subject, description, owner, \"group\",
             party_id, person_id, membership_id, order_reference, invoice_reference, status,
             sla_policy_id, clocks, return_terms, next_alarm_at, breached, due_at, created_at,
             updated_at, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21, $21, $22, $22)",
    )
    .bind(t.id)
    .bind(t.kind)
    .bind(t.channel)
    .bind(t.priority)
    .bind(&t.subject)
    .bind(&t.description)
    .bind(&t.owner)
    .bind(&t.group)
    .bind(t.party_id)
    .bind(t.person_id)
    .bind(t.membership_id)
    .bind(&t.order_reference)
    .bind(&t.invoice_reference)
    .bind(t.status)
    .bind(t.sla_policy_id)
    .bind(&t.clocks)
    .bind(&t.return_terms)
    .bind(t.next_alarm_at)
    .bind(t.breached)
    .bind(t.due_at)
    .bind(t.created_at)
    .bind(&t.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn ticket(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as("SELECT * FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn lock_ticket(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as("SELECT * FROM tickets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Writes everything a ticket's use cases change.
pub async fn update_ticket(tx: &mut Tx, t: &TicketRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tickets SET priority = $2, subject = $3, description = $4, owner = $5,
             \"group\" = $6, order_reference = $7, invoice_reference = $8, status = $9,
             clocks = $10, resolution = $11, resolved_at = $12, next_alarm_at = $13,
             breached = $14, due_at = $15, updated_by = $16, updated_at = now(),
             version = version + 1
          WHERE id = $1",
    )
    .bind(t.id)
    .bind(t.priority)
    .bind(&t.subject)
    .bind(&t.description)
    .bind(&t.owner)
    .bind(&t.group)
    .bind(&t.order_reference)
    .bind(&t.invoice_reference)
    .bind(t.status)
    .bind(&t.clocks)
    .bind(&t.resolution)
    .bind(t.resolved_at)
    .bind(t.next_alarm_at)
    .bind(t.breached)
    .bind(t.due_at)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes what the alarm sweep changes (the clocks' announcements and the derived times), which
/// callers do not edit: the version stays.
pub async fn set_alarms(tx: &mut Tx, t: &TicketRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tickets SET clocks = $2, next_alarm_at = $3, breached = $4, due_at = $5
          WHERE id = $1",
    )
    .bind(t.id)
    .bind(&t.clocks)
    .bind(t.next_alarm_at)
    .bind(t.breached)
    .bind(t.due_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct TicketFilter {
    pub status: Option<Status>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub party: Option<Uuid>,
    pub breached: bool,
    pub due_before: Option<DateTime<Utc>>,
}

/// Newest first, after the id of the page before's last.
pub async fn tickets(
    conn: &mut PgConnection,
    f: &TicketFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TicketRow>> {
    sqlx::query_as(
        "SELECT * FROM tickets
          WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR owner = $2)
            AND ($3::text IS NULL OR \"group\" = $3) AND ($4::uuid IS NULL OR party_id = $4)
            AND (NOT $5 OR breached) AND ($6::timestamptz IS NULL OR due_at < $6)
            AND ($7::uuid IS NULL OR id < $7)
          ORDER BY id DESC LIMIT $8",
    )
    .bind(f.status)
    .bind(&f.owner)
    .bind(&f.group)
    .bind(f.party)
    .bind(f.breached)
    .bind(f.due_before)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Up to `limit` tickets whose next alarm is due by `now`, locked; those another replica holds
/// are skipped.
pub async fn lock_alarming(
    tx: &mut Tx,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<TicketRow>> {
    sqlx::query_as(
        "SELECT * FROM tickets WHERE next_alarm_at <= $1
          ORDER BY next_alarm_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub author: String,
    pub text: String,
    pub at: DateTime<Utc>,
    pub recorded_by: String,
}

pub async fn add_message(tx: &mut Tx, ticket: Uuid, m: &MessageRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_messages (ticket_id, author, text, at, recorded_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket)
    .bind(&m.author)
    .bind(&m.text)
    .bind(m.at)
    .bind(&m.recorded_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The latest 100 messages of a ticket, oldest first.
pub async fn messages(conn: &mut PgConnection, ticket: Uuid) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(
        "SELECT author, text, at, recorded_by FROM (
             SELECT * FROM ticket_messages WHERE ticket_id = $1 ORDER BY id DESC LIMIT 100) m
          ORDER BY id",
    )
    .bind(ticket)
    .fetch_all(conn)
    .await
}
