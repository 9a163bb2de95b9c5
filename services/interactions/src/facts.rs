//! What interactions reads from the other services' topics: the facts about clients that their
//! timelines show (loyalty points, tiers and memberships, consents, reward orders), who the
//! memberships and consumers' persons belong to, party merges, which move a merged party's
//! history to the survivor, and incidents opened at the service desk, which get a task.

use chrono::Utc;
use crm_kit::{
    consumer::{Event, HandleError, Handler},
    store::Tx,
};
use crm_proto::crm::{
    cases::v1::{SlaClockKind, Ticket, TicketChanged, TicketPriority, TicketType},
    consent::v1::{ConsentChanged, ConsentStatus, SubjectKind},
    loyalty::v1::{
        MembershipEnrolled, MembershipLeft, MembershipMoved, MembershipReactivated,
        MembershipSuspended, PointsAccrued, PointsExpired, PointsRedeemed, PointsReversed,
        TierChanged,
    },
    parties::v1::{
        PartiesMerged, PartyErased, PartyUpdated, PersonCreated, PersonErased, PersonUpdated,
    },
    rewards::v1::RewardOrderChanged,
};
use prost::{Message, Name};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    convert,
    domain::{TaskPriority, TaskStatus, TimelineKind},
    events, privacy,
    store::{
        occasions, tasks,
        timeline::{self as store, Fact},
    },
};

/// Person fields whose change changes the person's reminders.
const OCCASION_FIELDS: &[&str] = &["name", "birthday", "name_day", "anniversaries", "owner"];

/// The consumer group, and the inbox's consumer name.
pub const CONSUMER: &str = "interactions-timeline";

/// The topics it reads.
pub const TOPICS: &[&str] = &[
    "crm.parties.party.v1",
    "crm.parties.person.v1",
    "crm.loyalty.membership.v1",
    "crm.loyalty.points.v1",
    "crm.consent.consent.v1",
    "crm.rewards.order.v1",
    "crm.cases.ticket.v1",
];

pub struct Timeline;

impl Handler for Timeline {
    async fn handle(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        apply(tx, event).await
    }
}

fn decode<M: Message + Default>(event: &Event) -> Result<M, HandleError> {
    M::decode(event.payload.as_slice()).map_err(|e| HandleError::Reject(e.into()))
}

fn id(value: &str, what: &str) -> Result<Uuid, HandleError> {
    value
        .parse()
        .map_err(|e| HandleError::Reject(anyhow::anyhow!("{what} {value:?}: {e}")))
}

fn retry(error: sqlx::Error) -> HandleError {
    HandleError::Retry(error.into())
}

/// A fact of `event` (its id derived from the event's, so a redelivery is the same fact).
fn fact(event: &Event, kind: TimelineKind, source: &'static str, reference: &str) -> Fact {
    let digest = Sha256::digest(event.id.as_bytes());
    Fact {
        id: event
            .id
            .parse()
            .unwrap_or_else(|_| Uuid::from_slice(&digest[..16]).expect("16 bytes")),
        kind,
        // A time the timeline cannot page by is not taken as said.
        at: event
            .time
            .filter(|at| crm_kit::request::in_range(*at))
            .unwrap_or_else(Utc::now),
        source,
        event_type: event.event_type.clone(),
        reference: reference.to_owned(),
        summary: String::new(),
        attributes: Map::new(),
    }
}

fn with(mut fact: Fact, summary: String, attributes: Value) -> Fact {
    fact.summary = summary;
    if let Value::Object(map) = attributes {
        fact.attributes = map;
    }
    fact
}

