//! Interactions: contacts with clients on every channel, recorded when or after they happen.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, mask_paths, optional_time, optional_uuid, required},
    store::Page,
};
use crm_proto::crm::interactions::v1::*;
use serde::Serialize;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{
    Interactions, convert,
    domain::{self, ParticipantKind},
    events, peers, privacy,
    store::interactions::{self as store, Filter, InteractionRow},
};

/// What UpdateInteraction may change: what was said and done, not who, when or how.
const EDITABLE: &[&str] = &[
    "subject",
    "body",
    "outcome",
    "duration_seconds",
    "links",
    "attachments",
    "recording_reference",
];

impl Interactions {
    pub async fn record_interaction(
        &self,
        caller: &str,
        req: RecordInteractionRequest,
    ) -> Result<Interaction> {
        // A replay is answered without asking parties again.
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.interaction.clone(), "interaction", &mut v);
        let channel = domain::Channel::require(input.channel, "interaction.channel", &mut v);
        let direction =
            domain::Direction::require(input.direction, "interaction.direction", &mut v);
        let occurred_at =
            optional_time(input.occur_time.as_ref(), "interaction.occur_time", &mut v);
        v.check(
            input.occur_time.is_some(),
            "interaction.occur_time",
            "is required: when the contact happened",
        );
        v.check(
            occurred_at.is_none_or(|at| at <= Utc::now() + chrono::TimeDelta::days(1)),
            "interaction.occur_time",
            "is in the future: record a contact when it has happened",
        );
        let participants = domain::participants(&input.participants, &mut v);
        let mut row = InteractionRow {
            id: Uuid::now_v7(),
            channel,
            direction,
            subject: String::new(),
            body: String::new(),
            occurred_at: occurred_at.unwrap_or_else(Utc::now),
            duration_seconds: 0,
            outcome: String::new(),
            participants: Json(participants),
            links: Json(Vec::new()),
            attachments: Json(Vec::new()),
            dialled_number: input.dialled_number.trim().to_owned(),
            recording_reference: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
            message_id: None,
            thread_id: None,
        };
        for path in EDITABLE {
            set_field(&mut row, &input, path, &mut v);
        }
        v.finish()?;
        let clients: Vec<(String, ParticipantKind, Uuid)> = row
            .participants
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let (kind, id) = p.client()?;
                Some((format!("interaction.participants[{i}].id"), kind, id))
            })
            .collect();
        let clients = self.require_clients(&clients).await?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        privacy::guard(&mut tx, &peers::client_ids(&clients)).await?;
        store::insert(&mut tx, &row, &clients).await?;
        let interaction = answer(&mut tx, row.id).await?;
        events::interaction_recorded(&mut tx, &interaction).await?;
        claim.commit(tx, &interaction).await?;
        Ok(interaction)
    }

    pub async fn get_interaction(&self, req: GetInteractionRequest) -> Result<Interaction> {
        let id = request::id(&req.id, "id")?;
        answer(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_interaction(
        &self,
        caller: &str,
        req: UpdateInteractionRequest,
    ) -> Result<Interaction> {
        let mut v = FieldViolations::new();
        let input = required(req.interaction.clone(), "interaction", &mut v);
        let id = request::uuid(&input.id, "interaction.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        // Who it was with never changes: their erasure lock comes before the row's, as an
        // erasure takes them, and an erased contact takes no new words.
        let with: Vec<Uuid> = store::get(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Interaction", id))?
            .participants
            .iter()
            .filter_map(|p| p.id.parse().ok())
            .collect();
        privacy::guard(&mut tx, &with).await?;
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Interaction", id))?;
        check_etag("interaction", &input.etag, row.version)?;
        let mut v = FieldViolations::new();
        for path in paths {
            set_field(&mut row, &input, path, &mut v);
        }
        v.finish()?;
        store::update(&mut tx, &row, caller).await?;
        let interaction = answer(&mut tx, id).await?;
        events::interaction_updated(&mut tx, &interaction).await?;
        claim.commit(tx, &interaction).await?;
        Ok(interaction)
    }

    pub async fn list_interactions(
        &self,
        req: ListInteractionsRequest,
    ) -> Result<ListInteractionsResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(
            &'a str,
            &'a str,
            i32,
            Option<(i64, i32)>,
            Option<(i64, i32)>,
            &'a str,
        );
        let mut v = FieldViolations::new();
        let filters = Filters(
            &req.party_id,
            &req.person_id,
            req.channel,
            req.occurred_after.map(|t| (t.seconds, t.nanos)),
            req.occurred_before.map(|t| (t.seconds, t.nanos)),
            &req.thread_id,
        );
        let page: Page<(chrono::DateTime<Utc>, Uuid)> =
            Page::new(req.page_size, &req.page_token, &filters, &mut v);
        // A token is only as honest as its sender: its time must be one the database holds.
        v.check(
            page.after.is_none_or(|(at, _)| request::in_range(at)),
            "page_token",
            "is not a token from this list with these filters",
        );
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        let person = optional_uuid(&req.person_id, "person_id", &mut v);
        v.check(
            party.is_none() || person.is_none(),
            "person_id",
            "list by a party or by a person, not both",
        );
        let filter = Filter {
            client: party.or(person),
            channel: domain::Channel::optional(req.channel, "channel", &mut v),
            after: optional_time(req.occurred_after.as_ref(), "occurred_after", &mut v),
            before: optional_time(req.occurred_before.as_ref(), "occurred_before", &mut v),
            thread: optional_uuid(&req.thread_id, "thread_id", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| (last.occurred_at, last.id));
        Ok(ListInteractionsResponse {
            interactions: rows.iter().map(convert::interaction).collect(),
            next_page_token,
        })
    }
}

/// Sets one editable field of `row` from `input`, checked; violations name `interaction.<path>`.
fn set_field(row: &mut InteractionRow, input: &Interaction, path: &str, v: &mut FieldViolations) {
    let field = format!("interaction.{path}");
    match path {
        "subject" => row.subject = input.subject.trim().to_owned(),
        "body" => row.body = input.body.trim_end().to_owned(),
        "outcome" => row.outcome = input.outcome.trim().to_owned(),
        "duration_seconds" => {
            v.check(
                (0..=7 * 24 * 3600).contains(&input.duration_seconds),
                field,
                "must be 0 to a week",
            );
            row.duration_seconds = input.duration_seconds;
        }
        "links" => row.links = Json(domain::links(&input.links, v)),
        "attachments" => {
            // Content kept for an attachment stays with it while it stays where it was.
            let before = std::mem::take(&mut row.attachments.0);
            let mut after = domain::attachments(&input.attachments, v);
            for (i, attachment) in after.iter_mut().enumerate() {
                attachment.stored = before.get(i).is_some_and(|b| {
                    b.stored && !b.sha256.is_empty() && b.sha256 == attachment.sha256
                });
            }
            row.attachments = Json(after);
        }
        _ => row.recording_reference = input.recording_reference.trim().to_owned(),
    }
}

pub(crate) async fn answer(conn: &mut PgConnection, id: Uuid) -> Result<Interaction> {
    let row = store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Interaction", id))?;
    Ok(convert::interaction(&row))
}
