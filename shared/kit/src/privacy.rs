//! The privacy fan-out (contract: `proto/crm/common/v1/privacy.proto`). A service that holds
//! personal data joins by implementing [`Participant`] (its export and its erasure) and calling
//! [`join`] when it starts; the kit consumes the requests, answers each once, and publishes the
//! receipt through the outbox in the transaction of the erasure.

use std::future::Future;

use crm_proto::crm::common::v1::{
    DataSubjectKind, PrivacyReceipt, PrivacyRequest, PrivacyRequestType, RetainedData,
};
use prost::Message;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    app::Runtime,
    consumer::{self, ConsumerOptions, Event, HandleError, Handler},
    request::timestamp,
    shutdown::Shutdown,
    store::Tx,
};

crate::topic!(
    /// Key: subject id. Written by the consent service.
    pub REQUESTS = "crm.privacy.requests.v1", RequestsTopic: PrivacyRequest
);
crate::topic!(
    /// Key: request id. One receipt per service and request (several for a sliced export).
    pub RECEIPTS = "crm.privacy.receipts.v1", ReceiptsTopic: PrivacyReceipt
);
pub const REQUEST_TOPIC: &str = REQUESTS.name;
pub const RECEIPT_TOPIC: &str = RECEIPTS.name;

/// Whom a request is about: a consumer party or a B2B person, by their id in the parties service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Party(Uuid),
    Person(Uuid),
}

impl Subject {
    pub fn id(&self) -> Uuid {
        match self {
            Self::Party(id) | Self::Person(id) => *id,
        }
    }
}

/// A service's part of an export: every row about the subject, table by table.
#[derive(Debug, Default)]
pub struct Export {
    tables: Map<String, Value>,
}

impl Export {
    /// Adds the rows `query` returns (bound to `id`) as the table `name`, columns as stored.
    pub async fn table(
        mut self,
        conn: &mut PgConnection,
        name: &str,
        query: &'static str,
        id: Uuid,
    ) -> sqlx::Result<Self> {
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb) FROM ({query}) t"
        )))
        .bind(id)
        .fetch_one(conn)
        .await?;
        self.tables.insert(name.to_owned(), rows);
        Ok(self)
    }

    /// The documented export format: `{"service": "...", "tables": {"<table>": [rows]}}`.
    pub fn into_json(self, service: &str) -> Value {
        serde_json::json!({ "service": service, "tables": self.tables })
    }

    fn found(&self) -> bool {
        self.tables
            .values()
            .any(|rows| rows.as_array().is_some_and(|rows| !rows.is_empty()))
    }
}

/// What an erasure did.
#[derive(Debug, Default)]
pub struct Erasure {
    pub found: bool,
    /// What was erased or irreversibly anonymised.
    pub erased: Vec<String>,
    /// What is kept by law, no longer linked to an identifiable person.
    pub retained: Vec<RetainedData>,
    /// Ids of the service's own records about the subject (e.g. membership ids): stored replies
    /// to earlier calls that mention them, or the subject, are forgotten too.
    pub related_ids: Vec<Uuid>,
}

pub fn retained(description: impl Into<String>, reason: impl Into<String>) -> RetainedData {
    RetainedData {
        description: description.into(),
        reason: reason.into(),
    }
}

/// A service's side of data-subject requests. Both run inside the transaction that also records
/// the request as handled and writes the receipt.
pub trait Participant: Send + Sync + 'static {
    fn export<'a>(
        &'a self,
        tx: &'a mut Tx,
        subject: Subject,
    ) -> impl Future<Output = anyhow::Result<Export>> + Send + 'a;

    /// Removes or irreversibly anonymises the subject's personal data. Running it again on an
    /// erased subject must change nothing.
    fn erase<'a>(
        &'a self,
        tx: &'a mut Tx,
        subject: Subject,
        request_id: Uuid,
    ) -> impl Future<Output = anyhow::Result<Erasure>> + Send + 'a;
}

/// Starts answering data-subject requests addressed to this service (consumer group
/// `<service>-privacy`). The service lists [`RECEIPT_TOPIC`] among the topics it writes.
pub fn join<P: Participant>(runtime: &Runtime, shutdown: &Shutdown, participant: P) {
    let service = runtime.spec.name;
    let options = ConsumerOptions::new(&format!("{service}-privacy"), &[REQUEST_TOPIC]);
    let handler = Answering {
        service,
        participant,
    };
    consumer::spawn(runtime, options, handler, shutdown);
}

struct Answering<P> {
    service: &'static str,
    participant: P,
}

