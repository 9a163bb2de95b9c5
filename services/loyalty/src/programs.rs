//! Programs: their point types, operation types and accrual rules.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, currency, date, mask_paths, optional_time, uuid},
    store::Page,
};
use crm_proto::crm::loyalty::v1::{
    AccrualRules, Campaign, CreateProgramRequest, DefineOperationTypeRequest,
    DefinePointTypeRequest, GetProgramRequest, ListProgramsRequest, ListProgramsResponse, Program,
    SetAccrualRulesRequest, UpdateProgramRequest,
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    Loyalty,
    domain::{self, code, display_name},
    error::Refusal,
    events,
    lookups::{check_validity, program_in, program_to_proto, require_accrue_type},
    store::{self, OperationTypeRow, PointTypeRow, ProgramRow},
};

impl Loyalty {
    pub async fn create_program(
        &self,
        subject: &str,
        req: CreateProgramRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        v.check(req.program.is_some(), "program", "is required");
        let input = req.program.clone().unwrap_or_default();
        let kind = domain::ProgramKind::require(input.kind, "program.kind", &mut v);
        // A new program is a draft unless it says it is active.
        let status =
            domain::ProgramStatus::from_i32(input.status).unwrap_or(domain::ProgramStatus::Draft);
        v.check(
            status != domain::ProgramStatus::Closed,
            "program.status",
            "a new program is DRAFT or ACTIVE",
        );
        let currency = currency(&input.currency_code, "program.currency_code", &mut v);
        let program = ProgramRow {
            id: Uuid::now_v7(),
            display_name: display_name(&input.display_name, "program.display_name", &mut v),
            kind,
            currency_code: currency,
            status,
            valid_from: date(input.valid_from.as_ref(), "program.valid_from", &mut v),
            valid_to: date(input.valid_to.as_ref(), "program.valid_to", &mut v),
            accrual_rules: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
            version: 1,
        };
        check_validity(&program, &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::insert_program(&mut tx, &program).await?;
        let program = program_in(&mut tx, program.id).await?;
        events::program_changed(&mut tx, &program, "created").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn get_program(&self, req: GetProgramRequest) -> Result<Program> {
        let id = request::id(&req.id, "id")?;
        program_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_program(
        &self,
        subject: &str,
        req: UpdateProgramRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        v.check(req.program.is_some(), "program", "is required");
        let input = req.program.clone().unwrap_or_default();
        let id = uuid(&input.id, "program.id", &mut v);
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &["display_name", "status", "valid_from", "valid_to"],
            &mut v,
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let mut program = store::lock_program(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", id))?;
        check_etag("program", &input.etag, program.version)?;
        let mut v = FieldViolations::new();
        for path in paths {
            match path {
                "display_name" => {
                    program.display_name =
                        display_name(&input.display_name, "program.display_name", &mut v)
                }
                "status" => {
                    program.status =
                        domain::ProgramStatus::require(input.status, "program.status", &mut v)
                }
                "valid_from" => {
                    program.valid_from =
                        date(input.valid_from.as_ref(), "program.valid_from", &mut v)
                }
                _ => program.valid_to = date(input.valid_to.as_ref(), "program.valid_to", &mut v),
            }
        }
        check_validity(&program, &mut v);
        v.finish()?;
        store::update_program(&mut tx, &program, subject).await?;
        let program = program_in(&mut tx, id).await?;
        events::program_changed(&mut tx, &program, "updated").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn list_programs(&self, req: ListProgramsRequest) -> Result<ListProgramsResponse> {
        let mut v = FieldViolations::new();
        let status = domain::ProgramStatus::optional(req.status, "status", &mut v);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &status, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_programs(&mut conn, status, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let mut programs = Vec::with_capacity(rows.len());
        for row in &rows {
            programs.push(program_to_proto(&mut conn, row).await?);
        }
        Ok(ListProgramsResponse {
            programs,
            next_page_token,
        })
    }

    pub async fn define_point_type(
        &self,
        subject: &str,
        req: DefinePointTypeRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(req.point_type.is_some(), "point_type", "is required");
        let input = req.point_type.clone().unwrap_or_default();
        // Points never expire unless the type says how.
        let expiry_policy = domain::ExpiryPolicy::from_i32(input.expiry_policy)
            .unwrap_or(domain::ExpiryPolicy::Never);
        v.check(
            expiry_policy != domain::ExpiryPolicy::MonthsAfterEarning
                || (1..=240).contains(&input.expiry_months),
            "point_type.expiry_months",
            "MONTHS_AFTER_EARNING needs 1 to 240 months",
        );
        v.check(
            input.reversal_floor <= 0,
            "point_type.reversal_floor",
            "must be 0 or negative",
        );
        let row = PointTypeRow {
            code: code(&input.code, "point_type.code", &mut v),
            display_name: display_name(&input.display_name, "point_type.display_name", &mut v),
            qualifying: input.qualifying,
            expiry_policy,
            expiry_months: input.expiry_months,
            allow_negative: input.allow_negative,
            reversal_floor: input.reversal_floor,
        };
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let existing = store::point_types(&mut tx, program_id)
            .await?
            .into_iter()
            .find(|t| t.code == row.code);
        if existing.is_some_and(|t| t.qualifying != row.qualifying)
            && store::point_type_used(&mut tx, program_id, &row.code).await?
        {
            let code = row.code.clone();
            return Err(Refusal::QualifyingFixed { code }.into());
        }
        store::define_point_type(&mut tx, program_id, &row).await?;
        store::touch_program(&mut tx, program_id, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        events::program_changed(&mut tx, &program, "point_type_defined").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn define_operation_type(
        &self,
        subject: &str,
        req: DefineOperationTypeRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(
            req.operation_type.is_some(),
            "operation_type",
            "is required",
        );
        let input = req.operation_type.clone().unwrap_or_default();
        let direction =
            domain::Direction::require(input.direction, "operation_type.direction", &mut v);
        let row = OperationTypeRow {
            code: code(&input.code, "operation_type.code", &mut v),
            display_name: display_name(&input.display_name, "operation_type.display_name", &mut v),
            direction,
            default_point_type: code(
                &input.default_point_type,
                "operation_type.default_point_type",
                &mut v,
            ),
        };
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let point_types = store::point_types(&mut tx, program_id).await?;
        if !point_types.iter().any(|t| t.code == row.default_point_type) {
            let mut v = FieldViolations::new();
            v.add(
                "operation_type.default_point_type",
                "is not a point type of the program",
            );
            return Err(v.into());
        }
        store::define_operation_type(&mut tx, program_id, &row).await?;
        store::touch_program(&mut tx, program_id, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        events::program_changed(&mut tx, &program, "operation_type_defined").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn set_accrual_rules(
        &self,
        subject: &str,
        req: SetAccrualRulesRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(req.rules.is_some(), "rules", "is required");
        let rules = accrual_rules(&req.rules.clone().unwrap_or_default(), &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        require_accrue_type(
            &mut tx,
            program_id,
            &rules.operation_type,
            "rules.operation_type",
        )
        .await?;
        store::set_accrual_rules(&mut tx, program_id, &rules, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        events::program_changed(&mut tx, &program, "accrual_rules_set").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }
}

/// Parses the rules a caller sent into the form they are stored in, noting every bad field.
fn accrual_rules(input: &AccrualRules, v: &mut FieldViolations) -> store::AccrualRulesJson {
    let mut category_rates = std::collections::BTreeMap::new();
    for (i, rate) in input.category_rates.iter().enumerate() {
        let at = format!("rules.category_rates[{i}]");
        let category = rate.category.trim().to_owned();
        v.check(
            !category.is_empty(),
            format!("{at}.category"),
            "must not be empty",
        );
        let value = rate_of(
            &rate.points_per_unit,
            &format!("{at}.points_per_unit"),
            "",
            v,
        );
        if category_rates.insert(category, value).is_some() {
            v.add(format!("{at}.category"), "is given twice");
        }
    }
    v.check(
        input.cap_per_invoice >= 0,
        "rules.cap_per_invoice",
        "must be 0 (no cap) or more",
    );
    let mut tier_multipliers = std::collections::BTreeMap::new();
    for (i, tier) in input.tier_multipliers.iter().enumerate() {
        let at = format!("rules.tier_multipliers[{i}]");
        let multiplier = rate_of(&tier.multiplier, &format!("{at}.multiplier"), "", v);
        if tier_multipliers
            .insert(code(&tier.tier, &format!("{at}.tier"), v), multiplier)
            .is_some()
        {
            v.add(format!("{at}.tier"), "is given twice");
        }
    }
    let campaigns = input
        .campaigns
        .iter()
        .enumerate()
        .map(|(i, c)| campaign(c, &format!("rules.campaigns[{i}]"), v))
        .collect();
    v.check(
        input.cap_per_period >= 0,
        "rules.cap_per_period",
        "must be 0 (no cap) or more",
    );
    v.check(
        input.cap_per_period == 0 || (1..=3660).contains(&input.period_days),
        "rules.period_days",
        "a cap per period needs a period of 1 to 3660 days",
    );
    store::AccrualRulesJson {
        operation_type: code(&input.operation_type, "rules.operation_type", v),
        points_per_unit: rate_of(&input.points_per_unit, "rules.points_per_unit", "", v),
        category_rates,
        minimum_amount: rate_of(&input.minimum_amount, "rules.minimum_amount", "0", v),
        cap_per_invoice: input.cap_per_invoice,
        tier_multipliers,
        campaigns,
        cap_per_period: input.cap_per_period,
        period_days: input.period_days,
    }
}

fn campaign(c: &Campaign, at: &str, v: &mut FieldViolations) -> store::CampaignJson {
    let start = optional_time(c.start_time.as_ref(), &format!("{at}.start_time"), v);
    let end = optional_time(c.end_time.as_ref(), &format!("{at}.end_time"), v);
    v.check(
        start.zip(end).is_none_or(|(s, e)| e > s),
        format!("{at}.end_time"),
        "must be after start_time",
    );
    store::CampaignJson {
        code: code(&c.code, &format!("{at}.code"), v),
        multiplier: rate_of(&c.multiplier, &format!("{at}.multiplier"), "", v),
        categories: c
            .categories
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect(),
        start_time: start,
        end_time: end,
    }
}

/// A rate, multiplier or amount as a normalised decimal; `default` stands in for an empty field.
fn rate_of(raw: &str, field: &str, default: &str, v: &mut FieldViolations) -> String {
    let raw = Some(raw.trim())
        .filter(|r| !r.is_empty())
        .unwrap_or(default);
    // Bounded, so points from a rate stay far from where decimals overflow.
    match raw.parse::<Decimal>() {
        Ok(value) if !value.is_sign_negative() && value <= Decimal::from(1_000_000) => {
            value.normalize().to_string()
        }
        _ => {
            v.add(
                field,
                "must be a decimal number from 0 to 1000000, e.g. 1 or 0.5",
            );
            String::new()
        }
    }
}
