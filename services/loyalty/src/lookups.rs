//! Loads every use case shares: resources read for an answer or checked to be usable.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{audit, date_to_proto, timestamp},
};
use crm_proto::crm::loyalty::v1::{
    AccrualRules, Benefit, Campaign, CategoryRate, Hold, Membership, Operation, OperationType,
    PointType, Program, Tier, TierBenefits, TierMultiplier,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain;
use crate::{
    convert::{hold_to_proto, membership_to_proto, operation_to_proto},
    error::Refusal,
    store::{self, PointTypeRow, ProgramRow},
};

/// Refuses, naming `field`, an operation type that is not one of the program's ACCRUE types.
pub(crate) async fn require_accrue_type(
    conn: &mut PgConnection,
    program_id: Uuid,
    code: &str,
    field: &str,
) -> Result<()> {
    let accrues = store::operation_types(conn, program_id)
        .await?
        .iter()
        .any(|t| t.code == code && t.direction == domain::Direction::Accrue);
    if accrues {
        return Ok(());
    }
    let mut v = FieldViolations::new();
    v.add(field, "must be an ACCRUE operation type of the program");
    Err(v.into())
}

pub(crate) fn require_active_program(program: &ProgramRow) -> Result<()> {
    if program.status == domain::ProgramStatus::Active {
        return Ok(());
    }
    Err(Refusal::ProgramNotActive {
        id: program.id,
        status: program.status,
    }
    .into())
}

pub(crate) fn check_validity(program: &ProgramRow, v: &mut FieldViolations) {
    if let (Some(from), Some(to)) = (program.valid_from, program.valid_to) {
        v.check(
            to >= from,
            "program.valid_to",
            "must not be before valid_from",
        );
    }
}

pub(crate) async fn program_in(conn: &mut PgConnection, id: Uuid) -> Result<Program> {
    let row = store::get_program(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", id))?;
    program_to_proto(conn, &row).await
}

// Long only because a program carries its point types, operation types, tiers and accrual rules.
pub(crate) async fn program_to_proto(conn: &mut PgConnection, row: &ProgramRow) -> Result<Program> {
    let point_types = store::point_types(conn, row.id).await?;
    let operation_types = store::operation_types(conn, row.id).await?;
    let tiers = store::tiers(conn, row.id).await?;
    Ok(Program {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        kind: row.kind.to_proto() as i32,
        currency_code: row.currency_code.clone(),
        status: row.status.to_proto() as i32,
        valid_from: row.valid_from.map(date_to_proto),
        valid_to: row.valid_to.map(date_to_proto),
        point_types: point_types
            .iter()
            .map(|t| PointType {
                code: t.code.clone(),
                display_name: t.display_name.clone(),
                qualifying: t.qualifying,
                expiry_policy: t.expiry_policy.to_proto() as i32,
                expiry_months: t.expiry_months,
                allow_negative: t.allow_negative,
                reversal_floor: t.reversal_floor,
            })
            .collect(),
        operation_types: operation_types
            .iter()
            .map(|t| OperationType {
                code: t.code.clone(),
                display_name: t.display_name.clone(),
                direction: t.direction.to_proto() as i32,
                default_point_type: t.default_point_type.clone(),
            })
            .collect(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
        tiers: tiers.into_iter().map(|t| tier_to_proto(&t)).collect(),
        accrual_rules: row.accrual_rules.as_ref().map(|rules| AccrualRules {
            operation_type: rules.operation_type.clone(),
            points_per_unit: rules.points_per_unit.clone(),
            category_rates: rules
                .category_rates
                .iter()
                .map(|(category, rate)| CategoryRate {
                    category: category.clone(),
                    points_per_unit: rate.clone(),
                })
                .collect(),
            minimum_amount: rules.minimum_amount.clone(),
            cap_per_invoice: rules.cap_per_invoice,
            tier_multipliers: rules
                .tier_multipliers
                .iter()
                .map(|(tier, multiplier)| TierMultiplier {
                    tier: tier.clone(),
                    multiplier: multiplier.clone(),
                })
                .collect(),
            campaigns: rules
                .campaigns
                .iter()
                .map(|c| Campaign {
                    code: c.code.clone(),
                    multiplier: c.multiplier.clone(),
                    categories: c.categories.clone(),
                    start_time: c.start_time.map(timestamp),
                    end_time: c.end_time.map(timestamp),
                })
                .collect(),
            cap_per_period: rules.cap_per_period,
            period_days: rules.period_days,
        }),
    })
}

pub(crate) async fn membership_in(conn: &mut PgConnection, id: Uuid) -> Result<Membership> {
    let row = store::get_membership(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", id))?;
    Ok(membership_to_proto(&row))
}

pub(crate) async fn operation_in(conn: &mut PgConnection, id: Uuid) -> Result<Operation> {
    let row = store::get_operation(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Operation", id))?;
    Ok(operation_to_proto(&row))
}

pub(crate) async fn hold_in(conn: &mut PgConnection, id: Uuid) -> Result<Hold> {
    let row = store::get_hold(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Hold", id))?;
    Ok(hold_to_proto(&row))
}

pub(crate) fn tier_to_proto(tier: &store::TierRow) -> Tier {
    Tier {
        code: tier.code.clone(),
        display_name: tier.display_name.clone(),
        threshold: tier.threshold,
        window_months: tier.window_months,
        benefits: Some(benefits_to_proto(tier)),
    }
}

pub(crate) fn benefits_to_proto(tier: &store::TierRow) -> TierBenefits {
    TierBenefits {
        return_window_days: tier.return_window_days,
        free_return_shipping: tier.free_return_shipping,
        other: tier
            .other_benefits
            .iter()
            .map(|(name, value)| Benefit {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The point type an account names (or `default`, or the program's first), among the program's.
pub(crate) fn pick_point_type<'a>(
    types: &'a [PointTypeRow],
    requested: &str,
    default: Option<&str>,
) -> Result<&'a PointTypeRow> {
    let codes: Vec<&str> = types.iter().map(|t| t.code.as_str()).collect();
    let code = pick_code(&codes, requested, default)?;
    Ok(types
        .iter()
        .find(|t| t.code == code)
        .expect("a code picked among them"))
}

/// The point type code a request names (`requested`, else `default`, else the program's first),
/// among the program's `codes` in program order.
pub(crate) fn pick_code<'a>(
    codes: &[&'a str],
    requested: &str,
    default: Option<&str>,
) -> Result<&'a str> {
    let wanted = Some(requested.trim()).filter(|t| !t.is_empty()).or(default);
    let found = match wanted {
        Some(code) => codes.iter().find(|c| **c == code).copied(),
        None => codes.first().copied(),
    };
    found.ok_or_else(|| {
        let mut v = FieldViolations::new();
        v.add(
            "account.point_type",
            format!("the program has no point type {:?}", wanted.unwrap_or("")),
        );
        v.into()
    })
}

/// The person whose account a write goes to: only B2B programs have person accounts, and a
/// membership that pools its persons' points has them go to the organization's own account.
pub(crate) fn person_account(
    person: Option<Uuid>,
    kind: domain::ProgramKind,
    pooled: bool,
) -> Result<Option<Uuid>> {
    match person {
        Some(_) if kind != domain::ProgramKind::B2b => {
            let mut v = FieldViolations::new();
            v.add(
                "account.person_id",
                "only B2B programs have person accounts",
            );
            Err(v.into())
        }
        Some(_) if pooled => Ok(None),
        person => Ok(person),
    }
}
