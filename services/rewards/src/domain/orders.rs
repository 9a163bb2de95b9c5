//! A reward order's rules: its statuses and which step each allows, where reserved stock comes
//! from, what a return gives back, and the codes the service makes.

use std::collections::HashMap;

use crm_kit::error::FieldViolations;
use crm_proto::crm::rewards::v1 as proto;
use uuid::Uuid;

use super::stock::Level;

crm_kit::text_enum! {
    /// Where an order is in its saga (see the proto for each status).
    pub enum OrderStatus: proto::RewardOrderStatus {
        Placing = "placing",
        Confirmed = "confirmed",
        Shipping = "shipping",
        Shipped = "shipped",
        Delivered = "delivered",
        Cancelling = "cancelling",
        Cancelled = "cancelled",
        PartiallyReturned = "partially_returned",
        Returned = "returned",
        Failed = "failed",
    }
}

impl OrderStatus {
    /// Goods out of the door that may come back.
    pub fn is_returnable(self) -> bool {
        matches!(self, Self::Delivered | Self::PartiallyReturned)
    }

    /// Delivered once: returns may have been recorded.
    pub fn was_delivered(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::PartiallyReturned | Self::Returned
        )
    }
}

/// Most units of one reward one order may hold.
pub const MAX_QUANTITY: i32 = 100;

/// Where `quantity` units come from: the warehouses with the most available first, as few as
/// will do. `None` when all of them together have too few.
pub fn allocate(levels: &[(Uuid, Level)], quantity: i64) -> Option<Vec<(Uuid, i64)>> {
    let mut by_available: Vec<&(Uuid, Level)> =
        levels.iter().filter(|(_, l)| l.available() > 0).collect();
    by_available.sort_by_key(|(id, l)| (std::cmp::Reverse(l.available()), *id));
    let mut left = quantity;
    let mut taken = Vec::new();
    for (warehouse, level) in by_available {
        if left == 0 {
            break;
        }
        let take = left.min(level.available());
        taken.push((*warehouse, take));
        left -= take;
    }
    (left == 0).then_some(taken)
}

/// One line of an order as a return sees it.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub line: i32,
    pub quantity: i32,
    pub returned: i32,
    pub unit_points: i64,
}

/// The units a return takes back per line, and the points they give back. An empty request takes
/// back everything not yet returned. Violations name `items[i]`.
pub fn returned_units(
    lines: &[Line],
    requested: &[proto::ReturnedItem],
    v: &mut FieldViolations,
) -> (Vec<(i32, i32)>, i64) {
    let by_line: HashMap<i32, &Line> = lines.iter().map(|l| (l.line, l)).collect();
    let mut units: Vec<(i32, i32)> = Vec::new();
    if requested.is_empty() {
        units = lines
            .iter()
            .filter(|l| l.quantity > l.returned)
            .map(|l| (l.line, l.quantity - l.returned))
            .collect();
        v.check(
            !units.is_empty(),
            "items",
            "everything was returned already",
        );
    }
    for (i, item) in requested.iter().enumerate() {
        let field = format!("items[{i}]");
        match by_line.get(&item.line) {
            None => v.add(format!("{field}.line"), "is not a line of the order"),
            Some(_) if units.iter().any(|(line, _)| *line == item.line) => {
                v.add(format!("{field}.line"), "appears twice")
            }
            Some(line) => {
                let left = line.quantity - line.returned;
                v.check(
                    (1..=left).contains(&item.quantity),
                    format!("{field}.quantity"),
                    format!(
                        "must be 1 to {left}, the units of line {} not yet returned",
                        line.line
                    ),
                );
                units.push((item.line, item.quantity));
            }
        }
    }
    let points = units
        .iter()
        .map(|(line, quantity)| {
            by_line
                .get(line)
                .map_or(0, |l| l.unit_points * i64::from(*quantity))
        })
        .sum();
    (units, points)
}

/// A code the service makes for a generated voucher: 16 characters of an alphabet without the
/// look-alikes (0/O, 1/I/L), in groups of four: over 75 random bits, so two never meet.
pub fn new_voucher_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let bytes = *Uuid::new_v4().as_bytes();
    let random = u128::from_be_bytes(bytes);
    let mut code = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        let index = (random >> (i * 6)) as usize % ALPHABET.len();
        code.push(ALPHABET[index] as char);
    }
    code
}

/// An e-mail address a voucher can be sent to: one `@` with something on either side and a dot in
/// the domain, no spaces, at most 254 characters.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: i64, reserved: i64) -> Level {
        Level { on_hand, reserved }
    }

    #[test]
    fn stock_comes_from_the_fullest_warehouses_first() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let levels = [(a, level(5, 4)), (b, level(10, 2)), (c, level(3, 0))];
        assert_eq!(allocate(&levels, 6), Some(vec![(b, 6)]));
        assert_eq!(allocate(&levels, 10), Some(vec![(b, 8), (c, 2)]));
        assert_eq!(allocate(&levels, 12), Some(vec![(b, 8), (c, 3), (a, 1)]));
        assert_eq!(allocate(&levels, 13), None);
        assert_eq!(allocate(&[], 1), None);
    }

    #[test]
    fn a_return_takes_back_what_is_left_and_no_more() {
        let lines = [
            Line {
                line: 1,
                quantity: 3,
                returned: 1,
                unit_points: 100,
            },
            Line {
                line: 2,
                quantity: 1,
                returned: 0,
                unit_points: 40,
            },
        ];
        let mut v = FieldViolations::new();
        assert_eq!(
            returned_units(&lines, &[], &mut v),
            (vec![(1, 2), (2, 1)], 240)
        );
        assert!(v.finish().is_ok());

        let item = |line, quantity| proto::ReturnedItem { line, quantity };
        let mut v = FieldViolations::new();
        assert_eq!(
            returned_units(&lines, &[item(1, 2)], &mut v),
            (vec![(1, 2)], 200)
        );
        assert!(v.finish().is_ok());

        let mut v = FieldViolations::new();
        returned_units(
            &lines,
            &[item(1, 3), item(2, 1), item(2, 1), item(9, 1)],
            &mut v,
        );
        let fields: Vec<String> = v.fields().map(str::to_owned).collect();
        assert_eq!(
            fields,
            ["items[0].quantity", "items[2].line", "items[3].line"]
        );

        let all_back = [Line {
            line: 1,
            quantity: 1,
            returned: 1,
            unit_points: 5,
        }];
        let mut v = FieldViolations::new();
        returned_units(&all_back, &[], &mut v);
        assert!(v.finish().is_err());
    }

    #[test]
    fn generated_codes_are_readable_and_distinct() {
        let codes: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_voucher_code()).collect();
        assert_eq!(codes.len(), 10_000);
        let code = codes.iter().next().unwrap();
        assert_eq!(code.len(), 19);
        assert!(code.split('-').all(|group| group.len() == 4));
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
    }

    #[test]
    fn e_mail_addresses_are_checked_for_their_shape() {
        assert!(valid_email("ola@example.pl"));
        for bad in [
            "",
            "ola",
            "@example.pl",
            "ola@example",
            "ola@.pl",
            "o la@example.pl",
            "a@b@c.pl",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
