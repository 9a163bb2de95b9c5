//! The rewards service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

use crate::domain::{RewardKind, RewardStatus, orders::OrderStatus};

crm_kit::refusals! {
    pub enum Refusal {
        /// A closed program takes no new rewards.
        ProgramClosed { program: Uuid } =
            Precondition("PROGRAM_CLOSED", "loyalty program {program} is closed"),
        /// Archiving is final.
        RewardArchived { id: Uuid } =
            Precondition("REWARD_ARCHIVED", "reward {id} is archived"),
        /// Only voucher rewards with imported codes take a partner's codes.
        CodesNotImported { id: Uuid, kind: RewardKind } = Precondition(
            "CODES_NOT_IMPORTED",
            "reward {id} is a {kind} reward whose codes are not imported; only a voucher reward with VOUCHER_SOURCE_IMPORTED takes codes"
        ),
        /// Only material rewards are kept in warehouses.
        NotMaterial { id: Uuid } = Precondition(
            "NOT_MATERIAL",
            "reward {id} is a voucher; only material rewards have stock"
        ),
        /// A movement may not take stock below zero or below what orders reserved.
        InsufficientStock { reward: Uuid, warehouse: Uuid, needed: i64, available: i64 } = Precondition(
            "INSUFFICIENT_STOCK",
            "warehouse {warehouse} has {available} unreserved units of reward {reward}; the movement needs {needed}"
        ),
        /// A warehouse holds at most a trillion units of a reward.
        StockCeiling { warehouse: Uuid, max: i64 } = Precondition(
            "STOCK_CEILING",
            "warehouse {warehouse} would hold more than {max} units of the reward"
        ),
        /// Loyalty would not take the points for a shipment (the hold lapsed, the membership is
        /// no longer active): the order is cancelled and its stock released.
        PointsNotTaken { id: Uuid, why: String } = Precondition(
            "POINTS_NOT_TAKEN",
            "the points of order {id} cannot be taken ({why}); the order is cancelled: do not ship it"
        ),
        /// Warehouse codes are unique.
        WarehouseExists { code: String } =
            AlreadyExists("WAREHOUSE_EXISTS", "warehouse {code:?} already exists"),
        /// Only active members order.
        MembershipNotActive { id: Uuid, status: String } =
            Precondition("MEMBERSHIP_NOT_ACTIVE", "membership {id} is {status}"),
        /// Drafts and archived rewards are not for sale.
        RewardNotOrderable { id: Uuid, status: RewardStatus } =
            Precondition("REWARD_NOT_ORDERABLE", "reward {id} is {status}"),
        /// Outside its availability window.
        RewardNotAvailable { id: Uuid } =
            Precondition("REWARD_NOT_AVAILABLE", "reward {id} cannot be ordered at this time"),
        /// Restricted to tiers or bases the member is not in.
        RewardRestricted { id: Uuid, to: String } = Precondition(
            "REWARD_RESTRICTED",
            "reward {id} is for members of {to} only"
        ),
        MemberLimitReached { id: Uuid, limit: i32, had: i64 } = Precondition(
            "MEMBER_LIMIT_REACHED",
            "reward {id} allows {limit} units per member; the member has {had} in orders"
        ),
        TotalLimitReached { id: Uuid, limit: i32 } = Precondition(
            "TOTAL_LIMIT_REACHED",
            "reward {id} allows {limit} units in all, and too few are left"
        ),
        /// Not enough stock in all warehouses together, or not enough codes.
        OutOfStock { id: Uuid, wanted: i64, available: i64 } = Precondition(
            "OUT_OF_STOCK",
            "reward {id}: {wanted} wanted, {available} available"
        ),
        /// Loyalty refused the hold: the member cannot pay.
        InsufficientPoints { why: String } =
            Precondition("INSUFFICIENT_POINTS", "the points cannot be held: {why}"),
        /// Loyalty refused the hold for another reason (membership or program state).
        PointsNotHeld { why: String } =
            Precondition("POINTS_NOT_HELD", "the points cannot be held: {why}"),
        NotShippable { id: Uuid, status: OrderStatus } = Precondition(
            "ORDER_NOT_SHIPPABLE",
            "order {id} is {status}; only a confirmed order of goods ships"
        ),
        NotDeliverable { id: Uuid, status: OrderStatus } = Precondition(
            "ORDER_NOT_DELIVERABLE",
            "order {id} is {status}; only a shipped order is delivered"
        ),
        NotCancellable { id: Uuid, status: OrderStatus } = Precondition(
            "ORDER_NOT_CANCELLABLE",
            "order {id} is {status}; only a confirmed order not yet shipped is cancelled"
        ),
        NotReturnable { id: Uuid, status: OrderStatus } = Precondition(
            "ORDER_NOT_RETURNABLE",
            "order {id} is {status}; only delivered goods come back"
        ),
    }
}
