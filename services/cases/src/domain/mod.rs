//! The cases service's rules, free of I/O: pipelines and where a case stands, offer figures,
//! business time, SLA clocks, and a ticket's life and policy.

pub mod alarms;
pub mod calendar;
pub mod offers;
pub mod pipelines;
pub mod pricing;
pub mod sla;
pub mod tickets;

use crm_proto::crm::cases::v1 as proto;

crm_kit::text_enum! {
    /// The groups every pipeline's phases fall in.
    pub enum PhaseGroup: proto::PhaseGroup {
        Potential = "potential",
        InProgress = "in_progress",
        Won = "won",
        Lost = "lost",
    }
}

impl PhaseGroup {
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Won | Self::Lost)
    }
}

crm_kit::text_enum! {
    pub enum CaseKind: proto::CaseKind {
        Sales = "sales",
        Project = "project",
        Service = "service",
        Internal = "internal",
    }
}

crm_kit::text_enum! {
    /// Open, or closed won or lost.
    pub enum CaseStatus: proto::CaseStatus {
        Open = "open",
        Won = "won",
        Lost = "lost",
    }
}

crm_kit::text_enum! {
    pub enum DocumentKind: proto::DocumentKind {
        Warehouse = "warehouse",
        Sales = "sales",
        Purchase = "purchase",
        Contract = "contract",
    }
}
