//! Cases: created in a pipeline, edited, moved through its open phases, closed won or lost.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, date, mask_paths, money, optional_uuid, required, text, uuid},
    store::Page,
};
use crm_proto::crm::cases::v1::*;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{
    Cases, convert,
    domain::{
        CaseKind, CaseStatus, DocumentKind,
        pipelines::{self, Group, MoveError, Phase},
    },
    error::Refusal,
    events,
    store::{
        cases::{self as store, CaseRow, DocumentLink, Filter},
        pipelines as pipeline_store,
    },
};

/// What UpdateCase may change.
const EDITABLE: &[&str] = &[
    "title",
    "description",
    "owner",
    "watchers",
    "expected_value",
    "probability_override",
    "expected_close_date",
    "planned_cost",
    "actual_cost",
    "planned_revenue",
    "actual_revenue",
    "document_links",
];

impl Cases {
    pub async fn create_case(&self, caller: &str, req: CreateCaseRequest) -> Result<Case> {
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.case.clone(), "case", &mut v);
        let pipeline_id = uuid(&input.pipeline_id, "case.pipeline_id", &mut v);
        let kind = CaseKind::require(input.kind, "case.kind", &mut v);
        let party_id = optional_uuid(&input.party_id, "case.party_id", &mut v);
        let person_ids: Vec<Uuid> = input
            .person_ids
            .iter()
            .enumerate()
            .map(|(i, id)| uuid(id, &format!("case.person_ids[{i}]"), &mut v))
            .collect();
        v.check(
            kind != CaseKind::Internal || (party_id.is_none() && person_ids.is_empty()),
            "case.party_id",
            "an internal case has no client",
        );
        let mut person_ids = person_ids;
        person_ids.sort();
        person_ids.dedup();
        let value = money(input.expected_value.as_ref(), "case.expected_value", &mut v);
        let now = Utc::now();
        let mut row = CaseRow {
            id: Uuid::now_v7(),
            pipeline_id,
            title: String::new(),
            description: String::new(),
            kind,
            owner: String::new(),
            party_id,
            person_ids,
            watchers: Vec::new(),
            phase: input.phase.trim().to_owned(),
            status: CaseStatus::Open,
            currency_code: value.as_ref().map(|(_, c)| c.clone()).unwrap_or_default(),
            expected_value: value.map(|(a, _)| a).unwrap_or_default(),
            probability_override: None,
            probability: 0,
            expected_close_date: None,
            planned_cost: None,
            actual_cost: None,
            planned_revenue: None,
            actual_revenue: None,
            document_links: Json(Vec::new()),
            lost_reason: String::new(),
            closed_at: None,
            created_at: now,
            updated_at: now,
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        v.check(
            !row.currency_code.is_empty(),
            "case.expected_value",
            "is required: the case's amounts are in its currency",
        );
        for path in EDITABLE {
            if *path != "expected_value" {
                set_field(&mut row, &input, path, &mut v);
            }
        }
        v.finish()?;
        let pipeline = pipeline_store::get(&mut *self.pool.acquire().await?, pipeline_id)
            .await?
            .ok_or_else(|| FieldViolations::single("case.pipeline_id", "is not a pipeline"))?;
        let phase = match row.phase.as_str() {
            "" => pipeline.phases.first().cloned(),
            code => pipeline.phase(code).cloned(),
        }
        .filter(|p| !p.group.is_closed())
        .ok_or_else(|| {
            FieldViolations::single("case.phase", "is not an open phase of the pipeline")
        })?;
        row.phase = phase.code.clone();
        row.probability = probability(&phase, row.probability_override);
        self.require_clients(row.party_id, &row.person_ids, "case")
            .await?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        store::insert(&mut tx, &row).await?;
        let case = answer(&mut tx, row.id).await?;
        events::case_changed(&mut tx, &case, "created").await?;
        claim.commit(tx, &case).await?;
        Ok(case)
    }

