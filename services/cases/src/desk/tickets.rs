//! Tickets: opened under the SLA policy their facts choose, answered, waiting, resolved,
//! reopened and closed, each step moving the clocks it concerns and no other, and raising the
//! alarms it finds due.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    client::peer_error,
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, mask_paths, optional_time, optional_uuid, required, text, uuid},
    store::{Idempotent, Page},
};
use crm_proto::crm::{
    cases::v1::*, loyalty::v1::GetMemberBenefitsRequest, parties::v1::GetPartyRequest,
};
use serde::Serialize;
use sqlx::{PgConnection, types::Json};
use tonic::Code;
use uuid::Uuid;

use super::{alarms, business_time};
use crate::{
    Cases, convert,
    domain::{
        alarms::ClockRecords,
        calendar::Calendar,
        sla::{Clocks, Happening},
        tickets::{self as rules, Channel, Conditions, Facts, Priority, Status, Step, TicketType},
    },
    error::Refusal,
    events,
    store::desk::{self as store, MessageRow, PolicyRow, ReturnTermsRow, TicketFilter, TicketRow},
};

/// What UpdateTicket may change.
const EDITABLE: &[&str] = &[
    "subject",
    "description",
    "priority",
    "owner",
    "group",
    "order_reference",
    "invoice_reference",
    "status",
];

/// What loyalty says of a member: their tier and, for a return, their terms.
struct Member {
    tier: String,
    terms: Option<ReturnTermsRow>,
}

