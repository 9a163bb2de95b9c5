//! Cards: issued, activated by the first purchase, blocked, reissued with their history, closed.

mod common;

use common::*;
use crm_proto::crm::loyalty::v1::*;

fn purchase_with(card: &Card, id: &str, member: &Membership) -> RecordOperationRequest {
    RecordOperationRequest {
        card_number: card.number.clone(),
        ..operation(id, member, "purchase", 10)
    }
}

#[tokio::test]
async fn a_card_lives_from_issue_to_reissue_and_close() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Kowalski family").await;
    let other = suite.member(&program, "Someone else").await;

    let issue = |parent: &str| IssueCardRequest {
        membership_id: member.id.clone(),
        parent_card_id: parent.into(),
        ..Default::default()
    };
    let card = client.issue_card(issue("")).await.unwrap().into_inner();
    assert_eq!(card.status(), CardStatus::Issued);
    assert!(
        crm_loyalty::domain::valid_number(&card.number),
        "{}",
        card.number
    );
    let child = client
        .issue_card(issue(&card.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(child.parent_card_id, card.id);

    // The first purchase made with the card activates it.
    client
        .record_operation(purchase_with(&card, "p-1", &member))
        .await
        .unwrap();
    let cards = client
        .list_cards(ListCardsRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cards;
    let active = cards.iter().find(|c| c.id == card.id).unwrap();
    assert_eq!(active.status(), CardStatus::Active);
    // A child card shares the account: its purchases land on the same balance.
    client
        .record_operation(purchase_with(&child, "p-2", &member))
        .await
        .unwrap();
    assert_eq!(balance(&mut client, &member).await.balance, 20);

    let foreign = client
        .record_operation(purchase_with(&card, "p-3", &other))
        .await
        .unwrap_err();
    assert_eq!(reason(&foreign), "CARD_NOT_OF_MEMBER");
    let mut typo = card.clone();
    typo.number
        .replace_range(15.., if card.number.ends_with('0') { "1" } else { "0" });
    let bad = client
        .record_operation(purchase_with(&typo, "p-4", &member))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let blocked = client
        .block_card(BlockCardRequest {
            id: card.id.clone(),
            reason: "lost".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (blocked.status(), blocked.block_reason.as_str()),
        (CardStatus::Blocked, "lost")
    );
    let refused = client
        .record_operation(purchase_with(&card, "p-5", &member))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "CARD_NOT_USABLE");

    let replacement = client
        .reissue_card(ReissueCardRequest {
            id: card.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (replacement.status(), replacement.replaces_card_id.as_str()),
        (CardStatus::Issued, card.id.as_str())
    );
    assert_ne!(replacement.number, card.number);
    let all = client
        .list_cards(ListCardsRequest {
            membership_id: member.id.clone(),
            include_closed: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cards;
    let old = all.iter().find(|c| c.id == card.id).unwrap();
    assert_eq!(
        (old.status(), old.replaced_by_card_id.as_str()),
        (CardStatus::Closed, replacement.id.as_str())
    );
    let child = all.iter().find(|c| c.id == child.id).unwrap();
    assert_eq!(
        child.parent_card_id, replacement.id,
        "child cards follow their parent's new number"
    );
    // The same cards, a page of one at a time, newest first.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_cards(ListCardsRequest {
                membership_id: member.id.clone(),
                include_closed: true,
                page_size: 1,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.cards.len() <= 1);
        paged.extend(page.cards.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, all.iter().map(|c| c.id.clone()).collect::<Vec<_>>());

    client
        .close_card(CloseCardRequest {
            id: replacement.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let reopened = client
        .activate_card(ActivateCardRequest {
            id: replacement.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&reopened), "CARD_STATUS");
    let open = client
        .list_cards(ListCardsRequest {
            membership_id: member.id.clone(),
            include_closed: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cards;
    assert_eq!(open.len(), 1, "only the child card is still open");
    suite.assert_invariants().await;
}

/// Card numbers are random: a number already taken is reported as such (and another drawn), never
/// an error that aborts the issuing transaction.
#[tokio::test]
async fn a_taken_card_number_is_refused_without_failing_the_transaction() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Kowalski family").await;
    let card = client
        .issue_card(IssueCardRequest {
            membership_id: member.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let pool = crm_kit::store::connect(&suite.loyalty.database.url, 1, crm_kit::store::PATIENT)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let now = chrono::Utc::now();
    let mut twin = crm_loyalty::store::CardRow {
        id: uuid::Uuid::now_v7(),
        number: card.number.clone(),
        membership_id: member.id.parse().unwrap(),
        person_id: None,
        parent_id: None,
        status: crm_loyalty::domain::CardStatus::Issued,
        block_reason: String::new(),
        replaces_id: None,
        replaced_by: None,
        created_at: now,
        updated_at: now,
        created_by: "test".into(),
        updated_by: "test".into(),
    };
    let inserted = crm_loyalty::store::insert_card(&mut tx, &twin)
        .await
        .unwrap();
    assert!(!inserted, "the number is taken");
    twin.number = crm_loyalty::domain::new_number();
    let inserted = crm_loyalty::store::insert_card(&mut tx, &twin)
        .await
        .unwrap();
    assert!(inserted, "the same transaction goes on with another number");
    tx.rollback().await.unwrap();
}
