//! Purposes: what subjects consent to, under which legal basis, with versioned texts.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{code, mask_paths, required, text},
    store::{Page, unique_violation},
};
use crm_proto::crm::consent::v1::*;
use sqlx::PgConnection;

use crate::{
    Consents, convert,
    domain::LegalBasis,
    error::Refusal,
    events,
    store::{
        audit::{self, Audit},
        purposes,
    },
};

impl Consents {
    pub async fn create_purpose(&self, caller: &str, req: CreatePurposeRequest) -> Result<Purpose> {
        let mut v = FieldViolations::new();
        let input = required(req.purpose.clone(), "purpose", &mut v);
        let code = code(&input.code, "purpose.code", &mut v);
        let description = text(&input.description, "purpose.description", &mut v);
        let text = text(&input.text, "purpose.text", &mut v);
        let basis = LegalBasis::require(input.legal_basis, "purpose.legal_basis", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        if let Err(error) = purposes::insert(&mut tx, &code, &description, basis, &text).await {
            return Err(match unique_violation(&error) {
                Some(_) => Refusal::PurposeExists { code }.into(),
                None => error.into(),
            });
        }
        let entry = Audit {
            actor: caller,
            action: "purpose.created",
            subject: None,
            purpose: Some(&code),
            details: serde_json::json!({ "legal_basis": basis, "text_version": 1 }),
        };
        audit::append(&mut tx, entry).await?;
        let purpose = answer(&mut tx, &code).await?;
        events::purpose_changed(&mut tx, &purpose, "created").await?;
        claim.commit(tx, &purpose).await?;
        Ok(purpose)
    }

    pub async fn list_purposes(&self, req: ListPurposesRequest) -> Result<ListPurposesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<String> = Page::new(req.page_size, &req.page_token, &(), &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = purposes::list(&mut conn, page.after.as_deref(), page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.code.clone());
        Ok(ListPurposesResponse {
            purposes: rows.iter().map(convert::purpose).collect(),
            next_page_token,
        })
    }

    pub async fn get_purpose(&self, req: GetPurposeRequest) -> Result<Purpose> {
        answer(&mut *self.pool.acquire().await?, &req.code).await
    }

    pub async fn update_purpose(&self, caller: &str, req: UpdatePurposeRequest) -> Result<Purpose> {
        let mut v = FieldViolations::new();
        let input = required(req.purpose.clone(), "purpose", &mut v);
        mask_paths(req.update_mask.as_ref(), &["description"], &mut v);
        let description = text(&input.description, "purpose.description", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let purpose = purposes::lock(&mut tx, &input.code)
            .await?
            .ok_or_else(|| ServiceError::not_found("Purpose", &input.code))?;
        check_etag("purpose", &input.etag, purpose.version)?;
        let changed = purpose.description != description;
        if changed {
            purposes::set_description(&mut tx, &purpose.code, &description).await?;
            let entry = Audit {
                actor: caller,
                action: "purpose.updated",
                subject: None,
                purpose: Some(&purpose.code),
                details: serde_json::json!({ "changed": ["description"] }),
            };
            audit::append(&mut tx, entry).await?;
        }
        let purpose = answer(&mut tx, &purpose.code).await?;
        if changed {
            events::purpose_changed(&mut tx, &purpose, "updated").await?;
        }
        claim.commit(tx, &purpose).await?;
        Ok(purpose)
    }

    pub async fn list_purpose_texts(
        &self,
        req: ListPurposeTextsRequest,
    ) -> Result<ListPurposeTextsResponse> {
        let mut v = FieldViolations::new();
        let page: Page<i32> = Page::new(req.page_size, &req.page_token, &req.code, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        purposes::get(&mut conn, &req.code)
            .await?
            .ok_or_else(|| ServiceError::not_found("Purpose", &req.code))?;
        let mut rows = purposes::texts(&mut conn, &req.code, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.version);
        Ok(ListPurposeTextsResponse {
            texts: rows.iter().map(convert::purpose_text).collect(),
            next_page_token,
        })
    }

    pub async fn publish_purpose_text(
        &self,
        caller: &str,
        req: PublishPurposeTextRequest,
    ) -> Result<Purpose> {
        let mut v = FieldViolations::new();
        let text = text(&req.text, "text", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let current = purposes::lock_version(&mut tx, &req.code)
            .await?
            .ok_or_else(|| ServiceError::not_found("Purpose", &req.code))?;
        let version = current + 1;
        purposes::publish_text(&mut tx, &req.code, version, &text, req.requires_reconsent).await?;
        let entry = Audit {
            actor: caller,
            action: "purpose.text_published",
            subject: None,
            purpose: Some(&req.code),
            details: serde_json::json!({ "text_version": version, "requires_reconsent": req.requires_reconsent }),
        };
        audit::append(&mut tx, entry).await?;
        let purpose = answer(&mut tx, &req.code).await?;
        events::purpose_changed(&mut tx, &purpose, "text_published").await?;
        claim.commit(tx, &purpose).await?;
        Ok(purpose)
    }
}

/// Refuses the request unless every code in `codes` is a purpose, naming each that is not.
pub(crate) async fn check_exist(conn: &mut PgConnection, codes: &[String]) -> Result<()> {
    let mut v = FieldViolations::new();
    for (i, code) in codes.iter().enumerate() {
        if purposes::get(conn, code).await?.is_none() {
            v.add(
                format!("purposes[{i}]"),
                format!("{code:?} is not a purpose"),
            );
        }
    }
    Ok(v.finish()?)
}

async fn answer(conn: &mut PgConnection, code: &str) -> Result<Purpose> {
    let row = purposes::get(conn, code)
        .await?
        .ok_or_else(|| ServiceError::not_found("Purpose", code))?;
    Ok(convert::purpose(&row))
}
