//! The service desk: business calendars, SLA policies in their stated order, and tickets whose
//! SLA clocks run on a policy's calendar (`tickets`), their alarms raised once each (`alarms`).

pub mod alarms;
pub mod tickets;

use std::str::FromStr;

use chrono::Utc;
use chrono_tz::Tz;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, date, required, text, uuid},
    store::{Page, unique_violation},
};
use crm_proto::crm::cases::v1::*;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Cases, convert,
    domain::{
        alarms::{Action, Kind, Level},
        calendar::{self, CalendarError, DAY_END},
    },
    error::Refusal,
    store::desk::{self as store, CalendarRow, ConditionsRow, EscalationRow, PeriodRow, PolicyRow},
};

/// A business minute target's upper bound: a year.
const MAX_MINUTES: i32 = 366 * 24 * 60;

impl Cases {
    pub async fn create_calendar(
        &self,
        caller: &str,
        req: CreateCalendarRequest,
    ) -> Result<Calendar> {
        let mut v = FieldViolations::new();
        let input = required(req.calendar.clone(), "calendar", &mut v);
        let display_name = text(&input.display_name, "calendar.display_name", &mut v);
        let zone = Tz::from_str(input.time_zone.trim()).ok();
        v.check(
            zone.is_some(),
            "calendar.time_zone",
            "must be an IANA time zone such as Europe/Warsaw",
        );
        let mut week: Vec<Vec<PeriodRow>> = vec![Vec::new(); 7];
        let mut seen = [false; 7];
        for (i, day) in input.days.iter().enumerate() {
            let field = format!("calendar.days[{i}]");
            if !(1..=7).contains(&day.weekday) {
                v.add(
                    format!("{field}.weekday"),
                    "must be 1 (Monday) to 7 (Sunday)",
                );
                continue;
            }
            let slot = (day.weekday - 1) as usize;
            if std::mem::replace(&mut seen[slot], true) {
                v.add(format!("{field}.weekday"), "appears twice");
            }
            for (j, period) in day.periods.iter().enumerate() {
                let at = |name: &str| format!("{field}.periods[{j}].{name}");
                let start = minutes(&period.start, &at("start"), &mut v);
                let end = minutes(&period.end, &at("end"), &mut v);
                week[slot].push(PeriodRow { start, end });
            }
        }
        let holidays: Vec<_> = input
            .holidays
            .iter()
            .enumerate()
            .filter_map(|(i, d)| date(Some(d), &format!("calendar.holidays[{i}]"), &mut v))
            .collect();
        if input.always_open {
            v.check(
                input.days.is_empty() && input.holidays.is_empty(),
                "calendar.always_open",
                "a calendar open round the clock has no days or holidays",
            );
        }
        v.finish()?;
        let row = CalendarRow {
            id: Uuid::now_v7(),
            display_name,
            time_zone: input.time_zone.trim().to_owned(),
            week: Json(week),
            holidays,
            always_open: input.always_open,
            created_at: Utc::now(),
            created_by: caller.to_owned(),
        };
        business_time(&row).map_err(|error| {
            let (field, why) = match error {
                CalendarError::BadPeriod { weekday, .. } => (
                    format!("calendar.days[{}].periods", day_index(&input, weekday)),
                    "a period ends after it starts, at 24:00 at the latest",
                ),
                CalendarError::Overlap { weekday } => (
                    format!("calendar.days[{}].periods", day_index(&input, weekday)),
                    "periods overlap",
                ),
                CalendarError::NeverOpen => (
                    "calendar.days".to_owned(),
                    "must hold working time, or set always_open",
                ),
            };
            FieldViolations::single(field, why)
        })?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        store::insert_calendar(&mut tx, &row).await?;
        let calendar = convert::calendar(&row);
        claim.commit(tx, &calendar).await?;
        Ok(calendar)
    }

