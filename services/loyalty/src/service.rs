//! The loyalty use cases. Mutations validate everything first, then run in one transaction: the
//! client id claim, the balance change, the ledger entries, the event and the answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_kit::{
    client::TracedChannel,
    error::{FieldViolations, Result, ServiceError, check_etag},
    fresh_or_replay,
    request::{audit, date, date_to_proto, mask_paths, optional_uuid, timestamp, uuid},
    shutdown::Shutdown,
    store::{
        self as kit_store, decode_page_token, encode_page_token, next_page, page_size,
        unique_violation,
    },
};
use crm_proto::crm::{
    consent::v1::{
        CheckConsentRequest, Subject, SubjectKind, consent_service_client::ConsentServiceClient,
    },
    loyalty::v1::*,
    parties::v1::{
        GetPartyRequest, GetPersonRequest, PartyStatus,
        parties_service_client::PartiesServiceClient,
    },
};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    cards, events,
    store::{
        self, AccountRow, EntryRow, HoldRow, MembershipRow, NewOperation, OperationRow,
        OperationTypeRow, PointTypeRow, ProgramRow,
    },
    tiers,
};

/// The largest number of points one operation or hold may move.
const MAX_POINTS: i64 = 1_000_000_000_000;
const DEFAULT_HOLD_SECONDS: i64 = 900;
const MAX_HOLD_SECONDS: i64 = 30 * 24 * 3600;
const DEFAULT_CAPTURE_TYPE: &str = "reward_redemption";

#[derive(Clone)]
pub struct Loyalty {
    pub(crate) pool: PgPool,
    pub(crate) parties: PartiesServiceClient<TracedChannel>,
    consent: ConsentServiceClient<TracedChannel>,
}

/// The consent a party needs to join a loyalty program (a purpose of the consent service).
pub const ENROLMENT_PURPOSE: &str = "loyalty_program";

/// A member account an operation or hold applies to, resolved from an [`AccountRef`].
pub(crate) struct Target {
    pub program: ProgramRow,
    pub membership: MembershipRow,
    pub person_id: Option<Uuid>,
    pub point_type: PointTypeRow,
}

impl Target {
    fn reference(&self) -> AccountRef {
        account_ref(self.membership.id, self.person_id, &self.point_type.code)
    }
}

impl Loyalty {
    pub fn new(
        pool: PgPool,
        parties: PartiesServiceClient<TracedChannel>,
        consent: ConsentServiceClient<TracedChannel>,
    ) -> Self {
        Self {
            pool,
            parties,
            consent,
        }
    }

    // --- programs --------------------------------------------------------------------------

    pub async fn create_program(
        &self,
        subject: &str,
        req: CreateProgramRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        v.check(req.program.is_some(), "program", "is required");
        let input = req.program.clone().unwrap_or_default();
        let kind = match input.kind() {
            ProgramKind::B2c => "b2c",
            ProgramKind::B2b => "b2b",
            ProgramKind::Unspecified => {
                v.add("program.kind", "must be B2C or B2B");
                "b2c"
            }
        };
        let status = match input.status() {
            ProgramStatus::Active => "active",
            ProgramStatus::Draft | ProgramStatus::Unspecified => "draft",
            ProgramStatus::Closed => {
                v.add("program.status", "a new program is DRAFT or ACTIVE");
                "draft"
            }
        };
        let currency = input.currency_code.trim().to_uppercase();
        v.check(
            currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()),
            "program.currency_code",
            "must be an ISO 4217 code such as PLN",
        );
        let program = ProgramRow {
            id: Uuid::now_v7(),
            display_name: display_name(&input.display_name, "program.display_name", &mut v),
            kind: kind.to_owned(),
            currency_code: currency,
            status: status.to_owned(),
            valid_from: date(input.valid_from.as_ref(), "program.valid_from", &mut v),
            valid_to: date(input.valid_to.as_ref(), "program.valid_to", &mut v),
            reward_ids: input.reward_ids.clone(),
            accrual_rules: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
            version: 1,
        };
        check_validity(&program, &mut v);
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        store::insert_program(&mut tx, &program).await?;
        let program = program_in(&mut tx, program.id).await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn get_program(&self, req: GetProgramRequest) -> Result<Program> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        program_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_program(
        &self,
        subject: &str,
        req: UpdateProgramRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        v.check(req.program.is_some(), "program", "is required");
        let input = req.program.clone().unwrap_or_default();
        let id = uuid(&input.id, "program.id", &mut v);
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &[
                "display_name",
                "status",
                "valid_from",
                "valid_to",
                "reward_ids",
            ],
            &mut v,
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let mut program = store::lock_program(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", id))?;
        check_etag("program", &input.etag, program.version)?;
        let mut v = FieldViolations::new();
        for path in paths {
            match path {
                "display_name" => {
                    program.display_name =
                        display_name(&input.display_name, "program.display_name", &mut v)
                }
                "status" => {
                    program.status = match input.status() {
                        ProgramStatus::Draft => "draft",
                        ProgramStatus::Active => "active",
                        ProgramStatus::Closed => "closed",
                        ProgramStatus::Unspecified => {
                            v.add("program.status", "must be DRAFT, ACTIVE or CLOSED");
                            continue;
                        }
                    }
                    .to_owned()
                }
                "valid_from" => {
                    program.valid_from =
                        date(input.valid_from.as_ref(), "program.valid_from", &mut v)
                }
                "valid_to" => {
                    program.valid_to = date(input.valid_to.as_ref(), "program.valid_to", &mut v)
                }
                _ => program.reward_ids = input.reward_ids.clone(),
            }
        }
        check_validity(&program, &mut v);
        v.finish()?;
        store::update_program(&mut tx, &program, subject).await?;
        let program = program_in(&mut tx, id).await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn list_programs(&self, req: ListProgramsRequest) -> Result<ListProgramsResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let status = match req.status() {
            ProgramStatus::Unspecified => None,
            ProgramStatus::Draft => Some("draft"),
            ProgramStatus::Active => Some("active"),
            ProgramStatus::Closed => Some("closed"),
        };
        let after: Option<Uuid> = decode_page_token(&req.page_token, &status, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_programs(&mut conn, status, after, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &status)
        });
        let mut programs = Vec::with_capacity(rows.len());
        for row in &rows {
            programs.push(program_to_proto(&mut conn, row).await?);
        }
        Ok(ListProgramsResponse {
            programs,
            next_page_token,
        })
    }

