//! Coupons: definitions (what a coupon gives, how often a code can be used, for whom, when),
//! codes generated in bulk, validation, and redemption that never exceeds a code's limit: the use
//! count only grows through a conditional update.

use chrono::{DateTime, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{audit, timestamp, uuid},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{
    Coupon, CouponDefinition, CouponKind, CouponRedeemed, CouponRedemption, CouponValidation,
    CreateCouponDefinitionRequest, GenerateCouponsRequest, GenerateCouponsResponse,
    RedeemCouponRequest, ValidateCouponRequest,
};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Loyalty,
    domain::{self, display_name},
    error::Refusal,
    events, store,
};

const MAX_GENERATED: usize = 10_000;
/// Crockford's base32: no I, L, O or U, so codes survive being read aloud and typed.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Debug, Clone, sqlx::FromRow)]
struct DefinitionRow {
    id: Uuid,
    program_id: Uuid,
    display_name: String,
    kind: domain::CouponKind,
    percentage: Option<Decimal>,
    amount: Option<Decimal>,
    product_id: String,
    uses_per_code: i32,
    per_member: bool,
    valid_from: Option<DateTime<Utc>>,
    valid_to: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: String,
    updated_by: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct CouponRow {
    code: String,
    definition_id: Uuid,
    membership_id: Option<Uuid>,
    uses: i32,
}

/// A new code: 60 random bits as 12 base32 characters, grouped XXXX-XXXX-XXXX.
fn new_code() -> String {
    let mut bits = Uuid::new_v4().as_u128();
    let chars: Vec<u8> = (0..12)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
            c
        })
        .collect();
    let chars = String::from_utf8(chars).expect("the alphabet is ASCII");
    format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..])
}

/// A code as typed (any case, with or without dashes, I/L read as 1 and O as 0), in stored form.
fn normalize_code(raw: &str) -> Option<String> {
    let chars: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect();
    (chars.len() == 12 && chars.bytes().all(|b| ALPHABET.contains(&b)))
        .then(|| format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]))
}