async fn apply(tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
    let t = event.event_type.as_str();
    if t == TicketChanged::full_name() {
        return incident_task(tx, &decode(event)?).await;
    }
    if t == PartiesMerged::full_name() {
        let merged: PartiesMerged = decode(event)?;
        let from = id(&merged.merged_party_id, "merged party")?;
        let to = id(&merged.surviving_party_id, "surviving party")?;
        return merge(tx, from, to).await.map_err(retry);
    }
    if t == PersonCreated::full_name() {
        let created: PersonCreated = decode(event)?;
        let person = id(&created.person_id, "person")?;
        occasions::ask_refresh(tx, person).await.map_err(retry)?;
        if created.natural_party_id.is_empty() {
            return Ok(());
        }
        let party = id(&created.natural_party_id, "natural party")?;
        return natural_person(tx, party, person).await.map_err(retry);
    }
    if t == PersonUpdated::full_name() {
        let updated: PersonUpdated = decode(event)?;
        let person = id(&updated.person_id, "person")?;
        if updated
            .changed_fields
            .iter()
            .any(|f| OCCASION_FIELDS.contains(&f.as_str()))
        {
            occasions::ask_refresh(tx, person).await.map_err(retry)?;
        }
        return Ok(());
    }
    if t == PartyUpdated::full_name() {
        // A consumer's name is on its party.
        let updated: PartyUpdated = decode(event)?;
        let party = id(&updated.party_id, "party")?;
        if updated.changed_fields.iter().any(|f| f == "person_name")
            && let Some(person) = store::linked(tx, party).await.map_err(retry)?
        {
            occasions::ask_refresh(tx, person).await.map_err(retry)?;
        }
        return Ok(());
    }
    if t == PersonErased::full_name() {
        let erased: PersonErased = decode(event)?;
        let person = id(&erased.person_id, "person")?;
        return occasions::forget(tx, &[person]).await.map_err(retry);
    }
    if t == PartyErased::full_name() {
        // A consumer's person goes with its party.
        let erased: PartyErased = decode(event)?;
        let ids: Vec<Uuid> = [erased.party_id, erased.person_id]
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        return occasions::forget(tx, &ids).await.map_err(retry);
    }
    if t == MembershipEnrolled::full_name() {
        let enrolled: MembershipEnrolled = decode(event)?;
        let membership = id(&enrolled.membership_id, "membership")?;
        let party = id(&enrolled.party_id, "party")?;
        let fact = with(
            fact(
                event,
                TimelineKind::Membership,
                "loyalty",
                &enrolled.membership_id,
            ),
            "Enrolled in a loyalty program".into(),
            json!({ "membership_id": enrolled.membership_id, "program_id": enrolled.program_id }),
        );
        return enrol(tx, membership, party, &fact).await.map_err(retry);
    }
    if t == MembershipMoved::full_name() {
        let moved: MembershipMoved = decode(event)?;
        let membership = id(&moved.membership_id, "membership")?;
        let to = id(&moved.to_party_id, "party")?;
        store::lock_owner(tx, membership).await.map_err(retry)?;
        return store::set_membership_party(tx, membership, to)
            .await
            .map_err(retry);
    }
    let (membership, fact) = if t == PointsAccrued::full_name() {
        let e: PointsAccrued = decode(event)?;
        let account = e.account.unwrap_or_default();
        let summary = format!(
            "{} points accrued ({}); balance {}",
            e.points, e.operation_type, e.balance_after
        );
        let attributes = json!({ "points": e.points, "balance_after": e.balance_after,
            "operation_type": e.operation_type, "point_type": account.point_type });
        let fact = fact(event, TimelineKind::Points, "loyalty", &e.operation_id);
        (account.membership_id, with(fact, summary, attributes))
    } else if t == PointsRedeemed::full_name() {
        let e: PointsRedeemed = decode(event)?;
        let account = e.account.unwrap_or_default();
        let summary = format!(
            "{} points redeemed ({}); balance {}",
            e.points, e.operation_type, e.balance_after
        );
        let attributes = json!({ "points": e.points, "balance_after": e.balance_after,
            "operation_type": e.operation_type, "point_type": account.point_type });
        let fact = fact(event, TimelineKind::Points, "loyalty", &e.operation_id);
        (account.membership_id, with(fact, summary, attributes))
    } else if t == PointsReversed::full_name() {
        let e: PointsReversed = decode(event)?;
        let account = e.account.unwrap_or_default();
        let summary = format!(
            "{:+} points: operation reversed; balance {}",
            e.points, e.balance_after
        );
        let attributes = json!({ "points": e.points, "balance_after": e.balance_after,
            "reversed_operation_id": e.reversed_operation_id, "point_type": account.point_type });
        let fact = fact(event, TimelineKind::Points, "loyalty", &e.operation_id);
        (account.membership_id, with(fact, summary, attributes))
    } else if t == PointsExpired::full_name() {
        let e: PointsExpired = decode(event)?;
        let account = e.account.unwrap_or_default();
        let summary = format!("{} points expired; balance {}", e.points, e.balance_after);
        let attributes = json!({ "points": e.points, "balance_after": e.balance_after,
            "point_type": account.point_type });
        let fact = fact(event, TimelineKind::Points, "loyalty", &e.operation_id);
        (account.membership_id, with(fact, summary, attributes))
    } else if t == TierChanged::full_name() {
        let e: TierChanged = decode(event)?;
        let summary = match (e.old_tier.as_str(), e.new_tier.as_str()) {
            ("", new) => format!("Tier {new} reached"),
            (old, "") => format!("Tier {old} lost"),
            (old, new) => format!("Tier changed from {old} to {new}"),
        };
        let attributes = json!({ "old_tier": e.old_tier, "new_tier": e.new_tier,
            "qualifying_points": e.qualifying_points });
        let fact = fact(event, TimelineKind::Tier, "loyalty", &e.membership_id);
        (e.membership_id, with(fact, summary, attributes))
    } else if t == MembershipSuspended::full_name() {
        let e: MembershipSuspended = decode(event)?;
        let fact = fact(event, TimelineKind::Membership, "loyalty", &e.membership_id);
        let summary = "Loyalty membership suspended".to_owned();
        (e.membership_id, with(fact, summary, json!({})))
    } else if t == MembershipReactivated::full_name() {
        let e: MembershipReactivated = decode(event)?;
        let fact = fact(event, TimelineKind::Membership, "loyalty", &e.membership_id);
        let summary = "Loyalty membership reactivated".to_owned();
        (e.membership_id, with(fact, summary, json!({})))
    } else if t == MembershipLeft::full_name() {
        let e: MembershipLeft = decode(event)?;
        let fact = fact(event, TimelineKind::Membership, "loyalty", &e.membership_id);
        let summary = "Left the loyalty program".to_owned();
        (e.membership_id, with(fact, summary, json!({})))
    } else if t == ConsentChanged::full_name() {
        let e: ConsentChanged = decode(event)?;
        let subject = e.subject.clone().unwrap_or_default();
        if !matches!(subject.kind(), SubjectKind::Party | SubjectKind::Person) {
            return Ok(());
        }
        let owner = id(&subject.id, "consent subject")?;
        let status = match e.status() {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Withdrawn => "withdrawn",
            ConsentStatus::Expired => "expired",
            _ => return Ok(()),
        };
        let fact = with(
            fact(event, TimelineKind::Consent, "consent", &e.record_id),
            format!("Consent to {} {status}", e.purpose),
            json!({ "purpose": e.purpose, "status": status }),
        );
        return about(tx, owner, &fact).await.map_err(retry);
    } else if t == RewardOrderChanged::full_name() {
        let e: RewardOrderChanged = decode(event)?;
        let order = e.order.unwrap_or_default();
        let owner = id(&order.party_id, "order party")?;
        let fact = with(
            fact(event, TimelineKind::RewardOrder, "rewards", &order.id),
            format!("Reward order {}: {} points", e.change, order.points),
            json!({ "change": e.change, "status": order.status().as_str_name(),
                "points": order.points }),
        );
        return about(tx, owner, &fact).await.map_err(retry);
    } else {
        // Events of these topics a timeline does not show (cards, holds, party changes...).
        return Ok(());
    };
    let membership = id(&membership, "membership")?;
    store::lock_owner(tx, membership).await.map_err(retry)?;
    match store::membership_party(tx, membership)
        .await
        .map_err(retry)?
    {
        Some(party) => about(tx, party, &fact).await.map_err(retry),
        // Whose it is arrives on another topic: kept under the membership until then.
        None => store::record_fact(tx, &fact, &[membership])
            .await
            .map_err(retry),
    }
}

