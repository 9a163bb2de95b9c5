//! Tiers (card categories). A member holds the highest tier whose threshold their qualifying
//! points reach within its window, or the manually assigned tier if that is higher (a floor).
//! Re-evaluated in the transaction of every qualifying entry, and by a sweep that catches points
//! falling out of the window.

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, uuid},
    shutdown::Shutdown,
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{
    AssignTierRequest, DefineTierRequest, GetMemberBenefitsRequest, MemberBenefits, Membership,
    Program, TierChanged,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Loyalty,
    domain::{self, code, display_name},
    events,
    lookups::{benefits_to_proto, membership_in, program_in},
    store,
};

const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The tier the membership's qualifying points and floor give it now, with the points behind it
/// (in the lowest tier's window when no tier is earned).
async fn due_tier(
    conn: &mut PgConnection,
    row: &store::MembershipRow,
    tiers: &[store::TierRow],
) -> Result<(Option<String>, i64)> {
    let mut earned: Option<(&store::TierRow, i64)> = None;
    let mut points_by_window = std::collections::HashMap::new();
    for tier in tiers.iter().rev() {
        let points = match points_by_window.get(&tier.window_months) {
            Some(points) => *points,
            None => {
                let points = store::qualifying_points(conn, row.id, tier.window_months).await?;
                points_by_window.insert(tier.window_months, points);
                points
            }
        };
        if points >= tier.threshold {
            earned = Some((tier, points));
            break;
        }
    }
    let floor = row
        .assigned_tier
        .as_deref()
        .and_then(|code| tiers.iter().find(|t| t.code == code));
    let held = match (earned.map(|(tier, _)| tier), floor) {
        (Some(earned), Some(floor)) if floor.threshold > earned.threshold => Some(floor),
        (None, Some(floor)) => Some(floor),
        (earned, _) => earned,
    };
    let qualifying = match (earned, tiers.first()) {
        (Some((_, points)), _) => points,
        (None, Some(lowest)) => {
            store::qualifying_points(conn, row.id, lowest.window_months).await?
        }
        (None, None) => 0,
    };
    Ok((held.map(|t| t.code.clone()), qualifying))
}

/// Sets the membership's tier to what its points and floor give now; emits TierChanged when it moves.
pub async fn evaluate(tx: &mut Tx, membership: Uuid) -> Result<()> {
    let row = store::lock_membership(tx, membership)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
    let tiers = store::tiers(tx, row.program_id).await?;
    if tiers.is_empty() {
        return Ok(());
    }
    let (new_tier, qualifying_points) = due_tier(tx, &row, &tiers).await?;
    if new_tier == row.tier {
        return Ok(());
    }
    store::set_tier(tx, membership, new_tier.as_deref()).await?;
    let event = TierChanged {
        membership_id: membership.to_string(),
        old_tier: row.tier.unwrap_or_default(),
        new_tier: new_tier.unwrap_or_default(),
        qualifying_points,
    };
    events::MEMBERSHIP.enqueue(tx, membership, &event).await?;
    Ok(())
}

