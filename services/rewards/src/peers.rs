//! The services rewards asks, and what their answers mean here: loyalty (programs, point types,
//! tiers, memberships and their points) and parties (bases). Peers are asked before a transaction
//! opens: no lock is held across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::{
    loyalty::v1::{
        GetMembershipRequest, GetProgramRequest, ListBalancesRequest, Membership, Program,
    },
    parties::v1::GetBaseRequest,
};
use tonic::Code;
use uuid::Uuid;

use crate::Rewards;

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
