//! The rules of the parties domain, free of I/O: what a valid party, person, contact point and
//! custom field value is, and how values are normalised before they are stored.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use crm_kit::error::FieldViolations;
use crm_proto::crm::{
    common::v1::PostalAddress,
    parties::v1::{ContactPoint, ContactPointKind, RegistrationNumber},
};
use serde::{Deserialize, Serialize};

mod custom_fields;
pub mod fields;
mod merge;

pub use custom_fields::*;
pub use merge::{Merged, merge};

crm_kit::text_enum! {
    /// A legal person (company, institution) or a natural person (a consumer).
    pub enum PartyKind: crm_proto::crm::parties::v1::PartyKind {
        Organization = "organization",
        Person = "person",
    }
}

crm_kit::text_enum! {
    /// Active parties take part in everything; archived (and merged) ones are read-only.
    pub enum PartyStatus: crm_proto::crm::parties::v1::PartyStatus {
        Active = "active",
        Archived = "archived",
    }
}

const MAX_NAME: usize = 300;
const MAX_TAG: usize = 64;

/// A contact point as stored (jsonb) and searched (`kind` + normalised `value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub preferred: bool,
}

pub use crm_kit::address::Address;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub scheme: String,
    pub value: String,
}

/// Custom field values by key, each tagged with its type: `{"industry": {"option": "retail"}}`.
pub type CustomValues = BTreeMap<String, serde_json::Value>;

pub fn contact_kind_name(kind: ContactPointKind) -> Option<&'static str> {
    Some(match kind {
        ContactPointKind::Email => "email",
        ContactPointKind::Phone => "phone",
        ContactPointKind::Fax => "fax",
        ContactPointKind::Web => "web",
        ContactPointKind::Messenger => "messenger",
        ContactPointKind::Unspecified => return None,
    })
}

fn contact_kind_from_name(name: &str) -> ContactPointKind {
    match name {
        "email" => ContactPointKind::Email,
        "phone" => ContactPointKind::Phone,
        "fax" => ContactPointKind::Fax,
        "web" => ContactPointKind::Web,
        "messenger" => ContactPointKind::Messenger,
        _ => ContactPointKind::Unspecified,
    }
}

/// Lower-cased e-mail address, if it is one (a pragmatic subset of RFC 5322 that real mail accepts).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic));
    (local_ok && domain_ok && email.len() <= 254).then_some(email)
}

/// E.164 (`+48601234567`), after removing the spaces, dashes, dots and brackets people type.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !" -().\u{a0}".contains(*c))
        .collect();
    let digits = compact.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(compact)
}

const EU_VAT_PREFIXES: [&str; 28] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI",
];

/// A tax id with its country prefix. Polish NIPs (with or without `PL`) must pass the checksum;
/// other EU VAT numbers must have the EU shape: a member-state prefix and 2–12 letters or digits.
pub fn normalize_tax_id(raw: &str) -> Result<String, &'static str> {
    let compact: String = raw
        .chars()
        .filter(|c| !" -.".contains(*c))
        .collect::<String>()
        .to_uppercase();
    let digits_only = compact.chars().all(|c| c.is_ascii_digit());
    if digits_only && compact.len() == 10 {
        return polish_nip(&compact).map(|nip| format!("PL{nip}"));
    }
    if compact.len() < 4 || !compact.is_char_boundary(2) {
        return Err("is not a tax id with a country prefix (e.g. PL5260250995, DE123456789)");
    }
    let (prefix, number) = compact.split_at(2);
    if prefix == "PL" {
        return polish_nip(number).map(|nip| format!("PL{nip}"));
    }
    if !EU_VAT_PREFIXES.contains(&prefix) {
        return Err("has no EU VAT country prefix (e.g. PL, DE, FR)");
    }
    if !(2..=12).contains(&number.len()) || !number.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("is not an EU VAT number: 2 to 12 letters or digits after the country prefix");
    }
    Ok(compact)
}

fn polish_nip(number: &str) -> Result<&str, &'static str> {
    const WEIGHTS: [u32; 9] = [6, 5, 7, 2, 3, 4, 5, 6, 7];
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 10 || number.len() != 10 {
        return Err("is not a Polish NIP: 10 digits expected");
    }
    let sum: u32 = WEIGHTS.iter().zip(&digits).map(|(w, d)| w * d).sum();
    if sum % 11 != digits[9] {
        return Err("is not a valid Polish NIP: the check digit does not match");
    }
    Ok(number)
}

/// Validates and normalises contact points; at most one preferred per kind.
pub fn contacts(points: &[ContactPoint], field: &str, v: &mut FieldViolations) -> Vec<Contact> {
    let mut preferred_kinds = HashSet::new();
    let mut out = Vec::with_capacity(points.len());
    for (i, point) in points.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let kind = point.kind();
        let Some(kind_name) = contact_kind_name(kind) else {
            v.add(
                format!("{at}.kind"),
                "must be EMAIL, PHONE, FAX, WEB or MESSENGER",
            );
            continue;
        };
        let value = match kind {
            ContactPointKind::Email => normalize_email(&point.value),
            ContactPointKind::Phone | ContactPointKind::Fax => normalize_phone(&point.value),
            _ => Some(point.value.trim().to_owned()).filter(|s| !s.is_empty() && s.len() <= 2048),
        };
        let Some(value) = value else {
            let expected = match kind {
                ContactPointKind::Email => "is not an e-mail address",
                ContactPointKind::Phone | ContactPointKind::Fax => {
                    "is not an E.164 phone number (e.g. +48601234567)"
                }
                _ => "must not be empty",
            };
            v.add(format!("{at}.value"), expected);
            continue;
        };
        if point.preferred && !preferred_kinds.insert(kind_name) {
            v.add(
                format!("{at}.preferred"),
                "only one contact point of a kind can be preferred",
            );
        }
        out.push(Contact {
            kind: kind_name.to_owned(),
            value,
            label: point.label.trim().to_owned(),
            preferred: point.preferred,
        });
    }
    out
}