impl Cases {
    pub async fn open_ticket(&self, caller: &str, req: OpenTicketRequest) -> Result<Ticket> {
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.ticket.clone(), "ticket", &mut v);
        let now = super::now();
        let mut row = TicketRow {
            id: Uuid::now_v7(),
            kind: TicketType::require(input.r#type, "ticket.type", &mut v),
            channel: Channel::from_i32(input.channel).unwrap_or(Channel::Web),
            priority: Priority::from_i32(input.priority).unwrap_or(Priority::Normal),
            subject: text(&input.subject, "ticket.subject", &mut v),
            description: input.description.trim_end().to_owned(),
            owner: input.owner.trim().to_owned(),
            group: input.group.trim().to_owned(),
            party_id: uuid(&input.party_id, "ticket.party_id", &mut v),
            person_id: optional_uuid(&input.person_id, "ticket.person_id", &mut v),
            membership_id: optional_uuid(&input.membership_id, "ticket.membership_id", &mut v),
            order_reference: input.order_reference.trim().to_owned(),
            invoice_reference: input.invoice_reference.trim().to_owned(),
            status: Status::New,
            sla_policy_id: None,
            clocks: Json(ClockRecords::default()),
            return_terms: None,
            resolution: String::new(),
            resolved_at: None,
            next_alarm_at: None,
            breached: false,
            due_at: None,
            created_at: now,
            updated_at: now,
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        v.check(
            input.channel == 0 || Channel::from_i32(input.channel).is_some(),
            "ticket.channel",
            "is not a channel",
        );
        v.check(
            input.priority == 0 || Priority::from_i32(input.priority).is_some(),
            "ticket.priority",
            "is not a priority",
        );
        v.finish()?;
        let bases = self.party_bases(row.party_id).await?;
        self.require_clients(
            None,
            &row.person_id.into_iter().collect::<Vec<_>>(),
            "ticket",
        )
        .await?;
        let member = match row.membership_id {
            Some(id) => {
                self.require_membership_of(row.party_id, id, "ticket.membership_id")
                    .await?;
                Some(self.member(id, row.kind).await?)
            }
            None => None,
        };
        let facts = Facts {
            kind: row.kind.as_str().to_owned(),
            priority: row.priority.as_str().to_owned(),
            bases,
            tier: member.as_ref().map(|m| m.tier.clone()).unwrap_or_default(),
        };
        row.return_terms = member.and_then(|m| m.terms).map(Json);
        let mut conn = self.pool.acquire().await?;
        let chosen = self.choose_policy(&mut conn, &facts).await?;
        drop(conn);
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let calendar = match &chosen {
            Some((policy, calendar)) => {
                row.sla_policy_id = Some(policy.id);
                let minutes = |m: i32| chrono::Duration::minutes(i64::from(m));
                let mut records = ClockRecords::new(
                    minutes(policy.first_response_minutes),
                    minutes(policy.next_update_minutes),
                    minutes(policy.resolution_minutes),
                );
                let mut clocks = records.clocks();
                clocks.apply(Happening::Opened, now, calendar);
                records.set(&clocks);
                row.clocks = Json(records);
                alarms::raise(&mut tx, &mut row, policy, calendar, now).await?;
                Some(calendar)
            }
            None => None,
        };
        store::insert_ticket(&mut tx, &row).await?;
        let ticket = convert::ticket(&row, calendar, now, &[]);
        events::ticket_changed(&mut tx, &ticket, "opened").await?;
        claim.commit(tx, &ticket).await?;
        Ok(ticket)
    }

    pub async fn get_ticket(&self, req: GetTicketRequest) -> Result<Ticket> {
        let id = request::id(&req.id, "id")?;
        let mut conn = self.pool.acquire().await?;
        let row = store::ticket(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Ticket", id))?;
        let (_, calendar) = self.policy_of(&mut conn, &row).await?;
        let messages = store::messages(&mut conn, id).await?;
        Ok(convert::ticket(
            &row,
            calendar.as_ref(),
            super::now(),
            &messages,
        ))
    }

    pub async fn update_ticket(&self, caller: &str, req: UpdateTicketRequest) -> Result<Ticket> {
        let mut v = FieldViolations::new();
        let input = required(req.ticket.clone(), "ticket", &mut v);
        let id = uuid(&input.id, "ticket.id", &mut v);
        let paths: Vec<String> = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let step = match Status::from_i32(input.status) {
            _ if !paths.iter().any(|p| p == "status") => None,
            Some(Status::WaitingForCustomer) => Some(Step::WaitForCustomer),
            Some(Status::WaitingForThirdParty) => Some(Step::WaitForThirdParty),
            Some(Status::Closed) => Some(Step::Close),
            _ => {
                v.add(
                    "ticket.status",
                    "must be WAITING_FOR_CUSTOMER, WAITING_FOR_THIRD_PARTY or CLOSED (the other steps have their own calls)",
                );
                None
            }
        };
        v.finish()?;
        self.transition(
            caller,
            &req,
            id,
            &input.etag,
            step,
            None,
            "updated",
            |row, v, _| {
                for path in &paths {
                    let field = format!("ticket.{path}");
                    match path.as_str() {
                        "subject" => row.subject = text(&input.subject, &field, v),
                        "description" => row.description = input.description.trim_end().to_owned(),
                        "priority" => row.priority = Priority::require(input.priority, &field, v),
                        "owner" => row.owner = input.owner.trim().to_owned(),
                        "group" => row.group = input.group.trim().to_owned(),
                        "order_reference" => {
                            row.order_reference = input.order_reference.trim().to_owned()
                        }
                        "invoice_reference" => {
                            row.invoice_reference = input.invoice_reference.trim().to_owned()
                        }
                        _ => {}
                    }
                }
            },
        )
        .await
    }

    pub async fn respond_to_ticket(
        &self,
        caller: &str,
        req: RespondToTicketRequest,
    ) -> Result<Ticket> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        let author = Author::try_from(req.author).unwrap_or(Author::Unspecified);
        v.check(
            author != Author::Unspecified,
            "author",
            "must be AGENT or CUSTOMER",
        );
        let words = text(&req.text, "text", &mut v);
        let then = match (author, TicketStatus::try_from(req.then)) {
            (_, Ok(TicketStatus::Unspecified)) => None,
            (Author::Agent, Ok(TicketStatus::WaitingForCustomer)) => Some(Step::WaitForCustomer),
            (Author::Agent, Ok(TicketStatus::WaitingForThirdParty)) => {
                Some(Step::WaitForThirdParty)
            }
            _ => {
                v.add(
                    "then",
                    "an agent's response may leave the ticket WAITING_FOR_CUSTOMER or WAITING_FOR_THIRD_PARTY",
                );
                None
            }
        };
        v.finish()?;
        let (step, change, word) = match author {
            Author::Customer => (Step::CustomerReply, "customer_replied", "customer"),
            _ => (Step::Respond, "responded", "agent"),
        };
        let message = Some((word, words));
        let steps = std::iter::once(step).chain(then);
        self.transition(
            caller,
            &req,
            id,
            &req.etag,
            steps,
            message,
            change,
            |_, _, _| {},
        )
        .await
    }

    pub async fn resolve_ticket(&self, caller: &str, req: ResolveTicketRequest) -> Result<Ticket> {
        let id = request::id(&req.id, "id")?;
        let resolution = req.resolution.trim_end().to_owned();
        self.transition(
            caller,
            &req,
            id,
            &req.etag,
            Some(Step::Resolve),
            None,
            "resolved",
            |row, _, now| {
                row.resolution = resolution;
                row.resolved_at = Some(now);
            },
        )
        .await
    }

    pub async fn reopen_ticket(&self, caller: &str, req: ReopenTicketRequest) -> Result<Ticket> {
        let id = request::id(&req.id, "id")?;
        let message = Some(req.reason.trim())
            .filter(|r| !r.is_empty())
            .map(|reason| ("agent", reason.to_owned()));
        self.transition(
            caller,
            &req,
            id,
            &req.etag,
            Some(Step::Reopen),
            message,
            "reopened",
            |row, _, _| {
                row.resolved_at = None;
            },
        )
        .await
    }

    pub async fn list_tickets(&self, req: ListTicketsRequest) -> Result<ListTicketsResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(i32, &'a str, &'a str, &'a str, bool, Option<(i64, i32)>);
        let mut v = FieldViolations::new();
        let due = req.due_before.as_ref().map(|t| (t.seconds, t.nanos));
        let filters = Filters(
            req.status,
            &req.owner,
            &req.group,
            &req.party_id,
            req.breached,
            due,
        );
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let filter = TicketFilter {
            status: Status::optional(req.status, "status", &mut v),
            owner: given(&req.owner),
            group: given(&req.group),
            party: optional_uuid(&req.party_id, "party_id", &mut v),
            breached: req.breached,
            due_before: optional_time(req.due_before.as_ref(), "due_before", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::tickets(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let now = super::now();
        let policies = self.policies_of(&mut conn, &rows).await?;
        let calendar_of = |row: &TicketRow| {
            let policy = row.sla_policy_id.and_then(|id| policies.get(&id));
            policy.map(|(_, calendar)| calendar)
        };
        let tickets = rows
            .iter()
            .map(|row| convert::ticket(row, calendar_of(row), now, &[]))
            .collect();
        Ok(ListTicketsResponse {
            tickets,
            next_page_token,
        })
    }

    /// Steps of a ticket (or none: an edit), its clocks moved, alarms raised, written, told.
    #[allow(clippy::too_many_arguments)]
    async fn transition<Q: Idempotent + prost::Message>(
        &self,
        caller: &str,
        req: &Q,
        id: Uuid,
        etag: &str,
        steps: impl IntoIterator<Item = Step>,
        message: Option<(&str, String)>,
        change: &str,
        edit: impl FnOnce(&mut TicketRow, &mut FieldViolations, DateTime<Utc>),
    ) -> Result<Ticket> {
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, req);
        let mut row = store::lock_ticket(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Ticket", id))?;
        check_etag("ticket", etag, row.version)?;
        // One moment for the whole step: its clocks, its message and its resolution agree.
        let now = super::now();
        let mut v = FieldViolations::new();
        edit(&mut row, &mut v, now);
        v.finish()?;
        let (policy, calendar) = self.policy_of(&mut tx, &row).await?;
        let mut clocks: Option<Clocks> = calendar.as_ref().map(|_| row.clocks.clocks());
        let mut change = change;
        for step in steps {
            let (status, happening) =
                rules::step(row.status, step).map_err(|refused| Refusal::TicketStep {
                    id,
                    status: refused.from.as_str(),
                    step: step_word(step),
                })?;
            if row.status == Status::Resolved && step == Step::CustomerReply {
                change = "reopened";
                row.resolved_at = None;
            }
            if step == Step::Close && row.status == Status::Resolved {
                change = "closed";
            }
            row.status = status;
            if let (Some(clocks), Some(calendar)) = (clocks.as_mut(), calendar.as_ref()) {
                clocks.apply(happening, now, calendar);
            }
        }
        if let Some((author, text)) = message {
            let message = MessageRow {
                author: author.to_owned(),
                text,
                at: now,
                recorded_by: caller.to_owned(),
            };
            store::add_message(&mut tx, id, &message).await?;
        }
        if let (Some(clocks), Some(policy), Some(calendar)) = (clocks, &policy, &calendar) {
            row.clocks.set(&clocks);
            alarms::raise(&mut tx, &mut row, policy, calendar, now).await?;
        }
        store::update_ticket(&mut tx, &row, caller).await?;
        let messages = store::messages(&mut tx, id).await?;
        let ticket = convert::ticket(&row, calendar.as_ref(), now, &messages);
        events::ticket_changed(&mut tx, &ticket, change).await?;
        claim.commit(tx, &ticket).await?;
        Ok(ticket)
    }

    /// A ticket's policy and the calendar its clocks run on; none without a policy.
    pub(crate) async fn policy_of(
        &self,
        conn: &mut PgConnection,
        ticket: &TicketRow,
    ) -> Result<(Option<PolicyRow>, Option<Calendar>)> {
        let mut policies = self.policies_of(conn, std::slice::from_ref(ticket)).await?;
        Ok(
            match ticket.sla_policy_id.and_then(|id| policies.remove(&id)) {
                Some((policy, calendar)) => (Some(policy), Some(calendar)),
                None => (None, None),
            },
        )
    }

    /// The policies of `tickets` with their calendars, keyed by policy id: two queries for any
    /// number of tickets.
    pub(crate) async fn policies_of(
        &self,
        conn: &mut PgConnection,
        tickets: &[TicketRow],
    ) -> Result<HashMap<Uuid, (PolicyRow, Calendar)>> {
        let mut ids: Vec<Uuid> = tickets.iter().filter_map(|t| t.sla_policy_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let policies = store::policies_by_id(conn, &ids).await?;
        let calendar_ids: Vec<Uuid> = policies.iter().map(|p| p.calendar_id).collect();
        let calendars: HashMap<Uuid, _> = store::calendars(conn, &calendar_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let mut found = HashMap::with_capacity(policies.len());
        for policy in policies {
            let id = policy.id;
            let calendar = calendars.get(&policy.calendar_id).ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!("calendar of SLA policy {id} is gone"))
            })?;
            let calendar = business_time(calendar).map_err(|e| {
                ServiceError::Internal(anyhow::anyhow!("calendar of SLA policy {id}: {e:?}"))
            })?;
            found.insert(id, (policy, calendar));
        }
        if let Some(gone) = ids.iter().find(|id| !found.contains_key(id)) {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "SLA policy {gone} is gone"
            )));
        }
        Ok(found)
    }

