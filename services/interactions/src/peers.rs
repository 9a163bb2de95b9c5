//! The service interactions asks, and what its answers mean here: parties (is the client there).
//! Asked before a transaction opens: no lock is held across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::parties::v1::{GetPartyRequest, GetPersonRequest, PartyKind};
use tonic::Code;
use uuid::Uuid;

use crate::{Interactions, domain::ParticipantKind};

/// A client the parties service knows: its ids (a consumer's party and natural person both) and
/// whether it is an organization, whose history is the company's rather than personal data.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: Uuid,
    pub linked: Option<Uuid>,
    pub organization: bool,
}

impl Interactions {
    /// Every party and person must be one of the parties service; each that is not is named by
    /// its `field`. Each is asked once, however often it is named.
    pub(crate) async fn require_clients(
        &self,
        clients: &[(String, ParticipantKind, Uuid)],
    ) -> Result<Vec<Client>> {
        let mut v = FieldViolations::new();
        let mut found: Vec<Client> = Vec::new();
        for (field, kind, id) in clients {
            if found.iter().any(|c| c.id == *id) {
                continue;
            }
            let client = match kind {
                ParticipantKind::Person => {
                    let request = GetPersonRequest { id: id.to_string() };
                    self.parties
                        .clone()
                        .get_person(request)
                        .await
                        .map(|person| {
                            let person = person.into_inner();
                            Client {
                                id: *id,
                                linked: person.natural_party_id.parse().ok(),
                                organization: false,
                            }
                        })
                }
                _ => {
                    let request = GetPartyRequest { id: id.to_string() };
                    self.parties.clone().get_party(request).await.map(|party| {
                        let party = party.into_inner();
                        Client {
                            id: *id,
                            linked: party.person_id.parse().ok(),
                            organization: party.kind() == PartyKind::Organization,
                        }
                    })
                }
            };
            match client {
                Ok(client) => found.push(client),
                Err(status) if status.code() == Code::NotFound => {
                    v.add(field, format!("is not a {kind} of the parties service"))
                }
                Err(status) => return Err(peer_error("parties", status)),
            }
        }
        v.finish()?;
        Ok(found)
    }
}
