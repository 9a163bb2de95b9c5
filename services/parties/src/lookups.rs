//! Loads every use case shares: resources locked for a change or read for an answer, checked to
//! be usable.

use crm_kit::{
    error::{Result, ServiceError},
    store::{self as kit_store},
};
use crm_proto::crm::parties::v1::{Base, CustomFieldDefinition, Party, Person};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    convert::{base_to_proto, field_to_proto, party_to_proto, person_to_proto},
    domain::{FieldEntity, PartyKind},
    error::Refusal,
    store::{self, BaseRow, PartyRow},
};

pub(crate) async fn definitions(
    conn: &mut PgConnection,
    entity: FieldEntity,
) -> Result<Vec<CustomFieldDefinition>> {
    Ok(store::custom_fields(conn, Some(entity))
        .await?
        .iter()
        .map(field_to_proto)
        .collect())
}

pub(crate) fn require_active(party: &PartyRow) -> Result<()> {
    if party.is_active() {
        return Ok(());
    }
    let id = party.id;
    Err(match party.merged_into {
        Some(survivor) => Refusal::PartyMerged { id, survivor },
        None => Refusal::PartyArchived { id },
    }
    .into())
}

pub(crate) async fn locked_party(tx: &mut kit_store::Tx, id: Uuid) -> Result<PartyRow> {
    store::lock_party(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Party", id))
}

pub(crate) async fn party_in(conn: &mut PgConnection, id: Uuid) -> Result<Party> {
    let row = store::get_party(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Party", id))?;
    Ok(party_to_proto(&row))
}

pub(crate) async fn base_in(conn: &mut PgConnection, id: Uuid) -> Result<Base> {
    let row = store::get_base(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Base", id))?;
    Ok(base_to_proto(&row))
}

pub(crate) async fn person_in(conn: &mut PgConnection, id: Uuid) -> Result<Person> {
    let row = store::get_person(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Person", id))?;
    let employments = store::employments(conn, &[id]).await?;
    Ok(person_to_proto(&row, &employments))
}

/// A base that exists and is not archived, locked against a concurrent archive.
pub(crate) async fn open_base(tx: &mut kit_store::Tx, id: Uuid) -> Result<BaseRow> {
    let base = store::lock_base(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Base", id))?;
    if base.archived {
        return Err(Refusal::BaseArchived { id }.into());
    }
    Ok(base)
}

/// An active organization, locked: persons can only start working for one of those.
pub(crate) async fn require_employer(tx: &mut kit_store::Tx, organization_id: Uuid) -> Result<()> {
    let organization = locked_party(tx, organization_id).await?;
    require_active(&organization)?;
    if organization.kind != PartyKind::Organization {
        let id = organization_id;
        return Err(Refusal::NotAnOrganization { id }.into());
    }
    Ok(())
}