impl Loyalty {
    pub async fn define_tier(&self, subject: &str, req: DefineTierRequest) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(req.tier.is_some(), "tier", "is required");
        let input = req.tier.clone().unwrap_or_default();
        v.check(
            input.threshold >= 0,
            "tier.threshold",
            "must be 0 or more qualifying points",
        );
        v.check(
            (0..=120).contains(&input.window_months),
            "tier.window_months",
            "must be 0 (since enrolment) to 120",
        );
        let benefits = input.benefits.clone().unwrap_or_default();
        v.check(
            (0..=3650).contains(&benefits.return_window_days),
            "tier.benefits.return_window_days",
            "must be 0 (the standard terms) to 3650 days",
        );
        let mut names = std::collections::HashSet::new();
        let other = benefits
            .other
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let field = format!("tier.benefits.other[{i}].name");
                let name = code(&b.name, &field, &mut v);
                v.check(names.insert(name.clone()), &field, "is named twice");
                (name, b.value.trim().to_owned())
            })
            .collect();
        let tier = store::TierRow {
            code: code(&input.code, "tier.code", &mut v),
            display_name: display_name(&input.display_name, "tier.display_name", &mut v),
            threshold: input.threshold,
            window_months: input.window_months,
            return_window_days: benefits.return_window_days,
            free_return_shipping: benefits.free_return_shipping,
            other_benefits: sqlx::types::Json(other),
        };
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        store::define_tier(&mut tx, program_id, &tier).await?;
        let program = program_in(&mut tx, program_id).await?;
        events::program_changed(&mut tx, &program, "tier_defined").await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn assign_tier(&self, subject: &str, req: AssignTierRequest) -> Result<Membership> {
        let id = request::id(&req.membership_id, "membership_id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let membership = store::lock_membership(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        let assigned = Some(req.tier.trim().to_owned()).filter(|t| !t.is_empty());
        if let Some(code) = &assigned
            && !store::tiers(&mut tx, membership.program_id)
                .await?
                .iter()
                .any(|t| &t.code == code)
        {
            let mut v = FieldViolations::new();
            v.add("tier", format!("the program has no tier {code:?}"));
            return Err(v.into());
        }
        store::assign_tier(&mut tx, id, assigned.as_deref()).await?;
        evaluate(&mut tx, id).await?;
        let membership = membership_in(&mut tx, id).await?;
        claim.commit(tx, &membership).await?;
        Ok(membership)
    }

    pub async fn get_member_benefits(
        &self,
        req: GetMemberBenefitsRequest,
    ) -> Result<MemberBenefits> {
        let id = request::id(&req.membership_id, "membership_id")?;
        let mut conn = self.pool.acquire().await?;
        let membership = store::get_membership(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        let tier = match &membership.tier {
            Some(code) => store::tiers(&mut conn, membership.program_id)
                .await?
                .into_iter()
                .find(|t| &t.code == code),
            None => None,
        };
        // A suspended or departed member keeps its tier on record but gets nothing from it.
        let active = membership.status == domain::MembershipStatus::Active;
        Ok(MemberBenefits {
            membership_id: id.to_string(),
            tier: membership.tier.clone().unwrap_or_default(),
            benefits: tier.filter(|_| active).map(|t| benefits_to_proto(&t)),
            status: membership.status.to_proto() as i32,
        })
    }

    /// Re-evaluates every membership of programs with tiers every ten minutes, so points leaving
    /// the window lower tiers without waiting for the member's next purchase.
    pub async fn sweep_tiers(self, shutdown: Shutdown) {
        while shutdown.sleep(SWEEP_EVERY).await {
            if let Err(error) = self.sweep_once().await {
                tracing::warn!(%error, "the tier sweep failed; it runs again later");
            }
        }
    }

    /// Reads each membership without a lock; only one whose tier is due to change is locked, in a
    /// transaction of its own, and evaluated again there.
    async fn sweep_once(&self) -> Result<()> {
        let mut after = Uuid::nil();
        let mut tiers_of: HashMap<Uuid, Vec<store::TierRow>> = HashMap::new();
        loop {
            let mut conn = self.pool.acquire().await?;
            let batch = store::tiered_memberships_after(&mut conn, after, 200).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.id;
            let mut due = Vec::new();
            for row in batch {
                let tiers = match tiers_of.entry(row.program_id) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        new.insert(store::tiers(&mut conn, row.program_id).await?)
                    }
                };
                let (tier, _) = due_tier(&mut conn, &row, tiers).await?;
                if tier != row.tier {
                    due.push(row.id);
                }
            }
            drop(conn);
            for id in due {
                let mut tx = self.pool.begin().await?;
                evaluate(&mut tx, id).await?;
                tx.commit().await?;
            }
        }
    }
}
