//! Applying a request's fields to a party or a person: each path of an update mask (or every
//! path on create) validated and set, and the paths that actually changed, for the event.

use crm_kit::{error::FieldViolations, request::date};
use crm_proto::crm::parties::v1::{CustomFieldDefinition, Gender, Party, Person};

use super::{AnniversaryJson, FamilyJson, PartyData, PersonData};

/// Party fields a caller sets, in UpdatePartyRequest.update_mask terms.
pub const PARTY_PATHS: [&str; 9] = [
    "display_name",
    "person_name",
    "legal_name",
    "tax_id",
    "registration_numbers",
    "tags",
    "custom_fields",
    "contact_points",
    "addresses",
];

pub const PERSON_PATHS: [&str; 15] = [
    "name",
    "gender",
    "profession",
    "education",
    "private_contact_points",
    "home_addresses",
    "birthday",
    "name_day",
    "anniversaries",
    "family",
    "hobbies",
    "interests",
    "remarks",
    "custom_fields",
    "owner",
];

pub const EMPLOYMENT_PATHS: [&str; 4] = [
    "employment.position",
    "employment.department",
    "employment.supervisor_person_id",
    "employment.business_contact_points",
];

/// Person fields that a natural person shares with their party, and the party's names for them.
pub const SHARED_FIELDS: [(&str, &str); 3] = [
    ("name", "person_name"),
    ("private_contact_points", "contact_points"),
    ("home_addresses", "addresses"),
];

pub fn person_display_name(given: &str, family: &str) -> String {
    format!("{given} {family}").trim().to_owned()
}

/// Validates and applies one field of `input` at `path`. On create every path is applied and
/// fields that do not fit the kind must be empty; on update (`explicit`) naming them is an error.
#[allow(clippy::too_many_arguments)]
pub fn apply_party_field(
    path: &str,
    organization: bool,
    explicit: bool,
    input: &Party,
    data: &mut PartyData,
    definitions: &[CustomFieldDefinition],
    v: &mut FieldViolations,
) {
    match path {
        "display_name" if organization => {
            data.display_name = super::name(&input.display_name, "party.display_name", v)
        }
        "display_name" => v.check(
            !explicit,
            "update_mask",
            "a natural person's display_name follows person_name; update person_name",
        ),
        "person_name" if organization => v.check(
            !explicit
                && input
                    .person_name
                    .as_ref()
                    .is_none_or(|n| n.given_name.is_empty() && n.family_name.is_empty()),
            "party.person_name",
            "only natural persons have a person_name",
        ),
        "person_name" => {
            let name = input.person_name.clone().unwrap_or_default();
            (data.given_name, data.family_name) =
                person_name(&name.given_name, &name.family_name, "party.person_name", v);
            data.display_name = person_display_name(&data.given_name, &data.family_name);
        }
        "legal_name" | "registration_numbers" if !organization => {
            let empty = if path == "legal_name" {
                input.legal_name.is_empty()
            } else {
                input.registration_numbers.is_empty()
            };
            v.check(
                !explicit && empty,
                format!("party.{path}"),
                "only organizations have this field",
            );
        }
        "legal_name" => {
            let legal = input.legal_name.trim();
            v.check(
                legal.chars().count() <= 300,
                "party.legal_name",
                "must be at most 300 characters",
            );
            data.legal_name = legal.to_owned();
        }
        "registration_numbers" => {
            data.registration_numbers =
                super::registrations(&input.registration_numbers, "party.registration_numbers", v)
        }
        "tax_id" => {
            data.tax_id = Some(input.tax_id.trim())
                .filter(|t| !t.is_empty())
                .and_then(|raw| {
                    super::normalize_tax_id(raw)
                        .map_err(|e| v.add("party.tax_id", e))
                        .ok()
                })
        }
        "tags" => data.tags = super::tags(&input.tags, "party.tags", v),
        "custom_fields" => {
            data.custom_fields =
                super::custom_values(&input.custom_fields, definitions, "party.custom_fields", v)
        }
        "contact_points" => {
            data.contact_points = super::contacts(&input.contact_points, "party.contact_points", v)
        }
        "addresses" => data.addresses = super::addresses(&input.addresses, "party.addresses", v),
        other => v.add("update_mask", format!("{other:?} cannot be updated")),
    }
}

/// Given and family name, trimmed; at least one of them.
pub fn person_name(
    given: &str,
    family: &str,
    field: &str,
    v: &mut FieldViolations,
) -> (String, String) {
    let (given, family) = (given.trim().to_owned(), family.trim().to_owned());
    v.check(
        !(given.is_empty() && family.is_empty()),
        field,
        "needs a given_name or a family_name",
    );
    v.check(
        given.chars().count() <= 300 && family.chars().count() <= 300,
        field,
        "names must be at most 300 characters",
    );
    (given, family)
}

