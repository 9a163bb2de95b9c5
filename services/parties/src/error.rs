//! The parties service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

use crate::domain::PartyKind;

crm_kit::refusals! {
    pub enum Refusal {
        /// Base names are unique.
        BaseNameTaken { name: String } =
            AlreadyExists("BASE_NAME_TAKEN", "a base named {name:?} already exists"),
        /// Archived (or merged) parties are read-only.
        PartyArchived { id: Uuid } = Precondition("PARTY_ARCHIVED", "party {id} is archived"),
        /// A merged party lives on in its survivor.
        PartyMerged { id: Uuid, survivor: Uuid } =
            Precondition("PARTY_ARCHIVED", "party {id} was merged into {survivor}"),
        BaseArchived { id: Uuid } = Precondition("BASE_ARCHIVED", "base {id} is archived"),
        /// Persons are employed by organizations.
        NotAnOrganization { id: Uuid } = Precondition(
            "NOT_AN_ORGANIZATION",
            "party {id} is a natural person; persons are employed by organizations"
        ),
        /// An organization merges into an organization, a person into a person.
        PartyKindMismatch { merged: PartyKind, survivor: PartyKind } =
            Precondition("PARTY_KIND_MISMATCH", "cannot merge a {merged} into a {survivor}"),
        /// A new employment starts only when none is current at that organization.
        AlreadyEmployed { id: Uuid, organization: Uuid } = Precondition(
            "ALREADY_EMPLOYED",
            "person {id} already works for {organization}; change the current employment with employment.* paths"
        ),
        NoCurrentEmployment { id: Uuid, to: &'static str } = Precondition(
            "NO_CURRENT_EMPLOYMENT",
            "person {id} has no current employment to {to}"
        ),
        SupervisorNotEmployed { supervisor: Uuid, organization: Uuid } = Precondition(
            "SUPERVISOR_NOT_EMPLOYED",
            "supervisor {supervisor} is not another current employee of organization {organization}"
        ),
        /// Stored values depend on a field's type.
        CustomFieldTypeFixed { entity: String, key: String, stored: String } = Precondition(
            "CUSTOM_FIELD_TYPE_FIXED",
            "{entity} field {key:?} is of type {stored}; a field's type cannot change"
        ),
    }
}
