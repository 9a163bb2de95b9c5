//! Parties merged in the parties service (`crm.parties.party.v1`, `PartiesMerged`): the merged
//! party's memberships move to the survivor with their points, and so do its discounts and its
//! invoiced turnover. A membership in a program the survivor already belongs to stays where it is,
//! as two ledgers are never combined silently; it is logged for an operator. What moves follows the
//! survivor's loyalty_program consent as loyalty knows it: suspended if it is withdrawn, and no
//! longer suspended for the merged party's withdrawal if it is granted.

use crm_kit::{
    consumer::{Event, HandleError, Handler},
    store::Tx,
};
use crm_proto::crm::{loyalty::v1::MembershipMoved, parties::v1::PartiesMerged};
use prost::{Message, Name};
use uuid::Uuid;

use crate::{events, store};

pub const PARTY_TOPIC: &str = "crm.parties.party.v1";
/// The consumer group, and the `updated_by` of the memberships it moves.
pub const CONSUMER: &str = "crm-loyalty.merges";

pub struct PartyMerges;

impl Handler for PartyMerges {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        // The topic carries every party event; only merges concern loyalty.
        if event.event_type != PartiesMerged::full_name() {
            return Ok(());
        }
        let merged = PartiesMerged::decode(event.payload.as_slice()).map_err(|e| {
            HandleError::Reject(anyhow::anyhow!("not a crm.parties.v1.PartiesMerged: {e}"))
        })?;
        let id = |value: &str, field: &str| {
            value
                .parse::<Uuid>()
                .map_err(|e| HandleError::Reject(anyhow::anyhow!("{field}: {e}")))
        };
        let from = id(&merged.merged_party_id, "merged_party_id")?;
        let to = id(&merged.surviving_party_id, "surviving_party_id")?;
        move_party(tx, from, to)
            .await
            .map_err(|e| HandleError::Retry(e.into()))
    }
}

async fn move_party(tx: &mut Tx, from: Uuid, to: Uuid) -> crm_kit::error::Result<()> {
    // The survivor's consent row first (the lock order of the consent consumer): the memberships
    // that move follow the survivor's consent, not the merged party's.
    let consent = store::consent_known(tx, to).await?;
    // Invoice lines before memberships, as credit notes take them; then both parties'
    // memberships at once, in id order, before any of them changes.
    store::move_party_records(tx, from, to).await?;
    store::lock_memberships_of(tx, &[from, to]).await?;
    for membership in store::move_memberships(tx, from, to, CONSUMER).await? {
        let event = MembershipMoved {
            membership_id: membership.to_string(),
            from_party_id: from.to_string(),
            to_party_id: to.to_string(),
        };
        events::MEMBERSHIP.enqueue(tx, membership, &event).await?;
    }
    let kept = store::memberships_of(tx, from).await?;
    if !kept.is_empty() {
        tracing::warn!(
            merged = %from, survivor = %to, memberships = ?kept,
            "memberships of a merged party stay with it: the survivor is a member of the same programs"
        );
    }
    if let Some(granted) = consent {
        super::consents::follow_consent(tx, to, granted).await?;
    }
    Ok(())
}
