//! SQL for programs, memberships, accounts, operations, ledger entries, lots, holds and tiers, one
//! file per aggregate. Every write runs in the caller's transaction: an operation's balance change,
//! entries and event commit together.

mod bulk;
mod cards;
mod consents;
mod coupons;
mod discounts;
mod erasure;
mod holds;
mod invoices;
mod ledger;
mod lots;
mod memberships;
mod programs;
mod tiers;

pub use bulk::*;
pub use cards::*;
pub use consents::*;
pub use coupons::*;
pub use discounts::*;
pub use erasure::*;
pub use holds::*;
pub use invoices::*;
pub use ledger::*;
pub use lots::*;
pub use memberships::*;
pub use programs::*;
pub use tiers::*;
