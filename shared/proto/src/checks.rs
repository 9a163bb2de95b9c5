//! What every server checks before a method runs, from the contract's own options
//! (`crm/common/v1/options.proto`): the scope each RPC declares, and the strings and lists of every
//! request. Strings must be valid UTF-8 without NUL or other control characters and within their
//! length; lists within their size. A request that breaks a rule is answered INVALID_ARGUMENT
//! naming each bad field, so hostile input never reaches a handler or PostgreSQL.
//!
//! The checks walk the request's wire bytes with a shape generated at build time, before prost
//! decodes them: nothing is allocated for a good request, and a malformed one is the caller's
//! error (INVALID_ARGUMENT), not the server's (prost's codec answers INTERNAL).

use std::{fmt, marker::PhantomData};

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

include!(concat!(env!("OUT_DIR"), "/crm_checks.rs"));

/// An RPC of the suite, as the server's gate sees it: both strings live as long as the program, so
/// labelling a call costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    /// `/package.Service/Method`.
    pub path: &'static str,
    /// The scope a caller's token must carry.
    pub scope: &'static str,
}

impl Rpc {
    /// `package.Service`.
    pub fn service(&self) -> &'static str {
        self.path[1..]
            .split_once('/')
            .map_or(self.path, |(service, _)| service)
    }
}

/// `ErrorInfo.domain` of every error of the suite.
pub const ERROR_DOMAIN: &str = "crm";

/// The most violations one answer lists, and the most bytes their fields and descriptions take:
/// the answer travels in headers, and a default client refuses more than 16 KiB of them (the
/// details are base64-encoded, the message percent-encoded).
const MAX_REPORTED: usize = 20;
const MAX_REPORTED_BYTES: usize = 3 * 1024;
/// The longest description of one violation, in characters.
const MAX_DESCRIPTION: usize = 200;
/// Messages nest no deeper than this in a request (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 32;

/// A message's fields as the checks see them, sorted by number.
pub struct Shape {
    pub name: &'static str,
    pub fields: &'static [Field],
}

pub struct Field {
    pub number: u32,
    pub name: &'static str,
    pub repeated: bool,
    pub max_items: u32,
    pub kind: Kind,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Text { max_chars: u32, multiline: bool },
    Message(&'static Shape),
    Scalar,
}

/// A request message with a generated [`Shape`].
pub trait Checked {
    const SHAPE: &'static Shape;
}

/// A request with a client-chosen `request_id` (every write has one; the build checks it).
pub trait Idempotent {
    /// The method the request belongs to: request ids are scoped by method and caller.
    const METHOD: &'static str;
    fn request_id(&self) -> &str;
}

/// Every problem with a request's fields, collected before answering so the caller can fix them
/// all at once. Past [`MAX_REPORTED`] only the count is kept, and the answer says how many more.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations {
    reported: Vec<(String, String)>,
    /// Bytes of the reported fields and descriptions.
    bytes: usize,
    omitted: usize,
}

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    /// One violation: for checks that stop at their first.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, description);
        v
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        let field = truncate(field.into(), MAX_DESCRIPTION);
        let description = truncate(description.into(), MAX_DESCRIPTION);
        let bytes = field.len() + description.len();
        if self.reported.len() == MAX_REPORTED || self.bytes + bytes > MAX_REPORTED_BYTES {
            self.omitted += 1;
            return;
        }
        self.bytes += bytes;
        self.reported.push((field, description));
    }

    /// Adds the violation unless `ok` holds.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }

    /// The fields named in the answer.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.reported.iter().map(|(field, _)| field.as_str())
    }

    /// `Ok(())` when there were no violations.
    pub fn finish(self) -> Result<(), FieldViolations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, description)) in self.reported.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {description}")?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

/// INVALID_ARGUMENT with a `BadRequest` naming every bad field reported.
pub fn invalid_argument(violations: &FieldViolations) -> Status {
    let mut details = ErrorDetails::new();
    for (field, description) in &violations.reported {
        details.add_bad_request_violation(field.clone(), description.clone());
    }
    let metadata: std::collections::HashMap<String, String> = (violations.omitted > 0)
        .then(|| {
            (
                "omitted_violations".to_owned(),
                violations.omitted.to_string(),
            )
        })
        .into_iter()
        .collect();
    details.set_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, metadata);
    // The details name every reported field; the message is their summary, kept short.
    let message = truncate(format!("invalid request: {violations}"), 500);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// `value` cut to `max` characters, marked with an ellipsis when cut: error messages never echo
/// unbounded input.
pub fn truncate(mut value: String, max: usize) -> String {
    if let Some((cut, _)) = value.char_indices().nth(max) {
        value.truncate(cut);
        value.push('…');
    }
    value
}

