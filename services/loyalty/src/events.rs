//! The topics of the loyalty service; payloads are the messages of `crm/loyalty/v1/events.proto`.

use crm_kit::{outbox, store::Tx};
use uuid::Uuid;

/// Key: membership id. MembershipEnrolled, MembershipSuspended, MembershipReactivated,
/// MembershipLeft, TierChanged and the card events.
pub const MEMBERSHIP_TOPIC: &str = "crm.loyalty.membership.v1";
/// Key: membership id, so one member's points events stay in order. PointsAccrued,
/// PointsRedeemed, PointsReversed, HoldPlaced, HoldCaptured, HoldVoided, HoldExpired.
pub const POINTS_TOPIC: &str = "crm.loyalty.points.v1";
/// The topics loyalty writes: its own, and its receipts to data-subject requests.
pub const TOPICS: [&str; 3] = [
    MEMBERSHIP_TOPIC,
    POINTS_TOPIC,
    crm_kit::privacy::RECEIPT_TOPIC,
];

pub async fn membership<M: prost::Name>(
    tx: &mut Tx,
    membership_id: Uuid,
    event: &M,
) -> sqlx::Result<()> {
    outbox::enqueue(tx, MEMBERSHIP_TOPIC, membership_id, event)
        .await
        .map(drop)
}

pub async fn points<M: prost::Name>(
    tx: &mut Tx,
    membership_id: Uuid,
    event: &M,
) -> sqlx::Result<()> {
    outbox::enqueue(tx, POINTS_TOPIC, membership_id, event)
        .await
        .map(drop)
}
