//! The catalogue: rewards of a loyalty program, their prices, windows, limits and restrictions.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, code, mask_paths, money, optional_time, optional_uuid, uuid},
    store::Page,
};
use crm_proto::crm::{
    loyalty::v1::{Direction, Program, ProgramStatus},
    rewards::v1::*,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Rewards, convert,
    domain::{self, RewardKind, RewardStatus, VoucherSource},
    error::Refusal,
    events,
    peers::REDEMPTION,
    store::rewards::{self as store, Filter, RewardRow},
};

/// What UpdateReward may change.
const EDITABLE: &[&str] = &[
    "status",
    "display_name",
    "description",
    "category",
    "image_uri",
    "price_points",
    "co_payment",
    "available_from",
    "available_until",
    "per_member_limit",
    "total_limit",
    "tier_codes",
    "base_ids",
    "voucher_valid_days",
    "low_stock_threshold",
];

/// The highest price a unit may have: far above any real catalogue, and low enough that an
/// order's total never overflows.
const MAX_PRICE_POINTS: i64 = 1_000_000_000;

impl Rewards {
    pub async fn create_reward(&self, caller: &str, req: CreateRewardRequest) -> Result<Reward> {
        let mut v = FieldViolations::new();
        let input = request::required(req.reward.clone(), "reward", &mut v);
        let kind = RewardKind::require(input.kind, "reward.kind", &mut v);
        let voucher_source = match kind {
            RewardKind::Voucher => Some(VoucherSource::require(
                input.voucher_source,
                "reward.voucher_source",
                &mut v,
            )),
            RewardKind::Material => {
                v.check(
                    input.voucher_source == 0,
                    "reward.voucher_source",
                    "only voucher rewards have one",
                );
                None
            }
        };
        let mut row = RewardRow {
            id: Uuid::now_v7(),
            program_id: uuid(&input.program_id, "reward.program_id", &mut v),
            point_type: input.point_type.trim().to_owned(),
            kind,
            status: RewardStatus::Draft,
            display_name: String::new(),
            description: String::new(),
            category: String::new(),
            image_uri: String::new(),
            price_points: 0,
            co_payment_amount: None,
            co_payment_currency: None,
            available_from: None,
            available_until: None,
            per_member_limit: 0,
            total_limit: 0,
            tier_codes: Vec::new(),
            base_ids: Vec::new(),
            voucher_source,
            voucher_valid_days: 0,
            low_stock_threshold: 0,
            ordered_units: 0,
            available_units: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        for path in EDITABLE {
            if *path != "status" || input.status != 0 {
                set_field(&mut row, &input, path, &mut v);
            }
        }
        domain::check_window(row.available_from, row.available_until, &mut v);
        v.finish()?;
        let program = self.program(row.program_id, "reward.program_id").await?;
        if program.status() == ProgramStatus::Closed {
            return Err(Refusal::ProgramClosed {
                program: row.program_id,
            }
            .into());
        }
        let mut v = FieldViolations::new();
        check_against_program(&program, &mut row, &mut v);
        v.finish()?;
        self.require_bases(&row.base_ids, "reward.base_ids").await?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        store::insert(&mut tx, &row).await?;
        let reward = answer(&mut tx, row.id).await?;
        events::reward_changed(&mut tx, &reward, "created").await?;
        claim.commit(tx, &reward).await?;
        Ok(reward)
    }

    pub async fn get_reward(&self, req: GetRewardRequest) -> Result<Reward> {
        let id = request::id(&req.id, "id")?;
        answer(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_reward(&self, caller: &str, req: UpdateRewardRequest) -> Result<Reward> {
        let mut v = FieldViolations::new();
        let input = request::required(req.reward.clone(), "reward", &mut v);
        let id = uuid(&input.id, "reward.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v);
        v.finish()?;
        // Checked against the stored reward first, so peers are asked before any row is locked;
        // the program and kind they depend on never change.
        let stored = answer_row(&mut *self.pool.acquire().await?, id).await?;
        let mut planned = stored.clone();
        let mut v = FieldViolations::new();
        for path in &paths {
            set_field(&mut planned, &input, path, &mut v);
        }
        domain::check_window(planned.available_from, planned.available_until, &mut v);
        v.finish()?;
        if paths.contains(&"tier_codes") {
            let program = self
                .program(planned.program_id, "reward.program_id")
                .await?;
            let mut v = FieldViolations::new();
            check_against_program(&program, &mut planned, &mut v);
            v.finish()?;
        }
        if paths.contains(&"base_ids") {
            self.require_bases(&planned.base_ids, "reward.base_ids")
                .await?;
        }
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", id))?;
        check_etag("reward", &input.etag, row.version)?;
        if row.status == RewardStatus::Archived {
            return Err(Refusal::RewardArchived { id }.into());
        }
        let was = row.status;
        let mut v = FieldViolations::new();
        for path in &paths {
            set_field(&mut row, &input, path, &mut v);
        }
        domain::check_window(row.available_from, row.available_until, &mut v);
        v.finish()?;
        store::update(&mut tx, &row, caller).await?;
        let reward = answer(&mut tx, id).await?;
        let change = if was != row.status {
            "activated"
        } else {
            "updated"
        };
        events::reward_changed(&mut tx, &reward, change).await?;
        claim.commit(tx, &reward).await?;
        Ok(reward)
    }

    pub async fn list_rewards(&self, req: ListRewardsRequest) -> Result<ListRewardsResponse> {
        let mut v = FieldViolations::new();
        let filters = (
            &req.program_id,
            req.kind,
            &req.category,
            req.status,
            req.available_now,
            &req.affordable_for_membership_id,
        );
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let mut filter = Filter {
            program_id: optional_uuid(&req.program_id, "program_id", &mut v),
            kind: RewardKind::optional(req.kind, "kind", &mut v),
            category: (!req.category.trim().is_empty()).then(|| req.category.trim().to_owned()),
            status: RewardStatus::optional(req.status, "status", &mut v),
            available_now: req.available_now,
            affordable: None,
        };
        let member = optional_uuid(
            &req.affordable_for_membership_id,
            "affordable_for_membership_id",
            &mut v,
        );
        v.finish()?;
        if let Some(member) = member {
            let membership = self
                .membership(member, "affordable_for_membership_id")
                .await?;
            let program = request::id(&membership.program_id, "program_id")?;
            if filter.program_id.is_some_and(|p| p != program) {
                return Ok(ListRewardsResponse::default());
            }
            filter.program_id = Some(program);
            filter.affordable = Some(self.available_points(member).await?);
        }
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListRewardsResponse {
            rewards: rows.iter().map(convert::reward).collect(),
            next_page_token,
        })
    }

    pub async fn archive_reward(&self, caller: &str, req: ArchiveRewardRequest) -> Result<Reward> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", id))?;
        check_etag("reward", &req.etag, row.version)?;
        let archiving = row.status != RewardStatus::Archived;
        if archiving {
            row.status = RewardStatus::Archived;
            store::update(&mut tx, &row, caller).await?;
        }
        let reward = answer(&mut tx, id).await?;
        if archiving {
            events::reward_changed(&mut tx, &reward, "archived").await?;
        }
        claim.commit(tx, &reward).await?;
        Ok(reward)
    }
}

/// Sets one editable field of `row` from `input`, checked; violations name `reward.<path>`. One
/// arm per path of [`EDITABLE`], so it is as long as the list.
fn set_field(row: &mut RewardRow, input: &Reward, path: &str, v: &mut FieldViolations) {
    let field = format!("reward.{path}");
    let field = field.as_str();
    match path {
        "status" => {
            let to = RewardStatus::require(input.status, field, v);
            domain::check_status_change(row.status, to, v);
            row.status = to;
        }
        "display_name" => row.display_name = domain::display_name(&input.display_name, field, v),
        "description" => row.description = input.description.trim().to_owned(),
        "category" => {
            row.category = match input.category.trim() {
                "" => String::new(),
                category => code(category, field, v),
            }
        }
        "image_uri" => {
            let uri = input.image_uri.trim();
            v.check(
                uri.is_empty() || (uri.contains("://") && !uri.contains(char::is_whitespace)),
                field,
                "must be an absolute address such as https://cdn.example.com/kettle.png",
            );
            row.image_uri = uri.to_owned();
        }
        "price_points" => {
            v.check(
                (1..=MAX_PRICE_POINTS).contains(&input.price_points),
                field,
                format!("must be from 1 to {MAX_PRICE_POINTS}"),
            );
            row.price_points = input.price_points;
        }
        "co_payment" => {
            let payment = money(input.co_payment.as_ref(), field, v);
            let amount_field = format!("{field}.amount");
            if let Some((amount, _)) = &payment
                && !v.fields().any(|f| f == amount_field)
            {
                v.check(
                    amount.is_sign_positive() && !amount.is_zero(),
                    amount_field,
                    "must be positive; leave co_payment unset for none",
                );
            }
            (row.co_payment_amount, row.co_payment_currency) = payment.unzip();
        }
        "available_from" => {
            row.available_from = optional_time(input.available_from.as_ref(), field, v)
        }
        "available_until" => {
            row.available_until = optional_time(input.available_until.as_ref(), field, v)
        }
        "per_member_limit" => {
            row.per_member_limit = domain::non_negative(input.per_member_limit, field, v)
        }
        "total_limit" => row.total_limit = domain::non_negative(input.total_limit, field, v),
        "tier_codes" => {
            let mut tiers = Vec::new();
            for (i, tier) in input.tier_codes.iter().enumerate() {
                let tier = code(tier, &format!("{field}[{i}]"), v);
                if !tiers.contains(&tier) {
                    tiers.push(tier);
                }
            }
            row.tier_codes = tiers;
        }
        "base_ids" => {
            let mut bases = Vec::new();
            for (i, base) in input.base_ids.iter().enumerate() {
                let base = uuid(base, &format!("{field}[{i}]"), v);
                if !bases.contains(&base) {
                    bases.push(base);
                }
            }
            row.base_ids = bases;
        }
        "voucher_valid_days" => {
            row.voucher_valid_days = domain::non_negative(input.voucher_valid_days, field, v);
            v.check(
                row.voucher_valid_days == 0 || row.kind == RewardKind::Voucher,
                field,
                "applies to voucher rewards only",
            );
        }
        _ => {
            row.low_stock_threshold = domain::non_negative(input.low_stock_threshold, field, v);
            v.check(
                row.low_stock_threshold == 0 || row.kind == RewardKind::Material,
                field,
                "applies to material rewards only",
            );
        }
    }
}

/// The point type must be the program's (its first when none is named), every tier one of its
/// tiers, and the program must have the operation type that orders' captures redeem with.
fn check_against_program(program: &Program, row: &mut RewardRow, v: &mut FieldViolations) {
    let redeems = program
        .operation_types
        .iter()
        .any(|t| t.code == REDEMPTION && t.direction() == Direction::Settle);
    v.check(
        redeems,
        "reward.program_id",
        format!("the program defines no {REDEMPTION:?} operation type (SETTLE), which reward orders redeem points with"),
    );
    if row.point_type.is_empty() {
        match program.point_types.first() {
            Some(first) => row.point_type = first.code.clone(),
            None => v.add("reward.program_id", "the program defines no point type yet"),
        }
    } else if !program.point_types.iter().any(|t| t.code == row.point_type) {
        v.add("reward.point_type", "is not a point type of the program");
    }
    for (i, tier) in row.tier_codes.iter().enumerate() {
        v.check(
            program.tiers.iter().any(|t| &t.code == tier),
            format!("reward.tier_codes[{i}]"),
            "is not a tier of the program",
        );
    }
}

async fn answer_row(conn: &mut PgConnection, id: Uuid) -> Result<RewardRow> {
    store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Reward", id))
}

pub(crate) async fn answer(conn: &mut PgConnection, id: Uuid) -> Result<Reward> {
    Ok(convert::reward(&answer_row(conn, id).await?))
}