    pub async fn define_point_type(
        &self,
        subject: &str,
        req: DefinePointTypeRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(req.point_type.is_some(), "point_type", "is required");
        let input = req.point_type.clone().unwrap_or_default();
        let expiry_policy = match input.expiry_policy() {
            ExpiryPolicy::Never | ExpiryPolicy::Unspecified => "never",
            ExpiryPolicy::MonthsAfterEarning => "months_after_earning",
            ExpiryPolicy::EndOfProgram => "end_of_program",
        };
        v.check(
            expiry_policy != "months_after_earning" || (1..=240).contains(&input.expiry_months),
            "point_type.expiry_months",
            "MONTHS_AFTER_EARNING needs 1 to 240 months",
        );
        v.check(
            input.reversal_floor <= 0,
            "point_type.reversal_floor",
            "must be 0 or negative",
        );
        let row = PointTypeRow {
            code: code(&input.code, "point_type.code", &mut v),
            display_name: display_name(&input.display_name, "point_type.display_name", &mut v),
            qualifying: input.qualifying,
            expiry_policy: expiry_policy.to_owned(),
            expiry_months: input.expiry_months,
            allow_negative: input.allow_negative,
            reversal_floor: input.reversal_floor,
        };
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        store::define_point_type(&mut tx, program_id, &row).await?;
        store::touch_program(&mut tx, program_id, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    pub async fn define_operation_type(
        &self,
        subject: &str,
        req: DefineOperationTypeRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(
            req.operation_type.is_some(),
            "operation_type",
            "is required",
        );
        let input = req.operation_type.clone().unwrap_or_default();
        let direction = match input.direction() {
            Direction::Accrue => "accrue",
            Direction::Settle => "settle",
            Direction::Unspecified => {
                v.add("operation_type.direction", "must be ACCRUE or SETTLE");
                "accrue"
            }
        };
        let row = OperationTypeRow {
            code: code(&input.code, "operation_type.code", &mut v),
            display_name: display_name(&input.display_name, "operation_type.display_name", &mut v),
            direction: direction.to_owned(),
            default_point_type: code(
                &input.default_point_type,
                "operation_type.default_point_type",
                &mut v,
            ),
        };
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let point_types = store::point_types(&mut tx, program_id).await?;
        if !point_types.iter().any(|t| t.code == row.default_point_type) {
            let mut v = FieldViolations::new();
            v.add(
                "operation_type.default_point_type",
                "is not a point type of the program",
            );
            return Err(v.into());
        }
        store::define_operation_type(&mut tx, program_id, &row).await?;
        store::touch_program(&mut tx, program_id, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    // --- memberships -----------------------------------------------------------------------

    pub async fn enroll(&self, subject: &str, req: EnrollRequest) -> Result<Membership> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        let party_id = uuid(&req.party_id, "party_id", &mut v);
        v.finish()?;
        // Asked before the transaction: no row is locked while the parties service answers.
        let party = self
            .parties
            .clone()
            .get_party(GetPartyRequest {
                id: party_id.to_string(),
            })
            .await;
        match party {
            Ok(party) if party.get_ref().status() == PartyStatus::Archived => {
                return Err(ServiceError::Precondition(
                    "PARTY_ARCHIVED",
                    format!("party {party_id} is archived"),
                ));
            }
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(ServiceError::NotFound("Party", party_id.to_string()));
            }
            Err(status) => return Err(parties_unavailable(status)),
        }
        self.require_enrolment_consent(party_id).await?;

        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let program = store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        require_active_program(&program)?;
        let mut v = FieldViolations::new();
        v.check(
            program.kind == "b2b" || !req.pool_to_organization,
            "pool_to_organization",
            "only B2B programs pool points",
        );
        v.finish()?;
        let membership = MembershipRow {
            id: Uuid::now_v7(),
            program_id,
            party_id,
            status: "active".into(),
            pool_to_organization: req.pool_to_organization,
            tier: None,
            assigned_tier: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
            version: 1,
        };
        if !store::insert_membership(&mut tx, &membership).await? {
            return Err(ServiceError::AlreadyExists(
                "ALREADY_ENROLLED",
                format!("party {party_id} is already a member of program {program_id}"),
            ));
        }
        let event = MembershipEnrolled {
            membership_id: membership.id.to_string(),
            program_id: program_id.to_string(),
            party_id: party_id.to_string(),
        };
        events::membership(&mut tx, membership.id, &event).await?;
        let membership = membership_in(&mut tx, membership.id).await?;
        claim.commit(tx, &membership).await?;
        Ok(membership)
    }

    /// The party must have granted the `loyalty_program` consent, as the consent service sees it
    /// now: a withdrawal stops every later enrolment.
    async fn require_enrolment_consent(&self, party: Uuid) -> Result<()> {
        let request = CheckConsentRequest {
            subject: Some(Subject {
                kind: SubjectKind::Party as i32,
                id: party.to_string(),
            }),
            purpose: ENROLMENT_PURPOSE.to_owned(),
        };
        let refused = |why: String| {
            ServiceError::Precondition(
                "CONSENT_REQUIRED",
                format!(
                    "party {party} has no granted consent to the purpose {ENROLMENT_PURPOSE} ({why})"
                ),
            )
        };
        match self.consent.clone().check_consent(request).await {
            Ok(answer) if answer.get_ref().granted => Ok(()),
            Ok(answer) => {
                let status = answer
                    .into_inner()
                    .state
                    .map(|s| s.status().as_str_name().to_owned())
                    .unwrap_or_default();
                Err(refused(status))
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(refused("the purpose is not defined".into()))
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "the consent service did not answer");
                Err(ServiceError::Unavailable(
                    "the consent service is unavailable; retry later".into(),
                ))
            }
        }
    }

    pub async fn get_membership(&self, req: GetMembershipRequest) -> Result<Membership> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        membership_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn list_memberships(
        &self,
        req: ListMembershipsRequest,
    ) -> Result<ListMembershipsResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let program = optional_uuid(&req.program_id, "program_id", &mut v);
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        v.check(
            program.is_some() || party.is_some(),
            "program_id",
            "give a program_id or a party_id",
        );
        let filter = (program, party);
        let after: Option<Uuid> = decode_page_token(&req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_memberships(&mut conn, program, party, after, limit + 1).await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &filter)
        });
        Ok(ListMembershipsResponse {
            memberships: rows.iter().map(membership_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn suspend_membership(
        &self,
        subject: &str,
        req: SuspendMembershipRequest,
    ) -> Result<Membership> {
        let reason = req.reason.trim().to_owned();
        self.change_membership(subject, &req.id, &req, "suspended", |id| {
            MembershipSuspended {
                membership_id: id.to_string(),
                reason,
            }
        })
        .await
    }

    pub async fn leave_program(
        &self,
        subject: &str,
        req: LeaveProgramRequest,
    ) -> Result<Membership> {
        self.change_membership(subject, &req.id, &req, "left", |id| MembershipLeft {
            membership_id: id.to_string(),
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_membership<M: prost::Name>(
        &self,
        subject: &str,
        id: &str,
        request: &(impl crm_kit::store::Idempotent + prost::Message),
        status: &str,
        event: impl FnOnce(Uuid) -> M,
    ) -> Result<Membership> {
        let mut v = FieldViolations::new();
        let id = uuid(id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) =
            fresh_or_replay!(kit_store::begin(&self.pool, subject, request).await?);
        let membership = store::lock_membership(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        if membership.status == "left" && status != "left" {
            return Err(ServiceError::Precondition(
                "MEMBERSHIP_LEFT",
                format!("membership {id} has left the program"),
            ));
        }
        if membership.status != status {
            store::set_membership_status(&mut tx, id, status, subject).await?;
            events::membership(&mut tx, id, &event(id)).await?;
        }
        let membership = membership_in(&mut tx, id).await?;
        claim.commit(tx, &membership).await?;
        Ok(membership)
    }

    // --- balances and the ledger -----------------------------------------------------------

    pub async fn get_balance(&self, req: GetBalanceRequest) -> Result<Balance> {
        let mut conn = self.pool.acquire().await?;
        let (membership, person, point_type) =
            self.read_target(&mut conn, req.account.as_ref()).await?;
        let account = store::find_account(&mut conn, membership, person, &point_type).await?;
        Ok(balance_to_proto(
            account_ref(membership, person, &point_type),
            account.as_ref(),
        ))
    }

    pub async fn list_balances(&self, req: ListBalancesRequest) -> Result<ListBalancesResponse> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.membership_id, "membership_id", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        store::get_membership(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        let balances = store::membership_accounts(&mut conn, id)
            .await?
            .iter()
            .map(|a| balance_to_proto(account_ref(id, a.person_id, &a.point_type), Some(a)))
            .collect();
        Ok(ListBalancesResponse { balances })
    }

    pub async fn list_ledger_entries(
        &self,
        req: ListLedgerEntriesRequest,
    ) -> Result<ListLedgerEntriesResponse> {
        let mut v = FieldViolations::new();
        let limit = page_size(req.page_size, &mut v);
        let operation_type = Some(req.operation_type.trim()).filter(|t| !t.is_empty());
        let from = req
            .from_time
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        let to = req
            .to_time
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        let filter = (&req.account, operation_type, from, to);
        let before: Option<i64> =
            decode_page_token(&req.page_token, &format!("{filter:?}"), &mut v);
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
            before,
            limit + 1,
        )
        .await?;
        let next_page_token = next_page(&mut rows, limit, |last| {
            encode_page_token(&last.id, &format!("{filter:?}"))
        });
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
        v.check(
            !req.operation_id.trim().is_empty(),
            "operation_id",
            "is required: the client's idempotency id",
        );
        check_points(req.points, "points", &mut v);
        let operation_type = code(&req.operation_type, "operation_type", &mut v);
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let program_types = self.types_for(&mut tx, req.account.as_ref()).await?;
        let Some(op_type) = program_types
            .iter()
            .find(|t| t.code == operation_type)
            .cloned()
        else {
            let mut v = FieldViolations::new();
            v.add(
                "operation_type",
                format!("{operation_type:?} is not an operation type of the program"),
            );
            return Err(v.into());
        };
        let target = self
            .write_target(
                &mut tx,
                req.account.as_ref(),
                Some(&op_type.default_point_type),
            )
            .await?;
        if !req.card_number.trim().is_empty() {
            let accrual = op_type.direction == "accrue";
            cards::present(
                &mut tx,
                req.card_number.trim(),
                target.membership.id,
                accrual,
                subject,
            )
            .await?;
        }
        let posting = Posting {
            client_id: &req.operation_id,
            points: req.points,
            reference: req.reference.trim(),
            subject,
        };
        let id = post(&mut tx, &target, &op_type, &posting).await?;
        let operation = operation_in(&mut tx, id).await?;
        claim.commit(tx, &operation).await?;
        Ok(operation)
    }

    pub async fn reverse_operation(
        &self,
        subject: &str,
        req: ReverseOperationRequest,
    ) -> Result<Operation> {
        let mut v = FieldViolations::new();
        v.check(
            !req.operation_id.trim().is_empty(),
            "operation_id",
            "is required: the client's idempotency id",
        );
        v.check(
            !req.original_operation_id.trim().is_empty(),
            "original_operation_id",
            "is required",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let original = store::lock_operation_by_client_id(&mut tx, &req.original_operation_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound("Operation", req.original_operation_id.clone())
            })?;
        let id = reverse(
            &mut tx,
            &original,
            &req.operation_id,
            req.reference.trim(),
            subject,
        )
        .await?;
        let operation = operation_in(&mut tx, id).await?;
        claim.commit(tx, &operation).await?;
        Ok(operation)
    }

    pub async fn set_accrual_rules(
        &self,
        subject: &str,
        req: SetAccrualRulesRequest,
    ) -> Result<Program> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        v.check(req.rules.is_some(), "rules", "is required");
        let input = req.rules.clone().unwrap_or_default();
        let decimal = |raw: &str, field: &str, default: &str, v: &mut FieldViolations| -> String {
            let raw = Some(raw.trim())
                .filter(|r| !r.is_empty())
                .unwrap_or(default);
            match raw.parse::<Decimal>() {
                Ok(value) if !value.is_sign_negative() => value.normalize().to_string(),
                _ => {
                    v.add(
                        field,
                        "must be a decimal number of at least 0, e.g. 1 or 0.5",
                    );
                    String::new()
                }
            }
        };
        let mut category_rates = std::collections::BTreeMap::new();
        for (i, rate) in input.category_rates.iter().enumerate() {
            let category = rate.category.trim().to_owned();
            v.check(
                !category.is_empty(),
                format!("rules.category_rates[{i}].category"),
                "must not be empty",
            );
            let value = decimal(
                &rate.points_per_unit,
                &format!("rules.category_rates[{i}].points_per_unit"),
                "",
                &mut v,
            );
            if category_rates.insert(category, value).is_some() {
                v.add(
                    format!("rules.category_rates[{i}].category"),
                    "is given twice",
                );
            }
        }
        v.check(
            input.cap_per_invoice >= 0,
            "rules.cap_per_invoice",
            "must be 0 (no cap) or more",
        );
        let mut tier_multipliers = std::collections::BTreeMap::new();
        for (i, tier) in input.tier_multipliers.iter().enumerate() {
            let at = format!("rules.tier_multipliers[{i}]");
            let multiplier = decimal(&tier.multiplier, &format!("{at}.multiplier"), "", &mut v);
            if tier_multipliers
                .insert(code(&tier.tier, &format!("{at}.tier"), &mut v), multiplier)
                .is_some()
            {
                v.add(format!("{at}.tier"), "is given twice");
            }
        }
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        let campaigns = input
            .campaigns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("rules.campaigns[{i}]");
                let (start, end) = (time(c.start_time), time(c.end_time));
                v.check(
                    start.zip(end).is_none_or(|(s, e)| e > s),
                    format!("{at}.end_time"),
                    "must be after start_time",
                );
                store::CampaignJson {
                    code: code(&c.code, &format!("{at}.code"), &mut v),
                    multiplier: decimal(&c.multiplier, &format!("{at}.multiplier"), "", &mut v),
                    categories: c
                        .categories
                        .iter()
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty())
                        .collect(),
                    start_time: start,
                    end_time: end,
                }
            })
            .collect();
        v.check(
            input.cap_per_period >= 0,
            "rules.cap_per_period",
            "must be 0 (no cap) or more",
        );
        v.check(
            input.cap_per_period == 0 || (1..=3660).contains(&input.period_days),
            "rules.period_days",
            "a cap per period needs a period of 1 to 3660 days",
        );
        let rules = store::AccrualRulesJson {
            operation_type: code(&input.operation_type, "rules.operation_type", &mut v),
            points_per_unit: decimal(&input.points_per_unit, "rules.points_per_unit", "", &mut v),
            category_rates,
            minimum_amount: decimal(&input.minimum_amount, "rules.minimum_amount", "0", &mut v),
            cap_per_invoice: input.cap_per_invoice,
            tier_multipliers,
            campaigns,
            cap_per_period: input.cap_per_period,
            period_days: input.period_days,
        };
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        store::lock_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        let accrues = store::operation_types(&mut tx, program_id)
            .await?
            .iter()
            .any(|t| t.code == rules.operation_type && t.direction == "accrue");
        if !accrues {
            let mut v = FieldViolations::new();
            v.add(
                "rules.operation_type",
                "must be an ACCRUE operation type of the program",
            );
            return Err(v.into());
        }
        store::set_accrual_rules(&mut tx, program_id, &rules, subject).await?;
        let program = program_in(&mut tx, program_id).await?;
        claim.commit(tx, &program).await?;
        Ok(program)
    }

    // --- holds -----------------------------------------------------------------------------

    pub async fn hold_points(&self, subject: &str, req: HoldPointsRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(
            !req.hold_id.trim().is_empty(),
            "hold_id",
            "is required: the client's idempotency id",
        );
        check_points(req.points, "points", &mut v);
        let timeout = if req.timeout_seconds == 0 {
            DEFAULT_HOLD_SECONDS
        } else {
            req.timeout_seconds
        };
        v.check(
            (1..=MAX_HOLD_SECONDS).contains(&timeout),
            "timeout_seconds",
            "must be between 1 and 2592000 (30 days); 0 means 900",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let target = self
            .write_target(&mut tx, req.account.as_ref(), None)
            .await?;
        let account = store::member_account(
            &mut tx,
            target.program.id,
            target.membership.id,
            target.person_id,
            &target.point_type.code,
        )
        .await?;
        if !store::reserve(&mut tx, account, req.points).await? {
            return Err(insufficient(&mut tx, account, req.points).await);
        }
        let id = Uuid::now_v7();
        let expires_at = Utc::now() + chrono::Duration::seconds(timeout);
        store::insert_hold(
            &mut tx,
            id,
            &req.hold_id,
            account,
            req.points,
            expires_at,
            req.reference.trim(),
        )
        .await
        .map_err(|e| operation_id_used(e, &req.hold_id))?;
        let event = HoldPlaced {
            hold_id: id.to_string(),
            account: Some(target.reference()),
            points: req.points,
        };
        events::points(&mut tx, target.membership.id, &event).await?;
        let hold = hold_in(&mut tx, id).await?;
        claim.commit(tx, &hold).await?;
        Ok(hold)
    }

    pub async fn capture_hold(&self, subject: &str, req: CaptureHoldRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(!req.hold_id.trim().is_empty(), "hold_id", "is required");
        v.check(
            req.points >= 0,
            "points",
            "must not be negative; 0 captures the whole hold",
        );
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let hold = self.pending_hold(&mut tx, &req.hold_id).await?;
        let hold = match hold {
            HoldState::Pending(hold) => hold,
            HoldState::Settled(hold)
                if hold.status == "captured"
                    && (req.points == 0 || req.points == hold.captured_points) =>
            {
                // Capturing again what was captured answers the same.
                return Ok(hold_to_proto(&hold));
            }
            HoldState::Settled(hold) => return Err(hold_not_pending(&hold)),
            HoldState::Expired(hold) => {
                claim.commit_failed(tx).await?;
                return Err(hold_not_pending(&hold));
            }
        };
        let points = if req.points == 0 {
            hold.points
        } else {
            req.points
        };
        if points > hold.points {
            let mut v = FieldViolations::new();
            v.add("points", format!("the hold has {} points", hold.points));
            return Err(v.into());
        }
        let type_code = Some(req.operation_type.trim())
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_CAPTURE_TYPE);
        let op_type = store::operation_types(&mut tx, hold.program_id)
            .await?
            .into_iter()
            .find(|t| t.code == type_code && t.direction == "settle")
            .ok_or_else(|| {
                ServiceError::Precondition(
                    "NO_SETTLE_OPERATION_TYPE",
                    format!(
                        "the program has no SETTLE operation type {type_code:?} to capture with"
                    ),
                )
            })?;
        store::release(&mut tx, hold.account_id, hold.points).await?;
        let balance_after = store::change_balance(&mut tx, hold.account_id, -points, None)
            .await?
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("held account vanished")))?;
        store::consume_lots(&mut tx, hold.account_id, points, None).await?;
        let redemption =
            store::system_account(&mut tx, hold.program_id, &hold.point_type, "redemption").await?;
        let operation_id = Uuid::now_v7();
        let client_id = format!("hold:{}:capture", hold.client_id);
        let posted = NewOperation {
            id: operation_id,
            client_id: &client_id,
            account_id: hold.account_id,
            system_account_id: redemption,
            operation_type: &op_type.code,
            direction: "settle",
            points,
            delta: -points,
            balance_after,
            reference: &hold.reference,
            reverses: None,
            subject,
        };
        store::post_operation(&mut tx, &posted).await?;
        store::settle_hold(&mut tx, hold.id, "captured", points, Some(operation_id)).await?;
        let account = Some(account_ref(
            hold.membership_id,
            hold.person_id,
            &hold.point_type,
        ));
        let event = HoldCaptured {
            hold_id: hold.id.to_string(),
            account,
            captured_points: points,
            balance_after,
        };
        events::points(&mut tx, hold.membership_id, &event).await?;
        let hold = hold_in(&mut tx, hold.id).await?;
        claim.commit(tx, &hold).await?;
        Ok(hold)
    }

    pub async fn void_hold(&self, subject: &str, req: VoidHoldRequest) -> Result<Hold> {
        let mut v = FieldViolations::new();
        v.check(!req.hold_id.trim().is_empty(), "hold_id", "is required");
        v.finish()?;
        let (mut tx, claim) = fresh_or_replay!(kit_store::begin(&self.pool, subject, &req).await?);
        let hold = match self.pending_hold(&mut tx, &req.hold_id).await? {
            HoldState::Pending(hold) => hold,
            HoldState::Settled(hold) if hold.status == "voided" => return Ok(hold_to_proto(&hold)),
            HoldState::Settled(hold) => return Err(hold_not_pending(&hold)),
            HoldState::Expired(hold) => {
                claim.commit_failed(tx).await?;
                return Err(hold_not_pending(&hold));
            }
        };
        store::release(&mut tx, hold.account_id, hold.points).await?;
        store::settle_hold(&mut tx, hold.id, "voided", 0, None).await?;
        let account = Some(account_ref(
            hold.membership_id,
            hold.person_id,
            &hold.point_type,
        ));
        events::points(
            &mut tx,
            hold.membership_id,
            &HoldVoided {
                hold_id: hold.id.to_string(),
                account,
            },
        )
        .await?;
        let hold = hold_in(&mut tx, hold.id).await?;
        claim.commit(tx, &hold).await?;
        Ok(hold)
    }

    /// Releases holds whose timeout passed, until `shutdown`.
    pub async fn expire_holds(self, shutdown: Shutdown) {
        while shutdown.sleep(Duration::from_secs(1)).await {
            if let Err(error) = self.expire_due_holds().await {
                tracing::warn!(error = %error, "releasing expired holds failed; retrying");
            }
        }
    }

    async fn expire_due_holds(&self) -> Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::lock_expired_holds(&mut tx, 100).await?;
            if due.is_empty() {
                return Ok(());
            }
            for hold in &due {
                expire(&mut tx, hold).await?;
            }
            tx.commit().await?;
        }
    }

    /// The hold, locked; one past its timeout is expired on the spot.
    async fn pending_hold(&self, tx: &mut kit_store::Tx, client_id: &str) -> Result<HoldState> {
        let hold = store::lock_hold_by_client_id(tx, client_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("Hold", client_id.to_owned()))?;
        if hold.status != "pending" {
            return Ok(HoldState::Settled(hold));
        }
        if hold.expires_at <= Utc::now() {
            expire(tx, &hold).await?;
            let expired = HoldRow {
                status: "expired".into(),
                ..hold
            };
            return Ok(HoldState::Expired(expired));
        }
        Ok(HoldState::Pending(hold))
    }

    // --- accounts --------------------------------------------------------------------------

    /// The program's operation types for the membership in `account`.
    async fn types_for(
        &self,
        tx: &mut kit_store::Tx,
        account: Option<&AccountRef>,
    ) -> Result<Vec<OperationTypeRow>> {
        let mut v = FieldViolations::new();
        let membership = uuid(
            account.map_or("", |a| a.membership_id.as_str()),
            "account.membership_id",
            &mut v,
        );
        v.finish()?;
        let membership = store::get_membership(tx, membership)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership))?;
        Ok(store::operation_types(tx, membership.program_id).await?)
    }

    /// Resolves an account for a write: an active membership of an active program, a point type
    /// of it (or `default_point_type`), and for B2B a person employed by the member (unless pooled).
    async fn write_target(
        &self,
        tx: &mut kit_store::Tx,
        account: Option<&AccountRef>,
        default_point_type: Option<&str>,
    ) -> Result<Target> {
        let mut v = FieldViolations::new();
        let account = account.cloned().unwrap_or_default();
        let membership_id = uuid(&account.membership_id, "account.membership_id", &mut v);
        let person_id = optional_uuid(&account.person_id, "account.person_id", &mut v);
        v.finish()?;
        let membership = store::lock_membership(tx, membership_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership_id))?;
        if membership.status != "active" {
            return Err(ServiceError::Precondition(
                "MEMBERSHIP_NOT_ACTIVE",
                format!("membership {membership_id} is {}", membership.status),
            ));
        }
        let program = store::get_program(tx, membership.program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
        require_active_program(&program)?;
        let point_type = self
            .point_type(tx, &program, &account.point_type, default_point_type)
            .await?;
        let person_id = match person_id {
            Some(_) if program.kind != "b2b" => {
                let mut v = FieldViolations::new();
                v.add(
                    "account.person_id",
                    "only B2B programs have person accounts",
                );
                return Err(v.into());
            }
            // Pooled: persons' points go to the organization's account.
            Some(_) if membership.pool_to_organization => None,
            Some(person) => {
                self.require_employee(person, membership.party_id).await?;
                Some(person)
            }
            None => None,
        };
        Ok(Target {
            program,
            membership,
            person_id,
            point_type,
        })
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

    async fn point_type(
        &self,
        conn: &mut PgConnection,
        program: &ProgramRow,
        requested: &str,
        default: Option<&str>,
    ) -> Result<PointTypeRow> {
        let types = store::point_types(conn, program.id).await?;
        let wanted = Some(requested.trim()).filter(|t| !t.is_empty()).or(default);
        let found = match wanted {
            Some(code) => types.into_iter().find(|t| t.code == code),
            None => types.into_iter().next(),
        };
        found.ok_or_else(|| {
            let mut v = FieldViolations::new();
            v.add(
                "account.point_type",
                format!("the program has no point type {:?}", wanted.unwrap_or("")),
            );
            v.into()
        })
    }

    /// The person must currently work for the member organization (asked of the parties service).
    async fn require_employee(&self, person: Uuid, organization: Uuid) -> Result<()> {
        let reply = self
            .parties
            .clone()
            .get_person(GetPersonRequest {
                id: person.to_string(),
            })
            .await;
        let person_record = match reply {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(ServiceError::NotFound("Person", person.to_string()));
            }
            Err(status) => return Err(parties_unavailable(status)),
        };
        let employed = person_record
            .employments
            .iter()
            .any(|e| e.end_date.is_none() && e.organization_party_id == organization.to_string());
        if !employed {
            return Err(ServiceError::Precondition(
                "PERSON_NOT_EMPLOYED",
                format!("person {person} does not work for the member organization {organization}"),
            ));
        }
        Ok(())
    }
}