impl<P: Participant> Handler for Answering<P> {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        let request = PrivacyRequest::decode(event.payload.as_slice())
            .map_err(|e| HandleError::Reject(e.into()))?;
        if !request.services.iter().any(|s| s == self.service) {
            return Ok(());
        }
        let request_id: Uuid = request
            .request_id
            .parse()
            .map_err(|e| HandleError::Reject(anyhow::anyhow!("request_id: {e}")))?;
        let subject = subject(&request).map_err(HandleError::Reject)?;
        let retry = |e: anyhow::Error| HandleError::Retry(e);
        let mut receipt = PrivacyReceipt {
            request_id: request.request_id.clone(),
            service: self.service.to_owned(),
            r#type: request.r#type,
            handle_time: Some(timestamp(chrono::Utc::now())),
            ..Default::default()
        };
        let receipts = match request.r#type() {
            PrivacyRequestType::Access | PrivacyRequestType::Portability => {
                // Read-only: a request sent again is simply answered again.
                let export = self.participant.export(tx, subject).await.map_err(retry)?;
                receipt.subject_found = export.found();
                let document = export.into_json(self.service);
                let bytes = serde_json::to_vec(&document).map_err(|e| retry(e.into()))?;
                split_export(receipt, &bytes, EXPORT_SLICE)
            }
            PrivacyRequestType::Erasure => {
                let earlier: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT receipt FROM crm_privacy_receipts WHERE request_id = $1",
                )
                .bind(request_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| retry(e.into()))?;
                if let Some(earlier) = earlier {
                    tracing::info!(%request_id, "erasure already done; answering again");
                    receipt = PrivacyReceipt::decode(earlier.as_slice())
                        .map_err(|e| HandleError::Reject(e.into()))?;
                } else {
                    let erasure = self
                        .participant
                        .erase(tx, subject, request_id)
                        .await
                        .map_err(retry)?;
                    let mut ids = erasure.related_ids;
                    ids.push(subject.id());
                    forget_replies(tx, &ids)
                        .await
                        .map_err(|e| retry(e.into()))?;
                    receipt.subject_found = erasure.found;
                    receipt.erased = erasure.erased;
                    receipt.retained = erasure.retained;
                    sqlx::query(
                        "INSERT INTO crm_privacy_receipts (request_id, receipt) VALUES ($1, $2)",
                    )
                    .bind(request_id)
                    .bind(receipt.encode_to_vec())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| retry(e.into()))?;
                    tracing::info!(%request_id, service = self.service, "subject erased");
                }
                vec![receipt]
            }
            // Carried out by the consent service or an operator, not fanned out.
            _ => return Ok(()),
        };
        let keyed: Vec<(String, PrivacyReceipt)> = receipts
            .into_iter()
            .map(|receipt| (request.request_id.clone(), receipt))
            .collect();
        RECEIPTS
            .enqueue_many(tx, &keyed)
            .await
            .map_err(|e| retry(e.into()))?;
        Ok(())
    }
}

/// The largest `export_json` slice one receipt carries: records stay far below Kafka's default
/// 1 MiB limit, whatever the subject's history.
const EXPORT_SLICE: usize = 256 * 1024;

/// One receipt per slice of the export document, numbered, under one export id.
fn split_export(receipt: PrivacyReceipt, document: &[u8], slice: usize) -> Vec<PrivacyReceipt> {
    let export_id = Uuid::now_v7().to_string();
    let slices: Vec<&[u8]> = document.chunks(slice).collect();
    let parts = slices.len().max(1) as i32;
    let slices = if slices.is_empty() {
        vec![&[][..]]
    } else {
        slices
    };
    slices
        .into_iter()
        .zip(1..)
        .map(|(bytes, part)| PrivacyReceipt {
            export_json: bytes.to_vec(),
            part,
            parts,
            export_id: export_id.clone(),
            ..receipt.clone()
        })
        .collect()
}

fn subject(request: &PrivacyRequest) -> anyhow::Result<Subject> {
    let subject = request.subject.clone().unwrap_or_default();
    let id: Uuid = subject
        .id
        .parse()
        .map_err(|e| anyhow::anyhow!("subject.id: {e}"))?;
    match subject.kind() {
        DataSubjectKind::Party => Ok(Subject::Party(id)),
        DataSubjectKind::Person => Ok(Subject::Person(id)),
        DataSubjectKind::Unspecified => anyhow::bail!("subject.kind is unspecified"),
    }
}

/// Stored replies to earlier calls (request-id idempotency) can hold the subject's data, e.g. the
/// party a CreateParty returned: their answers are dropped (by the kit for every participant, and
/// by consent for its own replies), so a replay is refused instead
/// (FAILED_PRECONDITION `REQUEST_ERASED`). Every reply about a subject names its id. Erasures are
/// rare, so a scan of the replay window's replies is affordable.
pub async fn forget_replies(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<()> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    sqlx::query(
        "UPDATE crm_idempotency SET response = NULL
         WHERE response IS NOT NULL
           AND EXISTS (SELECT 1 FROM unnest($1::text[]) id
                       WHERE position(convert_to(id, 'UTF8') IN response) > 0)",
    )
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_export_is_sliced_into_numbered_receipts_that_join_back() {
        let receipt = PrivacyReceipt {
            request_id: "r".into(),
            service: "loyalty".into(),
            subject_found: true,
            ..Default::default()
        };
        let document = b"{\"service\":\"loyalty\",\"tables\":{}}".repeat(10);
        let receipts = split_export(receipt.clone(), &document, 64);
        assert_eq!(receipts.len(), document.len().div_ceil(64));
        assert!(receipts.iter().all(|r| r.parts == receipts.len() as i32
            && r.export_id == receipts[0].export_id
            && r.subject_found));
        assert_eq!(
            receipts.iter().map(|r| r.part).collect::<Vec<_>>(),
            (1..=receipts.len() as i32).collect::<Vec<_>>()
        );
        let joined: Vec<u8> = receipts
            .iter()
            .flat_map(|r| r.export_json.clone())
            .collect();
        assert_eq!(joined, document);

        let small = split_export(receipt, b"{}", 64);
        assert_eq!(
            (small.len(), small[0].parts, small[0].export_json.as_slice()),
            (1, 1, &b"{}"[..])
        );
    }
}
