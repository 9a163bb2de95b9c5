//! The topics loyalty writes: its own, with messages of `crm/loyalty/v1/events.proto` written in
//! the transaction of the change they describe, and its receipts to data-subject requests.

use crm_kit::privacy;
use crm_proto::crm::loyalty::v1::{
    CardActivated, CardBlocked, CardClosed, CardIssued, CouponRedeemed, HoldCaptured, HoldExpired,
    HoldPlaced, HoldVoided, MembershipEnrolled, MembershipLeft, MembershipReactivated,
    MembershipSuspended, PointsAccrued, PointsExpired, PointsRedeemed, PointsReversed, TierChanged,
};

crm_kit::topic!(
    /// Key: membership id.
    pub MEMBERSHIP = "crm.loyalty.membership.v1", MembershipTopic:
        MembershipEnrolled, MembershipSuspended, MembershipReactivated, MembershipLeft,
        TierChanged, CardIssued, CardActivated, CardBlocked, CardClosed
);

crm_kit::topic!(
    /// Key: membership id, so one member's points events stay in order.
    pub POINTS = "crm.loyalty.points.v1", PointsTopic:
        PointsAccrued, PointsRedeemed, PointsReversed, PointsExpired, HoldPlaced, HoldCaptured,
        HoldVoided, HoldExpired, CouponRedeemed
);

/// The topics loyalty writes.
pub const TOPICS: &[&str] = &[MEMBERSHIP.name, POINTS.name, privacy::RECEIPTS.name];
