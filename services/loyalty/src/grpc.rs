//! The `crm.loyalty.v1.LoyaltyService` gRPC adapter: who is calling, then the use case, then the
//! one error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::loyalty::v1::{loyalty_service_server::LoyaltyService, *};
use tonic::Request;

use crate::Loyalty;

#[tonic::async_trait]
impl LoyaltyService for Loyalty {
    async fn create_program(&self, request: Request<CreateProgramRequest>) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::create_program(self, &subject, request.into_inner()).await)
    }

    async fn get_program(&self, request: Request<GetProgramRequest>) -> Reply<Program> {
        reply(Loyalty::get_program(self, request.into_inner()).await)
    }

    async fn update_program(&self, request: Request<UpdateProgramRequest>) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::update_program(self, &subject, request.into_inner()).await)
    }

    async fn list_programs(
        &self,
        request: Request<ListProgramsRequest>,
    ) -> Reply<ListProgramsResponse> {
        reply(Loyalty::list_programs(self, request.into_inner()).await)
    }

    async fn define_point_type(&self, request: Request<DefinePointTypeRequest>) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::define_point_type(self, &subject, request.into_inner()).await)
    }

    async fn define_operation_type(
        &self,
        request: Request<DefineOperationTypeRequest>,
    ) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::define_operation_type(self, &subject, request.into_inner()).await)
    }

    async fn set_accrual_rules(&self, request: Request<SetAccrualRulesRequest>) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::set_accrual_rules(self, &subject, request.into_inner()).await)
    }

    async fn start_bulk_accrual(
        &self,
        request: Request<StartBulkAccrualRequest>,
    ) -> Reply<BulkAccrual> {
        let subject = subject(&request);
        reply(Loyalty::start_bulk_accrual(self, &subject, request.into_inner()).await)
    }

    async fn get_bulk_accrual(
        &self,
        request: Request<GetBulkAccrualRequest>,
    ) -> Reply<BulkAccrual> {
        reply(Loyalty::get_bulk_accrual(self, request.into_inner()).await)
    }

    async fn define_tier(&self, request: Request<DefineTierRequest>) -> Reply<Program> {
        let subject = subject(&request);
        reply(Loyalty::define_tier(self, &subject, request.into_inner()).await)
    }

    async fn assign_tier(&self, request: Request<AssignTierRequest>) -> Reply<Membership> {
        let subject = subject(&request);
        reply(Loyalty::assign_tier(self, &subject, request.into_inner()).await)
    }

    async fn issue_card(&self, request: Request<IssueCardRequest>) -> Reply<Card> {
        let subject = subject(&request);
        reply(Loyalty::issue_card(self, &subject, request.into_inner()).await)
    }

    async fn activate_card(&self, request: Request<ActivateCardRequest>) -> Reply<Card> {
        let subject = subject(&request);
        reply(Loyalty::activate_card(self, &subject, request.into_inner()).await)
    }

    async fn block_card(&self, request: Request<BlockCardRequest>) -> Reply<Card> {
        let subject = subject(&request);
        reply(Loyalty::block_card(self, &subject, request.into_inner()).await)
    }

    async fn reissue_card(&self, request: Request<ReissueCardRequest>) -> Reply<Card> {
        let subject = subject(&request);
        reply(Loyalty::reissue_card(self, &subject, request.into_inner()).await)
    }

    async fn close_card(&self, request: Request<CloseCardRequest>) -> Reply<Card> {
        let subject = subject(&request);
        reply(Loyalty::close_card(self, &subject, request.into_inner()).await)
    }

    async fn list_cards(&self, request: Request<ListCardsRequest>) -> Reply<ListCardsResponse> {
        reply(Loyalty::list_cards(self, request.into_inner()).await)
    }

    async fn create_coupon_definition(
        &self,
        request: Request<CreateCouponDefinitionRequest>,
    ) -> Reply<CouponDefinition> {
        let subject = subject(&request);
        reply(Loyalty::create_coupon_definition(self, &subject, request.into_inner()).await)
    }

    async fn generate_coupons(
        &self,
        request: Request<GenerateCouponsRequest>,
    ) -> Reply<GenerateCouponsResponse> {
        let subject = subject(&request);
        reply(Loyalty::generate_coupons(self, &subject, request.into_inner()).await)
    }

    async fn validate_coupon(
        &self,
        request: Request<ValidateCouponRequest>,
    ) -> Reply<CouponValidation> {
        reply(Loyalty::validate_coupon(self, request.into_inner()).await)
    }

    async fn redeem_coupon(
        &self,
        request: Request<RedeemCouponRequest>,
    ) -> Reply<CouponRedemption> {
        let subject = subject(&request);
        reply(Loyalty::redeem_coupon(self, &subject, request.into_inner()).await)
    }

    async fn set_discount(&self, request: Request<SetDiscountRequest>) -> Reply<Discount> {
        let subject = subject(&request);
        reply(Loyalty::set_discount(self, &subject, request.into_inner()).await)
    }

    async fn get_applicable_discounts(
        &self,
        request: Request<GetApplicableDiscountsRequest>,
    ) -> Reply<GetApplicableDiscountsResponse> {
        reply(Loyalty::get_applicable_discounts(self, request.into_inner()).await)
    }

    async fn get_expiry_forecast(
        &self,
        request: Request<GetExpiryForecastRequest>,
    ) -> Reply<ExpiryForecast> {
        reply(Loyalty::get_expiry_forecast(self, request.into_inner()).await)
    }

    async fn enroll(&self, request: Request<EnrollRequest>) -> Reply<Membership> {
        let subject = subject(&request);
        reply(Loyalty::enroll(self, &subject, request.into_inner()).await)
    }

    async fn get_membership(&self, request: Request<GetMembershipRequest>) -> Reply<Membership> {
        reply(Loyalty::get_membership(self, request.into_inner()).await)
    }

    async fn list_memberships(
        &self,
        request: Request<ListMembershipsRequest>,
    ) -> Reply<ListMembershipsResponse> {
        reply(Loyalty::list_memberships(self, request.into_inner()).await)
    }

    async fn suspend_membership(
        &self,
        request: Request<SuspendMembershipRequest>,
    ) -> Reply<Membership> {
        let subject = subject(&request);
        reply(Loyalty::suspend_membership(self, &subject, request.into_inner()).await)
    }

    async fn leave_program(&self, request: Request<LeaveProgramRequest>) -> Reply<Membership> {
        let subject = subject(&request);
        reply(Loyalty::leave_program(self, &subject, request.into_inner()).await)
    }

    async fn get_balance(&self, request: Request<GetBalanceRequest>) -> Reply<Balance> {
        reply(Loyalty::get_balance(self, request.into_inner()).await)
    }

    async fn list_balances(
        &self,
        request: Request<ListBalancesRequest>,
    ) -> Reply<ListBalancesResponse> {
        reply(Loyalty::list_balances(self, request.into_inner()).await)
    }

    async fn list_ledger_entries(
        &self,
        request: Request<ListLedgerEntriesRequest>,
    ) -> Reply<ListLedgerEntriesResponse> {
        reply(Loyalty::list_ledger_entries(self, request.into_inner()).await)
    }

    async fn record_operation(&self, request: Request<RecordOperationRequest>) -> Reply<Operation> {
        let subject = subject(&request);
        reply(Loyalty::record_operation(self, &subject, request.into_inner()).await)
    }

    async fn reverse_operation(
        &self,
        request: Request<ReverseOperationRequest>,
    ) -> Reply<Operation> {
        let subject = subject(&request);
        reply(Loyalty::reverse_operation(self, &subject, request.into_inner()).await)
    }

    async fn hold_points(&self, request: Request<HoldPointsRequest>) -> Reply<Hold> {
        let subject = subject(&request);
        reply(Loyalty::hold_points(self, &subject, request.into_inner()).await)
    }

    async fn capture_hold(&self, request: Request<CaptureHoldRequest>) -> Reply<Hold> {
        let subject = subject(&request);
        reply(Loyalty::capture_hold(self, &subject, request.into_inner()).await)
    }

    async fn void_hold(&self, request: Request<VoidHoldRequest>) -> Reply<Hold> {
        let subject = subject(&request);
        reply(Loyalty::void_hold(self, &subject, request.into_inner()).await)
    }

    async fn list_bulk_accruals(
        &self,
        request: Request<ListBulkAccrualsRequest>,
    ) -> Reply<ListBulkAccrualsResponse> {
        reply(Loyalty::list_bulk_accruals(self, request.into_inner()).await)
    }

    async fn cancel_bulk_accrual(
        &self,
        request: Request<CancelBulkAccrualRequest>,
    ) -> Reply<BulkAccrual> {
        let subject = subject(&request);
        reply(Loyalty::cancel_bulk_accrual(self, &subject, request.into_inner()).await)
    }

    async fn get_coupon_definition(
        &self,
        request: Request<GetCouponDefinitionRequest>,
    ) -> Reply<CouponDefinition> {
        reply(Loyalty::get_coupon_definition(self, request.into_inner()).await)
    }

    async fn list_coupon_definitions(
        &self,
        request: Request<ListCouponDefinitionsRequest>,
    ) -> Reply<ListCouponDefinitionsResponse> {
        reply(Loyalty::list_coupon_definitions(self, request.into_inner()).await)
    }

    async fn update_coupon_definition(
        &self,
        request: Request<UpdateCouponDefinitionRequest>,
    ) -> Reply<CouponDefinition> {
        let subject = subject(&request);
        reply(Loyalty::update_coupon_definition(self, &subject, request.into_inner()).await)
    }

    async fn list_discounts(
        &self,
        request: Request<ListDiscountsRequest>,
    ) -> Reply<ListDiscountsResponse> {
        reply(Loyalty::list_discounts(self, request.into_inner()).await)
    }

    async fn delete_discount(&self, request: Request<DeleteDiscountRequest>) -> Reply<Discount> {
        let subject = subject(&request);
        reply(Loyalty::delete_discount(self, &subject, request.into_inner()).await)
    }

    async fn get_member_benefits(
        &self,
        request: Request<GetMemberBenefitsRequest>,
    ) -> Reply<MemberBenefits> {
        reply(Loyalty::get_member_benefits(self, request.into_inner()).await)
    }

    async fn get_hold(&self, request: Request<GetHoldRequest>) -> Reply<Hold> {
        reply(Loyalty::get_hold(self, request.into_inner()).await)
    }

    async fn list_holds(&self, request: Request<ListHoldsRequest>) -> Reply<ListHoldsResponse> {
        reply(Loyalty::list_holds(self, request.into_inner()).await)
    }

    async fn get_operation(&self, request: Request<GetOperationRequest>) -> Reply<Operation> {
        reply(Loyalty::get_operation(self, request.into_inner()).await)
    }

    async fn find_card(&self, request: Request<FindCardRequest>) -> Reply<Card> {
        reply(Loyalty::find_card(self, request.into_inner()).await)
    }

    async fn reactivate_membership(
        &self,
        request: Request<ReactivateMembershipRequest>,
    ) -> Reply<Membership> {
        let subject = subject(&request);
        reply(Loyalty::reactivate_membership(self, &subject, request.into_inner()).await)
    }
}
