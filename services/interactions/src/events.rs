//! The topics interactions writes, with messages of `crm/interactions/v1/events.proto`: ids and
//! facts, not the words of a contact or a note.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::interactions::v1::{
    Interaction, InteractionRecorded, InteractionUpdated, Note, NoteChanged, Participant,
};

crm_kit::topic!(
    /// Key: interaction id.
    pub INTERACTION = "crm.interactions.interaction.v1", InteractionTopic: InteractionRecorded, InteractionUpdated
);

crm_kit::topic!(
    /// Key: note id.
    pub NOTE = "crm.interactions.note.v1", NoteTopic: NoteChanged
);

/// The topics interactions writes.
pub const TOPICS: &[&str] = &[INTERACTION.name, NOTE.name, privacy::RECEIPTS.name];

/// The interaction without its words and addresses: what downstream systems need to know that a
/// contact happened (when, how, with whom by id, about what by link).
fn facts(interaction: &Interaction) -> Interaction {
    Interaction {
        subject: String::new(),
        body: String::new(),
        outcome: String::new(),
        participants: interaction
            .participants
            .iter()
            .map(|p| Participant {
                address: String::new(),
                display_name: String::new(),
                ..p.clone()
            })
            .collect(),
        attachments: Vec::new(),
        dialled_number: String::new(),
        recording_reference: String::new(),
        ..interaction.clone()
    }
}

pub async fn interaction_recorded(tx: &mut Tx, interaction: &Interaction) -> Result<()> {
    let event = InteractionRecorded {
        interaction: Some(facts(interaction)),
    };
    Ok(INTERACTION.enqueue(tx, &interaction.id, &event).await?)
}

pub async fn interaction_updated(tx: &mut Tx, interaction: &Interaction) -> Result<()> {
    let event = InteractionUpdated {
        interaction: Some(facts(interaction)),
    };
    Ok(INTERACTION.enqueue(tx, &interaction.id, &event).await?)
}

pub async fn note_changed(tx: &mut Tx, note: &Note, change: &str) -> Result<()> {
    let event = NoteChanged {
        note: Some(Note {
            text: String::new(),
            ..note.clone()
        }),
        change: change.to_owned(),
    };
    Ok(NOTE.enqueue(tx, &note.id, &event).await?)
}