pub fn contacts_to_proto(contacts: &[Contact]) -> Vec<ContactPoint> {
    contacts
        .iter()
        .map(|c| ContactPoint {
            kind: contact_kind_from_name(&c.kind) as i32,
            value: c.value.clone(),
            label: c.label.clone(),
            preferred: c.preferred,
        })
        .collect()
}

pub fn addresses(list: &[PostalAddress], field: &str, v: &mut FieldViolations) -> Vec<Address> {
    list.iter()
        .enumerate()
        .map(|(i, a)| Address::parse(a, &format!("{field}[{i}]"), v))
        .collect()
}

pub fn addresses_to_proto(list: &[Address]) -> Vec<PostalAddress> {
    list.iter().map(Address::to_proto).collect()
}

pub fn registrations(
    list: &[RegistrationNumber],
    field: &str,
    v: &mut FieldViolations,
) -> Vec<Registration> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            v.check(
                !r.scheme.trim().is_empty(),
                format!("{field}[{i}].scheme"),
                "must not be empty",
            );
            v.check(
                !r.value.trim().is_empty(),
                format!("{field}[{i}].value"),
                "must not be empty",
            );
            Registration {
                scheme: r.scheme.trim().to_owned(),
                value: r.value.trim().to_owned(),
            }
        })
        .collect()
}

/// Trimmed, de-duplicated tags, each 1–64 characters.
pub fn tags(list: &[String], field: &str, v: &mut FieldViolations) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, tag) in list.iter().enumerate() {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG {
            v.add(format!("{field}[{i}]"), "must be 1 to 64 characters");
        } else if seen.insert(tag.to_owned()) {
            out.push(tag.to_owned());
        }
    }
    out
}

/// A required, trimmed name of at most 300 characters.
pub fn name(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim();
    if name.is_empty() {
        v.add(field, "must not be empty");
    } else if name.chars().count() > MAX_NAME {
        v.add(field, "must be at most 300 characters");
    }
    name.to_owned()
}

/// What a caller can change on a party (everything but identity, status and audit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartyData {
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub legal_name: String,
    pub tax_id: Option<String>,
    pub registration_numbers: Vec<Registration>,
    pub tags: Vec<String>,
    pub custom_fields: CustomValues,
    pub contact_points: Vec<Contact>,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnniversaryJson {
    pub label: String,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyJson {
    pub relation: String,
    pub name: String,
    pub birthday: Option<NaiveDate>,
}

/// What a caller can change on a person. Names, private contacts and home addresses of a
/// natural person are stored on their party.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonData {
    pub given_name: String,
    pub family_name: String,
    pub private_contact_points: Vec<Contact>,
    pub home_addresses: Vec<Address>,
    pub gender: String,
    pub profession: String,
    pub education: String,
    pub birthday: Option<NaiveDate>,
    pub name_day: Option<NaiveDate>,
    pub anniversaries: Vec<AnniversaryJson>,
    pub family: Vec<FamilyJson>,
    pub hobbies: Vec<String>,
    pub interests: Vec<String>,
    pub remarks: String,
    pub custom_fields: CustomValues,
    /// The operator who looks after the person.
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polish_nip_checksum() {
        assert_eq!(normalize_tax_id("526-025-09-95"), Ok("PL5260250995".into()));
        assert_eq!(
            normalize_tax_id("PL 526 025 09 95"),
            Ok("PL5260250995".into())
        );
        assert!(normalize_tax_id("5260250996").is_err());
        assert!(normalize_tax_id("PL123").is_err());
    }

    #[test]
    fn eu_vat_shape() {
        assert_eq!(normalize_tax_id("de 123456789"), Ok("DE123456789".into()));
        assert_eq!(
            normalize_tax_id("FR12345678901"),
            Ok("FR12345678901".into())
        );
        assert!(normalize_tax_id("US123456789").is_err());
        assert!(normalize_tax_id("DE1234567890123").is_err());
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(
            normalize_email(" Anna.Nowak@Example.PL "),
            Some("anna.nowak@example.pl".into())
        );
        for bad in [
            "anna",
            "anna@",
            "@example.pl",
            "anna@example",
            "an na@example.pl",
            "a..b@x.pl",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
        assert_eq!(
            normalize_phone("+48 601-234-567"),
            Some("+48601234567".into())
        );
        assert_eq!(
            normalize_phone("(+48) 601 234 567"),
            Some("+48601234567".into())
        );
        for bad in ["601234567", "+48", "+0601234567", "+48 601 abc 567"] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn contact_points_report_every_bad_entry() {
        let points = [
            ContactPoint {
                kind: 1,
                value: "x@".into(),
                ..Default::default()
            },
            ContactPoint {
                kind: 2,
                value: "+48601234567".into(),
                preferred: true,
                ..Default::default()
            },
            ContactPoint {
                kind: 2,
                value: "+48601234568".into(),
                preferred: true,
                ..Default::default()
            },
            ContactPoint {
                kind: 0,
                value: "?".into(),
                ..Default::default()
            },
        ];
        let mut v = FieldViolations::new();
        let ok = contacts(&points, "party.contact_points", &mut v);
        assert_eq!(ok.len(), 2);
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            [
                "party.contact_points[0].value",
                "party.contact_points[2].preferred",
                "party.contact_points[3].kind"
            ]
        );
    }
}
