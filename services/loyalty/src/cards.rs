//! Loyalty cards: issued to a membership (optionally personal, optionally a child of another card
//! sharing its account), activated explicitly or by the first purchase made with them, blocked,
//! closed, or reissued under a new number that keeps the link to the old one.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, audit, optional_uuid, uuid},
    store::Page,
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{
    ActivateCardRequest, BlockCardRequest, Card, CardActivated, CardBlocked, CardClosed,
    CardIssued, CloseCardRequest, FindCardRequest, IssueCardRequest, ListCardsRequest,
    ListCardsResponse, ReissueCardRequest,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Loyalty, domain, error::Refusal, events, store};

/// Checks the card presented with an operation, and locks it: it must be the membership's and
/// usable. Returns the card an accrual activates (an ISSUED one), for [`activate`] once the
/// operation is posted.
pub(crate) async fn present(
    tx: &mut Tx,
    number: &str,
    membership: Uuid,
    accrual: bool,
) -> Result<Option<Uuid>> {
    let number = domain::typed_number(number);
    if !domain::valid_number(&number) {
        let mut v = FieldViolations::new();
        v.add(
            "card_number",
            "is not a card number (16 digits with a valid check digit)",
        );
        return Err(v.into());
    }
    let card = store::lock_members_card(tx, &number, membership)
        .await?
        .ok_or(Refusal::CardNotOfMember)?;
    match card.status {
        domain::CardStatus::Issued if accrual => Ok(Some(card.id)),
        domain::CardStatus::Issued | domain::CardStatus::Active => Ok(None),
        status => Err(Refusal::CardNotUsable { status }.into()),
    }
}

/// Activates an issued card on its first accrual.
pub(crate) async fn activate(
    tx: &mut Tx,
    card: Uuid,
    membership: Uuid,
    subject: &str,
) -> Result<()> {
    store::set_card_status(tx, card, domain::CardStatus::Active, "", subject).await?;
    let event = CardActivated {
        card_id: card.to_string(),
        membership_id: membership.to_string(),
    };
    events::MEMBERSHIP.enqueue(tx, membership, &event).await?;
    Ok(())
}

