//! The services rewards asks, and what their answers mean here: loyalty (programs, point types,
//! tiers, memberships and their points, and the holds reward orders take) and parties (bases).
//! Peers are asked before a transaction opens: no lock is held across a call to another service.
//!
//! Every call that changes loyalty's ledger is keyed by the order (the hold's client id, the
//! return's operation id), so a saga step repeated after a crash or a lost answer changes nothing
//! twice.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::{
    loyalty::v1::{
        AccountRef, CaptureHoldRequest, GetMembershipRequest, GetProgramRequest, Hold,
        HoldPointsRequest, ListBalancesRequest, Membership, Program, ReverseOperationRequest,
        VoidHoldRequest,
    },
    parties::v1::{GetBaseRequest, GetPartyRequest},
};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::{
    Rewards,
    store::orders::{OrderRow, ReturnRow},
};

/// The operation type a capture posts: loyalty's default for reward redemptions, which every
/// program with rewards defines (checked when a reward is created).
pub const REDEMPTION: &str = "reward_redemption";

/// Loyalty answered and changed nothing: the call was refused for good (a retry would be refused
/// again), unlike a timeout or an outage, after which the change may or may not have been made.
pub fn refused(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument | Code::AlreadyExists
    )
}

/// The `ErrorInfo.reason` of a peer's refusal, empty when it gave none.
pub fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

impl Rewards {
    /// The loyalty program `id`; a caller's mistake when there is none, named as `field`.
    pub(crate) async fn program(&self, id: Uuid, field: &str) -> Result<Program> {
        let request = GetProgramRequest { id: id.to_string() };
        match self.loyalty.clone().get_program(request).await {
            Ok(program) => Ok(program.into_inner()),
            Err(status) if status.code() == Code::NotFound => {
                Err(violation(field, "is not a loyalty program"))
            }
            Err(status) => Err(peer_error("loyalty", status)),
        }
    }

    /// The membership `id`; a caller's mistake when there is none, named as `field`.
    pub(crate) async fn membership(&self, id: Uuid, field: &str) -> Result<Membership> {
        let request = GetMembershipRequest { id: id.to_string() };
        match self.loyalty.clone().get_membership(request).await {
            Ok(membership) => Ok(membership.into_inner()),
            Err(status) if status.code() == Code::NotFound => {
                Err(violation(field, "is not a membership"))
            }
            Err(status) => Err(peer_error("loyalty", status)),
        }
    }

    /// What the membership can spend now, by point type.
    pub(crate) async fn available_points(&self, membership: Uuid) -> Result<Vec<(String, i64)>> {
        let mut points = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListBalancesRequest {
                membership_id: membership.to_string(),
                page_size: 500,
                page_token,
            };
            let page = self
                .loyalty
                .clone()
                .list_balances(request)
                .await
                .map_err(|status| peer_error("loyalty", status))?
                .into_inner();
            // The membership's own accounts: a B2B person's points are not the member's to spend.
            points.extend(page.balances.into_iter().filter_map(|b| {
                let account = b.account?;
                account
                    .person_id
                    .is_empty()
                    .then_some((account.point_type, b.available))
            }));
            if page.next_page_token.is_empty() {
                return Ok(points);
            }
            page_token = page.next_page_token;
        }
    }

    /// The bases the party belongs to.
    pub(crate) async fn party_bases(&self, party: Uuid) -> Result<Vec<Uuid>> {
        let request = GetPartyRequest {
            id: party.to_string(),
        };
        let party = self
            .parties
            .clone()
            .get_party(request)
            .await
            .map_err(|status| peer_error("parties", status))?
            .into_inner();
        Ok(party
            .base_ids
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect())
    }

    /// Holds the order's points until the configured timeout; repeated, it answers the same hold.
    pub(crate) async fn hold_points(&self, order: &OrderRow) -> Result<Hold, Status> {
        let request = HoldPointsRequest {
            hold_id: order.hold_id.clone(),
            account: Some(AccountRef {
                membership_id: order.membership_id.to_string(),
                person_id: String::new(),
                point_type: order.point_type.clone(),
            }),
            points: order.points,
            timeout_seconds: order.hold_seconds,
            reference: format!("reward order {}", order.id),
        };
        Ok(self
            .loyalty
            .clone()
            .hold_points(request)
            .await?
            .into_inner())
    }

    /// Takes the whole hold as a reward redemption; repeated, it answers the same capture.
    pub(crate) async fn capture_hold(&self, order: &OrderRow) -> Result<Hold, Status> {
        let request = CaptureHoldRequest {
            hold_id: order.hold_id.clone(),
            points: 0,
            operation_type: REDEMPTION.to_owned(),
            request_id: format!("{}-capture", order.hold_id),
        };
        Ok(self
            .loyalty
            .clone()
            .capture_hold(request)
            .await?
            .into_inner())
    }

    /// Lets the hold go. A hold that is gone already (voided or expired) is as good; false when
    /// loyalty has no such hold (yet).
    pub(crate) async fn void_hold(&self, order: &OrderRow) -> Result<bool, Status> {
        let request = VoidHoldRequest {
            hold_id: order.hold_id.clone(),
            request_id: format!("{}-void", order.hold_id),
        };
        match self.loyalty.clone().void_hold(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) if matches!(reason(&status).as_str(), "HOLD_EXPIRED" | "HOLD_VOIDED") => {
                Ok(true)
            }
            Err(status) => Err(status),
        }
    }

    /// Gives a return's points back by reversing that much of the order's redemption, once;
    /// the points loyalty gave back.
    pub(crate) async fn give_back(&self, order: &OrderRow, ret: &ReturnRow) -> Result<i64, Status> {
        let request = ReverseOperationRequest {
            operation_id: format!("reward-return-{}", ret.id),
            original_operation_id: format!("hold:{}:capture", order.hold_id),
            reference: format!("return {} of reward order {}", ret.id, order.id),
            points: ret.points,
        };
        let reversal = self.loyalty.clone().reverse_operation(request).await?;
        Ok(reversal.into_inner().points)
    }

    /// Gives back every point a capture took, once: for an order cancelled after its hold was
    /// captured.
    pub(crate) async fn refund(&self, order: &OrderRow) -> Result<(), Status> {
        let request = ReverseOperationRequest {
            operation_id: format!("{}-refund", order.hold_id),
            original_operation_id: format!("hold:{}:capture", order.hold_id),
            reference: format!("cancelled reward order {}", order.id),
            points: 0,
        };
        self.loyalty.clone().reverse_operation(request).await?;
        Ok(())
    }

    /// Every id must be a base in the parties service; each one that is not is named.
    pub(crate) async fn require_bases(&self, bases: &[Uuid], field: &str) -> Result<()> {
        let mut v = FieldViolations::new();
        for (i, base) in bases.iter().enumerate() {
            let request = GetBaseRequest {
                id: base.to_string(),
            };
            match self.parties.clone().get_base(request).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {
                    v.add(format!("{field}[{i}]"), "is not a base")
                }
                Err(status) => return Err(peer_error("parties", status)),
            }
        }
        Ok(v.finish()?)
    }
}

fn violation(field: &str, description: &str) -> crm_kit::error::ServiceError {
    let mut v = FieldViolations::new();
    v.add(field, description);
    v.into()
}
