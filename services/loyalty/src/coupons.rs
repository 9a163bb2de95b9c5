//! Coupons: definitions (what a coupon gives, how often a code can be used, for whom, when),
//! codes generated in bulk, validation, and redemption that never exceeds a code's limit: the use
//! count only grows through a conditional update.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, audit, mask_paths, optional_time, timestamp, uuid},
    store::{Page, Tx},
};
use crm_proto::crm::loyalty::v1::{
    Coupon, CouponDefinition, CouponDefinitionChanged, CouponRedeemed, CouponRedemption,
    CouponValidation, CouponsGenerated, CreateCouponDefinitionRequest, GenerateCouponsRequest,
    GenerateCouponsResponse, GetCouponDefinitionRequest, ListCouponDefinitionsRequest,
    ListCouponDefinitionsResponse, RedeemCouponRequest, UpdateCouponDefinitionRequest,
    ValidateCouponRequest,
};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Loyalty,
    domain::{self, display_name},
    error::Refusal,
    error::id_used,
    events, store,
};

const MAX_GENERATED: usize = 10_000;
/// Why `coupon` cannot be redeemed by `membership` now (use limits aside), if it cannot.
fn refusal(
    coupon: &store::CouponRow,
    definition: &store::DefinitionRow,
    membership: Uuid,
    member: Option<&store::MembershipRow>,
) -> Option<&'static str> {
    let now = Utc::now();
    match member {
        Some(m) if m.program_id != definition.program_id => Some("MEMBERSHIP_NOT_IN_PROGRAM"),
        None => Some("MEMBERSHIP_NOT_IN_PROGRAM"),
        Some(m) if m.status != domain::MembershipStatus::Active => Some("MEMBERSHIP_NOT_ACTIVE"),
        _ if definition.per_member && coupon.membership_id != Some(membership) => {
            Some("COUPON_NOT_FOR_MEMBER")
        }
        _ if definition.valid_from.is_some_and(|from| now < from) => Some("COUPON_NOT_YET_VALID"),
        _ if definition.valid_to.is_some_and(|to| now >= to) => Some("COUPON_EXPIRED"),
        _ if coupon.uses >= definition.uses_per_code => Some("COUPON_USED_UP"),
        _ => None,
    }
}

