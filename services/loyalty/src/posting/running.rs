//! An account as a batch of postings moves it, in memory: its balance, held points and lots.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An account as the batch moves it.
pub(super) struct Running {
    pub(super) id: Uuid,
    /// Not in the database yet: created if a posting goes through.
    pub(super) new: bool,
    pub(super) balance: i64,
    pub(super) held: i64,
    pub(super) touched: bool,
    /// Open lots, in the order debits take them (oldest-expiring first); new ones at the end.
    pub(super) lots: Vec<Lot>,
}

pub(super) struct Lot {
    /// `None`: opened by this batch.
    pub(super) id: Option<i64>,
    pub(super) operation: Uuid,
    pub(super) amount: i64,
    pub(super) remaining: i64,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) changed: bool,
}

impl Running {
    pub(super) fn new(id: Uuid) -> Self {
        Running {
            id,
            new: true,
            balance: 0,
            held: 0,
            touched: false,
            lots: Vec::new(),
        }
    }

    pub(super) fn available(&self) -> i64 {
        self.balance - self.held
    }

    /// Takes `points` from the open lots, those of `prefer` first (a debit into a negative balance
    /// takes what the lots hold); returns what it took from each lot, by the lot's operation.
    pub(super) fn take(&mut self, mut points: i64, prefer: Option<Uuid>) -> Vec<(Uuid, i64)> {
        let mut taken = Vec::new();
        let preferred = self
            .lots
            .iter()
            .enumerate()
            .filter(|(_, lot)| Some(lot.operation) == prefer)
            .map(|(i, _)| i);
        let rest = self
            .lots
            .iter()
            .enumerate()
            .filter(|(_, lot)| Some(lot.operation) != prefer)
            .map(|(i, _)| i);
        let order: Vec<usize> = preferred.chain(rest).collect();
        for i in order {
            if points == 0 {
                break;
            }
            let lot = &mut self.lots[i];
            let take = lot.remaining.min(points);
            if take > 0 {
                lot.remaining -= take;
                lot.changed = true;
                points -= take;
                taken.push((lot.operation, take));
            }
        }
        taken
    }

    /// Gives `points` back to the lots of `taken` (what a spend took, by lot operation) as far as
    /// they and the balance have room; returns what each lot got back.
    pub(super) fn give_back(
        &mut self,
        mut points: i64,
        taken: &mut [(Uuid, i64)],
    ) -> Vec<(Uuid, i64)> {
        let mut given = Vec::new();
        for (lot_operation, left) in taken.iter_mut() {
            let Some(lot) = self.lots.iter_mut().find(|l| l.operation == *lot_operation) else {
                continue;
            };
            let give = points.min(*left).min(lot.amount - lot.remaining);
            if give > 0 {
                lot.remaining += give;
                lot.changed = true;
                *left -= give;
                points -= give;
                given.push((*lot_operation, give));
            }
        }
        given
    }

    /// Opens a lot for a credit already added to the balance: of only what the credit takes the
    /// balance above zero, so that open lots add up to the balance.
    pub(super) fn open_lot(
        &mut self,
        operation: Uuid,
        points: i64,
        expires_at: Option<DateTime<Utc>>,
    ) {
        let amount = points.min(self.balance);
        if amount > 0 {
            // Before the never-expiring lots (and after those that expire sooner).
            let at = self
                .lots
                .iter()
                .position(|lot| match (lot.expires_at, expires_at) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(theirs), Some(ours)) => theirs > ours,
                })
                .unwrap_or(self.lots.len());
            self.lots.insert(
                at,
                Lot {
                    id: None,
                    operation,
                    amount,
                    remaining: amount,
                    expires_at,
                    changed: true,
                },
            );
        }
    }
}
