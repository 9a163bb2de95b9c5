//! `HoldPoints` in batches: each call reserves points on its account through the engine, and the
//! batch writes the holds and their events together. And what gives a hold's points back.

use std::collections::{HashMap, HashSet};

use chrono::{SubsecRound, Utc};
use crm_kit::{
    error::{Result, ServiceError},
    outbox::{Outgoing, enqueue_all},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{Hold, HoldExpired, HoldPlaced, HoldPointsRequest};
use sqlx::PgConnection;
use tracing::Span;
use uuid::Uuid;

use super::{
    AccountKey, Change, LockedMembership, Posting, apply_locked,
    batch::{Batched, Call, Outcomes, Setups},
};
use crate::{
    convert::{account_ref, hold_to_proto},
    domain::HoldStatus,
    error::Refusal,
    events,
    lookups::{person_account, pick_point_type},
    store::{self, HoldRow},
};

/// `HoldPoints` calls: the request with its membership, person and timeout (seconds) parsed.
#[derive(Default)]
pub(crate) struct Holds {
    setups: Setups,
}

/// The membership, the B2B person and the timeout in seconds of a call.
pub(crate) type Placement = (Uuid, Option<Uuid>, i64);

impl Batched for Holds {
    type Request = HoldPointsRequest;
    type Answer = Hold;
    type Parsed = Placement;

    fn id(request: &HoldPointsRequest) -> &str {
        &request.hold_id
    }

    fn membership(parsed: &Placement) -> Option<Uuid> {
        Some(parsed.0)
    }

    async fn post(
        &self,
        tx: &mut Tx,
        calls: &[&Call<Self>],
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Vec<Result<Hold>>> {
        let mut outcomes = Outcomes::new(calls.len());
        let mut resolved = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            match self.resolve(tx, call, memberships).await {
                Ok(posting) => resolved.push((i, posting)),
                Err(error) => outcomes.refuse(i, error)?,
            }
        }
        let postings: Vec<Posting> = resolved.iter().map(|(_, p)| p.clone()).collect();
        let posted = apply_locked(tx, memberships, &postings).await?;
        // What PostgreSQL stores (microseconds), so that answers match later reads.
        let now = Utc::now().trunc_subsecs(6);
        let mut holds: Vec<(usize, HoldRow)> = Vec::new();
        for ((i, posting), outcome) in resolved.into_iter().zip(posted) {
            let call = calls[i];
            match outcome {
                Ok(posted) => holds.push((
                    i,
                    HoldRow {
                        id: Uuid::now_v7(),
                        client_id: call.request.hold_id.clone(),
                        account_id: posted.account,
                        membership_id: posting.account.membership,
                        person_id: posting.account.person,
                        point_type: posting.account.point_type,
                        program_id: posting.account.program,
                        points: call.request.points,
                        captured_points: 0,
                        status: HoldStatus::Pending,
                        expires_at: now + chrono::Duration::seconds(call.parsed.2),
                        reference: call.request.reference.trim().to_owned(),
                        capture_operation_id: None,
                        created_at: now,
                    },
                )),
                Err(error) => outcomes.answer(i, Err(error)),
            }
        }
        let mut rows: Vec<HoldRow> = holds.iter().map(|(_, h)| h.clone()).collect();
        // In id order: two batches inserting the same ids wait for each other, never in a cycle.
        rows.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        store::insert_holds(tx, &rows)
            .await
            .map_err(|error| match rows.as_slice() {
                // One hold: its id was taken meanwhile by another caller.
                [only] => crate::error::id_used(error, &only.client_id),
                _ => error.into(),
            })?;
        let events: Vec<Outgoing> = holds
            .iter()
            .map(|(i, hold)| {
                let _in_request = calls[*i].span.enter();
                let event = HoldPlaced {
                    hold_id: hold.id.to_string(),
                    account: Some(account_ref(
                        hold.membership_id,
                        hold.person_id,
                        &hold.point_type,
                    )),
                    points: hold.points,
                };
                events::POINTS.event(hold.membership_id, &event)
            })
            .collect();
        enqueue_all(tx, &events).await?;
        for (i, hold) in holds {
            outcomes.answer(i, Ok(hold_to_proto(&hold)));
        }
        Ok(outcomes.finish())
    }

    async fn taken(conn: &mut PgConnection, ids: &[&str]) -> sqlx::Result<HashSet<String>> {
        store::taken_hold_ids(conn, ids).await
    }
}

impl Holds {
    /// The call's posting: the point type asked for (or the program's first) on the membership's
    /// account, or a B2B person's where the program has them and does not pool.
    async fn resolve(
        &self,
        tx: &mut Tx,
        call: &Call<Self>,
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Posting> {
        let (membership, person, _) = call.parsed;
        let membership = memberships
            .get(&membership)
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        let setup = self.setups.of(tx, membership).await?;
        let account = call.request.account.clone().unwrap_or_default();
        let point_type = pick_point_type(&setup.point_types, &account.point_type, None)?;
        let person = person_account(person, setup.program.kind, membership.pool_to_organization)?;
        Ok(Posting {
            account: AccountKey {
                program: membership.program_id,
                membership: membership.id,
                person,
                point_type: point_type.code.clone(),
            },
            change: Change::Hold {
                points: call.request.points,
            },
            operation: None,
            requires_active: true,
            span: call.span.clone(),
        })
    }
}

/// The posting that gives a hold's points back.
pub(crate) fn release(hold: &HoldRow) -> Posting {
    Posting {
        account: hold_account(hold),
        change: Change::Release {
            points: hold.points,
        },
        operation: None,
        requires_active: false,
        span: Span::current(),
    }
}

/// The member account a hold is on.
pub(super) fn hold_account(hold: &HoldRow) -> AccountKey {
    AccountKey {
        program: hold.program_id,
        membership: hold.membership_id,
        person: hold.person_id,
        point_type: hold.point_type.clone(),
    }
}

/// Releases lapsed holds (locked by the caller), all through one posting batch so that their
/// memberships are locked in the engine's order; each with the span of the request that found it
/// lapsed (or the sweep's), which its event's trace follows.
pub(crate) async fn expire(tx: &mut Tx, holds: &[(HoldRow, Span)]) -> Result<()> {
    let releases: Vec<Posting> = holds
        .iter()
        .map(|(hold, span)| span.in_scope(|| release(hold)))
        .collect();
    for outcome in super::apply(tx, &releases).await? {
        outcome?;
    }
    let ids: Vec<Uuid> = holds.iter().map(|(hold, _)| hold.id).collect();
    store::settle_expired(tx, &ids).await?;
    let events: Vec<Outgoing> = holds
        .iter()
        .map(|(hold, span)| {
            let event = HoldExpired {
                hold_id: hold.id.to_string(),
                account: Some(account_ref(
                    hold.membership_id,
                    hold.person_id,
                    &hold.point_type,
                )),
            };
            span.in_scope(|| events::POINTS.event(hold.membership_id, &event))
        })
        .collect();
    enqueue_all(tx, &events).await?;
    Ok(())
}

pub(crate) fn hold_not_pending(hold: &HoldRow) -> ServiceError {
    let hold_id = hold.client_id.clone();
    match hold.status {
        HoldStatus::Expired => Refusal::HoldExpired { hold: hold_id },
        HoldStatus::Captured => Refusal::HoldCaptured { hold: hold_id },
        status => Refusal::HoldVoided {
            hold: hold_id,
            status,
        },
    }
    .into()
}
