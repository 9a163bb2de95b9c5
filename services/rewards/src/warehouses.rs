//! Warehouses: where material rewards are kept.

use crm_kit::{
    address::Address,
    error::{FieldViolations, Result},
    request::{code, required},
    store::{Page, unique_violation},
};
use crm_proto::crm::rewards::v1::*;
use uuid::Uuid;

use crate::{Rewards, convert, domain, error::Refusal, events, store::warehouses as store};

impl Rewards {
    pub async fn create_warehouse(
        &self,
        caller: &str,
        req: CreateWarehouseRequest,
    ) -> Result<Warehouse> {
        let mut v = FieldViolations::new();
        let input = required(req.warehouse.clone(), "warehouse", &mut v);
        let code = code(&input.code, "warehouse.code", &mut v);
        let name = domain::display_name(&input.display_name, "warehouse.display_name", &mut v);
        let address = input
            .address
            .as_ref()
            .map(|a| Address::parse(a, "warehouse.address", &mut v));
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let id = Uuid::now_v7();
        let row = match store::insert(&mut tx, id, &code, &name, address.as_ref(), caller).await {
            Ok(row) => row,
            Err(error) => {
                return Err(match unique_violation(&error) {
                    Some(_) => Refusal::WarehouseExists { code }.into(),
                    None => error.into(),
                });
            }
        };
        let warehouse = convert::warehouse(&row);
        events::warehouse_changed(&mut tx, &warehouse, "created").await?;
        claim.commit(tx, &warehouse).await?;
        Ok(warehouse)
    }

    pub async fn list_warehouses(
        &self,
        req: ListWarehousesRequest,
    ) -> Result<ListWarehousesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<String> = Page::new(req.page_size, &req.page_token, &(), &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, page.after.as_deref(), page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.code.clone());
        Ok(ListWarehousesResponse {
            warehouses: rows.iter().map(convert::warehouse).collect(),
            next_page_token,
        })
    }
}
