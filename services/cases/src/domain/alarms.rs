//! A ticket's SLA clocks as kept between calls, and their alarms: each clock comes near its
//! target (a share of it spent) and passes it at most once per run, and each of those is
//! announced exactly once, whether the sweep finds it or a call that meets the clock late does.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    calendar::Calendar,
    proto,
    sla::{Clock, Clocks, Standing},
};

crm_kit::text_enum! {
    /// A ticket's three clocks.
    pub enum Kind: proto::SlaClockKind {
        FirstResponse = "first_response",
        NextUpdate = "next_update",
        Resolution = "resolution",
    }
}

crm_kit::text_enum! {
    pub enum Level: proto::EscalationLevel {
        NearBreach = "near_breach",
        Breach = "breach",
    }
}

crm_kit::text_enum! {
    /// What an escalation does: tell someone, or hand the ticket to a group.
    pub enum Action: proto::EscalationAction {
        Notify = "notify",
        Reassign = "reassign",
    }
}

/// A clock as stored: its run in seconds of business time, and what was announced of this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockRecord {
    pub target: i64,
    pub spent: i64,
    pub running_since: Option<DateTime<Utc>>,
    pub met_at: Option<DateTime<Utc>>,
    pub near_announced: bool,
    pub breach_announced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockRecords {
    pub first_response: ClockRecord,
    pub next_update: ClockRecord,
    pub resolution: ClockRecord,
}

/// An alarm to announce: which clock, how far, and when its target runs (ran) out if it is still
/// running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub kind: Kind,
    pub level: Level,
    pub due: Option<DateTime<Utc>>,
}

impl ClockRecord {
    fn clock(&self) -> Clock {
        Clock {
            target: Duration::seconds(self.target),
            spent: Duration::seconds(self.spent),
            running_since: self.running_since,
            met_at: self.met_at,
        }
    }

    /// Takes `clock`'s state; a fresh run (started anew with nothing spent) may alarm again.
    fn set(&mut self, clock: &Clock) {
        let fresh = clock.spent.is_zero()
            && clock.met_at.is_none()
            && clock.running_since.is_some()
            && clock.running_since != self.running_since;
        if fresh {
            self.near_announced = false;
            self.breach_announced = false;
        }
        self.spent = clock.spent.num_seconds();
        self.running_since = clock.running_since;
        self.met_at = clock.met_at;
    }

    /// When it breaches if it keeps running, or when its target ran out if it breached.
    fn due(&self, calendar: &Calendar) -> Option<DateTime<Utc>> {
        self.clock().due(calendar)
    }
}

impl ClockRecords {
    /// Clocks with these targets, none started.
    pub fn new(first_response: Duration, next_update: Duration, resolution: Duration) -> Self {
        let record = |target: Duration| ClockRecord {
            target: target.num_seconds(),
            ..ClockRecord::default()
        };
        Self {
            first_response: record(first_response),
            next_update: record(next_update),
            resolution: record(resolution),
        }
    }

    pub fn clocks(&self) -> Clocks {
        Clocks {
            first_response: self.first_response.clock(),
            next_update: self.next_update.clock(),
            resolution: self.resolution.clock(),
        }
    }

    pub fn set(&mut self, clocks: &Clocks) {
        self.first_response.set(&clocks.first_response);
        self.next_update.set(&clocks.next_update);
        self.resolution.set(&clocks.resolution);
    }

    pub fn each(&self) -> [(Kind, &ClockRecord); 3] {
        [
            (Kind::FirstResponse, &self.first_response),
            (Kind::NextUpdate, &self.next_update),
            (Kind::Resolution, &self.resolution),
        ]
    }

    fn each_mut(&mut self) -> [(Kind, &mut ClockRecord); 3] {
        [
            (Kind::FirstResponse, &mut self.first_response),
            (Kind::NextUpdate, &mut self.next_update),
            (Kind::Resolution, &mut self.resolution),
        ]
    }

