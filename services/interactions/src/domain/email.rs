//! An e-mail as the contact history keeps it: read from raw RFC 5322 bytes by `mail-parser`
//! (fuzzed upstream; RFC 2047/2231 and the charsets mail arrives in), then made safe to store
//! whatever the sender put in it, and the keys that thread and deduplicate it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use super::ParticipantRole;

/// The longest subject, body, address and name kept; a longer one is cut (the message is still
/// the client's contact, and the raw bytes stay with whoever sent them).
const MAX_SUBJECT_CHARS: usize = 1000;
const MAX_BODY_CHARS: usize = 100_000;
const MAX_NAME_CHARS: usize = 200;
/// The API's own limit for an address, so an imported contact can be sent back as it is.
const MAX_ADDRESS_CHARS: usize = 300;
/// The most addresses kept from From, To and Cc together (an interaction's participant limit).
pub const MAX_ADDRESSES: usize = 200;
/// The most attachments described.
const MAX_ATTACHMENTS: usize = 100;
/// The most References followed when threading (the latest ones), and the most In-Reply-To ids.
const MAX_REFERENCES: usize = 100;
const MAX_REPLIES: usize = 5;

/// A message read and cleaned, ready to become an interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The normalised Message-ID, or `sha256:<hex of the raw bytes>` for a message without one,
    /// so that the same bytes are still recognised.
    pub message_id: String,
    /// The normalised ids the message replies to (In-Reply-To) and follows (References, oldest
    /// first).
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub body: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub addresses: Vec<Mailbox>,
    pub attachments: Vec<EmailAttachment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    /// Lower case: e-mail addresses are matched without regard to case.
    pub address: String,
    pub name: String,
    pub role: ParticipantRole,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailAttachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// Reads `raw`; the error says why it is not an e-mail this service can keep.
pub fn parse(raw: &[u8]) -> Result<Email, &'static str> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty");
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or("is not an RFC 5322 message")?;
    let mut addresses: Vec<Mailbox> = Vec::new();
    let mut kept: HashSet<(String, ParticipantRole)> = HashSet::new();
    for (role, list) in [
        (ParticipantRole::From, message.from()),
        (ParticipantRole::To, message.to()),
        (ParticipantRole::Cc, message.cc()),
    ] {
        for mailbox in mailboxes(list, role) {
            if addresses.len() == MAX_ADDRESSES {
                break;
            }
            if kept.insert((mailbox.address.clone(), role)) {
                addresses.push(mailbox);
            }
        }
    }
    if !addresses.iter().any(|m| m.role == ParticipantRole::From) {
        return Err("has no sender: a From header with an address is required");
    }
    let message_id = message
        .header_raw("Message-ID")
        .and_then(|raw| message_ids(raw, 1).into_iter().next())
        .unwrap_or_else(|| format!("sha256:{}", hex(&Sha256::digest(raw))));
    let in_reply_to = message
        .header_raw("In-Reply-To")
        .map(|raw| message_ids(raw, MAX_REPLIES))
        .unwrap_or_default();
    let references = message
        .header_raw("References")
        .map(|raw| latest_message_ids(raw, MAX_REFERENCES))
        .unwrap_or_default();
    let sent_at = message
        .date()
        .filter(|date| date.is_valid())
        .and_then(|date| DateTime::from_timestamp(date.to_timestamp(), 0));
    let body = message
        .body_text(0)
        .map(|text| clean(&text, MAX_BODY_CHARS, true))
        .unwrap_or_default();
    let attachments = message
        .attachments()
        .take(MAX_ATTACHMENTS)
        .map(|part| EmailAttachment {
            name: file_name(part.attachment_name().unwrap_or("")),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .map(|ct| clean(&ct.to_ascii_lowercase(), 255, false))
                .unwrap_or_default(),
            content: part.contents().to_vec(),
        })
        .collect();
    Ok(Email {
        message_id,
        in_reply_to,
        references,
        subject: clean(message.subject().unwrap_or(""), MAX_SUBJECT_CHARS, false),
        body,
        sent_at,
        addresses,
        attachments,
    })
}

fn mailboxes(list: Option<&Address<'_>>, role: ParticipantRole) -> Vec<Mailbox> {
    let Some(list) = list else { return Vec::new() };
    // More than could be kept is not worth cleaning.
    list.iter()
        .take(MAX_ADDRESSES)
        .filter_map(|addr| {
            let address = clean(addr.address()?, MAX_ADDRESS_CHARS, false).to_lowercase();
            let (local, domain) = address.split_once('@')?;
            let plausible =
                !local.is_empty() && !domain.is_empty() && !address.contains(char::is_whitespace);
            plausible.then(|| Mailbox {
                name: clean(addr.name().unwrap_or(""), MAX_NAME_CHARS, false),
                address,
                role,
            })
        })
        .collect()
}

/// The first `max` message ids in a Message-ID, In-Reply-To or References header, normalised
/// once for every use: without angle brackets, surrounding space or case (`<A.B@X.PL>` and
/// `a.b@x.pl` are one id). Bracketed ids are taken when there are any; otherwise every word with
/// an `@`, as some mailers write them bare. A header of a million ids costs no more than `max`.
pub fn message_ids(header: &str, max: usize) -> Vec<String> {
    let bracketed = header
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(id, _)| id));
    let bare = header.split_whitespace().filter(|w| w.contains('@'));
    let ids: Box<dyn Iterator<Item = &str>> = if header.contains('<') {
        Box::new(bracketed)
    } else {
        Box::new(bare)
    };
    let mut seen = HashSet::new();
    ids.filter_map(|id| {
        let id: String = id
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .to_lowercase();
        (!id.is_empty() && id.len() <= 995 && seen.insert(id.clone())).then_some(id)
    })
    .take(max)
    .collect()
}

