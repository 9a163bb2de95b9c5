//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, timestamp};
use crm_proto::crm::loyalty::v1::{
    AccountRef, Balance, Direction, Hold, LedgerEntry, Membership, Operation, OperationStatus,
};
use uuid::Uuid;

use crate::domain;
use crate::store::{AccountRow, EntryRow, HoldRow, MembershipRow, OperationRow};

pub fn account_ref(membership: Uuid, person: Option<Uuid>, point_type: &str) -> AccountRef {
    AccountRef {
        membership_id: membership.to_string(),
        person_id: person.map(|p| p.to_string()).unwrap_or_default(),
        point_type: point_type.to_owned(),
    }
}

pub fn membership_to_proto(row: &MembershipRow) -> Membership {
    Membership {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        party_id: row.party_id.to_string(),
        status: row.status.to_proto() as i32,
        pool_to_organization: row.pool_to_organization,
        tier: row.tier.clone().unwrap_or_default(),
        assigned_tier: row.assigned_tier.clone().unwrap_or_default(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn balance_to_proto(account: AccountRef, row: Option<&AccountRow>) -> Balance {
    let (balance, held) = row.map_or((0, 0), |a| (a.balance, a.held));
    Balance {
        account: Some(account),
        balance,
        held,
        available: balance - held,
        update_time: row.map(|a| timestamp(a.updated_at)),
    }
}

pub fn entry_to_proto(row: &EntryRow) -> LedgerEntry {
    LedgerEntry {
        id: row.id,
        operation_id: row.operation_id.to_string(),
        operation_type: row.operation_type.clone(),
        amount: row.amount,
        balance_after: row.balance_after.unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    }
}

pub fn operation_to_proto(row: &OperationRow) -> Operation {
    Operation {
        id: row.id.to_string(),
        operation_id: row.client_id.clone(),
        account: Some(account_ref(
            row.membership_id,
            row.person_id,
            &row.point_type,
        )),
        operation_type: row.operation_type.clone(),
        direction: if row.direction == domain::Direction::Settle {
            Direction::Settle
        } else {
            Direction::Accrue
        } as i32,
        points: row.points,
        balance_after: row.balance_after,
        status: match row.reversed_points {
            0 => OperationStatus::Posted,
            some if some < row.points => OperationStatus::PartiallyReversed,
            _ => OperationStatus::Reversed,
        } as i32,
        reverses_operation_id: row.reverses.map(|id| id.to_string()).unwrap_or_default(),
        reversed_by_operation_id: row.reversed_by.map(|id| id.to_string()).unwrap_or_default(),
        reference: row.reference.clone(),
        create_time: Some(timestamp(row.created_at)),
        reversed_points: row.reversed_points,
    }
}

pub fn hold_to_proto(row: &HoldRow) -> Hold {
    Hold {
        id: row.id.to_string(),
        hold_id: row.client_id.clone(),
        account: Some(account_ref(
            row.membership_id,
            row.person_id,
            &row.point_type,
        )),
        points: row.points,
        captured_points: row.captured_points,
        status: row.status.to_proto() as i32,
        expire_time: Some(timestamp(row.expires_at)),
        reference: row.reference.clone(),
        capture_operation_id: row
            .capture_operation_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    }
}
