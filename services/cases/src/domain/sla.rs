//! SLA clocks of a ticket: first response, next update and resolution, each its own clock over
//! business time, started, paused, resumed and stopped by what happens to the ticket, never by
//! another clock (a response stops the first-response clock and starts the next-update clock; it
//! does not move the resolution clock).
//!
//! - Opening starts the first-response and resolution clocks.
//! - An agent's public response meets the first response (once) and restarts the next-update
//!   clock: the next update is due that long after it.
//! - A customer's reply restarts the next-update clock once the first response is met (the
//!   customer waits for an answer again; before it, the first response is what is owed) and,
//!   when the ticket was waiting for them, resumes the paused clocks.
//! - Waiting for the customer pauses the next-update and resolution clocks; waiting for a third
//!   party does not (the company still owes the answer).
//! - Resolving meets the resolution and stops the others (a first response never given no longer
//!   applies); reopening resumes resolution with the time already spent and restarts the next
//!   update.

use chrono::{DateTime, Duration, Utc};

use super::calendar::Calendar;

/// One clock: a business-time target, the business time spent in earlier running stretches, and
/// the current stretch if it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    pub target: Duration,
    /// Business time spent before `running_since`.
    pub spent: Duration,
    pub running_since: Option<DateTime<Utc>>,
    /// When the target was met (the clock stopped for good).
    pub met_at: Option<DateTime<Utc>>,
}

/// Where a clock stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Met before its target ran out.
    Met,
    /// Met, or still running, after its target ran out.
    Breached,
    /// Running (or paused) with time left; `due` is when it breaches if it keeps running.
    Pending { due: Option<DateTime<Utc>> },
    /// Never started, or stopped without a target to meet.
    Idle,
}

impl Clock {
    pub fn new(target: Duration) -> Self {
        Self {
            target,
            spent: Duration::zero(),
            running_since: None,
            met_at: None,
        }
    }

    /// Runs from `at` (no effect if running or met).
    pub fn start(&mut self, at: DateTime<Utc>) {
        if self.running_since.is_none() && self.met_at.is_none() {
            self.running_since = Some(at);
        }
    }

    /// Starts over from `at` with nothing spent: a new target to meet.
    pub fn restart(&mut self, at: DateTime<Utc>) {
        *self = Self {
            running_since: Some(at),
            ..Self::new(self.target)
        };
    }

    /// Stops running at `at`, keeping the business time spent.
    pub fn pause(&mut self, at: DateTime<Utc>, calendar: &Calendar) {
        if let Some(since) = self.running_since.take() {
            self.spent += calendar.between(since, at);
        }
    }

    /// The target is met at `at`; the clock stops for good.
    pub fn meet(&mut self, at: DateTime<Utc>, calendar: &Calendar) {
        if self.met_at.is_none() && (self.running_since.is_some() || !self.spent.is_zero()) {
            self.pause(at, calendar);
            self.met_at = Some(at);
        }
    }

    /// Stops without meeting a target (the clock no longer applies), keeping its history.
    pub fn stop(&mut self, at: DateTime<Utc>, calendar: &Calendar) {
        self.pause(at, calendar);
    }

    /// Business time spent by `now`.
    pub fn spent_by(&self, now: DateTime<Utc>, calendar: &Calendar) -> Duration {
        self.spent
            + self
                .running_since
                .map_or(Duration::zero(), |since| calendar.between(since, now))
    }

    /// When it breaches if it keeps running: `None` if paused, met, or the calendar never has the
    /// time left.
    pub fn due(&self, calendar: &Calendar) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        calendar.add(since, self.target - self.spent)
    }

    /// Met when met within the target; breached once the whole target is spent unmet (at its due
    /// moment, even when that is the calendar's closing time and no more time will pass until
    /// morning), or when met after it.
    pub fn standing(&self, now: DateTime<Utc>, calendar: &Calendar) -> Standing {
        let spent = self.spent_by(now, calendar);
        match (self.met_at, self.running_since) {
            (Some(_), _) if spent <= self.target => Standing::Met,
            (Some(_), _) => Standing::Breached,
            (None, None) if spent.is_zero() => Standing::Idle,
            (None, _) if spent >= self.target => Standing::Breached,
            (None, _) => Standing::Pending {
                due: self.due(calendar),
            },
        }
    }

    /// Whether `share` (0 to 1) of its target is spent and it is not met: time to warn.
    pub fn near(&self, now: DateTime<Utc>, calendar: &Calendar, share: f64) -> bool {
        self.met_at.is_none() && {
            let spent = self.spent_by(now, calendar).num_seconds() as f64;
            spent >= self.target.num_seconds() as f64 * share
        }
    }
}

