//! The rewards service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

use crate::domain::RewardKind;

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
        /// Warehouse codes are unique.
        WarehouseExists { code: String } =
            AlreadyExists("WAREHOUSE_EXISTS", "warehouse {code:?} already exists"),
    }
}
