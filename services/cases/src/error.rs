//! The cases service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

crm_kit::refusals! {
    pub enum Refusal {
        /// A closed case moves only when reopened.
        CaseClosed { id: Uuid } = Precondition("CASE_CLOSED", "case {id} is closed; reopen it to move it"),
        /// Closed phases are reached by CloseCase.
        CloseToClose { phase: String } =
            Precondition("CLOSE_TO_CLOSE", "phase {phase:?} closes the case: use CloseCase"),
        /// Closing twice.
        AlreadyClosed { id: Uuid } = Precondition("CASE_CLOSED", "case {id} is closed already"),
    }
}
