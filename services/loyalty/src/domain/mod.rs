//! Loyalty's rules, free of I/O: limits, codes and names, and the vocabularies it stores.

use crm_kit::error::FieldViolations;

/// The largest number of points one operation or hold may move.
pub const MAX_POINTS: i64 = 1_000_000_000_000;

pub const DEFAULT_HOLD_SECONDS: i64 = 900;

pub const MAX_HOLD_SECONDS: i64 = 30 * 24 * 3600;

pub const DEFAULT_CAPTURE_TYPE: &str = "reward_redemption";

/// The consent a party needs to join a loyalty program (a purpose of the consent service).
pub const ENROLMENT_PURPOSE: &str = "loyalty_program";

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
