//! SQL for parties, bases, persons, employments and custom field definitions. Every write runs in
//! the caller's transaction, so the state change, its idempotency record and its events commit
//! together.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, types::Json};
use uuid::Uuid;

use crate::domain::{Address, Contact, CustomValues, Registration};

/// What a caller can change on a party (everything but identity, status and audit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartyData {
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub legal_name: String,
    pub tax_id: Option<String>,
    pub registration_numbers: Vec<Registration>,
    pub tags: Vec<String>,
    pub custom_fields: CustomValues,
    pub contact_points: Vec<Contact>,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartyRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
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
        self.status == "active"
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
    kind: &str,
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
    pub kind: Option<&'static str>,
    pub base_id: Option<Uuid>,
    pub status: &'static str,
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
        "SELECT {PARTY_COLUMNS}, similarity(p.display_name, $2) AS score
         FROM parties p
         WHERE p.id <> $1 AND p.status = 'active'
           AND (p.display_name % $2
                OR ($3::text IS NOT NULL AND p.tax_id = $3)
                OR p.contact_points @> ANY($4::jsonb[]))
         ORDER BY score DESC, p.id
         LIMIT 100"
    )))
    .bind(party.id)
    .bind(&party.display_name)
    .bind(&party.tax_id)
    .bind(&contacts)
    .fetch_all(&mut **tx)
    .await?;
    Ok(hits.into_iter().map(|h| (h.party, h.score)).collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BaseRow {
    pub id: Uuid,
    pub display_name: String,
    pub description: String,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const BASE_COLUMNS: &str = "id, display_name, description, archived, created_at, updated_at, created_by, updated_by, version";

pub async fn get_base(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_base(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn insert_base(
    tx: &mut Tx,
    id: Uuid,
    display_name: &str,
    description: &str,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bases (id, display_name, description, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(display_name)
    .bind(description)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_base(tx: &mut Tx, base: &BaseRow, subject: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bases SET display_name = $2, description = $3, archived = $4, updated_by = $5,
             updated_at = now(), version = version + 1
         WHERE id = $1",
    )
    .bind(base.id)
    .bind(&base.display_name)
    .bind(&base.description)
    .bind(base.archived)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn list_bases(
    conn: &mut PgConnection,
    include_archived: bool,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<BaseRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {BASE_COLUMNS} FROM bases
         WHERE ($1 OR NOT archived) AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(include_archived)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Adds the membership; false when the party was already in the base.
pub async fn add_to_base(tx: &mut Tx, party_id: Uuid, base_id: Uuid) -> sqlx::Result<bool> {
    let added = sqlx::query(
        "INSERT INTO party_bases (party_id, base_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(party_id)
    .bind(base_id)
    .execute(&mut **tx)
    .await?;
    Ok(added.rows_affected() == 1)
}

pub async fn remove_from_base(tx: &mut Tx, party_id: Uuid, base_id: Uuid) -> sqlx::Result<bool> {
    let removed = sqlx::query("DELETE FROM party_bases WHERE party_id = $1 AND base_id = $2")
        .bind(party_id)
        .bind(base_id)
        .execute(&mut **tx)
        .await?;
    Ok(removed.rows_affected() == 1)
}

/// Moves every base membership of `from` to `to`; returns the bases `to` newly joined.
pub async fn move_bases(tx: &mut Tx, from: Uuid, to: Uuid) -> sqlx::Result<Vec<Uuid>> {
    let moved: Vec<(Uuid,)> = sqlx::query_as(
        "WITH gone AS (DELETE FROM party_bases WHERE party_id = $1 RETURNING base_id)
         INSERT INTO party_bases (party_id, base_id) SELECT $2, base_id FROM gone
         ON CONFLICT DO NOTHING RETURNING base_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<Uuid> = moved.into_iter().map(|(id,)| id).collect();
    ids.sort();
    Ok(ids)
}

/// Moves the employments at organization `from` to `to`; returns the persons concerned.
pub async fn move_employments(
    tx: &mut Tx,
    from: Uuid,
    to: Uuid,
    subject: &str,
) -> sqlx::Result<Vec<Uuid>> {
    let moved: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE employments SET organization_party_id = $2 WHERE organization_party_id = $1
         RETURNING person_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<Uuid> = moved.into_iter().map(|(id,)| id).collect();
    ids.sort();
    ids.dedup();
    sqlx::query(
        "UPDATE persons SET updated_by = $2, updated_at = now(), version = version + 1
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(ids)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnniversaryJson {
    pub label: String,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyJson {
    pub relation: String,
    pub name: String,
    pub birthday: Option<NaiveDate>,
}

/// What a caller can change on a person. Names, private contacts and home addresses of a
/// natural person are stored on their party.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonData {
    pub given_name: String,
    pub family_name: String,
    pub private_contact_points: Vec<Contact>,
    pub home_addresses: Vec<Address>,
    pub gender: String,
    pub profession: String,
    pub education: String,
    pub birthday: Option<NaiveDate>,
    pub name_day: Option<NaiveDate>,
    pub anniversaries: Vec<AnniversaryJson>,
    pub family: Vec<FamilyJson>,
    pub hobbies: Vec<String>,
    pub interests: Vec<String>,
    pub remarks: String,
    pub custom_fields: CustomValues,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    pub id: Uuid,
    pub natural_party_id: Option<Uuid>,
    pub given_name: String,
    pub family_name: String,
    pub private_contact_points: Json<Vec<Contact>>,
    pub home_addresses: Json<Vec<Address>>,
    pub gender: String,
    pub profession: String,
    pub education: String,
    pub birthday: Option<NaiveDate>,
    pub name_day: Option<NaiveDate>,
    pub anniversaries: Json<Vec<AnniversaryJson>>,
    pub family: Json<Vec<FamilyJson>>,
    pub hobbies: Vec<String>,
    pub interests: Vec<String>,
    pub remarks: String,
    pub custom_fields: Json<CustomValues>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

impl PersonRow {
    pub fn data(&self) -> PersonData {
        PersonData {
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            private_contact_points: self.private_contact_points.0.clone(),
            home_addresses: self.home_addresses.0.clone(),
            gender: self.gender.clone(),
            profession: self.profession.clone(),
            education: self.education.clone(),
            birthday: self.birthday,
            name_day: self.name_day,
            anniversaries: self.anniversaries.0.clone(),
            family: self.family.0.clone(),
            hobbies: self.hobbies.clone(),
            interests: self.interests.clone(),
            remarks: self.remarks.clone(),
            custom_fields: self.custom_fields.0.clone(),
        }
    }
}

/// A natural person's shared data comes from their party row.
const PERSON_SELECT: &str = "SELECT pe.id, pe.natural_party_id,
        COALESCE(np.given_name, pe.given_name) AS given_name,
        COALESCE(np.family_name, pe.family_name) AS family_name,
        COALESCE(np.contact_points, pe.private_contact_points) AS private_contact_points,
        COALESCE(np.addresses, pe.home_addresses) AS home_addresses,
        pe.gender, pe.profession, pe.education, pe.birthday, pe.name_day, pe.anniversaries,
        pe.family, pe.hobbies, pe.interests, pe.remarks, pe.custom_fields, pe.created_at,
        pe.updated_at, pe.created_by, pe.updated_by, pe.version
    FROM persons pe LEFT JOIN parties np ON np.id = pe.natural_party_id";

pub async fn get_person(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PersonRow>> {
    sqlx::query_as(AssertSqlSafe(format!("{PERSON_SELECT} WHERE pe.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn lock_person(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<PersonRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{PERSON_SELECT} WHERE pe.id = $1 FOR UPDATE OF pe"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Inserts a person; for a natural person (`natural_party_id` set) the shared data is not stored here.
pub async fn insert_person(
    tx: &mut Tx,
    id: Uuid,
    natural_party_id: Option<Uuid>,
    data: &PersonData,
    subject: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO persons (id, natural_party_id, created_by, updated_by) VALUES ($1, $2, $3, $3)",
    )
    .bind(id)
    .bind(natural_party_id)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    write_person(tx, id, natural_party_id.is_some(), data, subject, false).await
}

/// Writes the person's own columns (and, unless `natural`, the shared ones); `bump` moves the etag.
pub async fn write_person(
    tx: &mut Tx,
    id: Uuid,
    natural: bool,
    data: &PersonData,
    subject: &str,
    bump: bool,
) -> sqlx::Result<()> {
    let empty = PersonData::default();
    let shared = if natural { &empty } else { data };
    sqlx::query(
        "UPDATE persons SET given_name = $2, family_name = $3, private_contact_points = $4,
             home_addresses = $5, gender = $6, profession = $7, education = $8, birthday = $9,
             name_day = $10, anniversaries = $11, family = $12, hobbies = $13, interests = $14,
             remarks = $15, custom_fields = $16, updated_by = $17, updated_at = now(),
             version = version + $18
         WHERE id = $1",
    )
    .bind(id)
    .bind(&shared.given_name)
    .bind(&shared.family_name)
    .bind(Json(&shared.private_contact_points))
    .bind(Json(&shared.home_addresses))
    .bind(&data.gender)
    .bind(&data.profession)
    .bind(&data.education)
    .bind(data.birthday)
    .bind(data.name_day)
    .bind(Json(&data.anniversaries))
    .bind(Json(&data.family))
    .bind(&data.hobbies)
    .bind(&data.interests)
    .bind(&data.remarks)
    .bind(Json(&data.custom_fields))
    .bind(subject)
    .bind(i64::from(bump))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EmploymentRow {
    pub id: Uuid,
    pub person_id: Uuid,
    pub organization_party_id: Uuid,
    pub position: String,
    pub department: String,
    pub supervisor_person_id: Option<Uuid>,
    pub business_contact_points: Json<Vec<Contact>>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
}

/// Employments of `persons`, the current one first, then newest first.
pub async fn employments(
    conn: &mut PgConnection,
    persons: &[Uuid],
) -> sqlx::Result<Vec<EmploymentRow>> {
    sqlx::query_as(
        "SELECT id, person_id, organization_party_id, position, department, supervisor_person_id,
                business_contact_points, start_date, end_date
         FROM employments WHERE person_id = ANY($1)
         ORDER BY person_id, end_date IS NOT NULL, end_date DESC, start_date DESC NULLS LAST, id DESC",
    )
    .bind(persons)
    .fetch_all(conn)
    .await
}

pub async fn insert_employment(tx: &mut Tx, e: &EmploymentRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO employments (id, person_id, organization_party_id, position, department,
             supervisor_person_id, business_contact_points, start_date, end_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.id)
    .bind(e.person_id)
    .bind(e.organization_party_id)
    .bind(&e.position)
    .bind(&e.department)
    .bind(e.supervisor_person_id)
    .bind(&e.business_contact_points)
    .bind(e.start_date)
    .bind(e.end_date)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_employment(tx: &mut Tx, e: &EmploymentRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE employments SET position = $2, department = $3, supervisor_person_id = $4,
             business_contact_points = $5, end_date = $6
         WHERE id = $1",
    )
    .bind(e.id)
    .bind(&e.position)
    .bind(&e.department)
    .bind(e.supervisor_person_id)
    .bind(&e.business_contact_points)
    .bind(e.end_date)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `person` is currently employed by `organization`.
pub async fn is_current_employee(
    conn: &mut PgConnection,
    person: Uuid,
    organization: Uuid,
) -> sqlx::Result<bool> {
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM employments
                        WHERE person_id = $1 AND organization_party_id = $2 AND end_date IS NULL)",
    )
    .bind(person)
    .bind(organization)
    .fetch_one(conn)
    .await?;
    Ok(exists)
}

/// Persons employed by `organization` (now, or ever with `include_former`), by id.
pub async fn list_persons(
    conn: &mut PgConnection,
    organization: Uuid,
    include_former: bool,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PersonRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{PERSON_SELECT}
         WHERE EXISTS (SELECT 1 FROM employments e
                       WHERE e.person_id = pe.id AND e.organization_party_id = $1
                         AND ($2 OR e.end_date IS NULL))
           AND ($3::uuid IS NULL OR pe.id > $3)
         ORDER BY pe.id LIMIT $4"
    )))
    .bind(organization)
    .bind(include_former)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FieldRow {
    pub entity: String,
    pub key: String,
    pub label: String,
    #[sqlx(rename = "type")]
    pub field_type: String,
    pub required: bool,
    pub options: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
}

pub async fn custom_fields(
    conn: &mut PgConnection,
    entity: Option<&str>,
) -> sqlx::Result<Vec<FieldRow>> {
    sqlx::query_as(
        "SELECT entity, key, label, type, required, options, created_at, updated_at, created_by, updated_by
         FROM custom_field_definitions WHERE $1::text IS NULL OR entity = $1
         ORDER BY entity, key",
    )
    .bind(entity)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces a definition; returns the stored type when the key already had another.
pub async fn define_custom_field(
    tx: &mut Tx,
    f: &FieldRow,
    subject: &str,
) -> sqlx::Result<Option<String>> {
    let existing: Option<(String,)> = sqlx::query_as(
        "SELECT type FROM custom_field_definitions WHERE entity = $1 AND key = $2 FOR UPDATE",
    )
    .bind(&f.entity)
    .bind(&f.key)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((stored,)) = existing.filter(|(stored,)| *stored != f.field_type) {
        return Ok(Some(stored));
    }
    sqlx::query(
        "INSERT INTO custom_field_definitions (entity, key, label, type, required, options, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (entity, key) DO UPDATE
         SET label = excluded.label, required = excluded.required, options = excluded.options,
             updated_by = excluded.updated_by, updated_at = now()",
    )
    .bind(&f.entity)
    .bind(&f.key)
    .bind(&f.label)
    .bind(&f.field_type)
    .bind(f.required)
    .bind(&f.options)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(None)
}
