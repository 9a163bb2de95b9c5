//! The topics of the parties service. Payloads are the messages of `crm/parties/v1/events.proto`,
//! written to the outbox in the transaction of the change they describe.

use crm_kit::{outbox, store::Tx};
use uuid::Uuid;

/// Key: party id. PartyCreated, PartyUpdated, PartyArchived, PartiesMerged, PartyErased.
pub const PARTY_TOPIC: &str = "crm.parties.party.v1";
/// Key: person id. PersonCreated, PersonUpdated, EmploymentEnded, PersonErased.
pub const PERSON_TOPIC: &str = "crm.parties.person.v1";
/// The topics parties writes: its own, and its receipts to data-subject requests.
pub const TOPICS: [&str; 3] = [PARTY_TOPIC, PERSON_TOPIC, crm_kit::privacy::RECEIPT_TOPIC];

pub async fn party<M: prost::Name>(tx: &mut Tx, party_id: Uuid, event: &M) -> sqlx::Result<()> {
    outbox::enqueue(tx, PARTY_TOPIC, party_id, event)
        .await
        .map(drop)
}

pub async fn person<M: prost::Name>(tx: &mut Tx, person_id: Uuid, event: &M) -> sqlx::Result<()> {
    outbox::enqueue(tx, PERSON_TOPIC, person_id, event)
        .await
        .map(drop)
}
