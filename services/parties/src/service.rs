//! The parties use cases. Each mutating one validates everything first (all violations at once),
//! then runs in one transaction: the request-id claim, the state change, its events, the answer.

use std::collections::HashSet;

use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    fresh_or_replay,
    request::{audit, date, date_to_proto, mask_paths, optional_uuid, uuid},
    store::{
        self as kit_store, decode_page_token, encode_page_token, next_page, page_size,
        unique_violation,
    },
};
use crm_proto::crm::parties::v1::*;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::{self, Contact},
    events,
    store::{
        self, AnniversaryJson, BaseRow, EmploymentRow, FamilyJson, FieldRow, PartyData,
        PartyFilter, PartyRow, PartySearch, PersonData, PersonRow, SearchPosition,
    },
};

/// Party fields a caller sets, in UpdatePartyRequest.update_mask terms.
const PARTY_PATHS: [&str; 9] = [
    "display_name",
    "person_name",
    "legal_name",
    "tax_id",
    "registration_numbers",
    "tags",
    "custom_fields",
    "contact_points",
    "addresses",
];

const PERSON_PATHS: [&str; 14] = [
    "name",
    "gender",
    "profession",
    "education",
    "private_contact_points",
    "home_addresses",
    "birthday",
    "name_day",
    "anniversaries",
    "family",
    "hobbies",
    "interests",
    "remarks",
    "custom_fields",
];

const EMPLOYMENT_PATHS: [&str; 4] = [
    "employment.position",
    "employment.department",
    "employment.supervisor_person_id",
    "employment.business_contact_points",
];

/// Person fields that a natural person shares with their party, and the party's names for them.
const SHARED_FIELDS: [(&str, &str); 3] = [
    ("name", "person_name"),
    ("private_contact_points", "contact_points"),
    ("home_addresses", "addresses"),
];

#[derive(Clone)]
pub struct Parties {
    pool: PgPool,
}

impl Parties {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn definitions(
        conn: &mut PgConnection,
        entity: &str,
    ) -> Result<Vec<CustomFieldDefinition>> {
        Ok(store::custom_fields(conn, Some(entity))
            .await?
            .iter()
            .map(field_to_proto)
            .collect())
    }

    // --- parties ---------------------------------------------------------------------------

    pub async fn create_party(&self, subject: &str, req: CreatePartyRequest) -> Result<Party> {
        let mut v = FieldViolations::new();
        v.check(req.party.is_some(), "party", "is required");
        let input = req.party.clone().unwrap_or_default();
        let organization = match input.kind() {
            PartyKind::Organization => true,
            PartyKind::Person => false,
            PartyKind::Unspecified => {
                v.add("party.kind", "must be ORGANIZATION or PERSON");
                true
            }
        };
        let mut conn = self.pool.acquire().await?;
        let definitions = Self::definitions(&mut conn, "party").await?;
        drop(conn);
        let mut data = PartyData::default();
        for path in PARTY_PATHS {
            apply_party_field(
                path,
                organization,
                false,
                &input,
                &mut data,
                &definitions,
                &mut v,
            );
        }
        let base_ids: Vec<Uuid> = req
            .base_ids
            .iter()
            .enumerate()
            .map(|(i, id)| uuid(id, &format!("base_ids[{i}]"), &mut v))
            .collect();
        v.finish()?;

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let id = Uuid::now_v7();
        let kind = if organization {
            "organization"
        } else {
            "person"
        };
        store::insert_party(&mut tx, id, kind, &data, subject).await?;
        for base_id in &base_ids {
            open_base(&mut tx, *base_id).await?;
            store::add_to_base(&mut tx, id, *base_id).await?;
        }
        if !organization {
            let person_id = Uuid::now_v7();
            store::insert_person(
                &mut tx,
                person_id,
                Some(id),
                &PersonData::default(),
                subject,
            )
            .await?;
            let created = PersonCreated {
                person_id: person_id.to_string(),
                natural_party_id: id.to_string(),
                ..Default::default()
            };
            events::person(&mut tx, person_id, &created).await?;
        }
        let created = PartyCreated {
            party_id: id.to_string(),
            kind: input.kind,
            base_ids: req.base_ids.clone(),
        };
        events::party(&mut tx, id, &created).await?;
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn get_party(&self, req: GetPartyRequest) -> Result<Party> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        party_in(&mut conn, id).await
    }

