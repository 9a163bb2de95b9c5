//! The sales funnel: where a pipeline's cases stand, what they are worth, and how they flow.

use crm_kit::{
    error::{FieldViolations, Result},
    request::{self, currency, money_to_proto, optional_time},
};
use crm_proto::crm::cases::v1::*;
use rust_decimal::Decimal;

use crate::{
    Cases,
    store::{funnel as store, pipelines as pipeline_store},
};

impl Cases {
    pub async fn get_funnel(&self, req: GetFunnelRequest) -> Result<Funnel> {
        let mut v = FieldViolations::new();
        let pipeline = request::uuid(&req.pipeline_id, "pipeline_id", &mut v);
        let filter = store::Filter {
            pipeline,
            currency: currency(&req.currency_code, "currency_code", &mut v),
            owner: Some(req.owner.trim().to_owned()).filter(|o| !o.is_empty()),
            created_after: optional_time(req.created_after.as_ref(), "created_after", &mut v),
            created_before: optional_time(req.created_before.as_ref(), "created_before", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let row = pipeline_store::get(&mut conn, pipeline)
            .await?
            .ok_or_else(|| FieldViolations::single("pipeline_id", "is not a pipeline"))?;
        let order: Vec<String> = row.phases.iter().map(|p| p.code.clone()).collect();
        let standing = store::standing(&mut conn, &filter).await?;
        let flow = store::flow(&mut conn, &filter, &order).await?;
        let money = |amount: Decimal| Some(money_to_proto(amount.round_dp(4), &filter.currency));
        let mut open = (Decimal::ZERO, Decimal::ZERO);
        let phases = row
            .phases
            .iter()
            .map(|phase| {
                let now = standing.iter().find(|s| s.phase == phase.code);
                let (count, value, weighted) = now.map_or((0, Decimal::ZERO, Decimal::ZERO), |s| {
                    (s.count, s.value, s.weighted)
                });
                if !phase.group.is_closed() {
                    open = (open.0 + value, open.1 + weighted);
                }
                let moved = flow.iter().find(|f| f.phase == phase.code);
                let (entered, went_on, seconds) =
                    moved.map_or((0, 0, 0.0), |f| (f.entered, f.went_on, f.average_seconds));
                FunnelPhase {
                    phase: phase.code.clone(),
                    group: phase.group.to_proto() as i32,
                    count,
                    value: money(value),
                    weighted_value: money(weighted),
                    entered,
                    conversion: if entered == 0 {
                        0.0
                    } else {
                        went_on as f64 / entered as f64
                    },
                    average_seconds: seconds,
                }
            })
            .collect();
        Ok(Funnel {
            pipeline_id: pipeline.to_string(),
            phases,
            open_value: money(open.0),
            open_weighted_value: money(open.1),
        })
    }
}
