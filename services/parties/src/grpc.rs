//! The `crm.parties.v1.PartiesService` gRPC adapter: who is calling, then the use case, then the
//! one error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::parties::v1::{parties_service_server::PartiesService, *};
use tonic::Request;

use crate::Parties;

#[tonic::async_trait]
impl PartiesService for Parties {
    async fn create_party(&self, request: Request<CreatePartyRequest>) -> Reply<Party> {
        let subject = subject(&request);
        reply(Parties::create_party(self, &subject, request.into_inner()).await)
    }

    async fn get_party(&self, request: Request<GetPartyRequest>) -> Reply<Party> {
        reply(Parties::get_party(self, request.into_inner()).await)
    }

    async fn update_party(&self, request: Request<UpdatePartyRequest>) -> Reply<Party> {
        let subject = subject(&request);
        reply(Parties::update_party(self, &subject, request.into_inner()).await)
    }

    async fn archive_party(&self, request: Request<ArchivePartyRequest>) -> Reply<Party> {
        let subject = subject(&request);
        reply(Parties::archive_party(self, &subject, request.into_inner()).await)
    }

    async fn list_parties(
        &self,
        request: Request<ListPartiesRequest>,
    ) -> Reply<ListPartiesResponse> {
        reply(Parties::list_parties(self, request.into_inner()).await)
    }

    async fn search_parties(
        &self,
        request: Request<SearchPartiesRequest>,
    ) -> Reply<SearchPartiesResponse> {
        reply(Parties::search_parties(self, request.into_inner()).await)
    }

    async fn find_duplicates(
        &self,
        request: Request<FindDuplicatesRequest>,
    ) -> Reply<FindDuplicatesResponse> {
        reply(Parties::find_duplicates(self, request.into_inner()).await)
    }

    async fn merge_parties(
        &self,
        request: Request<MergePartiesRequest>,
    ) -> Reply<MergePartiesResponse> {
        let subject = subject(&request);
        reply(Parties::merge_parties(self, &subject, request.into_inner()).await)
    }

    async fn create_base(&self, request: Request<CreateBaseRequest>) -> Reply<Base> {
        let subject = subject(&request);
        reply(Parties::create_base(self, &subject, request.into_inner()).await)
    }

    async fn get_base(&self, request: Request<GetBaseRequest>) -> Reply<Base> {
        reply(Parties::get_base(self, request.into_inner()).await)
    }

    async fn search_persons(
        &self,
        request: Request<SearchPersonsRequest>,
    ) -> Reply<SearchPersonsResponse> {
        reply(Parties::search_persons(self, request.into_inner()).await)
    }

    async fn list_bases(&self, request: Request<ListBasesRequest>) -> Reply<ListBasesResponse> {
        reply(Parties::list_bases(self, request.into_inner()).await)
    }

    async fn update_base(&self, request: Request<UpdateBaseRequest>) -> Reply<Base> {
        let subject = subject(&request);
        reply(Parties::update_base(self, &subject, request.into_inner()).await)
    }

    async fn add_party_to_base(&self, request: Request<AddPartyToBaseRequest>) -> Reply<Party> {
        let subject = subject(&request);
        reply(Parties::add_party_to_base(self, &subject, request.into_inner()).await)
    }

    async fn remove_party_from_base(
        &self,
        request: Request<RemovePartyFromBaseRequest>,
    ) -> Reply<Party> {
        let subject = subject(&request);
        reply(Parties::remove_party_from_base(self, &subject, request.into_inner()).await)
    }

    async fn create_person(&self, request: Request<CreatePersonRequest>) -> Reply<Person> {
        let subject = subject(&request);
        reply(Parties::create_person(self, &subject, request.into_inner()).await)
    }

    async fn get_person(&self, request: Request<GetPersonRequest>) -> Reply<Person> {
        reply(Parties::get_person(self, request.into_inner()).await)
    }

    async fn update_person(&self, request: Request<UpdatePersonRequest>) -> Reply<Person> {
        let subject = subject(&request);
        reply(Parties::update_person(self, &subject, request.into_inner()).await)
    }

    async fn list_persons(
        &self,
        request: Request<ListPersonsRequest>,
    ) -> Reply<ListPersonsResponse> {
        reply(Parties::list_persons(self, request.into_inner()).await)
    }

    async fn add_employment(&self, request: Request<AddEmploymentRequest>) -> Reply<Person> {
        let subject = subject(&request);
        reply(Parties::add_employment(self, &subject, request.into_inner()).await)
    }

    async fn end_employment(&self, request: Request<EndEmploymentRequest>) -> Reply<Person> {
        let subject = subject(&request);
        reply(Parties::end_employment(self, &subject, request.into_inner()).await)
    }

    async fn define_custom_field(
        &self,
        request: Request<DefineCustomFieldRequest>,
    ) -> Reply<CustomFieldDefinition> {
        let subject = subject(&request);
        reply(Parties::define_custom_field(self, &subject, request.into_inner()).await)
    }

    async fn list_custom_fields(
        &self,
        request: Request<ListCustomFieldsRequest>,
    ) -> Reply<ListCustomFieldsResponse> {
        reply(Parties::list_custom_fields(self, request.into_inner()).await)
    }
}
