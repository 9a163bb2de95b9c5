//! What loyalty does with the events it reads: invoices earn points, the consent service's
//! `loyalty_program` decisions suspend and restore memberships, and merged parties take their
//! memberships along.

pub mod consents;
pub mod invoices;
pub mod merges;
