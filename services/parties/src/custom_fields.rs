//! Custom fields: the client card's own fields and dictionaries, defined without a programmer.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    fresh_or_replay,
    store::{self as kit_store},
};
use crm_proto::crm::parties::v1::*;

use crate::{
    Parties,
    convert::*,
    domain::{self},
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
