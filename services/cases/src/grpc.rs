//! The `crm.cases.v1.CasesService` gRPC adapter: who is calling, then the use case, then the one
//! error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::cases::v1::{
    cases_service_server::CasesService, offers_service_server::OffersService,
    service_desk_service_server::ServiceDeskService, *,
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

#[tonic::async_trait]
impl ServiceDeskService for Cases {
    async fn create_calendar(&self, request: Request<CreateCalendarRequest>) -> Reply<Calendar> {
        let subject = subject(&request);
        reply(Cases::create_calendar(self, &subject, request.into_inner()).await)
    }

    async fn get_calendar(&self, request: Request<GetCalendarRequest>) -> Reply<Calendar> {
        reply(Cases::get_calendar(self, request.into_inner()).await)
    }

    async fn create_sla_policy(
        &self,
        request: Request<CreateSlaPolicyRequest>,
    ) -> Reply<SlaPolicy> {
        let subject = subject(&request);
        reply(Cases::create_sla_policy(self, &subject, request.into_inner()).await)
    }

    async fn list_sla_policies(
        &self,
        request: Request<ListSlaPoliciesRequest>,
    ) -> Reply<ListSlaPoliciesResponse> {
        reply(Cases::list_sla_policies(self, request.into_inner()).await)
    }

    async fn open_ticket(&self, request: Request<OpenTicketRequest>) -> Reply<Ticket> {
        let subject = subject(&request);
        reply(Cases::open_ticket(self, &subject, request.into_inner()).await)
    }

    async fn get_ticket(&self, request: Request<GetTicketRequest>) -> Reply<Ticket> {
        reply(Cases::get_ticket(self, request.into_inner()).await)
    }

    async fn update_ticket(&self, request: Request<UpdateTicketRequest>) -> Reply<Ticket> {
        let subject = subject(&request);
        reply(Cases::update_ticket(self, &subject, request.into_inner()).await)
    }

    async fn respond_to_ticket(&self, request: Request<RespondToTicketRequest>) -> Reply<Ticket> {
        let subject = subject(&request);
        reply(Cases::respond_to_ticket(self, &subject, request.into_inner()).await)
    }

    async fn resolve_ticket(&self, request: Request<ResolveTicketRequest>) -> Reply<Ticket> {
        let subject = subject(&request);
        reply(Cases::resolve_ticket(self, &subject, request.into_inner()).await)
    }

    async fn reopen_ticket(&self, request: Request<ReopenTicketRequest>) -> Reply<Ticket> {
        let subject = subject(&request);
        reply(Cases::reopen_ticket(self, &subject, request.into_inner()).await)
    }

    async fn list_tickets(
        &self,
        request: Request<ListTicketsRequest>,
    ) -> Reply<ListTicketsResponse> {
        reply(Cases::list_tickets(self, request.into_inner()).await)
    }
}