enum HoldState {
    Pending(HoldRow),
    /// Captured, voided or expired before this call.
    Settled(HoldRow),
    /// Expired by this call: its release must be committed.
    Expired(HoldRow),
}

/// What one operation posts, besides its account and type.
pub(crate) struct Posting<'a> {
    pub client_id: &'a str,
    pub points: i64,
    pub reference: &'a str,
    pub subject: &'a str,
}

/// Posts an operation of `op_type` on the target's account: the balance change (refused with
/// INSUFFICIENT_POINTS when a debit is not covered), the two entries and the event. Returns its id.
pub(crate) async fn post(
    tx: &mut kit_store::Tx,
    target: &Target,
    op_type: &OperationTypeRow,
    posting: &Posting<'_>,
) -> Result<Uuid> {
    let account = store::member_account(
        tx,
        target.program.id,
        target.membership.id,
        target.person_id,
        &target.point_type.code,
    )
    .await?;
    let accrue = op_type.direction == "accrue";
    let delta = if accrue {
        posting.points
    } else {
        -posting.points
    };
    let floor = (!target.point_type.allow_negative).then_some(0);
    let Some(balance_after) = store::change_balance(tx, account, delta, floor).await? else {
        return Err(insufficient(tx, account, posting.points).await);
    };
    let system = if accrue { "issuance" } else { "redemption" };
    let system_account =
        store::system_account(tx, target.program.id, &target.point_type.code, system).await?;
    let id = Uuid::now_v7();
    let operation = NewOperation {
        id,
        client_id: posting.client_id,
        account_id: account,
        system_account_id: system_account,
        operation_type: &op_type.code,
        direction: &op_type.direction,
        points: posting.points,
        delta,
        balance_after,
        reference: posting.reference,
        reverses: None,
        subject: posting.subject,
    };
    store::post_operation(tx, &operation)
        .await
        .map_err(|e| operation_id_used(e, posting.client_id))?;
    if accrue {
        let expires_at = store::expiry_of(&target.point_type, &target.program, Utc::now());
        store::add_lot(tx, account, id, posting.points, expires_at).await?;
    } else {
        store::consume_lots(tx, account, posting.points, None).await?;
    }
    let account = Some(target.reference());
    let (operation_id, operation_type, points) =
        (id.to_string(), op_type.code.clone(), posting.points);
    if accrue {
        let event = PointsAccrued {
            operation_id,
            account,
            operation_type,
            points,
            balance_after,
        };
        events::points(tx, target.membership.id, &event).await?;
    } else {
        let event = PointsRedeemed {
            operation_id,
            account,
            operation_type,
            points,
            balance_after,
        };
        events::points(tx, target.membership.id, &event).await?;
    }
    if accrue && target.point_type.qualifying {
        tiers::evaluate(tx, target.membership.id).await?;
    }
    Ok(id)
}

