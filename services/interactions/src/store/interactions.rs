//! Interactions and whom each is about.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{
    domain::{Attachment, Channel, Direction, Link, LinkKind, Participant, TimelineKind},
    peers::Client,
    store::timeline,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InteractionRow {
    pub id: Uuid,
    pub channel: Channel,
    pub direction: Direction,
    pub subject: String,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub duration_seconds: i32,
    pub outcome: String,
    pub participants: Json<Vec<Participant>>,
    pub links: Json<Vec<Link>>,
    pub attachments: Json<Vec<Attachment>>,
    pub dialled_number: String,
    pub recording_reference: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
    pub message_id: Option<String>,
    pub thread_id: Option<Uuid>,
}

const COLUMNS: &str = "i.id, i.channel, i.direction, i.subject, i.body, i.occurred_at,
    i.duration_seconds, i.outcome, i.participants, i.links, i.attachments, i.dialled_number,
    i.recording_reference, i.created_at, i.updated_at, i.created_by, i.updated_by, i.version,
    i.message_id, i.thread_id";

/// A new interaction, and its clients (the parties and persons among its participants, each under
/// its linked id too).
pub async fn insert(tx: &mut Tx, r: &InteractionRow, clients: &[Client]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO interactions (id, channel, direction, subject, body, occurred_at,
             duration_seconds, outcome, participants, links, attachments, dialled_number,
             recording_reference, created_by, updated_by, message_id, thread_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16)",
    )
    .bind(r.id)
    .bind(r.channel)
    .bind(r.direction)
    .bind(&r.subject)
    .bind(&r.body)
    .bind(r.occurred_at)
    .bind(r.duration_seconds)
    .bind(&r.outcome)
    .bind(&r.participants)
    .bind(&r.links)
    .bind(&r.attachments)
    .bind(&r.dialled_number)
    .bind(&r.recording_reference)
    .bind(&r.created_by)
    .bind(&r.message_id)
    .bind(r.thread_id)
    .execute(&mut **tx)
    .await?;
    let mut rows: Vec<(Uuid, Option<Uuid>, &str)> = Vec::new();
    for client in clients {
        let kind = if client.organization {
            "organization"
        } else {
            "person"
        };
        rows.push((client.id, client.linked, kind));
        if let Some(linked) = client.linked {
            rows.push((linked, Some(client.id), kind));
        }
        if let Some(employer) = client.employer {
            rows.push((employer, None, "organization"));
        }
    }
    rows.sort_by_key(|(id, _, _)| *id);
    rows.dedup_by_key(|(id, _, _)| *id);
    sqlx::query(
        "INSERT INTO interaction_clients (interaction_id, client_id, linked_id, client_kind,
             occurred_at)
         SELECT $1, c, l, k, $5 FROM unnest($2::uuid[], $3::uuid[], $4::text[]) x (c, l, k)",
    )
    .bind(r.id)
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .bind(r.occurred_at)
    .execute(&mut **tx)
    .await?;
    place_in_timelines(tx, r).await
}

/// Puts the interaction in the timelines of its clients (as `interaction_clients` has them) and
/// of the cases it links to, and takes it out of any other.
pub async fn place_in_timelines(tx: &mut Tx, r: &InteractionRow) -> sqlx::Result<()> {
    let mut owners: Vec<Uuid> =
        sqlx::query_scalar("SELECT client_id FROM interaction_clients WHERE interaction_id = $1")
            .bind(r.id)
            .fetch_all(&mut **tx)
            .await?;
    owners.extend(
        r.links
            .iter()
            .filter(|l| l.kind == LinkKind::Case.as_str())
            .filter_map(|l| l.reference.parse::<Uuid>().ok()),
    );
    timeline::remove(tx, r.id, &owners).await?;
    timeline::place(
        tx,
        r.id,
        TimelineKind::Interaction,
        r.occurred_at,
        Some(r.channel),
        &owners,
    )
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<InteractionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM interactions i WHERE i.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<InteractionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM interactions i WHERE i.id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Writes what may change after the fact.
pub async fn update(tx: &mut Tx, r: &InteractionRow, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE interactions SET subject = $2, body = $3, outcome = $4, duration_seconds = $5,
             links = $6, attachments = $7, recording_reference = $8, updated_by = $9,
             updated_at = now(), version = version + 1
          WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.subject)
    .bind(&r.body)
    .bind(&r.outcome)
    .bind(r.duration_seconds)
    .bind(&r.links)
    .bind(&r.attachments)
    .bind(&r.recording_reference)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    let kept: Vec<i32> = (0..)
        .zip(r.attachments.iter())
        .filter(|(_, a)| a.stored)
        .map(|(i, _)| i)
        .collect();
    sqlx::query(
        "DELETE FROM attachment_contents WHERE interaction_id = $1 AND position <> ALL($2)",
    )
    .bind(r.id)
    .bind(&kept)
    .execute(&mut **tx)
    .await?;
    // Its links may name other cases now.
    place_in_timelines(tx, r).await
}

