//! The life of a data-subject request: its statutory deadline and how far it may move, and which
//! requests go out to the services.

use chrono::{DateTime, Utc};

use super::{RequestStatus, RequestType};

/// GDPR art. 12(3): one month from receipt…
pub const DEADLINE_DAYS: i64 = 30;
/// …extendable by two further months in all.
pub const MAX_EXTENSION_DAYS: i32 = 60;

pub fn due_at(received_at: DateTime<Utc>) -> DateTime<Utc> {
    received_at + chrono::Duration::days(DEADLINE_DAYS)
}

/// Whether `days` more fit within the extension the law allows.
pub fn extension_fits(extended_so_far: i32, days: i32) -> bool {
    (1..=MAX_EXTENSION_DAYS).contains(&days) && extended_so_far + days <= MAX_EXTENSION_DAYS
}

/// Only an objection names the purposes it is about.
pub fn kind_names_purposes(kind: RequestType) -> bool {
    kind == RequestType::Objection
}

impl RequestType {
    /// Access, portability and erasure are carried out by every service holding personal data.
    pub fn fans_out(self) -> bool {
        matches!(self, Self::Access | Self::Portability | Self::Erasure)
    }

    /// Rectification and restriction are carried out by an operator, who completes them.
    pub fn operator_work(self) -> bool {
        matches!(self, Self::Rectification | Self::Restriction)
    }

    /// Requests whose completion yields a bundle of the subject's data.
    pub fn exports(self) -> bool {
        matches!(self, Self::Access | Self::Portability)
    }
}

impl RequestStatus {
    /// Still to be finished: it counts towards the deadline and can be cancelled or extended.
    pub fn open(self) -> bool {
        matches!(self, Self::Received | Self::Verified | Self::InProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_add_up_to_sixty_days_at_most() {
        assert!(extension_fits(0, 60));
        assert!(extension_fits(30, 30));
        assert!(!extension_fits(30, 31));
        assert!(!extension_fits(0, 0));
        assert!(!extension_fits(0, 61));
    }

    #[test]
    fn who_carries_out_what() {
        let fanned: Vec<_> = RequestType::ALL.iter().filter(|t| t.fans_out()).collect();
        assert_eq!(
            fanned,
            [
                &RequestType::Access,
                &RequestType::Portability,
                &RequestType::Erasure
            ]
        );
        assert!(
            RequestType::ALL
                .iter()
                .all(|t| t.fans_out() || t.operator_work() || *t == RequestType::Objection)
        );
    }
}
