//! The services' receipts (`crm.privacy.receipts.v1`): each answer recorded once, sliced exports
//! joined in any arrival order, and the request completed with the last registered answer.

use crm_kit::{
    consumer::{Event, HandleError, Handler},
    error::{Result, ServiceError},
    store::Tx,
};
use crm_proto::crm::{
    common::v1::{PrivacyReceipt, PrivacyRequestType},
    consent::v1::SubjectRequestStatus,
};
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use crate::{
    domain::RequestStatus,
    events,
    fanout::{self, lock},
    store::requests::{self as store, Answer, Slice},
};

/// The consumer of the services' receipts.
pub const RECEIPTS: &str = "consent-receipts";

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
