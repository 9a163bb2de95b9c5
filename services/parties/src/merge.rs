//! Merging a duplicate party into the one that survives.

use crm_kit::{
    error::{FieldViolations, Result},
    request::uuid,
    store::Tx,
};
use crm_proto::crm::parties::v1::{
    MergePartiesRequest, MergePartiesResponse, PartiesMerged, PartyArchived, PartyUpdated,
    PersonUpdated,
};
use uuid::Uuid;

use crate::{
    Parties,
    domain::{self},
    error::Refusal,
    events,
    lookups::{locked_party, party_in, require_active},
    store::{self},
};

impl Parties {
    pub async fn merge_parties(
        &self,
        subject: &str,
        req: MergePartiesRequest,
    ) -> Result<MergePartiesResponse> {
        let mut v = FieldViolations::new();
        let survivor_id = uuid(&req.surviving_party_id, "surviving_party_id", &mut v);
        let merged_id = uuid(&req.merged_party_id, "merged_party_id", &mut v);
        v.check(
            req.surviving_party_id.is_empty() || survivor_id != merged_id,
            "merged_party_id",
            "must differ from surviving_party_id",
        );
        v.finish()?;

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let (survivor, merged) = lock_pair(&mut tx, survivor_id, merged_id).await?;

        let moved_base_ids = store::move_bases(&mut tx, merged_id, survivor_id).await?;
        let moved_person_ids =
            store::move_employments(&mut tx, merged_id, survivor_id, subject).await?;
        let domain::Merged {
            data,
            changed,
            moved_contacts,
        } = domain::merge(&survivor.data(), &merged.data());
        let mut changed: Vec<String> = changed.into_iter().map(str::to_owned).collect();
        if !changed.is_empty() {
            store::update_party(&mut tx, survivor_id, &data, subject).await?;
        }
        if !moved_base_ids.is_empty() {
            if changed.is_empty() {
                store::touch_party(&mut tx, survivor_id, subject).await?;
            }
            changed.push("base_ids".to_owned());
        }
        store::archive_party(&mut tx, merged_id, Some(survivor_id), subject).await?;

        let ids = |list: &[Uuid]| list.iter().map(Uuid::to_string).collect::<Vec<_>>();
        let merged_event = PartiesMerged {
            surviving_party_id: survivor_id.to_string(),
            merged_party_id: merged_id.to_string(),
            moved_person_ids: ids(&moved_person_ids),
            moved_base_ids: ids(&moved_base_ids),
        };
        events::PARTY
            .enqueue(&mut tx, survivor_id, &merged_event)
            .await?;
        if !changed.is_empty() {
            let event = PartyUpdated {
                party_id: survivor_id.to_string(),
                changed_fields: changed,
            };
            events::PARTY.enqueue(&mut tx, survivor_id, &event).await?;
        }
        let archived = PartyArchived {
            party_id: merged_id.to_string(),
            merged_into_party_id: survivor_id.to_string(),
        };
        events::PARTY.enqueue(&mut tx, merged_id, &archived).await?;
        for person_id in &moved_person_ids {
            let event = PersonUpdated {
                person_id: person_id.to_string(),
                changed_fields: vec!["employments".to_owned()],
            };
            events::PERSON.enqueue(&mut tx, *person_id, &event).await?;
        }

        let response = MergePartiesResponse {
            surviving_party: Some(party_in(&mut tx, survivor_id).await?),
            moved_person_ids: ids(&moved_person_ids),
            moved_base_ids: ids(&moved_base_ids),
            moved_contact_points: domain::contacts_to_proto(&moved_contacts),
            dry_run: req.dry_run,
        };
        if req.dry_run {
            // The preview is the real merge, rolled back: it cannot disagree with the real one.
            tx.rollback().await?;
        } else {
            claim.commit(tx, &response).await?;
        }
        Ok(response)
    }
}

/// Locks both parties (in id order, so two merges of the same pair cannot deadlock) and checks
/// they can be merged; returns the survivor and the merged party.
async fn lock_pair(
    tx: &mut Tx,
    survivor_id: Uuid,
    merged_id: Uuid,
) -> Result<(store::PartyRow, store::PartyRow)> {
    let (first, second) = if survivor_id < merged_id {
        (survivor_id, merged_id)
    } else {
        (merged_id, survivor_id)
    };
    let first = locked_party(tx, first).await?;
    let second = locked_party(tx, second).await?;
    let (survivor, merged) = if first.id == survivor_id {
        (first, second)
    } else {
        (second, first)
    };
    require_active(&survivor)?;
    require_active(&merged)?;
    if survivor.kind != merged.kind {
        return Err(Refusal::PartyKindMismatch {
            merged: merged.kind,
            survivor: survivor.kind,
        }
        .into());
    }
    Ok((survivor, merged))
}
