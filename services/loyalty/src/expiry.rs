//! Point expiry: the sweep that expires lots whose time has come, and the forecast of what will.
//! Points a pending hold reserves are left alone while it is pending: the order they were reserved
//! for decides them. What a due lot could not give up then stays in it and expires as soon as the
//! hold is voided or lapses; a captured hold spends the oldest-expiring points, so those first.

use std::time::Duration;

use crm_kit::{error::Result, request::date_to_proto, shutdown::Shutdown};
use crm_proto::crm::loyalty::v1::{
    AccountRef, ExpiringPoints, ExpiryForecast, GetExpiryForecastRequest,
};
use tracing::Span;

use crate::{
    Loyalty,
    posting::{self, AccountKey, Announce, Change, Posting, System},
    store,
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

    /// Expires due lots in batches of 100 until none is left that can expire now (a lot whose
    /// points are all held waits for its hold to end).
    async fn expire_due_points(&self) -> Result<()> {
        loop {
            let due = store::due_lots(&mut *self.pool.acquire().await?, 100).await?;
            if due.is_empty() {
                return Ok(());
            }
            let postings: Vec<Posting> = due.iter().map(expiry).collect();
            let mut tx = self.pool.begin().await?;
            let outcomes = posting::apply(&mut tx, &postings).await?;
            tx.commit().await?;
            let mut expired = 0;
            for outcome in outcomes {
                expired += outcome?.points;
            }
            // Another replica got there first, or holds took the points meanwhile.
            if expired == 0 {
                return Ok(());
            }
        }
    }
}

/// What is left of a due lot, expired against the program's expiry account.
fn expiry(lot: &store::DueLot) -> Posting {
    Posting {
        account: AccountKey {
            program: lot.program_id,
            membership: lot.membership_id,
            person: lot.person_id,
            point_type: lot.point_type.clone(),
        },
        change: Change::Expire { lot: lot.id },
        operation: Some(posting::Operation {
            client_id: String::new(),
            operation_type: EXPIRY.to_owned(),
            reference: String::new(),
            subject: SWEEPER.to_owned(),
            reverses: None,
            system: System::Expiry,
            announce: Announce::Expired,
            qualifying: false,
        }),
        requires_active: false,
        span: Span::current(),
    }
}