    pub async fn get_calendar(&self, req: GetCalendarRequest) -> Result<Calendar> {
        let id = request::id(&req.id, "id")?;
        let row = store::calendar(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Calendar", id))?;
        Ok(convert::calendar(&row))
    }

    pub async fn create_sla_policy(
        &self,
        caller: &str,
        req: CreateSlaPolicyRequest,
    ) -> Result<SlaPolicy> {
        let mut v = FieldViolations::new();
        let input = required(req.policy.clone(), "policy", &mut v);
        let conditions = input.conditions.clone().unwrap_or_default();
        let words = |values: &[i32],
                     field: &str,
                     v: &mut FieldViolations,
                     word: fn(i32) -> Option<&'static str>| {
            values
                .iter()
                .enumerate()
                .filter_map(|(i, value)| {
                    let found = word(*value);
                    v.check(
                        found.is_some(),
                        format!("{field}[{i}]"),
                        "is not a value of its enum",
                    );
                    found.map(str::to_owned)
                })
                .collect::<Vec<_>>()
        };
        let conditions = ConditionsRow {
            kinds: words(&conditions.types, "policy.conditions.types", &mut v, |t| {
                crate::domain::tickets::TicketType::from_i32(t).map(|t| t.as_str())
            }),
            priorities: words(
                &conditions.priorities,
                "policy.conditions.priorities",
                &mut v,
                |p| crate::domain::tickets::Priority::from_i32(p).map(|p| p.as_str()),
            ),
            bases: conditions
                .party_base_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    uuid(
                        id,
                        &format!("policy.conditions.party_base_ids[{i}]"),
                        &mut v,
                    )
                    .to_string()
                })
                .collect(),
            tiers: conditions
                .loyalty_tiers
                .iter()
                .map(|t| t.trim().to_owned())
                .collect(),
        };
        let target = |value: i32, field: &str, v: &mut FieldViolations| {
            v.check(
                (1..=MAX_MINUTES).contains(&value),
                field,
                "must be 1 to 527040 business minutes",
            );
            value
        };
        let near = match input.near_breach_percent {
            0 => 80,
            percent => {
                v.check(
                    (1..=99).contains(&percent),
                    "policy.near_breach_percent",
                    "must be 1 to 99",
                );
                percent
            }
        };
        let escalations = input
            .escalations
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let field = |name: &str| format!("policy.escalations[{i}].{name}");
                let clock = Kind::require(e.clock, &field("clock"), &mut v);
                let level = Level::require(e.level, &field("level"), &mut v);
                let action = Action::require(e.action, &field("action"), &mut v);
                EscalationRow {
                    clock: clock.as_str().to_owned(),
                    level: level.as_str().to_owned(),
                    action: action.as_str().to_owned(),
                    to: text(&e.to, &field("to"), &mut v),
                }
            })
            .collect();
        v.check(
            input.rank >= 1,
            "policy.rank",
            "is required: 1 or more, the policy's place in the stated order (lowest first)",
        );
        let row = PolicyRow {
            id: Uuid::now_v7(),
            display_name: text(&input.display_name, "policy.display_name", &mut v),
            rank: input.rank,
            is_default: conditions == ConditionsRow::default(),
            conditions: Json(conditions),
            calendar_id: uuid(&input.calendar_id, "policy.calendar_id", &mut v),
            first_response_minutes: target(
                input.first_response_minutes,
                "policy.first_response_minutes",
                &mut v,
            ),
            next_update_minutes: target(
                input.next_update_minutes,
                "policy.next_update_minutes",
                &mut v,
            ),
            resolution_minutes: target(
                input.resolution_minutes,
                "policy.resolution_minutes",
                &mut v,
            ),
            near_breach_percent: near,
            escalations: Json(escalations),
            created_at: Utc::now(),
            created_by: caller.to_owned(),
        };
        v.finish()?;
        let calendar = store::calendar(&mut *self.pool.acquire().await?, row.calendar_id)
            .await?
            .ok_or_else(|| FieldViolations::single("policy.calendar_id", "is not a calendar"))?;
        reachable(&row, &calendar)?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        if let Err(error) = store::insert_policy(&mut tx, &row).await {
            return Err(match unique_violation(&error) {
                Some("sla_policies_one_default") => Refusal::DefaultPolicyExists.into(),
                Some(_) => Refusal::RankTaken { rank: row.rank }.into(),
                None => error.into(),
            });
        }
        let policy = convert::policy(&row);
        claim.commit(tx, &policy).await?;
        Ok(policy)
    }

    pub async fn list_sla_policies(
        &self,
        req: ListSlaPoliciesRequest,
    ) -> Result<ListSlaPoliciesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<i32> = Page::new(req.page_size, &req.page_token, &(), &mut v);
        v.finish()?;
        let mut rows =
            store::policies(&mut *self.pool.acquire().await?, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.rank);
        Ok(ListSlaPoliciesResponse {
            policies: rows.iter().map(convert::policy).collect(),
            next_page_token,
        })
    }
}

/// Every target must end within the calendar's reach (three years of its working time), or its
/// clock would never be due.
fn reachable(policy: &PolicyRow, calendar: &CalendarRow) -> Result<()> {
    let calendar = business_time(calendar)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a stored calendar: {e:?}")))?;
    let mut v = FieldViolations::new();
    for (field, minutes) in [
        (
            "policy.first_response_minutes",
            policy.first_response_minutes,
        ),
        ("policy.next_update_minutes", policy.next_update_minutes),
        ("policy.resolution_minutes", policy.resolution_minutes),
    ] {
        let target = chrono::Duration::minutes(i64::from(minutes));
        v.check(
            calendar.add(Utc::now(), target).is_some(),
            field,
            "is more business time than the calendar has in three years",
        );
    }
    Ok(v.finish()?)
}

/// The moment, to the microsecond PostgreSQL keeps: a clock's times read the same from the
/// ticket's clocks and from its columns.
pub(crate) fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// The calendar a stored one describes.
pub(crate) fn business_time(row: &CalendarRow) -> Result<calendar::Calendar, CalendarError> {
    let zone = Tz::from_str(&row.time_zone).unwrap_or(chrono_tz::UTC);
    if row.always_open {
        return Ok(calendar::Calendar::always(zone));
    }
    let week: [Vec<calendar::Period>; 7] = std::array::from_fn(|d| {
        row.week
            .get(d)
            .map_or_else(Vec::new, |day| day.iter().map(|p| (*p).into()).collect())
    });
    calendar::Calendar::new(zone, week, row.holidays.iter().copied())
}

/// "HH:MM" as minutes after midnight; "24:00" is the day's end.
fn minutes(value: &str, field: &str, v: &mut FieldViolations) -> u16 {
    let parsed = value.trim().split_once(':').and_then(|(h, m)| {
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (m < 60 && h * 60 + m <= DAY_END).then_some(h * 60 + m)
    });
    v.check(
        parsed.is_some(),
        field,
        "must be a time HH:MM from 00:00 to 24:00",
    );
    parsed.unwrap_or_default()
}

/// Where in the request the weekday (0 for Monday) was given.
fn day_index(input: &Calendar, weekday: usize) -> usize {
    input
        .days
        .iter()
        .position(|d| d.weekday == weekday as i32 + 1)
        .unwrap_or_default()
}
