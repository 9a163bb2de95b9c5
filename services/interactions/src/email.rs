//! E-mail import: raw RFC 5322 messages become the clients' e-mail interactions, threaded and
//! each imported once.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, optional_time},
};
use crm_proto::crm::interactions::v1::*;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Interactions,
    domain::{
        self, Channel, Direction, ParticipantKind, ParticipantRole,
        email::{self as mail, Email},
    },
    error::Refusal,
    events,
    interactions::answer,
    peers, privacy,
    store::{
        emails::{self as store, EmailKeys},
        interactions::{self as interactions_store, InteractionRow},
    },
};

/// How much raw e-mail the service imports at once, in KiB (128 MiB); more waits its turn.
pub const IMPORT_BUDGET_KIB: usize = 128 << 10;

/// The most addresses of one message matched to clients.
const MAX_MATCHED: usize = 50;

/// The most attachments' contents one import keeps, whatever each one's size: a message of many
/// small files should not fill the database.
const MAX_STORED_PER_MESSAGE: usize = 32 << 20;

impl Interactions {
    /// Imports `req.raw_message` for `caller`. Mailbox sync imports through here too, without a
    /// request id: a message is recognised by its Message-ID whoever brings it.
    pub async fn import_email(
        &self,
        caller: &str,
        req: ImportEmailRequest,
    ) -> Result<ImportEmailResponse> {
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        v.check(
            req.raw_message.len() <= self.limits.max_email_bytes,
            "raw_message",
            format!(
                "is {} bytes; at most {} are imported",
                req.raw_message.len(),
                self.limits.max_email_bytes
            ),
        );
        let own = own_addresses(&req.own_addresses, "own_addresses", &mut v);
        let received = optional_time(req.received_time.as_ref(), "received_time", &mut v);
        v.finish()?;
        let kib = (req.raw_message.len() >> 10).clamp(1, IMPORT_BUDGET_KIB);
        let turn = self
            .importing
            .clone()
            .acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
            .map_err(|error| ServiceError::Internal(error.into()))?;
        let raw = req.raw_message.clone();
        // Parsing a large message takes milliseconds of CPU: off the request threads. The turn
        // goes with the parse, which runs on even if the caller goes away, and comes back.
        let (parsed, _turn) = tokio::task::spawn_blocking(move || (mail::parse(&raw), turn))
            .await
            .map_err(|error| ServiceError::Internal(error.into()))?;
        let email = parsed.map_err(|reason| FieldViolations::single("raw_message", reason))?;
        // A Date that cannot be right (ahead by more than a day, or beyond what can be kept)
        // gives way to when the message arrived.
        let plausible = |at: &chrono::DateTime<Utc>| {
            request::in_range(*at) && *at <= Utc::now() + chrono::TimeDelta::days(1)
        };
        let sent_at = match (email.sent_at.filter(plausible), received) {
            (Some(at), _) => at,
            (None, Some(at)) if plausible(&at) => at,
            (None, Some(_)) => {
                return Err(FieldViolations::single(
                    "received_time",
                    "is in the future or beyond what can be kept",
                )
                .into());
            }
            (None, None) => {
                return Err(FieldViolations::single(
                    "raw_message",
                    "has no usable Date header (missing, or dated in the future); give \
                     received_time",
                )
                .into());
            }
        };
        // A message seen before is answered without asking parties again.
        let mut keys = keys(&email);
        if let Some(id) = store::imported(&mut *self.pool.acquire().await?, &mut keys).await? {
            return self.duplicate(caller, id, &req).await;
        }
        let row = self.interaction_of(caller, &email, &own, sent_at).await?;
        let clients: Vec<(String, ParticipantKind, Uuid)> = row
            .participants
            .iter()
            .filter_map(|p| p.client())
            .map(|(kind, id)| (String::from("raw_message"), kind, id))
            .collect();
        let clients = self.require_clients(&clients).await?;

        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        privacy::guard(&mut tx, &peers::client_ids(&clients)).await?;
        store::lock(&mut tx, &keys).await?;
        if let Some(id) = store::imported(&mut tx, &mut keys).await? {
            drop((tx, claim));
            return self.duplicate(caller, id, &req).await;
        }
        let thread = store::thread_of(&mut tx, &keys).await?.unwrap_or(row.id);
        let row = InteractionRow {
            thread_id: Some(thread),
            ..row
        };
        interactions_store::insert(&mut tx, &row, &clients).await?;
        store::insert(&mut tx, row.id, thread, &keys).await?;
        for (position, attachment) in email.attachments.iter().enumerate() {
            if row.attachments[position].stored {
                store::store_content(&mut tx, row.id, position, &attachment.content).await?;
            }
        }
        let interaction = answer(&mut tx, row.id).await?;
        events::interaction_recorded(&mut tx, &interaction).await?;
        let response = ImportEmailResponse {
            interaction: Some(interaction),
            duplicate: false,
        };
        claim.commit(tx, &response).await?;
        Ok(response)
    }

