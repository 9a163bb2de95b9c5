//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, money_to_proto, timestamp};
use crm_proto::crm::rewards::v1 as proto;
use uuid::Uuid;

use crate::store::{
    rewards::RewardRow,
    stock::{ItemRow, MovementRow},
    warehouses::WarehouseRow,
};

pub fn reward(row: &RewardRow) -> proto::Reward {
    proto::Reward {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        point_type: row.point_type.clone(),
        kind: row.kind.to_proto() as i32,
        status: row.status.to_proto() as i32,
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        category: row.category.clone(),
        image_uri: row.image_uri.clone(),
        price_points: row.price_points,
        co_payment: row
            .co_payment_amount
            .zip(row.co_payment_currency.as_deref())
            .map(|(amount, currency)| money_to_proto(amount, currency)),
        available_from: row.available_from.map(timestamp),
        available_until: row.available_until.map(timestamp),
        per_member_limit: row.per_member_limit,
        total_limit: row.total_limit,
        tier_codes: row.tier_codes.clone(),
        base_ids: row.base_ids.iter().map(Uuid::to_string).collect(),
        voucher_source: row.voucher_source.map_or(0, |s| s.to_proto() as i32),
        voucher_valid_days: row.voucher_valid_days,
        low_stock_threshold: row.low_stock_threshold,
        ordered_units: row.ordered_units,
        available_units: row.available_units,
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn warehouse(row: &WarehouseRow) -> proto::Warehouse {
    proto::Warehouse {
        id: row.id.to_string(),
        code: row.code.clone(),
        display_name: row.display_name.clone(),
        address: row.address.as_ref().map(|a| a.0.to_proto()),
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}

pub fn stock_item(row: &ItemRow) -> proto::StockItem {
    proto::StockItem {
        warehouse_id: row.warehouse_id.to_string(),
        on_hand: row.on_hand,
        reserved: row.reserved,
        available: row.level().available(),
        low: row.low,
        update_time: Some(timestamp(row.updated_at)),
    }
}

pub fn stock(reward: Uuid, items: &[ItemRow]) -> proto::Stock {
    proto::Stock {
        reward_id: reward.to_string(),
        items: items.iter().map(stock_item).collect(),
        on_hand: items.iter().map(|i| i.on_hand).sum(),
        reserved: items.iter().map(|i| i.reserved).sum(),
        available: items.iter().map(|i| i.level().available()).sum(),
    }
}

pub fn movement(row: &MovementRow) -> proto::StockMovement {
    proto::StockMovement {
        id: row.id.to_string(),
        reward_id: row.reward_id.to_string(),
        warehouse_id: row.warehouse_id.to_string(),
        kind: row.kind.to_proto() as i32,
        quantity: row.quantity,
        reason: row.reason.clone(),
        reference: row.reference.clone(),
        transfer_id: row.transfer_id.map(|id| id.to_string()).unwrap_or_default(),
        order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
        on_hand_after: row.on_hand_after,
        reserved_after: row.reserved_after,
        recorded_by: row.recorded_by.clone(),
        create_time: Some(timestamp(row.created_at)),
    }
}
