//! The rewards service's rules, free of I/O: its vocabularies (each stored as text and named by a
//! proto enum, declared once), a reward's life, stock arithmetic, and voucher code files.

pub mod orders;
pub mod stock;
pub mod vouchers;

use chrono::{DateTime, Utc};
use crm_kit::error::FieldViolations;
use crm_proto::crm::rewards::v1 as proto;

crm_kit::text_enum! {
    /// What a member receives.
    pub enum RewardKind: proto::RewardKind {
        Material = "material",
        Voucher = "voucher",
    }
}

crm_kit::text_enum! {
    /// Where a reward is in its life: draft → active → archived.
    pub enum RewardStatus: proto::RewardStatus {
        Draft = "draft",
        Active = "active",
        Archived = "archived",
    }
}

crm_kit::text_enum! {
    /// Where a voucher reward's codes come from.
    pub enum VoucherSource: proto::VoucherSource {
        Generated = "generated",
        Imported = "imported",
    }
}

crm_kit::text_enum! {
    /// What happened to a warehouse's stock of a reward.
    pub enum MovementKind: proto::MovementKind {
        Receipt = "receipt",
        Reservation = "reservation",
        Release = "release",
        Issue = "issue",
        Return = "return",
        Adjustment = "adjustment",
        Transfer = "transfer",
    }
}

/// Longest a display name may be, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A required display name of at most [`MAX_NAME_CHARS`] characters, trimmed.
pub fn display_name(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim();
    v.check(!name.is_empty(), field, "must not be empty");
    v.check(
        name.chars().count() <= MAX_NAME_CHARS,
        field,
        format!("must be at most {MAX_NAME_CHARS} characters"),
    );
    name.to_owned()
}

/// A status a reward may be created with, or updated to: only DRAFT → ACTIVE moves by update;
/// archiving has its own call and is final.
pub fn check_status_change(from: RewardStatus, to: RewardStatus, v: &mut FieldViolations) {
    let allowed = from == to || (from == RewardStatus::Draft && to == RewardStatus::Active);
    v.check(
        allowed,
        "reward.status",
        format!(
            "a {} reward cannot become {} by an update (only DRAFT → ACTIVE; ArchiveReward archives)",
            from.as_str(),
            to.as_str()
        ),
    );
}

/// The availability window must not be empty.
pub fn check_window(
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    v: &mut FieldViolations,
) {
    if let (Some(from), Some(until)) = (from, until) {
        v.check(
            until > from,
            "reward.available_until",
            "must be after available_from",
        );
    }
}

/// A count a user sets where 0 means none (limits, thresholds, days).
pub fn non_negative(value: i32, field: &str, v: &mut FieldViolations) -> i32 {
    v.check(value >= 0, field, "must be 0 (none) or more");
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drafts_are_activated_by_update() {
        use RewardStatus::*;
        for (from, to, ok) in [
            (Draft, Active, true),
            (Draft, Draft, true),
            (Active, Active, true),
            (Active, Draft, false),
            (Active, Archived, false),
            (Archived, Active, false),
            (Draft, Archived, false),
        ] {
            let mut v = FieldViolations::new();
            check_status_change(from, to, &mut v);
            assert_eq!(v.finish().is_ok(), ok, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn a_window_must_not_be_empty() {
        let now = Utc::now();
        let mut v = FieldViolations::new();
        check_window(Some(now), Some(now), &mut v);
        assert!(v.finish().is_err());
        let mut v = FieldViolations::new();
        check_window(Some(now), None, &mut v);
        check_window(None, Some(now), &mut v);
        assert!(v.finish().is_ok());
    }
}
