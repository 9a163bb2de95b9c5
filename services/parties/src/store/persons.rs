//! Persons (a natural person's shared data lives on their party) and their employments.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Address, AnniversaryJson, Contact, CustomValues, FamilyJson, PersonData};

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
    pub owner: String,
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
            owner: self.owner.clone(),
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
        pe.family, pe.hobbies, pe.interests, pe.remarks, pe.custom_fields, pe.owner, pe.created_at,
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
             version = version + $18, owner = $19
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
    .bind(&data.owner)
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

/// What SearchPersons narrows to; every given criterion must hold.
#[derive(Debug, Clone, Serialize)]
pub struct PersonSearch {
    /// A LIKE pattern (metacharacters escaped) for "given family".
    pub name: Option<String>,
    /// A contact point as stored, e.g. `[{"kind":"email","value":"a@b.pl"}]`.
    pub email: Option<serde_json::Value>,
    pub phone: Option<serde_json::Value>,
    pub organization: Option<Uuid>,
    pub include_former: bool,
}

/// Persons matching `search`, in id order after `after`. A contact matches among private contact
/// points (a natural person's live on its party) and the business ones of any employment.
pub async fn search_persons(
    conn: &mut PgConnection,
    search: &PersonSearch,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PersonRow>> {
    const HAS_CONTACT: &str = "(COALESCE(np.contact_points, pe.private_contact_points) @> {c}
        OR EXISTS (SELECT 1 FROM employments e WHERE e.person_id = pe.id AND e.business_contact_points @> {c}))";
    sqlx::query_as(AssertSqlSafe(format!(
        "{PERSON_SELECT}
         WHERE ($1::text IS NULL
                OR COALESCE(np.given_name, pe.given_name) || ' ' || COALESCE(np.family_name, pe.family_name)
                   ILIKE $1)
           AND ($2::jsonb IS NULL OR {email})
           AND ($3::jsonb IS NULL OR {phone})
           AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM employments e
                WHERE e.person_id = pe.id AND e.organization_party_id = $4 AND ($5 OR e.end_date IS NULL)))
           AND pe.erased_at IS NULL
           AND ($6::uuid IS NULL OR pe.id > $6)
         ORDER BY pe.id LIMIT $7",
        email = HAS_CONTACT.replace("{c}", "$2"),
        phone = HAS_CONTACT.replace("{c}", "$3"),
    )))
    .bind(&search.name)
    .bind(&search.email)
    .bind(&search.phone)
    .bind(search.organization)
    .bind(search.include_former)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
