//! The bundle of a completed access or portability request: every service's part and consent's
//! own, as one JSON document streamed in pieces.

use chrono::Utc;
use crm_kit::{
    error::{Result, ServiceError},
    privacy::Export,
    request,
};
use crm_proto::crm::consent::v1::{ExportBundleChunk, GetExportBundleRequest};
use serde_json::json;

use crate::{
    Consents,
    domain::RequestStatus,
    error::Refusal,
    store::requests::{self as store},
};

/// The bundle is streamed in pieces of this size.
const CHUNK: usize = 64 * 1024;

impl Consents {
    pub async fn export_bundle(
        &self,
        req: GetExportBundleRequest,
    ) -> Result<Vec<ExportBundleChunk>> {
        let id = request::id(&req.id, "id")?;
        let mut tx = self.pool.begin().await?;
        let row = store::get(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("SubjectRequest", id))?;
        if !row.kind.exports() || row.status != RequestStatus::Completed {
            let (kind, status) = (row.kind, row.status);
            return Err(Refusal::NoBundle { id, kind, status }.into());
        }
        let mut parts = serde_json::Map::new();
        for (service, export) in store::exports(&mut tx, id).await? {
            let Some(export) = export else {
                let retention_days = self.bundle_retention_days;
                return Err(Refusal::BundleGone { id, retention_days }.into());
            };
            let part =
                serde_json::from_slice(&export).map_err(|e| ServiceError::Internal(e.into()))?;
            parts.insert(service, part);
        }
        let consent = Export::default()
            .table(
                &mut tx,
                "consent_records",
                "SELECT * FROM consent_records WHERE subject_id = $1 ORDER BY id",
                row.subject_id,
            )
            .await?
            .table(
                &mut tx,
                "subject_requests",
                "SELECT * FROM subject_requests WHERE subject_id = $1 ORDER BY id",
                row.subject_id,
            )
            .await?;
        parts.insert("consent".into(), consent.into_json("consent"));
        tx.commit().await?;
        let bundle = json!({
            "request_id": id,
            "type": row.kind,
            "subject": { "kind": row.subject_kind, "id": row.subject_id },
            "generated_at": Utc::now(),
            "parts": parts,
        });
        let bytes =
            serde_json::to_vec_pretty(&bundle).map_err(|e| ServiceError::Internal(e.into()))?;
        Ok(bytes
            .chunks(CHUNK)
            .map(|data| ExportBundleChunk {
                data: data.to_vec(),
            })
            .collect())
    }
}
