//! An offer version's lines: read from the request, each bad field named, then priced as an
//! invoice would price them with the client's loyalty discounts and coupon.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
    request::{date_to_proto, decimal, text},
};
use crm_proto::crm::{
    cases::v1::OfferLine,
    loyalty::v1::{CouponKind, GetApplicableDiscountsRequest, ValidateCouponRequest},
};
use rust_decimal::Decimal;
use sqlx::types::Json;

use crate::{
    Cases,
    domain::{
        offers::{applied_discount, minor_units},
        pricing::{self, PricingError, TaxRate},
    },
    store::offers::{LineRow, OfferRow, TaxRow, VersionRow},
};

/// A line as asked for, before pricing.
#[derive(Debug, Clone)]
pub struct LineInput {
    pub product_id: String,
    pub description: String,
    pub quantity: Decimal,
    pub unit: String,
    pub unit_price: Decimal,
    pub discount_percent: Decimal,
    pub tax: TaxRate,
    pub category: String,
}

/// What a version needs besides its lines: the coupon code, checked with loyalty when priced.
pub struct Draft {
    pub lines: Vec<LineInput>,
    pub coupon_code: String,
}

/// Reads `lines` (at least one) under `field` (`lines[2].quantity`, …).
pub fn read(lines: &[OfferLine], coupon: &str, field: &str, v: &mut FieldViolations) -> Draft {
    v.check(!lines.is_empty(), field, "must hold at least one line");
    let lines = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let at = |name: &str| format!("{field}[{i}].{name}");
            let number = |value: &str, name: &str, v: &mut FieldViolations| {
                decimal(value, &at(name), v).unwrap_or_default()
            };
            let optional = |value: &str, name: &str, v: &mut FieldViolations| {
                if value.trim().is_empty() {
                    Decimal::ZERO
                } else {
                    number(value, name, v)
                }
            };
            let quantity = number(&line.quantity, "quantity", v);
            v.check(
                quantity > Decimal::ZERO,
                at("quantity"),
                "must be above zero",
            );
            let unit_price = number(&line.unit_price, "unit_price", v);
            v.check(
                unit_price >= Decimal::ZERO,
                at("unit_price"),
                "must not be negative",
            );
            let discount_percent = optional(&line.discount_percent, "discount_percent", v);
            v.check(
                (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&discount_percent),
                at("discount_percent"),
                "must be 0 to 100",
            );
            let percent = number(&line.tax_percent, "tax_percent", v);
            v.check(
                (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&percent),
                at("tax_percent"),
                "must be 0 to 100",
            );
            LineInput {
                product_id: line.product_id.trim().to_owned(),
                description: text(&line.description, &at("description"), v),
                quantity,
                unit: line.unit.trim().to_owned(),
                unit_price,
                discount_percent,
                tax: TaxRate {
                    code: text(&line.tax_code, &at("tax_code"), v),
                    percent,
                },
                category: line.category.trim().to_owned(),
            }
        })
        .collect::<Vec<_>>();
    let mut rates: HashMap<&str, Decimal> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let first = *rates.entry(&line.tax.code).or_insert(line.tax.percent);
        v.check(
            first == line.tax.percent,
            format!("{field}[{i}].tax_percent"),
            "differs from another line's percentage for the same tax_code",
        );
    }
    Draft {
        lines,
        coupon_code: coupon.trim().to_ascii_uppercase(),
    }
}