    /// The first policy in the stated order whose conditions the facts meet, else the default.
    async fn choose_policy(
        &self,
        conn: &mut PgConnection,
        facts: &Facts,
    ) -> Result<Option<(PolicyRow, Calendar)>> {
        let policies = store::policies(conn, None, i64::MAX).await?;
        let conditions: Vec<Conditions> = policies
            .iter()
            .map(|p| Conditions {
                kinds: p.conditions.kinds.clone(),
                priorities: p.conditions.priorities.clone(),
                bases: p.conditions.bases.clone(),
                tiers: p.conditions.tiers.clone(),
            })
            .collect();
        let Some(chosen) = rules::choose(&conditions, facts) else {
            return Ok(None);
        };
        let policy = policies[chosen].clone();
        let calendar = store::calendar(conn, policy.calendar_id)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!("a policy's calendar is gone"))
            })?;
        let calendar = business_time(&calendar)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a policy's calendar: {e:?}")))?;
        Ok(Some((policy, calendar)))
    }

    /// The party's bases (its segments), as the parties service has them; an unknown party is
    /// named.
    async fn party_bases(&self, party: Uuid) -> Result<Vec<String>> {
        let request = GetPartyRequest {
            id: party.to_string(),
        };
        match self.parties.clone().get_party(request).await {
            Ok(party) => Ok(party.into_inner().base_ids),
            Err(status) if status.code() == Code::NotFound => Err(FieldViolations::single(
                "ticket.party_id",
                "is not a party of the parties service",
            )
            .into()),
            Err(status) => Err(peer_error("parties", status)),
        }
    }

    /// The member's tier, and for a return the terms it gives, from loyalty.
    async fn member(&self, membership: Uuid, kind: TicketType) -> Result<Member> {
        let request = GetMemberBenefitsRequest {
            membership_id: membership.to_string(),
        };
        let benefits = match self.loyalty.clone().get_member_benefits(request).await {
            Ok(benefits) => benefits.into_inner(),
            Err(status) if status.code() == Code::NotFound => {
                return Err(FieldViolations::single(
                    "ticket.membership_id",
                    "is not a membership of the loyalty service",
                )
                .into());
            }
            Err(status) => return Err(peer_error("loyalty", status)),
        };
        let terms = (kind == TicketType::Return).then(|| {
            let given = benefits.benefits.clone().unwrap_or_default();
            ReturnTermsRow {
                tier: benefits.tier.clone(),
                return_window_days: given.return_window_days,
                free_return_shipping: given.free_return_shipping,
            }
        });
        Ok(Member {
            tier: benefits.tier,
            terms,
        })
    }
}

fn step_word(step: Step) -> &'static str {
    match step {
        Step::Respond => "respond",
        Step::CustomerReply => "take a customer's reply",
        Step::WaitForCustomer => "wait for the customer",
        Step::WaitForThirdParty => "wait for a third party",
        Step::Resolve => "resolve",
        Step::Reopen => "reopen",
        Step::Close => "close",
    }
}
