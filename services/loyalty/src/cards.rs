//! Loyalty cards: issued to a membership (optionally personal, optionally a child of another card
//! sharing its account), activated explicitly or by the first purchase made with them, blocked,
//! closed, or reissued under a new number that keeps the link to the old one.

use chrono::{DateTime, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{audit, optional_uuid, uuid},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::{
    ActivateCardRequest, BlockCardRequest, Card, CardActivated, CardBlocked, CardClosed,
    CardIssued, CloseCardRequest, IssueCardRequest, ListCardsRequest, ListCardsResponse,
    ReissueCardRequest,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Loyalty, domain, error::Refusal, events, store};

#[derive(Debug, Clone, sqlx::FromRow)]
struct CardRow {
    id: Uuid,
    number: String,
    membership_id: Uuid,
    person_id: Option<Uuid>,
    parent_id: Option<Uuid>,
    status: domain::CardStatus,
    block_reason: String,
    replaces_id: Option<Uuid>,
    replaced_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: String,
    updated_by: String,
}

const CARD_SELECT: &str = "SELECT c.id, c.number, c.membership_id, c.person_id, c.parent_id, c.status,
        c.block_reason, c.replaces_id, (SELECT r.id FROM cards r WHERE r.replaces_id = c.id) AS replaced_by,
        c.created_at, c.updated_at, c.created_by, c.updated_by
    FROM cards c";

/// A new card number: a leading 7, 14 digits from a UUIDv7's random bits, and the check digit.
fn new_number() -> String {
    let random = Uuid::now_v7().as_u128() as u64 % 100_000_000_000_000;
    let body = format!("7{random:014}");
    format!("{body}{}", luhn_check_digit(&body))
}

/// The digit that makes `body` followed by it pass the Luhn check.
fn luhn_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Whether a presented number is well formed: 16 digits passing the Luhn check.
pub fn valid_number(number: &str) -> bool {
    number.len() == 16
        && number.chars().all(|c| c.is_ascii_digit())
        && luhn_check_digit(&number[..15]) == number[15..].parse::<u32>().unwrap_or(10)
}

async fn get(conn: &mut PgConnection, id: Uuid) -> Result<CardRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ServiceError::NotFound("Card", id.to_string()))
}

async fn lock(tx: &mut Tx, id: Uuid) -> Result<CardRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.id = $1 FOR UPDATE OF c"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ServiceError::NotFound("Card", id.to_string()))
}

async fn insert(tx: &mut Tx, card: &CardRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO cards (id, number, membership_id, person_id, parent_id, replaces_id, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(card.id)
    .bind(&card.number)
    .bind(card.membership_id)
    .bind(card.person_id)
    .bind(card.parent_id)
    .bind(card.replaces_id)
    .bind(&card.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: domain::CardStatus,
    reason: &str,
    subject: &str,
) -> Result<()> {
    sqlx::query("UPDATE cards SET status = $2, block_reason = $3, updated_by = $4, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(subject)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Checks the card presented with an operation; an accrual activates an ISSUED card.
pub(crate) async fn present(
    tx: &mut Tx,
    number: &str,
    membership: Uuid,
    accrual: bool,
    subject: &str,
) -> Result<()> {
    if !valid_number(number) {
        let mut v = FieldViolations::new();
        v.add(
            "card_number",
            "is not a card number (16 digits with a valid check digit)",
        );
        return Err(v.into());
    }
    let card: Option<CardRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CARD_SELECT} WHERE c.number = $1 FOR UPDATE OF c"
    )))
    .bind(number)
    .fetch_optional(&mut **tx)
    .await?;
    let card = card
        .filter(|card| card.membership_id == membership)
        .ok_or(Refusal::CardNotOfMember)?;
    match card.status {
        domain::CardStatus::Issued if accrual => {
            set_status(tx, card.id, domain::CardStatus::Active, "", subject).await?;
            let event = CardActivated {
                card_id: card.id.to_string(),
                membership_id: membership.to_string(),
            };
            events::MEMBERSHIP.enqueue(tx, membership, &event).await?;
            Ok(())
        }
        domain::CardStatus::Issued | domain::CardStatus::Active => Ok(()),
        status => Err(Refusal::CardNotUsable { status }.into()),
    }
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
            .ok_or_else(|| ServiceError::NotFound("Membership", membership_id.to_string()))?;
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
        let card = CardRow {
            id: Uuid::now_v7(),
            number: new_number(),
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
        insert(&mut tx, &card).await?;
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
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        let old = lock(&mut tx, id).await?;
        if old.status == domain::CardStatus::Closed {
            return Err(Refusal::CardClosed { id }.into());
        }
        let new = CardRow {
            id: Uuid::now_v7(),
            number: new_number(),
            replaces_id: Some(old.id),
            status: domain::CardStatus::Issued,
            block_reason: String::new(),
            created_by: subject.to_owned(),
            ..old.clone()
        };
        set_status(
            &mut tx,
            old.id,
            domain::CardStatus::Closed,
            &old.block_reason,
            subject,
        )
        .await?;
        insert(&mut tx, &new).await?;
        // Child cards follow their parent to its new number.
        sqlx::query("UPDATE cards SET parent_id = $2 WHERE parent_id = $1 AND status <> 'closed'")
            .bind(old.id)
            .bind(new.id)
            .execute(&mut *tx)
            .await?;
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

    pub async fn list_cards(&self, req: ListCardsRequest) -> Result<ListCardsResponse> {
        let mut v = FieldViolations::new();
        let membership = uuid(&req.membership_id, "membership_id", &mut v);
        v.finish()?;
        let rows: Vec<CardRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{CARD_SELECT} WHERE c.membership_id = $1 AND ($2 OR c.status <> 'closed') ORDER BY c.id DESC"
        )))
        .bind(membership)
        .bind(req.include_closed)
        .fetch_all(&self.pool)
        .await?;
        Ok(ListCardsResponse {
            cards: rows.iter().map(card_to_proto).collect(),
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
            set_status(&mut tx, id, to, reason, subject).await?;
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

fn card_to_proto(row: &CardRow) -> Card {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_a_luhn_check_digit() {
        // A well-known Luhn example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit("7992739871"), 3);
        for _ in 0..100 {
            let number = new_number();
            assert!(valid_number(&number), "{number}");
        }
        let mut typo = new_number().into_bytes();
        typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
        assert!(
            !valid_number(&String::from_utf8(typo).unwrap()),
            "one wrong digit is caught"
        );
    }
}