async fn definition(conn: &mut PgConnection, id: Uuid) -> Result<DefinitionRow> {
    sqlx::query_as("SELECT * FROM coupon_definitions WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ServiceError::NotFound("CouponDefinition", id.to_string()))
}

/// Why `coupon` cannot be redeemed by `membership` now (use limits aside), if it cannot.
async fn refusal(
    conn: &mut PgConnection,
    coupon: &CouponRow,
    definition: &DefinitionRow,
    membership: Uuid,
) -> Result<Option<&'static str>> {
    let member = store::get_membership(conn, membership).await?;
    let now = Utc::now();
    Ok(
        if member.is_none_or(|m| m.program_id != definition.program_id) {
            Some("MEMBERSHIP_NOT_IN_PROGRAM")
        } else if definition.per_member && coupon.membership_id != Some(membership) {
            Some("COUPON_NOT_FOR_MEMBER")
        } else if definition.valid_from.is_some_and(|from| now < from) {
            Some("COUPON_NOT_YET_VALID")
        } else if definition.valid_to.is_some_and(|to| now >= to) {
            Some("COUPON_EXPIRED")
        } else if coupon.uses >= definition.uses_per_code {
            Some("COUPON_USED_UP")
        } else {
            None
        },
    )
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
        let (kind, percentage, amount) = match input.kind() {
            CouponKind::Percentage => {
                let pct = decimal(&input.percentage, "definition.percentage", &mut v);
                v.check(
                    pct.is_none_or(|p| p <= Decimal::ONE_HUNDRED),
                    "definition.percentage",
                    "must be at most 100",
                );
                ("percentage", pct, None)
            }
            CouponKind::FixedAmount => (
                "fixed_amount",
                None,
                decimal(&input.amount, "definition.amount", &mut v),
            ),
            CouponKind::Product => {
                v.check(
                    !input.product_id.trim().is_empty(),
                    "definition.product_id",
                    "is required for a PRODUCT coupon",
                );
                ("product", None, None)
            }
            CouponKind::Unspecified => {
                v.add(
                    "definition.kind",
                    "must be PERCENTAGE, FIXED_AMOUNT or PRODUCT",
                );
                ("product", None, None)
            }
        };
        v.check(
            input.uses_per_code >= 1,
            "definition.uses_per_code",
            "must be at least 1 (1: single use)",
        );
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        let (valid_from, valid_to) = (time(input.valid_from), time(input.valid_to));
        if let (Some(from), Some(to)) = (valid_from, valid_to) {
            v.check(to > from, "definition.valid_to", "must be after valid_from");
        }
        let name = display_name(&input.display_name, "definition.display_name", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("Program", program_id.to_string()))?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO coupon_definitions (id, program_id, display_name, kind, percentage, amount, product_id,
                 uses_per_code, per_member, valid_from, valid_to, created_by, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(id)
        .bind(program_id)
        .bind(&name)
        .bind(kind)
        .bind(percentage)
        .bind(amount)
        .bind(input.product_id.trim())
        .bind(input.uses_per_code)
        .bind(input.per_member)
        .bind(valid_from)
        .bind(valid_to)
        .bind(subject)
        .execute(&mut *tx)
        .await?;
        let definition = definition_to_proto(&definition(&mut tx, id).await?);
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
            let in_program: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM memberships WHERE id = ANY($1) AND program_id = $2",
            )
            .bind(&members)
            .bind(definition.program_id)
            .fetch_one(&mut *tx)
            .await?;
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
            let codes: Vec<String> = pending.iter().map(|_| new_code()).collect();
            let inserted: Vec<CouponRow> = sqlx::query_as(
                "INSERT INTO coupons (code, definition_id, membership_id)
                 SELECT code, $1, member FROM unnest($2::text[], $3::uuid[]) AS c(code, member)
                 ON CONFLICT DO NOTHING RETURNING code, definition_id, membership_id, uses",
            )
            .bind(definition_id)
            .bind(&codes)
            .bind(&pending)
            .fetch_all(&mut *tx)
            .await?;
            for row in &inserted {
                if let Some(i) = pending.iter().position(|owner| *owner == row.membership_id) {
                    pending.swap_remove(i);
                }
            }
            coupons.extend(inserted.iter().map(coupon_to_proto));
        }
        let response = GenerateCouponsResponse { coupons };
        claim.commit(tx, &response).await?;
        Ok(response)
    }

    pub async fn validate_coupon(&self, req: ValidateCouponRequest) -> Result<CouponValidation> {
        let (code, membership) = coupon_args(&req.code, &req.membership_id)?;
        let mut conn = self.pool.acquire().await?;
        let coupon: Option<CouponRow> = sqlx::query_as("SELECT * FROM coupons WHERE code = $1")
            .bind(&code)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(coupon) = coupon else {
            return Ok(CouponValidation {
                valid: false,
                reason: "COUPON_NOT_FOUND".into(),
                ..Default::default()
            });
        };
        let definition = definition(&mut conn, coupon.definition_id).await?;
        let refused = refusal(&mut conn, &coupon, &definition, membership).await?;
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
        v.check(
            !req.redemption_id.trim().is_empty(),
            "redemption_id",
            "is required: the client's idempotency id",
        );
        v.finish()?;
        let (code, membership) = coupon_args(&req.code, &req.membership_id)?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let coupon: CouponRow = sqlx::query_as("SELECT * FROM coupons WHERE code = $1")
            .bind(&code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ServiceError::NotFound("Coupon", code.clone()))?;
        let definition = definition(&mut tx, coupon.definition_id).await?;
        if let Some(reason) = refusal(&mut tx, &coupon, &definition, membership).await? {
            return Err(ServiceError::Precondition(
                reason,
                format!("coupon {code} cannot be redeemed: {reason}"),
            ));
        }
        // The limit holds under any concurrency: the row only moves while below it.
        let used = sqlx::query("UPDATE coupons SET uses = uses + 1 WHERE code = $1 AND uses < $2")
            .bind(&code)
            .bind(definition.uses_per_code)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if used == 0 {
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
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO coupon_redemptions (id, client_id, code, membership_id, reference, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
    )
    .bind(id)
    .bind(&req.redemption_id)
    .bind(code)
    .bind(membership)
    .bind(req.reference.trim())
    .bind(subject)
    .fetch_one(&mut **tx)
    .await?;
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
    let code = normalize_code(code);
    v.check(
        code.is_some(),
        "code",
        "is not a coupon code (12 characters, e.g. 7KQ2-M9TX-4HRB)",
    );
    let membership = uuid(membership, "membership_id", &mut v);
    v.finish()?;
    Ok((code.expect("checked above"), membership))
}

fn definition_to_proto(row: &DefinitionRow) -> CouponDefinition {
    CouponDefinition {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        display_name: row.display_name.clone(),
        kind: match row.kind.as_str() {
            "percentage" => CouponKind::Percentage,
            "fixed_amount" => CouponKind::FixedAmount,
            _ => CouponKind::Product,
        } as i32,
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
    }
}

fn coupon_to_proto(row: &CouponRow) -> Coupon {
    Coupon {
        code: row.code.clone(),
        definition_id: row.definition_id.to_string(),
        membership_id: row.membership_id.map(|m| m.to_string()).unwrap_or_default(),
        uses: row.uses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_forgiving_to_type() {
        let code = new_code();
        assert_eq!(code.len(), 14);
        assert_eq!(
            normalize_code(&code.to_lowercase().replace('-', "")),
            Some(code.clone())
        );
        assert_eq!(
            normalize_code("ilo0-0000-0000"),
            Some("1100-0000-0000".into())
        );
        assert_eq!(
            normalize_code("UUUU-0000-0000"),
            None,
            "U is not in the alphabet"
        );
        assert_eq!(normalize_code("short"), None);
    }
}
