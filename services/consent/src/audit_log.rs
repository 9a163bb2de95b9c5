//! The privacy audit log as operators and auditors read it.

use crm_kit::{
    error::{FieldViolations, Result},
    request::optional_time,
    store::Page,
};
use crm_proto::crm::consent::v1::{ListAuditLogRequest, ListAuditLogResponse};

use crate::{Consents, convert, domain, store::audit};

impl Consents {
    pub async fn list_audit_log(&self, req: ListAuditLogRequest) -> Result<ListAuditLogResponse> {
        let mut v = FieldViolations::new();
        let filter = audit::Filter {
            subject: req
                .subject
                .as_ref()
                .map(|s| domain::Subject::parse(Some(s), &mut v).id),
            action: Some(req.action.trim().to_owned()).filter(|a| !a.is_empty()),
            from: optional_time(req.from_time.as_ref(), "from_time", &mut v),
            to: optional_time(req.to_time.as_ref(), "to_time", &mut v),
        };
        let page: Page<i64> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = audit::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListAuditLogResponse {
            entries: rows.iter().map(convert::audit_entry).collect(),
            next_page_token,
        })
    }
}
