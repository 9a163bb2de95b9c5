//! The cases service's side of data-subject requests. Export: the cases about the subject (as
//! their party or one of their persons) with their passage through the phases, and the offers
//! made to them with every version. Erasure: a case or an offer is the company's record of its
//! dealings and its amounts and dates stay for accounting, but its words go (a case's title,
//! description, lost reason and document references; an offer's title, notes, reject reason,
//! coupon code and its lines' descriptions), and it no longer names the
//! subject: a random pseudonym per case and per offer, stored nowhere else, takes the party's
//! place, the person leaves the case, the offer forgets the membership; `CaseChanged` and
//! `OfferChanged` tell downstream systems. Tickets about them keep their type, dates, status and
//! SLA clocks under a pseudonym; their subject, description, resolution, references, return
//! terms and conversation go, and `TicketChanged` tells downstream. Not yet: a consumer's
//! party and natural person are two ids, and a request names one of them; writes that race an
//! erasure are not held off (interactions' way, which the kit should offer to every service).

use chrono::Utc;
use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use uuid::Uuid;

use crate::{cases, convert, events, offers, store::desk as store};

pub struct CasesPrivacy;

const CASES: &str = "SELECT * FROM cases WHERE party_id = $1 OR $1 = ANY(person_ids) ORDER BY id";

const OFFERS: &str = "SELECT * FROM offers WHERE party_id = $1 ORDER BY id";

const OFFER_VERSIONS: &str = "SELECT v.* FROM offer_versions v JOIN offers o ON o.id = v.offer_id
    WHERE o.party_id = $1 ORDER BY v.offer_id, v.number";

const TICKETS: &str = "SELECT * FROM tickets WHERE party_id = $1 OR person_id = $1 ORDER BY id";

const TICKET_MESSAGES: &str =
    "SELECT m.* FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id
    WHERE t.party_id = $1 OR t.person_id = $1 ORDER BY m.id";

const VISITS: &str = "SELECT v.* FROM phase_visits v JOIN cases c ON c.id = v.case_id
    WHERE c.party_id = $1 OR $1 = ANY(c.person_ids) ORDER BY v.case_id, v.entered_at";

impl Participant for CasesPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        Ok(Export::default()
            .table(tx, "cases", CASES, id)
            .await?
            .table(tx, "phase_visits", VISITS, id)
            .await?
            .table(tx, "offers", OFFERS, id)
            .await?
            .table(tx, "offer_versions", OFFER_VERSIONS, id)
            .await?
            .table(tx, "tickets", TICKETS, id)
            .await?
            .table(tx, "ticket_messages", TICKET_MESSAGES, id)
            .await?)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        // A pseudonym per case: the erased cases do not lead to one another either.
        let cases: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE cases SET title = '(erased)', description = '', lost_reason = '',
                 party_id = CASE WHEN party_id = $1 THEN gen_random_uuid() ELSE party_id END,
                 person_ids = array_remove(person_ids, $1),
                 document_links = (
                     SELECT coalesce(jsonb_agg(jsonb_build_object('kind', l->>'kind',
                                                                  'reference', '') ORDER BY n),
                                     '[]'::jsonb)
                       FROM jsonb_array_elements(document_links) WITH ORDINALITY x (l, n)),
                 updated_by = 'crm-privacy', updated_at = now(), version = version + 1
              WHERE party_id = $1 OR $1 = ANY(person_ids) RETURNING id",
        )
        .bind(subject.id())
        .fetch_all(&mut **tx)
        .await?;
        // Downstream systems learn the cases changed, without the subject's id.
        for id in &cases {
            let case = cases::answer(tx, *id).await?;
            events::case_changed(tx, &case, "updated").await?;
        }
        let offers = erase_offers(tx, subject.id()).await?;
        let tickets = erase_tickets(tx, subject.id()).await?;
        if cases.is_empty() && offers.is_empty() && tickets.is_empty() {
            return Ok(Erasure::default());
        }
        Ok(Erasure {
            found: true,
            erased: vec![format!(
                "the titles, descriptions, lost reasons and document references of {} cases; the titles, notes, reject reasons, client references, coupon codes and line descriptions of {} offers; the subjects, descriptions, resolutions, order and invoice references and conversations of {} tickets; and their link to the subject",
                cases.len(),
                offers.len(),
                tickets.len()
            )],
            retained: vec![retained(
                "cases' and offers' amounts, dates, owners, phases, statuses and lines' products and figures, and tickets' types, dates, statuses and SLA clocks, no longer linked to the subject",
                "the company's record of its sales, projects and service levels (accounting and legitimate interest)",
            )],
            related_ids: cases.into_iter().chain(offers).chain(tickets).collect(),
        })
    }
}

/// Tickets about the subject keep their type, dates, status and clocks under a pseudonym per
/// ticket; their words and conversation go.
async fn erase_tickets(tx: &mut Tx, subject: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let tickets: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tickets SET subject = '(erased)', description = '', resolution = '',
             order_reference = '', invoice_reference = '', return_terms = NULL,
             party_id = CASE WHEN party_id = $1 THEN gen_random_uuid() ELSE party_id END,
             person_id = NULLIF(person_id, $1), membership_id = NULL,
             updated_by = 'crm-privacy', updated_at = now(), version = version + 1
          WHERE party_id = $1 OR person_id = $1 RETURNING id",
    )
    .bind(subject)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM ticket_messages WHERE ticket_id = ANY($1)")
        .bind(&tickets)
        .execute(&mut **tx)
        .await?;
    for id in &tickets {
        let row = store::ticket(tx, *id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("ticket {id} vanished"))?;
        let ticket = convert::ticket(&row, None, Utc::now(), &[]);
        events::ticket_changed(tx, &ticket, "updated").await?;
    }
    Ok(tickets)
}

/// Offers to the subject keep their figures and lines' products under a pseudonym per offer; the
/// lines' descriptions go too (typed text, which may name the client).
async fn erase_offers(tx: &mut Tx, subject: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let offers: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE offers SET title = '(erased)', notes = '', reject_reason = '', client_reference = '',
             party_id = gen_random_uuid(), membership_id = NULL,
             updated_by = 'crm-privacy', updated_at = now(), version = version + 1
          WHERE party_id = $1 RETURNING id",
    )
    .bind(subject)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE offer_versions SET coupon_code = '',
             lines = (SELECT coalesce(jsonb_agg(jsonb_set(l, '{description}', '\"(erased)\"')
                                                ORDER BY n), '[]'::jsonb)
                        FROM jsonb_array_elements(lines) WITH ORDINALITY x (l, n))
          WHERE offer_id = ANY($1)",
    )
    .bind(&offers)
    .execute(&mut **tx)
    .await?;
    // A sales order request published already is the ERP's now; its copy here goes.
    sqlx::query(
        "DELETE FROM crm_outbox WHERE topic = $1 AND key = ANY($2) AND published_at IS NOT NULL",
    )
    .bind(events::ORDERS.name)
    .bind(offers.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    for id in &offers {
        let offer = offers::answer(tx, *id).await?;
        events::offer_changed(tx, &offer, "updated").await?;
    }
    Ok(offers)
}
