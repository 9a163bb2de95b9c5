//! The services cases asks, and what their answers mean here: parties (is the client there) and
//! loyalty (is the membership the client's). Asked before a transaction opens: no lock is held
//! across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::{
    loyalty::v1::GetMembershipRequest,
    parties::v1::{GetPartyRequest, GetPersonRequest},
};
use tonic::Code;
use uuid::Uuid;

use crate::Cases;

impl Cases {
    /// The party and persons must be the parties service's; each that is not is named.
    pub(crate) async fn require_clients(
        &self,
        party: Option<Uuid>,
        persons: &[Uuid],
        field: &str,
    ) -> Result<()> {
        let mut v = FieldViolations::new();
        if let Some(id) = party {
            let request = GetPartyRequest { id: id.to_string() };
            match self.parties.clone().get_party(request).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => v.add(
                    format!("{field}.party_id"),
                    "is not a party of the parties service",
                ),
                Err(status) => return Err(peer_error("parties", status)),
            }
        }
        for (i, id) in persons.iter().enumerate() {
            let request = GetPersonRequest { id: id.to_string() };
            match self.parties.clone().get_person(request).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => v.add(
                    format!("{field}.person_ids[{i}]"),
                    "is not a person of the parties service",
                ),
                Err(status) => return Err(peer_error("parties", status)),
            }
        }
        v.finish()?;
        Ok(())
    }

    /// The membership must be loyalty's and the party's own: another member's tier, terms or
    /// coupons are not the client's.
    pub(crate) async fn require_membership_of(
        &self,
        party: Uuid,
        membership: Uuid,
        field: &str,
    ) -> Result<()> {
        let request = GetMembershipRequest {
            id: membership.to_string(),
        };
        match self.loyalty.clone().get_membership(request).await {
            Ok(found) if found.get_ref().party_id == party.to_string() => Ok(()),
            Ok(_) => Err(FieldViolations::single(field, "is another party's membership").into()),
            Err(status) if status.code() == Code::NotFound => Err(FieldViolations::single(
                field,
                "is not a membership of the loyalty service",
            )
            .into()),
            Err(status) => Err(peer_error("loyalty", status)),
        }
    }
}
