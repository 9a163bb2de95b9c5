//! The topics cases writes, with messages of `crm/cases/v1/events.proto`: ids, phases, statuses,
//! money and dates, not a case's or an offer's words (title, description, notes, reasons,
//! watchers, document references) nor a case's whole history; and the sales order requests of
//! `crm/sales/v1/orders.proto`, which carry what the ERP needs to create the order.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::{
    cases::v1::{
        Case, CaseChanged, DocumentLink, Offer, OfferChanged, OfferLine, OfferVersion, Pipeline,
        PipelineChanged, SlaAlarm, Ticket, TicketChanged,
    },
    sales::v1::SalesOrderRequested,
};

crm_kit::topic!(
    /// Key: pipeline id.
    pub PIPELINE = "crm.cases.pipeline.v1", PipelineTopic: PipelineChanged
);

crm_kit::topic!(
    /// Key: case id.
    pub CASE = "crm.cases.case.v1", CaseTopic: CaseChanged
);

crm_kit::topic!(
    /// Key: offer id.
    pub OFFER = "crm.cases.offer.v1", OfferTopic: OfferChanged
);

crm_kit::topic!(
    /// Key: offer id. The contract for ERP consumers is `crm/sales/v1/orders.proto`.
    pub ORDERS = "crm.sales.orders.v1", OrdersTopic: SalesOrderRequested
);

crm_kit::topic!(
    /// Key: ticket id.
    pub TICKET = "crm.cases.ticket.v1", TicketTopic: TicketChanged
);

crm_kit::topic!(
    /// Key: ticket id.
    pub SLA = "crm.cases.sla.v1", SlaTopic: SlaAlarm
);

/// The topics cases writes.
pub const TOPICS: &[&str] = &[
    PIPELINE.name,
    CASE.name,
    OFFER.name,
    ORDERS.name,
    TICKET.name,
    SLA.name,
    privacy::RECEIPTS.name,
];

pub async fn pipeline_changed(tx: &mut Tx, pipeline: &Pipeline, change: &str) -> Result<()> {
    let event = PipelineChanged {
        pipeline: Some(pipeline.clone()),
        change: change.to_owned(),
    };
    Ok(PIPELINE.enqueue(tx, &pipeline.id, &event).await?)
}

pub async fn case_changed(tx: &mut Tx, case: &Case, change: &str) -> Result<()> {
    let event = CaseChanged {
        case: Some(Case {
            title: String::new(),
            description: String::new(),
            lost_reason: String::new(),
            watchers: Vec::new(),
            // The phase says where it is; its whole passage would grow without end.
            history: Vec::new(),
            document_links: case
                .document_links
                .iter()
                .map(|link| DocumentLink {
                    reference: String::new(),
                    ..link.clone()
                })
                .collect(),
            ..case.clone()
        }),
        change: change.to_owned(),
    };
    Ok(CASE.enqueue(tx, &case.id, &event).await?)
}

pub async fn offer_changed(tx: &mut Tx, offer: &Offer, change: &str) -> Result<()> {
    let event = OfferChanged {
        offer: Some(Offer {
            title: String::new(),
            notes: String::new(),
            reject_reason: String::new(),
            client_reference: String::new(),
            versions: offer
                .versions
                .iter()
                .map(|version| OfferVersion {
                    // A coupon code may be the client's own.
                    coupon_code: String::new(),
                    lines: version
                        .lines
                        .iter()
                        .map(|line| OfferLine {
                            description: String::new(),
                            ..line.clone()
                        })
                        .collect(),
                    ..version.clone()
                })
                .collect(),
            ..offer.clone()
        }),
        change: change.to_owned(),
    };
    Ok(OFFER.enqueue(tx, &offer.id, &event).await?)
}

/// Written in the acceptance's transaction, once per offer: the ERP creates at most one order per
/// `order_request_id`.
pub async fn order_requested(tx: &mut Tx, order: &SalesOrderRequested) -> Result<()> {
    Ok(ORDERS.enqueue(tx, &order.offer_id, order).await?)
}

pub async fn ticket_changed(tx: &mut Tx, ticket: &Ticket, change: &str) -> Result<()> {
    let event = TicketChanged {
        ticket: Some(Ticket {
            subject: String::new(),
            description: String::new(),
            resolution: String::new(),
            messages: Vec::new(),
            // The client's own order and invoice, and their member's terms.
            order_reference: String::new(),
            invoice_reference: String::new(),
            return_terms: None,
            ..ticket.clone()
        }),
        change: change.to_owned(),
    };
    Ok(TICKET.enqueue(tx, &ticket.id, &event).await?)
}

/// Written in the transaction that found the alarm, once per clock run and level.
pub async fn sla_alarm(tx: &mut Tx, alarm: &SlaAlarm) -> Result<()> {
    Ok(SLA.enqueue(tx, &alarm.ticket_id, alarm).await?)
}
