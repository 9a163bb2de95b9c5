//! E-mail import through the public API, with the parties service beside it: a corpus of real
//! messages (plain, multipart/alternative, attachments, RFC 2047 Polish and Cyrillic subjects in
//! foreign charsets, a reply chain) imported, matched to clients and threaded; duplicates
//! recognised; and thousands of mutated messages that never produce anything but an answer or a
//! refusal.

use crm_e2e::Suite;
use crm_proto::crm::interactions::v1::*;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;

const OURS: &str = "sales@ourco.example";

fn eml(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/emails/{name}.eml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn import(raw: Vec<u8>) -> ImportEmailRequest {
    ImportEmailRequest {
        raw_message: raw,
        own_addresses: vec![OURS.into()],
        ..Default::default()
    }
}

async fn imported(suite: &Suite, name: &str) -> Interaction {
    let response = suite
        .interactions_client()
        .import_email(import(eml(name)))
        .await
        .unwrap_or_else(|status| panic!("{name}: {status:?}"))
        .into_inner();
    assert!(!response.duplicate, "{name} imported before");
    response.interaction.unwrap()
}

#[tokio::test]
async fn a_corpus_of_real_messages_is_imported_matched_and_threaded() {
    let suite = Suite::start().await.unwrap();
    let anna = suite
        .consumer("Anna", "Kowalska", "anna.kowalska@example.pl")
        .await;
    let grazyna = suite
        .consumer("Grażyna", "Łęcka", "Grazyna.Lecka@example.pl")
        .await;
    let ivan = suite
        .consumer("Иван", "Петров", "ivan.petrov@example.ru")
        .await;
    let mut client = suite.interactions_client();

    let plain = imported(&suite, "plain").await;
    assert_eq!(plain.channel(), Channel::Email);
    assert_eq!(plain.direction(), Direction::Inbound);
    assert_eq!(plain.subject, "Question about delivery times");
    assert!(plain.body.contains("Kraków"), "{}", plain.body);
    assert_eq!(plain.message_id, "plain-1@mail.example.pl");
    assert_eq!(plain.occur_time.unwrap().seconds, 1_793_607_300);
    let from = &plain.participants[0];
    assert_eq!(
        (
            from.kind(),
            from.role(),
            from.address.as_str(),
            from.display_name.as_str()
        ),
        (
            ParticipantKind::Person,
            ParticipantRole::From,
            "anna.kowalska@example.pl",
            "Anna Kowalska"
        )
    );
    assert_eq!(from.id, anna.person_id, "matched to Anna's person");
    let to = &plain.participants[1];
    assert_eq!(
        (to.kind(), to.address.as_str()),
        (ParticipantKind::External, OURS)
    );

    // Ours to the client: outbound; the text part is the body, the HTML one is not shown raw.
    let alternative = imported(&suite, "alternative").await;
    assert_eq!(alternative.direction(), Direction::Outbound);
    assert_eq!(
        alternative.body,
        "Dear Anna, the quotation is ready: 1,250.00 PLN net."
    );
    assert_eq!(alternative.message_id, "alt-2@ourco.example");

    let attachments = imported(&suite, "attachments").await;
    let names: Vec<(&str, &str, i64, bool)> = attachments
        .attachments
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.content_type.as_str(),
                a.size_bytes,
                a.content_stored,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Umowa Łódź.pdf", "application/pdf", 45, true),
            ("site.png", "image/png", 29, true)
        ],
        "RFC 2231 file names decoded"
    );
    let pdf = client
        .get_attachment_content(GetAttachmentContentRequest {
            interaction_id: attachments.id.clone(),
            index: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pdf.content.starts_with(b"%PDF-1.4"));
    let digest: String = Sha256::digest(&pdf.content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(pdf.attachment.unwrap().sha256, digest);

    let polish = imported(&suite, "polish").await;
    assert_eq!(
        polish.subject,
        "Zamówienie nr 12 – prośba o wycenę żółtych łóżek"
    );
    assert_eq!(
        polish.body,
        "Dzień dobry, proszę o wycenę. Zażółć gęślą jaźń."
    );
    assert_eq!(polish.participants[0].display_name, "Grażyna Łęcka");
    assert_eq!(
        polish.participants[0].id, grazyna.person_id,
        "matched whatever the case"
    );

    let cyrillic = imported(&suite, "cyrillic").await;
    assert_eq!(cyrillic.subject, "Заказ 7: счёт и доставка");
    assert_eq!(cyrillic.body, "Здравствуйте! Пришлите, пожалуйста, счёт.");
    assert_eq!(cyrillic.participants[0].display_name, "Иван Петров");
    assert_eq!(cyrillic.participants[0].id, ivan.person_id);

    // The reply chain: a reply by In-Reply-To (bare, other case), one by References under a
    // prefixed subject, and one that references the thread under another subject.
    let first = imported(&suite, "thread-1").await;
    let second = imported(&suite, "thread-2").await;
    let third = imported(&suite, "thread-3").await;
    let fourth = imported(&suite, "thread-4").await;
    assert_eq!(
        first.thread_id, first.id,
        "a conversation is named by its first message"
    );
    assert_eq!(second.thread_id, first.id, "In-Reply-To");
    assert_eq!(
        third.thread_id, first.id,
        "References with the same subject"
    );
    assert_eq!(
        fourth.thread_id, fourth.id,
        "References under another subject"
    );
    let thread = client
        .list_interactions(ListInteractionsRequest {
            thread_id: first.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    let ids: Vec<&str> = thread.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [&third.id, &second.id, &first.id], "newest first");

    // Anna's history holds every message she took part in, whichever id it is read by.
    let history = client
        .list_interactions(ListInteractionsRequest {
            party_id: anna.id.clone(),
            channel: Channel::Email as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    assert_eq!(
        history.len(),
        7,
        "plain, alternative, attachments and four of the thread"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_imported_twice_is_one_interaction() {
    let suite = Suite::start().await.unwrap();
    suite
        .consumer("Anna", "Kowalska", "anna.kowalska@example.pl")
        .await;
    let mut client = suite.interactions_client();
    let first = imported(&suite, "thread-1").await;

    // The same message again, and rewritten by another mailer: brackets, case and headers differ.
    let again = client
        .import_email(import(eml("thread-1")))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.interaction.unwrap().id, first.id);
    let rewritten = String::from_utf8(eml("thread-1"))
        .unwrap()
        .replace(
            "<Order-12.Start@Mail.Example.PL>",
            " order-12.start@mail.example.pl",
        )
        .replace("Subject:", "X-Forwarded-By: archive\r\nSubject:");
    let rewritten = client
        .import_email(import(rewritten.into_bytes()))
        .await
        .unwrap()
        .into_inner();
    assert!(rewritten.duplicate);
    assert_eq!(rewritten.interaction.unwrap().id, first.id);

    // Another message under the same Message-ID (a broken or hostile mailer: another sender,
    // another time) is not lost.
    let reused = String::from_utf8(eml("thread-1"))
        .unwrap()
        .replace("Mon, 09 Nov 2026 09:00:00", "Tue, 10 Nov 2026 12:00:00")
        .replace("When will order 12 arrive?", "Please cancel order 12.");
    let reused = client
        .import_email(import(reused.into_bytes()))
        .await
        .unwrap()
        .into_inner();
    assert!(!reused.duplicate);
    assert_ne!(reused.interaction.unwrap().id, first.id);

    // A Date that cannot be right gives way to when the message arrived.
    let future = String::from_utf8(eml("plain"))
        .unwrap()
        .replace("Mon, 02 Nov 2026", "Mon, 02 Nov 2099")
        .replace("plain-1@", "future-1@");
    let arrived = client
        .import_email(ImportEmailRequest {
            received_time: Some(prost_types::Timestamp {
                seconds: 1_793_607_300,
                nanos: 0,
            }),
            ..import(future.into_bytes())
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        arrived.interaction.unwrap().occur_time.unwrap().seconds,
        1_793_607_300
    );

    // Ten at once: one interaction.
    let tries = (0..10).map(|_| {
        let mut client = client.clone();
        async move {
            client
                .import_email(import(eml("plain")))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let answers = futures::future::join_all(tries).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| a.interaction.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn what_is_not_an_email_of_a_client_is_refused_with_its_reason() {
    let suite = Suite::start().await.unwrap();
    let mut client = suite.interactions_client();
    for (raw, expected) in [
        (Vec::new(), "raw_message"),
        (b"just some words".to_vec(), "raw_message"),
        (b"Subject: no sender\r\n\r\nbody".to_vec(), "raw_message"),
        (
            b"From: a@b.example\r\nSubject: no date\r\n\r\nbody".to_vec(),
            "raw_message",
        ),
    ] {
        let status = client.import_email(import(raw)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [expected]);
    }
    // Nobody the parties service knows.
    let status = client.import_email(import(eml("plain"))).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "NO_KNOWN_CLIENT"
    );
    suite.stop().await.unwrap();
}

/// A small, seeded generator: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `raw`: bytes flipped, cut, repeated, or hostile pieces spliced in.
fn mutate(raw: &[u8], rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"\0",
        b"\r\n\r\n",
        b"=?utf-8?B?AAAA?=",
        b"=?x-unknown?Q?=FF=00?=",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n",
        b"--\r\n",
        b"<<<>>>",
        b"Date: Fri, 31 Dec 99999 25:61:61 +9999\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!",
        b"\xff\xfe\xfd",
        b"Message-ID: <>\r\n",
        b"In-Reply-To: <\0@\0>\r\n",
    ];
    let mut out = raw.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => out.truncate(at),
            2 => {
                let piece = PIECES[rng.below(PIECES.len())];
                out.splice(at..at, piece.iter().copied());
            }
            3 => {
                let end = (at + rng.below(64)).min(out.len());
                let copy = out[at..end].repeat(1 + rng.below(50));
                out.splice(at..at, copy);
            }
            _ => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
        }
    }
    out
}

#[test]
fn thousands_of_mutated_messages_parse_or_are_refused_and_never_panic() {
    let corpus: Vec<Vec<u8>> = [
        "plain",
        "alternative",
        "attachments",
        "polish",
        "cyrillic",
        "thread-3",
    ]
    .iter()
    .map(|name| eml(name))
    .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut refused) = (0, 0);
    for i in 0..20_000 {
        let raw = mutate(&corpus[i % corpus.len()], &mut rng);
        match crm_interactions::domain::email::parse(&raw) {
            Ok(email) => {
                parsed += 1;
                // What is kept can be stored: no NUL, nothing over the limits.
                for text in [&email.subject, &email.message_id] {
                    assert!(!text.contains('\0'), "{text:?}");
                }
                assert!(!email.body.contains('\0'));
                assert!(email.subject.chars().count() <= 1000);
                assert!(email.addresses.iter().all(|m| !m.address.contains('\0')));
            }
            Err(_) => refused += 1,
        }
    }
    // Both outcomes occur: the mutations reach past the parser's leniency.
    assert!(
        parsed > 1000 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );
}

#[tokio::test]
async fn mutated_messages_through_the_api_get_an_answer_or_a_refusal_never_internal() {
    let suite = Suite::start().await.unwrap();
    suite
        .consumer("Anna", "Kowalska", "anna.kowalska@example.pl")
        .await;
    let mut client = suite.interactions_client();
    let corpus = [eml("plain"), eml("attachments"), eml("thread-3")];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..600 {
        let raw = mutate(&corpus[i % corpus.len()], &mut rng);
        let code = match client.import_email(import(raw)).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        assert!(
            matches!(
                code,
                Code::Ok | Code::InvalidArgument | Code::FailedPrecondition
            ),
            "{code:?}"
        );
        *codes.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    assert!(codes.len() >= 2, "{codes:?}");
    suite.stop().await.unwrap();
}
