//! Loyalty's rules, free of I/O: limits, codes and names, and the vocabularies it stores.

mod cards;
mod coupons;

pub use cards::{new_number, typed_number, valid_number};
pub use coupons::{new_code, normalize_code};

use crm_proto::crm::loyalty::v1 as proto;

crm_kit::text_enum! {
    /// Whom a program serves: consumers, or companies and the persons working for them.
    pub enum ProgramKind: proto::ProgramKind {
        B2c = "b2c",
        B2b = "b2b",
    }
}

crm_kit::text_enum! {
    /// A draft program is being set up; only an active one takes members and points.
    pub enum ProgramStatus: proto::ProgramStatus {
        Draft = "draft",
        Active = "active",
        Closed = "closed",
    }
}

crm_kit::text_enum! {
    /// When points of a type expire.
    pub enum ExpiryPolicy: proto::ExpiryPolicy {
        Never = "never",
        MonthsAfterEarning = "months_after_earning",
        EndOfProgram = "end_of_program",
    }
}

crm_kit::text_enum! {
    /// Whether an operation credits a member (and debits issuance) or the reverse.
    pub enum Direction: proto::Direction {
        Accrue = "accrue",
        Settle = "settle",
    }
}

crm_kit::text_enum! {
    /// Only an active membership earns and spends points.
    pub enum MembershipStatus: proto::MembershipStatus {
        Active = "active",
        Suspended = "suspended",
        Left = "left",
    }
}

crm_kit::text_enum! {
    /// A hold is pending until captured, voided or timed out.
    pub enum HoldStatus: proto::HoldStatus {
        Pending = "pending",
        Captured = "captured",
        Voided = "voided",
        Expired = "expired",
    }
}

crm_kit::text_enum! {
    /// A card is issued, activated by its first use, blocked (and reissued) or closed.
    pub enum CardStatus: proto::CardStatus {
        Issued = "issued",
        Active = "active",
        Blocked = "blocked",
        Closed = "closed",
    }
}

crm_kit::text_enum! {
    /// What a coupon gives.
    pub enum CouponKind: proto::CouponKind {
        Percentage = "percentage",
        FixedAmount = "fixed_amount",
        Product = "product",
    }
}

crm_kit::text_enum! {
    /// A bulk accrual runs until every selected member is credited or counted as failed, or until
    /// it is cancelled.
    pub enum BulkStatus: proto::BulkAccrualStatus {
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        Cancelled = "cancelled",
    }
}

use crm_kit::error::FieldViolations;

/// The largest number of points one operation or hold may move.
pub const MAX_POINTS: i64 = 1_000_000_000_000;

pub const DEFAULT_HOLD_SECONDS: i64 = 900;

pub const MAX_HOLD_SECONDS: i64 = 30 * 24 * 3600;

pub const DEFAULT_CAPTURE_TYPE: &str = "reward_redemption";

/// The consent a party needs to join a loyalty program (a purpose of the consent service).
pub const ENROLMENT_PURPOSE: &str = "loyalty_program";

/// A client's idempotency id (operation, hold, job, redemption): required, and without ':',
/// which marks the ids the service gives its own operations (`invoice:…`, `hold:…:capture`).
pub fn check_client_id(id: &str, field: &str, v: &mut FieldViolations) {
    v.check(
        !id.trim().is_empty() && !id.contains(':'),
        field,
        "is required: the client's idempotency id, without ':'",
    );
}

pub fn check_points(points: i64, field: &str, v: &mut FieldViolations) {
    v.check(
        (1..=MAX_POINTS).contains(&points),
        field,
        "must be a positive whole number of points",
    );
}

/// Lower snake case: `basic`, `signup_bonus`.
pub fn code(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let code = raw.trim();
    let ok = (1..=63).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    v.check(
        ok,
        field,
        "must be lower snake case, e.g. basic or signup_bonus",
    );
    code.to_owned()
}

pub fn display_name(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim();
    v.check(
        !name.is_empty() && name.chars().count() <= 300,
        field,
        "must be 1 to 300 characters",
    );
    name.to_owned()
}
