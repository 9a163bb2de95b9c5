//! Postal addresses as every service checks and stores them (jsonb).

use crm_proto::crm::common::v1::PostalAddress;
use serde::{Deserialize, Serialize};

use crate::error::FieldViolations;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub lines: Vec<String>,
    pub postal_code: String,
    pub city: String,
    pub region: String,
    pub country_code: String,
}

impl Address {
    /// Trims every part and requires an ISO 3166-1 country and a street line or a city, each
    /// violation naming its part of `field` (`<field>.country_code`, `<field>.lines`).
    pub fn parse(address: &PostalAddress, field: &str, v: &mut FieldViolations) -> Self {
        let country = address.country_code.trim().to_uppercase();
        v.check(
            country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase()),
            format!("{field}.country_code"),
            "must be an ISO 3166-1 alpha-2 code such as PL",
        );
        let lines: Vec<String> = address
            .lines
            .iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        v.check(
            !lines.is_empty() || !address.city.trim().is_empty(),
            format!("{field}.lines"),
            "an address needs at least a street line or a city",
        );
        Self {
            lines,
            postal_code: address.postal_code.trim().to_owned(),
            city: address.city.trim().to_owned(),
            region: address.region.trim().to_owned(),
            country_code: country,
        }
    }

    pub fn to_proto(&self) -> PostalAddress {
        PostalAddress {
            lines: self.lines.clone(),
            postal_code: self.postal_code.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            country_code: self.country_code.clone(),
        }
    }
}
