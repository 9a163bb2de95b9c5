//! What consent does with the events it reads: the services' receipts (`crm.privacy.receipts.v1`),
//! each answer recorded once, sliced exports joined in any arrival order, and the request
//! completed with the last registered answer; and merged parties (`crm.parties.party.v1`), whose
//! consents the survivor takes over where it has not decided itself.

use chrono::Utc;
use crm_kit::{
    consumer::{Event, HandleError, Handler},
    error::{Result, ServiceError},
    store::Tx,
};
use crm_proto::crm::{
    common::v1::{PrivacyReceipt, PrivacyRequestType},
    consent::v1::SubjectRequestStatus,
    parties::v1::PartiesMerged,
};
use prost::{Message, Name};
use serde_json::json;
use uuid::Uuid;

use crate::{
    consents::write_record,
    domain::{RequestStatus, SubjectKind},
    events,
    fanout::{self, lock},
    store::{
        records::{self, RecordRow},
        requests::{self as store, Answer, Slice},
    },
};

/// The consumer of the services' receipts.
pub const RECEIPTS: &str = "consent-receipts";
/// The consumer of party merges, and the recorder of the consents it carries over.
pub const MERGES: &str = "consent-merges";
pub const PARTY_TOPIC: &str = "crm.parties.party.v1";

/// Consumes the services' receipts.
pub struct Receipts;

impl Handler for Receipts {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> std::result::Result<(), HandleError> {
        let receipt = PrivacyReceipt::decode(event.payload.as_slice())
            .map_err(|e| HandleError::Reject(e.into()))?;
        apply_receipt(tx, &receipt)
            .await
            .map_err(|e| HandleError::Retry(e.into()))
    }
}

/// Records a service's receipt; the request completes with the last registered service's answer.
/// The first answer of a service counts; later ones (answers to retries) are ignored.
pub async fn apply_receipt(tx: &mut Tx, receipt: &PrivacyReceipt) -> Result<()> {
    let Ok(id) = receipt.request_id.parse::<Uuid>() else {
        tracing::warn!(request_id = %receipt.request_id, "a receipt for a malformed request id; ignored");
        return Ok(());
    };
    let row = match lock(tx, id).await {
        Ok(row) => row,
        Err(ServiceError::NotFound(..)) => {
            tracing::warn!(%id, service = %receipt.service, "a receipt for an unknown request; ignored");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let exported = match receipt.r#type() {
        PrivacyRequestType::Access | PrivacyRequestType::Portability => {
            match join_slices(tx, id, receipt).await? {
                Some(document) => Some(document),
                None => return Ok(()),
            }
        }
        _ => None,
    };
    let retained: Vec<_> = receipt
        .retained
        .iter()
        .map(|r| json!({ "description": r.description, "reason": r.reason }))
        .collect();
    let answer = Answer {
        service: &receipt.service,
        subject_found: receipt.subject_found,
        erased: &receipt.erased,
        retained: serde_json::Value::Array(retained.clone()),
        export: exported,
    };
    if !store::record_answer(tx, id, answer).await? {
        tracing::info!(%id, service = %receipt.service, "answer already recorded, or the service was not asked");
        return Ok(());
    }
    let details = json!({
        "request_id": id, "service": receipt.service, "subject_found": receipt.subject_found,
        "erased": receipt.erased, "retained": retained,
    });
    fanout::audit(
        tx,
        &receipt.service,
        "request.answered",
        row.subject(),
        details,
    )
    .await?;
    if row.status == RequestStatus::InProgress {
        fanout::finish_if_answered(tx, id).await?;
    }
    let answered = fanout::load(tx, id).await?;
    let change = match answered.status() {
        SubjectRequestStatus::Completed => "completed",
        _ => "answered",
    };
    events::request_changed(tx, &answered, change).await?;
    Ok(())
}

/// A one-part export as it is; a sliced one once all its slices are in (None until then).
async fn join_slices(tx: &mut Tx, id: Uuid, receipt: &PrivacyReceipt) -> Result<Option<Vec<u8>>> {
    if receipt.parts <= 1 {
        return Ok(Some(receipt.export_json.clone()));
    }
    if !(1..=receipt.parts).contains(&receipt.part) {
        tracing::warn!(%id, service = %receipt.service, part = receipt.part, parts = receipt.parts, "a receipt slice out of range; ignored");
        return Ok(None);
    }
    if !store::awaiting(tx, id, &receipt.service).await? {
        return Ok(None);
    }
    let slice = Slice {
        service: &receipt.service,
        export_id: &receipt.export_id,
        part: receipt.part,
        parts: receipt.parts,
        data: &receipt.export_json,
    };
    let slices = store::add_slice(tx, id, slice).await?;
    if slices.len() < receipt.parts as usize {
        return Ok(None);
    }
    store::drop_slices(tx, id, &receipt.service).await?;
    Ok(Some(slices.concat()))
}

/// Consumes the parties service's merges.
pub struct PartyMerges;

impl Handler for PartyMerges {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> std::result::Result<(), HandleError> {
        // The topic carries every party event; only merges concern consent.
        if event.event_type != PartiesMerged::full_name() {
            return Ok(());
        }
        let merged = PartiesMerged::decode(event.payload.as_slice())
            .map_err(|e| HandleError::Reject(e.into()))?;
        let id = |value: &str| {
            value
                .parse::<Uuid>()
                .map_err(|e| HandleError::Reject(anyhow::anyhow!("party id {value:?}: {e}")))
        };
        let (from, to) = (
            id(&merged.merged_party_id)?,
            id(&merged.surviving_party_id)?,
        );
        carry_over(tx, from, to)
            .await
            .map_err(|e| HandleError::Retry(e.into()))
    }
}

/// The survivor takes over each consent decision of the merged party it has none of its own for:
/// a new record, citing the merged party, so the history of both stays as it was.
async fn carry_over(tx: &mut Tx, from: Uuid, to: Uuid) -> Result<()> {
    let decided: Vec<String> = records::current_all(tx, to)
        .await?
        .into_iter()
        .map(|r| r.purpose)
        .collect();
    for previous in records::current_all(tx, from).await? {
        if decided.contains(&previous.purpose) {
            continue;
        }
        let record = RecordRow {
            id: Uuid::now_v7(),
            subject_kind: SubjectKind::Party,
            subject_id: to,
            source_system: "party-merge".into(),
            reference: from.to_string(),
            recorded_by: MERGES.to_owned(),
            recorded_at: Utc::now(),
            ..previous
        };
        write_record(tx, &record).await?;
    }
    Ok(())
}