/// The three clocks of a ticket, moved by what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clocks {
    pub first_response: Clock,
    pub next_update: Clock,
    pub resolution: Clock,
}

/// What happened to a ticket, as far as its clocks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happening {
    Opened,
    /// An agent answered the customer (a public response).
    Responded,
    /// The customer wrote.
    CustomerReplied,
    WaitingForCustomer,
    WaitingForThirdParty,
    Resolved,
    Reopened,
}

impl Clocks {
    pub fn new(first_response: Duration, next_update: Duration, resolution: Duration) -> Self {
        Self {
            first_response: Clock::new(first_response),
            next_update: Clock::new(next_update),
            resolution: Clock::new(resolution),
        }
    }

    pub fn apply(&mut self, happening: Happening, at: DateTime<Utc>, calendar: &Calendar) {
        match happening {
            Happening::Opened => {
                self.first_response.start(at);
                self.resolution.start(at);
            }
            Happening::Responded => {
                self.first_response.meet(at, calendar);
                self.next_update.restart(at);
                // An answer after waiting for the customer takes the ticket back: it runs again.
                self.resolution.start(at);
            }
            Happening::CustomerReplied => {
                // Answering the customer is owed again (the first response, until it is met:
                // one unanswered message is not owed twice), and whatever waited for them goes
                // on.
                if self.first_response.met_at.is_some() {
                    self.next_update.restart(at);
                }
                self.resolution.start(at);
            }
            Happening::WaitingForCustomer => {
                self.next_update.stop(at, calendar);
                self.resolution.pause(at, calendar);
            }
            Happening::WaitingForThirdParty => {
                self.resolution.start(at);
            }
            Happening::Resolved => {
                // Resolved without an answer: the first response no longer applies.
                self.first_response.stop(at, calendar);
                self.next_update.stop(at, calendar);
                self.resolution.meet(at, calendar);
            }
            Happening::Reopened => {
                let spent = self.resolution.spent;
                self.resolution = Clock {
                    spent,
                    running_since: Some(at),
                    ..Clock::new(self.resolution.target)
                };
                self.next_update.restart(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::Period;
    use chrono::TimeZone;
    use chrono_tz::Europe::Warsaw;

    /// Monday to Friday 09:00–12:00 and 12:30–17:00, Warsaw.
    fn office() -> Calendar {
        let day = vec![
            Period {
                start: 9 * 60,
                end: 12 * 60,
            },
            Period {
                start: 12 * 60 + 30,
                end: 17 * 60,
            },
        ];
        let week = std::array::from_fn(|i| if i < 5 { day.clone() } else { Vec::new() });
        Calendar::new(Warsaw, week, []).unwrap()
    }

    fn at(d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Warsaw
            .with_ymd_and_hms(2026, 11, d, h, mi, 0)
            .single()
            .unwrap()
            .to_utc()
    }

    fn minutes(n: i64) -> Duration {
        Duration::minutes(n)
    }

    fn clocks() -> Clocks {
        // First response in 1 h, next update in 2 h, resolution in 8 h (business).
        Clocks::new(minutes(60), minutes(120), minutes(480))
    }

    /// A day of December 2026, Warsaw.
    fn dec(d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Warsaw
            .with_ymd_and_hms(2026, 12, d, h, mi, 0)
            .single()
            .unwrap()
            .to_utc()
    }

    #[test]
    fn each_clock_runs_on_its_own() {
        let cal = office();
        let mut c = clocks();
        // Monday 30 November 16:30: opened; half an hour that day, half the next morning.
        c.apply(Happening::Opened, at(30, 16, 30), &cal);
        assert_eq!(
            c.first_response.standing(at(30, 16, 30), &cal),
            Standing::Pending {
                due: Some(dec(1, 9, 30))
            }
        );
        // Answered next morning at 09:20: 50 business minutes, met.
        c.apply(Happening::Responded, dec(1, 9, 20), &cal);
        assert_eq!(
            c.first_response.standing(dec(1, 9, 20), &cal),
            Standing::Met
        );
        // The next update is due 2 h after the answer; the resolution clock did not move.
        assert_eq!(c.next_update.due(&cal), Some(dec(1, 11, 20)));
        assert_eq!(c.resolution.spent_by(dec(1, 9, 20), &cal), minutes(50));
        assert_eq!(c.resolution.due(&cal), Some(dec(1, 17, 0)));
        // A second response does not meet the first response again.
        c.apply(Happening::Responded, dec(1, 10, 0), &cal);
        assert_eq!(c.first_response.met_at, Some(dec(1, 9, 20)));
        assert_eq!(c.next_update.due(&cal), Some(dec(1, 12, 0)));
    }

    #[test]
    fn waiting_for_the_customer_pauses_and_their_reply_resumes() {
        let cal = office();
        let mut c = clocks();
        c.apply(Happening::Opened, at(30, 9, 0), &cal);
        c.apply(Happening::Responded, at(30, 10, 0), &cal);
        c.apply(Happening::WaitingForCustomer, at(30, 11, 0), &cal);
        // Two days of waiting cost nothing.
        assert_eq!(c.resolution.spent_by(dec(2, 9, 0), &cal), minutes(120));
        assert_eq!(
            c.resolution.standing(dec(2, 9, 0), &cal),
            Standing::Pending { due: None }
        );
        // The reply restarts the next update (a customer's reply is answered again) and resumes
        // resolution: 6 h left, 09:00–12:00 and 12:30–15:30.
        c.apply(Happening::CustomerReplied, dec(2, 9, 0), &cal);
        assert_eq!(c.next_update.due(&cal), Some(dec(2, 11, 0)));
        assert_eq!(c.resolution.due(&cal), Some(dec(2, 15, 30)));
    }

    #[test]
    fn an_answer_after_waiting_takes_the_ticket_back_and_its_clock_runs() {
        let cal = office();
        let mut c = clocks();
        c.apply(Happening::Opened, at(30, 9, 0), &cal);
        c.apply(Happening::WaitingForCustomer, at(30, 10, 0), &cal);
        // The agent writes again without waiting for the customer: resolution runs again.
        c.apply(Happening::Responded, at(30, 14, 0), &cal);
        assert_eq!(c.resolution.spent_by(at(30, 15, 0), &cal), minutes(120));
    }

    #[test]
    fn a_third_party_does_not_stop_the_clock_and_reopening_continues_it() {
        let cal = office();
        let mut c = clocks();
        c.apply(Happening::Opened, at(30, 9, 0), &cal);
        c.apply(Happening::WaitingForThirdParty, at(30, 10, 0), &cal);
        assert_eq!(c.resolution.spent_by(at(30, 13, 0), &cal), minutes(210));
        c.apply(Happening::Resolved, at(30, 13, 0), &cal);
        assert_eq!(c.resolution.standing(at(30, 16, 0), &cal), Standing::Met);
        // Reopened at 15:00: the 210 minutes stay spent, 270 remain.
        c.apply(Happening::Reopened, at(30, 15, 0), &cal);
        assert_eq!(c.resolution.spent_by(at(30, 16, 0), &cal), minutes(270));
        assert_eq!(c.resolution.met_at, None);
    }

    #[test]
    fn a_breach_is_a_breach_whether_met_late_or_still_running() {
        let cal = office();
        let mut c = clocks();
        c.apply(Happening::Opened, at(30, 9, 0), &cal);
        assert!(!c.first_response.near(at(30, 9, 47), &cal, 0.8));
        assert!(c.first_response.near(at(30, 9, 48), &cal, 0.8));
        assert_eq!(
            c.first_response.standing(at(30, 10, 1), &cal),
            Standing::Breached
        );
        c.apply(Happening::Responded, at(30, 10, 30), &cal);
        assert_eq!(
            c.first_response.standing(at(30, 11, 0), &cal),
            Standing::Breached
        );
        assert!(
            !c.first_response.near(at(30, 11, 0), &cal, 0.8),
            "met: no more warnings"
        );
    }

    #[test]
    fn a_clock_due_at_closing_time_is_breached_then_not_the_next_morning() {
        let cal = office();
        // Friday 27 November 09:00: a working day's 7.5 hours end at 17:00 sharp.
        let mut c = Clock::new(minutes(450));
        c.start(at(27, 9, 0));
        assert_eq!(c.due(&cal), Some(at(27, 17, 0)));
        assert_eq!(
            c.standing(at(27, 16, 59), &cal),
            Standing::Pending {
                due: Some(at(27, 17, 0))
            }
        );
        assert_eq!(c.standing(at(27, 17, 0), &cal), Standing::Breached);
        assert_eq!(c.standing(at(28, 12, 0), &cal), Standing::Breached);
    }

    #[test]
    fn a_reply_before_the_first_response_owes_nothing_more_and_resolving_ends_it() {
        let cal = office();
        let mut c = clocks();
        c.apply(Happening::Opened, at(30, 9, 0), &cal);
        c.apply(Happening::CustomerReplied, at(30, 9, 10), &cal);
        assert_eq!(c.next_update.standing(at(30, 9, 20), &cal), Standing::Idle);
        c.apply(Happening::Resolved, at(30, 9, 30), &cal);
        assert!(c.first_response.running_since.is_none());
        assert_eq!(c.first_response.due(&cal), None);
        // Not met, not breached, never to alarm.
        assert_eq!(c.first_response.met_at, None);
    }
}
