//! The interactions service's side of data-subject requests. Export: every interaction the
//! subject took part in and every note about them. Erasure: the fact that a contact happened stays
//! (when, on which channel, which way, with whom by id, under a pseudonym for the subject), but its
//! words (subject, body, outcome), every participant's address and name, the number dialled, the
//! recording and the attachments go; notes about the subject are deleted.

use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use uuid::Uuid;

pub struct InteractionsPrivacy;

const INTERACTIONS: &str = "SELECT i.* FROM interactions i
    WHERE i.id IN (SELECT interaction_id FROM interaction_clients WHERE client_id = $1)
    ORDER BY i.occurred_at, i.id";

const NOTES: &str = "SELECT * FROM notes WHERE party_id = $1 OR person_id = $1 ORDER BY id";

impl Participant for InteractionsPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        Ok(Export::default()
            .table(tx, "interactions", INTERACTIONS, id)
            .await?
            .table(tx, "notes", NOTES, id)
            .await?)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        let id = subject.id();
        let pseudonym = Uuid::new_v4();
        // The subject's place in each participant list takes the pseudonym; every address and
        // name goes, the subject's and the others' (they are what the contact said to whom).
        let interactions: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE interactions i SET subject = '', body = '', outcome = '', dialled_number = '',
                 recording_reference = '', attachments = '[]', updated_at = now(),
                 participants = (
                     SELECT coalesce(jsonb_agg(jsonb_build_object(
                         'kind', p->>'kind',
                         'id', CASE WHEN p->>'id' = $1::text THEN $2::text ELSE p->>'id' END,
                         'role', p->>'role')), '[]'::jsonb)
                     FROM jsonb_array_elements(i.participants) p)
              WHERE i.id IN (SELECT interaction_id FROM interaction_clients WHERE client_id = $1)
              RETURNING i.id",
        )
        .bind(id)
        .bind(pseudonym)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("UPDATE interaction_clients SET client_id = $2 WHERE client_id = $1")
            .bind(id)
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?;
        let notes: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM notes WHERE party_id = $1 OR person_id = $1 RETURNING id",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        if interactions.is_empty() && notes.is_empty() {
            return Ok(Erasure::default());
        }
        Ok(Erasure {
            found: true,
            erased: vec![
                format!(
                    "the subjects, bodies, outcomes, participants' addresses and names, numbers dialled, recordings and attachments of {} interactions",
                    interactions.len()
                ),
                format!("{} notes", notes.len()),
            ],
            retained: vec![retained(
                "that each contact happened: when, on which channel, which way, with whom by pseudonymous id",
                "the company's record of its dealings (legitimate interest); nothing in it identifies the subject",
            )],
            related_ids: interactions.into_iter().chain(notes).collect(),
        })
    }
}
