//! Pipelines: the phases cases go through.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, code, required, text},
    store::Page,
};
use crm_proto::crm::cases::v1::*;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Cases, convert,
    domain::{
        PhaseGroup,
        pipelines::{self, Phase, PipelineError},
    },
    events,
    store::pipelines::{self as store, PipelineRow},
};

impl Cases {
    pub async fn create_pipeline(
        &self,
        caller: &str,
        req: CreatePipelineRequest,
    ) -> Result<Pipeline> {
        let mut v = FieldViolations::new();
        let input = required(req.pipeline.clone(), "pipeline", &mut v);
        let display_name = text(&input.display_name, "pipeline.display_name", &mut v);
        let phases: Vec<Phase> = input
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let field = format!("pipeline.phases[{i}]");
                let probability = u8::try_from(p.probability).unwrap_or(u8::MAX);
                Phase {
                    code: code(&p.code, &format!("{field}.code"), &mut v),
                    display_name: p.display_name.trim().to_owned(),
                    group: PhaseGroup::require(p.group, &format!("{field}.group"), &mut v),
                    probability,
                }
            })
            .collect();
        v.finish()?;
        let phases = pipelines::pipeline(phases).map_err(|error| {
            let (field, why) = match error {
                PipelineError::DuplicateCode(i) => (
                    format!("pipeline.phases[{i}].code"),
                    "appears twice".to_owned(),
                ),
                PipelineError::Probability(i) => (
                    format!("pipeline.phases[{i}].probability"),
                    "must be 0 to 100".to_owned(),
                ),
                PipelineError::Order(i) => (
                    format!("pipeline.phases[{i}].group"),
                    "phases run potential, then in progress, then won and lost".to_owned(),
                ),
                PipelineError::Missing(group) => (
                    "pipeline.phases".to_owned(),
                    format!("needs a phase of group {}", group.as_str().to_uppercase()),
                ),
            };
            FieldViolations::single(field, why)
        })?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let now = Utc::now();
        let row = store::insert(
            &mut tx,
            &PipelineRow {
                id: Uuid::now_v7(),
                display_name,
                phases: Json(phases),
                created_at: now,
                updated_at: now,
                created_by: caller.to_owned(),
                updated_by: caller.to_owned(),
                version: 1,
            },
        )
        .await?;
        let pipeline = convert::pipeline(&row);
        events::pipeline_changed(&mut tx, &pipeline, "created").await?;
        claim.commit(tx, &pipeline).await?;
        Ok(pipeline)
    }

    pub async fn get_pipeline(&self, req: GetPipelineRequest) -> Result<Pipeline> {
        let id = request::id(&req.id, "id")?;
        let row = store::get(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Pipeline", id))?;
        Ok(convert::pipeline(&row))
    }

    pub async fn list_pipelines(&self, req: ListPipelinesRequest) -> Result<ListPipelinesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &(), &mut v);
        v.finish()?;
        let mut rows =
            store::list(&mut *self.pool.acquire().await?, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListPipelinesResponse {
            pipelines: rows.iter().map(convert::pipeline).collect(),
            next_page_token,
        })
    }
}
