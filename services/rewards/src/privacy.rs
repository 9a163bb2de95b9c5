//! The rewards service's side of data-subject requests. Export: the subject's reward orders with
//! their delivery details, items, returns and codes. Erasure: orders, their items and the stock
//! movements are accounting records and stay, but the delivery details (recipient, address,
//! e-mail, phone), the tracking number and the words of cancellations and returns are erased, and
//! the order no longer names the party: a random pseudonym that is stored nowhere else takes its
//! place. Orders not yet shipped cannot be delivered any more: they are cancelled (the sweep voids
//! their holds and releases their stock).

use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use uuid::Uuid;

pub struct RewardsPrivacy;

/// Why an order the subject had not received yet is cancelled.
const ERASED: &str = "the member's personal data was erased";

const ORDERS: &str = "SELECT * FROM reward_orders WHERE party_id = $1 ORDER BY id";

impl Participant for RewardsPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        let export = Export::default()
            .table(tx, "reward_orders", ORDERS, id)
            .await?
            .table(
                tx,
                "reward_order_items",
                "SELECT i.* FROM reward_order_items i JOIN reward_orders o ON o.id = i.order_id
                  WHERE o.party_id = $1 ORDER BY i.order_id, i.line",
                id,
            )
            .await?
            .table(
                tx,
                "reward_order_returns",
                "SELECT r.* FROM reward_order_returns r JOIN reward_orders o ON o.id = r.order_id
                  WHERE o.party_id = $1 ORDER BY r.id",
                id,
            )
            .await?
            .table(
                tx,
                "voucher_codes",
                "SELECT c.reward_id, c.code, c.order_id, c.line, c.issued_at FROM voucher_codes c
                   JOIN reward_orders o ON o.id = c.order_id
                  WHERE o.party_id = $1 AND c.issued_at IS NOT NULL ORDER BY c.order_id, c.line",
                id,
            )
            .await?;
        Ok(export)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        let orders: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE reward_orders SET party_id = $2, recipient_name = NULL, address = NULL,
                 email = NULL, phone = NULL, tracking_number = NULL, updated_at = now(),
                 status = CASE WHEN status = 'confirmed' AND kind = 'material' THEN 'cancelling'
                     ELSE status END,
                 cancel_reason = CASE WHEN status = 'confirmed' AND kind = 'material' THEN $3
                     ELSE NULL END
              WHERE party_id = $1 RETURNING id",
        )
        .bind(subject.id())
        .bind(Uuid::new_v4())
        .bind(ERASED)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("UPDATE reward_order_returns SET reason = '' WHERE order_id = ANY($1)")
            .bind(&orders)
            .execute(&mut **tx)
            .await?;
        if orders.is_empty() {
            return Ok(Erasure::default());
        }
        Ok(Erasure {
            found: true,
            erased: vec![format!(
                "the recipient, postal address, e-mail, phone and tracking number of {} reward orders, the words of their cancellations and returns, and their link to the party; orders not yet shipped are cancelled",
                orders.len()
            )],
            retained: vec![retained(
                "reward orders, their items, returns and stock movements, no longer linked to the party",
                "accounting records of goods and points (kept as the law on accounting requires)",
            )],
            related_ids: orders,
        })
    }
}
