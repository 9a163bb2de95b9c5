//! The interactions service's rules, free of I/O: its vocabularies (each stored as text and named
//! by a proto enum, declared once), and what a contact's participants, links and attachments must
//! be, in the form they are stored (jsonb).

pub mod email;
pub mod occasions;

use crm_kit::{error::FieldViolations, request::uuid};
use crm_proto::crm::interactions::v1 as proto;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

crm_kit::text_enum! {
    /// How the information flowed.
    pub enum Channel: proto::Channel {
        PhoneCall = "phone_call",
        Email = "email",
        Fax = "fax",
        Meeting = "meeting",
        Chat = "chat",
        WebForm = "web_form",
        Sms = "sms",
        Social = "social",
        Letter = "letter",
    }
}

crm_kit::text_enum! {
    /// From the client to us, or from us to the client.
    pub enum Direction: proto::Direction {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}

crm_kit::text_enum! {
    pub enum ParticipantKind: proto::ParticipantKind {
        Party = "party",
        Person = "person",
        Operator = "operator",
        External = "external",
    }
}

crm_kit::text_enum! {
    pub enum ParticipantRole: proto::ParticipantRole {
        From = "from",
        To = "to",
        Cc = "cc",
        Attendee = "attendee",
    }
}

crm_kit::text_enum! {
    pub enum LinkKind: proto::LinkKind {
        Case = "case",
        Offer = "offer",
        Ticket = "ticket",
        Order = "order",
        Document = "document",
        Contract = "contract",
    }
}

crm_kit::text_enum! {
    pub enum TaskPriority: proto::TaskPriority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

crm_kit::text_enum! {
    /// Open → in progress → done, or cancelled; done and cancelled are final.
    pub enum TaskStatus: proto::TaskStatus {
        Open = "open",
        InProgress = "in_progress",
        Done = "done",
        Cancelled = "cancelled",
    }
}

crm_kit::text_enum! {
    /// What a timeline item is: the suite's own, or a fact another service published.
    pub enum TimelineKind: proto::TimelineKind {
        Interaction = "interaction",
        Note = "note",
        Task = "task",
        Points = "points",
        Tier = "tier",
        Membership = "membership",
        Consent = "consent",
        RewardOrder = "reward_order",
        Offer = "offer",
        Case = "case",
        Ticket = "ticket",
    }
}

crm_kit::text_enum! {
    /// How a mailbox connection is protected.
    pub enum MailboxSecurity: proto::MailboxSecurity {
        Tls = "tls",
        Starttls = "starttls",
        None = "none",
    }
}

crm_kit::text_enum! {
    pub enum MailboxStatus: proto::MailboxStatus {
        Active = "active",
        Failing = "failing",
        Disconnected = "disconnected",
    }
}

impl TaskStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }
}

/// A participant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub kind: String,
    #[serde(default)]
    pub id: String,
    pub role: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub display_name: String,
}

impl Participant {
    /// The party or person of the parties service it is, if it is one.
    pub fn client(&self) -> Option<(ParticipantKind, Uuid)> {
        let kind = ParticipantKind::parse(&self.kind)?;
        let is_client = matches!(kind, ParticipantKind::Party | ParticipantKind::Person);
        is_client.then(|| self.id.parse().ok().map(|id| (kind, id)))?
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub kind: String,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub size_bytes: i64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub reference: String,
    /// The service keeps the content (in `attachment_contents`, by position).
    #[serde(default)]
    pub stored: bool,
}

/// The participants, checked: parties and persons by UUID, operators by subject, external ones by
/// address; at least one party or person, each at most once per role.
pub fn participants(list: &[proto::Participant], v: &mut FieldViolations) -> Vec<Participant> {
    let mut parsed: Vec<Participant> = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let field = format!("interaction.participants[{i}]");
        let kind = ParticipantKind::require(p.kind, &format!("{field}.kind"), v);
        let role = ParticipantRole::require(p.role, &format!("{field}.role"), v);
        let id = match kind {
            ParticipantKind::Party | ParticipantKind::Person => {
                uuid(&p.id, &format!("{field}.id"), v).to_string()
            }
            ParticipantKind::Operator => {
                v.check(
                    !p.id.trim().is_empty(),
                    format!("{field}.id"),
                    "names the operator",
                );
                p.id.trim().to_owned()
            }
            ParticipantKind::External => {
                v.check(
                    !p.address.trim().is_empty(),
                    format!("{field}.address"),
                    "someone outside is known by an address",
                );
                String::new()
            }
        };
        let participant = Participant {
            kind: kind.as_str().to_owned(),
            id,
            role: role.as_str().to_owned(),
            address: p.address.trim().to_owned(),
            display_name: p.display_name.trim().to_owned(),
        };
        if parsed.contains(&participant) {
            v.add(field, "appears twice");
        }
        parsed.push(participant);
    }
    v.check(
        parsed.iter().any(|p| p.client().is_some()),
        "interaction.participants",
        "names at least one party or person the contact was with",
    );
    parsed
}

