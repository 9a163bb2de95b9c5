//! `RecordOperation` in batches: each call resolves to a posting in its membership's program
//! (operation type, point type, account, card), and the batch posts them through the engine.

use std::collections::{HashMap, HashSet};

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{Operation, RecordOperationRequest};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    AccountKey, Announce, Change, LockedMembership, Posting, System, apply_locked,
    batch::{Batched, Call, Outcomes, Setups},
};
use crate::{
    cards,
    convert::operation_to_proto,
    domain,
    lookups::{person_account, pick_point_type},
    store::{self, OperationRow, OperationTypeRow},
};

/// `RecordOperation` calls: the request with its membership and person parsed.
#[derive(Default)]
pub(crate) struct Records {
    setups: Setups,
}

/// The membership and the B2B person of a call.
pub(crate) type Target = (Uuid, Option<Uuid>);

impl Batched for Records {
    type Request = RecordOperationRequest;
    type Answer = Operation;
    type Parsed = Target;

    fn id(request: &RecordOperationRequest) -> &str {
        &request.operation_id
    }

    fn membership(parsed: &Target) -> Option<Uuid> {
        Some(parsed.0)
    }

    async fn post(
        &self,
        tx: &mut Tx,
        calls: &[&Call<Self>],
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Vec<Result<Operation>>> {
        let mut outcomes = Outcomes::new(calls.len());
        let mut resolved = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            match self.resolve(tx, call, memberships).await {
                Ok(r) => resolved.push((i, r)),
                Err(error) => outcomes.refuse(i, error)?,
            }
        }
        let postings: Vec<Posting> = resolved.iter().map(|(_, r)| r.posting.clone()).collect();
        let posted = apply_locked(tx, memberships, &postings).await?;
        let mut activated = HashSet::new();
        for ((i, r), outcome) in resolved.into_iter().zip(posted) {
            let call = calls[i];
            outcomes.answer(
                i,
                match outcome {
                    Ok(posted) => {
                        // Two accruals of one batch may present the same new card: it activates once.
                        if let Some(card) = r.card.filter(|card| activated.insert(*card)) {
                            cards::activate(tx, card, call.parsed.0, &call.subject).await?;
                        }
                        let row = OperationRow {
                            id: posted.operation.expect("an operation posts"),
                            client_id: call.request.operation_id.clone(),
                            account_id: posted.account,
                            membership_id: r.posting.account.membership,
                            person_id: r.posting.account.person,
                            point_type: r.posting.account.point_type.clone(),
                            operation_type: r.operation_type.code.clone(),
                            direction: r.operation_type.direction,
                            points: posted.points,
                            balance_after: posted.balance_after,
                            reference: call.request.reference.trim().to_owned(),
                            reverses: None,
                            reversed_by: None,
                            reversed_points: 0,
                            created_at: posted.created_at,
                        };
                        Ok(operation_to_proto(&row))
                    }
                    Err(error) => Err(error),
                },
            );
        }
        Ok(outcomes.finish())
    }

    async fn taken(conn: &mut PgConnection, ids: &[&str]) -> sqlx::Result<HashSet<String>> {
        store::taken_client_ids(conn, ids).await
    }
}

/// What a call resolved to, before it is posted.
struct Resolved {
    posting: Posting,
    operation_type: OperationTypeRow,
    card: Option<Uuid>,
}

impl Records {
    /// The call's posting: its operation type and point type in the membership's program, its
    /// account (a B2B person's only where the program has them and does not pool), and the card.
    async fn resolve(
        &self,
        tx: &mut Tx,
        call: &Call<Self>,
        memberships: &HashMap<Uuid, LockedMembership>,
    ) -> Result<Resolved> {
        let req = &call.request;
        let (membership, person) = call.parsed;
        let membership = memberships
            .get(&membership)
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        let setup = self.setups.of(tx, membership).await?;
        let code = req.operation_type.trim();
        let Some(operation_type) = setup
            .operation_types
            .iter()
            .find(|t| t.code == code)
            .cloned()
        else {
            let mut v = FieldViolations::new();
            v.add(
                "operation_type",
                format!("{code:?} is not an operation type of the program"),
            );
            return Err(v.into());
        };
        let account = req.account.clone().unwrap_or_default();
        let point_type = pick_point_type(
            &setup.point_types,
            &account.point_type,
            Some(&operation_type.default_point_type),
        )?;
        let person = person_account(person, setup.program.kind, membership.pool_to_organization)?;
        let accrue = operation_type.direction == domain::Direction::Accrue;
        let card = match req.card_number.trim() {
            "" => None,
            number => cards::present(tx, number, membership.id, accrue).await?,
        };
        let change = if accrue {
            let expires_at = store::expiry_of(point_type, &setup.program, chrono::Utc::now());
            Change::Credit {
                points: req.points,
                expires_at,
            }
        } else {
            Change::Debit {
                points: req.points,
                floor: (!point_type.allow_negative).then_some(0),
                prefer: None,
            }
        };
        let posting = Posting {
            account: AccountKey {
                program: membership.program_id,
                membership: membership.id,
                person,
                point_type: point_type.code.clone(),
            },
            change,
            operation: Some(super::Operation {
                client_id: req.operation_id.clone(),
                operation_type: operation_type.code.clone(),
                reference: req.reference.trim().to_owned(),
                subject: call.subject.clone(),
                reverses: None,
                system: if accrue {
                    System::Issuance
                } else {
                    System::Redemption
                },
                announce: if accrue {
                    Announce::Accrued
                } else {
                    Announce::Redeemed
                },
                qualifying: accrue && point_type.qualifying,
            }),
            requires_active: true,
            span: call.span.clone(),
        };
        Ok(Resolved {
            posting,
            operation_type,
            card,
        })
    }
}