/// `fact` in the timeline of `owner` and of its linked id (a consumer's party and person),
/// unless they were erased: what arrives about them afterwards is not kept.
async fn about(tx: &mut Tx, owner: Uuid, fact: &Fact) -> sqlx::Result<()> {
    store::lock_owner(tx, owner).await?;
    let mut owners = vec![owner];
    owners.extend(store::linked(tx, owner).await?);
    if privacy::erased(tx, &owners).await? {
        return Ok(());
    }
    store::record_fact(tx, fact, &owners).await
}

/// The membership is `party`'s: its facts so far go to the party's timeline (or nowhere, when the
/// party was erased). Timeline locks first, then the erasure locks, as every path takes them.
async fn enrol(tx: &mut Tx, membership: Uuid, party: Uuid, fact: &Fact) -> sqlx::Result<()> {
    store::lock_owner(tx, membership).await?;
    store::lock_owner(tx, party).await?;
    store::set_membership_party(tx, membership, party).await?;
    let mut owners = vec![party];
    owners.extend(store::linked(tx, party).await?);
    if privacy::erased(tx, &owners).await? {
        return store::forget_owner(tx, membership).await;
    }
    for owner in &owners[1..] {
        store::copy(tx, membership, *owner, false).await?;
    }
    store::copy(tx, membership, party, true).await?;
    store::record_fact(tx, fact, &owners).await
}

