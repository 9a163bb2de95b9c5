//! The cases service's rules, free of I/O.

pub mod calendar;
pub mod pricing;
pub mod sla;
