//! The topics consent writes: its own, with messages of `crm/consent/v1/events.proto`, and the
//! privacy fan-out's requests (`crm_kit::privacy::REQUESTS`).

use crm_kit::privacy;
use crm_proto::crm::consent::v1::ConsentChanged;

crm_kit::topic!(
    /// Key: subject id.
    pub CONSENT = "crm.consent.consent.v1", ConsentTopic: ConsentChanged
);

/// The topics consent writes.
pub const TOPICS: &[&str] = &[CONSENT.name, privacy::REQUESTS.name];
