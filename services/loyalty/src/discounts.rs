//! Discount levels: a party's own discounts per price list and product category with a validity
//! period, and automatic levels that any party reaches by its invoiced turnover.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, audit, date, date_to_proto, optional_uuid, uuid},
    store::Page,
};
use crm_proto::crm::{
    common::v1::Date,
    loyalty::v1::{
        ApplicableDiscount, DeleteDiscountRequest, Discount, DiscountChanged,
        GetApplicableDiscountsRequest, GetApplicableDiscountsResponse, ListDiscountsRequest,
        ListDiscountsResponse, SetDiscountRequest,
    },
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{Loyalty, domain::code, events, store};

impl Loyalty {
    pub async fn set_discount(&self, subject: &str, req: SetDiscountRequest) -> Result<Discount> {
        let mut v = FieldViolations::new();
        v.check(req.discount.is_some(), "discount", "is required");
        let input = req.discount.clone().unwrap_or_default();
        let id = optional_uuid(&input.id, "discount.id", &mut v).unwrap_or_else(Uuid::now_v7);
        let party = optional_uuid(&input.party_id, "discount.party_id", &mut v);
        let percentage = input
            .percentage
            .trim()
            .parse::<Decimal>()
            .ok()
            .filter(|p| *p > Decimal::ZERO && *p <= Decimal::ONE_HUNDRED);
        v.check(
            percentage.is_some(),
            "discount.percentage",
            "must be a decimal above 0 and at most 100",
        );
        let percentage = percentage.unwrap_or_default();
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
        let discount = store::NewDiscount {
            id,
            party,
            price_list: &price_list,
            category: input.category.trim(),
            percentage,
            turnover_threshold: threshold,
            currency_code: if threshold.is_some() { &currency } else { "" },
            valid_from,
            valid_to,
        };
        let row = store::set_discount(&mut tx, &discount, subject).await?;
        let discount = discount_to_proto(&row);
        let event = DiscountChanged {
            discount: Some(discount.clone()),
            deleted: false,
        };
        events::DISCOUNT.enqueue(&mut tx, row.id, &event).await?;
        claim.commit(tx, &discount).await?;
        Ok(discount)
    }

    pub async fn list_discounts(&self, req: ListDiscountsRequest) -> Result<ListDiscountsResponse> {
        let mut v = FieldViolations::new();
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &party, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_discounts(&mut conn, party, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListDiscountsResponse {
            discounts: rows.iter().map(discount_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn delete_discount(
        &self,
        subject: &str,
        req: DeleteDiscountRequest,
    ) -> Result<Discount> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = store::delete_discount(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Discount", id))?;
        let discount = discount_to_proto(&row);
        let event = DiscountChanged {
            discount: Some(discount.clone()),
            deleted: true,
        };
        events::DISCOUNT.enqueue(&mut tx, row.id, &event).await?;
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
        let turnover = store::turnover(&mut conn, party).await?;
        let turnover: HashMap<String, Decimal> = turnover.into_iter().collect();
        let rows =
            store::discounts_on(&mut conn, party, &price_list, req.category.trim(), on).await?;
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

fn discount_to_proto(row: &store::DiscountRow) -> Discount {
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
