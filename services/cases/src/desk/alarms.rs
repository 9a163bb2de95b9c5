//! SLA alarms: when a ticket's clock comes near its target or passes it, an `SlaAlarm` is
//! written once, in the transaction that finds it, with the policy's escalations for that clock
//! and level carried out (a reassignment moves the ticket to the group it names). A sweep finds
//! those that fall due while nothing happens to the ticket; a call that meets a clock late finds
//! its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_kit::{error::Result, request::timestamp, shutdown::Shutdown, store::Tx};
use crm_proto::crm::cases::v1::SlaAlarm;

use crate::{
    Cases, convert,
    domain::{alarms::Action, calendar::Calendar},
    events,
    store::desk::{self as store, PolicyRow, TicketRow},
};

/// The share of a target after which a clock is near its breach.
pub fn near_share(policy: &PolicyRow) -> f64 {
    f64::from(policy.near_breach_percent) / 100.0
}

/// Raises the alarms of `ticket` due by `now` (marking them in its clocks), carries out the
/// escalations, and sets when the next one falls due. The caller writes the ticket.
pub async fn raise(
    tx: &mut Tx,
    ticket: &mut TicketRow,
    policy: &PolicyRow,
    calendar: &Calendar,
    now: DateTime<Utc>,
) -> Result<()> {
    let share = near_share(policy);
    for alarm in ticket.clocks.take_alarms(now, calendar, share) {
        let escalations: Vec<_> = policy
            .escalations
            .iter()
            .filter(|e| e.clock == alarm.kind.as_str() && e.level == alarm.level.as_str())
            .collect();
        for escalation in &escalations {
            if escalation.action == Action::Reassign.as_str() {
                ticket.group = escalation.to.clone();
            }
        }
        let event = SlaAlarm {
            ticket_id: ticket.id.to_string(),
            sla_policy_id: policy.id.to_string(),
            clock: alarm.kind.to_proto() as i32,
            level: alarm.level.to_proto() as i32,
            due_time: alarm.due.map(timestamp),
            alarm_time: Some(timestamp(now)),
            escalations: escalations.iter().map(|e| convert::escalation(e)).collect(),
            owner: ticket.owner.clone(),
            group: ticket.group.clone(),
        };
        events::sla_alarm(tx, &event).await?;
    }
    settle(ticket, policy, calendar, now);
    Ok(())
}

/// The ticket's derived times: its next alarm, its earliest due, whether it is breached.
pub fn settle(ticket: &mut TicketRow, policy: &PolicyRow, calendar: &Calendar, now: DateTime<Utc>) {
    ticket.next_alarm_at = ticket.clocks.next_alarm(calendar, near_share(policy));
    ticket.due_at = ticket.clocks.due(calendar);
    ticket.breached = ticket.clocks.breached(now, calendar);
}

impl Cases {
    /// Raises the alarms that fall due, every few seconds until shutdown.
    pub async fn sweep_alarms(self, shutdown: Shutdown) {
        loop {
            if let Err(error) = self.alarms_due().await {
                tracing::warn!(%error, "raising SLA alarms failed; retrying");
            }
            if !shutdown.sleep(Duration::from_secs(5)).await {
                return;
            }
        }
    }

    /// Raises every alarm due now, a hundred tickets per transaction, until a batch is not full;
    /// how many tickets. A ticket's next alarm always moves past `now` (or away), so no batch is
    /// taken twice.
    pub async fn alarms_due(&self) -> Result<usize> {
        const BATCH: usize = 100;
        let mut seen = 0;
        loop {
            let now = super::now();
            let mut tx = self.pool.begin().await?;
            let due = store::lock_alarming(&mut tx, now, BATCH as i64).await?;
            let full = due.len() == BATCH;
            let policies = self.policies_of(&mut tx, &due).await?;
            for mut ticket in due {
                let policy = ticket.sla_policy_id.and_then(|id| policies.get(&id));
                let calendar = policy.map(|(_, calendar)| calendar);
                let group = ticket.group.clone();
                match policy {
                    Some((policy, calendar)) => {
                        raise(&mut tx, &mut ticket, policy, calendar, now).await?;
                    }
                    None => ticket.next_alarm_at = None,
                }
                if ticket.group == group {
                    // What callers see is unchanged: their etag stays good.
                    store::set_alarms(&mut tx, &ticket).await?;
                } else {
                    store::update_ticket(&mut tx, &ticket, "crm-cases").await?;
                    let reassigned = convert::ticket(&ticket, calendar, now, &[]);
                    events::ticket_changed(&mut tx, &reassigned, "updated").await?;
                }
                seen += 1;
            }
            tx.commit().await?;
            if !full {
                return Ok(seen);
            }
        }
    }
}
