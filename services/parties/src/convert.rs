//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, date_to_proto};
use crm_proto::crm::parties::v1::{
    Anniversary, Base, CustomFieldDefinition, Employment, FamilyMember, Party, Person, PersonName,
    RegistrationNumber,
};
use uuid::Uuid;

use crate::{
    domain::{self, fields::gender_from_name},
    store::{BaseRow, EmploymentRow, FieldRow, PartyRow, PersonRow},
};

pub fn party_to_proto(row: &PartyRow) -> Party {
    let person = row.kind == domain::PartyKind::Person;
    Party {
        id: row.id.to_string(),
        kind: row.kind.to_proto() as i32,
        display_name: row.display_name.clone(),
        status: row.status.to_proto() as i32,
        person_name: person.then(|| PersonName {
            given_name: row.given_name.clone(),
            family_name: row.family_name.clone(),
        }),
        legal_name: row.legal_name.clone(),
        tax_id: row.tax_id.clone().unwrap_or_default(),
        registration_numbers: row
            .registration_numbers
            .0
            .iter()
            .map(|r| RegistrationNumber {
                scheme: r.scheme.clone(),
                value: r.value.clone(),
            })
            .collect(),
        tags: row.tags.clone(),
        custom_fields: domain::custom_values_to_proto(&row.custom_fields.0),
        contact_points: domain::contacts_to_proto(&row.contact_points.0),
        addresses: domain::addresses_to_proto(&row.addresses.0),
        base_ids: row.base_ids.iter().map(Uuid::to_string).collect(),
        person_id: row.person_id.map(|id| id.to_string()).unwrap_or_default(),
        merged_into_party_id: row.merged_into.map(|id| id.to_string()).unwrap_or_default(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn base_to_proto(row: &BaseRow) -> Base {
    Base {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        archived: row.archived,
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn person_to_proto(row: &PersonRow, employments: &[EmploymentRow]) -> Person {
    Person {
        id: row.id.to_string(),
        name: Some(PersonName {
            given_name: row.given_name.clone(),
            family_name: row.family_name.clone(),
        }),
        gender: gender_from_name(&row.gender) as i32,
        profession: row.profession.clone(),
        education: row.education.clone(),
        natural_party_id: row
            .natural_party_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        employments: employments
            .iter()
            .map(|e| Employment {
                organization_party_id: e.organization_party_id.to_string(),
                position: e.position.clone(),
                department: e.department.clone(),
                supervisor_person_id: e
                    .supervisor_person_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                business_contact_points: domain::contacts_to_proto(&e.business_contact_points.0),
                start_date: e.start_date.map(date_to_proto),
                end_date: e.end_date.map(date_to_proto),
            })
            .collect(),
        private_contact_points: domain::contacts_to_proto(&row.private_contact_points.0),
        home_addresses: domain::addresses_to_proto(&row.home_addresses.0),
        birthday: row.birthday.map(date_to_proto),
        name_day: row.name_day.map(|d| crm_proto::crm::common::v1::Date {
            year: 0,
            ..date_to_proto(d)
        }),
        anniversaries: row
            .anniversaries
            .0
            .iter()
            .map(|a| Anniversary {
                label: a.label.clone(),
                date: Some(date_to_proto(a.date)),
            })
            .collect(),
        family: row
            .family
            .0
            .iter()
            .map(|m| FamilyMember {
                relation: m.relation.clone(),
                name: m.name.clone(),
                birthday: m.birthday.map(date_to_proto),
            })
            .collect(),
        hobbies: row.hobbies.clone(),
        interests: row.interests.clone(),
        remarks: row.remarks.clone(),
        owner: row.owner.clone(),
        custom_fields: domain::custom_values_to_proto(&row.custom_fields.0),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn field_to_proto(row: &FieldRow) -> CustomFieldDefinition {
    CustomFieldDefinition {
        entity: row.entity.to_proto() as i32,
        key: row.key.clone(),
        label: row.label.clone(),
        r#type: row.field_type.to_proto() as i32,
        required: row.required,
        options: row.options.clone(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
    }
}
