//! Reminders of a person's birthday, name day and anniversaries for the person's owner, from
//! what parties holds, through the public APIs of both services.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, TimeDelta, Utc};
use crm_e2e::Suite;
use crm_proto::crm::{
    common::v1::Date,
    interactions::v1::*,
    parties::v1::{
        Anniversary, CreatePartyRequest, Party, PartyKind, Person, PersonName, UpdatePersonRequest,
    },
};
use prost_types::FieldMask;

const OWNER: &str = "jan.opiekun";

fn day(date: NaiveDate, year: i32) -> Option<Date> {
    Some(Date {
        year,
        month: date.month() as i32,
        day: date.day() as i32,
    })
}

async fn owner_tasks(suite: &Suite) -> Vec<Task> {
    suite
        .interactions_client()
        .list_tasks(ListTasksRequest {
            assignee: OWNER.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks
}

#[tokio::test]
async fn a_persons_owner_is_reminded_of_their_days_once_each() {
    let suite = Suite::start().await.unwrap();
    let anna = suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: "Anna".into(),
                    family_name: "Kowalska".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let today = Utc::now().date_naive();
    let in_days = |n: i64| today + TimeDelta::days(n);
    suite
        .parties_client()
        .update_person(UpdatePersonRequest {
            person: Some(Person {
                id: anna.person_id.clone(),
                owner: OWNER.into(),
                birthday: day(in_days(3), 1984),
                name_day: day(in_days(1), 0),
                anniversaries: vec![
                    Anniversary {
                        label: "wedding".into(),
                        date: day(in_days(5), 2010),
                    },
                    // Beyond the 7 days' lead: not yet.
                    Anniversary {
                        label: "first order".into(),
                        date: day(in_days(30), 2020),
                    },
                ],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec![
                    "owner".into(),
                    "birthday".into(),
                    "name_day".into(),
                    "anniversaries".into(),
                ],
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut tasks = owner_tasks(&suite).await;
    while tasks.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{tasks:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        tasks = owner_tasks(&suite).await;
    }
    let mut found: Vec<(String, i64)> = tasks
        .iter()
        .map(|t| (t.title.clone(), t.due_time.unwrap().seconds))
        .collect();
    found.sort_by_key(|(_, due)| *due);
    // Due by the end of the day (UTC).
    let end_of = |n: i64| {
        in_days(n)
            .and_hms_opt(23, 59, 59)
            .unwrap()
            .and_utc()
            .timestamp()
    };
    let on = |n: i64| in_days(n).format("%-d %B").to_string();
    assert_eq!(
        found,
        [
            (format!("Name day of Anna Kowalska on {}", on(1)), end_of(1)),
            (format!("Birthday of Anna Kowalska on {}", on(3)), end_of(3)),
            (
                format!("Anniversary (wedding) of Anna Kowalska on {}", on(5)),
                end_of(5)
            ),
        ]
    );
    assert!(tasks.iter().all(|t| t.person_id == anna.person_id));

    // Asked again (another change to the person), nothing is reminded twice.
    suite
        .parties_client()
        .update_person(UpdatePersonRequest {
            person: Some(Person {
                id: anna.person_id.clone(),
                anniversaries: vec![
                    Anniversary {
                        label: "wedding".into(),
                        date: day(in_days(5), 2010),
                    },
                    Anniversary {
                        label: "first order".into(),
                        date: day(in_days(60), 2020),
                    },
                ],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["anniversaries".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(owner_tasks(&suite).await.len(), 3);

    // The reminders are in Anna's timeline.
    let timeline = suite
        .interactions_client()
        .get_timeline(GetTimelineRequest {
            party_id: anna.id.clone(),
            kinds: vec![TimelineKind::Task as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(timeline.len(), 3);
    suite.stop().await.unwrap();
}
