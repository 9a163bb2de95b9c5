//! When a consent counts: the latest record for a purpose decides, unless it expired or was given
//! to a text older than the purpose now requires.

use chrono::{DateTime, Utc};
use crm_proto::crm::consent::v1::ConsentStatus;

use super::RecordStatus;

/// What the state of a purpose depends on in its latest record.
#[derive(Debug, Clone, Copy)]
pub struct Latest {
    pub status: RecordStatus,
    pub expires_at: Option<DateTime<Utc>>,
    /// The text version consented to; none for a withdrawal.
    pub text_version: Option<i32>,
}

/// The state of a purpose for a subject at `now`; consents to texts older than
/// `minimum_consented_version` no longer count.
pub fn current_status(
    latest: Option<Latest>,
    minimum_consented_version: i32,
    now: DateTime<Utc>,
) -> ConsentStatus {
    match latest {
        None => ConsentStatus::None,
        Some(r) if r.status == RecordStatus::Withdrawn => ConsentStatus::Withdrawn,
        Some(r) if r.expires_at.is_some_and(|at| at <= now) => ConsentStatus::Expired,
        Some(r) if r.text_version.unwrap_or(0) < minimum_consented_version => {
            ConsentStatus::NeedsReconsent
        }
        Some(_) => ConsentStatus::Granted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn latest(
        status: RecordStatus,
        expires_at: Option<DateTime<Utc>>,
        version: i32,
    ) -> Option<Latest> {
        Some(Latest {
            status,
            expires_at,
            text_version: Some(version),
        })
    }

    #[test]
    fn the_latest_record_decides_unless_expired_or_outdated() {
        let now = Utc::now();
        assert_eq!(current_status(None, 1, now), ConsentStatus::None);
        let granted = latest(RecordStatus::Granted, None, 2);
        assert_eq!(current_status(granted, 1, now), ConsentStatus::Granted);
        assert_eq!(
            current_status(granted, 3, now),
            ConsentStatus::NeedsReconsent
        );
        let expired = latest(RecordStatus::Granted, Some(now - Duration::seconds(1)), 2);
        assert_eq!(current_status(expired, 1, now), ConsentStatus::Expired);
        let withdrawn = latest(RecordStatus::Withdrawn, None, 2);
        assert_eq!(current_status(withdrawn, 1, now), ConsentStatus::Withdrawn);
    }
}
