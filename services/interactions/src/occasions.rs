//! Reminders of persons' birthdays, name days and anniversaries: a task for the person's owner
//! (`Person.owner` in parties), `interactions.occasion_lead_days` before the day, due by its end. The
//! days are read from parties when a person is created or its days, name or owner change.

use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use crm_kit::{error::Result, shutdown::Shutdown};
use crm_proto::crm::{
    common::v1::Date,
    parties::v1::{GetPersonRequest, Person},
};
use tonic::Code;
use uuid::Uuid;

use crate::{
    Interactions, convert,
    domain::{
        TaskPriority, TaskStatus,
        occasions::{Occasion, OccasionKind},
    },
    events, privacy,
    store::{
        occasions::{self as store, OccasionRow},
        tasks::{self, TaskRow},
    },
};

/// Who reminder tasks are created by.
const REMINDER: &str = "crm-occasions";

impl Interactions {
    /// Reads changed persons' occasions and makes the reminders that are due, until `shutdown`.
    pub async fn remind_of_occasions(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_secs(1)).await {
            if let Err(error) = self.refresh_occasions().await {
                tracing::warn!(%error, "reading persons' occasions failed; retrying");
            }
            if let Err(error) = self.remind_due().await {
                tracing::warn!(%error, "making occasion reminders failed; retrying");
            }
        }
    }

    async fn refresh_occasions(&self) -> Result<()> {
        let taken = store::take_refresh(&mut *self.pool.acquire().await?, 20).await?;
        let today = Utc::now().date_naive();
        for (person, asked_at) in taken {
            let request = GetPersonRequest {
                id: person.to_string(),
            };
            let rows = match self.parties.clone().get_person(request).await {
                Ok(found) => occasions_of(&found.into_inner(), today),
                Err(status) if status.code() == Code::NotFound => Vec::new(),
                Err(status) => {
                    // Held for a minute, then read again.
                    tracing::warn!(%person, %status, "parties did not answer for a person's occasions");
                    continue;
                }
            };
            let mut tx = self.pool.begin().await?;
            // Read before an erasure, written after it: not written.
            let mut ids = vec![person];
            ids.extend(rows.iter().flat_map(|r| r.client_ids.iter().copied()));
            if privacy::erased(&mut tx, &ids).await? {
                store::forget(&mut tx, &[person]).await?;
            } else {
                store::replace(&mut tx, person, asked_at, &rows).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// One transaction per reminder, each taking its person's erasure lock before its occasion's
    /// row (the order an erasure takes them in).
    async fn remind_due(&self) -> Result<()> {
        let today = Utc::now().date_naive();
        let until = today + TimeDelta::days(self.limits.occasion_lead_days.into());
        loop {
            let due = store::due(&mut *self.pool.acquire().await?, until, 100).await?;
            for row in &due {
                let mut tx = self.pool.begin().await?;
                let erased = privacy::erased(&mut tx, &row.client_ids).await?;
                let Some(row) = store::lock_due(&mut tx, row, until).await? else {
                    continue;
                };
                let Some(occasion) = occasion(&row).filter(|_| !erased) else {
                    store::drop_one(&mut tx, &row).await?;
                    tx.commit().await?;
                    continue;
                };
                // A day that passed while no reminder could be made is not reminded of late.
                if row.next_on >= today {
                    let task = reminder(&row, &occasion);
                    if store::remember_reminder(&mut tx, &row, task.id).await? {
                        let task = tasks::insert(&mut tx, &task).await?;
                        events::task_changed(&mut tx, &convert::task(&task), "created").await?;
                    }
                }
                let next = occasion.next_on(row.next_on + TimeDelta::days(1));
                store::move_on(&mut tx, &row, next).await?;
                tx.commit().await?;
            }
            if due.len() < 100 {
                return Ok(());
            }
        }
    }
}

fn occasion(row: &OccasionRow) -> Option<Occasion> {
    Some(Occasion {
        kind: OccasionKind::parse(&row.kind)?,
        label: row.label.clone(),
        month: u32::try_from(row.month).ok()?,
        day: u32::try_from(row.day).ok()?,
    })
}

/// The task reminding the owner of `row`'s day.
fn reminder(row: &OccasionRow, occasion: &Occasion) -> TaskRow {
    let now = Utc::now();
    TaskRow {
        id: Uuid::now_v7(),
        title: occasion.title(&row.person_name, row.next_on),
        description: String::new(),
        assignee: row.owner.clone(),
        // Due by the end of the day (UTC): overdue once the day has passed.
        due_at: Some(
            row.next_on
                .and_hms_opt(23, 59, 59)
                .expect("a time of day")
                .and_utc(),
        ),
        priority: TaskPriority::Normal,
        status: TaskStatus::Open,
        reminder_times: Vec::new(),
        party_id: None,
        person_id: Some(row.person_id),
        client_ids: row.client_ids.clone(),
        interaction_id: None,
        case_id: None,
        completed_at: None,
        created_at: now,
        updated_at: now,
        created_by: REMINDER.to_owned(),
        updated_by: REMINDER.to_owned(),
        version: 1,
    }
}

/// The days of `person` worth a reminder: none without an owner to remind.
fn occasions_of(person: &Person, today: NaiveDate) -> Vec<OccasionRow> {
    let Ok(id) = person.id.parse::<Uuid>() else {
        return Vec::new();
    };
    if person.owner.is_empty() {
        return Vec::new();
    }
    let name = person
        .name
        .as_ref()
        .map(|n| {
            format!("{} {}", n.given_name, n.family_name)
                .trim()
                .to_owned()
        })
        .unwrap_or_default();
    let client_ids: Vec<Uuid> = std::iter::once(id)
        .chain(person.natural_party_id.parse().ok())
        .collect();
    let mut days: Vec<(OccasionKind, String, Option<&Date>)> = vec![
        (
            OccasionKind::Birthday,
            String::new(),
            person.birthday.as_ref(),
        ),
        (
            OccasionKind::NameDay,
            String::new(),
            person.name_day.as_ref(),
        ),
    ];
    days.extend(person.anniversaries.iter().map(|a| {
        (
            OccasionKind::Anniversary,
            a.label.trim().to_owned(),
            a.date.as_ref(),
        )
    }));
    let mut rows: Vec<OccasionRow> = Vec::new();
    for (kind, label, date) in days {
        let Some(date) = date else { continue };
        let (Ok(month), Ok(day)) = (u32::try_from(date.month), u32::try_from(date.day)) else {
            continue;
        };
        // A day some year has (2000 was a leap year).
        if NaiveDate::from_ymd_opt(2000, month, day).is_none() {
            continue;
        }
        let occasion = Occasion {
            kind,
            label,
            month,
            day,
        };
        let next_on = occasion.next_on(today);
        rows.push(OccasionRow {
            person_id: id,
            kind: kind.as_str().to_owned(),
            label: occasion.label,
            month: month as i16,
            day: day as i16,
            person_name: name.clone(),
            owner: person.owner.clone(),
            client_ids: client_ids.clone(),
            next_on,
        });
    }
    rows
}
