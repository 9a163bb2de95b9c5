//! The cases service's refusals: each once, with its code and the reason callers branch on.

use chrono::NaiveDate;
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
        /// Accepted, rejected and expired offers stay as they are.
        OfferClosed { id: Uuid, status: &'static str } =
            Precondition("OFFER_CLOSED", "offer {id} is {status}; nothing more happens to it"),
        /// What the client saw does not change: a new version does.
        OfferNotDraft { id: Uuid, status: &'static str } =
            Precondition("OFFER_NOT_DRAFT", "offer {id} is {status}; only a draft is edited or sent (AddOfferVersion makes a new draft)"),
        OfferNotSent { id: Uuid, status: &'static str } =
            Precondition("OFFER_NOT_SENT", "offer {id} is {status}; send it before the client decides"),
        OfferExpired { id: Uuid, valid_until: NaiveDate } =
            Precondition("OFFER_EXPIRED", "offer {id} was valid until {valid_until}"),
        /// The client accepts what is current.
        NotCurrentVersion { id: Uuid, version: i32, current: i32 } =
            Precondition("OFFER_VERSION_NOT_CURRENT", "version {version} of offer {id} is not the current one ({current})"),
        /// A ticket's status does not allow the step.
        TicketStep { id: Uuid, status: &'static str, step: &'static str } =
            Precondition("TICKET_STATUS", "ticket {id} is {status}; it cannot {step}"),
        /// One default SLA policy: the one without conditions.
        DefaultPolicyExists =
            AlreadyExists("DEFAULT_SLA_POLICY_EXISTS", "a default SLA policy (one without conditions) exists already"),
        RankTaken { rank: i32 } =
            AlreadyExists("SLA_RANK_TAKEN", "an SLA policy has rank {rank} already; ranks state the order"),
        TooManyVersions { id: Uuid, most: usize } =
            Precondition("OFFER_VERSIONS_EXHAUSTED", "offer {id} has {most} versions, the most it may have; make a new offer"),
    }
}
