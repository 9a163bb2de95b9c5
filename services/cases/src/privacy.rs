//! The cases service's side of data-subject requests. Export: the cases about the subject (as
//! their party or one of their persons) with their passage through the phases. Erasure: a case is
//! the company's record of its dealings and its amounts and dates stay for accounting, but its
//! words (title, description, the reason it was lost) go, and it no longer names the subject: a
//! random pseudonym that is stored nowhere else takes the party's place, and the person leaves
//! the case.

use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use uuid::Uuid;

pub struct CasesPrivacy;

const CASES: &str = "SELECT * FROM cases WHERE party_id = $1 OR $1 = ANY(person_ids) ORDER BY id";

const VISITS: &str = "SELECT v.* FROM phase_visits v JOIN cases c ON c.id = v.case_id
    WHERE c.party_id = $1 OR $1 = ANY(c.person_ids) ORDER BY v.case_id, v.entered_at";

impl Participant for CasesPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        Ok(Export::default()
            .table(tx, "cases", CASES, id)
            .await?
            .table(tx, "phase_visits", VISITS, id)
            .await?)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        let cases: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE cases SET title = '(erased)', description = '', lost_reason = '',
                 party_id = CASE WHEN party_id = $1 THEN $2 ELSE party_id END,
                 person_ids = array_remove(person_ids, $1), updated_by = 'crm-privacy',
                 updated_at = now(), version = version + 1
              WHERE party_id = $1 OR $1 = ANY(person_ids) RETURNING id",
        )
        .bind(subject.id())
        .bind(Uuid::new_v4())
        .fetch_all(&mut **tx)
        .await?;
        if cases.is_empty() {
            return Ok(Erasure::default());
        }
        Ok(Erasure {
            found: true,
            erased: vec![format!(
                "the titles, descriptions and lost reasons of {} cases, and their link to the subject",
                cases.len()
            )],
            retained: vec![retained(
                "cases' amounts, dates, owners and phases, no longer linked to the subject",
                "the company's record of its sales and projects (accounting and legitimate interest)",
            )],
            related_ids: cases,
        })
    }
}
