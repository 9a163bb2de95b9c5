//! The topics parties writes: its own, with messages of `crm/parties/v1/events.proto` written in
//! the transaction of the change they describe, and its receipts to data-subject requests.

use crm_kit::privacy;
use crm_proto::crm::parties::v1::{
    EmploymentEnded, PartiesMerged, PartyArchived, PartyCreated, PartyErased, PartyUpdated,
    PersonCreated, PersonErased, PersonUpdated,
};

crm_kit::topic!(
    /// Key: party id.
    pub PARTY = "crm.parties.party.v1", PartyTopic:
        PartyCreated, PartyUpdated, PartyArchived, PartiesMerged, PartyErased
);

crm_kit::topic!(
    /// Key: person id.
    pub PERSON = "crm.parties.person.v1", PersonTopic:
        PersonCreated, PersonUpdated, EmploymentEnded, PersonErased
);

/// The topics parties writes.
pub const TOPICS: &[&str] = &[PARTY.name, PERSON.name, privacy::RECEIPTS.name];