/// Posts the opposite of `original` once, down to its point type's reversal floor. Returns the
/// reversal's id.
pub(crate) async fn reverse(
    tx: &mut kit_store::Tx,
    original: &OperationRow,
    client_id: &str,
    reference: &str,
    subject: &str,
) -> Result<Uuid> {
    if original.reverses.is_some() {
        return Err(ServiceError::Precondition(
            "CANNOT_REVERSE_A_REVERSAL",
            "a reversal cannot be reversed".into(),
        ));
    }
    if let Some(reversal) = original.reversed_by {
        return Err(ServiceError::Precondition(
            "ALREADY_REVERSED",
            format!(
                "operation {} was already reversed by {reversal}",
                original.client_id
            ),
        ));
    }
    let membership = store::get_membership(tx, original.membership_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", original.membership_id))?;
    let point_type = store::point_types(tx, membership.program_id)
        .await?
        .into_iter()
        .find(|t| t.code == original.point_type)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("point type of an operation vanished"))
        })?;
    let was_accrual = original.direction == "accrue";
    let delta = if was_accrual {
        -original.points
    } else {
        original.points
    };
    // A return may take the balance below zero, down to the point type's floor.
    let floor = (!point_type.allow_negative).then_some(point_type.reversal_floor);
    let Some(balance_after) = store::change_balance(tx, original.account_id, delta, floor).await?
    else {
        return Err(ServiceError::Precondition(
            "REVERSAL_BELOW_FLOOR",
            format!(
                "reversing {} points would take the balance below the floor of {}",
                original.points, point_type.reversal_floor
            ),
        ));
    };
    let system = if was_accrual {
        "issuance"
    } else {
        "redemption"
    };
    let system_account =
        store::system_account(tx, membership.program_id, &original.point_type, system).await?;
    let id = Uuid::now_v7();
    let operation = NewOperation {
        id,
        client_id,
        account_id: original.account_id,
        system_account_id: system_account,
        operation_type: &original.operation_type,
        direction: if was_accrual { "settle" } else { "accrue" },
        points: original.points,
        delta,
        balance_after,
        reference,
        reverses: Some(original.id),
        subject,
    };
    store::post_operation(tx, &operation)
        .await
        .map_err(|e| operation_id_used(e, client_id))?;
    if was_accrual {
        store::consume_lots(tx, original.account_id, original.points, Some(original.id)).await?;
    } else {
        // Spent points come back as a fresh credit of their point type.
        let program = store::get_program(tx, membership.program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", membership.program_id))?;
        let expires_at = store::expiry_of(&point_type, &program, Utc::now());
        store::add_lot(tx, original.account_id, id, original.points, expires_at).await?;
    }
    let event = PointsReversed {
        operation_id: id.to_string(),
        reversed_operation_id: original.id.to_string(),
        account: Some(account_ref(
            original.membership_id,
            original.person_id,
            &original.point_type,
        )),
        points: delta,
        balance_after,
    };
    events::points(tx, original.membership_id, &event).await?;
    if point_type.qualifying {
        tiers::evaluate(tx, original.membership_id).await?;
    }
    Ok(id)
}

