//! What a merge keeps: the survivor's data, completed by the merged party's where the survivor has
//! none (tax id, legal name, registration numbers of other schemes, custom fields it lacks) and
//! joined with it where a party has many (tags, addresses, contact points). The survivor's names
//! and preferred contacts stay as they are.

use super::{Contact, PartyData};

/// The survivor's data after a merge, the field paths that changed, and the contact points it
/// took over.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub data: PartyData,
    pub changed: Vec<&'static str>,
    pub moved_contacts: Vec<Contact>,
}

pub fn merge(survivor: &PartyData, merged: &PartyData) -> Merged {
    let mut data = survivor.clone();
    if data.tax_id.is_none() {
        data.tax_id.clone_from(&merged.tax_id);
    }
    if data.legal_name.is_empty() {
        data.legal_name.clone_from(&merged.legal_name);
    }
    for registration in &merged.registration_numbers {
        if !data
            .registration_numbers
            .iter()
            .any(|r| r.scheme == registration.scheme)
        {
            data.registration_numbers.push(registration.clone());
        }
    }
    for tag in &merged.tags {
        if !data.tags.contains(tag) {
            data.tags.push(tag.clone());
        }
    }
    for address in &merged.addresses {
        if !data.addresses.contains(address) {
            data.addresses.push(address.clone());
        }
    }
    for (key, value) in &merged.custom_fields {
        data.custom_fields
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    let mut moved_contacts = Vec::new();
    for contact in &merged.contact_points {
        let known = data
            .contact_points
            .iter()
            .any(|c| c.kind == contact.kind && c.value == contact.value);
        if !known {
            // The survivor's preferred contacts stay preferred.
            let moved = Contact {
                preferred: false,
                ..contact.clone()
            };
            data.contact_points.push(moved.clone());
            moved_contacts.push(moved);
        }
    }
    let changes: [(&'static str, bool); 7] = [
        ("tax_id", data.tax_id != survivor.tax_id),
        ("legal_name", data.legal_name != survivor.legal_name),
        (
            "registration_numbers",
            data.registration_numbers != survivor.registration_numbers,
        ),
        ("tags", data.tags != survivor.tags),
        ("addresses", data.addresses != survivor.addresses),
        (
            "custom_fields",
            data.custom_fields != survivor.custom_fields,
        ),
        ("contact_points", !moved_contacts.is_empty()),
    ];
    let changed = changes
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| *path)
        .collect();
    Merged {
        data,
        changed,
        moved_contacts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Address, Registration};

    fn contact(kind: &str, value: &str, preferred: bool) -> Contact {
        Contact {
            kind: kind.into(),
            value: value.into(),
            label: String::new(),
            preferred,
        }
    }

    #[test]
    fn the_survivor_keeps_its_own_and_gains_what_it_lacks() {
        let survivor = PartyData {
            display_name: "Acme".into(),
            registration_numbers: vec![Registration {
                scheme: "krs".into(),
                value: "1".into(),
            }],
            tags: vec!["vip".into()],
            contact_points: vec![contact("email", "a@acme.pl", true)],
            ..Default::default()
        };
        let address = Address {
            lines: vec!["ul. Polna 1".into()],
            postal_code: "00-001".into(),
            city: "Warszawa".into(),
            region: String::new(),
            country_code: "PL".into(),
        };
        let merged = PartyData {
            display_name: "ACME sp. z o.o.".into(),
            tax_id: Some("PL5260250995".into()),
            registration_numbers: vec![
                Registration {
                    scheme: "krs".into(),
                    value: "2".into(),
                },
                Registration {
                    scheme: "regon".into(),
                    value: "3".into(),
                },
            ],
            tags: vec!["vip".into(), "wholesale".into()],
            addresses: vec![address.clone()],
            custom_fields: [("industry".to_owned(), serde_json::json!({"option": "it"}))].into(),
            contact_points: vec![
                contact("email", "a@acme.pl", false),
                contact("phone", "+48221234567", true),
            ],
            ..Default::default()
        };
        let result = merge(&survivor, &merged);
        assert_eq!(
            result.data.display_name, "Acme",
            "names stay the survivor's"
        );
        assert_eq!(result.data.tax_id.as_deref(), Some("PL5260250995"));
        let schemes: Vec<(&str, &str)> = result
            .data
            .registration_numbers
            .iter()
            .map(|r| (r.scheme.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(schemes, [("krs", "1"), ("regon", "3")]);
        assert_eq!(result.data.tags, ["vip", "wholesale"]);
        assert_eq!(result.data.addresses, [address]);
        assert!(result.data.custom_fields.contains_key("industry"));
        assert_eq!(
            result.moved_contacts,
            [contact("phone", "+48221234567", false)]
        );
        assert_eq!(
            result.changed,
            [
                "tax_id",
                "registration_numbers",
                "tags",
                "addresses",
                "custom_fields",
                "contact_points"
            ]
        );
        let unchanged = merge(&result.data, &merged);
        assert!(unchanged.changed.is_empty(), "merging twice adds nothing");
    }
}
