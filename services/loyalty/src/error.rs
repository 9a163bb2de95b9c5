//! The loyalty service's refusals: each once, with its code and the reason callers branch on.
//! (Coupon validation reasons are the one open set: `coupons::refusal` names them, and a refused
//! redemption carries the reason it was refused for.)

use uuid::Uuid;

use crate::domain::{CardStatus, HoldStatus, MembershipStatus, ProgramStatus};

crm_kit::refusals! {
    pub enum Refusal {
        /// A client id (operation, hold, redemption) names one request only.
        IdReused { id: String } =
            AlreadyExists("REQUEST_ID_REUSED", "the id {id:?} was already used"),
        JobIdReused { job_id: String } = AlreadyExists(
            "REQUEST_ID_REUSED",
            "job_id {job_id:?} was already used for a different job"
        ),
        AlreadyEnrolled { party: Uuid, program: Uuid } = AlreadyExists(
            "ALREADY_ENROLLED",
            "party {party} is already a member of program {program}"
        ),
        /// Only an active program takes members and points.
        ProgramNotActive { id: Uuid, status: ProgramStatus } =
            Precondition("PROGRAM_NOT_ACTIVE", "program {id} is {status}"),
        /// Only an active membership earns and spends.
        MembershipNotActive { id: Uuid, status: MembershipStatus } =
            Precondition("MEMBERSHIP_NOT_ACTIVE", "membership {id} is {status}"),
        MembershipLeft { id: Uuid } =
            Precondition("MEMBERSHIP_LEFT", "membership {id} has left the program"),
        PartyArchived { party: Uuid } = Precondition("PARTY_ARCHIVED", "party {party} is archived"),
        /// Enrolment needs the party's consent to the loyalty program purpose.
        ConsentRequired { party: Uuid, purpose: &'static str, why: String } = Precondition(
            "CONSENT_REQUIRED",
            "party {party} has no granted consent to the purpose {purpose} ({why})"
        ),
        /// A B2B person account is for someone the member organization employs.
        PersonNotEmployed { person: Uuid, organization: Uuid } = Precondition(
            "PERSON_NOT_EMPLOYED",
            "person {person} does not work for the member organization {organization}"
        ),
        InsufficientPoints { needed: i64, available: i64 } = Precondition(
            "INSUFFICIENT_POINTS",
            "{needed} points needed, {available} available"
        ),
        CannotReverseAReversal =
            Precondition("CANNOT_REVERSE_A_REVERSAL", "a reversal cannot be reversed"),
        AlreadyReversed { operation: String, reversal: Uuid } = Precondition(
            "ALREADY_REVERSED",
            "operation {operation} was already reversed by {reversal}"
        ),
        /// A point type's reversal floor bounds how far a reversal takes a balance.
        ReversalBelowFloor { points: i64, floor: i64 } = Precondition(
            "REVERSAL_BELOW_FLOOR",
            "reversing {points} points would take the balance below the floor of {floor}"
        ),
        NoSettleOperationType { code: String } = Precondition(
            "NO_SETTLE_OPERATION_TYPE",
            "the program has no SETTLE operation type {code:?} to capture with"
        ),
        HoldExpired { hold: String } = Precondition("HOLD_EXPIRED", "hold {hold} is expired"),
        HoldCaptured { hold: String } = Precondition("HOLD_CAPTURED", "hold {hold} is captured"),
        HoldVoided { hold: String, status: HoldStatus } =
            Precondition("HOLD_VOIDED", "hold {hold} is {status}"),
        CardNotOfMember = Precondition(
            "CARD_NOT_OF_MEMBER",
            "the card does not belong to this membership"
        ),
        CardNotUsable { status: CardStatus } =
            Precondition("CARD_NOT_USABLE", "the card is {status}"),
        BadParentCard = Precondition(
            "BAD_PARENT_CARD",
            "a parent card must be an open, top-level card of the same membership"
        ),
        CardClosed { id: Uuid } = Precondition("CARD_CLOSED", "card {id} is closed"),
        /// Cards move issued → active → blocked → closed, never back.
        CardStatusChange { from: CardStatus, to: CardStatus } =
            Precondition("CARD_STATUS", "a {from} card cannot become {to}"),
        CouponUsedUp { code: String } =
            Precondition("COUPON_USED_UP", "coupon {code} has no uses left"),
        /// Qualifying points already counted stay counted: a used point type keeps its flag.
        QualifyingFixed { code: String } = Precondition(
            "POINT_TYPE_IN_USE",
            "point type {code:?} has entries: whether it qualifies for tiers can no longer change"
        ),
        /// A completed bulk accrual has nothing left to stop.
        BulkAccrualCompleted { job_id: String } =
            Precondition("BULK_ACCRUAL_COMPLETED", "bulk accrual {job_id:?} has completed"),
    }
}

impl Refusal {
    /// The party's `loyalty_program` consent does not count, and `why`.
    pub fn consent_required(party: Uuid, why: impl Into<String>) -> Self {
        Self::ConsentRequired {
            party,
            purpose: crate::domain::ENROLMENT_PURPOSE,
            why: why.into(),
        }
    }
}

/// A unique violation on inserting a row under a client id: the id names another request.
pub fn id_used(error: sqlx::Error, id: &str) -> crm_kit::error::ServiceError {
    if crm_kit::store::unique_violation(&error).is_some() {
        Refusal::IdReused { id: id.to_owned() }.into()
    } else {
        error.into()
    }
}
