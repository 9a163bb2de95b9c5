//! Posting: how an operation changes a member account and the program's system account, and how
//! it is reversed.

use chrono::Utc;
use crm_kit::{
    error::{Result, ServiceError},
    store::{self as kit_store, unique_violation},
};
use crm_proto::crm::loyalty::v1::{AccountRef, PointsAccrued, PointsRedeemed, PointsReversed};
use uuid::Uuid;

use crate::domain;
use crate::{
    convert::account_ref,
    error::Refusal,
    events,
    store::{
        self, MembershipRow, NewOperation, OperationRow, OperationTypeRow, PointTypeRow, ProgramRow,
    },
    tiers,
};

/// A member account an operation or hold applies to, resolved from an [`AccountRef`].
pub(crate) struct Target {
    pub program: ProgramRow,
    pub membership: MembershipRow,
    pub person_id: Option<Uuid>,
    pub point_type: PointTypeRow,
}

impl Target {
    pub(crate) fn reference(&self) -> AccountRef {
        account_ref(self.membership.id, self.person_id, &self.point_type.code)
    }
}

/// What one operation posts, besides its account and type.
pub(crate) struct Posting<'a> {
    pub client_id: &'a str,
    pub points: i64,
    pub reference: &'a str,
    pub subject: &'a str,
}

/// Posts an operation of `op_type` on the target's account: the balance change (refused with
/// INSUFFICIENT_POINTS when a debit is not covered), the two entries and the event. Returns its id.
pub(crate) async fn post(
    tx: &mut kit_store::Tx,
    target: &Target,
    op_type: &OperationTypeRow,
    posting: &Posting<'_>,
) -> Result<Uuid> {
    let account = store::member_account(
        tx,
        target.program.id,
        target.membership.id,
        target.person_id,
        &target.point_type.code,
    )
    .await?;
    let accrue = op_type.direction == domain::Direction::Accrue;
    let delta = if accrue {
        posting.points
    } else {
        -posting.points
    };
    let floor = (!target.point_type.allow_negative).then_some(0);
    let Some(balance_after) = store::change_balance(tx, account, delta, floor).await? else {
        return Err(insufficient(tx, account, posting.points).await);
    };
    let system = if accrue { "issuance" } else { "redemption" };
    let system_account =
        store::system_account(tx, target.program.id, &target.point_type.code, system).await?;
    let id = Uuid::now_v7();
    let operation = NewOperation {
        id,
        client_id: posting.client_id,
        account_id: account,
        system_account_id: system_account,
        operation_type: &op_type.code,
        direction: op_type.direction,
        points: posting.points,
        delta,
        balance_after,
        reference: posting.reference,
        reverses: None,
        subject: posting.subject,
    };
    store::post_operation(tx, &operation)
        .await
        .map_err(|e| operation_id_used(e, posting.client_id))?;
    if accrue {
        let expires_at = store::expiry_of(&target.point_type, &target.program, Utc::now());
        store::add_lot(tx, account, id, posting.points, expires_at).await?;
    } else {
        store::consume_lots(tx, account, posting.points, None).await?;
    }
    let account = Some(target.reference());
    let (operation_id, operation_type, points) =
        (id.to_string(), op_type.code.clone(), posting.points);
    if accrue {
        let event = PointsAccrued {
            operation_id,
            account,
            operation_type,
            points,
            balance_after,
        };
        events::POINTS
            .enqueue(tx, target.membership.id, &event)
            .await?;
    } else {
        let event = PointsRedeemed {
            operation_id,
            account,
            operation_type,
            points,
            balance_after,
        };
        events::POINTS
            .enqueue(tx, target.membership.id, &event)
            .await?;
    }
    if accrue && target.point_type.qualifying {
        store::count_qualifying(tx, &[target.membership.id], &[posting.points]).await?;
        tiers::evaluate(tx, target.membership.id).await?;
    }
    Ok(id)
}

