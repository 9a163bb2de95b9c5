//! What every gRPC handler needs: who is calling, the one answer mapping, validators that hand
//! back the parsed value, and ids, dates and times in proto form.
//!
//! The validators record a violation naming the field and return a placeholder (nil UUID, empty
//! text, the default message), so a handler checks every field, calls
//! [`FieldViolations::finish`], and then uses the values it got: no unwrapping after validation.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::common::v1::{AuditInfo, Date, Money};
use rust_decimal::Decimal;
use tonic::{Response, Status};
use uuid::Uuid;

use crate::{auth::Caller, error::FieldViolations};

/// What every RPC of the suite returns.
pub type Reply<T> = Result<Response<T>, Status>;

/// A use case's result as the RPC's answer: the one place service errors become statuses.
pub fn reply<T>(result: crate::error::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

/// The authenticated subject of the call (set by the server's gate), for audit fields.
pub fn subject<T>(request: &tonic::Request<T>) -> String {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .map_or_else(|| "anonymous".to_owned(), |caller| caller.subject.clone())
}

/// The one id a request names, or INVALID_ARGUMENT naming `field`: for requests with nothing else
/// to check.
pub fn id(value: &str, field: &str) -> crate::error::Result<Uuid> {
    let mut v = FieldViolations::new();
    let id = uuid(value, field, &mut v);
    v.finish()?;
    Ok(id)
}

/// Parses a required UUID field, recording a violation naming `field` otherwise.
pub fn uuid(value: &str, field: &str, violations: &mut FieldViolations) -> Uuid {
    match Uuid::parse_str(value.trim()) {
        Ok(id) => id,
        Err(_) if value.trim().is_empty() => {
            violations.add(field, "is required");
            Uuid::nil()
        }
        Err(_) => {
            violations.add(field, "is not a UUID");
            Uuid::nil()
        }
    }
}

/// A required message field; its default when missing.
pub fn required<T: Default>(value: Option<T>, field: &str, violations: &mut FieldViolations) -> T {
    if value.is_none() {
        violations.add(field, "is required");
    }
    value.unwrap_or_default()
}

/// A required text, trimmed.
pub fn text(value: &str, field: &str, violations: &mut FieldViolations) -> String {
    let value = value.trim();
    violations.check(!value.is_empty(), field, "must not be empty");
    value.to_owned()
}

/// A code users and integrators type and keep: lower snake case, 1 to 63 characters, e.g.
/// `marketing_email`.
pub fn code(value: &str, field: &str, violations: &mut FieldViolations) -> String {
    let value = value.trim();
    let ok = (1..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    violations.check(
        ok,
        field,
        "must be lower snake case of at most 63 characters, e.g. marketing_email",
    );
    value.to_owned()
}

/// An ISO 4217 currency code, upper-cased: three letters, e.g. `PLN`.
pub fn currency(value: &str, field: &str, violations: &mut FieldViolations) -> String {
    let value = value.trim().to_ascii_uppercase();
    violations.check(
        value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()),
        field,
        "must be an ISO 4217 code such as PLN",
    );
    value
}

/// An optional amount of money: `None` when unset; otherwise a decimal of at most 15 integer
/// digits and 4 decimal places (what a `numeric(19,4)` holds) and its currency, each
/// violation naming its field (`<field>.amount`, `<field>.currency_code`).
pub fn money(
    value: Option<&Money>,
    field: &str,
    violations: &mut FieldViolations,
) -> Option<(Decimal, String)> {
    let value = value?;
    let amount = decimal(&value.amount, &format!("{field}.amount"), violations);
    let currency = currency(
        &value.currency_code,
        &format!("{field}.currency_code"),
        violations,
    );
    Some((amount.unwrap_or_default(), currency))
}

/// A decimal as money and quantities are kept (a `numeric(19,4)`): at most 15 digits before the
/// point and 4 after, e.g. `"12.50"`; `None`, and a violation naming `field`, otherwise.
pub fn decimal(value: &str, field: &str, violations: &mut FieldViolations) -> Option<Decimal> {
    let parsed = Decimal::from_str_exact(value.trim())
        .ok()
        .filter(|d| d.scale() <= 4 && d.abs() < Decimal::from(10_i64.pow(15)));
    if parsed.is_none() {
        violations.add(
            field,
            "must be a decimal such as \"12.50\" with at most 15 digits before the point and 4 after",
        );
    }
    parsed
}

/// Money in proto form, the amount written as stored (`12.50` stays `12.50`).
pub fn money_to_proto(amount: Decimal, currency_code: &str) -> Money {
    Money {
        amount: amount.to_string(),
        currency_code: currency_code.to_owned(),
    }
}

/// Parses an optional UUID field: empty means `None`.
pub fn optional_uuid(value: &str, field: &str, violations: &mut FieldViolations) -> Option<Uuid> {
    (!value.trim().is_empty()).then(|| uuid(value, field, violations))
}

/// Parses an optional calendar date, recording a violation naming `field` when it is not one.
pub fn date(
    value: Option<&Date>,
    field: &str,
    violations: &mut FieldViolations,
) -> Option<NaiveDate> {
    let d = value?;
    // Years 1 to 9999: what PostgreSQL and every client language can hold.
    let parsed = u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .filter(|_| (1..=9999).contains(&d.year))
        .and_then(|(month, day)| NaiveDate::from_ymd_opt(d.year, month, day));
    if parsed.is_none() {
        violations.add(field, "is not a calendar date of years 1 to 9999");
    }
    parsed
}

pub fn date_to_proto(date: NaiveDate) -> Date {
    use chrono::Datelike;
    Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// An optional time field: `None` when unset, a violation naming `field` when out of range.
pub fn optional_time(
    value: Option<&prost_types::Timestamp>,
    field: &str,
    violations: &mut FieldViolations,
) -> Option<DateTime<Utc>> {
    let value = value?;
    let parsed = time(value);
    violations.check(
        parsed.is_some(),
        field,
        "is not a time between years 1 and 9999",
    );
    parsed
}

/// A protobuf timestamp as a UTC time; None outside years 1 to 9999 (the range protobuf's
/// Timestamp documents, and PostgreSQL holds).
pub fn time(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&timestamp.seconds) {
        return None;
    }
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).ok()?)
}

/// Whether a time read from elsewhere (a page token, say) is one PostgreSQL and protobuf hold:
/// years 1 to 9999.
pub fn in_range(at: DateTime<Utc>) -> bool {
    time(&timestamp(at)).is_some()
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn audit(
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: &str,
    updated_by: &str,
) -> AuditInfo {
    AuditInfo {
        create_time: Some(timestamp(created_at)),
        update_time: Some(timestamp(updated_at)),
        created_by: created_by.to_owned(),
        updated_by: updated_by.to_owned(),
    }
}

/// Checks a field mask against the paths a resource allows; an empty mask is an error too.
pub fn mask_paths<'a>(
    mask: Option<&'a prost_types::FieldMask>,
    allowed: &[&str],
    violations: &mut FieldViolations,
) -> Vec<&'a str> {
    let paths: Vec<&str> = mask
        .map(|m| m.paths.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        violations.add("update_mask", "must name at least one field to update");
    }
    for path in &paths {
        if !allowed.contains(path) {
            violations.add(
                "update_mask",
                format!(
                    "{path:?} cannot be updated; allowed: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    paths
}
