//! Parties: the rows, their lists and searches, and duplicate candidates.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, types::Json};
use uuid::Uuid;

use crate::domain::{
    Address, Contact, CustomValues, PartyData, PartyKind, PartyStatus, Registration,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartyRow {
    pub id: Uuid,
    pub kind: PartyKind,
    pub status: PartyStatus,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub legal_name: String,
    pub tax_id: Option<String>,
    pub registration_numbers: Json<Vec<Registration>>,
    pub tags: Vec<String>,
    pub custom_fields: Json<CustomValues>,
    pub contact_points: Json<Vec<Contact>>,
    pub addresses: Json<Vec<Address>>,
    pub merged_into: Option<Uuid>,
    pub base_ids: Vec<Uuid>,
    pub person_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

impl PartyRow {
    pub fn data(&self) -> PartyData {
        PartyData {
            display_name: self.display_name.clone(),
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            legal_name: self.legal_name.clone(),
            tax_id: self.tax_id.clone(),
            registration_numbers: self.registration_numbers.0.clone(),
            tags: self.tags.clone(),
            custom_fields: self.custom_fields.0.clone(),
            contact_points: self.contact_points.0.clone(),
            addresses: self.addresses.0.clone(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == PartyStatus::Active
    }
}

const PARTY_COLUMNS: &str = "p.id, p.kind, p.status, p.display_name, p.given_name, p.family_name,
    p.legal_name, p.tax_id, p.registration_numbers, p.tags, p.custom_fields, p.contact_points,
    p.addresses, p.merged_into, p.created_at, p.updated_at, p.created_by, p.updated_by, p.version,
    ARRAY(SELECT pb.base_id FROM party_bases pb WHERE pb.party_id = p.id ORDER BY pb.base_id) AS base_ids,
    (SELECT pe.id FROM persons pe WHERE pe.natural_party_id = p.id) AS person_id";

pub async fn get_party(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PartyRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PARTY_COLUMNS} FROM parties p WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Reads the party and locks it until the transaction ends, so concurrent writers serialise.
pub async fn lock_party(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<PartyRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PARTY_COLUMNS} FROM parties p WHERE p.id = $1 FOR UPDATE OF p"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn insert_party(
    tx: &mut Tx,
    id: Uuid,
    kind: PartyKind,
    data: &PartyData,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO parties (id, kind, display_name, given_name, family_name, legal_name, tax_id,
             registration_numbers, tags, custom_fields, contact_points, addresses, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(id)
    .bind(kind)
    .bind(&data.display_name)
    .bind(&data.given_name)
    .bind(&data.family_name)
    .bind(&data.legal_name)
    .bind(&data.tax_id)
    .bind(Json(&data.registration_numbers))
    .bind(&data.tags)
    .bind(Json(&data.custom_fields))
    .bind(Json(&data.contact_points))
    .bind(Json(&data.addresses))
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the whole changeable state and moves the version (and so the etag) on.
pub async fn update_party(
    tx: &mut Tx,
    id: Uuid,
    data: &PartyData,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE parties SET display_name = $2, given_name = $3, family_name = $4, legal_name = $5,
             tax_id = $6, registration_numbers = $7, tags = $8, custom_fields = $9,
             contact_points = $10, addresses = $11, updated_by = $12, updated_at = now(),
             version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(&data.display_name)
    .bind(&data.given_name)
    .bind(&data.family_name)
    .bind(&data.legal_name)
    .bind(&data.tax_id)
    .bind(Json(&data.registration_numbers))
    .bind(&data.tags)
    .bind(Json(&data.custom_fields))
    .bind(Json(&data.contact_points))
    .bind(Json(&data.addresses))
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the version on after a change kept in another table (base membership).
pub async fn touch_party(tx: &mut Tx, id: Uuid, subject: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE parties SET updated_by = $2, updated_at = now(), version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn archive_party(
    tx: &mut Tx,
    id: Uuid,
    merged_into: Option<Uuid>,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE parties SET status = 'archived', merged_into = $2, updated_by = $3,
             updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(merged_into)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Filters of ListParties, hashed into its page tokens.
#[derive(Debug, Serialize)]
pub struct PartyFilter {
    pub kind: Option<PartyKind>,
    pub base_id: Option<Uuid>,
    pub status: PartyStatus,
    pub tag: Option<String>,
}

pub async fn list_parties(
    conn: &mut PgConnection,
    filter: &PartyFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PartyRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {PARTY_COLUMNS} FROM parties p WHERE p.status = "
    ));
    q.push_bind(filter.status);
    if let Some(kind) = filter.kind {
        q.push(" AND p.kind = ").push_bind(kind);
    }
    if let Some(base_id) = filter.base_id {
        q.push(
            " AND EXISTS (SELECT 1 FROM party_bases pb WHERE pb.party_id = p.id AND pb.base_id = ",
        )
        .push_bind(base_id)
        .push(")");
    }
    if let Some(tag) = &filter.tag {
        q.push(" AND p.tags @> ARRAY[")
            .push_bind(tag.clone())
            .push("]::text[]");
    }
    if let Some(after) = after {
        q.push(" AND p.id > ").push_bind(after);
    }
    q.push(" ORDER BY p.id LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(conn).await
}

/// Criteria of SearchParties, hashed into its page tokens.
#[derive(Debug, Serialize)]
pub struct PartySearch {
    pub name: Option<String>,
    pub tax_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub include_archived: bool,
}

/// Keyset position in search results: name score (when searching by name) and id.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SearchPosition {
    pub score: f32,
    pub id: Uuid,
}

/// Matches all given criteria; by name with trigram word similarity, best first.
pub async fn search_parties(
    conn: &mut PgConnection,
    search: &PartySearch,
    after: Option<SearchPosition>,
    limit: i64,
) -> sqlx::Result<Vec<(PartyRow, f32)>> {
    #[derive(sqlx::FromRow)]
    struct Hit {
        #[sqlx(flatten)]
        party: PartyRow,
        score: f32,
    }
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT * FROM (SELECT {PARTY_COLUMNS}, "));
    match &search.name {
        Some(name) => q
            .push("word_similarity(")
            .push_bind(name.clone())
            .push(", p.display_name)"),
        None => q.push("0::real"),
    };
    q.push(" AS score FROM parties p WHERE true");
    if let Some(name) = &search.name {
        // `<%` uses the trigram index; the threshold is pg_trgm.word_similarity_threshold (0.6).
        q.push(" AND ")
            .push_bind(name.clone())
            .push(" <% p.display_name");
    }
    if let Some(tax_id) = &search.tax_id {
        q.push(" AND p.tax_id = ").push_bind(tax_id.clone());
    }
    for (kind, value) in [("email", &search.email), ("phone", &search.phone)] {
        if let Some(value) = value {
            q.push(" AND p.contact_points @> ")
                .push_bind(serde_json::json!([{ "kind": kind, "value": value }]));
        }
    }
    if !search.include_archived {
        q.push(" AND p.status = 'active'");
    }
    q.push(") hits WHERE true");
    if let Some(after) = after {
        q.push(" AND (score < ")
            .push_bind(after.score)
            .push(" OR (score = ")
            .push_bind(after.score)
            .push(" AND id > ")
            .push_bind(after.id)
            .push("))");
    }
    q.push(" ORDER BY score DESC, id LIMIT ").push_bind(limit);
    let hits: Vec<Hit> = q.build_query_as().fetch_all(conn).await?;
    Ok(hits.into_iter().map(|h| (h.party, h.score)).collect())
}

/// Active parties other than `party` that share its tax id, e-mail or phone, or whose name is at
/// least `min_similarity` alike, with the similarity of their names.
pub async fn duplicate_candidates(
    tx: &mut Tx,
    party: &PartyRow,
    min_similarity: f32,
    after: Option<&SearchPosition>,
    limit: i64,
) -> sqlx::Result<Vec<(PartyRow, f32)>> {
    #[derive(sqlx::FromRow)]
    struct Hit {
        #[sqlx(flatten)]
        party: PartyRow,
        score: f32,
    }
    // `%` uses the trigram index with this threshold, for this transaction only.
    sqlx::query("SELECT set_config('pg_trgm.similarity_threshold', $1, true)")
        .bind(min_similarity.to_string())
        .execute(&mut **tx)
        .await?;
    let contacts: Vec<serde_json::Value> = party
        .contact_points
        .0
        .iter()
        .filter(|c| c.kind == "email" || c.kind == "phone")
        .map(|c| serde_json::json!([{ "kind": c.kind, "value": c.value }]))
        .collect();
    let hits: Vec<Hit> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT * FROM (
             SELECT {PARTY_COLUMNS}, similarity(p.display_name, $2) AS score
             FROM parties p
             WHERE p.id <> $1 AND p.status = 'active'
               AND (p.display_name % $2
                    OR ($3::text IS NOT NULL AND p.tax_id = $3)
                    OR p.contact_points @> ANY($4::jsonb[]))
         ) c
         WHERE $5::real IS NULL OR c.score < $5 OR (c.score = $5 AND c.id > $6)
         ORDER BY c.score DESC, c.id
         LIMIT $7"
    )))
    .bind(party.id)
    .bind(&party.display_name)
    .bind(&party.tax_id)
    .bind(&contacts)
    .bind(after.map(|a| a.score))
    .bind(after.map(|a| a.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(hits.into_iter().map(|h| (h.party, h.score)).collect())
}
