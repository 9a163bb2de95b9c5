//! Birthdays, name days and anniversaries: when each next falls, and how its reminder reads.

use chrono::{Datelike, NaiveDate};

/// Which yearly day it is; stored as text (no proto names it: callers see the tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccasionKind {
    Birthday,
    NameDay,
    Anniversary,
}

impl OccasionKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Birthday => "birthday",
            Self::NameDay => "name_day",
            Self::Anniversary => "anniversary",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Birthday, Self::NameDay, Self::Anniversary]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A yearly day of a person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occasion {
    pub kind: OccasionKind,
    /// What an anniversary celebrates; empty otherwise.
    pub label: String,
    pub month: u32,
    pub day: u32,
}

impl Occasion {
    /// The first day on or after `from` that the occasion falls on. A 29 February falls on the
    /// 28th in other years.
    pub fn next_on(&self, from: NaiveDate) -> NaiveDate {
        let in_year = |year: i32| {
            NaiveDate::from_ymd_opt(year, self.month, self.day)
                .or_else(|| NaiveDate::from_ymd_opt(year, self.month, self.day - 1))
                .expect("a day of the year")
        };
        let this_year = in_year(from.year());
        if this_year >= from {
            this_year
        } else {
            in_year(from.year() + 1)
        }
    }

    /// The reminder task's title, e.g. "Birthday of Anna Kowalska on 19 July".
    pub fn title(&self, name: &str, on: NaiveDate) -> String {
        let what = match self.kind {
            OccasionKind::Birthday => "Birthday".to_owned(),
            OccasionKind::NameDay => "Name day".to_owned(),
            OccasionKind::Anniversary if self.label.is_empty() => "Anniversary".to_owned(),
            OccasionKind::Anniversary => format!("Anniversary ({})", self.label),
        };
        format!("{what} of {name} on {}", on.format("%-d %B"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn birthday(month: u32, day: u32) -> Occasion {
        Occasion {
            kind: OccasionKind::Birthday,
            label: String::new(),
            month,
            day,
        }
    }

    #[test]
    fn an_occasion_falls_next_this_year_or_the_next_and_a_leap_day_on_the_28th() {
        assert_eq!(birthday(7, 19).next_on(date(2026, 7, 1)), date(2026, 7, 19));
        assert_eq!(
            birthday(7, 19).next_on(date(2026, 7, 19)),
            date(2026, 7, 19)
        );
        assert_eq!(
            birthday(7, 19).next_on(date(2026, 7, 20)),
            date(2027, 7, 19)
        );
        assert_eq!(birthday(1, 1).next_on(date(2026, 12, 31)), date(2027, 1, 1));
        assert_eq!(birthday(2, 29).next_on(date(2026, 1, 1)), date(2026, 2, 28));
        assert_eq!(birthday(2, 29).next_on(date(2027, 3, 1)), date(2028, 2, 29));
    }

    #[test]
    fn reminders_say_whose_day_it_is_and_when() {
        let wedding = Occasion {
            kind: OccasionKind::Anniversary,
            label: "wedding".into(),
            month: 6,
            day: 5,
        };
        assert_eq!(
            wedding.title("Anna Kowalska", date(2027, 6, 5)),
            "Anniversary (wedding) of Anna Kowalska on 5 June"
        );
    }
}
