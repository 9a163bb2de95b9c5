//! The `crm.cases.v1.CasesService` gRPC adapter: who is calling, then the use case, then the one
//! error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::cases::v1::{
    cases_service_server::CasesService, offers_service_server::OffersService, *,
};
use tonic::Request;

use crate::Cases;

#[tonic::async_trait]
impl CasesService for Cases {
    async fn create_pipeline(&self, request: Request<CreatePipelineRequest>) -> Reply<Pipeline> {
        let subject = subject(&request);
        reply(Cases::create_pipeline(self, &subject, request.into_inner()).await)
    }

    async fn get_pipeline(&self, request: Request<GetPipelineRequest>) -> Reply<Pipeline> {
        reply(Cases::get_pipeline(self, request.into_inner()).await)
    }

    async fn list_pipelines(
        &self,
        request: Request<ListPipelinesRequest>,
    ) -> Reply<ListPipelinesResponse> {
        reply(Cases::list_pipelines(self, request.into_inner()).await)
    }

    async fn create_case(&self, request: Request<CreateCaseRequest>) -> Reply<Case> {
        let subject = subject(&request);
        reply(Cases::create_case(self, &subject, request.into_inner()).await)
    }

    async fn get_case(&self, request: Request<GetCaseRequest>) -> Reply<Case> {
        reply(Cases::get_case(self, request.into_inner()).await)
    }

    async fn update_case(&self, request: Request<UpdateCaseRequest>) -> Reply<Case> {
        let subject = subject(&request);
        reply(Cases::update_case(self, &subject, request.into_inner()).await)
    }

    async fn list_cases(&self, request: Request<ListCasesRequest>) -> Reply<ListCasesResponse> {
        reply(Cases::list_cases(self, request.into_inner()).await)
    }

    async fn move_case(&self, request: Request<MoveCaseRequest>) -> Reply<Case> {
        let subject = subject(&request);
        reply(Cases::move_case(self, &subject, request.into_inner()).await)
    }

    async fn get_funnel(&self, request: Request<GetFunnelRequest>) -> Reply<Funnel> {
        reply(Cases::get_funnel(self, request.into_inner()).await)
    }

    async fn get_forecast(&self, request: Request<GetForecastRequest>) -> Reply<Forecast> {
        reply(Cases::get_forecast(self, request.into_inner()).await)
    }

    async fn close_case(&self, request: Request<CloseCaseRequest>) -> Reply<Case> {
        let subject = subject(&request);
        reply(Cases::close_case(self, &subject, request.into_inner()).await)
    }
}

#[tonic::async_trait]
impl OffersService for Cases {
    async fn create_offer(&self, request: Request<CreateOfferRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::create_offer(self, &subject, request.into_inner()).await)
    }

    async fn get_offer(&self, request: Request<GetOfferRequest>) -> Reply<Offer> {
        reply(Cases::get_offer(self, request.into_inner()).await)
    }

    async fn update_offer(&self, request: Request<UpdateOfferRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::update_offer(self, &subject, request.into_inner()).await)
    }

    async fn list_offers(&self, request: Request<ListOffersRequest>) -> Reply<ListOffersResponse> {
        reply(Cases::list_offers(self, request.into_inner()).await)
    }

    async fn add_offer_version(&self, request: Request<AddOfferVersionRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::add_offer_version(self, &subject, request.into_inner()).await)
    }

    async fn send_offer(&self, request: Request<SendOfferRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::send_offer(self, &subject, request.into_inner()).await)
    }

    async fn render_offer(&self, request: Request<RenderOfferRequest>) -> Reply<RenderedOffer> {
        reply(Cases::render_offer(self, request.into_inner()).await)
    }

    async fn accept_offer(&self, request: Request<AcceptOfferRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::accept_offer(self, &subject, request.into_inner()).await)
    }

    async fn reject_offer(&self, request: Request<RejectOfferRequest>) -> Reply<Offer> {
        let subject = subject(&request);
        reply(Cases::reject_offer(self, &subject, request.into_inner()).await)
    }
}
