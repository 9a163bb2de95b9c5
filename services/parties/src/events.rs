//! The topics parties writes: its own, with messages of `crm/parties/v1/events.proto` written in
//! the transaction of the change they describe, and its receipts to data-subject requests.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::parties::v1::{
    Base, BaseChanged, CustomFieldChanged, CustomFieldDefinition, CustomFieldEntity,
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

crm_kit::topic!(
    /// Key: base id.
    pub BASE = "crm.parties.base.v1", BaseTopic: BaseChanged
);

crm_kit::topic!(
    /// Key: `<entity>/<key>`.
    pub CUSTOM_FIELD = "crm.parties.custom_field.v1", CustomFieldTopic: CustomFieldChanged
);

/// The topics parties writes.
pub const TOPICS: &[&str] = &[
    PARTY.name,
    PERSON.name,
    BASE.name,
    CUSTOM_FIELD.name,
    privacy::RECEIPTS.name,
];

pub async fn base_changed(tx: &mut Tx, base: &Base, change: &str) -> Result<()> {
    let event = BaseChanged {
        base: Some(base.clone()),
        change: change.to_owned(),
    };
    Ok(BASE.enqueue(tx, &base.id, &event).await?)
}

pub async fn custom_field_changed(tx: &mut Tx, field: &CustomFieldDefinition) -> Result<()> {
    let entity = match field.entity() {
        CustomFieldEntity::Person => "person",
        _ => "party",
    };
    let event = CustomFieldChanged {
        field: Some(field.clone()),
    };
    let key = format!("{entity}/{}", field.key);
    Ok(CUSTOM_FIELD.enqueue(tx, key, &event).await?)
}
