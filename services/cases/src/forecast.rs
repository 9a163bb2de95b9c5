//! The forecast: what a currency's cases are expected to bring in month by month, what they
//! brought, and each owner's plan against the actuals.

use chrono::{Datelike, NaiveDate};
use crm_kit::{
    error::{FieldViolations, Result},
    request::{self, currency, date, date_to_proto, money_to_proto},
};
use crm_proto::crm::cases::v1::*;
use rust_decimal::Decimal;

use crate::{Cases, store::forecast as store};

impl Cases {
    pub async fn get_forecast(&self, req: GetForecastRequest) -> Result<Forecast> {
        let mut v = FieldViolations::new();
        let pipeline = (!req.pipeline_id.is_empty())
            .then(|| request::uuid(&req.pipeline_id, "pipeline_id", &mut v));
        let filter = store::Filter {
            pipeline,
            currency: currency(&req.currency_code, "currency_code", &mut v),
            owner: Some(req.owner.trim().to_owned()).filter(|o| !o.is_empty()),
            from: date(req.from_month.as_ref(), "from_month", &mut v).map(first_of_month),
            before: date(req.before_month.as_ref(), "before_month", &mut v).map(first_of_month),
        };
        if let (Some(from), Some(before)) = (filter.from, filter.before) {
            v.check(
                from < before,
                "before_month",
                "must be a later month than from_month",
            );
        }
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let months = store::months(&mut conn, &filter).await?;
        let owners = store::owners(&mut conn, &filter).await?;
        let money = |amount: Decimal| Some(money_to_proto(amount.round_dp(4), &filter.currency));
        let month = |m: &store::Month| ForecastMonth {
            month: m.month.map(date_to_proto),
            open_count: m.open_count,
            open_value: money(m.open_value),
            weighted_value: money(m.weighted),
            won_count: m.won_count,
            won_value: money(m.won_value),
            lost_count: m.lost_count,
            lost_value: money(m.lost_value),
        };
        let figures = |f: &store::Figures| PlanVsActual {
            cases: f.cases,
            planned_cost: money(f.planned_cost),
            actual_cost: money(f.actual_cost),
            planned_revenue: money(f.planned_revenue),
            actual_revenue: money(f.actual_revenue),
            planned_margin: money(f.planned_revenue - f.planned_cost),
            actual_margin: money(f.actual_revenue - f.actual_cost),
        };
        let total = owners
            .iter()
            .fold(store::Figures::default(), |t, f| store::Figures {
                owner: String::new(),
                cases: t.cases + f.cases,
                planned_cost: t.planned_cost + f.planned_cost,
                actual_cost: t.actual_cost + f.actual_cost,
                planned_revenue: t.planned_revenue + f.planned_revenue,
                actual_revenue: t.actual_revenue + f.actual_revenue,
            });
        Ok(Forecast {
            months: months
                .iter()
                .filter(|m| m.month.is_some())
                .map(month)
                .collect(),
            undated: months.iter().find(|m| m.month.is_none()).map(month),
            owners: owners
                .iter()
                .map(|f| OwnerFigures {
                    owner: f.owner.clone(),
                    figures: Some(figures(f)),
                })
                .collect(),
            total: Some(figures(&total)),
        })
    }
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}
