//! Tasks through the public API: created for an operator about a client, changed by etag,
//! completed once, listed soonest due first, and announced once when they fall overdue.

use std::time::Duration;

use crm_e2e::Suite;
use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    interactions::v1::*,
    parties::v1::{CreatePartyRequest, Party, PartyKind},
};
use crm_testkit::read_topic;
use prost::Message;
use prost_types::{FieldMask, Timestamp};
use tonic_types::StatusExt;

type Client = interactions_service_client::InteractionsServiceClient<TracedChannel>;

fn in_hours(hours: i64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Some(Timestamp {
        seconds: now + hours * 3_600,
        nanos: 0,
    })
}

fn task(title: &str, assignee: &str, due: Option<Timestamp>) -> Task {
    Task {
        title: title.into(),
        assignee: assignee.into(),
        due_time: due,
        ..Default::default()
    }
}

async fn create(client: &mut Client, task: Task) -> Task {
    client
        .create_task(CreateTaskRequest {
            task: Some(task),
            ..Default::default()
        })
        .await
        .expect("creating a task")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_are_done_once_listed_soonest_first_and_announced_when_overdue() {
    let suite = Suite::start().await.unwrap();
    let acme = suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Organization as i32,
                display_name: "Acme".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut client = suite.interactions_client();

    let call_back = create(
        &mut client,
        Task {
            party_id: acme.id.clone(),
            priority: TaskPriority::High as i32,
            reminder_times: vec![in_hours(1).unwrap()],
            ..task("Call Acme back", "ola", in_hours(2))
        },
    )
    .await;
    assert_eq!(call_back.status(), TaskStatus::Open);
    assert_eq!(call_back.priority(), TaskPriority::High);
    let offer = create(&mut client, task("Send the offer", "ola", in_hours(1))).await;
    create(&mut client, task("Tidy the CRM", "ola", None)).await;
    let late = create(&mut client, task("Overdue follow-up", "ola", in_hours(-1))).await;
    assert!(late.overdue);
    create(&mut client, task("Someone else's", "jan", in_hours(1))).await;

    let page = |page_token: String| ListTasksRequest {
        assignee: "ola".into(),
        page_size: 3,
        page_token,
        ..Default::default()
    };
    let first = client
        .list_tasks(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    let rest = client
        .list_tasks(page(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    let titles: Vec<&str> = first
        .tasks
        .iter()
        .chain(&rest.tasks)
        .map(|t| t.title.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Overdue follow-up",
            "Send the offer",
            "Call Acme back",
            "Tidy the CRM"
        ],
        "soonest due first, no due time last"
    );
    let overdue = client
        .list_tasks(ListTasksRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.tasks.len(), 1);
    let about_acme = client
        .list_tasks(ListTasksRequest {
            party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(about_acme.tasks[0].id, call_back.id);

    let moved = client
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: offer.id.clone(),
                due_time: in_hours(24),
                status: TaskStatus::InProgress as i32,
                etag: offer.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["due_time".into(), "status".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.status(), TaskStatus::InProgress);
    let done = client
        .complete_task(CompleteTaskRequest {
            id: offer.id.clone(),
            etag: moved.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status(), TaskStatus::Done);
    assert!(done.complete_time.is_some());
    let again = client
        .complete_task(CompleteTaskRequest {
            id: offer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, done, "completing a done task changes nothing");
    let closed = client
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: offer.id.clone(),
                title: "Send it again".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["title".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        closed.get_details_error_info().unwrap().reason,
        "TASK_CLOSED"
    );

    // The overdue task is announced, once.
    let records = read_topic(
        &suite.broker.brokers(),
        "crm.interactions.task.v1",
        8,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let overdue: Vec<TaskOverdue> = records
        .iter()
        .filter(|r| r.headers["ce_type"] == "crm.interactions.v1.TaskOverdue")
        .map(|r| TaskOverdue::decode(r.payload.as_slice()).unwrap())
        .collect();
    assert_eq!(overdue.len(), 1, "{records:?}");
    assert_eq!(overdue[0].task.as_ref().unwrap().id, late.id);
    suite.stop().await.unwrap();
}
