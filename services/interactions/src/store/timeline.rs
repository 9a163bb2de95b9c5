//! The timelines: which items each party, person and case has, in reading order, and the facts
//! other services published; who loyalty memberships and consumers' persons belong to.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Channel, TimelineKind};

/// An item of the suite's own (interaction, note, task) placed in `owners`' timelines.
pub async fn place(
    tx: &mut Tx,
    item: Uuid,
    kind: TimelineKind,
    at: DateTime<Utc>,
    channel: Option<Channel>,
    owners: &[Uuid],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at, channel)
         SELECT DISTINCT o, $2, $3, $4, $5 FROM unnest($1::uuid[]) o
         ON CONFLICT DO NOTHING",
    )
    .bind(owners)
    .bind(item)
    .bind(kind)
    .bind(at)
    .bind(channel)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes `item` out of every timeline but `keep`'s.
pub async fn remove(tx: &mut Tx, item: Uuid, keep: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM timeline WHERE item_id = $1 AND owner_id <> ALL($2)")
        .bind(item)
        .bind(keep)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A fact another service published, as a timeline shows it.
#[derive(Debug, Clone)]
pub struct Fact {
    pub id: Uuid,
    pub kind: TimelineKind,
    pub at: DateTime<Utc>,
    pub source: &'static str,
    pub event_type: String,
    pub reference: String,
    pub summary: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Puts `fact` in `owners`' timelines; a fact delivered again changes nothing.
pub async fn record_fact(tx: &mut Tx, fact: &Fact, owners: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at, source, event_type,
             reference, summary, attributes)
         SELECT DISTINCT o, $2, $3, $4, $5, $6, $7, $8, $9 FROM unnest($1::uuid[]) o
         ON CONFLICT DO NOTHING",
    )
    .bind(owners)
    .bind(fact.id)
    .bind(fact.kind)
    .bind(fact.at)
    .bind(fact.source)
    .bind(&fact.event_type)
    .bind(&fact.reference)
    .bind(&fact.summary)
    .bind(Json(&fact.attributes))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Puts every item of `from`'s timeline in `to`'s too; with `take`, `from` loses them.
pub async fn copy(tx: &mut Tx, from: Uuid, to: Uuid, take: bool) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO timeline (owner_id, item_id, kind, occurred_at, channel, source, event_type,
             reference, summary, attributes)
         SELECT $2, item_id, kind, occurred_at, channel, source, event_type, reference, summary,
                attributes
           FROM timeline WHERE owner_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    if take {
        sqlx::query("DELETE FROM timeline WHERE owner_id = $1")
            .bind(from)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Drops `owner`'s timeline.
pub async fn forget_owner(tx: &mut Tx, owner: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM timeline WHERE owner_id = $1")
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Holds off every other writer of `id`'s timeline links (memberships, natural persons) until
/// the transaction ends, so a fact and the link that says whose it is cannot miss each other.
pub async fn lock_owner(tx: &mut Tx, id: Uuid) -> sqlx::Result<()> {
    crm_kit::store::lock_names(tx, "timeline", [id]).await
}

pub async fn membership_party(tx: &mut Tx, membership: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT party_id FROM memberships WHERE membership_id = $1")
        .bind(membership)
        .fetch_optional(&mut **tx)
        .await
}

pub async fn set_membership_party(tx: &mut Tx, membership: Uuid, party: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (membership_id, party_id) VALUES ($1, $2)
         ON CONFLICT (membership_id) DO UPDATE SET party_id = $2",
    )
    .bind(membership)
    .bind(party)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The other id of a consumer: its natural person for its party, and back.
pub async fn linked(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT person_id FROM natural_persons WHERE party_id = $1
         UNION ALL SELECT party_id FROM natural_persons WHERE person_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_natural_person(tx: &mut Tx, party: Uuid, person: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO natural_persons (party_id, person_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(party)
    .bind(person)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One row of a page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub item_id: Uuid,
    pub kind: TimelineKind,
    pub occurred_at: DateTime<Utc>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub reference: Option<String>,
    pub summary: Option<String>,
    pub attributes: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

/// What a page of a timeline is filtered by.
#[derive(Debug)]
pub struct Filter {
    pub owner: Uuid,
    /// Empty: every kind.
    pub kinds: Vec<TimelineKind>,
    pub channel: Option<Channel>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

/// One page, newest first, after the position (occurred_at, item_id) of the page before's last.
pub async fn page(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    let (at, id) = after.unzip();
    sqlx::query_as(
        "SELECT item_id, kind, occurred_at, source, event_type, reference, summary, attributes
           FROM timeline
          WHERE owner_id = $1
            AND ($2::timestamptz IS NULL OR (occurred_at, item_id) < ($2, $3))
            AND (cardinality($4::text[]) = 0 OR kind = ANY($4))
            AND ($5::text IS NULL OR channel = $5)
            AND ($6::timestamptz IS NULL OR occurred_at >= $6)
            AND ($7::timestamptz IS NULL OR occurred_at < $7)
          ORDER BY occurred_at DESC, item_id DESC
          LIMIT $8",
    )
    .bind(filter.owner)
    .bind(at)
    .bind(id)
    .bind(filter.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
    .bind(filter.channel)
    .bind(filter.after)
    .bind(filter.before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
