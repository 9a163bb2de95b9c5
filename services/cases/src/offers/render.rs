//! RenderOffer: a version of an offer as its client reads it, from the template of the offer's
//! locale, as PDF (Typst, compiled in memory with the fonts built into the binary) or HTML.
//!
//! A template is a locale's labels and formats (`templates/offer/<locale>.json`, versioned) and
//! one layout per format: `offer.typ` for PDF, [`html`] for HTML. The layout reads the document
//! as data already formatted for the locale; nothing a user typed is ever read as markup.

mod html;
mod pdf;

use std::{collections::BTreeMap, sync::LazyLock};

use chrono::NaiveDate;
use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result, ServiceError},
    request,
};
use crm_proto::crm::{
    cases::v1::{DocumentFormat, RenderOfferRequest, RenderedOffer},
    parties::v1::GetPartyRequest,
};
use serde::{Deserialize, Serialize};

use crate::{
    Cases,
    domain::offers::minor_units,
    store::offers::{self as store, OfferRow, VersionRow},
};

/// The locales offers are printed in, each with its template.
pub const LOCALES: &[&str] = &["en-GB", "pl-PL"];
pub const DEFAULT_LOCALE: &str = "en-GB";

/// A locale's labels and formats.
#[derive(Debug, Deserialize)]
pub struct Template {
    pub version: i32,
    lang: String,
    region: String,
    decimal_separator: String,
    group_separator: String,
    date_format: String,
    labels: BTreeMap<String, String>,
}

static TEMPLATES: LazyLock<BTreeMap<&'static str, Template>> = LazyLock::new(|| {
    [
        ("en-GB", include_str!("../../templates/offer/en-GB.json")),
        ("pl-PL", include_str!("../../templates/offer/pl-PL.json")),
    ]
    .into_iter()
    .map(|(locale, json)| {
        let template = serde_json::from_str(json).expect("a built-in offer template is valid JSON");
        (locale, template)
    })
    .collect()
});

/// The template locale `tag` names (`pl-pl`, `pl_PL` and `pl` name `pl-PL`), if there is one.
pub fn template_locale(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().replace('_', "-").to_ascii_lowercase();
    LOCALES.iter().copied().find(|locale| {
        let locale_lower = locale.to_ascii_lowercase();
        locale_lower == tag || locale_lower.split('-').next() == Some(tag.as_str())
    })
}

/// The document as the layouts read it: every value text, formatted for the locale.
#[derive(Debug, Serialize)]
pub struct Document {
    lang: String,
    region: String,
    labels: BTreeMap<String, String>,
    heading: String,
    title: String,
    date: String,
    valid_until: String,
    seller: Vec<String>,
    client: Vec<String>,
    lines: Vec<Line>,
    rates: Vec<Rate>,
    net: String,
    tax: String,
    gross: String,
    coupon: String,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Line {
    number: String,
    description: Vec<String>,
    quantity: String,
    unit: String,
    unit_price: String,
    discount: String,
    net: String,
    tax_rate: String,
}

#[derive(Debug, Serialize)]
struct Rate {
    rate: String,
    net: String,
    tax: String,
    gross: String,
}

impl Cases {
    pub async fn render_offer(&self, req: RenderOfferRequest) -> Result<RenderedOffer> {
        let mut v = FieldViolations::new();
        let id = request::uuid(&req.id, "id", &mut v);
        v.check(
            req.version >= 0,
            "version",
            "must be a version number, or 0 for the latest",
        );
        let format = match DocumentFormat::try_from(req.format) {
            Ok(DocumentFormat::Pdf) => DocumentFormat::Pdf,
            Ok(DocumentFormat::Html) => DocumentFormat::Html,
            _ => {
                v.add("format", "must be PDF or HTML");
                DocumentFormat::Unspecified
            }
        };
        v.finish()?;
        let (row, versions) = {
            let mut conn = self.pool.acquire().await?;
            let row = store::get(&mut conn, id)
                .await?
                .ok_or_else(|| ServiceError::not_found("Offer", id))?;
            (row, store::versions(&mut conn, id).await?)
        };
        let version = match req.version {
            0 => versions.last(),
            n => versions.iter().find(|v| v.number == n),
        }
        .ok_or_else(|| FieldViolations::single("version", "is not a version of the offer"))?;
        let locale = template_locale(&row.locale).unwrap_or(DEFAULT_LOCALE);
        let template = &TEMPLATES[locale];
        let client = self.client_lines(&row).await?;
        let document = document(&row, version, template, client, &self.seller);
        let (content_type, content) = match format {
            DocumentFormat::Html => (
                "text/html; charset=utf-8",
                html::render(&document).into_bytes(),
            ),
            _ => ("application/pdf", pdf::render(&document).await?),
        };
        Ok(RenderedOffer {
            format: format as i32,
            content_type: content_type.to_owned(),
            content,
            template: format!("offer.{locale}"),
            template_version: template.version,
        })
    }

