//! Discount levels: a party's own discounts per price list and product category with a validity
//! period, and automatic levels that any party reaches by its invoiced turnover.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use crm_kit::{
    error::{FieldViolations, Result},
    request::{audit, date, date_to_proto, optional_uuid, uuid},
};
use crm_proto::crm::{
    common::v1::Date,
    loyalty::v1::{
        ApplicableDiscount, Discount, GetApplicableDiscountsRequest,
        GetApplicableDiscountsResponse, SetDiscountRequest,
    },
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{Loyalty, domain::code};

#[derive(Debug, Clone, sqlx::FromRow)]
struct DiscountRow {
    id: Uuid,
    party_id: Option<Uuid>,
    price_list: String,
    category: String,
    percentage: Decimal,
    turnover_threshold: Option<Decimal>,
    currency_code: String,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
    created_by: String,
    updated_by: String,
}

impl Loyalty {
    pub async fn set_discount(&self, subject: &str, req: SetDiscountRequest) -> Result<Discount> {
        let mut v = FieldViolations::new();
        v.check(req.discount.is_some(), "discount", "is required");
        let input = req.discount.clone().unwrap_or_default();
        let id = optional_uuid(&input.id, "discount.id", &mut v).unwrap_or_else(Uuid::now_v7);
        let party = optional_uuid(&input.party_id, "discount.party_id", &mut v);
        let percentage = input.percentage.trim().parse::<Decimal>().ok();
        v.check(
            percentage.is_some_and(|p| p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED),
            "discount.percentage",
            "must be a decimal above 0 and at most 100",
        );
        let threshold = Some(input.turnover_threshold.trim())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<Decimal>());
        let threshold = match (party, threshold) {
            (Some(_), None) => None,
            (Some(_), Some(_)) => {
                v.add(
                    "discount.turnover_threshold",
                    "only automatic levels (without a party) have a threshold",
                );
                None
            }
            (None, Some(Ok(t))) if !t.is_sign_negative() => Some(t),
            (None, _) => {
                v.add(
                    "discount.turnover_threshold",
                    "an automatic level (no party) needs a turnover of 0 or more",
                );
                None
            }
        };
        let currency = input.currency_code.trim().to_uppercase();
        v.check(
            threshold.is_none()
                || (currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase())),
            "discount.currency_code",
            "an automatic level needs the ISO 4217 currency of its turnover",
        );
        let price_list = code(&input.price_list, "discount.price_list", &mut v);
        let valid_from = date(input.valid_from.as_ref(), "discount.valid_from", &mut v);
        let valid_to = date(input.valid_to.as_ref(), "discount.valid_to", &mut v);
        if let (Some(from), Some(to)) = (valid_from, valid_to) {
            v.check(
                to >= from,
                "discount.valid_to",
                "must not be before valid_from",
            );
        }
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row: DiscountRow = sqlx::query_as(
            "INSERT INTO discounts (id, party_id, price_list, category, percentage, turnover_threshold, currency_code,
                 valid_from, valid_to, created_by, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             ON CONFLICT (id) DO UPDATE
             SET party_id = excluded.party_id, price_list = excluded.price_list, category = excluded.category,
                 percentage = excluded.percentage, turnover_threshold = excluded.turnover_threshold,
                 currency_code = excluded.currency_code, valid_from = excluded.valid_from,
                 valid_to = excluded.valid_to, updated_by = excluded.updated_by, updated_at = now()
             RETURNING *",
        )
        .bind(id)
        .bind(party)
        .bind(&price_list)
        .bind(input.category.trim())
        .bind(percentage)
        .bind(threshold)
        .bind(if threshold.is_some() { currency.as_str() } else { "" })
        .bind(valid_from)
        .bind(valid_to)
        .bind(subject)
        .fetch_one(&mut *tx)
        .await?;
        let discount = discount_to_proto(&row);
        claim.commit(tx, &discount).await?;
        Ok(discount)
    }

    pub async fn get_applicable_discounts(
        &self,
        req: GetApplicableDiscountsRequest,
    ) -> Result<GetApplicableDiscountsResponse> {
        let mut v = FieldViolations::new();
        let party = uuid(&req.party_id, "party_id", &mut v);
        let price_list = code(&req.price_list, "price_list", &mut v);
        let on = date(req.date.as_ref(), "date", &mut v).unwrap_or_else(|| Utc::now().date_naive());
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let turnover: Vec<(String, Decimal)> = sqlx::query_as(
            "SELECT currency_code, sum(net_amount) FROM invoice_lines WHERE party_id = $1 AND NOT credited
             GROUP BY currency_code",
        )
        .bind(party)
        .fetch_all(&mut *conn)
        .await?;
        let turnover: HashMap<String, Decimal> = turnover.into_iter().collect();
        let rows: Vec<DiscountRow> = sqlx::query_as(
            "SELECT * FROM discounts
             WHERE (party_id = $1 OR party_id IS NULL) AND price_list = $2 AND (category = '' OR category = $3)
               AND (valid_from IS NULL OR valid_from <= $4) AND (valid_to IS NULL OR valid_to >= $4)
             ORDER BY percentage DESC, id",
        )
        .bind(party)
        .bind(&price_list)
        .bind(req.category.trim())
        .bind(on)
        .fetch_all(&mut *conn)
        .await?;
        let discounts = rows
            .iter()
            .filter_map(|row| {
                let source = match row.turnover_threshold {
                    None => "assigned",
                    Some(threshold)
                        if turnover
                            .get(&row.currency_code)
                            .is_some_and(|t| *t >= threshold) =>
                    {
                        "turnover"
                    }
                    Some(_) => return None,
                };
                Some(ApplicableDiscount {
                    discount: Some(discount_to_proto(row)),
                    source: source.into(),
                })
            })
            .collect();
        let turnover = turnover
            .into_iter()
            .map(|(currency, total)| (currency, total.normalize().to_string()))
            .collect();
        Ok(GetApplicableDiscountsResponse {
            discounts,
            turnover,
        })
    }
}

fn discount_to_proto(row: &DiscountRow) -> Discount {
    let day = |d: Option<NaiveDate>| -> Option<Date> { d.map(date_to_proto) };
    Discount {
        id: row.id.to_string(),
        party_id: row.party_id.map(|p| p.to_string()).unwrap_or_default(),
        price_list: row.price_list.clone(),
        category: row.category.clone(),
        percentage: row.percentage.normalize().to_string(),
        turnover_threshold: row
            .turnover_threshold
            .map(|t| t.normalize().to_string())
            .unwrap_or_default(),
        currency_code: row.currency_code.clone(),
        valid_from: day(row.valid_from),
        valid_to: day(row.valid_to),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
    }
}
