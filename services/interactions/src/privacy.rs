//! The interactions service's side of data-subject requests, for a consumer (its party and its
//! natural person alike) or an organization's person. Export: every interaction the subject took
//! part in and every note about them. Erasure: the fact that a contact happened stays (when, on
//! which channel, which way, with whom by id, the subject under a pseudonym stored nowhere else),
//! but its words (subject, body, outcome), every participant's address and name, link references,
//! the number dialled, the recording, an e-mail's Message-ID and the attachments (and any content
//! kept) go, and the contact leaves the subject's
//! history; notes about the subject, or on their contacts, are deleted; tasks about them lose their
//! words and the link to them. An organization's history is the company's, not personal data, and
//! stays.

use crm_kit::{
    error::Result,
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use uuid::Uuid;

use crate::{
    convert,
    error::Refusal,
    events,
    store::{
        interactions as interaction_store,
        notes::NoteRow,
        occasions,
        tasks::{COLUMNS, TaskRow},
    },
};

pub struct InteractionsPrivacy;

/// Who erasures are recorded as (`updated_by`).
const ERASER: &str = "crm-privacy";

/// The subject's contacts; the other participants' addresses and names are theirs, not the
/// subject's, and stay out (the right of access does not reach other people's data).
const INTERACTIONS: &str = "SELECT i.id, i.channel, i.direction, i.subject, i.body,
        i.occurred_at, i.duration_seconds, i.outcome, i.links, i.attachments, i.dialled_number,
        i.recording_reference, i.message_id, i.thread_id, i.created_at, i.updated_at,
        (SELECT coalesce(jsonb_agg(CASE WHEN p->>'id' IN (
                                            SELECT $1::text
                                            UNION SELECT linked_id::text FROM interaction_clients
                                                   WHERE client_id = $1)
                                        THEN p ELSE p - 'address' - 'display_name' END
                                   ORDER BY n), '[]'::jsonb)
           FROM jsonb_array_elements(i.participants) WITH ORDINALITY x (p, n)) AS participants
    FROM interactions i
    WHERE i.id IN (SELECT interaction_id FROM interaction_clients
                    WHERE client_id = $1 OR client_id IN (
                        SELECT linked_id FROM interaction_clients WHERE client_id = $1))
    ORDER BY i.occurred_at, i.id";

const NOTES: &str = "SELECT * FROM notes WHERE $1 = ANY(client_ids) ORDER BY id";

const TASKS: &str = "SELECT * FROM tasks WHERE $1 = ANY(client_ids) ORDER BY id";

/// What other services published about the subject, as their timeline shows it.
const FACTS: &str = "SELECT kind, occurred_at, source, event_type, reference, summary, attributes
    FROM timeline WHERE owner_id = $1 AND source IS NOT NULL ORDER BY occurred_at, item_id";

/// The subject's birthday, name day and anniversaries, and whom they remind.
const OCCASIONS: &str = "SELECT kind, label, month, day, person_name, owner, next_on
    FROM occasions WHERE $1 = ANY(client_ids) ORDER BY kind, month, day";

impl Participant for InteractionsPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        Ok(Export::default()
            .table(tx, "interactions", INTERACTIONS, id)
            .await?
            .table(tx, "notes", NOTES, id)
            .await?
            .table(tx, "tasks", TASKS, id)
            .await?
            .table(tx, "timeline facts", FACTS, id)
            .await?
            .table(tx, "occasions", OCCASIONS, id)
            .await?)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        let id = subject.id();
        // The subject's ids: this one, and the one linked to it (a consumer's party and person).
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT $1::uuid
             UNION SELECT linked_id FROM interaction_clients
                    WHERE client_id = $1 AND linked_id IS NOT NULL
             UNION SELECT unnest(client_ids) FROM notes WHERE $1 = ANY(client_ids)
             UNION SELECT unnest(client_ids) FROM tasks WHERE $1 = ANY(client_ids)
             UNION SELECT unnest(client_ids) FROM occasions WHERE $1 = ANY(client_ids)
             UNION SELECT person_id FROM natural_persons WHERE party_id = $1
             UNION SELECT party_id FROM natural_persons WHERE person_id = $1",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        // Writes about the subject already under way finish first (and are erased here too);
        // later ones are refused.
        lock_subjects(tx, &ids).await?;
        let organization = subject_is_organization(tx, id).await?;
        if !organization {
            sqlx::query(
                "INSERT INTO erased_subjects (id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
            )
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        }
        // Reminders go before the tasks they make are erased, so none is made in between.
        occasions::forget(tx, &ids).await?;
        let (interactions, pseudonym) = anonymise_interactions(tx, &ids).await?;
        // Nothing more is written into what stays of the contacts either.
        sqlx::query("INSERT INTO erased_subjects (id) VALUES ($1)")
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?;
        let notes: Vec<NoteRow> = sqlx::query_as(
            "DELETE FROM notes WHERE client_ids && $1 OR interaction_id = ANY($2)
             RETURNING id, client_ids, party_id, person_id, interaction_id, task_id, case_id,
                 text, created_at, updated_at, created_by, updated_by, version",
        )
        .bind(&ids)
        .bind(&interactions)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM timeline WHERE item_id = ANY($1)")
            .bind(notes.iter().map(|n| n.id).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        // Tasks about the subject stay as work done, without their words or the client.
        let tasks: Vec<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE tasks SET title = '(erased)', description = '', party_id = NULL,
                 person_id = NULL, client_ids = '{{}}', updated_at = now(), updated_by = $2,
                 version = version + 1
              WHERE client_ids && $1 OR interaction_id = ANY($3)
              RETURNING {COLUMNS}"
        )))
        .bind(&ids)
        .bind(ERASER)
        .bind(&interactions)
        .fetch_all(&mut **tx)
        .await?;
        if !organization {
            forget_timelines(tx, &ids).await?;
        }
        for task in &tasks {
            events::task_changed(tx, &convert::task(task), "updated").await?;
        }
        // Downstream systems learn what changed, without the subject's id.
        for interaction in &interactions {
            if let Some(row) = interaction_store::get(tx, *interaction).await? {
                events::interaction_updated(tx, &convert::interaction(&row)).await?;
            }
        }
        for note in &notes {
            events::note_changed(tx, &convert::note(note), "deleted").await?;
        }
        let mut erasure = Erasure::default();
        if organization {
            erasure.found = true;
            erasure.retained.push(retained(
                "the organization's contact history",
                "an organization's dealings with the company are not personal data",
            ));
        }
        if interactions.is_empty() && notes.is_empty() && tasks.is_empty() {
            return Ok(erasure);
        }
        erasure.found = true;
        erasure.erased = vec![
            format!(
                "the subjects, bodies, outcomes, participants' addresses and names, link references, numbers dialled, recordings and attachments of {} interactions, and their place in the subject's history",
                interactions.len()
            ),
            format!("{} notes", notes.len()),
            format!(
                "the titles, descriptions and client of {} tasks",
                tasks.len()
            ),
        ];
        erasure.retained.push(retained(
            "that each contact happened: when, on which channel, which way, with whom by pseudonymous id",
            "the company's record of its dealings (legitimate interest); nothing in it identifies the subject",
        ));
        erasure.related_ids = interactions
            .into_iter()
            .chain(notes.iter().map(|n| n.id))
            .chain(tasks.iter().map(|t| t.id))
            .collect();
        Ok(erasure)
    }
}

