//! Rows as the API answers them, one function per resource.

use crm_kit::request::{audit, date_to_proto, money_to_proto, timestamp};
use crm_proto::crm::rewards::v1 as proto;
use uuid::Uuid;

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::store::{
    orders::{ItemRow as OrderItemRow, Loaded, ReturnRow, ReturnedRow},
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

pub fn order(loaded: &Loaded) -> proto::RewardOrder {
    let o = &loaded.order;
    let mut co_payments: BTreeMap<&str, Decimal> = BTreeMap::new();
    for item in &loaded.items {
        if let (Some(amount), Some(currency)) = (item.co_payment_amount, &item.co_payment_currency)
        {
            *co_payments.entry(currency).or_default() += amount * Decimal::from(item.quantity);
        }
    }
    let shipment = o.carrier.as_ref().map(|carrier| proto::Shipment {
        carrier: carrier.clone(),
        tracking_number: o.tracking_number.clone().unwrap_or_default(),
        ship_time: o.shipped_at.map(timestamp),
    });
    let failure = o.failure_reason.as_ref().map(|reason| proto::OrderFailure {
        reason: reason.clone(),
        message: o.failure_message.clone().unwrap_or_default(),
    });
    proto::RewardOrder {
        id: o.id.to_string(),
        membership_id: o.membership_id.to_string(),
        party_id: o.party_id.to_string(),
        program_id: o.program_id.to_string(),
        point_type: o.point_type.clone(),
        status: o.status.to_proto() as i32,
        items: loaded.items.iter().map(|i| order_item(loaded, i)).collect(),
        points: o.points,
        captured_points: o.captured_points,
        returned_points: o.returned_points,
        co_payments: co_payments
            .into_iter()
            .map(|(currency, amount)| money_to_proto(amount, currency))
            .collect(),
        delivery: Some(proto::Delivery {
            recipient_name: o.recipient_name.clone().unwrap_or_default(),
            address: o.address.as_ref().map(|a| a.0.to_proto()),
            email: o.email.clone().unwrap_or_default(),
            phone: o.phone.clone().unwrap_or_default(),
        }),
        hold_id: o.hold_id.clone(),
        hold_expire_time: o.hold_expires_at.map(timestamp),
        shipment,
        confirm_time: o.confirmed_at.map(timestamp),
        deliver_time: o.delivered_at.map(timestamp),
        cancel_time: o.cancelled_at.map(timestamp),
        cancel_reason: o.cancel_reason.clone().unwrap_or_default(),
        failure,
        returns: loaded
            .returns
            .iter()
            .map(|(r, lines)| order_return(r, lines))
            .collect(),
        audit: Some(audit(
            o.created_at,
            o.updated_at,
            &o.created_by,
            &o.updated_by,
        )),
    }
}

fn order_item(loaded: &Loaded, item: &OrderItemRow) -> proto::RewardOrderItem {
    proto::RewardOrderItem {
        line: item.line,
        reward_id: item.reward_id.to_string(),
        display_name: item.display_name.clone(),
        kind: loaded.order.kind.to_proto() as i32,
        quantity: item.quantity,
        unit_points: item.unit_points,
        unit_co_payment: item
            .co_payment_amount
            .zip(item.co_payment_currency.as_deref())
            .map(|(amount, currency)| money_to_proto(amount, currency)),
        returned_quantity: item.returned_quantity,
        vouchers: loaded
            .codes
            .iter()
            .filter(|c| c.line == item.line)
            .map(|c| proto::IssuedVoucher {
                code: c.code.clone(),
                valid_until: c.valid_until.map(date_to_proto),
            })
            .collect(),
    }
}

fn order_return(r: &ReturnRow, lines: &[ReturnedRow]) -> proto::OrderReturn {
    proto::OrderReturn {
        id: r.id.to_string(),
        items: lines
            .iter()
            .map(|l| proto::ReturnedItem {
                line: l.line,
                quantity: l.quantity,
            })
            .collect(),
        points: r.points,
        reason: r.reason.clone(),
        points_returned: r.points_returned,
        create_time: Some(timestamp(r.created_at)),
        points_refused: r.refused.clone().unwrap_or_default(),
    }
}

/// The order as events carry it: without delivery details, voucher codes and free text (the
/// reasons of cancellations and returns).
pub fn order_event(loaded: &Loaded) -> proto::RewardOrder {
    let mut order = order(loaded);
    order.delivery = None;
    order.cancel_reason.clear();
    for item in &mut order.items {
        item.vouchers.clear();
    }
    for ret in &mut order.returns {
        ret.reason.clear();
    }
    order
}