    /// The client as printed: their name, tax id and first address, as the parties service has
    /// them now.
    async fn client_lines(&self, row: &OfferRow) -> Result<Vec<String>> {
        let request = GetPartyRequest {
            id: row.party_id.to_string(),
        };
        let party = match self.parties.clone().get_party(request).await {
            Ok(party) => party.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Ok(vec![row.party_id.to_string()]);
            }
            Err(status) => return Err(peer_error("parties", status)),
        };
        let name = if party.legal_name.is_empty() {
            party.display_name
        } else {
            party.legal_name
        };
        let mut lines = vec![name];
        if !party.tax_id.is_empty() {
            lines.push(party.tax_id);
        }
        if let Some(address) = party.addresses.into_iter().next() {
            lines.extend(address.lines);
            lines.push(
                format!("{} {}", address.postal_code, address.city)
                    .trim()
                    .to_owned(),
            );
        }
        Ok(lines.into_iter().filter(|l| !l.is_empty()).collect())
    }
}

fn document(
    row: &OfferRow,
    version: &VersionRow,
    template: &Template,
    client: Vec<String>,
    seller: &[String],
) -> Document {
    let label = |key: &str| template.labels.get(key).cloned().unwrap_or_default();
    let minor = minor_units(&row.currency_code);
    let number = |value: &str, places: Option<u32>| format_number(value, places, template);
    let money = |value: &str| format!("{} {}", number(value, Some(minor)), row.currency_code);
    let percent = |value: &str| format!("{}%", number(value, None));
    let rate = |code: &str, percent_text: &str| match code.parse::<rust_decimal::Decimal>() {
        Ok(code_value) if percent_text.parse() == Ok(code_value) => percent(percent_text),
        _ => code.to_owned(),
    };
    let day = |date: NaiveDate| date.format(&template.date_format).to_string();
    let lines = version
        .lines
        .iter()
        .zip(1..)
        .map(|(line, n): (_, u32)| Line {
            number: n.to_string(),
            description: line.description.lines().map(str::to_owned).collect(),
            quantity: number(&line.quantity, None),
            unit: line.unit.clone(),
            // As agreed, to the last decimal, and at least to the currency's minor unit.
            unit_price: number(&line.unit_price, Some(minor.max(scale(&line.unit_price)))),
            discount: percent(&line.applied_discount_percent),
            net: number(&line.net, Some(minor)),
            tax_rate: rate(&line.tax_code, &line.tax_percent),
        })
        .collect();
    let rates = version
        .tax_totals
        .iter()
        .map(|t| Rate {
            rate: rate(&t.tax_code, &t.tax_percent),
            net: number(&t.net, Some(minor)),
            tax: number(&t.tax, Some(minor)),
            gross: number(&t.gross, Some(minor)),
        })
        .collect();
    Document {
        lang: template.lang.clone(),
        region: template.region.clone(),
        heading: format!(
            "{} {} ({} {})",
            label("document"),
            row.id,
            label("version"),
            version.number
        ),
        title: row.title.clone(),
        date: day(version.created_at.date_naive()),
        valid_until: day(row.valid_until),
        seller: seller.to_vec(),
        client,
        lines,
        rates,
        net: money(&version.net.to_string()),
        tax: money(&version.tax.to_string()),
        gross: money(&version.gross.to_string()),
        coupon: if version.coupon_code.is_empty() {
            String::new()
        } else {
            format!(
                "{} (−{})",
                version.coupon_code,
                percent(&version.coupon_percent.normalize().to_string())
            )
        },
        notes: row.notes.lines().map(str::to_owned).collect(),
        labels: template.labels.clone(),
    }
}

/// The decimals a decimal text is written with.
fn scale(value: &str) -> u32 {
    value
        .parse::<rust_decimal::Decimal>()
        .map_or(0, |d| d.scale())
}

/// A decimal as the locale writes it: its separators, digits grouped by three, and `places`
/// decimals when given (else as many as it has).
fn format_number(value: &str, places: Option<u32>, template: &Template) -> String {
    let Ok(mut number) = value.parse::<rust_decimal::Decimal>() else {
        return value.to_owned();
    };
    if let Some(places) = places {
        number = number
            .round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        number.rescale(places);
    }
    let text = number.abs().to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push_str(&template.group_separator);
        }
        grouped.push(digit);
    }
    let sign = if number.is_sign_negative() && !number.is_zero() {
        "−"
    } else {
        ""
    };
    match fraction {
        "" => format!("{sign}{grouped}"),
        fraction => format!("{sign}{grouped}{}{fraction}", template.decimal_separator),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_the_locale_writes_them() {
        let pl = &TEMPLATES["pl-PL"];
        let en = &TEMPLATES["en-GB"];
        // Grouped by no-break spaces, so a figure never breaks across lines.
        assert_eq!(
            format_number("1234567.5", Some(2), pl),
            "1\u{a0}234\u{a0}567,50"
        );
        assert_eq!(format_number("1234567.5", Some(2), en), "1,234,567.50");
        assert_eq!(format_number("2.5", None, pl), "2,5");
        assert_eq!(format_number("999", Some(0), en), "999");
        assert_eq!(format_number("0.005", Some(2), en), "0.01");
    }

    #[test]
    fn locales_are_found_by_their_tags() {
        assert_eq!(template_locale("pl_pl"), Some("pl-PL"));
        assert_eq!(template_locale("pl"), Some("pl-PL"));
        assert_eq!(template_locale("EN-gb"), Some("en-GB"));
        assert_eq!(template_locale("de-DE"), None);
        assert_eq!(template_locale(""), None);
    }
}
