//! The services loyalty asks: parties (is the member there, is the person employed) and consent
//! (may the party join).

use crm_kit::error::{Result, ServiceError};
use crm_proto::crm::{
    consent::v1::{CheckConsentRequest, Subject, SubjectKind},
    parties::v1::GetPersonRequest,
};
use uuid::Uuid;

use crate::{Loyalty, domain::ENROLMENT_PURPOSE, error::Refusal};

impl Loyalty {
    /// The party must have granted the `loyalty_program` consent, as the consent service sees it
    /// now: a withdrawal stops every later enrolment.
    pub(crate) async fn require_enrolment_consent(&self, party: Uuid) -> Result<()> {
        let request = CheckConsentRequest {
            subject: Some(Subject {
                kind: SubjectKind::Party as i32,
                id: party.to_string(),
            }),
            purpose: ENROLMENT_PURPOSE.to_owned(),
        };
        let refused = |why: String| {
            Refusal::ConsentRequired {
                party,
                purpose: ENROLMENT_PURPOSE,
                why: why.to_string(),
            }
            .into()
        };
        match self.consent.clone().check_consent(request).await {
            Ok(answer) if answer.get_ref().granted => Ok(()),
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
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "the consent service did not answer");
                Err(ServiceError::Unavailable(
                    "the consent service is unavailable; retry later".into(),
                ))
            }
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
                return Err(ServiceError::NotFound("Person", person.to_string()));
            }
            Err(status) => return Err(parties_unavailable(status)),
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
}

pub(crate) fn parties_unavailable(status: tonic::Status) -> ServiceError {
    tracing::warn!(code = ?status.code(), message = status.message(), "the parties service did not answer");
    ServiceError::Unavailable("the parties service is unavailable; retry later".into())
}
