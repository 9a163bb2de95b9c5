//! What offers refuse, named by field or reason, and the sweep expiring a sent offer that was
//! not decided in time.

mod offering;

use std::time::Duration;

use crm_e2e::Suite;
use crm_proto::crm::{cases::v1::*, common::v1::Date};
use crm_testkit::{read_topic, refusal_reason as reason, violated_fields as fields};
use offering::{client, fridges, line, offer_for};
use prost::Message;

#[tokio::test]
async fn what_cannot_be_offered_is_refused_by_field() {
    let suite = Suite::start().await.unwrap();
    let (anna, membership, _) = client(&suite).await;
    let mut offers = suite.offers_client();
    let bad = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                currency_code: "zł".into(),
                locale: "tlh".into(),
                valid_until: Some(Date {
                    year: 2020,
                    month: 1,
                    day: 1,
                }),
                price_list: "Retail List".into(),
                ..offer_for(&anna, &membership)
            }),
            lines: vec![
                line("", "-1", "abc", "101", ("23", "23")),
                line("Other", "1", "1", "0", ("23", "8")),
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "lines[0].description",
            "lines[0].discount_percent",
            "lines[0].quantity",
            "lines[0].unit_price",
            "lines[1].tax_percent",
            "offer.currency_code",
            "offer.locale",
            "offer.price_list",
            "offer.valid_until",
        ]
    );
    let no_lines = offers
        .create_offer(CreateOfferRequest {
            offer: Some(offer_for(&anna, &membership)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&no_lines), ["lines"]);
    let stranger = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                party_id: uuid::Uuid::now_v7().to_string(),
                ..offer_for(&anna, &membership)
            }),
            lines: fridges(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&stranger), ["offer.party_id"]);
    let unknown_coupon = offers
        .create_offer(CreateOfferRequest {
            offer: Some(offer_for(&anna, &membership)),
            lines: fridges(),
            coupon_code: "AAAA-BBBB-CCCC".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&unknown_coupon), ["coupon_code"]);
    let no_member = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                membership_id: String::new(),
                ..offer_for(&anna, &membership)
            }),
            lines: fridges(),
            coupon_code: "AAAA-BBBB-CCCC".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&no_member), ["coupon_code"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sent_offer_not_decided_in_time_expires() {
    let mut suite = Suite::start().await.unwrap();
    let anna = suite
        .consumer("Anna", "Nowak", "anna.nowak@example.pl")
        .await;
    let mut offers = suite.offers_client();
    let offer = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                party_id: anna.id.clone(),
                currency_code: "EUR".into(),
                ..Default::default()
            }),
            lines: vec![line("Consulting", "8", "95", "0", ("23", "23"))],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    offers
        .send_offer(SendOfferRequest {
            id: offer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Its last valid day was yesterday (the API accepts no such date; time passes for offers).
    sqlx::query("UPDATE offers SET valid_until = current_date - 1 WHERE id = $1::uuid")
        .bind(&offer.id)
        .execute(&mut suite.cases_db().await)
        .await
        .unwrap();
    let late = offers
        .accept_offer(AcceptOfferRequest {
            id: offer.id.clone(),
            version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "OFFER_EXPIRED");

    // The sweep runs as the service starts, then every minute.
    suite.stop_cases().await.unwrap();
    suite.start_cases().await.unwrap();
    let mut offers = suite.offers_client();
    let mut status = OfferStatus::Sent;
    for _ in 0..50 {
        let now = offers
            .get_offer(GetOfferRequest {
                id: offer.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        status = now.status();
        if status == OfferStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, OfferStatus::Expired);
    let changes = read_topic(
        &suite.broker.brokers(),
        "crm.cases.offer.v1",
        3,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let last = OfferChanged::decode(changes[2].payload.as_slice()).unwrap();
    assert_eq!(last.change, "expired");
    suite.stop().await.unwrap();
}