async fn expire(tx: &mut kit_store::Tx, hold: &HoldRow) -> Result<()> {
    store::release(tx, hold.account_id, hold.points).await?;
    store::settle_hold(tx, hold.id, "expired", 0, None).await?;
    let account = Some(account_ref(
        hold.membership_id,
        hold.person_id,
        &hold.point_type,
    ));
    events::points(
        tx,
        hold.membership_id,
        &HoldExpired {
            hold_id: hold.id.to_string(),
            account,
        },
    )
    .await?;
    Ok(())
}

fn hold_not_pending(hold: &HoldRow) -> ServiceError {
    let reason = match hold.status.as_str() {
        "expired" => "HOLD_EXPIRED",
        "captured" => "HOLD_CAPTURED",
        _ => "HOLD_VOIDED",
    };
    ServiceError::Precondition(
        reason,
        format!("hold {} is {}", hold.client_id, hold.status),
    )
}

async fn insufficient(tx: &mut kit_store::Tx, account: Uuid, needed: i64) -> ServiceError {
    let available: Option<i64> =
        sqlx::query_scalar("SELECT balance - held FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(&mut **tx)
            .await
            .ok()
            .flatten();
    ServiceError::Precondition(
        "INSUFFICIENT_POINTS",
        format!(
            "{needed} points needed, {} available",
            available.unwrap_or(0)
        ),
    )
}

fn operation_id_used(error: sqlx::Error, client_id: &str) -> ServiceError {
    if unique_violation(&error).is_some() {
        ServiceError::AlreadyExists(
            "REQUEST_ID_REUSED",
            format!("the id {client_id:?} was already used"),
        )
    } else {
        error.into()
    }
}

fn parties_unavailable(status: tonic::Status) -> ServiceError {
    tracing::warn!(code = ?status.code(), message = status.message(), "the parties service did not answer");
    ServiceError::Unavailable("the parties service is unavailable; retry later".into())
}

fn require_active_program(program: &ProgramRow) -> Result<()> {
    if program.status == "active" {
        return Ok(());
    }
    Err(ServiceError::Precondition(
        "PROGRAM_NOT_ACTIVE",
        format!("program {} is {}", program.id, program.status),
    ))
}

fn check_points(points: i64, field: &str, v: &mut FieldViolations) {
    v.check(
        (1..=MAX_POINTS).contains(&points),
        field,
        "must be a positive whole number of points",
    );
}

fn check_validity(program: &ProgramRow, v: &mut FieldViolations) {
    if let (Some(from), Some(to)) = (program.valid_from, program.valid_to) {
        v.check(
            to >= from,
            "program.valid_to",
            "must not be before valid_from",
        );
    }
}

/// Lower snake case: `basic`, `signup_bonus`.
pub(crate) fn code(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let code = raw.trim();
    let ok = (1..=63).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    v.check(
        ok,
        field,
        "must be lower snake case, e.g. basic or signup_bonus",
    );
    code.to_owned()
}

pub(crate) fn display_name(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim();
    v.check(
        !name.is_empty() && name.chars().count() <= 300,
        field,
        "must be 1 to 300 characters",
    );
    name.to_owned()
}

fn account_ref(membership: Uuid, person: Option<Uuid>, point_type: &str) -> AccountRef {
    AccountRef {
        membership_id: membership.to_string(),
        person_id: person.map(|p| p.to_string()).unwrap_or_default(),
        point_type: point_type.to_owned(),
    }
}

// --- storage rows to API messages -------------------------------------------------------------

pub(crate) async fn program_in(conn: &mut PgConnection, id: Uuid) -> Result<Program> {
    let row = store::get_program(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Program", id))?;
    program_to_proto(conn, &row).await
}

async fn program_to_proto(conn: &mut PgConnection, row: &ProgramRow) -> Result<Program> {
    let point_types = store::point_types(conn, row.id).await?;
    let operation_types = store::operation_types(conn, row.id).await?;
    let tiers = tiers::tiers(conn, row.id).await?;
    Ok(Program {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        kind: if row.kind == "b2b" {
            ProgramKind::B2b
        } else {
            ProgramKind::B2c
        } as i32,
        currency_code: row.currency_code.clone(),
        status: match row.status.as_str() {
            "active" => ProgramStatus::Active,
            "closed" => ProgramStatus::Closed,
            _ => ProgramStatus::Draft,
        } as i32,
        valid_from: row.valid_from.map(date_to_proto),
        valid_to: row.valid_to.map(date_to_proto),
        point_types: point_types
            .iter()
            .map(|t| PointType {
                code: t.code.clone(),
                display_name: t.display_name.clone(),
                qualifying: t.qualifying,
                expiry_policy: match t.expiry_policy.as_str() {
                    "months_after_earning" => ExpiryPolicy::MonthsAfterEarning,
                    "end_of_program" => ExpiryPolicy::EndOfProgram,
                    _ => ExpiryPolicy::Never,
                } as i32,
                expiry_months: t.expiry_months,
                allow_negative: t.allow_negative,
                reversal_floor: t.reversal_floor,
            })
            .collect(),
        operation_types: operation_types
            .iter()
            .map(|t| OperationType {
                code: t.code.clone(),
                display_name: t.display_name.clone(),
                direction: if t.direction == "settle" {
                    Direction::Settle
                } else {
                    Direction::Accrue
                } as i32,
                default_point_type: t.default_point_type.clone(),
            })
            .collect(),
        reward_ids: row.reward_ids.clone(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
        tiers: tiers
            .into_iter()
            .map(|t| Tier {
                code: t.code,
                display_name: t.display_name,
                threshold: t.threshold,
                window_months: t.window_months,
            })
            .collect(),
        accrual_rules: row.accrual_rules.as_ref().map(|rules| AccrualRules {
            operation_type: rules.operation_type.clone(),
            points_per_unit: rules.points_per_unit.clone(),
            category_rates: rules
                .category_rates
                .iter()
                .map(|(category, rate)| CategoryRate {
                    category: category.clone(),
                    points_per_unit: rate.clone(),
                })
                .collect(),
            minimum_amount: rules.minimum_amount.clone(),
            cap_per_invoice: rules.cap_per_invoice,
            tier_multipliers: rules
                .tier_multipliers
                .iter()
                .map(|(tier, multiplier)| TierMultiplier {
                    tier: tier.clone(),
                    multiplier: multiplier.clone(),
                })
                .collect(),
            campaigns: rules
                .campaigns
                .iter()
                .map(|c| Campaign {
                    code: c.code.clone(),
                    multiplier: c.multiplier.clone(),
                    categories: c.categories.clone(),
                    start_time: c.start_time.map(timestamp),
                    end_time: c.end_time.map(timestamp),
                })
                .collect(),
            cap_per_period: rules.cap_per_period,
            period_days: rules.period_days,
        }),
    })
}

pub(crate) async fn membership_in(conn: &mut PgConnection, id: Uuid) -> Result<Membership> {
    let row = store::get_membership(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Membership", id))?;
    Ok(membership_to_proto(&row))
}

fn membership_to_proto(row: &MembershipRow) -> Membership {
    Membership {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        party_id: row.party_id.to_string(),
        status: match row.status.as_str() {
            "suspended" => MembershipStatus::Suspended,
            "left" => MembershipStatus::Left,
            _ => MembershipStatus::Active,
        } as i32,
        pool_to_organization: row.pool_to_organization,
        tier: row.tier.clone().unwrap_or_default(),
        assigned_tier: row.assigned_tier.clone().unwrap_or_default(),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

fn balance_to_proto(account: AccountRef, row: Option<&AccountRow>) -> Balance {
    let (balance, held) = row.map_or((0, 0), |a| (a.balance, a.held));
    Balance {
        account: Some(account),
        balance,
        held,
        available: balance - held,
        update_time: row.map(|a| timestamp(a.updated_at)),
    }
}

fn entry_to_proto(row: &EntryRow) -> LedgerEntry {
    LedgerEntry {
        id: row.id,
        operation_id: row.operation_id.to_string(),
        operation_type: row.operation_type.clone(),
        amount: row.amount,
        balance_after: row.balance_after.unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    }
}

async fn operation_in(conn: &mut PgConnection, id: Uuid) -> Result<Operation> {
    let row = store::get_operation(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Operation", id))?;
    Ok(operation_to_proto(&row))
}

fn operation_to_proto(row: &OperationRow) -> Operation {
    Operation {
        id: row.id.to_string(),
        operation_id: row.client_id.clone(),
        account: Some(account_ref(
            row.membership_id,
            row.person_id,
            &row.point_type,
        )),
        operation_type: row.operation_type.clone(),
        direction: if row.direction == "settle" {
            Direction::Settle
        } else {
            Direction::Accrue
        } as i32,
        points: row.points,
        balance_after: row.balance_after,
        status: if row.reversed_by.is_some() {
            OperationStatus::Reversed
        } else {
            OperationStatus::Posted
        } as i32,
        reverses_operation_id: row.reverses.map(|id| id.to_string()).unwrap_or_default(),
        reversed_by_operation_id: row.reversed_by.map(|id| id.to_string()).unwrap_or_default(),
        reference: row.reference.clone(),
        create_time: Some(timestamp(row.created_at)),
    }
}

async fn hold_in(conn: &mut PgConnection, id: Uuid) -> Result<Hold> {
    let row = store::get_hold(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Hold", id))?;
    Ok(hold_to_proto(&row))
}

fn hold_to_proto(row: &HoldRow) -> Hold {
    Hold {
        id: row.id.to_string(),
        hold_id: row.client_id.clone(),
        account: Some(account_ref(
            row.membership_id,
            row.person_id,
            &row.point_type,
        )),
        points: row.points,
        captured_points: row.captured_points,
        status: match row.status.as_str() {
            "captured" => HoldStatus::Captured,
            "voided" => HoldStatus::Voided,
            "expired" => HoldStatus::Expired,
            _ => HoldStatus::Pending,
        } as i32,
        expire_time: Some(timestamp(row.expires_at)),
        reference: row.reference.clone(),
        capture_operation_id: row
            .capture_operation_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    }
}
