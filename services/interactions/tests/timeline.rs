//! One timeline per client through the public API, with the suite around it: interactions, notes
//! and tasks beside the facts consumed from the parties, loyalty and consent topics; paged
//! without gaps or repeats while items arrive; re-pointed by a party merge; and full-text search.

use std::{collections::HashSet, time::Duration};

use crm_e2e::{LOYALTY_PROGRAM, Suite};
use crm_proto::crm::{
    interactions::v1::*,
    loyalty::v1::{AccountRef, EnrollRequest, RecordOperationRequest},
    parties::v1::{CreatePartyRequest, MergePartiesRequest, Party, PartyKind, PersonName},
};
use prost_types::Timestamp;

const WAIT: Duration = Duration::from_secs(60);

async fn party(suite: &Suite, kind: PartyKind, name: &str) -> Party {
    let person_name = (kind == PartyKind::Person).then(|| PersonName {
        given_name: name.into(),
        family_name: "Nowak".into(),
    });
    suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: kind as i32,
                display_name: name.into(),
                person_name,
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

async fn call(suite: &Suite, party_id: &str, seconds: i64, subject: &str) -> Interaction {
    suite
        .interactions_client()
        .record_interaction(RecordInteractionRequest {
            interaction: Some(Interaction {
                channel: Channel::PhoneCall as i32,
                direction: Direction::Inbound as i32,
                subject: subject.into(),
                body: "Zażółć gęślą jaźń; ёлка".into(),
                occur_time: at(seconds),
                participants: vec![Participant {
                    kind: ParticipantKind::Party as i32,
                    id: party_id.into(),
                    role: ParticipantRole::From as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn timeline_of(party_id: &str) -> GetTimelineRequest {
    GetTimelineRequest {
        party_id: party_id.into(),
        page_size: 500,
        ..Default::default()
    }
}

async fn timeline(suite: &Suite, request: GetTimelineRequest) -> Vec<TimelineItem> {
    suite
        .interactions_client()
        .get_timeline(request)
        .await
        .unwrap()
        .into_inner()
        .items
}

/// The timeline once `done` holds for it.
async fn timeline_when(
    suite: &Suite,
    request: GetTimelineRequest,
    done: impl Fn(&[TimelineItem]) -> bool,
) -> Vec<TimelineItem> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let items = timeline(suite, request.clone()).await;
        if done(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timeline never got there: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kinds(items: &[TimelineItem]) -> Vec<TimelineKind> {
    items.iter().map(|i| i.kind()).collect()
}

#[tokio::test]
async fn a_timeline_holds_contacts_notes_tasks_and_what_other_services_published() {
    let suite = Suite::start().await.unwrap();
    let anna = party(&suite, PartyKind::Person, "Anna").await;
    let mut interactions = suite.interactions_client();

    let contact = call(&suite, &anna.id, 1_790_000_000, "Asked about points").await;
    interactions
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: anna.id.clone(),
                text: "Prefers e-mail".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    interactions
        .create_task(CreateTaskRequest {
            task: Some(Task {
                title: "Send the statement".into(),
                assignee: "agent".into(),
                party_id: anna.id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    // Consent granted, a membership, points: facts of consent and loyalty.
    suite.loyalty_purpose().await;
    suite.consent_to(&anna.id, LOYALTY_PROGRAM, true).await;
    let program = suite.loyalty_program().await;
    let mut loyalty = suite.loyalty_client();
    let membership = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: anna.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    loyalty
        .record_operation(RecordOperationRequest {
            operation_id: format!("purchase-{}", membership.id),
            account: Some(AccountRef {
                membership_id: membership.id.clone(),
                ..Default::default()
            }),
            operation_type: "purchase".into(),
            points: 120,
            ..Default::default()
        })
        .await
        .unwrap();

    let all = [
        TimelineKind::Interaction,
        TimelineKind::Note,
        TimelineKind::Task,
        TimelineKind::Consent,
        TimelineKind::Membership,
        TimelineKind::Points,
    ];
    let items = timeline_when(&suite, timeline_of(&anna.id), |items| {
        all.iter().all(|k| kinds(items).contains(k))
    })
    .await;
    assert_eq!(items.len(), 6, "{items:#?}");
    // Newest first; the call happened long ago, so it is last.
    let times: Vec<i64> = items
        .iter()
        .map(|i| i.occur_time.unwrap().seconds)
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let last = items.last().unwrap();
    match &last.item {
        Some(timeline_item::Item::Interaction(i)) => assert_eq!(i.id, contact.id),
        other => panic!("{other:?}"),
    }
    let points = items
        .iter()
        .find_map(|i| match &i.item {
            Some(timeline_item::Item::Fact(f)) if i.kind() == TimelineKind::Points => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!(points.source, "loyalty");
    assert_eq!(points.r#type, "crm.loyalty.v1.PointsAccrued");
    assert_eq!(points.attributes["points"], "120");
    assert!(
        points.summary.starts_with("120 points accrued"),
        "{}",
        points.summary
    );
    let consent = items
        .iter()
        .find_map(|i| match &i.item {
            Some(timeline_item::Item::Fact(f)) if i.kind() == TimelineKind::Consent => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!(consent.attributes["status"], "granted");

    // A consumer's natural person has the same timeline.
    let by_person = timeline_when(
        &suite,
        GetTimelineRequest {
            person_id: anna.person_id.clone(),
            page_size: 500,
            ..Default::default()
        },
        |found| found.len() == 6,
    )
    .await;
    let ids =
        |items: &[TimelineItem]| -> Vec<String> { items.iter().map(|i| i.id.clone()).collect() };
    assert_eq!(ids(&by_person), ids(&items));

    // Filters: by kind, by channel, by time.
    let only_points = timeline(
        &suite,
        GetTimelineRequest {
            kinds: vec![TimelineKind::Points as i32, TimelineKind::Note as i32],
            ..timeline_of(&anna.id)
        },
    )
    .await;
    assert_eq!(
        kinds(&only_points).into_iter().collect::<HashSet<_>>(),
        HashSet::from([TimelineKind::Points, TimelineKind::Note])
    );
    let calls = timeline(
        &suite,
        GetTimelineRequest {
            channel: Channel::PhoneCall as i32,
            ..timeline_of(&anna.id)
        },
    )
    .await;
    assert_eq!(ids(&calls), [contact.id.as_str()]);
    let old = timeline(
        &suite,
        GetTimelineRequest {
            occurred_before: at(1_790_000_001),
            ..timeline_of(&anna.id)
        },
    )
    .await;
    assert_eq!(ids(&old), [contact.id.as_str()]);

    // Search finds the call by words without their accents, in Polish and Russian alike.
    for query in [
        "zazolc",
        "GĘŚLĄ",
        "елка",
        "\"gesla jazn\"",
        "points -statement",
    ] {
        let found = interactions
            .search_interactions(SearchInteractionsRequest {
                query: query.into(),
                party_id: anna.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .interactions;
        assert_eq!(found.len(), 1, "{query}");
    }
    let none = interactions
        .search_interactions(SearchInteractionsRequest {
            query: "kettle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    assert!(none.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn pages_never_repeat_or_skip_while_new_items_arrive() {
    let suite = Suite::start().await.unwrap();
    let acme = party(&suite, PartyKind::Organization, "Acme").await;
    let base = 1_780_000_000;
    let mut before = HashSet::new();
    for i in 0..60 {
        // Pairs at the same second: the id orders them.
        before.insert(
            call(&suite, &acme.id, base + (i / 2) * 60, "before")
                .await
                .id,
        );
    }
    let mut seen: Vec<TimelineItem> = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let page = suite
            .interactions_client()
            .get_timeline(GetTimelineRequest {
                page_size: 7,
                page_token: token.clone(),
                ..timeline_of(&acme.id)
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.items);
        // Between pages: one newer than everything, one older than everything, one among what is
        // already read.
        round += 1;
        call(&suite, &acme.id, base + 10_000 + round, "newer").await;
        call(&suite, &acme.id, base - 10_000 - round, "older").await;
        call(&suite, &acme.id, base + 29 * 60 - round, "passed").await;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let ids: Vec<&str> = seen.iter().map(|i| i.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no item twice");
    assert!(
        before.iter().all(|id| unique.contains(id.as_str())),
        "every item there when paging began is seen"
    );
    let positions: Vec<(i64, i32, &str)> = seen
        .iter()
        .map(|i| {
            let t = i.occur_time.unwrap();
            (t.seconds, t.nanos, i.id.as_str())
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
    // The older items that arrived meanwhile were reached and shown, once.
    assert!(seen.len() > before.len());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_party_merge_moves_the_history_to_the_survivor() {
    let suite = Suite::start().await.unwrap();
    let survivor = party(&suite, PartyKind::Organization, "Acme").await;
    let merged = party(&suite, PartyKind::Organization, "ACME Ltd").await;
    let mut interactions = suite.interactions_client();
    let theirs = call(&suite, &merged.id, 1_790_000_000, "Called the duplicate").await;
    let ours = call(&suite, &survivor.id, 1_790_000_100, "Called the survivor").await;
    let note = interactions
        .add_note(AddNoteRequest {
            note: Some(Note {
                party_id: merged.id.clone(),
                text: "Noted on the duplicate".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    suite
        .parties_client()
        .merge_parties(MergePartiesRequest {
            surviving_party_id: survivor.id.clone(),
            merged_party_id: merged.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let items = timeline_when(&suite, timeline_of(&survivor.id), |items| items.len() == 3).await;
    let ids: HashSet<String> = items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        ids,
        HashSet::from([theirs.id.clone(), ours.id.clone(), note.id.clone()])
    );
    assert!(timeline(&suite, timeline_of(&merged.id)).await.is_empty());
    let listed = interactions
        .list_interactions(ListInteractionsRequest {
            party_id: survivor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    assert_eq!(listed.len(), 2);
    let notes = interactions
        .list_notes(ListNotesRequest {
            party_id: survivor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notes;
    assert_eq!(notes.len(), 1);
    // What the contact was: with the party as it was then.
    assert_eq!(
        listed
            .iter()
            .find(|i| i.id == theirs.id)
            .unwrap()
            .participants[0]
            .id,
        merged.id
    );
    suite.stop().await.unwrap();
}