/// What ListInteractions filters by.
#[derive(Debug, Default)]
pub struct Filter {
    /// A party's or person's id.
    pub client: Option<Uuid>,
    pub channel: Option<Channel>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    /// An e-mail conversation.
    pub thread: Option<Uuid>,
}

/// One page, newest first, after the position (occurred_at, id) of the last one of the page
/// before.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<InteractionRow>> {
    let (at, id) = after.unzip();
    let from = match filter.client {
        Some(_) => {
            "interaction_clients c JOIN interactions i ON i.id = c.interaction_id
              WHERE c.client_id = $1
                AND ($2::timestamptz IS NULL OR (c.occurred_at, c.interaction_id) < ($2, $3))
                AND ($5::timestamptz IS NULL OR c.occurred_at >= $5)
                AND ($6::timestamptz IS NULL OR c.occurred_at < $6)
                AND ($4::text IS NULL OR i.channel = $4)
                AND ($8::uuid IS NULL OR i.thread_id = $8)
              ORDER BY c.occurred_at DESC, c.interaction_id DESC"
        }
        None => {
            "interactions i
              WHERE $1::uuid IS NULL
                AND ($2::timestamptz IS NULL OR (i.occurred_at, i.id) < ($2, $3))
                AND ($5::timestamptz IS NULL OR i.occurred_at >= $5)
                AND ($6::timestamptz IS NULL OR i.occurred_at < $6)
                AND ($4::text IS NULL OR i.channel = $4)
                AND ($8::uuid IS NULL OR i.thread_id = $8)
              ORDER BY i.occurred_at DESC, i.id DESC"
        }
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {from} LIMIT $7"
    )))
    .bind(filter.client)
    .bind(at)
    .bind(id)
    .bind(filter.channel)
    .bind(filter.after)
    .bind(filter.before)
    .bind(limit)
    .bind(filter.thread)
    .fetch_all(conn)
    .await
}

/// Whether `query` has a word to look for (an index can find); `-word` alone has none.
pub async fn searchable(conn: &mut PgConnection, query: &str) -> sqlx::Result<bool> {
    let tree: String =
        sqlx::query_scalar("SELECT querytree(websearch_to_tsquery('crm_search', $1))")
            .bind(query)
            .fetch_one(conn)
            .await?;
    Ok(!matches!(tree.as_str(), "" | "T"))
}

pub async fn get_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<InteractionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM interactions i WHERE i.id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// One page of the interactions whose subject or body matches `query` (web-search syntax, the
/// `crm_search` configuration), newest first, after the position of the page before's last.
pub async fn search(
    conn: &mut PgConnection,
    query: &str,
    client: Option<Uuid>,
    channel: Option<Channel>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<InteractionRow>> {
    let (at, id) = after.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM interactions i
          WHERE i.search @@ websearch_to_tsquery('crm_search', $1)
            AND ($2::uuid IS NULL OR i.id IN (SELECT interaction_id FROM interaction_clients
                                               WHERE client_id = $2))
            AND ($3::text IS NULL OR i.channel = $3)
            AND ($4::timestamptz IS NULL OR (i.occurred_at, i.id) < ($4, $5))
          ORDER BY i.occurred_at DESC, i.id DESC
          LIMIT $6"
    )))
    .bind(query)
    .bind(client)
    .bind(channel)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
