//! The service interactions asks, and what its answers mean here: parties (is the client there).
//! Asked before a transaction opens: no lock is held across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result},
};
use crm_proto::crm::parties::v1::{
    GetPartyRequest, GetPersonRequest, PartyKind, SearchPartiesRequest, SearchPersonsRequest,
};
use futures::{StreamExt, stream};
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
    /// The organization a person works for now: its history shows its people's contacts too.
    pub employer: Option<Uuid>,
}

/// The ids the clients are known by: each one's, and its linked one's.
pub fn client_ids(clients: &[Client]) -> Vec<Uuid> {
    clients
        .iter()
        .flat_map(|c| [Some(c.id), c.linked])
        .flatten()
        .collect()
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
                            let current =
                                person.employments.first().filter(|e| e.end_date.is_none());
                            Client {
                                id: *id,
                                linked: person.natural_party_id.parse().ok(),
                                organization: false,
                                employer: current
                                    .and_then(|e| e.organization_party_id.parse().ok()),
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
                            employer: None,
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

    /// The person, else the party, whose e-mail address each of `addresses` is, when exactly one
    /// is: an address two clients share names neither. Asked a few at a time.
    pub(crate) async fn match_addresses(
        &self,
        addresses: &[String],
    ) -> Result<Vec<Option<(ParticipantKind, Uuid)>>> {
        // Owned futures: borrowed ones make the handler's future not provably Send.
        stream::iter(addresses.to_vec())
            .map(|address| {
                let this = self.clone();
                async move { this.match_address(&address).await }
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn match_address(&self, address: &str) -> Result<Option<(ParticipantKind, Uuid)>> {
        let persons = self
            .parties
            .clone()
            .search_persons(SearchPersonsRequest {
                email: address.to_owned(),
                page_size: 2,
                ..Default::default()
            })
            .await;
        let persons = match persons {
            Ok(found) => found.into_inner().persons,
            // An address parties does not take for one (it checks them its own way) is no one's.
            Err(status) if status.code() == Code::InvalidArgument => return Ok(None),
            Err(status) => return Err(peer_error("parties", status)),
        };
        if let [person] = persons.as_slice() {
            return Ok(person
                .id
                .parse()
                .ok()
                .map(|id| (ParticipantKind::Person, id)));
        }
        if persons.len() > 1 {
            return Ok(None);
        }
        let parties = self
            .parties
            .clone()
            .search_parties(SearchPartiesRequest {
                email: address.to_owned(),
                page_size: 2,
                ..Default::default()
            })
            .await
            .map_err(|status| peer_error("parties", status))?
            .into_inner()
            .parties;
        Ok(match parties.as_slice() {
            [party] => party.id.parse().ok().map(|id| (ParticipantKind::Party, id)),
            _ => None,
        })
    }
}