/// The last `max` message ids of a References header (the latest messages of the thread), oldest
/// first.
fn latest_message_ids(header: &str, max: usize) -> Vec<String> {
    // An id is at most 995 characters: the tail that holds the last `max` is bounded.
    let tail_start = header.len().saturating_sub(max * 1000);
    let tail = match header.char_indices().find(|(i, _)| *i >= tail_start) {
        Some((i, _)) => &header[i..],
        None => "",
    };
    // A cut id at the start of the tail is dropped with everything before its '<'.
    let tail = match (tail_start > 0, tail.find('<')) {
        (true, Some(i)) => &tail[i..],
        _ => tail,
    };
    let mut ids = message_ids(tail, usize::MAX);
    let excess = ids.len().saturating_sub(max);
    ids.drain(..excess);
    ids
}

/// An attachment's name as a file name: its last path component, without control, format or
/// bidirectional characters (`invoice\u{202E}fdp.exe` shows as what it is).
fn file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_format(c))
        .take(255)
        .collect();
    match name.trim() {
        "" | "." | ".." => "attachment".to_owned(),
        name => name.to_owned(),
    }
}

/// Unicode format characters that change how text is shown, not what it says: bidirectional
/// embeddings, overrides and isolates, marks, zero-width characters.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'..='\u{E007F}'
    )
}

/// The subject a thread is recognised by: without the reply and forward prefixes mailers add in
/// many languages (`Re:`, `RE[2]:`, `Fwd:`, `AW:`, `WG:`, `Odp:`, `PD:`, `Sv:`, `Ответ:`...), in
/// lower case with its spaces collapsed.
pub fn thread_subject(subject: &str) -> String {
    const PREFIXES: &[&str] = &[
        "re",
        "fw",
        "fwd",
        "aw",
        "wg",
        "odp",
        "pd",
        "sv",
        "vs",
        "vb",
        "tr",
        "rv",
        "rif",
        "antw",
        "doorst",
        "ynt",
        "ответ",
        "отв",
        "пересл",
    ];
    let mut rest = subject.trim();
    while let Some((head, tail)) = rest.split_once(':') {
        let word = head
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || "[]() ".contains(c))
            .to_lowercase();
        if !PREFIXES.contains(&word.as_str()) {
            break;
        }
        rest = tail.trim_start();
    }
    rest.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The key an id is stored and found by: its SHA-256. A Message-ID may hold a name; its hash
/// outlives an erasure, so an erased message is never imported again.
pub fn key(message_id: &str) -> Vec<u8> {
    Sha256::digest(message_id.as_bytes()).to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Text safe to store and show: no NULs or other control characters (PostgreSQL refuses NUL in
/// text, and a terminal or a browser should not see the rest), at most `max` characters; line
/// breaks and tabs survive where `multiline`.
fn clean(text: &str, max: usize, multiline: bool) -> String {
    let kept = text
        .chars()
        .filter(|&c| !c.is_control() || (multiline && (c == '\n' || c == '\t')))
        .take(max);
    let cleaned: String = kept.collect();
    if multiline {
        cleaned.trim_end().to_owned()
    } else {
        cleaned.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_lose_brackets_space_and_case_once() {
        assert_eq!(message_ids(" <A.B@X.PL> ", 9), ["a.b@x.pl"]);
        assert_eq!(message_ids("a.b@X.pl", 9), ["a.b@x.pl"]);
        assert_eq!(
            message_ids("<one@x>\r\n <TWO@x>\t<one@x> (comment)", 9),
            ["one@x", "two@x"]
        );
        assert!(message_ids("no id here", 9).is_empty());
        assert!(message_ids("<>", 9).is_empty());
    }

    #[test]
    fn a_header_of_a_million_ids_costs_what_is_kept() {
        let header: String = (0..1_000_000).map(|i| format!("<{i}@x> ")).collect();
        assert_eq!(message_ids(&header, 5).len(), 5);
        let latest = latest_message_ids(&header, 100);
        assert_eq!(latest.len(), 100);
        assert_eq!(latest[0], "999900@x");
        assert_eq!(latest[99], "999999@x");
    }

    #[test]
    fn attachment_names_are_file_names_that_show_what_they_are() {
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(file_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(file_name(".."), "attachment");
        assert_eq!(file_name(""), "attachment");
    }

    #[test]
    fn thread_subjects_drop_reply_and_forward_prefixes_in_many_languages() {
        let base = "order 12: delivery date";
        for subject in [
            "Order 12: delivery date",
            "Re: Order 12: delivery date",
            "RE[2]: Fwd: order 12:  delivery date",
            "Odp: AW: Re: Order 12: delivery date",
            "Ответ: Order 12: delivery date",
            "  PD:WG: Order 12: delivery date ",
        ] {
            assert_eq!(thread_subject(subject), base, "{subject}");
        }
        assert_eq!(thread_subject("Re:"), "");
    }

    #[test]
    fn what_cannot_be_kept_is_refused_with_a_reason() {
        assert_eq!(parse(b""), Err("is empty"));
        assert!(parse(b"Subject: hi\r\n\r\nbody").is_err());
        assert!(parse(b"From: nobody\r\n\r\nbody").is_err());
        let ok = parse(b"From: a@b.pl\r\nSubject: x\0y\r\n\r\nbody\0").unwrap();
        assert_eq!(ok.subject, "xy");
        assert_eq!(ok.body, "body");
        assert!(ok.message_id.starts_with("sha256:"));
    }
}
