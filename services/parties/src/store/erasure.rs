//! What an erasure finds and anonymises.

use crm_kit::store::Tx;
use uuid::Uuid;

use crate::domain::PartyKind;

/// The natural person of a consumer party.
pub async fn natural_person_of(tx: &mut Tx, party: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM persons WHERE natural_party_id = $1")
        .bind(party)
        .fetch_optional(&mut **tx)
        .await
}

/// A person's natural party: `None` for an unknown person, `Some(None)` for a B2B person.
pub async fn natural_party_of(tx: &mut Tx, person: Uuid) -> sqlx::Result<Option<Option<Uuid>>> {
    sqlx::query_scalar("SELECT natural_party_id FROM persons WHERE id = $1")
        .bind(person)
        .fetch_optional(&mut **tx)
        .await
}

/// The party's kind, locking the party for its erasure.
pub async fn lock_party_kind(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<PartyKind>> {
    sqlx::query_scalar("SELECT kind FROM parties WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Anonymises a consumer party; false when it was erased already.
pub async fn erase_party(tx: &mut Tx, id: Uuid, by: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE parties SET display_name = 'Erased person', given_name = '', family_name = '',
             legal_name = '', tax_id = NULL, registration_numbers = '[]', tags = '{}',
             custom_fields = '{}', contact_points = '[]', addresses = '[]', status = 'archived',
             erased_at = now(), updated_at = now(), updated_by = $2, version = version + 1
         WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Anonymises a person and the personal parts of their employments; false when erased already.
pub async fn erase_person(tx: &mut Tx, id: Uuid, by: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE persons SET given_name = '', family_name = '', private_contact_points = '[]',
             home_addresses = '[]', gender = 'unspecified', profession = '', education = '',
             birthday = NULL, name_day = NULL, anniversaries = '[]', family = '[]', hobbies = '{}',
             interests = '{}', remarks = '', custom_fields = '{}', erased_at = now(),
             updated_at = now(), updated_by = $2, version = version + 1
         WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE employments SET business_contact_points = '[]', position = '', department = ''
         WHERE person_id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
