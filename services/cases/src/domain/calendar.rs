//! Business time: a calendar of working hours per weekday (with breaks) in a time zone, and
//! holidays; when a number of business minutes from an instant ends, and how many business
//! minutes lie between two instants. SLA clocks run on it.
//!
//! Working hours are wall-clock times of the calendar's zone, and time is counted as it passes:
//! a working day that DST shortens has an hour less, one it lengthens an hour more, and a period
//! that does not exist on the wall clock (02:00–03:00 on a spring-forward night) is not worked.
//! A day's hours may run to 24:00, which is the next day's 00:00: a calendar open round the clock
//! has no gap at midnight.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Minutes in a day: the end of a period that runs to midnight.
pub const DAY_END: u16 = 24 * 60;

/// How far a search for working time goes before it gives up: a calendar open less than this
/// often cannot serve an SLA.
const HORIZON_DAYS: i64 = 3 * 366;

/// One open period of a day, in minutes after midnight: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// A period that ends before it starts, or after midnight.
    BadPeriod { weekday: usize, period: Period },
    /// Periods of one day that overlap.
    Overlap { weekday: usize },
    /// No working time in any week.
    NeverOpen,
}

/// Working hours in a time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Tz,
    /// Monday first.
    week: [Vec<Period>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// `week[0]` is Monday. Periods are sorted here; they must not overlap.
    pub fn new(
        zone: Tz,
        mut week: [Vec<Period>; 7],
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, CalendarError> {
        for (weekday, periods) in week.iter_mut().enumerate() {
            periods.sort();
            for period in periods.iter() {
                if period.start >= period.end || period.end > DAY_END {
                    return Err(CalendarError::BadPeriod {
                        weekday,
                        period: *period,
                    });
                }
            }
            if periods.windows(2).any(|w| w[0].end > w[1].start) {
                return Err(CalendarError::Overlap { weekday });
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err(CalendarError::NeverOpen);
        }
        Ok(Self {
            zone,
            week,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// Open every minute of every day, holidays included.
    pub fn always(zone: Tz) -> Self {
        let day = vec![Period {
            start: 0,
            end: DAY_END,
        }];
        Self::new(zone, std::array::from_fn(|_| day.clone()), []).expect("a valid calendar")
    }

    /// The instant `duration` of business time after `from`: at once when it is zero and the
    /// calendar is open, else at the next opening. `None` when the calendar is not open for that
    /// long within three years.
    pub fn add(&self, from: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
        let mut left = duration.max(Duration::zero());
        let first = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let last = first + Duration::days(HORIZON_DAYS);
        for (open, close) in self.periods(first, last) {
            let start = open.max(from);
            if close <= start {
                continue;
            }
            let available = close - start;
            if left <= available {
                return Some(start + left);
            }
            left -= available;
        }
        None
    }

    /// Business time between `from` and `to` (zero when `to` is not later).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let first = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.zone).date_naive() + Duration::days(1);
        self.periods(first, last)
            .map(|(open, close)| (open.max(from), close.min(to)))
            .filter(|(start, end)| start < end)
            .map(|(start, end)| end - start)
            .sum()
    }

    /// The open periods of the days `first` to `last`, in order and never overlapping: where a
    /// fall-back night repeats an hour, a period that starts in it starts no earlier than the one
    /// before ended, so no real minute counts twice.
    fn periods(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let mut closed: Option<DateTime<Utc>> = None;
        first
            .iter_days()
            .take_while(move |date| *date <= last)
            .flat_map(|date| self.open_on(date))
            .filter_map(move |(open, close)| {
                let open = closed.map_or(open, |c| open.max(c));
                closed = Some(closed.map_or(close, |c| c.max(close)));
                (open < close).then_some((open, close))
            })
    }

    /// Whether `at` falls in working time.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let date = at.with_timezone(&self.zone).date_naive();
        [date - Duration::days(1), date]
            .into_iter()
            .flat_map(|d| self.open_on(d))
            .any(|(open, close)| open <= at && at < close)
    }

    /// The day's open periods as instants, in order; none on a holiday. A period's wall-clock
    /// ends are placed where time really is: a start in a spring-forward gap opens when the gap
    /// ends, an end in it closes there too; in a fall-back overlap a period starts at the first
    /// of the repeated times and ends at the second, so it lasts as long as it really does.
    fn open_on(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let weekday = date.weekday().num_days_from_monday() as usize;
        self.week[weekday]
            .iter()
            .filter_map(|period| {
                let open = self.instant(date, period.start, Edge::Start)?;
                let close = self.instant(date, period.end, Edge::End)?;
                (open < close).then_some((open, close))
            })
            .collect()
    }

    fn instant(&self, date: NaiveDate, minute: u16, edge: Edge) -> Option<DateTime<Utc>> {
        let (date, minute) = if minute >= DAY_END {
            (date.succ_opt()?, minute - DAY_END)
        } else {
            (date, minute)
        };
        let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
        let local = date.and_time(time);
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(at) => Some(at.to_utc()),
            LocalResult::Ambiguous(earlier, later) => Some(match edge {
                Edge::Start => earlier.to_utc(),
                Edge::End => later.to_utc(),
            }),
            // In a gap: the first wall-clock minute after it (gaps are at most a few hours).
            LocalResult::None => (1..=24 * 60).find_map(|step| {
                self.zone
                    .from_local_datetime(&(local + Duration::minutes(step)))
                    .earliest()
                    .map(|at| at.to_utc())
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Edge {
    Start,
    End,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Warsaw;

    fn p(start: &str, end: &str) -> Period {
        let minutes = |hm: &str| {
            let (h, m) = hm.split_once(':').unwrap();
            h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap()
        };
        Period {
            start: minutes(start),
            end: minutes(end),
        }
    }

    /// Monday to Friday 09:00–12:00 and 12:30–17:00 in Warsaw (a lunch break), with holidays.
    fn office(holidays: &[NaiveDate]) -> Calendar {
        let day = vec![p("09:00", "12:00"), p("12:30", "17:00")];
        let week = std::array::from_fn(|i| if i < 5 { day.clone() } else { Vec::new() });
        Calendar::new(Warsaw, week, holidays.iter().copied()).unwrap()
    }

    /// A wall-clock time in Warsaw.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Warsaw
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .to_utc()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn minutes_run_in_working_hours_around_breaks_nights_and_weekends() {
        let cal = office(&[]);
        // Friday 2026-11-27, 16:00 + 2 h: one hour on Friday, one on Monday.
        assert_eq!(
            cal.add(at(2026, 11, 27, 16, 0), Duration::minutes(120)),
            Some(at(2026, 11, 30, 10, 0))
        );
        // Across the lunch break.
        assert_eq!(
            cal.add(at(2026, 11, 30, 11, 30), Duration::minutes(60)),
            Some(at(2026, 11, 30, 13, 0))
        );
        // Starting in the break or at night waits for the opening.
        assert_eq!(
            cal.add(at(2026, 11, 30, 12, 10), Duration::minutes(10)),
            Some(at(2026, 11, 30, 12, 40))
        );
        assert_eq!(
            cal.add(at(2026, 11, 28, 3, 0), Duration::minutes(0)),
            Some(at(2026, 11, 30, 9, 0))
        );
        // Ending exactly at closing time ends there, not at the next opening.
        assert_eq!(
            cal.add(at(2026, 11, 30, 16, 0), Duration::minutes(60)),
            Some(at(2026, 11, 30, 17, 0))
        );
        assert_eq!(
            cal.between(at(2026, 11, 27, 16, 0), at(2026, 11, 30, 10, 0)),
            Duration::minutes(120)
        );
        assert!(!cal.is_open(at(2026, 11, 30, 12, 29)));
        assert!(cal.is_open(at(2026, 11, 30, 12, 30)));
    }

    #[test]
    fn holidays_are_not_worked() {
        // Wednesday 11 November 2026 is Independence Day.
        let cal = office(&[date(2026, 11, 11)]);
        assert_eq!(
            cal.add(at(2026, 11, 10, 16, 30), Duration::minutes(60)),
            Some(at(2026, 11, 12, 9, 30))
        );
        assert_eq!(
            cal.between(at(2026, 11, 10, 0, 0), at(2026, 11, 13, 0, 0)),
            Duration::minutes(2 * 450)
        );
    }

    #[test]
    fn a_round_the_clock_calendar_has_no_gap_at_midnight() {
        let cal = Calendar::always(Warsaw);
        assert_eq!(
            cal.add(at(2026, 11, 30, 23, 59), Duration::minutes(2)),
            Some(at(2026, 12, 1, 0, 1))
        );
        assert!(cal.is_open(at(2026, 12, 1, 0, 0)));
        assert_eq!(
            cal.between(at(2026, 11, 30, 23, 59), at(2026, 12, 1, 0, 1)),
            Duration::minutes(2)
        );
        // A day ending at 24:00 and the next beginning at 00:00 in a weekly calendar likewise.
        let mut week: [Vec<Period>; 7] = Default::default();
        week[0] = vec![p("20:00", "24:00")];
        week[1] = vec![p("00:00", "04:00")];
        let night = Calendar::new(Warsaw, week, []).unwrap();
        assert_eq!(
            night.add(at(2026, 11, 30, 23, 30), Duration::minutes(60)),
            Some(at(2026, 12, 1, 0, 30))
        );
    }

    #[test]
    fn time_counts_as_it_passes_across_dst_changes() {
        let cal = Calendar::always(Warsaw);
        // Spring forward, Sunday 29 March 2026, 02:00 → 03:00: four real hours from 23:00.
        assert_eq!(
            cal.add(at(2026, 3, 28, 23, 0), Duration::minutes(240)),
            Some(at(2026, 3, 29, 4, 0))
        );
        assert_eq!(
            cal.between(at(2026, 3, 29, 0, 0), at(2026, 3, 30, 0, 0)),
            Duration::hours(23)
        );
        // Fall back, Sunday 25 October 2026, 03:00 → 02:00: that day has 25 hours.
        assert_eq!(
            cal.between(at(2026, 10, 25, 0, 0), at(2026, 10, 26, 0, 0)),
            Duration::hours(25)
        );
        // An office day is unmoved: its hours are wall-clock hours.
        let office = office(&[]);
        assert_eq!(
            office.between(at(2026, 3, 27, 0, 0), at(2026, 3, 31, 0, 0)),
            Duration::minutes(2 * 450)
        );
        // A night shift across the spring-forward gap works the hours that exist.
        let mut week: [Vec<Period>; 7] = Default::default();
        week[6] = vec![p("01:00", "05:00")];
        let night = Calendar::new(Warsaw, week, []).unwrap();
        assert_eq!(
            night.between(at(2026, 3, 29, 0, 0), at(2026, 3, 30, 0, 0)),
            Duration::hours(3)
        );
        // And the repeated hour in autumn.
        assert_eq!(
            night.between(at(2026, 10, 25, 0, 0), at(2026, 10, 26, 0, 0)),
            Duration::hours(5)
        );
    }

    #[test]
    fn a_repeated_autumn_hour_is_worked_once() {
        // Warsaw, 25 October 2026: 02:00–03:00 comes twice. Periods meeting at 02:30 overlap
        // in real time; the overlap counts once: 6 real hours pass between 01:00 and 06:00.
        let mut week: [Vec<Period>; 7] = Default::default();
        week[6] = vec![p("01:00", "02:30"), p("02:30", "06:00")];
        let night = Calendar::new(Warsaw, week, []).unwrap();
        assert_eq!(
            night.between(at(2026, 10, 25, 0, 0), at(2026, 10, 26, 0, 0)),
            Duration::hours(6)
        );
        // Havana goes back from 01:00 to 00:00 at midnight on 1 November 2026: a day open round
        // the clock there has 25 hours, and adding never goes back in time.
        let havana = Calendar::always(chrono_tz::America::Havana);
        let start = chrono_tz::America::Havana
            .with_ymd_and_hms(2026, 10, 31, 23, 30, 0)
            .single()
            .unwrap()
            .to_utc();
        let ends: Vec<DateTime<Utc>> = [60, 100, 120]
            .iter()
            .map(|m| havana.add(start, Duration::minutes(*m)).unwrap())
            .collect();
        assert_eq!(ends[0] - start, Duration::minutes(60));
        assert_eq!(ends[1] - start, Duration::minutes(100));
        assert_eq!(ends[2] - start, Duration::minutes(120));
    }

    #[test]
    fn adding_and_measuring_agree() {
        let cal = office(&[date(2026, 12, 24), date(2026, 12, 25)]);
        let mut start = at(2026, 12, 1, 8, 17);
        for minutes in [0_i64, 1, 59, 450, 451, 2_000, 10_000] {
            let end = cal.add(start, Duration::minutes(minutes)).unwrap();
            assert_eq!(
                cal.between(start, end),
                Duration::minutes(minutes),
                "{minutes}"
            );
            start += Duration::minutes(97);
        }
    }

    #[test]
    fn bad_calendars_are_refused() {
        let mut week: [Vec<Period>; 7] = Default::default();
        week[2] = vec![p("10:00", "09:00")];
        assert!(matches!(
            Calendar::new(Warsaw, week, []),
            Err(CalendarError::BadPeriod { weekday: 2, .. })
        ));
        let mut week: [Vec<Period>; 7] = Default::default();
        week[0] = vec![p("09:00", "13:00"), p("12:00", "17:00")];
        assert!(matches!(
            Calendar::new(Warsaw, week, []),
            Err(CalendarError::Overlap { weekday: 0 })
        ));
        assert!(matches!(
            Calendar::new(Warsaw, Default::default(), []),
            Err(CalendarError::NeverOpen)
        ));
        // Open only on a day that is always a holiday: no time within the horizon.
        let mut week: [Vec<Period>; 7] = Default::default();
        week[0] = vec![p("09:00", "10:00")];
        let mondays = date(2026, 11, 30)
            .iter_weeks()
            .take(200)
            .collect::<Vec<_>>();
        let closed = Calendar::new(Warsaw, week, mondays).unwrap();
        assert_eq!(
            closed.add(at(2026, 11, 30, 9, 0), Duration::minutes(10_000)),
            None
        );
    }
}