/// Posts the opposite of `original` once, down to its point type's reversal floor. Returns the
/// reversal's id.
pub(crate) async fn reverse(
    tx: &mut kit_store::Tx,
    original: &OperationRow,
    client_id: &str,
    reference: &str,
    subject: &str,
) -> Result<Uuid> {
    // Read again now that the original is locked: the row came with a snapshot taken before the
    // lock was granted, which misses a reversal committed while this call waited for it.
    let reversed_by = store::reversal_of(tx, original.id).await?;
    reversible(original, reversed_by)?;
    // The lock order of every posting: the membership, then its account.
    let membership = store::lock_membership(tx, original.membership_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", original.membership_id))?;
    let point_type = store::point_types(tx, membership.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == original.point_type)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("point type of an operation vanished"))
        })?;
    let was_accrual = original.direction == domain::Direction::Accrue;
    let delta = if was_accrual {
        -original.points
    } else {
        original.points
    };
    // A return may take the balance below zero, down to the point type's floor.
    let floor = (!point_type.allow_negative).then_some(point_type.reversal_floor);
    let Some(balance_after) = store::change_balance(tx, original.account_id, delta, floor).await?
    else {
        return Err(Refusal::ReversalBelowFloor {
            points: original.points,
            floor: point_type.reversal_floor,
        }
        .into());
    };
    let system = if was_accrual {
        "issuance"
    } else {
        "redemption"
    };
    let system_account =
        store::system_account(tx, membership.program_id, &original.point_type, system).await?;
    let id = Uuid::now_v7();
    let operation = NewOperation {
        id,
        client_id,
        account_id: original.account_id,
        system_account_id: system_account,
        operation_type: &original.operation_type,
        direction: if was_accrual {
            domain::Direction::Settle
        } else {
            domain::Direction::Accrue
        },
        points: original.points,
        delta,
        balance_after,
        reference,
        reverses: Some(original.id),
        subject,
    };
    store::post_operation(tx, &operation)
        .await
        .map_err(|e| operation_id_used(e, client_id))?;
    undo_lots(tx, original, id, &point_type, membership.program_id).await?;
    let event = PointsReversed {
        operation_id: id.to_string(),
        reversed_operation_id: original.id.to_string(),
        account: Some(account_ref(
            original.membership_id,
            original.person_id,
            &original.point_type,
        )),
        points: delta,
        balance_after,
    };
    events::POINTS
        .enqueue(tx, original.membership_id, &event)
        .await?;
    if point_type.qualifying {
        // An accrual's reversal takes its points back from the tier; a spend's gives none.
        if was_accrual {
            store::count_qualifying(tx, &[original.membership_id], &[-original.points]).await?;
        }
        tiers::evaluate(tx, original.membership_id).await?;
    }
    Ok(id)
}

/// A reversal is never reversed, and an operation is reversed at most once.
fn reversible(original: &OperationRow, reversed_by: Option<Uuid>) -> Result<()> {
    if original.reverses.is_some() {
        return Err(Refusal::CannotReverseAReversal.into());
    }
    if let Some(reversal) = reversed_by {
        let operation = original.client_id.clone();
        return Err(Refusal::AlreadyReversed {
            operation,
            reversal,
        }
        .into());
    }
    Ok(())
}

/// An accrual's reversal takes its points out of the lots it created; a spend's reversal gives
/// them back as a lot of their own (under the reversal's id).
async fn undo_lots(
    tx: &mut kit_store::Tx,
    original: &OperationRow,
    reversal: Uuid,
    point_type: &PointTypeRow,
    program_id: Uuid,
) -> Result<()> {
    if original.direction == domain::Direction::Accrue {
        store::consume_lots(tx, original.account_id, original.points, Some(original.id)).await?;
    } else {
        // Spent points come back as a fresh credit of their point type.
        let program = store::get_program(tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let expires_at = store::expiry_of(point_type, &program, Utc::now());
        store::add_lot(
            tx,
            original.account_id,
            reversal,
            original.points,
            expires_at,
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn insufficient(
    tx: &mut kit_store::Tx,
    account: Uuid,
    needed: i64,
) -> ServiceError {
    let available = store::available(tx, account).await.ok().flatten();
    Refusal::InsufficientPoints {
        needed,
        available: available.unwrap_or(0),
    }
    .into()
}

pub(crate) fn operation_id_used(error: sqlx::Error, client_id: &str) -> ServiceError {
    if unique_violation(&error).is_some() {
        Refusal::IdReused {
            id: client_id.to_owned(),
        }
        .into()
    } else {
        error.into()
    }
}
