//! Every SQL statement of the cases service, one file per aggregate. Writes lock a case's row
//! before its visits.

pub mod cases;
pub mod desk;
pub mod forecast;
pub mod funnel;
pub mod offers;
pub mod pipelines;
