//! The service interactions asks, and what its answers mean here: parties (is the client there).
//! Asked before a transaction opens: no lock is held across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::parties::v1::{GetPartyRequest, GetPersonRequest};
use tonic::Code;
use uuid::Uuid;

use crate::{Interactions, domain::ParticipantKind};

impl Interactions {
    /// Every party and person must be one of the parties service; each that is not is named by
    /// its `field`.
    pub(crate) async fn require_clients(
        &self,
        clients: &[(String, ParticipantKind, Uuid)],
    ) -> Result<()> {
        let mut v = FieldViolations::new();
        for (field, kind, id) in clients {
            let found = match kind {
                ParticipantKind::Person => {
                    let request = GetPersonRequest { id: id.to_string() };
                    self.parties.clone().get_person(request).await.map(|_| ())
                }
                _ => {
                    let request = GetPartyRequest { id: id.to_string() };
                    self.parties.clone().get_party(request).await.map(|_| ())
                }
            };
            match found {
                Ok(()) => {}
                Err(status) if status.code() == Code::NotFound => {
                    v.add(field, format!("is not a {kind} of the parties service"))
                }
                Err(status) => return Err(peer_error("parties", status)),
            }
        }
        Ok(v.finish()?)
    }
}
