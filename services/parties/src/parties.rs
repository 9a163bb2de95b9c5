//! Parties: organizations and natural persons, created, read, changed, archived, listed and
//! searched, and their likely duplicates.

use std::collections::HashSet;

use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, mask_paths, optional_uuid, uuid},
    store::{self as kit_store, Page},
};
use crm_proto::crm::parties::v1::{
    ArchivePartyRequest, CreatePartyRequest, DuplicateCandidate, FindDuplicatesRequest,
    FindDuplicatesResponse, GetPartyRequest, ListPartiesRequest, ListPartiesResponse, Party,
    PartyArchived, PartyCreated, PartyUpdated, PersonCreated, PersonUpdated, SearchPartiesRequest,
    SearchPartiesResponse, UpdatePartyRequest,
};
use uuid::Uuid;

use crate::{
    Parties,
    convert::party_to_proto,
    domain::{
        self, PartyData, PersonData,
        fields::{PARTY_PATHS, SHARED_FIELDS, apply_party_field, changed_party_fields},
    },
    events,
    lookups::{definitions, locked_party, open_base, party_in, require_active},
    store::{self, PartyFilter, PartySearch, SearchPosition},
};

impl Parties {
    pub async fn create_party(&self, subject: &str, req: CreatePartyRequest) -> Result<Party> {
        let mut v = FieldViolations::new();
        v.check(req.party.is_some(), "party", "is required");
        let input = req.party.clone().unwrap_or_default();
        let kind = domain::PartyKind::require(input.kind, "party.kind", &mut v);
        let organization = kind == domain::PartyKind::Organization;
        let mut conn = self.pool.acquire().await?;
        let definitions = definitions(&mut conn, domain::FieldEntity::Party).await?;
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

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let id = Uuid::now_v7();
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
            events::PERSON.enqueue(&mut tx, person_id, &created).await?;
        }
        let created = PartyCreated {
            party_id: id.to_string(),
            kind: input.kind,
            base_ids: req.base_ids.clone(),
        };
        events::PARTY.enqueue(&mut tx, id, &created).await?;
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn get_party(&self, req: GetPartyRequest) -> Result<Party> {
        let id = request::id(&req.id, "id")?;
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

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = locked_party(&mut tx, id).await?;
        check_etag("party", &input.etag, row.version)?;
        require_active(&row)?;
        let definitions = definitions(&mut tx, domain::FieldEntity::Party).await?;
        let organization = row.kind == domain::PartyKind::Organization;
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
            events::PARTY.enqueue(&mut tx, id, &event).await?;
            if let Some(person_id) = row.person_id {
                natural_person_followed(&mut tx, person_id, &changed, subject).await?;
            }
        }
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn archive_party(&self, subject: &str, req: ArchivePartyRequest) -> Result<Party> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let row = locked_party(&mut tx, id).await?;
        check_etag("party", &req.etag, row.version)?;
        if row.is_active() {
            store::archive_party(&mut tx, id, None, subject).await?;
            let event = PartyArchived {
                party_id: id.to_string(),
                merged_into_party_id: String::new(),
            };
            events::PARTY.enqueue(&mut tx, id, &event).await?;
        }
        let party = party_in(&mut tx, id).await?;
        claim.commit(tx, &party).await?;
        Ok(party)
    }

    pub async fn list_parties(&self, req: ListPartiesRequest) -> Result<ListPartiesResponse> {
        let mut v = FieldViolations::new();
        let filter = PartyFilter {
            kind: domain::PartyKind::from_proto(req.kind()),
            base_id: optional_uuid(&req.base_id, "base_id", &mut v),
            status: domain::PartyStatus::from_proto(req.status())
                .unwrap_or(domain::PartyStatus::Active),
            tag: Some(req.tag.trim().to_owned()).filter(|t| !t.is_empty()),
        };
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_parties(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListPartiesResponse {
            parties: rows.iter().map(party_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn search_parties(&self, req: SearchPartiesRequest) -> Result<SearchPartiesResponse> {
        let mut v = FieldViolations::new();
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
        let page: Page<SearchPosition> = Page::new(req.page_size, &req.page_token, &search, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut hits = store::search_parties(&mut conn, &search, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut hits, |(party, score)| SearchPosition {
            score: *score,
            id: party.id,
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
        let page: Page<SearchPosition> =
            Page::new(req.page_size, &req.page_token, &(id, threshold), &mut v);
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
        let mut hits = store::duplicate_candidates(
            &mut tx,
            &party,
            threshold,
            page.after.as_ref(),
            page.limit(),
        )
        .await?;
        let next_page_token = page.finish(&mut hits, |(other, score)| SearchPosition {
            score: *score,
            id: other.id,
        });
        let candidates = hits
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
        Ok(FindDuplicatesResponse {
            candidates,
            next_page_token,
        })
    }
}

/// A natural person's party changed data their person record shows: the person's etag moves
/// and subscribers of the person topic hear of it.
pub(crate) async fn natural_person_followed(
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
    events::PERSON.enqueue(tx, person_id, &event).await?;
    Ok(())
}
