//! The services loyalty asks, and what their answers mean here: parties (is the member there and
//! active, is the person employed, who is in a base) and consent (may the party join). Peers are
//! asked before a transaction opens: no lock is held across a call to another service.

use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result, ServiceError},
};
use crm_proto::crm::{
    consent::v1::{CheckConsentRequest, Subject, SubjectKind},
    parties::v1::{GetPartyRequest, GetPersonRequest, ListPartiesRequest, PartyStatus},
};
use uuid::Uuid;

use crate::{Loyalty, domain::ENROLMENT_PURPOSE, error::Refusal};

impl Loyalty {
    /// The party must have granted the `loyalty_program` consent, as the consent service sees it
    /// now: a withdrawal stops every later enrolment.
    /// Returns the record that grants it, for the enrolment to compare with what loyalty heard since.
    pub(crate) async fn require_enrolment_consent(&self, party: Uuid) -> Result<Uuid> {
        let request = CheckConsentRequest {
            subject: Some(Subject {
                kind: SubjectKind::Party as i32,
                id: party.to_string(),
            }),
            purpose: ENROLMENT_PURPOSE.to_owned(),
        };
        let refused = |why: String| Refusal::consent_required(party, why).into();
        match self.consent.clone().check_consent(request).await {
            Ok(answer) if answer.get_ref().granted => {
                let record = answer
                    .into_inner()
                    .state
                    .and_then(|s| s.record)
                    .and_then(|r| r.id.parse().ok());
                // A grant without a readable record is told apart from none at all: any event
                // loyalty has heard of is newer.
                Ok(record.unwrap_or(Uuid::nil()))
            }
            Ok(answer) => {
                let status = answer
                    .into_inner()
                    .state
                    .map(|s| s.status().as_str_name().to_owned())
                    .unwrap_or_default();
                Err(refused(status))
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(refused("the purpose is not defined".into()))
            }
            Err(status) => Err(peer_error("consent", status)),
        }
    }

    /// The person must currently work for the member organization (asked of the parties service).
    pub(crate) async fn require_employee(&self, person: Uuid, organization: Uuid) -> Result<()> {
        let reply = self
            .parties
            .clone()
            .get_person(GetPersonRequest {
                id: person.to_string(),
            })
            .await;
        let person_record = match reply {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(ServiceError::not_found("Person", person));
            }
            Err(status) => return Err(peer_error("parties", status)),
        };
        let employed = person_record
            .employments
            .iter()
            .any(|e| e.end_date.is_none() && e.organization_party_id == organization.to_string());
        if !employed {
            return Err(Refusal::PersonNotEmployed {
                person,
                organization,
            }
            .into());
        }
        Ok(())
    }

    /// The party must exist and be active in the parties service.
    pub(crate) async fn require_active_party(&self, party: Uuid) -> Result<()> {
        let request = GetPartyRequest {
            id: party.to_string(),
        };
        match self.parties.clone().get_party(request).await {
            Ok(found) if found.get_ref().status() == PartyStatus::Archived => {
                Err(Refusal::PartyArchived { party }.into())
            }
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(ServiceError::not_found("Party", party))
            }
            Err(status) => Err(peer_error("parties", status)),
        }
    }

    /// Party ids of a base, page by page from the parties service.
    pub(crate) async fn base_members(&self, base: &str) -> Result<Vec<Uuid>> {
        let mut parties = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListPartiesRequest {
                base_id: base.to_owned(),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .parties
                .clone()
                .list_parties(request)
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                        let mut v = FieldViolations::new();
                        v.add("base_id", status.message().to_owned());
                        v.into()
                    }
                    _ => peer_error("parties", status),
                })?;
            let page = page.into_inner();
            parties.extend(
                page.parties
                    .iter()
                    .filter_map(|p| Uuid::parse_str(&p.id).ok()),
            );
            if page.next_page_token.is_empty() {
                return Ok(parties);
            }
            page_token = page.next_page_token;
        }
    }
}
