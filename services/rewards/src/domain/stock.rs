//! Stock arithmetic: what a movement does to a warehouse's on hand and reserved units, refused
//! rather than ever taking stock below zero or reserving what is not there.

use super::MovementKind;

/// Most units one movement moves.
pub const MAX_MOVEMENT: i64 = 1_000_000_000;

/// Most units a warehouse holds of one reward (the table refuses more): sums over warehouses never
/// overflow.
pub const MAX_ON_HAND: i64 = 1_000_000_000_000;

/// A warehouse's stock of one reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
}

/// Why a movement cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// What the movement needed: on hand for issues and decreases, available for reservations.
    pub needed: i64,
    /// What there was.
    pub there: i64,
}

impl Level {
    /// On hand less reserved: what orders can still take.
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }

    /// The level after `kind` of `quantity` units (at most [`MAX_MOVEMENT`] either way).
    /// Receipts, returns, adjustments and transfers change on hand by the signed quantity (a
    /// transfer's leg out is negative), keeping it at least what is reserved and at most
    /// [`MAX_ON_HAND`]; reservations take available units; releases give reserved ones back;
    /// issues take reserved units off the shelf.
    pub fn apply(self, kind: MovementKind, quantity: i64) -> Result<Level, Shortfall> {
        let mut after = self;
        match kind {
            MovementKind::Receipt
            | MovementKind::Return
            | MovementKind::Adjustment
            | MovementKind::Transfer => {
                after.on_hand = self.on_hand.saturating_add(quantity);
                if after.on_hand > MAX_ON_HAND {
                    return Err(Shortfall {
                        needed: quantity,
                        there: MAX_ON_HAND - self.on_hand,
                    });
                }
                if after.on_hand < self.reserved {
                    return Err(Shortfall {
                        needed: quantity.saturating_neg(),
                        there: self.available(),
                    });
                }
            }
            MovementKind::Reservation => {
                if quantity > self.available() {
                    return Err(Shortfall {
                        needed: quantity,
                        there: self.available(),
                    });
                }
                after.reserved += quantity;
            }
            MovementKind::Release => {
                if quantity > self.reserved {
                    return Err(Shortfall {
                        needed: quantity,
                        there: self.reserved,
                    });
                }
                after.reserved -= quantity;
            }
            MovementKind::Issue => {
                if quantity > self.reserved {
                    return Err(Shortfall {
                        needed: quantity,
                        there: self.reserved,
                    });
                }
                after.reserved -= quantity;
                after.on_hand -= quantity;
            }
        }
        Ok(after)
    }
}

/// Whether available stock is below a threshold (0: no threshold).
pub fn is_low(level: Level, threshold: i32) -> bool {
    threshold > 0 && level.available() < i64::from(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MovementKind::*;

    const TEN_TWO: Level = Level {
        on_hand: 10,
        reserved: 2,
    };

    #[test]
    fn movements_move_the_right_counts() {
        let level = |on_hand, reserved| Level { on_hand, reserved };
        assert_eq!(TEN_TWO.apply(Receipt, 5), Ok(level(15, 2)));
        assert_eq!(TEN_TWO.apply(Return, 1), Ok(level(11, 2)));
        assert_eq!(TEN_TWO.apply(Adjustment, -8), Ok(level(2, 2)));
        assert_eq!(TEN_TWO.apply(Transfer, -3), Ok(level(7, 2)));
        assert_eq!(TEN_TWO.apply(Reservation, 8), Ok(level(10, 10)));
        assert_eq!(TEN_TWO.apply(Release, 2), Ok(level(10, 0)));
        assert_eq!(TEN_TWO.apply(Issue, 2), Ok(level(8, 0)));
    }

    #[test]
    fn stock_never_goes_below_what_is_reserved_or_zero() {
        let short = |needed, there| Err(Shortfall { needed, there });
        assert_eq!(TEN_TWO.apply(Adjustment, -9), short(9, 8));
        assert_eq!(TEN_TWO.apply(Transfer, -9), short(9, 8));
        assert_eq!(TEN_TWO.apply(Reservation, 9), short(9, 8));
        assert_eq!(TEN_TWO.apply(Release, 3), short(3, 2));
        assert_eq!(TEN_TWO.apply(Issue, 3), short(3, 2));
        assert!(TEN_TWO.apply(Receipt, MAX_ON_HAND).is_err());
        assert!(TEN_TWO.apply(Receipt, i64::MAX).is_err());
        assert!(TEN_TWO.apply(Adjustment, i64::MIN).is_err());
    }

    #[test]
    fn low_means_below_a_set_threshold() {
        assert!(is_low(TEN_TWO, 9));
        assert!(!is_low(TEN_TWO, 8));
        assert!(!is_low(Level::default(), 0));
    }
}
