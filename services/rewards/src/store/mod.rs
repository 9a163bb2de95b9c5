//! Every SQL statement of the rewards service, one file per aggregate. Rows hold domain types; the
//! use cases pass transactions in and decide what the rows mean.

pub mod orders;
pub mod returns;
pub mod rewards;
pub mod stock;
pub mod vouchers;
pub mod warehouses;
