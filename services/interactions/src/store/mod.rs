//! Every SQL statement of the interactions service, one file per aggregate. Rows hold domain
//! types; the use cases pass transactions in and decide what the rows mean.

pub mod emails;
pub mod interactions;
pub mod mailboxes;
pub mod notes;
pub mod occasions;
pub mod tasks;
pub mod timeline;
