//! The topics loyalty writes: its own, with messages of `crm/loyalty/v1/events.proto` written in
//! the transaction of the change they describe, and its receipts to data-subject requests.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::loyalty::v1::{
    BulkAccrual, BulkAccrualChanged, CardActivated, CardBlocked, CardClosed, CardIssued,
    CouponDefinitionChanged, CouponRedeemed, CouponsGenerated, DiscountChanged, HoldCaptured,
    HoldExpired, HoldPlaced, HoldVoided, MembershipEnrolled, MembershipLeft, MembershipMoved,
    MembershipReactivated, MembershipSuspended, PointsAccrued, PointsExpired, PointsRedeemed,
    PointsReversed, Program, ProgramChanged, TierChanged,
};

crm_kit::topic!(
    /// Key: membership id.
    pub MEMBERSHIP = "crm.loyalty.membership.v1", MembershipTopic:
        MembershipEnrolled, MembershipSuspended, MembershipReactivated, MembershipLeft,
        MembershipMoved, TierChanged, CardIssued, CardActivated, CardBlocked, CardClosed
);

crm_kit::topic!(
    /// Key: membership id, so one member's points events stay in order.
    pub POINTS = "crm.loyalty.points.v1", PointsTopic:
        PointsAccrued, PointsRedeemed, PointsReversed, PointsExpired, HoldPlaced, HoldCaptured,
        HoldVoided, HoldExpired, CouponRedeemed
);

crm_kit::topic!(
    /// Key: program id.
    pub PROGRAM = "crm.loyalty.program.v1", ProgramTopic: ProgramChanged
);

crm_kit::topic!(
    /// Key: coupon definition id.
    pub COUPON = "crm.loyalty.coupon.v1", CouponTopic: CouponDefinitionChanged, CouponsGenerated
);

crm_kit::topic!(
    /// Key: discount id.
    pub DISCOUNT = "crm.loyalty.discount.v1", DiscountTopic: DiscountChanged
);

crm_kit::topic!(
    /// Key: job id.
    pub BULK_ACCRUAL = "crm.loyalty.bulk_accrual.v1", BulkAccrualTopic: BulkAccrualChanged
);

/// The topics loyalty writes.
pub const TOPICS: &[&str] = &[
    MEMBERSHIP.name,
    POINTS.name,
    PROGRAM.name,
    COUPON.name,
    DISCOUNT.name,
    BULK_ACCRUAL.name,
    privacy::RECEIPTS.name,
];

pub async fn program_changed(tx: &mut Tx, program: &Program, change: &str) -> Result<()> {
    let event = ProgramChanged {
        program: Some(program.clone()),
        change: change.to_owned(),
    };
    Ok(PROGRAM.enqueue(tx, &program.id, &event).await?)
}

pub async fn bulk_accrual_changed(tx: &mut Tx, job: &BulkAccrual, change: &str) -> Result<()> {
    let event = BulkAccrualChanged {
        job: Some(job.clone()),
        change: change.to_owned(),
    };
    Ok(BULK_ACCRUAL.enqueue(tx, &job.job_id, &event).await?)
}
