//! The interactions service's refusals: each once, with its code and the reason callers branch on.

crm_kit::refusals! {
    pub enum Refusal {
        /// A note about an interaction is about one of that interaction's clients.
        NoteNotOfInteraction { interaction: uuid::Uuid } = Precondition(
            "NOTE_NOT_OF_INTERACTION",
            "interaction {interaction} was not with the note's party or person"
        ),
    }
}