    pub async fn update_party(&self, subject: &str, req: UpdatePartyRequest) -> Result<Party> {
        let mut v = FieldViolations::new();
        v.check(req.party.is_some(), "party", "is required");
        let input = req.party.clone().unwrap_or_default();
        let id = uuid(&input.id, "party.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), &PARTY_PATHS, &mut v);
        v.finish()?;

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let row = locked_party(&mut tx, id).await?;
        check_etag("party", &input.etag, row.version)?;
        require_active(&row)?;
        let definitions = Self::definitions(&mut tx, "party").await?;
        let organization = row.kind == "organization";
        let before = row.data();
        let mut after = before.clone();
        let mut v = FieldViolations::new();
        for path in paths {
            apply_party_field(
                path,
                organization,
                true,
                &input,
                &mut after,
                &definitions,
                &mut v,
            );
        }
        v.finish()?;

        let changed = changed_party_fields(&before, &after);
        if !changed.is_empty() {
            store::update_party(&mut tx, id, &after, subject).await?;
            let event = PartyUpdated {
                party_id: id.to_string(),
                changed_fields: changed.clone(),
            };
            events::party(&mut tx, id, &event).await?;
            if let Some(person_id) = row.person_id {
                natural_person_followed(&mut tx, person_id, &changed, subject).await?;
            }
        }
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn archive_party(&self, subject: &str, req: ArchivePartyRequest) -> Result<Party> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let row = locked_party(&mut tx, id).await?;
        check_etag("party", &req.etag, row.version)?;
        if row.is_active() {
            store::archive_party(&mut tx, id, None, subject).await?;
            let event = PartyArchived {
                party_id: id.to_string(),
                merged_into_party_id: String::new(),
            };
            events::party(&mut tx, id, &event).await?;
        }
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn list_parties(&self, req: ListPartiesRequest) -> Result<ListPartiesResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let filter = PartyFilter {
            kind: match req.kind() {
                PartyKind::Organization => Some("organization"),
                PartyKind::Person => Some("person"),
                PartyKind::Unspecified => None,
            },
            base_id: optional_uuid(&req.base_id, "base_id", &mut v),
            status: match req.status() {
                PartyStatus::Archived => "archived",
                PartyStatus::Active | PartyStatus::Unspecified => "active",
            },
            tag: Some(req.tag.trim().to_owned()).filter(|t| !t.is_empty()),
        };
        let after: Option<Uuid> = decode_page_token(&req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_parties(&mut conn, &filter, after, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &filter)
        });
        Ok(ListPartiesResponse {
            parties: rows.iter().map(party_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn search_parties(&self, req: SearchPartiesRequest) -> Result<SearchPartiesResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let search = PartySearch {
            name: given(&req.name),
            tax_id: given(&req.tax_id).and_then(|raw| {
                domain::normalize_tax_id(&raw)
                    .map_err(|e| v.add("tax_id", e))
                    .ok()
            }),
            email: given(&req.email).and_then(|raw| {
                let email = domain::normalize_email(&raw);
                v.check(email.is_some(), "email", "is not an e-mail address");
                email
            }),
            phone: given(&req.phone).and_then(|raw| {
                let phone = domain::normalize_phone(&raw);
                v.check(
                    phone.is_some(),
                    "phone",
                    "is not an E.164 phone number (e.g. +48601234567)",
                );
                phone
            }),
            include_archived: req.include_archived,
        };
        let any = [&req.name, &req.tax_id, &req.email, &req.phone]
            .iter()
            .any(|s| !s.trim().is_empty());
        v.check(
            any,
            "name",
            "give at least one of name, tax_id, email or phone",
        );
        let after: Option<SearchPosition> = decode_page_token(&req.page_token, &search, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut hits = store::search_parties(&mut conn, &search, after, limit + 1).await?;
        let next_page_token = next_page(&mut hits, limit, |(party, score)| {
            encode_page_token(
                &SearchPosition {
                    score: *score,
                    id: party.id,
                },
                &search,
            )
        });
        Ok(SearchPartiesResponse {
            parties: hits
                .iter()
                .map(|(party, _)| party_to_proto(party))
                .collect(),
            next_page_token,
        })
    }

    pub async fn find_duplicates(
        &self,
        req: FindDuplicatesRequest,
    ) -> Result<FindDuplicatesResponse> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.party_id, "party_id", &mut v);
        let threshold = if req.min_name_similarity == 0.0 {
            0.6
        } else {
            req.min_name_similarity
        };
        v.check(
            threshold > 0.0 && threshold <= 1.0,
            "min_name_similarity",
            "must be between 0 (default 0.6) and 1",
        );
        v.finish()?;
        // A transaction only to scope the similarity threshold; it writes nothing.
        let mut tx = self.pool.begin().await?;
        let party = store::get_party(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Party", id))?;
        let mine = |kind: &str| -> HashSet<String> {
            party
                .contact_points
                .0
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.value.clone())
                .collect()
        };
        let (emails, phones) = (mine("email"), mine("phone"));
        let candidates = store::duplicate_candidates(&mut tx, &party, threshold)
            .await?
            .into_iter()
            .map(|(other, score)| {
                let shares = |kind: &str, values: &HashSet<String>| {
                    other
                        .contact_points
                        .0
                        .iter()
                        .any(|c| c.kind == kind && values.contains(&c.value))
                };
                let mut reasons = Vec::new();
                if party.tax_id.is_some() && party.tax_id == other.tax_id {
                    reasons.push("tax_id".to_owned());
                }
                if score >= threshold {
                    reasons.push("name".to_owned());
                }
                if shares("email", &emails) {
                    reasons.push("email".to_owned());
                }
                if shares("phone", &phones) {
                    reasons.push("phone".to_owned());
                }
                DuplicateCandidate {
                    party: Some(party_to_proto(&other)),
                    reasons,
                    name_similarity: score,
                }
            })
            .filter(|candidate| !candidate.reasons.is_empty())
            .collect();
        Ok(FindDuplicatesResponse { candidates })
    }

    pub async fn merge_parties(
        &self,
        subject: &str,
        req: MergePartiesRequest,
    ) -> Result<MergePartiesResponse> {
        let mut v = FieldViolations::new();
        let survivor_id = uuid(&req.surviving_party_id, "surviving_party_id", &mut v);
        let merged_id = uuid(&req.merged_party_id, "merged_party_id", &mut v);
        v.check(
            req.surviving_party_id.is_empty() || survivor_id != merged_id,
            "merged_party_id",
            "must differ from surviving_party_id",
        );
        v.finish()?;

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        // Lock in id order so two merges of the same pair cannot deadlock.
        let (first, second) = if survivor_id < merged_id {
            (survivor_id, merged_id)
        } else {
            (merged_id, survivor_id)
        };
        let first = locked_party(&mut tx, first).await?;
        let second = locked_party(&mut tx, second).await?;
        let (survivor, merged) = if first.id == survivor_id {
            (first, second)
        } else {
            (second, first)
        };
        require_active(&survivor)?;
        require_active(&merged)?;
        if survivor.kind != merged.kind {
            return Err(ServiceError::Precondition(
                "PARTY_KIND_MISMATCH",
                format!("cannot merge a {} into a {}", merged.kind, survivor.kind),
            ));
        }

        let moved_base_ids = store::move_bases(&mut tx, merged_id, survivor_id).await?;
        let moved_person_ids =
            store::move_employments(&mut tx, merged_id, survivor_id, subject).await?;
        let mut data = survivor.data();
        let mut moved_contacts: Vec<Contact> = Vec::new();
        for contact in &merged.contact_points.0 {
            let known = data
                .contact_points
                .iter()
                .any(|c| c.kind == contact.kind && c.value == contact.value);
            if !known {
                // The survivor's preferred contacts stay preferred.
                let moved = Contact {
                    preferred: false,
                    ..contact.clone()
                };
                data.contact_points.push(moved.clone());
                moved_contacts.push(moved);
            }
        }
        let mut changed = Vec::new();
        if !moved_contacts.is_empty() {
            changed.push("contact_points".to_owned());
            store::update_party(&mut tx, survivor_id, &data, subject).await?;
        }
        if !moved_base_ids.is_empty() {
            changed.push("base_ids".to_owned());
            if moved_contacts.is_empty() {
                store::touch_party(&mut tx, survivor_id, subject).await?;
            }
        }
        store::archive_party(&mut tx, merged_id, Some(survivor_id), subject).await?;

        let ids = |list: &[Uuid]| list.iter().map(Uuid::to_string).collect::<Vec<_>>();
        let merged_event = PartiesMerged {
            surviving_party_id: survivor_id.to_string(),
            merged_party_id: merged_id.to_string(),
            moved_person_ids: ids(&moved_person_ids),
            moved_base_ids: ids(&moved_base_ids),
        };
        events::party(&mut tx, survivor_id, &merged_event).await?;
        if !changed.is_empty() {
            let event = PartyUpdated {
                party_id: survivor_id.to_string(),
                changed_fields: changed,
            };
            events::party(&mut tx, survivor_id, &event).await?;
        }
        let archived = PartyArchived {
            party_id: merged_id.to_string(),
            merged_into_party_id: survivor_id.to_string(),
        };
        events::party(&mut tx, merged_id, &archived).await?;
        for person_id in &moved_person_ids {
            let event = PersonUpdated {
                person_id: person_id.to_string(),
                changed_fields: vec!["employments".to_owned()],
            };
            events::person(&mut tx, *person_id, &event).await?;
        }

        let response = MergePartiesResponse {
            surviving_party: Some(party_in(&mut tx, survivor_id).await?),
            moved_person_ids: ids(&moved_person_ids),
            moved_base_ids: ids(&moved_base_ids),
            moved_contact_points: domain::contacts_to_proto(&moved_contacts),
            dry_run: req.dry_run,
        };
        if req.dry_run {
            // The preview is the real merge, rolled back: it cannot disagree with the real one.
            tx.rollback().await?;
        } else {
            claim.commit(tx, &response).await?;
        }
        Ok(response)
    }

    // --- bases -----------------------------------------------------------------------------

    pub async fn create_base(&self, subject: &str, req: CreateBaseRequest) -> Result<Base> {
        let mut v = FieldViolations::new();
        v.check(req.base.is_some(), "base", "is required");
        let input = req.base.clone().unwrap_or_default();
        let name = domain::name(&input.display_name, "base.display_name", &mut v);
        v.check(
            input.description.len() <= 2000,
            "base.description",
            "must be at most 2000 characters",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let id = Uuid::now_v7();
        store::insert_base(&mut tx, id, &name, input.description.trim(), subject)
            .await
            .map_err(|e| base_name_taken(e, &name))?;
        let base = base_in(&mut tx, id).await?;
        claim.commit(tx, &base).await?;
        Ok(base)
    }

    pub async fn list_bases(&self, req: ListBasesRequest) -> Result<ListBasesResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let after: Option<Uuid> = decode_page_token(&req.page_token, &req.include_archived, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_bases(&mut conn, req.include_archived, after, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &req.include_archived)
        });
        Ok(ListBasesResponse {
            bases: rows.iter().map(base_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn update_base(&self, subject: &str, req: UpdateBaseRequest) -> Result<Base> {
        let mut v = FieldViolations::new();
        v.check(req.base.is_some(), "base", "is required");
        let input = req.base.clone().unwrap_or_default();
        let id = uuid(&input.id, "base.id", &mut v);
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &["display_name", "description", "archived"],
            &mut v,
        );
        let mut name = None;
        if paths.contains(&"display_name") {
            name = Some(domain::name(
                &input.display_name,
                "base.display_name",
                &mut v,
            ));
        }
        v.check(
            input.description.len() <= 2000,
            "base.description",
            "must be at most 2000 characters",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let mut base = store::lock_base(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Base", id))?;
        check_etag("base", &input.etag, base.version)?;
        if let Some(name) = name {
            base.display_name = name;
        }
        if paths.contains(&"description") {
            base.description = input.description.trim().to_owned();
        }
        if paths.contains(&"archived") {
            base.archived = input.archived;
        }
        store::update_base(&mut tx, &base, subject)
            .await
            .map_err(|e| base_name_taken(e, &base.display_name))?;
        let base = base_in(&mut tx, id).await?;
        claim.commit(tx, &base).await?;
        Ok(base)
    }

    pub async fn add_party_to_base(
        &self,
        subject: &str,
        req: AddPartyToBaseRequest,
    ) -> Result<Party> {
        let (party_id, base_id) = membership_ids(&req.party_id, &req.base_id)?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let party = locked_party(&mut tx, party_id).await?;
        require_active(&party)?;
        open_base(&mut tx, base_id).await?;
        if store::add_to_base(&mut tx, party_id, base_id).await? {
            base_membership_changed(&mut tx, party_id, subject).await?;
        }
        let party = party_in(&mut tx, party_id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn remove_party_from_base(
        &self,
        subject: &str,
        req: RemovePartyFromBaseRequest,
    ) -> Result<Party> {
        let (party_id, base_id) = membership_ids(&req.party_id, &req.base_id)?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        locked_party(&mut tx, party_id).await?;
        store::get_base(&mut tx, base_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Base", base_id))?;
        if store::remove_from_base(&mut tx, party_id, base_id).await? {
            base_membership_changed(&mut tx, party_id, subject).await?;
        }
        let party = party_in(&mut tx, party_id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    // --- persons ---------------------------------------------------------------------------

    pub async fn create_person(&self, subject: &str, req: CreatePersonRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        v.check(req.person.is_some(), "person", "is required");
        let input = req.person.clone().unwrap_or_default();
        let mut conn = self.pool.acquire().await?;
        let definitions = Self::definitions(&mut conn, "person").await?;
        drop(conn);
        let mut data = PersonData::default();
        for path in PERSON_PATHS {
            apply_person_field(path, &input, &mut data, &definitions, &mut v);
        }
        let mut employment = new_employment(&input.employments, &mut v);
        v.finish()?;

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
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
        events::person(&mut tx, id, &created).await?;
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    pub async fn get_person(&self, req: GetPersonRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
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

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let row = store::lock_person(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Person", id))?;
        check_etag("person", &input.etag, row.version)?;
        let definitions = Self::definitions(&mut tx, "person").await?;
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
        let current = store::employments(&mut tx, &[id])
            .await?
            .into_iter()
            .find(|e| e.end_date.is_none());
        let mut employment_changed = Vec::new();
        if let Some(new) = started.as_mut() {
            v.clone().finish()?;
            new.person_id = id;
            require_employer(&mut tx, new.organization_party_id).await?;
            check_supervisor(&mut tx, new).await?;
            if let Some(mut previous) = current.clone() {
                if previous.organization_party_id == new.organization_party_id {
                    return Err(ServiceError::Precondition(
                        "ALREADY_EMPLOYED",
                        format!(
                            "person {id} already works for {}; change the current employment with employment.* paths",
                            new.organization_party_id
                        ),
                    ));
                }
                // The previous job ends the day before the new one starts (today when undated).
                let end = new
                    .start_date
                    .and_then(|start| start.pred_opt())
                    .unwrap_or_else(|| chrono::Utc::now().date_naive());
                if previous.start_date.is_some_and(|start| end < start) {
                    let mut v = FieldViolations::new();
                    v.add(
                        "person.employments[0].start_date",
                        "must be after the current employment's start_date",
                    );
                    return Err(v.into());
                }
                previous.end_date = Some(end);
                store::update_employment(&mut tx, &previous).await?;
                let ended = EmploymentEnded {
                    person_id: id.to_string(),
                    organization_party_id: previous.organization_party_id.to_string(),
                };
                events::person(&mut tx, id, &ended).await?;
            }
            store::insert_employment(&mut tx, new).await?;
            employment_changed.push("employments".to_owned());
        }
        if !employment_paths.is_empty() {
            let Some(current) = current else {
                return Err(ServiceError::Precondition(
                    "NO_CURRENT_EMPLOYMENT",
                    format!("person {id} has no current employment to update"),
                ));
            };
            let job = input.employments.first().cloned().unwrap_or_default();
            let mut updated = current.clone();
            for path in &employment_paths {
                apply_employment_field(path, &job, "person.employments[0]", &mut updated, &mut v);
            }
            v.clone().finish()?;
            check_supervisor(&mut tx, &updated).await?;
            if updated != current {
                store::update_employment(&mut tx, &updated).await?;
                employment_changed.push("employments".to_owned());
            }
        }
        v.finish()?;

        let mut changed = changed_person_fields(&before, &after);
        if let Some(party_id) = row.natural_party_id {
            let shared: Vec<String> = SHARED_FIELDS
                .iter()
                .filter(|(person_field, _)| changed.iter().any(|c| c == person_field))
                .map(|(_, party_field)| party_field.to_string())
                .collect();
            if !shared.is_empty() {
                let party = locked_party(&mut tx, party_id).await?;
                let mut data = party.data();
                data.given_name = after.given_name.clone();
                data.family_name = after.family_name.clone();
                data.display_name = person_display_name(&after.given_name, &after.family_name);
                data.contact_points = after.private_contact_points.clone();
                data.addresses = after.home_addresses.clone();
                store::update_party(&mut tx, party_id, &data, subject).await?;
                let mut changed_fields = shared;
                if data.display_name != party.display_name {
                    changed_fields.push("display_name".to_owned());
                }
                let event = PartyUpdated {
                    party_id: party_id.to_string(),
                    changed_fields,
                };
                events::party(&mut tx, party_id, &event).await?;
            }
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
            events::person(&mut tx, id, &event).await?;
        }
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    pub async fn list_persons(&self, req: ListPersonsRequest) -> Result<ListPersonsResponse> {
        let mut v = FieldViolations::new();
        let organization = uuid(&req.organization_party_id, "organization_party_id", &mut v);
        let limit = page_size(req.page_size, &mut v);
        let filter = (organization, req.include_former);
        let after: Option<Uuid> = decode_page_token(&req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_party(&mut conn, organization)
            .await?
            .ok_or_else(|| ServiceError::not_found("Party", organization))?;
        let mut rows = store::list_persons(
            &mut conn,
            organization,
            req.include_former,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &filter)
        });
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let employments = store::employments(&mut conn, &ids).await?;
        let persons = rows
            .iter()
            .map(|row| {
                let mine: Vec<EmploymentRow> = employments
                    .iter()
                    .filter(|e| e.person_id == row.id)
                    .cloned()
                    .collect();
                person_to_proto(row, &mine)
            })
            .collect();
        Ok(ListPersonsResponse {
            persons,
            next_page_token,
        })
    }

    pub async fn end_employment(&self, subject: &str, req: EndEmploymentRequest) -> Result<Person> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.person_id, "person_id", &mut v);
        let end = date(req.end_date.as_ref(), "end_date", &mut v)
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let row = store::lock_person(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Person", id))?;
        check_etag("person", &req.etag, row.version)?;
        let current = store::employments(&mut tx, &[id])
            .await?
            .into_iter()
            .find(|e| e.end_date.is_none());
        let Some(mut current) = current else {
            return Err(ServiceError::Precondition(
                "NO_CURRENT_EMPLOYMENT",
                format!("person {id} has no current employment to end"),
            ));
        };
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
        events::person(&mut tx, id, &event).await?;
        let person = person_in(&mut tx, id).await?;
        claim.commit(tx, &person).await?;
        Ok(person)
    }

    // --- custom fields ---------------------------------------------------------------------

    pub async fn define_custom_field(
        &self,
        subject: &str,
        req: DefineCustomFieldRequest,
    ) -> Result<CustomFieldDefinition> {
        let mut v = FieldViolations::new();
        v.check(req.field.is_some(), "field", "is required");
        let input = req.field.clone().unwrap_or_default();
        domain::definition(&input, &mut v);
        v.finish()?;
        let entity = domain::entity_name(input.entity()).unwrap_or_default();
        let row = FieldRow {
            entity: entity.to_owned(),
            key: input.key.clone(),
            label: input.label.trim().to_owned(),
            field_type: domain::field_type_name(input.r#type())
                .unwrap_or_default()
                .to_owned(),
            required: input.required,
            options: input.options.iter().map(|o| o.trim().to_owned()).collect(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
        };
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        if let Some(stored) = store::define_custom_field(&mut tx, &row, subject).await? {
            return Err(ServiceError::Precondition(
                "CUSTOM_FIELD_TYPE_FIXED",
                format!(
                    "{entity} field {:?} is of type {stored}; a field's type cannot change",
                    row.key
                ),
            ));
        }
        let stored = store::custom_fields(&mut tx, Some(entity))
            .await?
            .into_iter()
            .find(|f| f.key == row.key)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("defined field vanished")))?;
        let field = field_to_proto(&stored);
        claim.commit(tx, &field).await?;
        Ok(field)
    }

    pub async fn list_custom_fields(
        &self,
        req: ListCustomFieldsRequest,
    ) -> Result<ListCustomFieldsResponse> {
        let mut conn = self.pool.acquire().await?;
        let rows = store::custom_fields(&mut conn, domain::entity_name(req.entity())).await?;
        Ok(ListCustomFieldsResponse {
            fields: rows.iter().map(field_to_proto).collect(),
        })
    }
}

// --- helpers shared by the use cases ----------------------------------------------------------

fn require_active(party: &PartyRow) -> Result<()> {
    if party.is_active() {
        return Ok(());
    }
    let why = match party.merged_into {
        Some(survivor) => format!("party {} was merged into {survivor}", party.id),
        None => format!("party {} is archived", party.id),
    };
    Err(ServiceError::Precondition("PARTY_ARCHIVED", why))
}

async fn locked_party(tx: &mut kit_store::Tx, id: Uuid) -> Result<PartyRow> {
    store::lock_party(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Party", id))
}

async fn party_in(conn: &mut PgConnection, id: Uuid) -> Result<Party> {
    let row = store::get_party(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Party", id))?;
    Ok(party_to_proto(&row))
}

async fn base_in(conn: &mut PgConnection, id: Uuid) -> Result<Base> {
    let row = store::get_base(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Base", id))?;
    Ok(base_to_proto(&row))
}

async fn person_in(conn: &mut PgConnection, id: Uuid) -> Result<Person> {
    let row = store::get_person(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Person", id))?;
    let employments = store::employments(conn, &[id]).await?;
    Ok(person_to_proto(&row, &employments))
}

/// A base that exists and is not archived, locked against a concurrent archive.
async fn open_base(tx: &mut kit_store::Tx, id: Uuid) -> Result<BaseRow> {
    let base = store::lock_base(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Base", id))?;
    if base.archived {
        return Err(ServiceError::Precondition(
            "BASE_ARCHIVED",
            format!("base {id} is archived"),
        ));
    }
    Ok(base)
}

fn base_name_taken(error: sqlx::Error, name: &str) -> ServiceError {
    if unique_violation(&error) == Some("bases_display_name_key") {
        ServiceError::AlreadyExists(
            "BASE_NAME_TAKEN",
            format!("a base named {name:?} already exists"),
        )
    } else {
        error.into()
    }
}

fn membership_ids(party_id: &str, base_id: &str) -> Result<(Uuid, Uuid)> {
    let mut v = FieldViolations::new();
    let ids = (
        uuid(party_id, "party_id", &mut v),
        uuid(base_id, "base_id", &mut v),
    );
    v.finish()?;
    Ok(ids)
}

async fn base_membership_changed(
    tx: &mut kit_store::Tx,
    party_id: Uuid,
    subject: &str,
) -> Result<()> {
    store::touch_party(tx, party_id, subject).await?;
    let event = PartyUpdated {
        party_id: party_id.to_string(),
        changed_fields: vec!["base_ids".to_owned()],
    };
    events::party(tx, party_id, &event).await?;
    Ok(())
}

/// A natural person's party changed data their person record shows: the person's etag moves
/// and subscribers of the person topic hear of it.
async fn natural_person_followed(
    tx: &mut kit_store::Tx,
    person_id: Uuid,
    party_changes: &[String],
    subject: &str,
) -> Result<()> {
    let changed: Vec<String> = SHARED_FIELDS
        .iter()
        .filter(|(_, party_field)| party_changes.iter().any(|c| c == party_field))
        .map(|(person_field, _)| person_field.to_string())
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let person = store::lock_person(tx, person_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Person", person_id))?;
    store::write_person(tx, person_id, true, &person.data(), subject, true).await?;
    let event = PersonUpdated {
        person_id: person_id.to_string(),
        changed_fields: changed,
    };
    events::person(tx, person_id, &event).await?;
    Ok(())
}

async fn check_supervisor(tx: &mut kit_store::Tx, employment: &EmploymentRow) -> Result<()> {
    let Some(supervisor) = employment.supervisor_person_id else {
        return Ok(());
    };
    if supervisor == employment.person_id
        || !store::is_current_employee(tx, supervisor, employment.organization_party_id).await?
    {
        return Err(ServiceError::Precondition(
            "SUPERVISOR_NOT_EMPLOYED",
            format!(
                "supervisor {supervisor} is not another current employee of organization {}",
                employment.organization_party_id
            ),
        ));
    }
    Ok(())
}

/// The one employment a request starts (`employments[0]`), validated; the person id is set later.
fn new_employment(jobs: &[Employment], v: &mut FieldViolations) -> EmploymentRow {
    const AT: &str = "person.employments[0]";
    if jobs.len() != 1 {
        v.add(
            "person.employments",
            "give exactly one employment: the new current one",
        );
    }
    let job = jobs.first().cloned().unwrap_or_default();
    let mut employment = EmploymentRow {
        id: Uuid::now_v7(),
        person_id: Uuid::nil(),
        organization_party_id: uuid(
            &job.organization_party_id,
            &format!("{AT}.organization_party_id"),
            v,
        ),
        position: String::new(),
        department: String::new(),
        supervisor_person_id: None,
        business_contact_points: sqlx::types::Json(Vec::new()),
        start_date: date(job.start_date.as_ref(), &format!("{AT}.start_date"), v),
        end_date: None,
    };
    v.check(
        job.end_date.is_none(),
        format!("{AT}.end_date"),
        "a new employment is current; end it with EndEmployment",
    );
    for path in EMPLOYMENT_PATHS {
        apply_employment_field(path, &job, AT, &mut employment, v);
    }
    employment
}

/// An active organization, locked: persons can only start working for one of those.
async fn require_employer(tx: &mut kit_store::Tx, organization_id: Uuid) -> Result<()> {
    let organization = locked_party(tx, organization_id).await?;
    require_active(&organization)?;
    if organization.kind != "organization" {
        return Err(ServiceError::Precondition(
            "NOT_AN_ORGANIZATION",
            format!(
                "party {organization_id} is a natural person; persons are employed by organizations"
            ),
        ));
    }
    Ok(())
}

fn person_display_name(given: &str, family: &str) -> String {
    format!("{given} {family}").trim().to_owned()
}

/// Validates and applies one field of `input` at `path`. On create every path is applied and
/// fields that do not fit the kind must be empty; on update (`explicit`) naming them is an error.
#[allow(clippy::too_many_arguments)]
fn apply_party_field(
    path: &str,
    organization: bool,
    explicit: bool,
    input: &Party,
    data: &mut PartyData,
    definitions: &[CustomFieldDefinition],
    v: &mut FieldViolations,
) {
    match path {
        "display_name" if organization => {
            data.display_name = domain::name(&input.display_name, "party.display_name", v)
        }
        "display_name" => v.check(
            !explicit,
            "update_mask",
            "a natural person's display_name follows person_name; update person_name",
        ),
        "person_name" if organization => v.check(
            !explicit
                && input
                    .person_name
                    .as_ref()
                    .is_none_or(|n| n.given_name.is_empty() && n.family_name.is_empty()),
            "party.person_name",
            "only natural persons have a person_name",
        ),
        "person_name" => {
            let name = input.person_name.clone().unwrap_or_default();
            (data.given_name, data.family_name) =
                person_name(&name.given_name, &name.family_name, "party.person_name", v);
            data.display_name = person_display_name(&data.given_name, &data.family_name);
        }
        "legal_name" | "registration_numbers" if !organization => {
            let empty = if path == "legal_name" {
                input.legal_name.is_empty()
            } else {
                input.registration_numbers.is_empty()
            };
            v.check(
                !explicit && empty,
                format!("party.{path}"),
                "only organizations have this field",
            );
        }
        "legal_name" => {
            let legal = input.legal_name.trim();
            v.check(
                legal.chars().count() <= 300,
                "party.legal_name",
                "must be at most 300 characters",
            );
            data.legal_name = legal.to_owned();
        }
        "registration_numbers" => {
            data.registration_numbers =
                domain::registrations(&input.registration_numbers, "party.registration_numbers", v)
        }
        "tax_id" => {
            data.tax_id = Some(input.tax_id.trim())
                .filter(|t| !t.is_empty())
                .and_then(|raw| {
                    domain::normalize_tax_id(raw)
                        .map_err(|e| v.add("party.tax_id", e))
                        .ok()
                })
        }
        "tags" => data.tags = domain::tags(&input.tags, "party.tags", v),
        "custom_fields" => {
            data.custom_fields =
                domain::custom_values(&input.custom_fields, definitions, "party.custom_fields", v)
        }
        "contact_points" => {
            data.contact_points = domain::contacts(&input.contact_points, "party.contact_points", v)
        }
        "addresses" => data.addresses = domain::addresses(&input.addresses, "party.addresses", v),
        other => v.add("update_mask", format!("{other:?} cannot be updated")),
    }
}

/// Given and family name, trimmed; at least one of them.
fn person_name(
    given: &str,
    family: &str,
    field: &str,
    v: &mut FieldViolations,
) -> (String, String) {
    let (given, family) = (given.trim().to_owned(), family.trim().to_owned());
    v.check(
        !(given.is_empty() && family.is_empty()),
        field,
        "needs a given_name or a family_name",
    );
    v.check(
        given.chars().count() <= 300 && family.chars().count() <= 300,
        field,
        "names must be at most 300 characters",
    );
    (given, family)
}

fn changed_party_fields(before: &PartyData, after: &PartyData) -> Vec<String> {
    let checks = [
        ("display_name", before.display_name != after.display_name),
        (
            "person_name",
            (&before.given_name, &before.family_name) != (&after.given_name, &after.family_name),
        ),
        ("legal_name", before.legal_name != after.legal_name),
        ("tax_id", before.tax_id != after.tax_id),
        (
            "registration_numbers",
            before.registration_numbers != after.registration_numbers,
        ),
        ("tags", before.tags != after.tags),
        ("custom_fields", before.custom_fields != after.custom_fields),
        (
            "contact_points",
            before.contact_points != after.contact_points,
        ),
        ("addresses", before.addresses != after.addresses),
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
}

fn gender_name(gender: Gender) -> &'static str {
    match gender {
        Gender::Female => "female",
        Gender::Male => "male",
        Gender::Other => "other",
        Gender::Unspecified => "unspecified",
    }
}

fn gender_from_name(name: &str) -> Gender {
    match name {
        "female" => Gender::Female,
        "male" => Gender::Male,
        "other" => Gender::Other,
        _ => Gender::Unspecified,
    }
}

fn short_texts(list: &[String], field: &str, v: &mut FieldViolations) -> Vec<String> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let s = s.trim();
            v.check(
                s.chars().count() <= 200,
                format!("{field}[{i}]"),
                "must be at most 200 characters",
            );
            (!s.is_empty()).then(|| s.to_owned())
        })
        .collect()
}

fn apply_person_field(
    path: &str,
    input: &Person,
    data: &mut PersonData,
    definitions: &[CustomFieldDefinition],
    v: &mut FieldViolations,
) {
    let short = |s: &str, field: &str, v: &mut FieldViolations| {
        v.check(
            s.trim().chars().count() <= 300,
            field,
            "must be at most 300 characters",
        );
        s.trim().to_owned()
    };
    match path {
        "name" => {
            let name = input.name.clone().unwrap_or_default();
            (data.given_name, data.family_name) =
                person_name(&name.given_name, &name.family_name, "person.name", v);
        }
        "gender" => data.gender = gender_name(input.gender()).to_owned(),
        "profession" => data.profession = short(&input.profession, "person.profession", v),
        "education" => data.education = short(&input.education, "person.education", v),
        "private_contact_points" => {
            data.private_contact_points = domain::contacts(
                &input.private_contact_points,
                "person.private_contact_points",
                v,
            )
        }
        "home_addresses" => {
            data.home_addresses =
                domain::addresses(&input.home_addresses, "person.home_addresses", v)
        }
        "birthday" => data.birthday = date(input.birthday.as_ref(), "person.birthday", v),
        "name_day" => {
            // Name days recur every year: only month and day count, kept in the leap year 2000.
            data.name_day = input.name_day.as_ref().and_then(|d| {
                let yearless = crm_proto::crm::common::v1::Date { year: 2000, ..*d };
                date(Some(&yearless), "person.name_day", v)
            })
        }
        "anniversaries" => {
            data.anniversaries = input
                .anniversaries
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    let at = format!("person.anniversaries[{i}]");
                    let label = domain::name(&a.label, &format!("{at}.label"), v);
                    v.check(a.date.is_some(), format!("{at}.date"), "is required");
                    let date = date(a.date.as_ref(), &format!("{at}.date"), v)?;
                    Some(AnniversaryJson { label, date })
                })
                .collect()
        }
        "family" => {
            data.family = input
                .family
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let at = format!("person.family[{i}]");
                    FamilyJson {
                        relation: domain::name(&m.relation, &format!("{at}.relation"), v),
                        name: short(&m.name, &format!("{at}.name"), v),
                        birthday: date(m.birthday.as_ref(), &format!("{at}.birthday"), v),
                    }
                })
                .collect()
        }
        "hobbies" => data.hobbies = short_texts(&input.hobbies, "person.hobbies", v),
        "interests" => data.interests = short_texts(&input.interests, "person.interests", v),
        "remarks" => {
            v.check(
                input.remarks.chars().count() <= 10_000,
                "person.remarks",
                "must be at most 10000 characters",
            );
            data.remarks = input.remarks.trim().to_owned();
        }
        "custom_fields" => {
            data.custom_fields =
                domain::custom_values(&input.custom_fields, definitions, "person.custom_fields", v)
        }
        other => v.add("update_mask", format!("{other:?} cannot be updated")),
    }
}

fn apply_employment_field(
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

fn changed_person_fields(before: &PersonData, after: &PersonData) -> Vec<String> {
    let checks = [
        (
            "name",
            (&before.given_name, &before.family_name) != (&after.given_name, &after.family_name),
        ),
        ("gender", before.gender != after.gender),
        ("profession", before.profession != after.profession),
        ("education", before.education != after.education),
        (
            "private_contact_points",
            before.private_contact_points != after.private_contact_points,
        ),
        (
            "home_addresses",
            before.home_addresses != after.home_addresses,
        ),
        ("birthday", before.birthday != after.birthday),
        ("name_day", before.name_day != after.name_day),
        ("anniversaries", before.anniversaries != after.anniversaries),
        ("family", before.family != after.family),
        ("hobbies", before.hobbies != after.hobbies),
        ("interests", before.interests != after.interests),
        ("remarks", before.remarks != after.remarks),
        ("custom_fields", before.custom_fields != after.custom_fields),
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
}

// --- storage rows to API messages -------------------------------------------------------------

pub fn party_to_proto(row: &PartyRow) -> Party {
    let person = row.kind == "person";
    Party {
        id: row.id.to_string(),
        kind: if person {
            PartyKind::Person
        } else {
            PartyKind::Organization
        } as i32,
        display_name: row.display_name.clone(),
        status: if row.is_active() {
            PartyStatus::Active
        } else {
            PartyStatus::Archived
        } as i32,
        person_name: person.then(|| PersonName {
            given_name: row.given_name.clone(),
            family_name: row.family_name.clone(),
        }),
        legal_name: row.legal_name.clone(),
        tax_id: row.tax_id.clone().unwrap_or_default(),
        registration_numbers: row
            .registration_numbers
            .0
            .iter()
            .map(|r| RegistrationNumber {
                scheme: r.scheme.clone(),
                value: r.value.clone(),
            })
            .collect(),
        tags: row.tags.clone(),
        custom_fields: domain::custom_values_to_proto(&row.custom_fields.0),
        contact_points: domain::contacts_to_proto(&row.contact_points.0),
        addresses: domain::addresses_to_proto(&row.addresses.0),
        base_ids: row.base_ids.iter().map(Uuid::to_string).collect(),
        person_id: row.person_id.map(|id| id.to_string()).unwrap_or_default(),
        merged_into_party_id: row.merged_into.map(|id| id.to_string()).unwrap_or_default(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

fn base_to_proto(row: &BaseRow) -> Base {
    Base {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        archived: row.archived,
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

fn person_to_proto(row: &PersonRow, employments: &[EmploymentRow]) -> Person {
    Person {
        id: row.id.to_string(),
        name: Some(PersonName {
            given_name: row.given_name.clone(),
            family_name: row.family_name.clone(),
        }),
        gender: gender_from_name(&row.gender) as i32,
        profession: row.profession.clone(),
        education: row.education.clone(),
        natural_party_id: row
            .natural_party_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        employments: employments
            .iter()
            .map(|e| Employment {
                organization_party_id: e.organization_party_id.to_string(),
                position: e.position.clone(),
                department: e.department.clone(),
                supervisor_person_id: e
                    .supervisor_person_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                business_contact_points: domain::contacts_to_proto(&e.business_contact_points.0),
                start_date: e.start_date.map(date_to_proto),
                end_date: e.end_date.map(date_to_proto),
            })
            .collect(),
        private_contact_points: domain::contacts_to_proto(&row.private_contact_points.0),
        home_addresses: domain::addresses_to_proto(&row.home_addresses.0),
        birthday: row.birthday.map(date_to_proto),
        name_day: row.name_day.map(|d| crm_proto::crm::common::v1::Date {
            year: 0,
            ..date_to_proto(d)
        }),
        anniversaries: row
            .anniversaries
            .0
            .iter()
            .map(|a| Anniversary {
                label: a.label.clone(),
                date: Some(date_to_proto(a.date)),
            })
            .collect(),
        family: row
            .family
            .0
            .iter()
            .map(|m| FamilyMember {
                relation: m.relation.clone(),
                name: m.name.clone(),
                birthday: m.birthday.map(date_to_proto),
            })
            .collect(),
        hobbies: row.hobbies.clone(),
        interests: row.interests.clone(),
        remarks: row.remarks.clone(),
        custom_fields: domain::custom_values_to_proto(&row.custom_fields.0),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

fn field_to_proto(row: &FieldRow) -> CustomFieldDefinition {
    let entity = match row.entity.as_str() {
        "person" => CustomFieldEntity::Person,
        _ => CustomFieldEntity::Party,
    };
    let field_type = match row.field_type.as_str() {
        "number" => CustomFieldType::Number,
        "date" => CustomFieldType::Date,
        "boolean" => CustomFieldType::Boolean,
        "enum" => CustomFieldType::Enum,
        _ => CustomFieldType::Text,
    };
    CustomFieldDefinition {
        entity: entity as i32,
        key: row.key.clone(),
        label: row.label.clone(),
        r#type: field_type as i32,
        required: row.required,
        options: row.options.clone(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
    }
}