    /// The answer for a message imported before; a caller's `request_id` is claimed for it too.
    async fn duplicate(
        &self,
        caller: &str,
        id: Uuid,
        req: &ImportEmailRequest,
    ) -> Result<ImportEmailResponse> {
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, req);
        let response = ImportEmailResponse {
            interaction: Some(answer(&mut tx, id).await?),
            duplicate: true,
        };
        claim.commit(tx, &response).await?;
        Ok(response)
    }

    /// The interaction an e-mail becomes: its addresses matched to clients, refused when it names
    /// none.
    async fn interaction_of(
        &self,
        caller: &str,
        email: &Email,
        own: &[String],
        sent_at: chrono::DateTime<Utc>,
    ) -> Result<InteractionRow> {
        let outside: Vec<String> = email
            .addresses
            .iter()
            .map(|m| m.address.clone())
            .filter(|a| !own.contains(a))
            .fold(Vec::new(), |mut unique, a| {
                if !unique.contains(&a) {
                    unique.push(a);
                }
                unique
            });
        // Each address costs parties two lookups: a message to a crowd is matched by its first.
        let outside: Vec<String> = outside.into_iter().take(MAX_MATCHED).collect();
        let matched = self.match_addresses(&outside).await?;
        let participants: Vec<domain::Participant> = email
            .addresses
            .iter()
            .map(|mailbox| {
                let client = outside
                    .iter()
                    .position(|a| *a == mailbox.address)
                    .and_then(|i| matched[i]);
                let (kind, id) = match client {
                    Some((kind, id)) => (kind, id.to_string()),
                    None => (ParticipantKind::External, String::new()),
                };
                domain::Participant {
                    kind: kind.as_str().to_owned(),
                    id,
                    role: mailbox.role.as_str().to_owned(),
                    address: mailbox.address.clone(),
                    display_name: mailbox.name.clone(),
                }
            })
            .collect();
        if !participants.iter().any(|p| p.client().is_some()) {
            return Err(Refusal::NoKnownClient.into());
        }
        let from_us = email
            .addresses
            .iter()
            .any(|m| m.role == ParticipantRole::From && own.contains(&m.address));
        let mut budget = MAX_STORED_PER_MESSAGE;
        let attachments = email
            .attachments
            .iter()
            .map(|a| {
                let stored = a.content.len() <= self.limits.max_stored_attachment_bytes
                    && a.content.len() <= budget;
                if stored {
                    budget -= a.content.len();
                }
                domain::Attachment {
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    size_bytes: a.content.len() as i64,
                    sha256: mail::hex(&Sha256::digest(&a.content)),
                    reference: String::new(),
                    stored,
                }
            })
            .collect();
        let now = Utc::now();
        Ok(InteractionRow {
            id: Uuid::now_v7(),
            channel: Channel::Email,
            direction: if from_us {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            subject: email.subject.clone(),
            body: email.body.clone(),
            occurred_at: sent_at,
            duration_seconds: 0,
            outcome: String::new(),
            participants: Json(participants),
            links: Json(Vec::new()),
            attachments: Json(attachments),
            dialled_number: String::new(),
            recording_reference: String::new(),
            created_at: now,
            updated_at: now,
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
            message_id: Some(email.message_id.clone()),
            thread_id: None,
        })
    }

    pub async fn get_attachment_content(
        &self,
        req: GetAttachmentContentRequest,
    ) -> Result<AttachmentContent> {
        let id = request::id(&req.interaction_id, "interaction_id")?;
        let mut conn = self.pool.acquire().await?;
        let interaction = answer(&mut conn, id).await?;
        let attachment = usize::try_from(req.index)
            .ok()
            .and_then(|i| interaction.attachments.get(i))
            .ok_or_else(|| {
                FieldViolations::single("index", "is not the position of one of its attachments")
            })?;
        let content = match attachment.content_stored {
            true => store::content(&mut conn, id, req.index).await?,
            false => None,
        };
        let content = content.ok_or(Refusal::ContentNotKept {
            interaction: id,
            index: req.index,
        })?;
        Ok(AttachmentContent {
            attachment: Some(attachment.clone()),
            content,
        })
    }
}

/// The caller's own addresses (`field`), in the form e-mail addresses are compared in (lower case).
pub(crate) fn own_addresses(list: &[String], field: &str, v: &mut FieldViolations) -> Vec<String> {
    list.iter()
        .enumerate()
        .map(|(i, raw)| {
            let address = raw.trim().to_lowercase();
            v.check(
                address.len() <= 320
                    && address
                        .split_once('@')
                        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()),
                format!("{field}[{i}]"),
                "is not an e-mail address",
            );
            address
        })
        .collect()
}

fn keys(email: &Email) -> EmailKeys {
    // What relays, lists and gateways leave as it was: when, and from whom.
    let sent = email.sent_at.map(|at| at.timestamp()).unwrap_or_default();
    let from = email
        .addresses
        .iter()
        .find(|m| m.role == ParticipantRole::From)
        .map(|m| m.address.as_str())
        .unwrap_or_default();
    let fingerprint = format!("{sent}\n{from}");
    let message = mail::key(&email.message_id);
    EmailKeys {
        fingerprint: Sha256::digest(fingerprint.as_bytes()).to_vec(),
        lock: message.clone(),
        message,
        replies: email.in_reply_to.iter().map(|id| mail::key(id)).collect(),
        references: email.references.iter().map(|id| mail::key(id)).collect(),
        subject: mail::key(&mail::thread_subject(&email.subject)),
    }
}
