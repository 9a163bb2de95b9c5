//! The cases service's rules, free of I/O: pipelines and where a case stands, offer figures,
//! business time, SLA clocks, and a ticket's life and policy.

pub mod calendar;
pub mod pipelines;
pub mod pricing;
pub mod sla;
pub mod tickets;
