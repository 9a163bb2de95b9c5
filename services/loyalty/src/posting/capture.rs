//! `CaptureHold` in batches: the holds are locked first (in id order), then their memberships;
//! each pending hold's capture is a posting through the engine, and the batch settles the holds
//! and writes their events together. A hold found past its timeout is released in the batch and
//! its capture refused.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    outbox::{Outgoing, enqueue_all},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{CaptureHoldRequest, Hold, HoldCaptured};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Announce, Change, LockedMembership, Posting, System, apply_locked,
    batch::{Batched, Call, Outcomes, Setups},
    hold::{expire, hold_account, hold_not_pending},
    lock_memberships,
};
use crate::{
    convert::{account_ref, hold_to_proto},
    domain::{DEFAULT_CAPTURE_TYPE, Direction, HoldStatus},
    error::Refusal,
    events,
    store::{self, HoldRow},
};

/// `CaptureHold` calls.
#[derive(Default)]
pub(crate) struct Captures {
    setups: Setups,
}

impl Batched for Captures {
    type Request = CaptureHoldRequest;
    type Answer = Hold;
    type Parsed = ();

    fn id(request: &CaptureHoldRequest) -> &str {
        &request.hold_id
    }

    /// Known once the hold is locked, in [`Batched::post`].
    fn membership(_: &()) -> Option<Uuid> {
        None
    }

    async fn post(
        &self,
        tx: &mut Tx,
        calls: &[&Call<Self>],
        _: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Vec<Result<Hold>>> {
        let ids: Vec<&str> = calls.iter().map(|c| c.request.hold_id.as_str()).collect();
        let holds: HashMap<String, HoldRow> = store::lock_holds_by_client_ids(tx, &ids)
            .await?
            .into_iter()
            .map(|h| (h.client_id.clone(), h))
            .collect();
        let pending = holds.values().filter(|h| h.status == HoldStatus::Pending);
        let memberships = lock_memberships(tx, pending.map(|h| h.membership_id)).await?;
        let now = Utc::now();
        let mut outcomes = Outcomes::new(calls.len());
        let mut lapsed: Vec<(HoldRow, tracing::Span)> = Vec::new();
        let mut captures: Vec<(usize, &HoldRow, Posting)> = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let req = &call.request;
            let type_code = Some(req.operation_type.trim())
                .filter(|t| !t.is_empty())
                .unwrap_or(DEFAULT_CAPTURE_TYPE);
            let Some(hold) = holds.get(&req.hold_id) else {
                outcomes.answer(i, Err(ServiceError::not_found("Hold", &req.hold_id)));
                continue;
            };
            let outcome = match hold.status {
                HoldStatus::Pending if hold.expires_at <= now => {
                    lapsed.push((hold.clone(), call.span.clone()));
                    let expired = HoldRow {
                        status: HoldStatus::Expired,
                        ..hold.clone()
                    };
                    Err(hold_not_pending(&expired))
                }
                HoldStatus::Pending => {
                    match self.capture(tx, call, hold, type_code, &memberships).await {
                        Ok(posting) => {
                            captures.push((i, hold, posting));
                            continue;
                        }
                        Err(error) => {
                            outcomes.refuse(i, error)?;
                            continue;
                        }
                    }
                }
                HoldStatus::Captured => {
                    // Capturing again what was captured, as it was captured, answers the same;
                    // anything else (other points, another operation type) is refused.
                    let captured_with = match hold.capture_operation_id {
                        Some(operation) => store::get_operation(tx, operation)
                            .await?
                            .map(|o| o.operation_type),
                        None => None,
                    };
                    let same = (req.points == 0 || req.points == hold.captured_points)
                        && captured_with.as_deref() == Some(type_code);
                    if same {
                        Ok(hold_to_proto(hold))
                    } else {
                        Err(hold_not_pending(hold))
                    }
                }
                _ => Err(hold_not_pending(hold)),
            };
            outcomes.answer(i, outcome);
        }
        // Released whatever else happens: the capture is refused, the lapse stands.
        if !lapsed.is_empty() {
            expire(tx, &lapsed).await?;
        }

        let postings: Vec<Posting> = captures.iter().map(|(_, _, p)| p.clone()).collect();
        let posted = apply_locked(tx, &memberships, &postings).await?;
        let (mut settled, mut points, mut operations) = (Vec::new(), Vec::new(), Vec::new());
        let mut events: Vec<Outgoing> = Vec::new();
        for ((i, hold, posting), outcome) in captures.into_iter().zip(posted) {
            let posted = match outcome {
                Ok(posted) => posted,
                Err(error) => {
                    outcomes.answer(i, Err(error));
                    continue;
                }
            };
            let Change::Capture {
                points: captured, ..
            } = posting.change
            else {
                unreachable!("a capture posts a capture")
            };
            let operation = posted.operation.expect("a capture records an operation");
            settled.push(hold.id);
            points.push(captured);
            operations.push(operation);
            {
                let _in_request = calls[i].span.enter();
                let event = HoldCaptured {
                    hold_id: hold.id.to_string(),
                    account: Some(account_ref(
                        hold.membership_id,
                        hold.person_id,
                        &hold.point_type,
                    )),
                    captured_points: captured,
                    balance_after: posted.balance_after,
                };
                events.push(events::POINTS.event(hold.membership_id, &event));
            }
            outcomes.answer(
                i,
                Ok(hold_to_proto(&HoldRow {
                    status: HoldStatus::Captured,
                    captured_points: captured,
                    capture_operation_id: Some(operation),
                    ..hold.clone()
                })),
            );
        }
        store::settle_captured(tx, &settled, &points, &operations).await?;
        enqueue_all(tx, &events).await?;
        Ok(outcomes.finish())
    }

    /// A capture creates no id of its own.
    async fn taken(_: &mut PgConnection, _: &[&str]) -> sqlx::Result<HashSet<String>> {
        Ok(HashSet::new())
    }
}

impl Captures {
    /// The posting that moves the captured points of a pending hold out of the member's account
    /// into redemption, under a settle operation type of the program, releasing the rest.
    /// Spending needs an active membership of an active program, as earning does.
    async fn capture(
        &self,
        tx: &mut Tx,
        call: &Call<Self>,
        hold: &HoldRow,
        type_code: &str,
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Posting> {
        let req = &call.request;
        let points = if req.points == 0 {
            hold.points
        } else {
            req.points
        };
        if points > hold.points {
            let mut v = FieldViolations::new();
            v.add("points", format!("the hold has {} points", hold.points));
            return Err(v.into());
        }
        let membership = memberships
            .get(&hold.membership_id)
            .ok_or_else(|| ServiceError::not_found("Membership", hold.membership_id))?;
        let setup = self.setups.of(tx, membership).await?;
        let operation_type = setup
            .operation_types
            .iter()
            .find(|t| t.code == type_code && t.direction == Direction::Settle)
            .ok_or_else(|| Refusal::NoSettleOperationType {
                code: type_code.to_owned(),
            })?;
        Ok(Posting {
            account: hold_account(hold),
            change: Change::Capture {
                held: hold.points,
                points,
            },
            operation: Some(super::Operation {
                client_id: format!("hold:{}:capture", hold.client_id),
                operation_type: operation_type.code.clone(),
                reference: hold.reference.clone(),
                subject: call.subject.clone(),
                reverses: None,
                system: System::Redemption,
                announce: Announce::ByCaller,
                qualifying: false,
            }),
            requires_active: true,
            span: call.span.clone(),
        })
    }
}
