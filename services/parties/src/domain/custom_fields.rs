//! Custom fields: what a definition may say, and values checked against their definitions.

use std::collections::HashSet;

use crm_kit::{
    error::FieldViolations,
    request::{date, date_to_proto},
};
use crm_proto::crm::parties::v1::{
    CustomFieldDefinition, CustomFieldEntity, CustomFieldType, CustomFieldValue,
    custom_field_value::Value,
};

use super::{CustomValues, name};

crm_kit::text_enum! {
    /// What a custom field describes.
    pub enum FieldEntity: CustomFieldEntity {
        Party = "party",
        Person = "person",
    }
}

crm_kit::text_enum! {
    /// What a custom field holds.
    pub enum FieldType: CustomFieldType {
        Text = "text",
        Number = "number",
        Date = "date",
        Boolean = "boolean",
        Enum = "enum",
    }
}

/// Checks a definition, handing back what it describes, what it holds, and its key as stored.
pub fn definition(
    field: &CustomFieldDefinition,
    v: &mut FieldViolations,
) -> (FieldEntity, FieldType, String) {
    let key = crm_kit::request::code(&field.key, "field.key", v);
    let entity = FieldEntity::require(field.entity, "field.entity", v);
    name(&field.label, "field.label", v);
    let kind = FieldType::require(field.r#type, "field.type", v);
    let unique: HashSet<&str> = field.options.iter().map(|o| o.trim()).collect();
    if kind == FieldType::Enum {
        v.check(
            !field.options.is_empty()
                && unique.len() == field.options.len()
                && !unique.contains(""),
            "field.options",
            "an ENUM field needs distinct, non-empty options",
        );
    } else {
        v.check(
            field.options.is_empty(),
            "field.options",
            "only ENUM fields have options",
        );
    }
    (entity, kind, key)
}

/// Validates values against the entity's definitions: known keys, matching types, allowed
/// options, and every required field present.
pub fn custom_values(
    values: &[CustomFieldValue],
    definitions: &[CustomFieldDefinition],
    field: &str,
    v: &mut FieldViolations,
) -> CustomValues {
    let mut out = CustomValues::new();
    for (i, item) in values.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Some(def) = definitions.iter().find(|d| d.key == item.key) else {
            v.add(
                format!("{at}.key"),
                format!("{:?} is not a defined custom field", item.key),
            );
            continue;
        };
        if out.contains_key(&item.key) {
            v.add(format!("{at}.key"), "is given twice");
            continue;
        }
        let stored = match (def.r#type(), &item.value) {
            (CustomFieldType::Text, Some(Value::Text(text))) => {
                Some(serde_json::json!({ "text": text.trim() }))
            }
            // Exact decimal, never a float: kept as its canonical text.
            (CustomFieldType::Number, Some(Value::Number(n))) => {
                rust_decimal::Decimal::from_str_exact(n.trim())
                    .ok()
                    .map(|d| serde_json::json!({ "number": d.to_string() }))
            }
            (CustomFieldType::Date, Some(Value::Date(d))) => {
                date(Some(d), &format!("{at}.date"), v).map(|d| serde_json::json!({ "date": d }))
            }
            (CustomFieldType::Boolean, Some(Value::Boolean(b))) => {
                Some(serde_json::json!({ "boolean": b }))
            }
            (CustomFieldType::Enum, Some(Value::Option(o))) if def.options.contains(o) => {
                Some(serde_json::json!({ "option": o }))
            }
            (CustomFieldType::Enum, Some(Value::Option(_))) => {
                v.add(
                    format!("{at}.option"),
                    format!("must be one of {:?}", def.options),
                );
                continue;
            }
            _ => None,
        };
        match stored {
            Some(value) => {
                out.insert(item.key.clone(), value);
            }
            None => v.add(
                format!("{at}.value"),
                format!(
                    "must be a valid {} value",
                    FieldType::from_proto(def.r#type()).map_or("?", FieldType::as_str)
                ),
            ),
        }
    }
    for def in definitions.iter().filter(|d| d.required) {
        if !out.contains_key(&def.key) && !values.iter().any(|item| item.key == def.key) {
            v.add(
                field,
                format!("the required field {:?} is missing", def.key),
            );
        }
    }
    out
}

pub fn custom_values_to_proto(values: &CustomValues) -> Vec<CustomFieldValue> {
    values
        .iter()
        .filter_map(|(key, tagged)| {
            let (tag, value) = tagged.as_object()?.iter().next()?;
            let value = match tag.as_str() {
                "text" => Value::Text(value.as_str()?.to_owned()),
                "number" => Value::Number(value.as_str()?.to_owned()),
                "date" => Value::Date(date_to_proto(value.as_str()?.parse().ok()?)),
                "boolean" => Value::Boolean(value.as_bool()?),
                "option" => Value::Option(value.as_str()?.to_owned()),
                _ => return None,
            };
            Some(CustomFieldValue {
                key: key.clone(),
                value: Some(value),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_values_follow_their_definitions() {
        let defs = [
            CustomFieldDefinition {
                key: "industry".into(),
                r#type: CustomFieldType::Enum as i32,
                options: vec!["retail".into(), "it".into()],
                required: true,
                ..Default::default()
            },
            CustomFieldDefinition {
                key: "employees".into(),
                r#type: CustomFieldType::Number as i32,
                ..Default::default()
            },
        ];
        let good = [
            CustomFieldValue {
                key: "industry".into(),
                value: Some(Value::Option("it".into())),
            },
            CustomFieldValue {
                key: "employees".into(),
                value: Some(Value::Number("120".into())),
            },
        ];
        let mut v = FieldViolations::new();
        let stored = custom_values(&good, &defs, "party.custom_fields", &mut v);
        assert!(v.is_empty(), "{v}");
        let mut back = custom_values_to_proto(&stored);
        back.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(back[0].value, Some(Value::Number("120".into())));

        let bad = [
            CustomFieldValue {
                key: "employees".into(),
                value: Some(Value::Number("1,5".into())),
            },
            CustomFieldValue {
                key: "colour".into(),
                value: Some(Value::Text("red".into())),
            },
        ];
        let mut v = FieldViolations::new();
        custom_values(&bad, &defs, "party.custom_fields", &mut v);
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            [
                "party.custom_fields[0].value",
                "party.custom_fields[1].key",
                "party.custom_fields"
            ]
        );
    }
}
