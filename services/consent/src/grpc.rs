//! The `crm.consent.v1.ConsentService` gRPC adapter: who is calling, then the use case, then the
//! one error mapping.

use std::pin::Pin;

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::consent::v1::{consent_service_server::ConsentService, *};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::Consents;

#[tonic::async_trait]
impl ConsentService for Consents {
    async fn create_purpose(&self, request: Request<CreatePurposeRequest>) -> Reply<Purpose> {
        let subject = subject(&request);
        reply(Consents::create_purpose(self, &subject, request.into_inner()).await)
    }

    async fn list_purposes(
        &self,
        request: Request<ListPurposesRequest>,
    ) -> Reply<ListPurposesResponse> {
        reply(Consents::list_purposes(self, request.into_inner()).await)
    }

    async fn get_purpose(&self, request: Request<GetPurposeRequest>) -> Reply<Purpose> {
        reply(Consents::get_purpose(self, request.into_inner()).await)
    }

    async fn update_purpose(&self, request: Request<UpdatePurposeRequest>) -> Reply<Purpose> {
        let subject = subject(&request);
        reply(Consents::update_purpose(self, &subject, request.into_inner()).await)
    }

    async fn list_purpose_texts(
        &self,
        request: Request<ListPurposeTextsRequest>,
    ) -> Reply<ListPurposeTextsResponse> {
        reply(Consents::list_purpose_texts(self, request.into_inner()).await)
    }

    async fn publish_purpose_text(
        &self,
        request: Request<PublishPurposeTextRequest>,
    ) -> Reply<Purpose> {
        let subject = subject(&request);
        reply(Consents::publish_purpose_text(self, &subject, request.into_inner()).await)
    }

    async fn record_consent(&self, request: Request<RecordConsentRequest>) -> Reply<ConsentRecord> {
        let subject = subject(&request);
        reply(Consents::record_consent(self, &subject, request.into_inner()).await)
    }

    async fn withdraw_consent(
        &self,
        request: Request<WithdrawConsentRequest>,
    ) -> Reply<ConsentRecord> {
        let subject = subject(&request);
        reply(Consents::withdraw_consent(self, &subject, request.into_inner()).await)
    }

    async fn get_consent_state(
        &self,
        request: Request<GetConsentStateRequest>,
    ) -> Reply<GetConsentStateResponse> {
        reply(Consents::get_consent_state(self, request.into_inner()).await)
    }

    async fn list_consent_history(
        &self,
        request: Request<ListConsentHistoryRequest>,
    ) -> Reply<ListConsentHistoryResponse> {
        reply(Consents::list_consent_history(self, request.into_inner()).await)
    }

    async fn check_consent(
        &self,
        request: Request<CheckConsentRequest>,
    ) -> Reply<CheckConsentResponse> {
        reply(Consents::check_consent(self, request.into_inner()).await)
    }

    async fn open_subject_request(
        &self,
        request: Request<OpenSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::open_subject_request(self, &subject, request.into_inner()).await)
    }

    async fn verify_subject_request(
        &self,
        request: Request<VerifySubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::verify_subject_request(self, &subject, request.into_inner()).await)
    }

    async fn get_subject_request(
        &self,
        request: Request<GetSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        reply(Consents::get_subject_request(self, request.into_inner()).await)
    }

    async fn list_subject_requests(
        &self,
        request: Request<ListSubjectRequestsRequest>,
    ) -> Reply<ListSubjectRequestsResponse> {
        reply(Consents::list_subject_requests(self, request.into_inner()).await)
    }

    async fn cancel_subject_request(
        &self,
        request: Request<CancelSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::cancel_subject_request(self, &subject, request.into_inner()).await)
    }

    async fn extend_subject_request(
        &self,
        request: Request<ExtendSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::extend_subject_request(self, &subject, request.into_inner()).await)
    }

    async fn complete_subject_request(
        &self,
        request: Request<CompleteSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::complete_subject_request(self, &subject, request.into_inner()).await)
    }

    async fn resume_subject_request(
        &self,
        request: Request<ResumeSubjectRequestRequest>,
    ) -> Reply<SubjectRequest> {
        let subject = subject(&request);
        reply(Consents::resume_subject_request(self, &subject, request.into_inner()).await)
    }

    type GetExportBundleStream =
        Pin<Box<dyn Stream<Item = Result<ExportBundleChunk, Status>> + Send + 'static>>;

    async fn get_export_bundle(
        &self,
        request: Request<GetExportBundleRequest>,
    ) -> Reply<Self::GetExportBundleStream> {
        let chunks = Consents::export_bundle(self, request.into_inner()).await?;
        let stream = tokio_stream::iter(chunks.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_audit_log(
        &self,
        request: Request<ListAuditLogRequest>,
    ) -> Reply<ListAuditLogResponse> {
        reply(Consents::list_audit_log(self, request.into_inner()).await)
    }
}
