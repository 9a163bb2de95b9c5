//! SQL for parties, bases, persons, employments and custom field definitions, one file per
//! aggregate. Every write runs in the caller's transaction, so the state change, its idempotency
//! record and its events commit together.

mod bases;
mod erasure;
mod fields;
mod parties;
mod persons;

pub use bases::*;
pub use erasure::*;
pub use fields::*;
pub use parties::*;
pub use persons::*;
