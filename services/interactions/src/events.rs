//! The topics interactions writes, with messages of `crm/interactions/v1/events.proto`: ids and
//! facts, not the words of a contact or a note.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::interactions::v1::{
    Interaction, InteractionRecorded, InteractionUpdated, Note, NoteChanged, Participant, Task,
    TaskChanged, TaskOverdue,
};

crm_kit::topic!(
    /// Key: interaction id.
    pub INTERACTION = "crm.interactions.interaction.v1", InteractionTopic: InteractionRecorded, InteractionUpdated
);

crm_kit::topic!(
    /// Key: note id.
    pub NOTE = "crm.interactions.note.v1", NoteTopic: NoteChanged
);

crm_kit::topic!(
    /// Key: task id.
    pub TASK = "crm.interactions.task.v1", TaskTopic: TaskChanged, TaskOverdue
);

/// The topics interactions writes.
pub const TOPICS: &[&str] = &[
    INTERACTION.name,
    NOTE.name,
    TASK.name,
    privacy::RECEIPTS.name,
];

/// A task without its words (title and description): they may name the client.
fn task_facts(task: &Task) -> Task {
    Task {
        title: String::new(),
        description: String::new(),
        ..task.clone()
    }
}

pub async fn task_changed(tx: &mut Tx, task: &Task, change: &str) -> Result<()> {
    let event = TaskChanged {
        task: Some(task_facts(task)),
        change: change.to_owned(),
    };
    Ok(TASK.enqueue(tx, &task.id, &event).await?)
}

pub async fn task_overdue(tx: &mut Tx, task: &Task) -> Result<()> {
    let event = TaskOverdue {
        task: Some(task_facts(task)),
    };
    Ok(TASK.enqueue(tx, &task.id, &event).await?)
}

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
        message_id: String::new(),
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
