//! A ticket's life: new → open → waiting for the customer or a third party → resolved → closed,
//! reopened by a customer's reply; what each step means to its SLA clocks; and which SLA policy
//! a ticket gets: the first, in the stated order, whose conditions it meets, else the default.

use super::{proto, sla::Happening};

crm_kit::text_enum! {
    pub enum Status: proto::TicketStatus {
        New = "new",
        Open = "open",
        WaitingForCustomer = "waiting_for_customer",
        WaitingForThirdParty = "waiting_for_third_party",
        Resolved = "resolved",
        Closed = "closed",
    }
}

crm_kit::text_enum! {
    pub enum TicketType: proto::TicketType {
        Complaint = "complaint",
        Return = "return",
        Question = "question",
        Incident = "incident",
    }
}

crm_kit::text_enum! {
    pub enum Priority: proto::TicketPriority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

crm_kit::text_enum! {
    pub enum Channel: proto::TicketChannel {
        Email = "email",
        Phone = "phone",
        Web = "web",
        Chat = "chat",
        InPerson = "in_person",
    }
}

/// What is done to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An agent answers the customer (public).
    Respond,
    /// The customer writes.
    CustomerReply,
    WaitForCustomer,
    WaitForThirdParty,
    Resolve,
    /// By an agent; a customer's reply reopens by itself.
    Reopen,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub from: Status,
    pub step: Step,
}

/// The status after `step`, and what the clocks hear of it.
pub fn step(from: Status, step: Step) -> Result<(Status, Happening), Refused> {
    use Status::*;
    let refused = Err(Refused { from, step });
    match (from, step) {
        (Closed, _) => refused,
        (Resolved, Step::Respond | Step::WaitForCustomer | Step::WaitForThirdParty) => refused,
        (Resolved, Step::Resolve)
        | (New | Open | WaitingForCustomer | WaitingForThirdParty, Step::Reopen | Step::Close) => {
            refused
        }
        (_, Step::Respond) => Ok((Open, Happening::Responded)),
        (Resolved, Step::CustomerReply | Step::Reopen) => Ok((Open, Happening::Reopened)),
        (_, Step::CustomerReply) => Ok((Open, Happening::CustomerReplied)),
        (_, Step::WaitForCustomer) => Ok((WaitingForCustomer, Happening::WaitingForCustomer)),
        (_, Step::WaitForThirdParty) => Ok((WaitingForThirdParty, Happening::WaitingForThirdParty)),
        (_, Step::Resolve) => Ok((Resolved, Happening::Resolved)),
        (Resolved, Step::Close) => Ok((Closed, Happening::Resolved)),
    }
}

/// What a policy's conditions are checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub kind: String,
    pub priority: String,
    /// The party's bases (segments).
    pub bases: Vec<String>,
    pub tier: String,
}

/// A policy's conditions: each given one must hold (an empty list matches anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub kinds: Vec<String>,
    pub priorities: Vec<String>,
    pub bases: Vec<String>,
    pub tiers: Vec<String>,
}

impl Conditions {
    pub fn hold(&self, facts: &Facts) -> bool {
        let one_of =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        one_of(&self.kinds, &facts.kind)
            && one_of(&self.priorities, &facts.priority)
            && one_of(&self.tiers, &facts.tier)
            && (self.bases.is_empty() || self.bases.iter().any(|b| facts.bases.contains(b)))
    }
}

/// The index of the first of `policies` (in their stated order) whose conditions hold, else of
/// the default, the one without conditions; `None` when there is neither.
pub fn choose(policies: &[Conditions], facts: &Facts) -> Option<usize> {
    policies
        .iter()
        .position(|c| *c != Conditions::default() && c.hold(facts))
        .or_else(|| policies.iter().position(|c| *c == Conditions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_goes_its_way_and_its_clocks_hear_of_each_step() {
        use Status::*;
        assert_eq!(step(New, Step::Respond), Ok((Open, Happening::Responded)));
        assert_eq!(
            step(Open, Step::WaitForCustomer),
            Ok((WaitingForCustomer, Happening::WaitingForCustomer))
        );
        assert_eq!(
            step(WaitingForCustomer, Step::CustomerReply),
            Ok((Open, Happening::CustomerReplied))
        );
        assert_eq!(
            step(Open, Step::Resolve),
            Ok((Resolved, Happening::Resolved))
        );
        // A customer's reply to a resolved ticket reopens it.
        assert_eq!(
            step(Resolved, Step::CustomerReply),
            Ok((Open, Happening::Reopened))
        );
        assert_eq!(step(Resolved, Step::Close).map(|s| s.0), Ok(Closed));
        for refused in [
            (Closed, Step::CustomerReply),
            (Closed, Step::Reopen),
            (Open, Step::Reopen),
            (Open, Step::Close),
            (Resolved, Step::Resolve),
            (Resolved, Step::Respond),
        ] {
            assert!(step(refused.0, refused.1).is_err(), "{refused:?}");
        }
    }

    fn list(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn the_first_policy_that_fits_wins_else_the_default() {
        let policies = [
            Conditions {
                tiers: list(&["gold"]),
                kinds: list(&["complaint", "return"]),
                ..Default::default()
            },
            Conditions {
                priorities: list(&["urgent"]),
                ..Default::default()
            },
            Conditions::default(),
            Conditions {
                bases: list(&["b2b"]),
                ..Default::default()
            },
        ];
        let gold_complaint = Facts {
            kind: "complaint".into(),
            priority: "urgent".into(),
            tier: "gold".into(),
            ..Default::default()
        };
        assert_eq!(choose(&policies, &gold_complaint), Some(0), "stated order");
        let urgent = Facts {
            priority: "urgent".into(),
            ..gold_complaint.clone()
        };
        assert_eq!(
            choose(
                &policies,
                &Facts {
                    tier: String::new(),
                    ..urgent
                }
            ),
            Some(1)
        );
        // The default sits third but is only taken when nothing else fits.
        let b2b = Facts {
            bases: list(&["b2b", "north"]),
            ..Default::default()
        };
        assert_eq!(choose(&policies, &b2b), Some(3));
        assert_eq!(choose(&policies, &Facts::default()), Some(2));
        assert_eq!(choose(&policies[..2], &Facts::default()), None);
    }
}
