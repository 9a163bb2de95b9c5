//! Two-phase holds: points held for a reward, captured or voided, released when they time out.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_uuid, uuid},
    shutdown::Shutdown,
    store::{self as kit_store, Page},
};
use crm_proto::crm::loyalty::v1::{
    CaptureHoldRequest, GetHoldRequest, Hold, HoldPointsRequest, HoldVoided, ListHoldsRequest,
    ListHoldsResponse, VoidHoldRequest,
};
use tracing::Span;
use uuid::Uuid;

use crate::{
    Loyalty,
    convert::{account_ref, hold_to_proto},
    domain::{self, DEFAULT_HOLD_SECONDS, MAX_HOLD_SECONDS, check_points},
    events,
    lookups::hold_in,
    posting::{
        self,
        hold::{expire, hold_not_pending, release},
    },
    store::{self, HoldRow},
};

impl Loyalty {
    pub async fn hold_points(&self, subject: &str, req: HoldPointsRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.hold_id, "hold_id", &mut v);
        check_points(req.points, "points", &mut v);
        let timeout = if req.timeout_seconds == 0 {
            DEFAULT_HOLD_SECONDS
        } else {
            req.timeout_seconds
        };
        v.check(
            (1..=MAX_HOLD_SECONDS).contains(&timeout),
            "timeout_seconds",
            "must be between 1 and 2592000 (30 days); 0 means 900",
        );
        let account = req.account.clone().unwrap_or_default();
        let membership = uuid(&account.membership_id, "account.membership_id", &mut v);
        let person = optional_uuid(&account.person_id, "account.person_id", &mut v);
        v.finish()?;
        if let Some(person) = person {
            self.require_employee_of(membership, person).await?;
        }
        self.holder
            .call(subject, req, (membership, person, timeout))
            .await
    }

    pub async fn get_hold(&self, req: GetHoldRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(!req.hold_id.trim().is_empty(), "hold_id", "is required");
        v.finish()?;
        let hold = store::get_hold_by_client_id(&mut *self.pool.acquire().await?, &req.hold_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Hold", &req.hold_id))?;
        Ok(hold_to_proto(&hold))
    }

    pub async fn list_holds(&self, req: ListHoldsRequest) -> Result<ListHoldsResponse> {
        let mut v = FieldViolations::new();
        let membership = uuid(&req.membership_id, "membership_id", &mut v);
        let status = domain::HoldStatus::optional(req.status, "status", &mut v);
        let filter = (membership, req.status);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_membership(&mut conn, membership)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        let mut rows =
            store::list_holds(&mut conn, membership, status, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListHoldsResponse {
            holds: rows.iter().map(hold_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn capture_hold(&self, subject: &str, req: CaptureHoldRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(!req.hold_id.trim().is_empty(), "hold_id", "is required");
        v.check(
            req.points >= 0,
            "points",
            "must not be negative; 0 captures the whole hold",
        );
        v.finish()?;
        self.capturer.call(subject, req, ()).await
    }

    pub async fn void_hold(&self, subject: &str, req: VoidHoldRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(!req.hold_id.trim().is_empty(), "hold_id", "is required");
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let hold = match self.pending_hold(&mut tx, &req.hold_id).await? {
            HoldState::Pending(hold) => hold,
            HoldState::Settled(hold) if hold.status == domain::HoldStatus::Voided => {
                return Ok(hold_to_proto(&hold));
            }
            HoldState::Settled(hold) => return Err(hold_not_pending(&hold)),
            HoldState::Expired(hold) => {
                claim.commit_failed(tx).await?;
                return Err(hold_not_pending(&hold));
            }
        };
        posting::apply_one(&mut tx, release(&hold)).await?;
        store::settle_hold(&mut tx, hold.id, domain::HoldStatus::Voided, 0, None).await?;
        let account = Some(account_ref(
            hold.membership_id,
            hold.person_id,
            &hold.point_type,
        ));
        events::POINTS
            .enqueue(
                &mut tx,
                hold.membership_id,
                &HoldVoided {
                    hold_id: hold.id.to_string(),
                    account,
                },
            )
            .await?;
        let hold = hold_in(&mut tx, hold.id).await?;
        claim.commit(tx, &hold).await?;
        Ok(hold)
    }

    /// Releases holds whose timeout passed, until `shutdown`.
    pub async fn expire_holds(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_secs(1)).await {
            if let Err(error) = self.expire_due_holds().await {
                tracing::warn!(error = %error, "releasing expired holds failed; retrying");
            }
        }
    }

    pub(crate) async fn expire_due_holds(&self) -> Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::lock_expired_holds(&mut tx, 100).await?;
            if due.is_empty() {
                return Ok(());
            }
            let due: Vec<_> = due.into_iter().map(|h| (h, Span::current())).collect();
            expire(&mut tx, &due).await?;
            tx.commit().await?;
        }
    }

    /// The hold, locked; one past its timeout is expired on the spot.
    pub(crate) async fn pending_hold(
        &self,
        tx: &mut kit_store::Tx,
        client_id: &str,
    ) -> Result<HoldState> {
        let hold = store::lock_hold_by_client_id(tx, client_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Hold", client_id))?;
        if hold.status != domain::HoldStatus::Pending {
            return Ok(HoldState::Settled(hold));
        }
        if hold.expires_at <= Utc::now() {
            expire(tx, &[(hold.clone(), Span::current())]).await?;
            let expired = HoldRow {
                status: domain::HoldStatus::Expired,
                ..hold
            };
            return Ok(HoldState::Expired(expired));
        }
        Ok(HoldState::Pending(hold))
    }
}

pub(crate) enum HoldState {
    Pending(HoldRow),
    /// Captured, voided or expired before this call.
    Settled(HoldRow),
    /// Expired by this call: its release must be committed.
    Expired(HoldRow),
}
