//! Loyalty's local view of the `loyalty_program` consent, from the consent service's events
//! (`crm.consent.consent.v1`, contract `proto/crm/consent/v1/events.proto`): a withdrawal suspends
//! the party's active memberships, so nothing more is accrued or redeemed, and a new grant
//! reactivates the memberships the withdrawal suspended. Enrolment asks the consent service itself,
//! then records its answer here too (`store::learn_consent`): whichever is newer counts.

use crm_kit::{
    consumer::{Event, HandleError, Handler},
    store::Tx,
};
use crm_proto::crm::{
    consent::v1::{ConsentChanged, ConsentStatus, SubjectKind},
    loyalty::v1::{MembershipReactivated, MembershipSuspended},
};
use prost::Message;
use uuid::Uuid;

use crate::{events, store};

pub const CONSENT_TOPIC: &str = "crm.consent.consent.v1";
/// The consumer group, and the `updated_by` of the memberships it changes.
pub const CONSUMER: &str = "crm-loyalty.consents";
/// The purpose membership depends on.
pub const PURPOSE: &str = "loyalty_program";

pub struct ConsentGate;

impl Handler for ConsentGate {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        let change = ConsentChanged::decode(event.payload.as_slice()).map_err(|e| {
            HandleError::Reject(anyhow::anyhow!("not a crm.consent.v1.ConsentChanged: {e}"))
        })?;
        let subject = change.subject.clone().unwrap_or_default();
        if change.purpose != PURPOSE || subject.kind() != SubjectKind::Party {
            return Ok(());
        }
        let party: Uuid = subject
            .id
            .parse()
            .map_err(|e| HandleError::Reject(anyhow::anyhow!("subject.id: {e}")))?;
        let granted = match change.status() {
            ConsentStatus::Granted => true,
            // An expired consent no longer counts, as a withdrawn one.
            ConsentStatus::Withdrawn | ConsentStatus::Expired => false,
            _ => return Ok(()),
        };
        let record: Uuid = change
            .record_id
            .parse()
            .map_err(|e| HandleError::Reject(anyhow::anyhow!("record_id: {e}")))?;
        apply(tx, party, record, granted)
            .await
            .map_err(|e| HandleError::Retry(e.into()))
    }
}

/// Learns the change (the party's row locked, so an enrolment in flight takes its turn) and, unless
/// something newer was known, suspends or reactivates the party's memberships.
async fn apply(tx: &mut Tx, party: Uuid, record: Uuid, granted: bool) -> sqlx::Result<()> {
    let learned = store::learn_consent(tx, party, record, granted).await?;
    if learned.newest {
        follow_consent(tx, party, granted).await?;
    }
    Ok(())
}

/// Brings the party's memberships in line with its consent: suspends the active ones when it is
/// withdrawn, reactivates those a withdrawal suspended when it is granted.
pub(crate) async fn follow_consent(tx: &mut Tx, party: Uuid, granted: bool) -> sqlx::Result<()> {
    if granted {
        reactivate(tx, party).await
    } else {
        suspend(tx, party).await
    }
}

async fn suspend(tx: &mut Tx, party: Uuid) -> sqlx::Result<()> {
    let suspended = store::suspend_for_consent(tx, party, CONSUMER).await?;
    for id in suspended {
        let event = MembershipSuspended {
            membership_id: id.to_string(),
            reason: format!("the party withdrew its {PURPOSE} consent"),
        };
        events::MEMBERSHIP.enqueue(tx, id, &event).await?;
    }
    Ok(())
}

async fn reactivate(tx: &mut Tx, party: Uuid) -> sqlx::Result<()> {
    let reactivated = store::reactivate_after_consent(tx, party, CONSUMER).await?;
    for id in reactivated {
        let event = MembershipReactivated {
            membership_id: id.to_string(),
            reason: format!("the party granted its {PURPOSE} consent again"),
        };
        events::MEMBERSHIP.enqueue(tx, id, &event).await?;
    }
    Ok(())
}
