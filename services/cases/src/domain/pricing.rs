//! An offer's figures as an invoice computes them: each line's net value rounded to the
//! currency's minor unit, then per tax rate the sum of the nets, the tax on that sum (rounded
//! once, not per line) and the gross; the offer's totals are the sums of the rates'. Decimal
//! throughout, halves rounded away from zero (0.005 → 0.01), as invoicing law and practice
//! expect; an exempt or 0% rate is a rate like any other and prints as such.

use rust_decimal::{Decimal, RoundingStrategy};

/// A tax rate as printed on the offer (`"23"`, `"8"`, `"zw"`, `"np"`) and its percentage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRate {
    pub code: String,
    pub percent: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// 0 to 100.
    pub discount_percent: Decimal,
    pub tax: TaxRate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTotal {
    pub tax: TaxRate,
    pub net: Decimal,
    pub tax_amount: Decimal,
    pub gross: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Each line's net value, in the lines' order.
    pub line_nets: Vec<Decimal>,
    /// One per tax rate, in the order the rates first appear.
    pub by_rate: Vec<RateTotal>,
    pub net: Decimal,
    pub tax_amount: Decimal,
    pub gross: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// A line's quantity is not above zero.
    Quantity(usize),
    /// A line's unit price is below zero.
    Price(usize),
    /// A discount outside 0–100 %.
    Discount(usize),
    /// A tax rate below zero, or one code with two percentages.
    Rate(usize),
    /// Figures too large to compute exactly.
    Overflow,
}

