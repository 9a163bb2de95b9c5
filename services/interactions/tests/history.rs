//! The contact history through the public API, with the parties service beside it: contacts
//! recorded after the fact and read back newest first, refusals naming every field, notes.

use std::time::Duration;

use crm_e2e::Suite;
use crm_proto::crm::{
    interactions::v1::*,
    parties::v1::{CreatePartyRequest, Party, PartyKind, PersonName},
};
use crm_testkit::{read_topic, violated_fields as fields};
use prost::Message;
use prost_types::{FieldMask, Timestamp};
use tonic::Code;
use tonic_types::StatusExt;

async fn organization(suite: &Suite, name: &str) -> Party {
    suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Organization as i32,
                display_name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn with(party: &Party) -> Participant {
    Participant {
        kind: ParticipantKind::Party as i32,
        id: party.id.clone(),
        role: ParticipantRole::To as i32,
        address: "+48 22 123 45 67".into(),
        ..Default::default()
    }
}

fn call(party: &Party, seconds: i64, subject: &str) -> Interaction {
    Interaction {
        channel: Channel::PhoneCall as i32,
        direction: Direction::Outbound as i32,
        subject: subject.into(),
        body: "Discussed the renewal; they want a discount.".into(),
        occur_time: at(seconds),
        duration_seconds: 300,
        participants: vec![
            with(party),
            Participant {
                kind: ParticipantKind::Operator as i32,
                id: "agent".into(),
                role: ParticipantRole::From as i32,
                ..Default::default()
            },
        ],
        dialled_number: "+48221234567".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_are_recorded_after_the_fact_and_read_back_newest_first() {
    let suite = Suite::start().await.unwrap();
    let acme = organization(&suite, "Acme").await;
    let globex = organization(&suite, "Globex").await;
    let mut client = suite.interactions_client();

    let base = 1_780_000_000;
    let mut recorded = Vec::new();
    for (i, subject) in ["first call", "second call", "third call"]
        .iter()
        .enumerate()
    {
        let request = RecordInteractionRequest {
            interaction: Some(call(&acme, base + i as i64 * 3_600, subject)),
            request_id: format!("call-{i}"),
        };
        recorded.push(
            client
                .record_interaction(request)
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let replayed = client
        .record_interaction(RecordInteractionRequest {
            interaction: Some(call(&acme, base, "first call")),
            request_id: "call-0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replayed.id, recorded[0].id,
        "a retried call is recorded once"
    );
    let meeting = Interaction {
        channel: Channel::Meeting as i32,
        direction: Direction::Inbound as i32,
        ..call(&globex, base + 60, "visit")
    };
    client
        .record_interaction(RecordInteractionRequest {
            interaction: Some(meeting),
            ..Default::default()
        })
        .await
        .unwrap();

    let page = |page_token: String| ListInteractionsRequest {
        party_id: acme.id.clone(),
        page_size: 2,
        page_token,
        ..Default::default()
    };
    let first = client
        .list_interactions(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .list_interactions(page(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    let subjects: Vec<&str> = first
        .interactions
        .iter()
        .chain(&second.interactions)
        .map(|i| i.subject.as_str())
        .collect();
    assert_eq!(subjects, ["third call", "second call", "first call"]);
    assert!(second.next_page_token.is_empty());
    let meetings = client
        .list_interactions(ListInteractionsRequest {
            channel: Channel::Meeting as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meetings.interactions.len(), 1);
    let early = client
        .list_interactions(ListInteractionsRequest {
            party_id: acme.id.clone(),
            occurred_before: at(base + 1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(early.interactions.len(), 1);

    let updated = client
        .update_interaction(UpdateInteractionRequest {
            interaction: Some(Interaction {
                id: recorded[0].id.clone(),
                outcome: "callback agreed".into(),
                links: vec![Link {
                    kind: LinkKind::Contract as i32,
                    reference: "UM/2026/11".into(),
                }],
                etag: recorded[0].etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["outcome".into(), "links".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.outcome, "callback agreed");
    assert_eq!(
        updated.subject, "first call",
        "what happened does not change"
    );
    let stale = client
        .update_interaction(UpdateInteractionRequest {
            interaction: Some(Interaction {
                id: recorded[0].id.clone(),
                etag: recorded[0].etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["outcome".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    let records = read_topic(
        &suite.broker.brokers(),
        "crm.interactions.interaction.v1",
        5,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 5, "four recorded, one updated");
    // Keyed by interaction, so one interaction's events keep their order (not all of them).
    let first_record = records
        .iter()
        .find(|r| r.key.as_deref() == Some(recorded[0].id.as_str()))
        .unwrap();
    let first_event = InteractionRecorded::decode(first_record.payload.as_slice()).unwrap();
    let facts = first_event.interaction.unwrap();
    assert_eq!(facts.channel(), Channel::PhoneCall);
    assert_eq!(facts.participants[0].id, acme.id);
    assert!(
        facts.subject.is_empty() && facts.body.is_empty(),
        "no words of the contact"
    );
    assert!(facts.participants[0].address.is_empty(), "no addresses");
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_contacts_are_refused_naming_every_field() {
    let suite = Suite::start().await.unwrap();
    let acme = organization(&suite, "Acme").await;
    let mut client = suite.interactions_client();
    let record = |interaction: Interaction| RecordInteractionRequest {
        interaction: Some(interaction),
        ..Default::default()
    };

    let bad = client
        .record_interaction(record(Interaction {
            channel: 0,
            direction: 0,
            occur_time: None,
            duration_seconds: -5,
            participants: vec![Participant {
                kind: ParticipantKind::External as i32,
                role: ParticipantRole::To as i32,
                ..Default::default()
            }],
            attachments: vec![Attachment {
                name: "offer.pdf".into(),
                sha256: "not-hex".into(),
                ..Default::default()
            }],
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "interaction.attachments[0].sha256",
            "interaction.channel",
            "interaction.direction",
            "interaction.duration_seconds",
            "interaction.occur_time",
            "interaction.participants",
            "interaction.participants[0].address",
        ]
    );
    let future = client
        .record_interaction(record(call(&acme, 4_000_000_000, "from the future")))
        .await
        .unwrap_err();
    assert_eq!(fields(&future), ["interaction.occur_time"]);
    let mut stranger = call(&acme, 1_780_000_000, "who?");
    stranger.participants[0].id = uuid::Uuid::now_v7().to_string();
    let unknown = client
        .record_interaction(record(stranger))
        .await
        .unwrap_err();
    assert_eq!(fields(&unknown), ["interaction.participants[0].id"]);
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_are_kept_about_a_client_and_its_contacts() {
    let suite = Suite::start().await.unwrap();
    let acme = organization(&suite, "Acme").await;
    let globex = organization(&suite, "Globex").await;
    let mut client = suite.interactions_client();
    let contact = client
        .record_interaction(RecordInteractionRequest {
            interaction: Some(call(&acme, 1_780_000_000, "renewal")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let note = client
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: acme.id.clone(),
                interaction_id: contact.id.clone(),
                text: "Decision maker is the CFO.\nPrefers e-mail.".into(),
                ..Default::default()
            }),
            request_id: "note-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let elsewhere = client
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: globex.id.clone(),
                interaction_id: contact.id.clone(),
                text: "wrong client".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        elsewhere.get_details_error_info().unwrap().reason,
        "NOTE_NOT_OF_INTERACTION"
    );
    let both = client
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: acme.id.clone(),
                person_id: uuid::Uuid::now_v7().to_string(),
                text: "x".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&both), ["note.party_id"]);

    let edited = client
        .update_note(UpdateNoteRequest {
            note: Some(Note {
                id: note.id.clone(),
                text: "Decision maker is the CEO.".into(),
                etag: note.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["text".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(edited.text, "Decision maker is the CEO.");
    for about in [
        ListNotesRequest {
            party_id: acme.id.clone(),
            ..Default::default()
        },
        ListNotesRequest {
            interaction_id: contact.id.clone(),
            ..Default::default()
        },
    ] {
        let listed = client.list_notes(about).await.unwrap().into_inner();
        assert_eq!(listed.notes, std::slice::from_ref(&edited));
    }
    client
        .delete_note(DeleteNoteRequest {
            id: note.id.clone(),
            etag: edited.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let left = client
        .list_notes(ListNotesRequest {
            party_id: acme.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(left.notes.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_has_one_history_whether_a_contact_named_its_party_or_its_person() {
    let suite = Suite::start().await.unwrap();
    let consumer = suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: "Ola".into(),
                    family_name: "Nowak".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !consumer.person_id.is_empty(),
        "a consumer is a natural person too"
    );
    let mut client = suite.interactions_client();
    let mut chat = call(&consumer, 1_780_000_000, "chat about points");
    chat.channel = Channel::Chat as i32;
    chat.participants[0] = Participant {
        kind: ParticipantKind::Person as i32,
        id: consumer.person_id.clone(),
        role: ParticipantRole::From as i32,
        ..Default::default()
    };
    client
        .record_interaction(RecordInteractionRequest {
            interaction: Some(chat),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .record_interaction(RecordInteractionRequest {
            interaction: Some(call(&consumer, 1_780_000_100, "call back")),
            ..Default::default()
        })
        .await
        .unwrap();
    for (party_id, person_id) in [
        (consumer.id.clone(), String::new()),
        (String::new(), consumer.person_id.clone()),
    ] {
        let history = client
            .list_interactions(ListInteractionsRequest {
                party_id,
                person_id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let subjects: Vec<&str> = history
            .interactions
            .iter()
            .map(|i| i.subject.as_str())
            .collect();
        assert_eq!(subjects, ["call back", "chat about points"]);
    }
    suite.stop().await.unwrap();
}
