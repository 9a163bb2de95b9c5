//! Consent's rules, free of I/O: its vocabularies (each stored as text and named by a proto enum,
//! declared once), what a subject is, when a consent counts, and the life of a data-subject
//! request.

mod requests;
mod state;

pub use requests::{
    DEADLINE_DAYS, MAX_EXTENSION_DAYS, due_at, extension_fits, kind_names_purposes,
};
pub use state::{Latest, current_status};

use crm_kit::{error::FieldViolations, request::uuid};
use crm_proto::crm::{common::v1::PrivacyRequestType, consent::v1 as proto};
use uuid::Uuid;

/// The actor of steps the service takes on its own (answers, retries, completion, expiry).
pub const SYSTEM_ACTOR: &str = "crm-consent";

crm_kit::text_enum! {
    /// Why the suite may process data for a purpose (GDPR art. 6).
    pub enum LegalBasis: proto::LegalBasis {
        Consent = "consent",
        Contract = "contract",
        LegitimateInterest = "legitimate_interest",
        LegalObligation = "legal_obligation",
    }
}

crm_kit::text_enum! {
    /// How a subject told us.
    pub enum Channel: proto::Channel {
        WebForm = "web_form",
        Paper = "paper",
        Call = "call",
        Email = "email",
        InStore = "in_store",
    }
}

crm_kit::text_enum! {
    /// Whom a consent or a request is about: a party, or a person employed by one.
    pub enum SubjectKind: proto::SubjectKind {
        Party = "party",
        Person = "person",
    }
}

crm_kit::text_enum! {
    /// What a consent record says: the subject granted or withdrew.
    pub enum RecordStatus: proto::ConsentStatus {
        Granted = "granted",
        Withdrawn = "withdrawn",
    }
}

crm_kit::text_enum! {
    /// What a data-subject request asks for (GDPR art. 15–21).
    pub enum RequestType: PrivacyRequestType {
        Access = "access",
        Portability = "portability",
        Erasure = "erasure",
        Rectification = "rectification",
        Restriction = "restriction",
        Objection = "objection",
    }
}

crm_kit::text_enum! {
    /// Where a data-subject request is: received → verified → in progress → completed, or
    /// rejected (identity not verified), or cancelled.
    pub enum RequestStatus: proto::SubjectRequestStatus {
        Received = "received",
        Verified = "verified",
        InProgress = "in_progress",
        Completed = "completed",
        Rejected = "rejected",
        Cancelled = "cancelled",
    }
}

crm_kit::text_enum! {
    /// The outcome of checking the subject's identity.
    pub enum Verification: proto::VerificationState {
        Pending = "pending",
        Verified = "verified",
        Failed = "failed",
    }
}

/// A party or person, as every request names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: Uuid,
}

impl Subject {
    /// Reads a required `subject` field, naming what is wrong with it.
    pub fn parse(subject: Option<&proto::Subject>, v: &mut FieldViolations) -> Self {
        let subject = subject.cloned().unwrap_or_default();
        let kind = SubjectKind::from_proto(subject.kind()).unwrap_or_else(|| {
            v.add("subject.kind", "must be PARTY or PERSON");
            SubjectKind::Party
        });
        Self {
            kind,
            id: uuid(&subject.id, "subject.id", v),
        }
    }
}