impl Cases {
    /// Version `number` of `offer`: the party's best loyalty discount per line (by the offer's
    /// price list and the line's category), the coupon's percentage on top, and the figures of an
    /// invoice. Loyalty is asked before any transaction opens.
    pub(crate) async fn price(
        &self,
        offer: &OfferRow,
        draft: Draft,
        number: i32,
        caller: &str,
        field: &str,
    ) -> Result<VersionRow> {
        let member = self.member_discounts(offer, &draft.lines).await?;
        let coupon = self.coupon_percent(offer, &draft.coupon_code).await?;
        let applied: Vec<(Decimal, Decimal)> = draft
            .lines
            .iter()
            .map(|line| {
                let member = member.get(&line.category).copied().unwrap_or_default();
                (
                    member,
                    applied_discount(line.discount_percent, member, coupon),
                )
            })
            .collect();
        let priced: Vec<pricing::Line> = draft
            .lines
            .iter()
            .zip(&applied)
            .map(|(line, (_, discount))| pricing::Line {
                quantity: line.quantity,
                unit_price: line.unit_price,
                discount_percent: *discount,
                tax: line.tax.clone(),
            })
            .collect();
        let totals = pricing::totals(&priced, minor_units(&offer.currency_code)).map_err(|e| {
            let (i, name, what) = match e {
                PricingError::Quantity(i) => (i, "quantity", "must be above zero"),
                PricingError::Price(i) => (i, "unit_price", "must not be negative"),
                PricingError::Discount(i) => (i, "discount_percent", "must be 0 to 100"),
                PricingError::Rate(i) => (i, "tax_percent", "is not one percentage per tax_code"),
                PricingError::Overflow => {
                    return FieldViolations::single(field, "add up to more than can be computed");
                }
            };
            FieldViolations::single(format!("{field}[{i}].{name}"), what)
        })?;
        // What every service and the ERP keep: 15 digits before the point.
        if totals.gross.abs() >= Decimal::from(10_i64.pow(15)) {
            return Err(FieldViolations::single(
                field,
                "add up to 10^15 or more, more than an amount may be",
            )
            .into());
        }
        let lines = draft
            .lines
            .iter()
            .zip(&applied)
            .zip(&totals.line_nets)
            .map(|((line, (member, discount)), net)| LineRow {
                product_id: line.product_id.clone(),
                description: line.description.clone(),
                quantity: line.quantity.normalize().to_string(),
                unit: line.unit.clone(),
                unit_price: line.unit_price.to_string(),
                discount_percent: line.discount_percent.normalize().to_string(),
                tax_code: line.tax.code.clone(),
                tax_percent: line.tax.percent.normalize().to_string(),
                category: line.category.clone(),
                member_discount_percent: member.normalize().to_string(),
                applied_discount_percent: discount.normalize().to_string(),
                net: net.to_string(),
            })
            .collect();
        let tax_totals = totals
            .by_rate
            .iter()
            .map(|rate| TaxRow {
                tax_code: rate.tax.code.clone(),
                tax_percent: rate.tax.percent.normalize().to_string(),
                net: rate.net.to_string(),
                tax: rate.tax_amount.to_string(),
                gross: rate.gross.to_string(),
            })
            .collect();
        Ok(VersionRow {
            offer_id: offer.id,
            number,
            lines: Json(lines),
            coupon_code: draft.coupon_code,
            coupon_percent: coupon,
            tax_totals: Json(tax_totals),
            net: totals.net,
            tax: totals.tax_amount,
            gross: totals.gross,
            created_at: Utc::now(),
            created_by: caller.to_owned(),
        })
    }

    /// The best loyalty discount percentage per category of `lines`; none without a price list.
    async fn member_discounts(
        &self,
        offer: &OfferRow,
        lines: &[LineInput],
    ) -> Result<HashMap<String, Decimal>> {
        if offer.price_list.is_empty() {
            return Ok(HashMap::new());
        }
        let categories: BTreeSet<&str> = lines.iter().map(|l| l.category.as_str()).collect();
        let today = date_to_proto(Utc::now().date_naive());
        let asks = categories.into_iter().map(|category| {
            let request = GetApplicableDiscountsRequest {
                party_id: offer.party_id.to_string(),
                price_list: offer.price_list.clone(),
                category: category.to_owned(),
                date: Some(today),
            };
            let mut loyalty = self.loyalty.clone();
            async move {
                let answer = loyalty
                    .get_applicable_discounts(request)
                    .await
                    .map_err(|status| peer_error("loyalty", status))?
                    .into_inner();
                let best = answer
                    .discounts
                    .iter()
                    .filter_map(|d| d.discount.as_ref())
                    .filter_map(|d| Decimal::from_str_exact(&d.percentage).ok())
                    .filter(|p| (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(p))
                    .max()
                    .unwrap_or_default();
                Ok::<_, crm_kit::error::ServiceError>((category.to_owned(), best))
            }
        });
        futures::future::try_join_all(asks)
            .await
            .map(|found| found.into_iter().collect())
    }

    /// The coupon's percentage, 0 without one; a coupon loyalty does not accept is named with its
    /// reason.
    async fn coupon_percent(&self, offer: &OfferRow, code: &str) -> Result<Decimal> {
        if code.is_empty() {
            return Ok(Decimal::ZERO);
        }
        let Some(membership) = offer.membership_id else {
            return Err(FieldViolations::single(
                "coupon_code",
                "is checked for the client's membership: set the offer's membership_id",
            )
            .into());
        };
        let request = ValidateCouponRequest {
            code: code.to_owned(),
            membership_id: membership.to_string(),
        };
        let answer = self
            .loyalty
            .clone()
            .validate_coupon(request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => {
                    FieldViolations::single("coupon_code", "is not a coupon code").into()
                }
                _ => peer_error("loyalty", status),
            })?
            .into_inner();
        if !answer.valid {
            return Err(FieldViolations::single(
                "coupon_code",
                format!("is not accepted by loyalty: {}", answer.reason),
            )
            .into());
        }
        let definition = answer.definition.unwrap_or_default();
        if definition.kind != CouponKind::Percentage as i32 {
            return Err(FieldViolations::single(
                "coupon_code",
                "gives an amount or a product; an offer takes percentage coupons",
            )
            .into());
        }
        Decimal::from_str_exact(&definition.percentage)
            .ok()
            .filter(|p| (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(p))
            .ok_or_else(|| {
                FieldViolations::single("coupon_code", "has no percentage loyalty can state").into()
            })
    }
}
