//! The parties service's side of data-subject requests: its export part, and erasure by
//! anonymisation. Rows stay (other records and services point at their ids) but nothing in them
//! identifies the person any more.

use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use crm_proto::crm::parties::v1::{PartyErased, PersonErased};
use uuid::Uuid;

use crate::{domain::PartyKind, events, store};

/// Who erasures are recorded as (`updated_by`).
const ERASER: &str = "crm-privacy";

pub struct PartiesPrivacy;

impl Participant for PartiesPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let (party, person) = resolve(tx, subject).await?;
        let party = party.map(|(id, _)| id);
        let none = Uuid::nil();
        let export = Export::default()
            .table(
                tx,
                "parties",
                "SELECT * FROM parties WHERE id = $1",
                party.unwrap_or(none),
            )
            .await?
            .table(
                tx,
                "party_bases",
                "SELECT * FROM party_bases WHERE party_id = $1",
                party.unwrap_or(none),
            )
            .await?
            .table(
                tx,
                "persons",
                "SELECT * FROM persons WHERE id = $1",
                person.unwrap_or(none),
            )
            .await?
            .table(
                tx,
                "employments",
                "SELECT * FROM employments WHERE person_id = $1",
                person.unwrap_or(none),
            )
            .await?;
        Ok(export)
    }

    async fn erase(
        &self,
        tx: &mut Tx,
        subject: Subject,
        request_id: Uuid,
    ) -> anyhow::Result<Erasure> {
        let (party, person) = resolve(tx, subject).await?;
        let mut erasure = Erasure {
            found: party.is_some() || person.is_some(),
            ..Erasure::default()
        };
        if let Some((id, kind)) = &party {
            if *kind == PartyKind::Organization {
                erasure.retained.push(retained(
                    format!("organization party {id}"),
                    "an organization's data is not personal data (GDPR art. 4(1)); its people are erased by their person ids",
                ));
                return Ok(erasure);
            }
            erasure.erased.push(format!(
                "party {id}: names, tax id, registration numbers, tags, custom fields, contact points, addresses"
            ));
        }
        if let Some(id) = person {
            erasure.erased.push(format!(
                "person {id}: names, private contact points, home addresses, gender, profession, education, birthday, name day, anniversaries, family, hobbies, interests, remarks, custom fields; business contact points, positions and departments of their employments"
            ));
            erasure.retained.push(retained(
                format!("ids of person {id} and of the organizations that employed them"),
                "other records (invoices, loyalty accounts) refer to them; they identify no one once the person is anonymised",
            ));
        }
        let party = party.map(|(id, _)| id);
        let party_erased = match party {
            Some(id) => store::erase_party(tx, id, ERASER).await?,
            None => false,
        };
        let person_erased = match person {
            Some(id) => store::erase_person(tx, id, ERASER).await?,
            None => false,
        };
        let person_id = person.map(|id| id.to_string()).unwrap_or_default();
        if let Some(party_id) = party.filter(|_| party_erased) {
            let event = PartyErased {
                party_id: party_id.to_string(),
                person_id,
                privacy_request_id: request_id.to_string(),
            };
            events::PARTY.enqueue(tx, party_id, &event).await?;
        } else if let Some(id) = person.filter(|_| person_erased) {
            let event = PersonErased {
                person_id: id.to_string(),
                privacy_request_id: request_id.to_string(),
            };
            events::PERSON.enqueue(tx, id, &event).await?;
        }
        erasure.related_ids = party.into_iter().chain(person).collect();
        Ok(erasure)
    }
}

/// The party (with its kind) and the person a subject stands for: a consumer party and its natural
/// person, or a B2B person (and their natural party, if they have one).
async fn resolve(
    tx: &mut Tx,
    subject: Subject,
) -> sqlx::Result<(Option<(Uuid, PartyKind)>, Option<Uuid>)> {
    let (party, person) = match subject {
        Subject::Party(id) => (Some(id), store::natural_person_of(tx, id).await?),
        Subject::Person(id) => match store::natural_party_of(tx, id).await? {
            Some(natural) => (natural, Some(id)),
            None => (None, None),
        },
    };
    let party = match party {
        Some(id) => store::lock_party_kind(tx, id).await?.map(|kind| (id, kind)),
        None => None,
    };
    Ok((party, person))
}
