//! The topics cases writes, with messages of `crm/cases/v1/events.proto`: ids, phases, statuses,
//! money and dates, not a case's words (title, description, lost reason, watchers, document
//! references) nor its whole history.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::cases::v1::{Case, CaseChanged, DocumentLink, Pipeline, PipelineChanged};

crm_kit::topic!(
    /// Key: pipeline id.
    pub PIPELINE = "crm.cases.pipeline.v1", PipelineTopic: PipelineChanged
);

crm_kit::topic!(
    /// Key: case id.
    pub CASE = "crm.cases.case.v1", CaseTopic: CaseChanged
);

/// The topics cases writes.
pub const TOPICS: &[&str] = &[PIPELINE.name, CASE.name, privacy::RECEIPTS.name];

pub async fn pipeline_changed(tx: &mut Tx, pipeline: &Pipeline, change: &str) -> Result<()> {
    let event = PipelineChanged {
        pipeline: Some(pipeline.clone()),
        change: change.to_owned(),
    };
    Ok(PIPELINE.enqueue(tx, &pipeline.id, &event).await?)
}

pub async fn case_changed(tx: &mut Tx, case: &Case, change: &str) -> Result<()> {
    let event = CaseChanged {
        case: Some(Case {
            title: String::new(),
            description: String::new(),
            lost_reason: String::new(),
            watchers: Vec::new(),
            // The phase says where it is; its whole passage would grow without end.
            history: Vec::new(),
            document_links: case
                .document_links
                .iter()
                .map(|link| DocumentLink {
                    reference: String::new(),
                    ..link.clone()
                })
                .collect(),
            ..case.clone()
        }),
        change: change.to_owned(),
    };
    Ok(CASE.enqueue(tx, &case.id, &event).await?)
}
