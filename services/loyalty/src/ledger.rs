//! Balances and the ledger: operations recorded and reversed on member accounts, and the accounts
//! they resolve to.

use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{optional_time, optional_uuid, uuid},
    store::Page,
};
use crm_proto::crm::loyalty::v1::{
    AccountRef, Balance, GetBalanceRequest, GetOperationRequest, ListBalancesRequest,
    ListBalancesResponse, ListLedgerEntriesRequest, ListLedgerEntriesResponse, Operation,
    RecordOperationRequest, ReverseOperationRequest,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Loyalty,
    convert::{account_ref, balance_to_proto, entry_to_proto, operation_to_proto},
    domain::{self, check_points, code},
    lookups::operation_in,
    posting::reverse,
    store::{self, PointTypeRow, ProgramRow},
};

/// A member account an invoice accrual applies to.
pub(crate) struct Target {
    pub program: ProgramRow,
    pub membership: store::MembershipRow,
    pub person_id: Option<Uuid>,
    pub point_type: PointTypeRow,
}

impl Target {
    pub(crate) fn key(&self) -> crate::posting::AccountKey {
        crate::posting::AccountKey {
            program: self.program.id,
            membership: self.membership.id,
            person: self.person_id,
            point_type: self.point_type.code.clone(),
        }
    }
}

