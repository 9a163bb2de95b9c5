//! Every SQL statement of the consent service, one file per aggregate. Rows hold domain types; the
//! use cases pass transactions in and decide what the rows mean.

pub mod audit;
pub mod purposes;
pub mod records;
pub mod requests;
