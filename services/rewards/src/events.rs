//! The topics rewards writes, with messages of `crm/rewards/v1/events.proto`. The latest
//! RewardChanged or WarehouseChanged of a key is the resource as it now is.

use crm_kit::{error::Result, privacy, store::Tx};
use crm_proto::crm::rewards::v1::{
    Reward, RewardChanged, RewardOrderChanged, StockLow, StockMoved, Warehouse, WarehouseChanged,
};

use crate::{convert, store::orders::Loaded};

crm_kit::topic!(
    /// Key: reward id.
    pub REWARD = "crm.rewards.reward.v1", RewardTopic: RewardChanged
);

crm_kit::topic!(
    /// Key: warehouse id.
    pub WAREHOUSE = "crm.rewards.warehouse.v1", WarehouseTopic: WarehouseChanged
);

crm_kit::topic!(
    /// Key: reward id, so a reward's movements stay in order.
    pub STOCK = "crm.rewards.stock.v1", StockTopic: StockMoved, StockLow
);

crm_kit::topic!(
    /// Key: order id.
    pub ORDER = "crm.rewards.order.v1", OrderTopic: RewardOrderChanged
);

/// The topics rewards writes.
pub const TOPICS: &[&str] = &[
    REWARD.name,
    WAREHOUSE.name,
    STOCK.name,
    ORDER.name,
    privacy::RECEIPTS.name,
];

/// A step of an order a member would be told of.
pub async fn order_changed(tx: &mut Tx, order: &Loaded, change: &str) -> Result<()> {
    let event = RewardOrderChanged {
        order: Some(convert::order_event(order)),
        change: change.to_owned(),
    };
    Ok(ORDER.enqueue(tx, order.order.id, &event).await?)
}

pub async fn reward_changed(tx: &mut Tx, reward: &Reward, change: &str) -> Result<()> {
    let event = RewardChanged {
        reward: Some(reward.clone()),
        change: change.to_owned(),
    };
    Ok(REWARD.enqueue(tx, &reward.id, &event).await?)
}

pub async fn warehouse_changed(tx: &mut Tx, warehouse: &Warehouse, change: &str) -> Result<()> {
    let event = WarehouseChanged {
        warehouse: Some(warehouse.clone()),
        change: change.to_owned(),
    };
    Ok(WAREHOUSE.enqueue(tx, &warehouse.id, &event).await?)
}
