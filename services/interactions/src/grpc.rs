//! The `crm.interactions.v1.InteractionsService` gRPC adapter: who is calling, then the use case,
//! then the one error mapping.

use crm_kit::request::{Reply, reply, subject};
use crm_proto::crm::interactions::v1::{interactions_service_server::InteractionsService, *};
use tonic::Request;

use crate::Interactions;

#[tonic::async_trait]
impl InteractionsService for Interactions {
    async fn record_interaction(
        &self,
        request: Request<RecordInteractionRequest>,
    ) -> Reply<Interaction> {
        let subject = subject(&request);
        reply(Interactions::record_interaction(self, &subject, request.into_inner()).await)
    }

    async fn get_interaction(&self, request: Request<GetInteractionRequest>) -> Reply<Interaction> {
        reply(Interactions::get_interaction(self, request.into_inner()).await)
    }

    async fn update_interaction(
        &self,
        request: Request<UpdateInteractionRequest>,
    ) -> Reply<Interaction> {
        let subject = subject(&request);
        reply(Interactions::update_interaction(self, &subject, request.into_inner()).await)
    }

    async fn list_interactions(
        &self,
        request: Request<ListInteractionsRequest>,
    ) -> Reply<ListInteractionsResponse> {
        reply(Interactions::list_interactions(self, request.into_inner()).await)
    }

    async fn search_interactions(
        &self,
        request: Request<SearchInteractionsRequest>,
    ) -> Reply<SearchInteractionsResponse> {
        reply(Interactions::search_interactions(self, request.into_inner()).await)
    }

    async fn get_timeline(
        &self,
        request: Request<GetTimelineRequest>,
    ) -> Reply<GetTimelineResponse> {
        reply(Interactions::get_timeline(self, request.into_inner()).await)
    }

    async fn import_email(
        &self,
        request: Request<ImportEmailRequest>,
    ) -> Reply<ImportEmailResponse> {
        let subject = subject(&request);
        reply(Interactions::import_email(self, &subject, request.into_inner()).await)
    }

    async fn get_attachment_content(
        &self,
        request: Request<GetAttachmentContentRequest>,
    ) -> Reply<AttachmentContent> {
        reply(Interactions::get_attachment_content(self, request.into_inner()).await)
    }

    async fn connect_mailbox(&self, request: Request<ConnectMailboxRequest>) -> Reply<Mailbox> {
        let subject = subject(&request);
        reply(Interactions::connect_mailbox(self, &subject, request.into_inner()).await)
    }

    async fn get_mailbox(&self, request: Request<GetMailboxRequest>) -> Reply<Mailbox> {
        reply(Interactions::get_mailbox(self, request.into_inner()).await)
    }

    async fn list_mailboxes(
        &self,
        request: Request<ListMailboxesRequest>,
    ) -> Reply<ListMailboxesResponse> {
        reply(Interactions::list_mailboxes(self, request.into_inner()).await)
    }

    async fn disconnect_mailbox(
        &self,
        request: Request<DisconnectMailboxRequest>,
    ) -> Reply<Mailbox> {
        let subject = subject(&request);
        reply(Interactions::disconnect_mailbox(self, &subject, request.into_inner()).await)
    }

    async fn add_note(&self, request: Request<AddNoteRequest>) -> Reply<Note> {
        let subject = subject(&request);
        reply(Interactions::add_note(self, &subject, request.into_inner()).await)
    }

    async fn update_note(&self, request: Request<UpdateNoteRequest>) -> Reply<Note> {
        let subject = subject(&request);
        reply(Interactions::update_note(self, &subject, request.into_inner()).await)
    }

    async fn delete_note(&self, request: Request<DeleteNoteRequest>) -> Reply<Note> {
        let subject = subject(&request);
        reply(Interactions::delete_note(self, &subject, request.into_inner()).await)
    }

    async fn list_notes(&self, request: Request<ListNotesRequest>) -> Reply<ListNotesResponse> {
        reply(Interactions::list_notes(self, request.into_inner()).await)
    }

    async fn create_task(&self, request: Request<CreateTaskRequest>) -> Reply<Task> {
        let subject = subject(&request);
        reply(Interactions::create_task(self, &subject, request.into_inner()).await)
    }

    async fn get_task(&self, request: Request<GetTaskRequest>) -> Reply<Task> {
        reply(Interactions::get_task(self, request.into_inner()).await)
    }

    async fn update_task(&self, request: Request<UpdateTaskRequest>) -> Reply<Task> {
        let subject = subject(&request);
        reply(Interactions::update_task(self, &subject, request.into_inner()).await)
    }

    async fn complete_task(&self, request: Request<CompleteTaskRequest>) -> Reply<Task> {
        let subject = subject(&request);
        reply(Interactions::complete_task(self, &subject, request.into_inner()).await)
    }

    async fn list_tasks(&self, request: Request<ListTasksRequest>) -> Reply<ListTasksResponse> {
        reply(Interactions::list_tasks(self, request.into_inner()).await)
    }
}
