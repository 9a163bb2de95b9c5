//! The interactions service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

use crate::domain::TaskStatus;

crm_kit::refusals! {
    pub enum Refusal {
        /// Done and cancelled tasks are final.
        TaskClosed { id: Uuid, status: TaskStatus } =
            Precondition("TASK_CLOSED", "task {id} is {status}"),
        /// A note about an interaction is about one of that interaction's clients.
        NoteNotOfInteraction { interaction: Uuid } = Precondition(
            "NOTE_NOT_OF_INTERACTION",
            "interaction {interaction} was not with the note's party or person"
        ),
        /// The history is the clients': an e-mail none of whose addresses is one of theirs stays out.
        NoKnownClient = Precondition(
            "NO_KNOWN_CLIENT",
            "no address of the message is one of a single known party or person"
        ),
        /// A client erased since the write was checked with parties.
        SubjectErased { id: Uuid } = Precondition(
            "SUBJECT_ERASED",
            "{id} was erased; nothing more is recorded about them"
        ),
        /// One connection per folder of an account.
        MailboxConnected { username: String, folder: String, host: String } = AlreadyExists(
            "MAILBOX_CONNECTED",
            "folder {folder:?} of {username} at {host} is connected already"
        ),
        /// Only imported e-mails' attachments within the size limit keep their content.
        ContentNotKept { interaction: Uuid, index: i32 } = Precondition(
            "CONTENT_NOT_KEPT",
            "the content of attachment {index} of interaction {interaction} is not kept here"
        ),
    }
}
