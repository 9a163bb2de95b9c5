//! The service desk through the public API with the suite around it: a ticket's three SLA clocks
//! each moved only by what concerns it (a response, waiting for the customer, their reply, a
//! resolution, a reopening), policies chosen in their stated order, near-breach and breach
//! alarms raised exactly once with their escalations, a return reading the member's terms from
//! loyalty, and an incident getting a task in interactions. Business time itself (breaks, holidays, DST, midnight) is tested in
//! `src/domain/calendar.rs`.

use std::time::Duration;

use crm_e2e::Suite;
use crm_proto::crm::{
    cases::v1::*,
    interactions::v1::{GetTaskRequest, TaskPriority, TaskStatus},
    loyalty::v1::{AssignTierRequest, DefineTierRequest, EnrollRequest, Tier, TierBenefits},
};
use crm_testkit::{eventually, read_topic, refusal_reason as reason, violated_fields as fields};
use prost::Message;

async fn calendar(suite: &Suite) -> Calendar {
    suite
        .desk_client()
        .create_calendar(CreateCalendarRequest {
            calendar: Some(Calendar {
                display_name: "Round the clock".into(),
                time_zone: "UTC".into(),
                always_open: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn escalation(
    clock: SlaClockKind,
    level: EscalationLevel,
    action: EscalationAction,
    to: &str,
) -> Escalation {
    Escalation {
        clock: clock as i32,
        level: level as i32,
        action: action as i32,
        to: to.into(),
    }
}

async fn policy(suite: &Suite, policy: SlaPolicy) -> SlaPolicy {
    suite
        .desk_client()
        .create_sla_policy(CreateSlaPolicyRequest {
            policy: Some(policy),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn clock(ticket: &Ticket, kind: SlaClockKind) -> &SlaClock {
    ticket.clocks.iter().find(|c| c.kind() == kind).unwrap()
}

/// Moves a ticket's clock back in time by `minutes`, as if they had passed, and lets the sweep
/// look at it now.
async fn age(suite: &Suite, ticket: &Ticket, kind: &str, minutes: i64) {
    sqlx::query(
        "UPDATE tickets SET clocks = jsonb_set(clocks, ARRAY[$2, 'running_since'],
                 to_jsonb((clocks->$2->>'running_since')::timestamptz - $3 * interval '1 minute')),
             next_alarm_at = now()
          WHERE id = $1::uuid",
    )
    .bind(&ticket.id)
    .bind(kind)
    .bind(minutes as f64)
    .execute(&mut suite.cases_db().await)
    .await
    .unwrap();
}

async fn alarms(suite: &Suite, count: usize, wait: Duration) -> Vec<SlaAlarm> {
    read_topic(&suite.broker.brokers(), "crm.cases.sla.v1", count, wait)
        .await
        .unwrap()
        .iter()
        .map(|r| SlaAlarm::decode(r.payload.as_slice()).unwrap())
        .collect()
}

#[tokio::test]
async fn clocks_run_on_their_own_and_each_alarm_is_raised_once() {
    let suite = Suite::start().await.unwrap();
    let anna = suite.consumer("Anna", "Kowalska", "anna@example.pl").await;
    let always = calendar(&suite).await;
    use SlaClockKind::*;
    let standard = policy(
        &suite,
        SlaPolicy {
            display_name: "Standard".into(),
            rank: 100,
            calendar_id: always.id.clone(),
            first_response_minutes: 60,
            next_update_minutes: 120,
            resolution_minutes: 480,
            escalations: vec![escalation(
                Resolution,
                EscalationLevel::NearBreach,
                EscalationAction::Notify,
                "desk-lead",
            )],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(standard.near_breach_percent, 80);
    let urgent = policy(
        &suite,
        SlaPolicy {
            display_name: "Urgent".into(),
            rank: 1,
            conditions: Some(SlaConditions {
                priorities: vec![TicketPriority::Urgent as i32],
                ..Default::default()
            }),
            calendar_id: always.id.clone(),
            first_response_minutes: 15,
            next_update_minutes: 30,
            resolution_minutes: 120,
            escalations: vec![escalation(
                FirstResponse,
                EscalationLevel::Breach,
                EscalationAction::Reassign,
                "tier-2",
            )],
            ..Default::default()
        },
    )
    .await;
    let mut desk = suite.desk_client();
    let listed = desk
        .list_sla_policies(ListSlaPoliciesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let order: Vec<&str> = listed
        .policies
        .iter()
        .map(|p| p.display_name.as_str())
        .collect();
    assert_eq!(order, ["Urgent", "Standard"]);
    let taken = desk
        .create_sla_policy(CreateSlaPolicyRequest {
            policy: Some(SlaPolicy {
                display_name: "Another default".into(),
                rank: 7,
                ..standard.clone()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&taken), "DEFAULT_SLA_POLICY_EXISTS");

    let open = |priority: TicketPriority, subject: &str| OpenTicketRequest {
        ticket: Some(Ticket {
            r#type: TicketType::Complaint as i32,
            channel: TicketChannel::Email as i32,
            priority: priority as i32,
            subject: subject.into(),
            party_id: anna.id.clone(),
            owner: "ola".into(),
            group: "desk".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ticket = desk
        .open_ticket(open(TicketPriority::Normal, "The fridge hums"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ticket.status(), ticket.sla_policy_id.as_str()),
        (TicketStatus::New, standard.id.as_str())
    );
    let running = |t: &Ticket| [FirstResponse, NextUpdate, Resolution].map(|k| clock(t, k).running);
    assert_eq!(running(&ticket), [true, false, true]);
    let opened = ticket.audit.as_ref().unwrap().create_time.unwrap();
    let due = clock(&ticket, FirstResponse).due_time.unwrap();
    assert_eq!(due.seconds - opened.seconds, 3600);

    // An answer meets the first response and starts the next update; resolution runs on.
    let answered = desk
        .respond_to_ticket(RespondToTicketRequest {
            id: ticket.id.clone(),
            author: Author::Agent as i32,
            text: "We are sending a technician.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.status(), TicketStatus::Open);
    assert_eq!(running(&answered), [false, true, true]);
    assert!(clock(&answered, FirstResponse).met_time.is_some());
    assert!(!clock(&answered, FirstResponse).breached);
    // Waiting for the customer pauses the update and the resolution.
    let waiting = desk
        .respond_to_ticket(RespondToTicketRequest {
            id: ticket.id.clone(),
            author: Author::Agent as i32,
            text: "When may he come?".into(),
            then: TicketStatus::WaitingForCustomer as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.status(), TicketStatus::WaitingForCustomer);
    assert_eq!(running(&waiting), [false, false, false]);
    assert!(clock(&waiting, Resolution).due_time.is_none());
    // Their reply resumes both.
    let replied = desk
        .respond_to_ticket(RespondToTicketRequest {
            id: ticket.id.clone(),
            author: Author::Customer as i32,
            text: "Tomorrow at 10.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replied.status(), TicketStatus::Open);
    assert_eq!(running(&replied), [false, true, true]);
    let resolved = desk
        .resolve_ticket(ResolveTicketRequest {
            id: ticket.id.clone(),
            resolution: "Compressor replaced.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status(), TicketStatus::Resolved);
    assert_eq!(running(&resolved), [false, false, false]);
    // The customer writes again: reopened, resolution goes on from where it stopped.
    let spent = clock(&resolved, Resolution).spent_seconds;
    let reopened = desk
        .respond_to_ticket(RespondToTicketRequest {
            id: ticket.id.clone(),
            author: Author::Customer as i32,
            text: "It hums again.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.status(), TicketStatus::Open);
    assert!(clock(&reopened, Resolution).running);
    assert!(clock(&reopened, Resolution).spent_seconds >= spent);
    assert_eq!(reopened.messages.len(), 4);
    assert_eq!(reopened.messages[3].author(), Author::Customer);

    // An urgent ticket gets the urgent policy; unanswered past its 15 minutes it breaches once,
    // and goes to tier 2.
    let hot = desk
        .open_ticket(open(TicketPriority::Urgent, "Smoke from the fridge"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hot.sla_policy_id, urgent.id);
    age(&suite, &hot, "first_response", 20).await;
    // The normal ticket's resolution is 80 % spent: a warning for the desk lead.
    age(&suite, &ticket, "resolution", 400).await;
    let raised = alarms(&suite, 2, Duration::from_secs(20)).await;
    let mut seen: Vec<(String, SlaClockKind, EscalationLevel, Vec<String>)> = raised
        .iter()
        .map(|a| {
            (
                a.ticket_id.clone(),
                a.clock(),
                a.level(),
                a.escalations.iter().map(|e| e.to.clone()).collect(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (
            hot.id.clone(),
            FirstResponse,
            EscalationLevel::Breach,
            vec!["tier-2".to_string()],
        ),
        (
            ticket.id.clone(),
            Resolution,
            EscalationLevel::NearBreach,
            vec!["desk-lead".to_string()],
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let hot_now = desk
        .get_ticket(GetTicketRequest { id: hot.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hot_now.group, "tier-2");
    assert!(clock(&hot_now, FirstResponse).breached);
    assert!(clock(&hot_now, FirstResponse).breach_announced);
    // Answering late does not announce the breach again; the sweep does not either.
    desk.respond_to_ticket(RespondToTicketRequest {
        id: hot.id.clone(),
        author: Author::Agent as i32,
        text: "Unplug it now.".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let breached = desk
        .list_tickets(ListTicketsRequest {
            breached: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = breached.tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [hot.id.as_str()]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(alarms(&suite, 3, Duration::from_secs(3)).await.len(), 2);

    // Steps a ticket's status does not allow are refused by reason.
    let closed_too_soon = desk
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                id: hot.id.clone(),
                status: TicketStatus::Closed as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&closed_too_soon), "TICKET_STATUS");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_return_reads_the_members_terms_and_gets_their_tiers_policy() {
    let suite = Suite::start().await.unwrap();
    let anna = suite.consumer("Anna", "Kowalska", "anna@example.pl").await;
    suite.loyalty_purpose().await;
    suite.consent_to(&anna.id, "loyalty_program", true).await;
    let program = suite.loyalty_program().await;
    let mut loyalty = suite.loyalty_client();
    loyalty
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "gold".into(),
                display_name: "Gold".into(),
                threshold: 1000,
                window_months: 12,
                benefits: Some(TierBenefits {
                    return_window_days: 60,
                    free_return_shipping: true,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let membership = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: anna.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    loyalty
        .assign_tier(AssignTierRequest {
            membership_id: membership.id.clone(),
            tier: "gold".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let always = calendar(&suite).await;
    let base = SlaPolicy {
        calendar_id: always.id.clone(),
        first_response_minutes: 240,
        next_update_minutes: 480,
        resolution_minutes: 2400,
        ..Default::default()
    };
    policy(
        &suite,
        SlaPolicy {
            display_name: "Default".into(),
            rank: 10,
            ..base.clone()
        },
    )
    .await;
    let gold = policy(
        &suite,
        SlaPolicy {
            display_name: "Gold returns".into(),
            rank: 5,
            conditions: Some(SlaConditions {
                types: vec![TicketType::Return as i32],
                loyalty_tiers: vec!["gold".into()],
                ..Default::default()
            }),
            first_response_minutes: 60,
            ..base.clone()
        },
    )
    .await;
    let mut desk = suite.desk_client();
    let ticket = desk
        .open_ticket(OpenTicketRequest {
            ticket: Some(Ticket {
                r#type: TicketType::Return as i32,
                subject: "Returning the freezer".into(),
                party_id: anna.id.clone(),
                membership_id: membership.id.clone(),
                order_reference: "ZAM/2026/117".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.sla_policy_id, gold.id);
    let terms = ticket.return_terms.unwrap();
    assert_eq!(
        (
            terms.tier.as_str(),
            terms.return_window_days,
            terms.free_return_shipping
        ),
        ("gold", 60, true)
    );

    let bad = desk
        .open_ticket(OpenTicketRequest {
            ticket: Some(Ticket {
                subject: " ".into(),
                party_id: "nope".into(),
                membership_id: uuid::Uuid::now_v7().to_string(),
                priority: 99,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "ticket.party_id",
            "ticket.priority",
            "ticket.subject",
            "ticket.type"
        ]
    );
    let bad_calendar = desk
        .create_calendar(CreateCalendarRequest {
            calendar: Some(Calendar {
                display_name: "Office".into(),
                time_zone: "Europe/Nowhere".into(),
                days: vec![WorkingDay {
                    weekday: 8,
                    periods: vec![WorkingPeriod {
                        start: "9:00".into(),
                        end: "25:00".into(),
                    }],
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad_calendar),
        ["calendar.days[0].weekday", "calendar.time_zone"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_incident_gets_a_task_for_its_owner_due_with_its_first_response() {
    let suite = Suite::start().await.unwrap();
    let anna = suite.consumer("Anna", "Kowalska", "anna@example.pl").await;
    let always = calendar(&suite).await;
    policy(
        &suite,
        SlaPolicy {
            display_name: "Standard".into(),
            rank: 1,
            calendar_id: always.id.clone(),
            first_response_minutes: 30,
            next_update_minutes: 60,
            resolution_minutes: 240,
            ..Default::default()
        },
    )
    .await;
    let ticket = suite
        .desk_client()
        .open_ticket(OpenTicketRequest {
            ticket: Some(Ticket {
                r#type: TicketType::Incident as i32,
                priority: TicketPriority::High as i32,
                subject: "The cold room is warm".into(),
                party_id: anna.id.clone(),
                owner: "ola".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let due = clock(&ticket, SlaClockKind::FirstResponse).due_time;
    let interactions = suite.interactions_client();
    let task = eventually(Duration::from_secs(20), || {
        let mut interactions = interactions.clone();
        let id = ticket.id.clone();
        async move { interactions.get_task(GetTaskRequest { id }).await.ok() }
    })
    .await
    .expect("the incident's task")
    .into_inner();
    assert_eq!(
        (
            task.assignee.as_str(),
            task.party_id.as_str(),
            task.priority()
        ),
        ("ola", anna.id.as_str(), TaskPriority::High)
    );
    assert_eq!(task.due_time, due);

    // Answered: the task is done.
    suite
        .desk_client()
        .respond_to_ticket(RespondToTicketRequest {
            id: ticket.id.clone(),
            author: Author::Agent as i32,
            text: "A technician is on his way.".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = eventually(Duration::from_secs(20), || {
        let mut interactions = interactions.clone();
        let id = ticket.id.clone();
        async move {
            let task = interactions.get_task(GetTaskRequest { id }).await.ok()?;
            (task.get_ref().status() == TaskStatus::Done).then_some(task)
        }
    })
    .await;
    assert!(
        done.is_some(),
        "the task is done once the incident is answered"
    );
    suite.stop().await.unwrap();
}
