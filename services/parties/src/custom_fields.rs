//! Custom fields: the client card's own fields and dictionaries, defined without a programmer.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    store::Page,
};
use crm_proto::crm::parties::v1::{
    CustomFieldDefinition, DefineCustomFieldRequest, ListCustomFieldsRequest,
    ListCustomFieldsResponse,
};

use crate::{
    Parties,
    convert::field_to_proto,
    domain::FieldEntity,
    domain::{self},
    error::Refusal,
    events,
    store::{self, FieldRow},
};

impl Parties {
    pub async fn define_custom_field(
        &self,
        subject: &str,
        req: DefineCustomFieldRequest,
    ) -> Result<CustomFieldDefinition> {
        let mut v = FieldViolations::new();
        v.check(req.field.is_some(), "field", "is required");
        let input = req.field.clone().unwrap_or_default();
        let (entity, field_type, key) = domain::definition(&input, &mut v);
        v.finish()?;
        let row = FieldRow {
            entity,
            key,
            label: input.label.trim().to_owned(),
            field_type,
            required: input.required,
            options: input.options.iter().map(|o| o.trim().to_owned()).collect(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
        };
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        if let Some(stored) = store::define_custom_field(&mut tx, &row, subject).await? {
            return Err(Refusal::CustomFieldTypeFixed {
                entity: entity.to_string(),
                key: row.key.clone(),
                stored: stored.to_string(),
            }
            .into());
        }
        let stored = store::custom_fields(&mut tx, Some(entity))
            .await?
            .into_iter()
            .find(|f| f.key == row.key)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("defined field vanished")))?;
        let field = field_to_proto(&stored);
        events::custom_field_changed(&mut tx, &field).await?;
        claim.commit(tx, &field).await?;
        Ok(field)
    }

    pub async fn list_custom_fields(
        &self,
        req: ListCustomFieldsRequest,
    ) -> Result<ListCustomFieldsResponse> {
        let mut v = FieldViolations::new();
        let entity = FieldEntity::from_proto(req.entity());
        let page: Page<(String, String)> =
            Page::new(req.page_size, &req.page_token, &entity, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            store::list_custom_fields(&mut conn, entity, page.after.as_ref(), page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| {
            (last.entity.to_string(), last.key.clone())
        });
        Ok(ListCustomFieldsResponse {
            fields: rows.iter().map(field_to_proto).collect(),
            next_page_token,
        })
    }
}
