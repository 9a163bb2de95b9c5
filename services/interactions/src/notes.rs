//! Notes: what operators keep about a party or a person, optionally about one of its contacts,
//! tasks or cases too.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    privacy::forget_replies,
    request::{self, mask_paths, optional_uuid, required, text},
    store::Page,
};
use crm_proto::crm::interactions::v1::*;
use uuid::Uuid;

use crate::{
    Interactions, convert,
    domain::ParticipantKind,
    error::Refusal,
    events, peers, privacy,
    store::{
        interactions as interaction_store,
        notes::{self as store, About, NoteRow},
    },
};

impl Interactions {
    pub async fn add_note(&self, caller: &str, req: AddNoteRequest) -> Result<Note> {
        // A replay is answered without asking parties again.
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.note.clone(), "note", &mut v);
        let party = optional_uuid(&input.party_id, "note.party_id", &mut v);
        let person = optional_uuid(&input.person_id, "note.person_id", &mut v);
        let (kind, client, field) = match (party, person) {
            (Some(party), None) => (ParticipantKind::Party, party, "note.party_id"),
            (None, Some(person)) => (ParticipantKind::Person, person, "note.person_id"),
            _ => {
                v.add(
                    "note.party_id",
                    "a note is about a party or a person: name one of them",
                );
                (ParticipantKind::Party, Uuid::nil(), "note.party_id")
            }
        };
        let mut row = NoteRow {
            id: Uuid::now_v7(),
            client_ids: Vec::new(),
            party_id: party,
            person_id: person,
            interaction_id: optional_uuid(&input.interaction_id, "note.interaction_id", &mut v),
            task_id: optional_uuid(&input.task_id, "note.task_id", &mut v),
            case_id: optional_uuid(&input.case_id, "note.case_id", &mut v),
            text: text(&input.text, "note.text", &mut v),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        v.finish()?;
        let clients = self
            .require_clients(&[(field.to_owned(), kind, client)])
            .await?;
        row.client_ids = peers::client_ids(&clients);
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        privacy::guard(&mut tx, &row.client_ids).await?;
        if let Some(interaction) = row.interaction_id {
            let found = interaction_store::get(&mut tx, interaction)
                .await?
                .ok_or_else(|| ServiceError::not_found("Interaction", interaction))?;
            if !found
                .participants
                .iter()
                .any(|p| p.client() == Some((kind, client)))
            {
                return Err(Refusal::NoteNotOfInteraction { interaction }.into());
            }
        }
        let row = store::insert(&mut tx, &row).await?;
        let note = convert::note(&row);
        events::note_changed(&mut tx, &note, "added").await?;
        claim.commit(tx, &note).await?;
        Ok(note)
    }

    pub async fn update_note(&self, caller: &str, req: UpdateNoteRequest) -> Result<Note> {
        let mut v = FieldViolations::new();
        let input = required(req.note.clone(), "note", &mut v);
        let id = request::uuid(&input.id, "note.id", &mut v);
        mask_paths(req.update_mask.as_ref(), &["text"], &mut v);
        let text = text(&input.text, "note.text", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Note", id))?;
        check_etag("note", &input.etag, row.version)?;
        let row = store::set_text(&mut tx, id, &text, caller).await?;
        let note = convert::note(&row);
        events::note_changed(&mut tx, &note, "updated").await?;
        claim.commit(tx, &note).await?;
        Ok(note)
    }

    pub async fn delete_note(&self, caller: &str, req: DeleteNoteRequest) -> Result<Note> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Note", id))?;
        check_etag("note", &req.etag, row.version)?;
        store::delete(&mut tx, id).await?;
        // Earlier replies (AddNote, UpdateNote) hold the words the note no longer has.
        forget_replies(&mut tx, &[id]).await?;
        let note = convert::note(&row);
        events::note_changed(&mut tx, &note, "deleted").await?;
        // The reply to a replay names the deleted note, without its words.
        let answer = Note {
            text: String::new(),
            ..note
        };
        claim.commit(tx, &answer).await?;
        Ok(answer)
    }

    pub async fn list_notes(&self, req: ListNotesRequest) -> Result<ListNotesResponse> {
        let mut v = FieldViolations::new();
        let filters = (&req.party_id, &req.person_id, &req.interaction_id);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        let person = optional_uuid(&req.person_id, "person_id", &mut v);
        let interaction = optional_uuid(&req.interaction_id, "interaction_id", &mut v);
        let about = match (party, person, interaction) {
            (Some(id), None, None) => Some(About::Party(id)),
            (None, Some(id), None) => Some(About::Person(id)),
            (None, None, Some(id)) => Some(About::Interaction(id)),
            _ => {
                v.add(
                    "party_id",
                    "name one of party_id, person_id and interaction_id",
                );
                None
            }
        };
        v.finish()?;
        let Some(about) = about else {
            return Ok(ListNotesResponse::default());
        };
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, about, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListNotesResponse {
            notes: rows.iter().map(convert::note).collect(),
            next_page_token,
        })
    }
}
