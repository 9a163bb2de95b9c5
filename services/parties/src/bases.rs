//! Bases: the user-defined groups parties belong to (customers, suppliers, prospects, …).

use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, mask_paths, uuid},
    store::{self as kit_store, Page, unique_violation},
};
use crm_proto::crm::parties::v1::{
    AddPartyToBaseRequest, Base, CreateBaseRequest, GetBaseRequest, ListBasesRequest,
    ListBasesResponse, Party, PartyUpdated, RemovePartyFromBaseRequest, UpdateBaseRequest,
};
use uuid::Uuid;

use crate::{
    Parties,
    convert::base_to_proto,
    domain::{self},
    error::Refusal,
    events,
    lookups::{base_in, locked_party, open_base, party_in, require_active},
    store::{self},
};

impl Parties {
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
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let id = Uuid::now_v7();
        store::insert_base(&mut tx, id, &name, input.description.trim(), subject)
            .await
            .map_err(|e| base_name_taken(e, &name))?;
        let base = base_in(&mut tx, id).await?;
        events::base_changed(&mut tx, &base, "created").await?;
        claim.commit(tx, &base).await?;
        Ok(base)
    }

    pub async fn get_base(&self, req: GetBaseRequest) -> Result<Base> {
        let id = request::id(&req.id, "id")?;
        base_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn list_bases(&self, req: ListBasesRequest) -> Result<ListBasesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<Uuid> = Page::new(
            req.page_size,
            &req.page_token,
            &req.include_archived,
            &mut v,
        );
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            store::list_bases(&mut conn, req.include_archived, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
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
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
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
        events::base_changed(&mut tx, &base, "updated").await?;
        claim.commit(tx, &base).await?;
        Ok(base)
    }

    pub async fn add_party_to_base(
        &self,
        subject: &str,
        req: AddPartyToBaseRequest,
    ) -> Result<Party> {
        let (party_id, base_id) = membership_ids(&req.party_id, &req.base_id)?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
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
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
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
}

pub(crate) fn base_name_taken(error: sqlx::Error, name: &str) -> ServiceError {
    if unique_violation(&error) == Some("bases_display_name_key") {
        Refusal::BaseNameTaken {
            name: name.to_owned(),
        }
        .into()
    } else {
        error.into()
    }
}

pub(crate) fn membership_ids(party_id: &str, base_id: &str) -> Result<(Uuid, Uuid)> {
    let mut v = FieldViolations::new();
    let ids = (
        uuid(party_id, "party_id", &mut v),
        uuid(base_id, "base_id", &mut v),
    );
    v.finish()?;
    Ok(ids)
}

pub(crate) async fn base_membership_changed(
    tx: &mut kit_store::Tx,
    party_id: Uuid,
    subject: &str,
) -> Result<()> {
    store::touch_party(tx, party_id, subject).await?;
    let event = PartyUpdated {
        party_id: party_id.to_string(),
        changed_fields: vec!["base_ids".to_owned()],
    };
    events::PARTY.enqueue(tx, party_id, &event).await?;
    Ok(())
}
