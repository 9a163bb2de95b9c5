//! Voucher codes: a partner's codes imported into a voucher reward.

use std::collections::HashSet;

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::uuid,
};
use crm_proto::crm::rewards::v1::{ImportVoucherCodesRequest, ImportVoucherCodesResponse};

use crate::{
    Rewards,
    domain::{RewardStatus, VoucherSource, vouchers},
    error::Refusal,
    events, rewards,
    store::{rewards as reward_store, vouchers as store},
};

impl Rewards {
    pub async fn import_voucher_codes(
        &self,
        caller: &str,
        req: ImportVoucherCodesRequest,
    ) -> Result<ImportVoucherCodesResponse> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.reward_id, "reward_id", &mut v);
        let parsed = vouchers::parse_codes(&req.csv).unwrap_or_else(|problems| {
            for problem in problems {
                v.add("csv", problem);
            }
            Vec::new()
        });
        v.finish()?;
        let in_file = parsed.len() as i64;
        let mut seen = HashSet::new();
        let (codes, valid_until): (Vec<String>, Vec<_>) = parsed
            .into_iter()
            .filter(|c| seen.insert(c.code.clone()))
            .map(|c| (c.code, c.valid_until))
            .unzip();
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let reward = reward_store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Reward", id))?;
        if reward.voucher_source != Some(VoucherSource::Imported) {
            let kind = reward.kind;
            return Err(Refusal::CodesNotImported { id, kind }.into());
        }
        if reward.status == RewardStatus::Archived {
            return Err(Refusal::RewardArchived { id }.into());
        }
        let imported = store::import(&mut tx, id, &codes, &valid_until).await?;
        let reward = rewards::answer(&mut tx, id).await?;
        if imported > 0 {
            events::reward_changed(&mut tx, &reward, "codes_imported").await?;
        }
        let answer = ImportVoucherCodesResponse {
            imported: imported as i32,
            skipped: (in_file - imported) as i32,
            available: reward.available_units,
        };
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }
}
