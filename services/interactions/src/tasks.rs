//! Tasks: work for operators, with a due time, a priority and reminders, optionally about a
//! client, one of its contacts or a case; announced once when they fall overdue.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, mask_paths, optional_time, optional_uuid, required, text},
    shutdown::Shutdown,
    store::Page,
};
use crm_proto::crm::interactions::v1::*;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Interactions, convert,
    domain::{ParticipantKind, TaskPriority, TaskStatus},
    error::Refusal,
    events, peers, privacy,
    store::tasks::{self as store, Filter, TaskRow},
};

/// What UpdateTask may change.
const EDITABLE: &[&str] = &[
    "title",
    "description",
    "assignee",
    "due_time",
    "priority",
    "status",
    "reminder_times",
];

impl Interactions {
    pub async fn create_task(&self, caller: &str, req: CreateTaskRequest) -> Result<Task> {
        // A replay is answered without asking parties again.
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.task.clone(), "task", &mut v);
        let party = optional_uuid(&input.party_id, "task.party_id", &mut v);
        let person = optional_uuid(&input.person_id, "task.person_id", &mut v);
        v.check(
            party.is_none() || person.is_none(),
            "task.person_id",
            "a task is about a party or a person, not both",
        );
        let mut row = TaskRow {
            id: Uuid::now_v7(),
            title: String::new(),
            description: String::new(),
            assignee: String::new(),
            due_at: None,
            priority: TaskPriority::Normal,
            status: TaskStatus::Open,
            reminder_times: Vec::new(),
            party_id: party,
            person_id: person,
            client_ids: Vec::new(),
            interaction_id: optional_uuid(&input.interaction_id, "task.interaction_id", &mut v),
            case_id: optional_uuid(&input.case_id, "task.case_id", &mut v),
            completed_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        for path in EDITABLE {
            let unset = match *path {
                "priority" => input.priority == 0,
                "status" => input.status == 0,
                _ => false,
            };
            if !unset {
                set_field(&mut row, &input, path, &mut v);
            }
        }
        v.check(
            !row.status.is_final(),
            "task.status",
            "a new task is OPEN or IN_PROGRESS",
        );
        v.finish()?;
        let client = party
            .map(|id| ("task.party_id", ParticipantKind::Party, id))
            .or(person.map(|id| ("task.person_id", ParticipantKind::Person, id)));
        if let Some((field, kind, id)) = client {
            let clients = self
                .require_clients(&[(field.to_owned(), kind, id)])
                .await?;
            row.client_ids = peers::client_ids(&clients);
        }
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        privacy::guard(&mut tx, &row.client_ids).await?;
        let row = store::insert(&mut tx, &row).await?;
        let task = convert::task(&row);
        events::task_changed(&mut tx, &task, "created").await?;
        claim.commit(tx, &task).await?;
        Ok(task)
    }

    pub async fn get_task(&self, req: GetTaskRequest) -> Result<Task> {
        let id = request::id(&req.id, "id")?;
        let row = store::get(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Task", id))?;
        Ok(convert::task(&row))
    }

    pub async fn update_task(&self, caller: &str, req: UpdateTaskRequest) -> Result<Task> {
        let mut v = FieldViolations::new();
        let input = required(req.task.clone(), "task", &mut v);
        let id = request::uuid(&input.id, "task.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Task", id))?;
        check_etag("task", &input.etag, row.version)?;
        if row.status.is_final() {
            return Err(Refusal::TaskClosed {
                id,
                status: row.status,
            }
            .into());
        }
        let mut v = FieldViolations::new();
        for path in paths {
            set_field(&mut row, &input, path, &mut v);
        }
        v.check(
            row.status != TaskStatus::Done,
            "task.status",
            "CompleteTask finishes a task",
        );
        v.finish()?;
        let row = store::update(&mut tx, &row, caller).await?;
        let task = convert::task(&row);
        events::task_changed(&mut tx, &task, "updated").await?;
        claim.commit(tx, &task).await?;
        Ok(task)
    }

    pub async fn complete_task(&self, caller: &str, req: CompleteTaskRequest) -> Result<Task> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Task", id))?;
        check_etag("task", &req.etag, row.version)?;
        let task = match row.status {
            TaskStatus::Done => convert::task(&row),
            TaskStatus::Cancelled => {
                return Err(Refusal::TaskClosed {
                    id,
                    status: row.status,
                }
                .into());
            }
            _ => {
                row.status = TaskStatus::Done;
                row.completed_at = Some(Utc::now());
                let row = store::update(&mut tx, &row, caller).await?;
                let task = convert::task(&row);
                events::task_changed(&mut tx, &task, "completed").await?;
                task
            }
        };
        claim.commit(tx, &task).await?;
        Ok(task)
    }

    pub async fn list_tasks(&self, req: ListTasksRequest) -> Result<ListTasksResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(&'a str, i32, bool, &'a str, &'a str);
        let mut v = FieldViolations::new();
        let filters = Filters(
            &req.assignee,
            req.status,
            req.overdue_only,
            &req.party_id,
            &req.person_id,
        );
        let page: Page<(Option<chrono::DateTime<Utc>>, Uuid)> =
            Page::new(req.page_size, &req.page_token, &filters, &mut v);
        // A token is only as honest as its sender: its time must be one the database holds.
        v.check(
            page.after
                .is_none_or(|(due, _)| due.is_none_or(request::in_range)),
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
            assignee: Some(req.assignee.trim().to_owned()).filter(|a| !a.is_empty()),
            status: TaskStatus::optional(req.status, "status", &mut v),
            overdue_only: req.overdue_only,
            client: party.or(person),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| (last.due_at, last.id));
        Ok(ListTasksResponse {
            tasks: rows.iter().map(convert::task).collect(),
            next_page_token,
        })
    }

    /// Announces, every 2 s until `shutdown`, tasks that fell overdue, each once per due time.
    pub async fn announce_overdue_tasks(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_secs(2)).await {
            if let Err(error) = self.announce_overdue().await {
                tracing::warn!(%error, "announcing overdue tasks failed; retrying");
            }
        }
    }

    async fn announce_overdue(&self) -> Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::take_overdue(&mut tx, 100).await?;
            if due.is_empty() {
                return Ok(());
            }
            for row in &due {
                events::task_overdue(&mut tx, &convert::task(row)).await?;
            }
            tx.commit().await?;
        }
    }
}

/// Sets one editable field of `row` from `input`, checked; violations name `task.<path>`.
fn set_field(row: &mut TaskRow, input: &Task, path: &str, v: &mut FieldViolations) {
    let field = format!("task.{path}");
    let field = field.as_str();
    match path {
        "title" => row.title = text(&input.title, field, v),
        "description" => row.description = input.description.trim_end().to_owned(),
        "assignee" => row.assignee = text(&input.assignee, field, v),
        "due_time" => row.due_at = optional_time(input.due_time.as_ref(), field, v),
        "priority" => row.priority = TaskPriority::require(input.priority, field, v),
        "status" => row.status = TaskStatus::require(input.status, field, v),
        _ => {
            row.reminder_times = input
                .reminder_times
                .iter()
                .enumerate()
                .filter_map(|(i, at)| optional_time(Some(at), &format!("{field}[{i}]"), v))
                .collect();
            row.reminder_times.sort();
            row.reminder_times.dedup();
        }
    }
}
