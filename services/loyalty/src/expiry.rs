//! Point expiry: the sweep that expires lots whose time has come, and the forecast of what will.
//! Points a pending hold reserves are left alone while it is pending: the order they were reserved
//! for decides them. What a due lot could not give up then stays in it and expires as soon as the
//! hold is voided or lapses; a captured hold spends the oldest-expiring points, so those first.

use std::{collections::HashMap, time::Duration};

use crm_kit::{
    error::{Result, ServiceError},
    request::date_to_proto,
    shutdown::Shutdown,
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{
    AccountRef, ExpiringPoints, ExpiryForecast, GetExpiryForecastRequest, PointsExpired,
};
use uuid::Uuid;

use crate::domain;
use crate::{
    Loyalty, events,
    store::{self, NewOperation},
};

/// The operation type of expiry entries (the program's operation types do not define it).
pub const EXPIRY: &str = "expiry";
/// Who expiry operations are recorded as created by.
const SWEEPER: &str = "crm-loyalty.expiry";

impl Loyalty {
    pub async fn get_expiry_forecast(
        &self,
        req: GetExpiryForecastRequest,
    ) -> Result<ExpiryForecast> {
        let mut conn = self.pool.acquire().await?;
        let (membership, person, point_type) =
            self.read_target(&mut conn, req.account.as_ref()).await?;
        let account = AccountRef {
            membership_id: membership.to_string(),
            person_id: person.map(|p| p.to_string()).unwrap_or_default(),
            point_type: point_type.clone(),
        };
        let Some(row) = store::find_account(&mut conn, membership, person, &point_type).await?
        else {
            return Ok(ExpiryForecast {
                account: Some(account),
                expiring: Vec::new(),
            });
        };
        let expiring = store::expiry_forecast(&mut conn, row.id)
            .await?
            .into_iter()
            .map(|(day, points)| ExpiringPoints {
                date: Some(date_to_proto(day)),
                points,
            })
            .collect();
        Ok(ExpiryForecast {
            account: Some(account),
            expiring,
        })
    }

    /// Expires due lots every second until `shutdown`.
    pub async fn expire_points(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_secs(1)).await {
            if let Err(error) = self.expire_due_points().await {
                tracing::warn!(%error, "expiring points failed; retrying");
            }
        }
    }

    async fn expire_due_points(&self) -> Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::lock_due_lots(&mut tx, 100).await?;
            if due.is_empty() {
                return Ok(());
            }
            // Several lots of one account may fall due together: track its balance as we go.
            let mut balances: HashMap<Uuid, i64> = HashMap::new();
            for lot in &due {
                let balance = *balances.entry(lot.account_id).or_insert(lot.balance);
                let points = lot.remaining.min((balance - lot.held).max(0));
                if points > 0 {
                    let after = expire(&mut tx, lot, points).await?;
                    balances.insert(lot.account_id, after);
                    store::expire_from_lot(&mut tx, lot.id, points).await?;
                }
            }
            tx.commit().await?;
        }
    }
}

/// Posts one lot's expiry: the member's debit against the program's expiry account.
async fn expire(tx: &mut Tx, lot: &store::DueLot, points: i64) -> Result<i64> {
    let balance_after = store::change_balance(tx, lot.account_id, -points, None)
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("an expiring account vanished")))?;
    let expiry_account =
        store::system_account(tx, lot.program_id, &lot.point_type, "expiry").await?;
    let id = Uuid::now_v7();
    // A lot may expire in parts (what a hold spared expires when it ends): each part is named by
    // what the lot held before it, which only falls.
    let client_id = format!("expiry:{}:{}", lot.id, lot.remaining);
    let operation = NewOperation {
        id,
        client_id: &client_id,
        account_id: lot.account_id,
        system_account_id: expiry_account,
        operation_type: EXPIRY,
        direction: domain::Direction::Settle,
        points,
        delta: -points,
        balance_after,
        reference: "",
        reverses: None,
        subject: SWEEPER,
    };
    store::post_operation(tx, &operation).await?;
    let event = PointsExpired {
        operation_id: id.to_string(),
        account: Some(AccountRef {
            membership_id: lot.membership_id.to_string(),
            person_id: lot.person_id.map(|p| p.to_string()).unwrap_or_default(),
            point_type: lot.point_type.clone(),
        }),
        points,
        balance_after,
    };
    events::POINTS
        .enqueue(tx, lot.membership_id, &event)
        .await?;
    Ok(balance_after)
}