    pub async fn get_case(&self, req: GetCaseRequest) -> Result<Case> {
        let id = request::id(&req.id, "id")?;
        answer(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_case(&self, caller: &str, req: UpdateCaseRequest) -> Result<Case> {
        let mut v = FieldViolations::new();
        let input = required(req.case.clone(), "case", &mut v);
        let id = uuid(&input.id, "case.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Case", id))?;
        check_etag("case", &input.etag, row.version)?;
        let mut v = FieldViolations::new();
        for path in paths {
            set_field(&mut row, &input, path, &mut v);
        }
        v.finish()?;
        let pipeline = pipeline_store::get(&mut tx, row.pipeline_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Pipeline", row.pipeline_id))?;
        if let Some(phase) = pipeline.phase(&row.phase) {
            row.probability = probability(phase, row.probability_override);
        }
        store::update(&mut tx, &row, caller).await?;
        let case = answer(&mut tx, id).await?;
        events::case_changed(&mut tx, &case, "updated").await?;
        claim.commit(tx, &case).await?;
        Ok(case)
    }

    pub async fn list_cases(&self, req: ListCasesRequest) -> Result<ListCasesResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(&'a str, &'a str, &'a str, &'a str, i32);
        let mut v = FieldViolations::new();
        let filters = Filters(
            &req.pipeline_id,
            &req.phase,
            &req.owner,
            &req.party_id,
            req.status,
        );
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let filter = Filter {
            pipeline: optional_uuid(&req.pipeline_id, "pipeline_id", &mut v),
            phase: given(&req.phase),
            owner: given(&req.owner),
            party: optional_uuid(&req.party_id, "party_id", &mut v),
            status: CaseStatus::optional(req.status, "status", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let histories = store::histories(&mut conn, &ids).await?;
        let cases = rows
            .iter()
            .map(|row| convert::case(row, histories.get(&row.id).map_or(&[], Vec::as_slice)))
            .collect();
        Ok(ListCasesResponse {
            cases,
            next_page_token,
        })
    }

    pub async fn move_case(&self, caller: &str, req: MoveCaseRequest) -> Result<Case> {
        let id = request::id(&req.id, "id")?;
        let target = req.phase.trim().to_owned();
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Case", id))?;
        check_etag("case", &req.etag, row.version)?;
        let pipeline = pipeline_store::get(&mut tx, row.pipeline_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Pipeline", row.pipeline_id))?;
        let to = pipeline.phase(&target).ok_or_else(|| {
            FieldViolations::single("phase", "is not a phase of the case's pipeline")
        })?;
        let from = pipeline
            .phase(&row.phase)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("case {id} in no phase")))?;
        let reopened = from.group.is_closed();
        pipelines::may_move(from, to, req.reopen).map_err(|error| match error {
            MoveError::Closed => Refusal::CaseClosed { id }.into(),
            MoveError::ByClosing => Refusal::CloseToClose {
                phase: to.code.clone(),
            }
            .into(),
            MoveError::Same => ServiceError::from(FieldViolations::single(
                "phase",
                "is the phase the case is in",
            )),
        })?;
        row.phase = to.code.clone();
        row.status = CaseStatus::Open;
        row.closed_at = None;
        row.lost_reason.clear();
        row.probability = probability(to, row.probability_override);
        store::pass(&mut tx, id, &row.phase, Utc::now()).await?;
        store::update(&mut tx, &row, caller).await?;
        let case = answer(&mut tx, id).await?;
        let change = if reopened { "reopened" } else { "moved" };
        events::case_changed(&mut tx, &case, change).await?;
        claim.commit(tx, &case).await?;
        Ok(case)
    }

    pub async fn close_case(&self, caller: &str, req: CloseCaseRequest) -> Result<Case> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        let outcome = CaseStatus::require(req.outcome, "outcome", &mut v);
        v.check(
            outcome != CaseStatus::Open,
            "outcome",
            "a case closes WON or LOST",
        );
        let lost_reason = req.lost_reason.trim().to_owned();
        v.check(
            outcome != CaseStatus::Lost || !lost_reason.is_empty(),
            "lost_reason",
            "a lost case says why",
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Case", id))?;
        check_etag("case", &req.etag, row.version)?;
        if row.status != CaseStatus::Open {
            return Err(Refusal::AlreadyClosed { id }.into());
        }
        let pipeline = pipeline_store::get(&mut tx, row.pipeline_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Pipeline", row.pipeline_id))?;
        let group = match outcome {
            CaseStatus::Won => Group::Won,
            _ => Group::Lost,
        };
        let phase = pipeline
            .phases
            .iter()
            .filter(|p| p.group == group)
            .find(|p| req.phase.trim().is_empty() || p.code == req.phase.trim())
            .ok_or_else(|| {
                FieldViolations::single("phase", "is not a closed phase of that outcome")
            })?;
        row.phase = phase.code.clone();
        row.status = outcome;
        row.closed_at = Some(store::pass(&mut tx, id, &row.phase, Utc::now()).await?);
        row.lost_reason = match outcome {
            CaseStatus::Lost => lost_reason,
            _ => String::new(),
        };
        row.probability = probability(phase, row.probability_override);
        store::update(&mut tx, &row, caller).await?;
        let case = answer(&mut tx, id).await?;
        events::case_changed(&mut tx, &case, outcome.as_str()).await?;
        claim.commit(tx, &case).await?;
        Ok(case)
    }
}

fn probability(phase: &Phase, overridden: Option<i16>) -> i16 {
    let overridden = overridden.and_then(|p| u8::try_from(p).ok());
    i16::from(pipelines::probability(phase, overridden))
}

/// Sets one editable field of `row` from `input`, checked; violations name `case.<path>`.
fn set_field(row: &mut CaseRow, input: &Case, path: &str, v: &mut FieldViolations) {
    let field = format!("case.{path}");
    let field = field.as_str();
    let amount = |value: Option<&crm_proto::crm::common::v1::Money>,
                  v: &mut FieldViolations|
     -> Option<Decimal> {
        let (amount, currency) = money(value, field, v)?;
        v.check(
            currency == row.currency_code,
            format!("{field}.currency_code"),
            format!("must be the case's currency, {}", row.currency_code),
        );
        v.check(
            !amount.is_sign_negative(),
            format!("{field}.amount"),
            "must not be negative",
        );
        Some(amount)
    };
    match path {
        "title" => row.title = text(&input.title, field, v),
        "description" => row.description = input.description.trim_end().to_owned(),
        "owner" => row.owner = text(&input.owner, field, v),
        "watchers" => {
            row.watchers = input
                .watchers
                .iter()
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .collect();
            row.watchers.sort();
            row.watchers.dedup();
        }
        "expected_value" => {
            if let Some(value) = amount(input.expected_value.as_ref(), v) {
                row.expected_value = value;
            } else {
                v.add(field, "is required");
            }
        }
        "probability_override" => {
            row.probability_override = input.probability_override.map(|p| {
                v.check((0..=100).contains(&p), field, "must be 0 to 100");
                p.clamp(0, 100) as i16
            })
        }
        "expected_close_date" => {
            row.expected_close_date = date(input.expected_close_date.as_ref(), field, v)
        }
        "planned_cost" => row.planned_cost = amount(input.planned_cost.as_ref(), v),
        "actual_cost" => row.actual_cost = amount(input.actual_cost.as_ref(), v),
        "planned_revenue" => row.planned_revenue = amount(input.planned_revenue.as_ref(), v),
        "actual_revenue" => row.actual_revenue = amount(input.actual_revenue.as_ref(), v),
        _ => {
            row.document_links = Json(
                input
                    .document_links
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let at = format!("{field}[{i}]");
                        let kind = DocumentKind::require(l.kind, &format!("{at}.kind"), v);
                        let reference = l.reference.trim().to_owned();
                        v.check(
                            !reference.is_empty(),
                            format!("{at}.reference"),
                            "is required",
                        );
                        DocumentLink {
                            kind: kind.as_str().to_owned(),
                            reference,
                        }
                    })
                    .collect(),
            )
        }
    }
}

pub(crate) async fn answer(conn: &mut PgConnection, id: Uuid) -> Result<Case> {
    let row = store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Case", id))?;
    let histories = store::histories(conn, &[id]).await?;
    let history = histories.get(&id).map_or(&[][..], Vec::as_slice);
    Ok(convert::case(&row, history))
}
