//! The cases service (`crm.cases.v1`): cases in pipelines, offers, and a service desk with SLA
//! clocks. Laid out as `services/README.md` describes; built in steps (issue 14): its domain
//! rules come first, business time before the clocks that run on it.

pub mod domain;
