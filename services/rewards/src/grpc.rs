//! The `crm.rewards.v1.RewardsService` gRPC adapter: who is calling, then the use case, then the
//! one error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::rewards::v1::{rewards_service_server::RewardsService, *};
use tonic::Request;

use crate::Rewards;

#[tonic::async_trait]
impl RewardsService for Rewards {
    async fn create_reward(&self, request: Request<CreateRewardRequest>) -> Reply<Reward> {
        let subject = subject(&request);
        reply(Rewards::create_reward(self, &subject, request.into_inner()).await)
    }

    async fn get_reward(&self, request: Request<GetRewardRequest>) -> Reply<Reward> {
        reply(Rewards::get_reward(self, request.into_inner()).await)
    }

    async fn update_reward(&self, request: Request<UpdateRewardRequest>) -> Reply<Reward> {
        let subject = subject(&request);
        reply(Rewards::update_reward(self, &subject, request.into_inner()).await)
    }

    async fn list_rewards(
        &self,
        request: Request<ListRewardsRequest>,
    ) -> Reply<ListRewardsResponse> {
        reply(Rewards::list_rewards(self, request.into_inner()).await)
    }

    async fn archive_reward(&self, request: Request<ArchiveRewardRequest>) -> Reply<Reward> {
        let subject = subject(&request);
        reply(Rewards::archive_reward(self, &subject, request.into_inner()).await)
    }

    async fn import_voucher_codes(
        &self,
        request: Request<ImportVoucherCodesRequest>,
    ) -> Reply<ImportVoucherCodesResponse> {
        let subject = subject(&request);
        reply(Rewards::import_voucher_codes(self, &subject, request.into_inner()).await)
    }

    async fn create_warehouse(&self, request: Request<CreateWarehouseRequest>) -> Reply<Warehouse> {
        let subject = subject(&request);
        reply(Rewards::create_warehouse(self, &subject, request.into_inner()).await)
    }

    async fn list_warehouses(
        &self,
        request: Request<ListWarehousesRequest>,
    ) -> Reply<ListWarehousesResponse> {
        reply(Rewards::list_warehouses(self, request.into_inner()).await)
    }

    async fn record_stock_movement(
        &self,
        request: Request<RecordStockMovementRequest>,
    ) -> Reply<RecordStockMovementResponse> {
        let subject = subject(&request);
        reply(Rewards::record_stock_movement(self, &subject, request.into_inner()).await)
    }

    async fn get_stock(&self, request: Request<GetStockRequest>) -> Reply<Stock> {
        reply(Rewards::get_stock(self, request.into_inner()).await)
    }

    async fn list_stock_movements(
        &self,
        request: Request<ListStockMovementsRequest>,
    ) -> Reply<ListStockMovementsResponse> {
        reply(Rewards::list_stock_movements(self, request.into_inner()).await)
    }

    async fn place_reward_order(
        &self,
        request: Request<PlaceRewardOrderRequest>,
    ) -> Reply<RewardOrder> {
        let subject = subject(&request);
        reply(Rewards::place_reward_order(self, &subject, request.into_inner()).await)
    }

    async fn get_reward_order(
        &self,
        request: Request<GetRewardOrderRequest>,
    ) -> Reply<RewardOrder> {
        reply(Rewards::get_reward_order(self, request.into_inner()).await)
    }

    async fn list_reward_orders(
        &self,
        request: Request<ListRewardOrdersRequest>,
    ) -> Reply<ListRewardOrdersResponse> {
        reply(Rewards::list_reward_orders(self, request.into_inner()).await)
    }

    async fn confirm_shipment(
        &self,
        request: Request<ConfirmShipmentRequest>,
    ) -> Reply<RewardOrder> {
        let subject = subject(&request);
        reply(Rewards::confirm_shipment(self, &subject, request.into_inner()).await)
    }

    async fn confirm_delivery(
        &self,
        request: Request<ConfirmDeliveryRequest>,
    ) -> Reply<RewardOrder> {
        let subject = subject(&request);
        reply(Rewards::confirm_delivery(self, &subject, request.into_inner()).await)
    }

    async fn cancel_reward_order(
        &self,
        request: Request<CancelRewardOrderRequest>,
    ) -> Reply<RewardOrder> {
        let subject = subject(&request);
        reply(Rewards::cancel_reward_order(self, &subject, request.into_inner()).await)
    }

    async fn return_reward_order(
        &self,
        request: Request<ReturnRewardOrderRequest>,
    ) -> Reply<RewardOrder> {
        let subject = subject(&request);
        reply(Rewards::return_reward_order(self, &subject, request.into_inner()).await)
    }
}