/// The figures of `lines` in a currency of `minor_units` decimal places (2 for PLN or EUR, 0 for
/// JPY).
pub fn totals(lines: &[Line], minor_units: u32) -> Result<Totals, PricingError> {
    // Written with the currency's decimals, as printed: 0 % of 45.00 is 0.00.
    let round = |value: Decimal| {
        let mut rounded =
            value.round_dp_with_strategy(minor_units, RoundingStrategy::MidpointAwayFromZero);
        rounded.rescale(minor_units);
        rounded
    };
    let hundred = Decimal::ONE_HUNDRED;
    let mut line_nets = Vec::with_capacity(lines.len());
    let mut by_rate: Vec<RateTotal> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.quantity <= Decimal::ZERO {
            return Err(PricingError::Quantity(i));
        }
        if line.unit_price < Decimal::ZERO {
            return Err(PricingError::Price(i));
        }
        if line.discount_percent < Decimal::ZERO || line.discount_percent > hundred {
            return Err(PricingError::Discount(i));
        }
        if line.tax.percent < Decimal::ZERO {
            return Err(PricingError::Rate(i));
        }
        let gross_value = line
            .quantity
            .checked_mul(line.unit_price)
            .ok_or(PricingError::Overflow)?;
        let kept = (hundred - line.discount_percent) / hundred;
        let net = round(
            gross_value
                .checked_mul(kept)
                .ok_or(PricingError::Overflow)?,
        );
        line_nets.push(net);
        match by_rate.iter_mut().find(|r| r.tax.code == line.tax.code) {
            Some(rate) if rate.tax.percent != line.tax.percent => {
                return Err(PricingError::Rate(i));
            }
            Some(rate) => rate.net = rate.net.checked_add(net).ok_or(PricingError::Overflow)?,
            None => by_rate.push(RateTotal {
                tax: line.tax.clone(),
                net,
                tax_amount: Decimal::ZERO,
                gross: Decimal::ZERO,
            }),
        }
    }
    for rate in &mut by_rate {
        let tax = rate
            .net
            .checked_mul(rate.tax.percent)
            .ok_or(PricingError::Overflow)?
            / hundred;
        rate.tax_amount = round(tax);
        rate.gross = rate
            .net
            .checked_add(rate.tax_amount)
            .ok_or(PricingError::Overflow)?;
    }
    let sum = |f: fn(&RateTotal) -> Decimal| {
        by_rate
            .iter()
            .map(f)
            .try_fold(Decimal::ZERO, |total, x| total.checked_add(x))
            .ok_or(PricingError::Overflow)
    };
    Ok(Totals {
        net: sum(|r| r.net)?,
        tax_amount: sum(|r| r.tax_amount)?,
        gross: sum(|r| r.gross)?,
        line_nets,
        by_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(value: &str) -> Decimal {
        Decimal::from_str(value).unwrap()
    }

    fn rate(code: &str, percent: &str) -> TaxRate {
        TaxRate {
            code: code.into(),
            percent: d(percent),
        }
    }

    fn line(quantity: &str, price: &str, discount: &str, tax: TaxRate) -> Line {
        Line {
            quantity: d(quantity),
            unit_price: d(price),
            discount_percent: d(discount),
            tax,
        }
    }

    /// Worked by hand as an invoice would be:
    ///
    /// | line | quantity × price, discount | net |
    /// |---|---|---|
    /// | 1 | 3 × 33.333 = 99.999 | 100.00 (23 %) |
    /// | 2 | 1 × 0.005 | 0.01 (23 %, the half away from zero) |
    /// | 3 | 2.5 × 19.99 = 49.975, −10 % = 44.9775 | 44.98 (8 %) |
    /// | 4 | 1 × 100 | 100.00 (exempt) |
    ///
    /// 23 %: net 100.01, tax 23.0023 → 23.00, gross 123.01. 8 %: net 44.98, tax 3.5984 → 3.60,
    /// gross 48.58. Exempt: 100.00, 0.00, 100.00. Totals: 244.99 + 26.60 = 271.59.
    #[test]
    fn an_offer_adds_up_as_its_invoice_would() {
        let lines = [
            line("3", "33.333", "0", rate("23", "23")),
            line("1", "0.005", "0", rate("23", "23")),
            line("2.5", "19.99", "10", rate("8", "8")),
            line("1", "100", "0", rate("zw", "0")),
        ];
        let t = totals(&lines, 2).unwrap();
        assert_eq!(
            t.line_nets,
            [d("100.00"), d("0.01"), d("44.98"), d("100.00")]
        );
        let rates: Vec<(&str, Decimal, Decimal, Decimal)> = t
            .by_rate
            .iter()
            .map(|r| (r.tax.code.as_str(), r.net, r.tax_amount, r.gross))
            .collect();
        assert_eq!(
            rates,
            [
                ("23", d("100.01"), d("23.00"), d("123.01")),
                ("8", d("44.98"), d("3.60"), d("48.58")),
                ("zw", d("100.00"), d("0.00"), d("100.00")),
            ]
        );
        assert_eq!(
            (t.net, t.tax_amount, t.gross),
            (d("244.99"), d("26.60"), d("271.59"))
        );
    }

    #[test]
    fn tax_is_rounded_once_per_rate_not_per_line() {
        // Three lines of 0.01: per line 0.0023 would round to nothing three times; on the rate's
        // sum 0.0069 rounds to 0.01.
        let lines = vec![line("1", "0.01", "0", rate("23", "23")); 3];
        let t = totals(&lines, 2).unwrap();
        assert_eq!(t.by_rate[0].tax_amount, d("0.01"));
        assert_eq!(t.gross, d("0.04"));
    }

    #[test]
    fn halves_round_away_from_zero_and_minor_units_follow_the_currency() {
        // 0.125 is 0.13, not the banker's 0.12.
        let t = totals(&[line("1", "0.125", "0", rate("0", "0"))], 2).unwrap();
        assert_eq!(t.net, d("0.13"));
        // Yen have no minor unit: 2 × 150.5 = 301, tax 10 % = 30.1 → 30.
        let t = totals(&[line("2", "150.5", "0", rate("10", "10"))], 0).unwrap();
        assert_eq!(
            (t.net, t.tax_amount, t.gross),
            (d("301"), d("30"), d("331"))
        );
        // A full discount leaves nothing, and nothing is taxed.
        let t = totals(&[line("4", "9.99", "100", rate("23", "23"))], 2).unwrap();
        assert_eq!(t.gross, d("0.00"));
    }

    #[test]
    fn impossible_lines_are_named() {
        assert_eq!(
            totals(&[line("0", "1", "0", rate("23", "23"))], 2),
            Err(PricingError::Quantity(0))
        );
        assert_eq!(
            totals(
                &[
                    line("1", "1", "0", rate("23", "23")),
                    line("1", "-1", "0", rate("23", "23"))
                ],
                2
            ),
            Err(PricingError::Price(1))
        );
        assert_eq!(
            totals(&[line("1", "1", "100.5", rate("23", "23"))], 2),
            Err(PricingError::Discount(0))
        );
        assert_eq!(
            totals(
                &[
                    line("1", "1", "0", rate("A", "23")),
                    line("1", "1", "0", rate("A", "8"))
                ],
                2
            ),
            Err(PricingError::Rate(1))
        );
        let huge = line("79228162514264337593543950335", "2", "0", rate("23", "23"));
        assert_eq!(totals(&[huge], 2), Err(PricingError::Overflow));
        // Net and tax each within range, their sum not.
        let edge = line("78500000000000000000000000000", "1", "0", rate("1", "1"));
        assert_eq!(totals(&[edge], 0), Err(PricingError::Overflow));
    }
}