    /// The alarms due by `now` and not announced yet, marked announced. A clock found past its
    /// target announces the breach only: a warning after the fact helps nobody.
    pub fn take_alarms(
        &mut self,
        now: DateTime<Utc>,
        calendar: &Calendar,
        near_share: f64,
    ) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        for (kind, record) in self.each_mut() {
            let clock = record.clock();
            let due = record.due(calendar);
            if clock.standing(now, calendar) == Standing::Breached {
                if !record.breach_announced {
                    record.breach_announced = true;
                    record.near_announced = true;
                    alarms.push(Alarm {
                        kind,
                        level: Level::Breach,
                        due,
                    });
                }
            } else if !record.near_announced && clock.near(now, calendar, near_share) {
                record.near_announced = true;
                alarms.push(Alarm {
                    kind,
                    level: Level::NearBreach,
                    due,
                });
            }
        }
        alarms
    }

    /// The earliest moment an alarm not yet announced falls due, if a clock runs towards one.
    pub fn next_alarm(&self, calendar: &Calendar, near_share: f64) -> Option<DateTime<Utc>> {
        self.each()
            .into_iter()
            .filter(|(_, r)| r.met_at.is_none() && !r.breach_announced)
            .filter_map(|(_, r)| {
                let since = r.running_since?;
                let target = if r.near_announced {
                    r.target
                } else {
                    (r.target as f64 * near_share).ceil() as i64
                };
                calendar.add(since, Duration::seconds((target - r.spent).max(0)))
            })
            .min()
    }

    /// The earliest due time of a running clock.
    pub fn due(&self, calendar: &Calendar) -> Option<DateTime<Utc>> {
        self.each()
            .into_iter()
            .filter_map(|(_, r)| r.due(calendar))
            .min()
    }

    /// Whether any clock is past its target at `now`.
    pub fn breached(&self, now: DateTime<Utc>, calendar: &Calendar) -> bool {
        self.each()
            .into_iter()
            .any(|(_, r)| r.clock().standing(now, calendar) == Standing::Breached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sla::Happening;
    use chrono::TimeZone;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, minute, 0).unwrap()
    }

    #[test]
    fn each_alarm_is_announced_once_and_a_late_meeting_still_breaches() {
        let calendar = Calendar::always(chrono_tz::UTC);
        let mut records = ClockRecords::new(
            Duration::minutes(60),
            Duration::minutes(120),
            Duration::minutes(480),
        );
        let mut clocks = records.clocks();
        clocks.apply(Happening::Opened, at(8, 0), &calendar);
        records.set(&clocks);
        assert_eq!(records.next_alarm(&calendar, 0.8), Some(at(8, 48)));
        assert!(records.take_alarms(at(8, 47), &calendar, 0.8).is_empty());
        let near = records.take_alarms(at(8, 50), &calendar, 0.8);
        assert_eq!(
            near,
            [Alarm {
                kind: Kind::FirstResponse,
                level: Level::NearBreach,
                due: Some(at(9, 0)),
            }]
        );
        assert!(records.take_alarms(at(8, 55), &calendar, 0.8).is_empty());
        assert_eq!(records.next_alarm(&calendar, 0.8), Some(at(9, 0)));
        // Answered late: the sweep never saw the breach, the answer announces it.
        let mut clocks = records.clocks();
        clocks.apply(Happening::Responded, at(9, 10), &calendar);
        records.set(&clocks);
        let late = records.take_alarms(at(9, 10), &calendar, 0.8);
        assert_eq!(late.len(), 1);
        assert_eq!(
            (late[0].kind, late[0].level),
            (Kind::FirstResponse, Level::Breach)
        );
        assert!(records.take_alarms(at(9, 11), &calendar, 0.8).is_empty());
        // The next update runs from the answer; the resolution from the opening.
        assert_eq!(records.next_alarm(&calendar, 0.8), Some(at(10, 46)));
    }

    #[test]
    fn a_new_run_of_the_next_update_may_alarm_again() {
        let calendar = Calendar::always(chrono_tz::UTC);
        let mut records = ClockRecords::new(
            Duration::minutes(60),
            Duration::minutes(30),
            Duration::minutes(480),
        );
        let mut clocks = records.clocks();
        clocks.apply(Happening::Opened, at(8, 0), &calendar);
        clocks.apply(Happening::Responded, at(8, 10), &calendar);
        records.set(&clocks);
        let first = records.take_alarms(at(8, 50), &calendar, 0.8);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].kind, first[0].level),
            (Kind::NextUpdate, Level::Breach)
        );
        let mut clocks = records.clocks();
        clocks.apply(Happening::CustomerReplied, at(9, 0), &calendar);
        records.set(&clocks);
        let again = records.take_alarms(at(9, 25), &calendar, 0.8);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].kind, again[0].level),
            (Kind::NextUpdate, Level::NearBreach)
        );
    }
}