/// Checks encoded `bytes` of a `shape` message, naming every bad field.
pub fn check(shape: &'static Shape, bytes: &[u8]) -> Result<(), Status> {
    let mut walk = Walk {
        violations: FieldViolations::new(),
        path: Vec::new(),
    };
    if walk.message(shape, bytes, 0).is_err() {
        return Err(not_a_message(shape.name));
    }
    walk.violations
        .finish()
        .map_err(|violations| invalid_argument(&violations))
}

fn not_a_message(name: &str) -> Status {
    Status::invalid_argument(format!("the request is not a valid {name} message"))
}

/// The bytes end inside a field, or use a wire type proto3 does not have.
struct Malformed;

struct Walk {
    violations: FieldViolations,
    /// Where the walk is: field names, with the item index in a list.
    path: Vec<(&'static str, Option<u32>)>,
}

impl Walk {
    fn message(
        &mut self,
        shape: &'static Shape,
        mut buf: &[u8],
        depth: u32,
    ) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        // Occurrences per list and per message field, allocated only when one appears. Protobuf
        // merges a message field given twice, so its lists would add up past their limits:
        // a request gives each message field at most once.
        let mut counts: Vec<u32> = Vec::new();
        while !buf.is_empty() {
            let key = varint(&mut buf)?;
            let payload = match key & 7 {
                0 => varint(&mut buf).map(|_| None)?,
                1 => take(&mut buf, 8).map(|_| None)?,
                5 => take(&mut buf, 4).map(|_| None)?,
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).map_err(|_| Malformed)?;
                    Some(take(&mut buf, len)?)
                }
                _ => return Err(Malformed),
            };
            let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
            // Unknown fields are skipped, as protobuf requires.
            let Ok(i) = shape.fields.binary_search_by_key(&number, |f| f.number) else {
                continue;
            };
            let field = &shape.fields[i];
            let counted = field.repeated || matches!(field.kind, Kind::Message(_));
            if counted {
                if counts.is_empty() {
                    counts = vec![0; shape.fields.len()];
                }
                counts[i] = counts[i].saturating_add(1);
            }
            let index = field.repeated.then(|| counts[i] - 1);
            match (field.kind, payload) {
                (Kind::Text { .. } | Kind::Message(_), None) => return Err(Malformed),
                (
                    Kind::Text {
                        max_chars,
                        multiline,
                    },
                    Some(bytes),
                ) => self.text(field.name, index, bytes, max_chars, multiline),
                (Kind::Message(nested), Some(bytes)) => {
                    self.path.push((field.name, index));
                    let walked = self.message(nested, bytes, depth + 1);
                    self.path.pop();
                    walked?;
                }
                // A packed list of numbers (enums, integers) counts each of its varints, so a
                // list's limit holds however it is encoded.
                (Kind::Scalar, Some(packed)) if field.repeated => {
                    let numbers = packed.iter().filter(|b| *b & 0x80 == 0).count();
                    let numbers = u32::try_from(numbers).unwrap_or(u32::MAX);
                    counts[i] = counts[i].saturating_add(numbers.saturating_sub(1));
                }
                (Kind::Scalar, _) => {}
            }
        }
        for (i, &count) in counts.iter().enumerate() {
            let field = &shape.fields[i];
            if field.repeated && count > field.max_items {
                let at = self.at(field.name, None);
                self.violations.add(
                    at,
                    format!("must have at most {} items (has {count})", field.max_items),
                );
            } else if !field.repeated && count > 1 {
                let at = self.at(field.name, None);
                self.violations.add(at, "is given more than once");
            }
        }
        Ok(())
    }

    fn text(
        &mut self,
        name: &'static str,
        index: Option<u32>,
        bytes: &[u8],
        max_chars: u32,
        multiline: bool,
    ) {
        let problem = match std::str::from_utf8(bytes) {
            Err(_) => Some("is not valid UTF-8".to_owned()),
            Ok(text) => {
                let mut chars = 0u32;
                let mut control = false;
                for c in text.chars() {
                    chars += 1;
                    control |= c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'));
                }
                if control {
                    Some(if multiline {
                        "must not contain NUL or control characters other than tab and line breaks"
                    } else {
                        "must not contain NUL, line breaks or other control characters"
                    }
                    .to_owned())
                } else if chars > max_chars {
                    Some(format!(
                        "must be at most {max_chars} characters (has {chars})"
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(problem) = problem {
            let at = self.at(name, index);
            self.violations.add(at, problem);
        }
    }

    /// The dotted path of a field at the walk's position, e.g. `party.tags[3]`.
    fn at(&self, name: &str, index: Option<u32>) -> String {
        let mut path = String::new();
        for (segment, segment_index) in self.path.iter().copied().chain([(name, index)]) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(segment);
            if let Some(i) = segment_index {
                path.push_str(&format!("[{i}]"));
            }
        }
        path
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(Malformed)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], Malformed> {
    if buf.len() < len {
        return Err(Malformed);
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

/// The codec of every server the suite generates: prost's, with the checks before decoding.
#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Checked + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + Checked> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        // One gRPC message arrives in one contiguous buffer; copy in the unexpected other case.
        if buf.chunk().len() == buf.remaining() {
            check(U::SHAPE, buf.chunk())?;
        } else {
            let bytes = buf.copy_to_bytes(buf.remaining());
            check(U::SHAPE, &bytes)?;
            return U::decode(bytes)
                .map(Some)
                .map_err(|_| not_a_message(U::SHAPE.name));
        }
        U::decode(buf)
            .map(Some)
            .map_err(|_| not_a_message(U::SHAPE.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::parties::v1::{CreatePartyRequest, Party};

    fn violations(status: &Status) -> Vec<(String, String)> {
        status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .into_iter()
                    .map(|v| (v.field, v.description))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check_request(request: &CreatePartyRequest) -> Result<(), Status> {
        check(CreatePartyRequest::SHAPE, &request.encode_to_vec())
    }

    #[test]
    fn a_packed_list_of_numbers_counts_each_number() {
        use crate::crm::interactions::v1::GetTimelineRequest;
        let request = |n: usize| GetTimelineRequest {
            kinds: vec![4; n],
            ..Default::default()
        };
        let shape = GetTimelineRequest::SHAPE;
        assert!(check(shape, &request(20).encode_to_vec()).is_ok());
        let status = check(shape, &request(1_000_000).encode_to_vec()).unwrap_err();
        assert_eq!(violations(&status)[0].0, "kinds");
    }

    #[test]
    fn a_good_request_passes() {
        let request = CreatePartyRequest {
            party: Some(Party {
                display_name: "Zakład Ćma sp. z o.o.".into(),
                tags: vec!["vip".into(); 10],
                ..Default::default()
            }),
            request_id: "r-1".into(),
            ..Default::default()
        };
        assert!(check_request(&request).is_ok());
    }

    #[test]
    fn nul_long_and_too_many_are_named() {
        let request = CreatePartyRequest {
            party: Some(Party {
                display_name: "a\0b".into(),
                tags: vec!["x".repeat(301), "ok".into()],
                ..Default::default()
            }),
            request_id: "r".repeat(5000),
            ..Default::default()
        };
        let status = check_request(&request).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            ["party.display_name", "party.tags[0]", "request_id"],
            "{status:?}"
        );
    }

    #[test]
    fn a_huge_list_is_reported_briefly() {
        let request = CreatePartyRequest {
            party: Some(Party {
                tags: vec!["\0".into(); 5000],
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = check_request(&request).unwrap_err();
        let reported = violations(&status);
        assert_eq!(reported.len(), MAX_REPORTED);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            info.metadata["omitted_violations"], "4981",
            "5000 items and the list"
        );
        assert!(status.details().len() < 8 * 1024);
    }

    #[test]
    fn a_message_field_given_twice_is_refused() {
        // Protobuf would merge the two parties, adding their tags up past the list's limit.
        let party = Party {
            tags: vec!["t".into(); 1000],
            ..Default::default()
        };
        let field = CreatePartyRequest::SHAPE.fields[0].number;
        let mut bytes = Vec::new();
        for _ in 0..2 {
            prost::encoding::message::encode(field, &party, &mut bytes);
        }
        let status = check(CreatePartyRequest::SHAPE, &bytes).unwrap_err();
        assert_eq!(violations(&status)[0].0, "party");
    }

    #[test]
    fn errors_stay_small_whatever_the_input() {
        let mut v = FieldViolations::new();
        for i in 0..1000 {
            v.add(format!("f{i}"), "🙂".repeat(1000));
        }
        let status = invalid_argument(&v);
        assert!(
            status.details().len() < 8 * 1024,
            "{}",
            status.details().len()
        );
        assert!(status.message().len() < 8 * 1024);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for bytes in [&[0xff_u8, 0xff, 0xff][..], &[0x0a, 0x10, 0x01], &[0x0b]] {
            let status = check(CreatePartyRequest::SHAPE, bytes).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn invalid_utf8_is_named() {
        // The request's first single text field, found from its shape.
        let field = CreatePartyRequest::SHAPE
            .fields
            .iter()
            .find(|f| matches!(f.kind, Kind::Text { .. }) && !f.repeated)
            .expect("the request has a text field");
        let bytes = [((field.number << 3) | 2) as u8, 2, 0xc3, 0x28];
        let status = check(CreatePartyRequest::SHAPE, &bytes).unwrap_err();
        assert_eq!(violations(&status)[0].0, field.name);
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abc".into(), 5), "abc");
        assert_eq!(truncate("żółwik".into(), 3), "żół…");
    }
}
