//! Persons: people working for organizations (and the person of each natural-person party),
//! their employments and personal data.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, date, mask_paths, optional_uuid, required, uuid},
    store::{self as kit_store, Page},
};
use crm_proto::crm::parties::v1::{
    AddEmploymentRequest, CreatePersonRequest, Employment, EmploymentEnded, EndEmploymentRequest,
    GetPersonRequest, ListPersonsRequest, ListPersonsResponse, PartyUpdated, Person, PersonCreated,
    PersonUpdated, SearchPersonsRequest, SearchPersonsResponse, UpdatePersonRequest,
};
use uuid::Uuid;

use crate::{
    Parties,
    convert::person_to_proto,
    domain::{
        self, PersonData,
        fields::{
            EMPLOYMENT_PATHS, PERSON_PATHS, SHARED_FIELDS, apply_person_field,
            changed_person_fields, person_display_name,
        },
    },
    error::Refusal,
    events,
    lookups::{definitions, locked_party, person_in, require_employer},
    store::{self, EmploymentRow, PersonSearch},
};

impl Parties {
    pub async fn create_person(&self, subject: &str, req: CreatePersonRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        v.check(req.person.is_some(), "person", "is required");
        let input = req.person.clone().unwrap_or_default();
        let mut conn = self.pool.acquire().await?;
        let definitions = definitions(&mut conn, domain::FieldEntity::Person).await?;
        drop(conn);
        let mut data = PersonData::default();
        for path in PERSON_PATHS {
            apply_person_field(path, &input, &mut data, &definitions, &mut v);
        }
        let mut employment = new_employment(&input.employments, &mut v);
        v.finish()?;

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let organization_id = employment.organization_party_id;
        require_employer(&mut tx, organization_id).await?;
        check_supervisor(&mut tx, &employment).await?;
        let id = Uuid::now_v7();
        employment.person_id = id;
        store::insert_person(&mut tx, id, None, &data, subject).await?;
        store::insert_employment(&mut tx, &employment).await?;
        let created = PersonCreated {
            person_id: id.to_string(),
            organization_party_id: organization_id.to_string(),
            natural_party_id: String::new(),
        };
        events::PERSON.enqueue(&mut tx, id, &created).await?;
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    pub async fn get_person(&self, req: GetPersonRequest) -> Result<Person> {
        let id = request::id(&req.id, "id")?;
        let mut conn = self.pool.acquire().await?;
        person_in(&mut conn, id).await
    }

    pub async fn update_person(&self, subject: &str, req: UpdatePersonRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        v.check(req.person.is_some(), "person", "is required");
        let input = req.person.clone().unwrap_or_default();
        let id = uuid(&input.id, "person.id", &mut v);
        let allowed: Vec<&str> = PERSON_PATHS
            .iter()
            .chain(&EMPLOYMENT_PATHS)
            .chain(&["employments"])
            .copied()
            .collect();
        let paths = mask_paths(req.update_mask.as_ref(), &allowed, &mut v);
        let new_job = paths.contains(&"employments");
        if new_job && paths.iter().any(|p| p.starts_with("employment.")) {
            v.add(
                "update_mask",
                "`employments` starts a new employment and `employment.*` changes the current one: use one or the other",
            );
        }
        let mut started = new_job.then(|| new_employment(&input.employments, &mut v));
        v.finish()?;

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = store::lock_person(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Person", id))?;
        check_etag("person", &input.etag, row.version)?;
        let definitions = definitions(&mut tx, domain::FieldEntity::Person).await?;
        let before = row.data();
        let mut after = before.clone();
        let mut v = FieldViolations::new();
        for path in paths.iter().filter(|p| !p.starts_with("employment")) {
            apply_person_field(path, &input, &mut after, &definitions, &mut v);
        }
        let employment_paths: Vec<&str> = paths
            .iter()
            .copied()
            .filter(|p| p.starts_with("employment."))
            .collect();
        let current = current_employments(&mut tx, id).await?;
        let mut employment_changed = Vec::new();
        if let Some(new) = started.as_mut() {
            v.clone().finish()?;
            new.person_id = id;
            change_jobs(&mut tx, new, &current).await?;
            employment_changed.push("employments".to_owned());
        }
        if !employment_paths.is_empty()
            && update_current_job(&mut tx, id, current, &employment_paths, &input, &mut v).await?
        {
            employment_changed.push("employments".to_owned());
        }
        v.finish()?;

        let mut changed = changed_person_fields(&before, &after);
        if let Some(party_id) = row.natural_party_id {
            share_with_party(&mut tx, party_id, &after, &changed, subject).await?;
        }
        changed.extend(employment_changed);
        if !changed.is_empty() {
            store::write_person(
                &mut tx,
                id,
                row.natural_party_id.is_some(),
                &after,
                subject,
                true,
            )
            .await?;
            let event = PersonUpdated {
                person_id: id.to_string(),
                changed_fields: changed,
            };
            events::PERSON.enqueue(&mut tx, id, &event).await?;
        }
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    pub async fn list_persons(&self, req: ListPersonsRequest) -> Result<ListPersonsResponse> {
        let mut v = FieldViolations::new();
        let organization = uuid(&req.organization_party_id, "organization_party_id", &mut v);
        let filter = (organization, req.include_former);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_party(&mut conn, organization)
            .await?
            .ok_or_else(|| ServiceError::not_found("Party", organization))?;
        let mut rows = store::list_persons(
            &mut conn,
            organization,
            req.include_former,
            page.after,
            page.limit(),
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListPersonsResponse {
            persons: with_employments(&mut conn, &rows).await?,
            next_page_token,
        })
    }

    pub async fn search_persons(&self, req: SearchPersonsRequest) -> Result<SearchPersonsResponse> {
        let mut v = FieldViolations::new();
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let contact =
            |kind: &str, value: String| serde_json::json!([{ "kind": kind, "value": value }]);
        let search = PersonSearch {
            name: given(&req.name).map(|name| format!("%{}%", like_escaped(&name))),
            email: given(&req.email).and_then(|raw| {
                let email = domain::normalize_email(&raw);
                v.check(email.is_some(), "email", "is not an e-mail address");
                email.map(|e| contact("email", e))
            }),
            phone: given(&req.phone).and_then(|raw| {
                let phone = domain::normalize_phone(&raw);
                v.check(
                    phone.is_some(),
                    "phone",
                    "is not an E.164 phone number (e.g. +48601234567)",
                );
                phone.map(|p| contact("phone", p))
            }),
            organization: optional_uuid(
                &req.organization_party_id,
                "organization_party_id",
                &mut v,
            ),
            include_former: req.include_former,
        };
        v.check(
            search.name.is_some() || search.email.is_some() || search.phone.is_some(),
            "name",
            "give at least one of name, email or phone",
        );
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &search, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::search_persons(&mut conn, &search, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(SearchPersonsResponse {
            persons: with_employments(&mut conn, &rows).await?,
            next_page_token,
        })
    }

    pub async fn add_employment(&self, subject: &str, req: AddEmploymentRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.person_id, "person_id", &mut v);
        let job = required(req.employment.clone(), "employment", &mut v);
        let mut employment = employment_at(&job, "employment", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = store::lock_person(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Person", id))?;
        check_etag("person", &req.etag, row.version)?;
        employment.person_id = id;
        require_employer(&mut tx, employment.organization_party_id).await?;
        check_supervisor(&mut tx, &employment).await?;
        let organization = employment.organization_party_id;
        let current = current_employments(&mut tx, id).await?;
        if current
            .iter()
            .any(|e| e.organization_party_id == organization)
        {
            return Err(Refusal::AlreadyEmployed { id, organization }.into());
        }
        store::insert_employment(&mut tx, &employment).await?;
        let natural = row.natural_party_id.is_some();
        store::write_person(&mut tx, id, natural, &row.data(), subject, true).await?;
        let event = PersonUpdated {
            person_id: id.to_string(),
            changed_fields: vec!["employments".to_owned()],
        };
        events::PERSON.enqueue(&mut tx, id, &event).await?;
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    pub async fn end_employment(&self, subject: &str, req: EndEmploymentRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.person_id, "person_id", &mut v);
        let end = date(req.end_date.as_ref(), "end_date", &mut v)
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = store::lock_person(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Person", id))?;
        check_etag("person", &req.etag, row.version)?;
        let current = current_employments(&mut tx, id).await?;
        let mut current = pick_current(
            id,
            current,
            &req.organization_party_id,
            "organization_party_id",
            "end",
        )?;
        if current.start_date.is_some_and(|start| end < start) {
            let mut v = FieldViolations::new();
            v.add("end_date", "is before the employment's start_date");
            return Err(v.into());
        }
        current.end_date = Some(end);
        store::update_employment(&mut tx, &current).await?;
        store::write_person(
            &mut tx,
            id,
            row.natural_party_id.is_some(),
            &row.data(),
            subject,
            true,
        )
        .await?;
        let event = EmploymentEnded {
            person_id: id.to_string(),
            organization_party_id: current.organization_party_id.to_string(),
        };
        events::PERSON.enqueue(&mut tx, id, &event).await?;
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }
}

/// Applies the `employment.*` paths to the current employment they name; true when it changed.
async fn update_current_job(
    tx: &mut kit_store::Tx,
    person_id: Uuid,
    current: Vec<EmploymentRow>,
    paths: &[&str],
    input: &Person,
    v: &mut FieldViolations,
) -> Result<bool> {
    let job = input.employments.first().cloned().unwrap_or_default();
    let current = pick_current(
        person_id,
        current,
        &job.organization_party_id,
        "person.employments[0].organization_party_id",
        "update",
    )?;
    let mut updated = current.clone();
    for path in paths {
        apply_employment_field(path, &job, "person.employments[0]", &mut updated, v);
    }
    v.clone().finish()?;
    check_supervisor(tx, &updated).await?;
    if updated == current {
        return Ok(false);
    }
    store::update_employment(tx, &updated).await?;
    Ok(true)
}

/// A change of jobs: the new employment starts and every current one ends the day before it
/// (today when it is undated).
async fn change_jobs(
    tx: &mut kit_store::Tx,
    new: &EmploymentRow,
    current: &[EmploymentRow],
) -> Result<()> {
    let id = new.person_id;
    require_employer(tx, new.organization_party_id).await?;
    check_supervisor(tx, new).await?;
    if current
        .iter()
        .any(|e| e.organization_party_id == new.organization_party_id)
    {
        let organization = new.organization_party_id;
        return Err(Refusal::AlreadyEmployed { id, organization }.into());
    }
    let end = new
        .start_date
        .and_then(|start| start.pred_opt())
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    for previous in current {
        if previous.start_date.is_some_and(|start| end < start) {
            let mut v = FieldViolations::new();
            v.add(
                "person.employments[0].start_date",
                "must be after the current employment's start_date",
            );
            return Err(v.into());
        }
        let ended = EmploymentRow {
            end_date: Some(end),
            ..previous.clone()
        };
        store::update_employment(tx, &ended).await?;
        let event = EmploymentEnded {
            person_id: id.to_string(),
            organization_party_id: previous.organization_party_id.to_string(),
        };
        events::PERSON.enqueue(tx, id, &event).await?;
    }
    store::insert_employment(tx, new).await?;
    Ok(())
}

/// A natural person's names, private contacts and home addresses live on their party: the
/// changes of those go there, and the party's subscribers hear of them.
async fn share_with_party(
    tx: &mut kit_store::Tx,
    party_id: Uuid,
    after: &PersonData,
    changed: &[String],
    subject: &str,
) -> Result<()> {
    let shared: Vec<String> = SHARED_FIELDS
        .iter()
        .filter(|(person_field, _)| changed.iter().any(|c| c == person_field))
        .map(|(_, party_field)| party_field.to_string())
        .collect();
    if shared.is_empty() {
        return Ok(());
    }
    let party = locked_party(tx, party_id).await?;
    let mut data = party.data();
    data.given_name = after.given_name.clone();
    data.family_name = after.family_name.clone();
    data.display_name = person_display_name(&after.given_name, &after.family_name);
    data.contact_points = after.private_contact_points.clone();
    data.addresses = after.home_addresses.clone();
    store::update_party(tx, party_id, &data, subject).await?;
    let mut changed_fields = shared;
    if data.display_name != party.display_name {
        changed_fields.push("display_name".to_owned());
    }
    let event = PartyUpdated {
        party_id: party_id.to_string(),
        changed_fields,
    };
    events::PARTY.enqueue(tx, party_id, &event).await?;
    Ok(())
}

/// The person's current employments.
async fn current_employments(tx: &mut kit_store::Tx, id: Uuid) -> Result<Vec<EmploymentRow>> {
    Ok(store::employments(tx, &[id])
        .await?
        .into_iter()
        .filter(|e| e.end_date.is_none())
        .collect())
}

/// The current employment a request means: the one at `organization` when named, the only one
/// otherwise.
fn pick_current(
    id: Uuid,
    current: Vec<EmploymentRow>,
    organization: &str,
    field: &str,
    to: &'static str,
) -> Result<EmploymentRow> {
    let mut v = FieldViolations::new();
    let named = optional_uuid(organization, field, &mut v);
    v.finish()?;
    let found = match named {
        Some(organization) => current
            .into_iter()
            .find(|e| e.organization_party_id == organization),
        None if current.len() > 1 => {
            let mut v = FieldViolations::new();
            v.add(field, "name the organization: the person works for several");
            return Err(v.into());
        }
        None => current.into_iter().next(),
    };
    found.ok_or_else(|| Refusal::NoCurrentEmployment { id, to }.into())
}

pub(crate) async fn check_supervisor(
    tx: &mut kit_store::Tx,
    employment: &EmploymentRow,
) -> Result<()> {
    let Some(supervisor) = employment.supervisor_person_id else {
        return Ok(());
    };
    if supervisor == employment.person_id
        || !store::is_current_employee(tx, supervisor, employment.organization_party_id).await?
    {
        let organization = employment.organization_party_id;
        return Err(Refusal::SupervisorNotEmployed {
            supervisor,
            organization,
        }
        .into());
    }
    Ok(())
}

/// The one employment a request starts (`employments[0]`), validated; the person id is set later.
/// The one employment a person request starts (`employments[0]`).
pub(crate) fn new_employment(jobs: &[Employment], v: &mut FieldViolations) -> EmploymentRow {
    if jobs.len() != 1 {
        v.add(
            "person.employments",
            "give exactly one employment: the new current one",
        );
    }
    let job = jobs.first().cloned().unwrap_or_default();
    employment_at(&job, "person.employments[0]", v)
}

/// A new current employment from `job`, validated with its fields named under `at`; the person
/// id is set later.
pub(crate) fn employment_at(job: &Employment, at: &str, v: &mut FieldViolations) -> EmploymentRow {
    let mut employment = EmploymentRow {
        id: Uuid::now_v7(),
        person_id: Uuid::nil(),
        organization_party_id: uuid(
            &job.organization_party_id,
            &format!("{at}.organization_party_id"),
            v,
        ),
        position: String::new(),
        department: String::new(),
        supervisor_person_id: None,
        business_contact_points: sqlx::types::Json(Vec::new()),
        start_date: date(job.start_date.as_ref(), &format!("{at}.start_date"), v),
        end_date: None,
    };
    v.check(
        job.end_date.is_none(),
        format!("{at}.end_date"),
        "a new employment is current; end it with EndEmployment",
    );
    for path in EMPLOYMENT_PATHS {
        apply_employment_field(path, job, at, &mut employment, v);
    }
    employment
}

pub(crate) fn apply_employment_field(
    path: &str,
    job: &Employment,
    at: &str,
    employment: &mut EmploymentRow,
    v: &mut FieldViolations,
) {
    let short = |s: &str, field: String, v: &mut FieldViolations| {
        v.check(
            s.trim().chars().count() <= 300,
            field,
            "must be at most 300 characters",
        );
        s.trim().to_owned()
    };
    match path {
        "employment.position" => {
            employment.position = short(&job.position, format!("{at}.position"), v)
        }
        "employment.department" => {
            employment.department = short(&job.department, format!("{at}.department"), v)
        }
        "employment.supervisor_person_id" => {
            employment.supervisor_person_id = optional_uuid(
                &job.supervisor_person_id,
                &format!("{at}.supervisor_person_id"),
                v,
            )
        }
        "employment.business_contact_points" => {
            employment.business_contact_points = sqlx::types::Json(domain::contacts(
                &job.business_contact_points,
                &format!("{at}.business_contact_points"),
                v,
            ))
        }
        other => v.add("update_mask", format!("{other:?} cannot be updated")),
    }
}

/// The persons as the API answers them, each with their employments (one query for all).
async fn with_employments(
    conn: &mut sqlx::PgConnection,
    rows: &[store::PersonRow],
) -> Result<Vec<Person>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let employments = store::employments(conn, &ids).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let mine: Vec<EmploymentRow> = employments
                .iter()
                .filter(|e| e.person_id == row.id)
                .cloned()
                .collect();
            person_to_proto(row, &mine)
        })
        .collect())
}

/// `text` matched literally inside a LIKE pattern: its `%`, `_` and `\` escaped.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