impl Loyalty {
    pub async fn issue_card(&self, subject: &str, req: IssueCardRequest) -> Result<Card> {
        let mut v = FieldViolations::new();
        let membership_id = uuid(&req.membership_id, "membership_id", &mut v);
        let person_id = optional_uuid(&req.person_id, "person_id", &mut v);
        let parent_id = optional_uuid(&req.parent_card_id, "parent_card_id", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let membership = store::lock_membership(&mut tx, membership_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", membership_id))?;
        if membership.status != domain::MembershipStatus::Active {
            let (id, status) = (membership_id, membership.status);
            return Err(Refusal::MembershipNotActive { id, status }.into());
        }
        if let Some(parent) = parent_id {
            let parent = lock(&mut tx, parent).await?;
            if parent.membership_id != membership_id
                || parent.status == domain::CardStatus::Closed
                || parent.parent_id.is_some()
            {
                return Err(Refusal::BadParentCard.into());
            }
        }
        let card = store::CardRow {
            id: Uuid::now_v7(),
            number: domain::new_number(),
            membership_id,
            person_id,
            parent_id,
            status: domain::CardStatus::Issued,
            block_reason: String::new(),
            replaces_id: None,
            replaced_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
        };
        let card = insert_numbered(&mut tx, card).await?;
        let event = CardIssued {
            card_id: card.id.to_string(),
            membership_id: membership_id.to_string(),
            replaces_card_id: String::new(),
        };
        events::MEMBERSHIP
            .enqueue(&mut tx, membership_id, &event)
            .await?;
        let card = card_to_proto(&get(&mut tx, card.id).await?);
        claim.commit(tx, &card).await?;
        Ok(card)
    }

    pub async fn activate_card(&self, subject: &str, req: ActivateCardRequest) -> Result<Card> {
        self.move_card(
            subject,
            &req.id,
            &req,
            &[domain::CardStatus::Issued],
            domain::CardStatus::Active,
            "",
        )
        .await
    }

    pub async fn block_card(&self, subject: &str, req: BlockCardRequest) -> Result<Card> {
        let reason = req.reason.trim().to_owned();
        self.move_card(
            subject,
            &req.id,
            &req,
            &[domain::CardStatus::Issued, domain::CardStatus::Active],
            domain::CardStatus::Blocked,
            &reason,
        )
        .await
    }

    pub async fn close_card(&self, subject: &str, req: CloseCardRequest) -> Result<Card> {
        self.move_card(
            subject,
            &req.id,
            &req,
            &[
                domain::CardStatus::Issued,
                domain::CardStatus::Active,
                domain::CardStatus::Blocked,
            ],
            domain::CardStatus::Closed,
            "",
        )
        .await
    }

    pub async fn reissue_card(&self, subject: &str, req: ReissueCardRequest) -> Result<Card> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let old = lock(&mut tx, id).await?;
        if old.status == domain::CardStatus::Closed {
            return Err(Refusal::CardClosed { id }.into());
        }
        let new = store::CardRow {
            id: Uuid::now_v7(),
            number: domain::new_number(),
            replaces_id: Some(old.id),
            status: domain::CardStatus::Issued,
            block_reason: String::new(),
            created_by: subject.to_owned(),
            ..old.clone()
        };
        store::set_card_status(
            &mut tx,
            old.id,
            domain::CardStatus::Closed,
            &old.block_reason,
            subject,
        )
        .await?;
        let new = insert_numbered(&mut tx, new).await?;
        store::move_children(&mut tx, old.id, new.id).await?;
        let membership = old.membership_id.to_string();
        let closed = CardClosed {
            card_id: old.id.to_string(),
            membership_id: membership.clone(),
            replaced_by_card_id: new.id.to_string(),
        };
        events::MEMBERSHIP
            .enqueue(&mut tx, old.membership_id, &closed)
            .await?;
        let issued = CardIssued {
            card_id: new.id.to_string(),
            membership_id: membership,
            replaces_card_id: old.id.to_string(),
        };
        events::MEMBERSHIP
            .enqueue(&mut tx, old.membership_id, &issued)
            .await?;
        let card = card_to_proto(&get(&mut tx, new.id).await?);
        claim.commit(tx, &card).await?;
        Ok(card)
    }

    pub async fn find_card(&self, req: FindCardRequest) -> Result<Card> {
        let number = domain::typed_number(&req.card_number);
        if !domain::valid_number(&number) {
            let mut v = FieldViolations::new();
            v.add(
                "card_number",
                "is not a card number (16 digits with a valid check digit)",
            );
            return Err(v.into());
        }
        let card = store::get_card_by_number(&mut *self.pool.acquire().await?, &number)
            .await?
            .ok_or_else(|| ServiceError::not_found("Card", &number))?;
        Ok(card_to_proto(&card))
    }

    pub async fn list_cards(&self, req: ListCardsRequest) -> Result<ListCardsResponse> {
        let mut v = FieldViolations::new();
        let membership = uuid(&req.membership_id, "membership_id", &mut v);
        let filter = (membership, req.include_closed);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_cards(
            &mut conn,
            membership,
            req.include_closed,
            page.after,
            page.limit(),
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListCardsResponse {
            cards: rows.iter().map(card_to_proto).collect(),
            next_page_token,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn move_card(
        &self,
        subject: &str,
        id: &str,
        request: &(impl crm_kit::store::Idempotent + prost::Message),
        from: &[domain::CardStatus],
        to: domain::CardStatus,
        reason: &str,
    ) -> Result<Card> {
        let mut v = FieldViolations::new();
        let id = uuid(id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, request);
        let card = lock(&mut tx, id).await?;
        if card.status != to {
            if !from.contains(&card.status) {
                let from = card.status;
                return Err(Refusal::CardStatusChange { from, to }.into());
            }
            store::set_card_status(&mut tx, id, to, reason, subject).await?;
            let (card_id, membership_id) = (id.to_string(), card.membership_id.to_string());
            match to {
                domain::CardStatus::Active => {
                    events::MEMBERSHIP
                        .enqueue(
                            &mut tx,
                            card.membership_id,
                            &CardActivated {
                                card_id,
                                membership_id,
                            },
                        )
                        .await?
                }
                domain::CardStatus::Blocked => {
                    let event = CardBlocked {
                        card_id,
                        membership_id,
                        reason: reason.to_owned(),
                    };
                    events::MEMBERSHIP
                        .enqueue(&mut tx, card.membership_id, &event)
                        .await?
                }
                _ => {
                    let event = CardClosed {
                        card_id,
                        membership_id,
                        replaced_by_card_id: String::new(),
                    };
                    events::MEMBERSHIP
                        .enqueue(&mut tx, card.membership_id, &event)
                        .await?
                }
            }
        }
        let card = card_to_proto(&get(&mut tx, id).await?);
        claim.commit(tx, &card).await?;
        Ok(card)
    }
}

fn card_to_proto(row: &store::CardRow) -> Card {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    Card {
        id: row.id.to_string(),
        number: row.number.clone(),
        membership_id: row.membership_id.to_string(),
        person_id: id(row.person_id),
        parent_card_id: id(row.parent_id),
        status: row.status.to_proto() as i32,
        block_reason: row.block_reason.clone(),
        replaces_card_id: id(row.replaces_id),
        replaced_by_card_id: id(row.replaced_by),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
    }
}

async fn get(conn: &mut PgConnection, id: Uuid) -> Result<store::CardRow> {
    store::get_card(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Card", id))
}

async fn lock(tx: &mut Tx, id: Uuid) -> Result<store::CardRow> {
    store::lock_card(tx, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Card", id))
}

/// Inserts `card` under a fresh number, drawing another while the number is taken (numbers are
/// random, so a collision is rare but must not fail the call).
async fn insert_numbered(tx: &mut Tx, mut card: store::CardRow) -> Result<store::CardRow> {
    for _ in 0..8 {
        if store::insert_card(tx, &card).await? {
            return Ok(card);
        }
        card.number = domain::new_number();
    }
    Err(ServiceError::Unavailable(
        "no free card number was found; try again".into(),
    ))
}