pub fn changed_party_fields(before: &PartyData, after: &PartyData) -> Vec<String> {
    let checks = [
        ("display_name", before.display_name != after.display_name),
        (
            "person_name",
            (&before.given_name, &before.family_name) != (&after.given_name, &after.family_name),
        ),
        ("legal_name", before.legal_name != after.legal_name),
        ("tax_id", before.tax_id != after.tax_id),
        (
            "registration_numbers",
            before.registration_numbers != after.registration_numbers,
        ),
        ("tags", before.tags != after.tags),
        ("custom_fields", before.custom_fields != after.custom_fields),
        (
            "contact_points",
            before.contact_points != after.contact_points,
        ),
        ("addresses", before.addresses != after.addresses),
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
}

pub fn gender_name(gender: Gender) -> &'static str {
    match gender {
        Gender::Female => "female",
        Gender::Male => "male",
        Gender::Other => "other",
        Gender::Unspecified => "unspecified",
    }
}

pub fn gender_from_name(name: &str) -> Gender {
    match name {
        "female" => Gender::Female,
        "male" => Gender::Male,
        "other" => Gender::Other,
        _ => Gender::Unspecified,
    }
}

pub fn short_texts(list: &[String], field: &str, v: &mut FieldViolations) -> Vec<String> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let s = s.trim();
            v.check(
                s.chars().count() <= 200,
                format!("{field}[{i}]"),
                "must be at most 200 characters",
            );
            (!s.is_empty()).then(|| s.to_owned())
        })
        .collect()
}

// One arm per updatable person path (employments have their own appliers), so the list reads
// in one place.
pub fn apply_person_field(
    path: &str,
    input: &Person,
    data: &mut PersonData,
    definitions: &[CustomFieldDefinition],
    v: &mut FieldViolations,
) {
    let short = |s: &str, field: &str, v: &mut FieldViolations| {
        v.check(
            s.trim().chars().count() <= 300,
            field,
            "must be at most 300 characters",
        );
        s.trim().to_owned()
    };
    match path {
        "name" => {
            let name = input.name.clone().unwrap_or_default();
            (data.given_name, data.family_name) =
                person_name(&name.given_name, &name.family_name, "person.name", v);
        }
        "gender" => data.gender = gender_name(input.gender()).to_owned(),
        "profession" => data.profession = short(&input.profession, "person.profession", v),
        "education" => data.education = short(&input.education, "person.education", v),
        "private_contact_points" => {
            data.private_contact_points = super::contacts(
                &input.private_contact_points,
                "person.private_contact_points",
                v,
            )
        }
        "home_addresses" => {
            data.home_addresses =
                super::addresses(&input.home_addresses, "person.home_addresses", v)
        }
        "birthday" => data.birthday = date(input.birthday.as_ref(), "person.birthday", v),
        "name_day" => {
            // Name days recur every year: only month and day count, kept in the leap year 2000.
            data.name_day = input.name_day.as_ref().and_then(|d| {
                let yearless = crm_proto::crm::common::v1::Date { year: 2000, ..*d };
                date(Some(&yearless), "person.name_day", v)
            })
        }
        "anniversaries" => {
            data.anniversaries = input
                .anniversaries
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    let at = format!("person.anniversaries[{i}]");
                    let label = super::name(&a.label, &format!("{at}.label"), v);
                    v.check(a.date.is_some(), format!("{at}.date"), "is required");
                    let date = date(a.date.as_ref(), &format!("{at}.date"), v)?;
                    Some(AnniversaryJson { label, date })
                })
                .collect()
        }
        "family" => {
            data.family = input
                .family
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let at = format!("person.family[{i}]");
                    FamilyJson {
                        relation: super::name(&m.relation, &format!("{at}.relation"), v),
                        name: short(&m.name, &format!("{at}.name"), v),
                        birthday: date(m.birthday.as_ref(), &format!("{at}.birthday"), v),
                    }
                })
                .collect()
        }
        "hobbies" => data.hobbies = short_texts(&input.hobbies, "person.hobbies", v),
        "interests" => data.interests = short_texts(&input.interests, "person.interests", v),
        "remarks" => {
            v.check(
                input.remarks.chars().count() <= 10_000,
                "person.remarks",
                "must be at most 10000 characters",
            );
            data.remarks = input.remarks.trim().to_owned();
        }
        "custom_fields" => {
            data.custom_fields =
                super::custom_values(&input.custom_fields, definitions, "person.custom_fields", v)
        }
        "owner" => data.owner = short(&input.owner, "person.owner", v),
        other => v.add("update_mask", format!("{other:?} cannot be updated")),
    }
}

pub fn changed_person_fields(before: &PersonData, after: &PersonData) -> Vec<String> {
    let checks = [
        (
            "name",
            (&before.given_name, &before.family_name) != (&after.given_name, &after.family_name),
        ),
        ("gender", before.gender != after.gender),
        ("profession", before.profession != after.profession),
        ("education", before.education != after.education),
        (
            "private_contact_points",
            before.private_contact_points != after.private_contact_points,
        ),
        (
            "home_addresses",
            before.home_addresses != after.home_addresses,
        ),
        ("birthday", before.birthday != after.birthday),
        ("name_day", before.name_day != after.name_day),
        ("anniversaries", before.anniversaries != after.anniversaries),
        ("family", before.family != after.family),
        ("hobbies", before.hobbies != after.hobbies),
        ("interests", before.interests != after.interests),
        ("remarks", before.remarks != after.remarks),
        ("custom_fields", before.custom_fields != after.custom_fields),
        ("owner", before.owner != after.owner),
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
}
