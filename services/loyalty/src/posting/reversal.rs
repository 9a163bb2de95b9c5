//! Reversals: the opposite of an operation, posted once.

use chrono::Utc;
use crm_kit::{
    error::{Result, ServiceError},
    store::Tx,
};
use tracing::Span;
use uuid::Uuid;

use super::{AccountKey, Announce, Change, Operation, Posting, System, apply_one};
use crate::{
    domain::Direction,
    error::Refusal,
    store::{self, OperationRow},
};

/// Posts the opposite of `original` (locked by the caller), down to its point type's reversal
/// floor: an accrual's points come out of the lots it opened first, a spend's points come back.
/// `points` reverses part of it (a partial return; `None`: all that is left), never more than
/// is left. Returns the reversal's id, or `None` when the part comes to no points.
pub(crate) async fn reverse(
    tx: &mut Tx,
    original: &OperationRow,
    points: Option<i64>,
    client_id: &str,
    reference: &str,
    subject: &str,
) -> Result<Option<Uuid>> {
    // Read again now that the original is locked: the row came with a snapshot taken before the
    // lock was granted, which misses a reversal committed while this call waited for it.
    let (reversed, latest) = store::reversals_of(tx, original.id).await?;
    reversible(original, reversed, latest)?;
    let left = original.points - reversed;
    let points = points.map_or(left, |p| p.clamp(0, left));
    if points == 0 {
        return Ok(None);
    }
    let membership = store::get_membership(tx, original.membership_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", original.membership_id))?;
    let program = store::get_program(tx, membership.program_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
    let point_type = store::point_types(tx, program.id)
        .await?
        .into_iter()
        .find(|t| t.code == original.point_type)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("point type of an operation vanished"))
        })?;
    let was_accrual = original.direction == Direction::Accrue;
    let change = if was_accrual {
        // A return may take the balance below zero, down to the point type's floor.
        Change::Debit {
            points,
            floor: (!point_type.allow_negative).then_some(point_type.reversal_floor),
            prefer: Some(original.id),
        }
    } else {
        Change::Return {
            points,
            spend: original.id,
            expires_at: store::expiry_of(&point_type, &program, Utc::now()),
        }
    };
    let posting = Posting {
        account: AccountKey {
            program: program.id,
            membership: original.membership_id,
            person: original.person_id,
            point_type: original.point_type.clone(),
        },
        change,
        operation: Some(Operation {
            client_id: client_id.to_owned(),
            operation_type: original.operation_type.clone(),
            reference: reference.to_owned(),
            subject: subject.to_owned(),
            reverses: Some(original.id),
            system: if was_accrual {
                System::Issuance
            } else {
                System::Redemption
            },
            announce: Announce::Reversed(original.id),
            // An accrual's reversal takes its points back from the tier; a spend's gives none.
            qualifying: was_accrual && point_type.qualifying,
        }),
        // Returns are taken back whatever the membership's status.
        requires_active: false,
        span: Span::current(),
    };
    let posted = apply_one(tx, posting).await?;
    Ok(posted.operation)
}

/// A reversal is never reversed, and an operation is reversed at most by its points.
fn reversible(original: &OperationRow, reversed: i64, latest: Option<Uuid>) -> Result<()> {
    if original.reverses.is_some() {
        return Err(Refusal::CannotReverseAReversal.into());
    }
    if let Some(reversal) = latest.filter(|_| reversed >= original.points) {
        let operation = original.client_id.clone();
        return Err(Refusal::AlreadyReversed {
            operation,
            reversal,
        }
        .into());
    }
    Ok(())
}
