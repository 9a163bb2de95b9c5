//! The topics consent writes: its own, with messages of `crm/consent/v1/events.proto`, and the
//! privacy fan-out's requests (`crm_kit::privacy::REQUESTS`). The latest event of a key is the
//! aggregate as it now is, so a downstream system rebuilds any of them from its topic.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::consent::v1::{
    ConsentChanged, Purpose, PurposeChanged, SubjectRequest, SubjectRequestChanged,
};

crm_kit::topic!(
    /// Key: subject id.
    pub CONSENT = "crm.consent.consent.v1", ConsentTopic: ConsentChanged
);

crm_kit::topic!(
    /// Key: purpose code.
    pub PURPOSE = "crm.consent.purpose.v1", PurposeTopic: PurposeChanged
);

crm_kit::topic!(
    /// Key: request id.
    pub SUBJECT_REQUEST = "crm.consent.subject_request.v1", SubjectRequestTopic: SubjectRequestChanged
);

/// The topics consent writes.
pub const TOPICS: &[&str] = &[
    CONSENT.name,
    PURPOSE.name,
    SUBJECT_REQUEST.name,
    privacy::REQUESTS.name,
];

pub async fn purpose_changed(tx: &mut Tx, purpose: &Purpose, change: &str) -> Result<()> {
    let event = PurposeChanged {
        purpose: Some(purpose.clone()),
        change: change.to_owned(),
    };
    Ok(PURPOSE.enqueue(tx, &purpose.code, &event).await?)
}

/// The request as downstream systems see it: the subject's own words stay here.
pub async fn request_changed(tx: &mut Tx, request: &SubjectRequest, change: &str) -> Result<()> {
    let event = SubjectRequestChanged {
        request: Some(SubjectRequest {
            details: String::new(),
            verification_method: String::new(),
            ..request.clone()
        }),
        change: change.to_owned(),
    };
    Ok(SUBJECT_REQUEST.enqueue(tx, &request.id, &event).await?)
}