/// Writes about `ids` and their erasure take turns: each holds these locks until it commits.
async fn lock_subjects(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<()> {
    crm_kit::store::lock_names(tx, "subject", ids).await
}

async fn subject_is_organization(tx: &mut Tx, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM interaction_clients
                         WHERE client_id = $1 AND client_kind = 'organization')",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}

/// Refuses a write about `clients` when one of them was erased here: the write was checked with
/// parties before the erasure and arrived after it. Holds off their erasure until it commits.
pub(crate) async fn guard(tx: &mut Tx, clients: &[Uuid]) -> Result<()> {
    match first_erased(tx, clients).await? {
        Some(id) => Err(Refusal::SubjectErased { id }.into()),
        None => Ok(()),
    }
}

/// Whether one of `ids` was erased here; holds off their erasure until the transaction ends.
pub(crate) async fn erased(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<bool> {
    Ok(first_erased(tx, ids).await?.is_some())
}

async fn first_erased(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<Option<Uuid>> {
    lock_subjects(tx, ids).await?;
    sqlx::query_scalar("SELECT id FROM erased_subjects WHERE id = ANY($1) LIMIT 1")
        .bind(ids)
        .fetch_optional(&mut **tx)
        .await
}

/// The subject's timelines go: what stays of their contacts and tasks is no one's history now,
/// their notes are gone, and the facts about them are the other services' to keep or erase. So
/// do the links from their loyalty memberships and between their party and person, and their
/// birthdays, name days and anniversaries.
async fn forget_timelines(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM timeline WHERE owner_id = ANY($1)",
        "DELETE FROM memberships WHERE party_id = ANY($1)",
        "DELETE FROM natural_persons WHERE party_id = ANY($1) OR person_id = ANY($1)",
        "DELETE FROM occasion_reminders WHERE person_id = ANY($1)",
    ] {
        sqlx::query(statement).bind(ids).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Strips the words and addresses of the subject's (non-organization) contacts, puts a pseudonym
/// in the subject's place among the participants, and takes the contacts out of the subject's
/// history; the contacts' ids, and the pseudonym.
async fn anonymise_interactions(tx: &mut Tx, ids: &[Uuid]) -> sqlx::Result<(Vec<Uuid>, Uuid)> {
    let pseudonym = Uuid::new_v4();
    let interactions: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE interactions i SET subject = '', body = '', outcome = '', dialled_number = '',
             recording_reference = '', attachments = '[]', message_id = NULL, updated_at = now(),
             updated_by = $3,
             version = version + 1,
             links = (
                 SELECT coalesce(jsonb_agg(jsonb_build_object('kind', l->>'kind', 'reference', '')
                                           ORDER BY n), '[]'::jsonb)
                 FROM jsonb_array_elements(i.links) WITH ORDINALITY x (l, n)),
             participants = (
                 SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'kind', p->>'kind',
                     'id', CASE WHEN p->>'id' = ANY($1::uuid[]::text[]) THEN $2::text
                                ELSE p->>'id' END,
                     'role', p->>'role') ORDER BY n), '[]'::jsonb)
                 FROM jsonb_array_elements(i.participants) WITH ORDINALITY x (p, n))
          WHERE i.id IN (SELECT interaction_id FROM interaction_clients
                          WHERE client_id = ANY($1) AND client_kind = 'person')
          RETURNING i.id",
    )
    .bind(ids)
    .bind(pseudonym)
    .bind(ERASER)
    .fetch_all(&mut **tx)
    .await?;
    // An e-mail's keys stay (hashes: they hold nothing of the subject) so that it is not imported
    // again; its attachments' content goes.
    sqlx::query("DELETE FROM attachment_contents WHERE interaction_id = ANY($1)")
        .bind(&interactions)
        .execute(&mut **tx)
        .await?;
    // Only the message's own key stays (so it is not imported again): what it replied to, its
    // subject's key and its fingerprint (its date and sender) go.
    sqlx::query(
        "UPDATE emails SET reply_keys = '{}', reference_keys = '{}', subject_key = '',
             fingerprint = ''
          WHERE interaction_id = ANY($1)",
    )
    .bind(&interactions)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM interaction_clients WHERE client_id = ANY($1) AND client_kind = 'person'",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok((interactions, pseudonym))
}