impl Loyalty {
    pub async fn create_coupon_definition(
        &self,
        subject: &str,
        req: CreateCouponDefinitionRequest,
    ) -> Result<CouponDefinition> {
        let mut v = FieldViolations::new();
        v.check(req.definition.is_some(), "definition", "is required");
        let input = req.definition.clone().unwrap_or_default();
        let program_id = uuid(&input.program_id, "definition.program_id", &mut v);
        let decimal = |raw: &str, field: &str, v: &mut FieldViolations| {
            let value = raw
                .trim()
                .parse::<Decimal>()
                .ok()
                .filter(|d| d.is_sign_positive() && !d.is_zero());
            v.check(value.is_some(), field, "must be a positive decimal number");
            value
        };
        let kind = domain::CouponKind::require(input.kind, "definition.kind", &mut v);
        let (percentage, amount) = match kind {
            domain::CouponKind::Percentage => {
                let pct = decimal(&input.percentage, "definition.percentage", &mut v);
                v.check(
                    pct.is_none_or(|p| p <= Decimal::ONE_HUNDRED),
                    "definition.percentage",
                    "must be at most 100",
                );
                (pct, None)
            }
            domain::CouponKind::FixedAmount => {
                (None, decimal(&input.amount, "definition.amount", &mut v))
            }
            domain::CouponKind::Product => {
                v.check(
                    !input.product_id.trim().is_empty(),
                    "definition.product_id",
                    "is required for a PRODUCT coupon",
                );
                (None, None)
            }
        };
        v.check(
            input.uses_per_code >= 1,
            "definition.uses_per_code",
            "must be at least 1 (1: single use)",
        );
        let valid_from = optional_time(input.valid_from.as_ref(), "definition.valid_from", &mut v);
        let valid_to = optional_time(input.valid_to.as_ref(), "definition.valid_to", &mut v);
        if let (Some(from), Some(to)) = (valid_from, valid_to) {
            v.check(to > from, "definition.valid_to", "must be after valid_from");
        }
        let name = display_name(&input.display_name, "definition.display_name", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let id = Uuid::now_v7();
        let row = store::DefinitionRow {
            id,
            program_id,
            display_name: name,
            kind,
            percentage,
            amount,
            product_id: input.product_id.trim().to_owned(),
            uses_per_code: input.uses_per_code,
            per_member: input.per_member,
            valid_from,
            valid_to,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
            version: 1,
        };
        store::insert_definition(&mut tx, &row).await?;
        let definition = definition_to_proto(&definition(&mut tx, id).await?);
        let event = CouponDefinitionChanged {
            definition: Some(definition.clone()),
        };
        events::COUPON.enqueue(&mut tx, id, &event).await?;
        claim.commit(tx, &definition).await?;
        Ok(definition)
    }

    pub async fn get_coupon_definition(
        &self,
        req: GetCouponDefinitionRequest,
    ) -> Result<CouponDefinition> {
        let id = request::id(&req.id, "id")?;
        let row = definition(&mut *self.pool.acquire().await?, id).await?;
        Ok(definition_to_proto(&row))
    }

    pub async fn list_coupon_definitions(
        &self,
        req: ListCouponDefinitionsRequest,
    ) -> Result<ListCouponDefinitionsResponse> {
        let mut v = FieldViolations::new();
        let program = uuid(&req.program_id, "program_id", &mut v);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &program, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_program(&mut conn, program)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program))?;
        let mut rows =
            store::list_definitions(&mut conn, program, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListCouponDefinitionsResponse {
            definitions: rows.iter().map(definition_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn update_coupon_definition(
        &self,
        subject: &str,
        req: UpdateCouponDefinitionRequest,
    ) -> Result<CouponDefinition> {
        let mut v = FieldViolations::new();
        v.check(req.definition.is_some(), "definition", "is required");
        let input = req.definition.clone().unwrap_or_default();
        let id = uuid(&input.id, "definition.id", &mut v);
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &["display_name", "uses_per_code", "valid_from", "valid_to"],
            &mut v,
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let mut row = store::lock_definition(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("CouponDefinition", id))?;
        check_etag("coupon definition", &input.etag, row.version)?;
        let mut v = FieldViolations::new();
        for path in paths {
            match path {
                "display_name" => {
                    row.display_name =
                        display_name(&input.display_name, "definition.display_name", &mut v)
                }
                "uses_per_code" => {
                    v.check(
                        input.uses_per_code >= 1,
                        "definition.uses_per_code",
                        "must be at least 1 (1: single use)",
                    );
                    row.uses_per_code = input.uses_per_code;
                }
                "valid_from" => {
                    row.valid_from =
                        optional_time(input.valid_from.as_ref(), "definition.valid_from", &mut v)
                }
                _ => {
                    row.valid_to =
                        optional_time(input.valid_to.as_ref(), "definition.valid_to", &mut v)
                }
            }
        }
        if let (Some(from), Some(to)) = (row.valid_from, row.valid_to) {
            v.check(to > from, "definition.valid_to", "must be after valid_from");
        }
        v.finish()?;
        store::update_definition(&mut tx, &row, subject).await?;
        let definition = definition_to_proto(&definition(&mut tx, id).await?);
        let event = CouponDefinitionChanged {
            definition: Some(definition.clone()),
        };
        events::COUPON.enqueue(&mut tx, id, &event).await?;
        claim.commit(tx, &definition).await?;
        Ok(definition)
    }

    pub async fn generate_coupons(
        &self,
        subject: &str,
        req: GenerateCouponsRequest,
    ) -> Result<GenerateCouponsResponse> {
        let mut v = FieldViolations::new();
        let definition_id = uuid(&req.definition_id, "definition_id", &mut v);
        let members: Vec<Uuid> = req
            .membership_ids
            .iter()
            .enumerate()
            .map(|(i, id)| uuid(id, &format!("membership_ids[{i}]"), &mut v))
            .collect();
        let wanted = if members.is_empty() {
            req.count.max(0) as usize
        } else {
            members.len()
        };
        v.check(
            (1..=MAX_GENERATED).contains(&wanted),
            "count",
            "generate 1 to 10000 codes a call",
        );
        v.check(
            req.count == 0 || members.is_empty(),
            "count",
            "give a count or membership_ids, not both",
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let definition = definition(&mut tx, definition_id).await?;
        if definition.per_member == members.is_empty() {
            let mut v = FieldViolations::new();
            let why = if definition.per_member {
                "per-member coupons need membership_ids"
            } else {
                "generic coupons take a count, not membership_ids"
            };
            v.add("membership_ids", why);
            return Err(v.into());
        }
        if !members.is_empty() {
            let in_program =
                store::count_in_program(&mut tx, &members, definition.program_id).await?;
            if in_program != members.len() as i64 {
                let mut v = FieldViolations::new();
                v.add(
                    "membership_ids",
                    "lists memberships that are not of the definition's program",
                );
                return Err(v.into());
            }
        }
        let owners: Vec<Option<Uuid>> = if members.is_empty() {
            vec![None; wanted]
        } else {
            members.iter().copied().map(Some).collect()
        };
        let mut coupons = Vec::with_capacity(wanted);
        let mut pending = owners;
        // A collision of 60 random bits is astronomically rare; the loop only makes it harmless.
        while !pending.is_empty() {
            let codes: Vec<String> = pending.iter().map(|_| domain::new_code()).collect();
            let inserted = store::insert_coupons(&mut tx, definition_id, &codes, &pending).await?;
            for row in &inserted {
                if let Some(i) = pending.iter().position(|owner| *owner == row.membership_id) {
                    pending.swap_remove(i);
                }
            }
            coupons.extend(inserted.iter().map(coupon_to_proto));
        }
        let event = CouponsGenerated {
            definition_id: definition_id.to_string(),
            coupons: coupons.clone(),
        };
        events::COUPON
            .enqueue(&mut tx, definition_id, &event)
            .await?;
        let response = GenerateCouponsResponse { coupons };
        claim.commit(tx, &response).await?;
        Ok(response)
    }

    pub async fn validate_coupon(&self, req: ValidateCouponRequest) -> Result<CouponValidation> {
        let (code, membership) = coupon_args(&req.code, &req.membership_id)?;
        let mut conn = self.pool.acquire().await?;
        let coupon = store::get_coupon(&mut conn, &code).await?;
        let Some(coupon) = coupon else {
            return Ok(CouponValidation {
                valid: false,
                reason: "COUPON_NOT_FOUND".into(),
                ..Default::default()
            });
        };
        let definition = definition(&mut conn, coupon.definition_id).await?;
        let member = store::get_membership(&mut conn, membership).await?;
        let refused = refusal(&coupon, &definition, membership, member.as_ref());
        Ok(CouponValidation {
            valid: refused.is_none(),
            reason: refused.unwrap_or_default().to_owned(),
            remaining_uses: (definition.uses_per_code - coupon.uses).max(0),
            definition: Some(definition_to_proto(&definition)),
        })
    }

    pub async fn redeem_coupon(
        &self,
        subject: &str,
        req: RedeemCouponRequest,
    ) -> Result<CouponRedemption> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.redemption_id, "redemption_id", &mut v);
        v.finish()?;
        let (code, membership) = coupon_args(&req.code, &req.membership_id)?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let coupon = store::get_coupon(&mut tx, &code)
            .await?
            .ok_or_else(|| ServiceError::not_found("Coupon", &code))?;
        let definition = definition(&mut tx, coupon.definition_id).await?;
        // Locked, so that a suspension cannot slip in between this check and the redemption.
        let member = store::lock_membership(&mut tx, membership).await?;
        if let Some(reason) = refusal(&coupon, &definition, membership, member.as_ref()) {
            return Err(ServiceError::Precondition(
                reason,
                format!("coupon {code} cannot be redeemed: {reason}"),
            ));
        }
        // The limit holds under any concurrency: the row only moves while below it.
        if !store::use_coupon(&mut tx, &code, definition.uses_per_code).await? {
            return Err(Refusal::CouponUsedUp { code }.into());
        }
        let redemption = insert_redemption(&mut tx, &req, &code, membership, subject).await?;
        let event = CouponRedeemed {
            redemption_id: req.redemption_id.clone(),
            membership_id: membership.to_string(),
            coupon_definition_id: definition.id.to_string(),
            reference: req.reference.trim().to_owned(),
        };
        events::POINTS.enqueue(&mut tx, membership, &event).await?;
        let redemption = CouponRedemption {
            definition: Some(definition_to_proto(&definition)),
            ..redemption
        };
        claim.commit(tx, &redemption).await?;
        Ok(redemption)
    }
}

async fn insert_redemption(
    tx: &mut Tx,
    req: &RedeemCouponRequest,
    code: &str,
    membership: Uuid,
    subject: &str,
) -> Result<CouponRedemption> {
    let id = Uuid::now_v7();
    let created_at = store::insert_redemption(
        tx,
        id,
        &req.redemption_id,
        code,
        membership,
        req.reference.trim(),
        subject,
    )
    .await
    .map_err(|error| id_used(error, &req.redemption_id))?;
    Ok(CouponRedemption {
        id: id.to_string(),
        redemption_id: req.redemption_id.clone(),
        code: code.to_owned(),
        membership_id: membership.to_string(),
        definition: None,
        reference: req.reference.trim().to_owned(),
        redeem_time: Some(timestamp(created_at)),
    })
}

fn coupon_args(code: &str, membership: &str) -> Result<(String, Uuid)> {
    let mut v = FieldViolations::new();
    let code = domain::normalize_code(code).unwrap_or_else(|| {
        v.add(
            "code",
            "is not a coupon code (12 characters, e.g. 7KQ2-M9TX-4HRB)",
        );
        String::new()
    });
    let membership = uuid(membership, "membership_id", &mut v);
    v.finish()?;
    Ok((code, membership))
}

fn definition_to_proto(row: &store::DefinitionRow) -> CouponDefinition {
    CouponDefinition {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        display_name: row.display_name.clone(),
        kind: row.kind.to_proto() as i32,
        percentage: row
            .percentage
            .map(|p| p.normalize().to_string())
            .unwrap_or_default(),
        amount: row
            .amount
            .map(|a| a.normalize().to_string())
            .unwrap_or_default(),
        product_id: row.product_id.clone(),
        uses_per_code: row.uses_per_code,
        per_member: row.per_member,
        valid_from: row.valid_from.map(timestamp),
        valid_to: row.valid_to.map(timestamp),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

fn coupon_to_proto(row: &store::CouponRow) -> Coupon {
    Coupon {
        code: row.code.clone(),
        definition_id: row.definition_id.to_string(),
        membership_id: row.membership_id.map(|m| m.to_string()).unwrap_or_default(),
        uses: row.uses,
    }
}

async fn definition(conn: &mut PgConnection, id: Uuid) -> Result<store::DefinitionRow> {
    store::get_definition(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("CouponDefinition", id))
}