/// A consumer's party and natural person share one timeline: each gets the other's.
async fn natural_person(tx: &mut Tx, party: Uuid, person: Uuid) -> sqlx::Result<()> {
    store::lock_owner(tx, party).await?;
    store::lock_owner(tx, person).await?;
    if privacy::erased(tx, &[party, person]).await? {
        return Ok(());
    }
    store::set_natural_person(tx, party, person).await?;
    store::copy(tx, party, person, false).await?;
    store::copy(tx, person, party, false).await
}

/// The merged party's history becomes the survivor's: its timeline, its contacts, notes and
/// tasks, and its loyalty memberships' future facts. The contacts still name the merged party
/// among their participants: that is who the contact was with.
async fn merge(tx: &mut Tx, from: Uuid, to: Uuid) -> sqlx::Result<()> {
    store::lock_owner(tx, to).await?;
    if privacy::erased(tx, &[to]).await? {
        return Ok(());
    }
    if let Some(person) = store::linked(tx, to).await? {
        store::copy(tx, from, person, false).await?;
    }
    store::copy(tx, from, to, true).await?;
    sqlx::query(
        "INSERT INTO interaction_clients (interaction_id, client_id, client_kind, linked_id,
             occurred_at)
         SELECT interaction_id, $2, client_kind, linked_id, occurred_at
           FROM interaction_clients WHERE client_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    for statement in [
        "DELETE FROM interaction_clients WHERE client_id = $1",
        "UPDATE interaction_clients SET linked_id = $2 WHERE linked_id = $1",
        "UPDATE notes SET party_id = $2 WHERE party_id = $1",
        "UPDATE notes SET client_ids = array_replace(client_ids, $1, $2) WHERE $1 = ANY(client_ids)",
        "UPDATE tasks SET party_id = $2 WHERE party_id = $1",
        "UPDATE tasks SET client_ids = array_replace(client_ids, $1, $2) WHERE $1 = ANY(client_ids)",
        "UPDATE memberships SET party_id = $2 WHERE party_id = $1",
    ] {
        sqlx::query(statement)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// An incident gets a task for its owner (else its group) the moment it opens, due when its
/// first response is: the task takes the ticket's id, so a redelivery finds it made. Nothing is
/// made for a client who was erased, nor for an incident opened more than a day before it is read
/// (the topic's history, replayed when this consumer first subscribes to it). The task is done
/// once the ticket is answered, resolved or closed.
async fn incident_task(tx: &mut Tx, changed: &TicketChanged) -> Result<(), HandleError> {
    let Some(ticket) = changed.ticket.as_ref() else {
        return Ok(());
    };
    if ticket.r#type != TicketType::Incident as i32 {
        return Ok(());
    }
    match changed.change.as_str() {
        "opened" => {}
        "responded" | "resolved" | "closed" => return incident_handled(tx, ticket).await,
        _ => return Ok(()),
    }
    let opened = ticket
        .audit
        .as_ref()
        .and_then(|a| a.create_time.as_ref())
        .and_then(crm_kit::request::time);
    if opened.is_some_and(|at| at < Utc::now() - chrono::Duration::days(1)) {
        return Ok(());
    }
    let task_id = id(&ticket.id, "ticket")?;
    let party = id(&ticket.party_id, "ticket's party")?;
    store::lock_owner(tx, party).await.map_err(retry)?;
    if tasks::get(tx, task_id).await.map_err(retry)?.is_some() {
        return Ok(());
    }
    let mut clients = vec![party];
    clients.extend(store::linked(tx, party).await.map_err(retry)?);
    if privacy::erased(tx, &clients).await.map_err(retry)? {
        return Ok(());
    }
    let first_response = ticket
        .clocks
        .iter()
        .find(|c| c.kind() == SlaClockKind::FirstResponse)
        .and_then(|c| c.due_time.as_ref())
        .and_then(crm_kit::request::time);
    let assignee = [&ticket.owner, &ticket.group]
        .into_iter()
        .find(|a| !a.is_empty())
        .map_or("service-desk", |a| a.as_str());
    let now = Utc::now();
    let row = tasks::TaskRow {
        id: task_id,
        title: format!("Incident {}: first response", ticket.id),
        description: format!(
            "Service desk ticket {} (an incident) waits for its first response.",
            ticket.id
        ),
        assignee: assignee.to_owned(),
        due_at: first_response,
        priority: match ticket.priority() {
            TicketPriority::Urgent => TaskPriority::Urgent,
            TicketPriority::High => TaskPriority::High,
            TicketPriority::Low => TaskPriority::Low,
            _ => TaskPriority::Normal,
        },
        status: TaskStatus::Open,
        reminder_times: Vec::new(),
        party_id: Some(party),
        person_id: None,
        client_ids: clients,
        interaction_id: None,
        case_id: None,
        completed_at: None,
        created_at: now,
        updated_at: now,
        created_by: "crm-interactions".to_owned(),
        updated_by: "crm-interactions".to_owned(),
        version: 1,
    };
    let row = tasks::insert(tx, &row).await.map_err(retry)?;
    events::task_changed(tx, &convert::task(&row), "created")
        .await
        .map_err(|e| HandleError::Retry(e.into()))
}

/// The incident's task is done: its first response was given (or the ticket ended without one).
async fn incident_handled(tx: &mut Tx, ticket: &Ticket) -> Result<(), HandleError> {
    let task_id = id(&ticket.id, "ticket")?;
    let Some(mut row) = tasks::lock(tx, task_id).await.map_err(retry)? else {
        return Ok(());
    };
    if row.status.is_final() {
        return Ok(());
    }
    row.status = TaskStatus::Done;
    row.completed_at = Some(Utc::now());
    let row = tasks::update(tx, &row, "crm-interactions")
        .await
        .map_err(retry)?;
    events::task_changed(tx, &convert::task(&row), "completed")
        .await
        .map_err(|e| HandleError::Retry(e.into()))
}