impl Loyalty {
    /// One statement: a till asks this on every sale.
    pub async fn get_balance(&self, req: GetBalanceRequest) -> Result<Balance> {
        let mut v = FieldViolations::new();
        let account = req.account.unwrap_or_default();
        let membership = uuid(&account.membership_id, "account.membership_id", &mut v);
        let person = optional_uuid(&account.person_id, "account.person_id", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::accounts_by_point_type(&mut conn, membership, person).await?;
        let first = rows
            .first()
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        let person = person.filter(|_| !first.pooled);
        let codes: Vec<&str> = rows.iter().filter_map(|r| r.code.as_deref()).collect();
        let code = crate::lookups::pick_code(&codes, &account.point_type, None)?;
        let row = rows.iter().find(|r| r.code.as_deref() == Some(code));
        let account = row.and_then(|r| r.account(membership));
        Ok(balance_to_proto(
            account_ref(membership, person, code),
            account.as_ref(),
        ))
    }

    pub async fn list_balances(&self, req: ListBalancesRequest) -> Result<ListBalancesResponse> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.membership_id, "membership_id", &mut v);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &id, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_membership(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        let mut rows =
            store::list_membership_accounts(&mut conn, id, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let balances = rows
            .iter()
            .map(|a| balance_to_proto(account_ref(id, a.person_id, &a.point_type), Some(a)))
            .collect();
        Ok(ListBalancesResponse {
            balances,
            next_page_token,
        })
    }

    pub async fn list_ledger_entries(
        &self,
        req: ListLedgerEntriesRequest,
    ) -> Result<ListLedgerEntriesResponse> {
        let mut v = FieldViolations::new();
        let operation_type = Some(req.operation_type.trim()).filter(|t| !t.is_empty());
        let from = optional_time(req.from_time.as_ref(), "from_time", &mut v);
        let to = optional_time(req.to_time.as_ref(), "to_time", &mut v);
        let filter = (&req.account, operation_type, from, to);
        let page: Page<i64> = Page::new(
            req.page_size,
            &req.page_token,
            &format!("{filter:?}"),
            &mut v,
        );
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let (membership, person, point_type) =
            self.read_target(&mut conn, req.account.as_ref()).await?;
        let Some(account) = store::find_account(&mut conn, membership, person, &point_type).await?
        else {
            return Ok(ListLedgerEntriesResponse::default());
        };
        let mut rows = store::entries(
            &mut conn,
            account.id,
            operation_type,
            from,
            to,
            page.after,
            page.limit(),
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListLedgerEntriesResponse {
            entries: rows.iter().map(entry_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn record_operation(
        &self,
        subject: &str,
        req: RecordOperationRequest,
    ) -> Result<Operation> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.operation_id, "operation_id", &mut v);
        check_points(req.points, "points", &mut v);
        code(&req.operation_type, "operation_type", &mut v);
        let account = req.account.clone().unwrap_or_default();
        let membership = uuid(&account.membership_id, "account.membership_id", &mut v);
        let person = optional_uuid(&account.person_id, "account.person_id", &mut v);
        v.finish()?;
        if let Some(person) = person {
            self.require_employee_of(membership, person).await?;
        }
        self.recorder.call(subject, req, (membership, person)).await
    }

    pub async fn reverse_operation(
        &self,
        subject: &str,
        req: ReverseOperationRequest,
    ) -> Result<Operation> {
        let mut v = FieldViolations::new();
        domain::check_client_id(&req.operation_id, "operation_id", &mut v);
        v.check(
            !req.original_operation_id.trim().is_empty(),
            "original_operation_id",
            "is required",
        );
        v.check(
            req.points >= 0,
            "points",
            "must not be negative; 0 takes back all that is left",
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let original = store::lock_operation_by_client_id(&mut tx, &req.original_operation_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Operation", &req.original_operation_id))?;
        let id = reverse(
            &mut tx,
            &original,
            (req.points > 0).then_some(req.points),
            &req.operation_id,
            req.reference.trim(),
            subject,
        )
        .await?
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "a reversal of what was left posted nothing"
            ))
        })?;
        let operation = operation_in(&mut tx, id).await?;
        claim.commit(tx, &operation).await?;
        Ok(operation)
    }

    pub async fn get_operation(&self, req: GetOperationRequest) -> Result<Operation> {
        let mut v = FieldViolations::new();
        v.check(
            !req.operation_id.trim().is_empty(),
            "operation_id",
            "is required",
        );
        v.finish()?;
        let row =
            store::get_operation_by_client_id(&mut *self.pool.acquire().await?, &req.operation_id)
                .await?
                .ok_or_else(|| ServiceError::not_found("Operation", &req.operation_id))?;
        Ok(operation_to_proto(&row))
    }

    /// A B2B person account is for someone the member organization employs (unless the
    /// membership pools persons' points): asked of the parties service before any transaction.
    pub(crate) async fn require_employee_of(&self, membership: Uuid, person: Uuid) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let membership = store::get_membership(&mut conn, membership)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        let program = store::get_program(&mut conn, membership.program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
        drop(conn);
        if program.kind == domain::ProgramKind::B2b && !membership.pool_to_organization {
            self.require_employee(person, membership.party_id).await?;
        }
        Ok(())
    }

    /// Resolves an account for a read: no checks beyond existence.
    pub(crate) async fn read_target(
        &self,
        conn: &mut PgConnection,
        account: Option<&AccountRef>,
    ) -> Result<(Uuid, Option<Uuid>, String)> {
        let mut v = FieldViolations::new();
        let account = account.cloned().unwrap_or_default();
        let membership_id = uuid(&account.membership_id, "account.membership_id", &mut v);
        let person_id = optional_uuid(&account.person_id, "account.person_id", &mut v);
        v.finish()?;
        let membership = store::get_membership(conn, membership_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership_id))?;
        let program = store::get_program(conn, membership.program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
        let point_type = self
            .point_type(conn, &program, &account.point_type, None)
            .await?;
        let person_id = person_id.filter(|_| !membership.pool_to_organization);
        Ok((membership_id, person_id, point_type.code))
    }

    pub(crate) async fn point_type(
        &self,
        conn: &mut PgConnection,
        program: &ProgramRow,
        requested: &str,
        default: Option<&str>,
    ) -> Result<PointTypeRow> {
        let types = store::point_types(conn, program.id).await?;
        crate::lookups::pick_point_type(&types, requested, default).cloned()
    }
}