pub fn participants_to_proto(list: &[Participant]) -> Vec<proto::Participant> {
    list.iter()
        .map(|p| proto::Participant {
            kind: ParticipantKind::parse(&p.kind).map_or(0, |k| k.to_proto() as i32),
            id: p.id.clone(),
            role: ParticipantRole::parse(&p.role).map_or(0, |r| r.to_proto() as i32),
            address: p.address.clone(),
            display_name: p.display_name.clone(),
        })
        .collect()
}

pub fn links(list: &[proto::Link], v: &mut FieldViolations) -> Vec<Link> {
    list.iter()
        .enumerate()
        .map(|(i, l)| {
            let field = format!("interaction.links[{i}]");
            let kind = LinkKind::require(l.kind, &format!("{field}.kind"), v);
            let reference = l.reference.trim();
            v.check(
                !reference.is_empty(),
                format!("{field}.reference"),
                "is required",
            );
            Link {
                kind: kind.as_str().to_owned(),
                reference: reference.to_owned(),
            }
        })
        .collect()
}

pub fn links_to_proto(list: &[Link]) -> Vec<proto::Link> {
    list.iter()
        .map(|l| proto::Link {
            kind: LinkKind::parse(&l.kind).map_or(0, |k| k.to_proto() as i32),
            reference: l.reference.clone(),
        })
        .collect()
}

pub fn attachments(list: &[proto::Attachment], v: &mut FieldViolations) -> Vec<Attachment> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("interaction.attachments[{i}]");
            v.check(
                !a.name.trim().is_empty(),
                format!("{field}.name"),
                "is required",
            );
            v.check(
                a.size_bytes >= 0,
                format!("{field}.size_bytes"),
                "must not be negative",
            );
            let hash = a.sha256.trim().to_ascii_lowercase();
            v.check(
                hash.is_empty()
                    || (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
                format!("{field}.sha256"),
                "is 64 hexadecimal digits",
            );
            Attachment {
                name: a.name.trim().to_owned(),
                content_type: a.content_type.trim().to_owned(),
                size_bytes: a.size_bytes,
                sha256: hash,
                reference: a.reference.trim().to_owned(),
                stored: false,
            }
        })
        .collect()
}

pub fn attachments_to_proto(list: &[Attachment]) -> Vec<proto::Attachment> {
    list.iter()
        .map(|a| proto::Attachment {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size_bytes: a.size_bytes,
            sha256: a.sha256.clone(),
            reference: a.reference.clone(),
            content_stored: a.stored,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(id: &str, role: proto::ParticipantRole) -> proto::Participant {
        proto::Participant {
            kind: proto::ParticipantKind::Party as i32,
            id: id.into(),
            role: role as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_contact_is_with_at_least_one_client_each_once() {
        let id = Uuid::now_v7().to_string();
        let mut v = FieldViolations::new();
        let parsed = participants(&[party(&id, proto::ParticipantRole::To)], &mut v);
        assert!(v.finish().is_ok());
        assert_eq!(
            parsed[0].client().map(|(_, c)| c.to_string()),
            Some(id.clone())
        );

        let operator = proto::Participant {
            kind: proto::ParticipantKind::Operator as i32,
            id: "jan.operator".into(),
            role: proto::ParticipantRole::From as i32,
            ..Default::default()
        };
        let mut v = FieldViolations::new();
        participants(&[operator], &mut v);
        let fields: Vec<&str> = v.fields().collect();
        assert_eq!(fields, ["interaction.participants"]);

        let mut v = FieldViolations::new();
        let twice = [
            party(&id, proto::ParticipantRole::To),
            party(&id, proto::ParticipantRole::To),
        ];
        participants(&twice, &mut v);
        let fields: Vec<&str> = v.fields().collect();
        assert_eq!(fields, ["interaction.participants[1]"]);
    }

    #[test]
    fn attachments_name_themselves_and_hash_in_hex() {
        let mut v = FieldViolations::new();
        let bad = proto::Attachment {
            name: " ".into(),
            size_bytes: -1,
            sha256: "xyz".into(),
            ..Default::default()
        };
        attachments(&[bad], &mut v);
        assert_eq!(v.fields().count(), 3);
    }
}
