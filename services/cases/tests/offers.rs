//! Offers through the public API with the suite around them: figures as a hand-computed invoice
//! (several tax rates, the client's loyalty discount, a coupon, a 0.005 edge), a PDF a PDF reader
//! reads back, versions, and acceptance requesting exactly one sales order whatever the retries.

mod offering;

use std::{process::Command, time::Duration};

use crm_e2e::Suite;
use crm_proto::crm::{cases::v1::*, common::v1::Money, sales::v1::SalesOrderRequested};
use crm_testkit::{read_topic, refusal_reason as reason};
use offering::{client, fridges, line, offer_for};
use prost::Message;

fn amount(money: &Option<Money>) -> &str {
    &money.as_ref().unwrap().amount
}

/// The text a PDF reader gets out of `pdf`, no-break spaces as spaces.
fn pdf_text(pdf: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("offer-{}.pdf", uuid::Uuid::now_v7()));
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian's poppler-utils) is installed");
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .replace('\u{a0}', " ")
}

#[tokio::test]
async fn an_offer_adds_up_renders_and_becomes_exactly_one_sales_order() {
    let suite = Suite::start().await.unwrap();
    let (anna, membership, coupon) = client(&suite).await;
    let mut offers = suite.offers_client();
    let offer = offers
        .create_offer(CreateOfferRequest {
            offer: Some(offer_for(&anna, &membership)),
            lines: fridges(),
            coupon_code: coupon.to_lowercase(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(offer.status(), OfferStatus::Draft);
    let v1 = &offer.versions[0];
    let figures: Vec<(&str, &str, &str)> = v1
        .lines
        .iter()
        .map(|l| {
            (
                l.member_discount_percent.as_str(),
                l.applied_discount_percent.as_str(),
                l.net.as_str(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            ("7.5", "16.75", "4994.98"),
            ("0", "10", "270.00"),
            ("0", "10", "0.05"),
            ("0", "10", "45.00"),
        ]
    );
    let rates: Vec<(&str, &str, &str, &str)> = v1
        .tax_totals
        .iter()
        .map(|t| {
            (
                t.tax_code.as_str(),
                amount(&t.net),
                amount(&t.tax),
                amount(&t.gross),
            )
        })
        .collect();
    assert_eq!(
        rates,
        [
            ("23", "4995.03", "1148.86", "6143.89"),
            ("8", "270.00", "21.60", "291.60"),
            ("zw", "45.00", "0.00", "45.00"),
        ]
    );
    assert_eq!(
        (amount(&v1.net), amount(&v1.tax), amount(&v1.gross)),
        ("5310.03", "1170.46", "6480.49")
    );
    assert_eq!(
        (v1.coupon_code.as_str(), v1.coupon_percent.as_str()),
        (coupon.as_str(), "10")
    );

    // The document, read back by a PDF reader: the lines, the rates and the totals, in Polish.
    let pdf = offers
        .render_offer(RenderOfferRequest {
            id: offer.id.clone(),
            format: DocumentFormat::Pdf as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(
        (pdf.template.as_str(), pdf.template_version),
        ("offer.pl-PL", 1)
    );
    let text = pdf_text(&pdf.content);
    for expected in [
        "Oferta",
        "Anna Kowalska",
        "Lodówka Polar 300",
        "Montaż i uruchomienie",
        "w dzień roboczy",
        "Utylizacja starego sprzętu",
        "16,75%",
        "4 994,98",
        "2,5",
        "0,05",
        "4 995,03",
        "1 148,86",
        "6 143,89",
        "291,60",
        "5 310,03 PLN",
        "1 170,46 PLN",
        "6 480,49 PLN",
        "<b>Not bold</b> & plain",
    ] {
        assert!(text.contains(expected), "{expected:?} is not in:\n{text}");
    }
    // A line whose description spans two lines keeps the table's columns: each row holds its
    // own figures.
    let row = |words: &str| {
        text.lines()
            .find(|l| l.contains(words))
            .unwrap_or_else(|| panic!("a row with {words:?} in:\n{text}"))
            .to_owned()
    };
    assert!(row("Transport").contains("0,05"), "{text}");
    assert!(row("Montaż i uruchomienie").contains("270,00"), "{text}");
    let html = offers
        .render_offer(RenderOfferRequest {
            id: offer.id.clone(),
            format: DocumentFormat::Html as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let page = String::from_utf8(html.content).unwrap();
    assert!(page.contains("&lt;b&gt;Not bold&lt;/b&gt; &amp; plain"));
    assert!(!page.contains("<b>Not bold"));
    assert!(page.contains("6\u{a0}480,49 PLN"));

    // Decided only once sent; what was sent is not edited.
    let early = offers
        .accept_offer(AcceptOfferRequest {
            id: offer.id.clone(),
            version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&early), "OFFER_NOT_SENT");
    let sent = offers
        .send_offer(SendOfferRequest {
            id: offer.id.clone(),
            etag: offer.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.status(), OfferStatus::Sent);
    let edit = offers
        .update_offer(UpdateOfferRequest {
            offer: Some(Offer {
                id: offer.id.clone(),
                title: "Changed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&edit), "OFFER_NOT_DRAFT");

    // Accepted, replayed, accepted again by a client that lost the answer: one order.
    let accept = AcceptOfferRequest {
        id: offer.id.clone(),
        version: 1,
        client_reference: "ZAM/2026/117".into(),
        request_id: "accept-1".into(),
        ..Default::default()
    };
    let accepted = offers
        .accept_offer(accept.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status(), OfferStatus::Accepted);
    assert_eq!(accepted.accepted_version, 1);
    assert_eq!(accepted.client_reference, "ZAM/2026/117");
    assert!(!accepted.order_request_id.is_empty());
    let replayed = offers
        .accept_offer(accept.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, accepted);
    let again = offers
        .accept_offer(AcceptOfferRequest {
            request_id: "accept-2".into(),
            ..accept.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.order_request_id, accepted.order_request_id);
    let late = offers
        .reject_offer(RejectOfferRequest {
            id: offer.id.clone(),
            reason: "changed my mind".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "OFFER_CLOSED");

    // A second offer in two versions: the client accepts what is current.
    let second = offers
        .create_offer(CreateOfferRequest {
            offer: Some(Offer {
                locale: "en".into(),
                ..offer_for(&anna, &membership)
            }),
            lines: vec![line("Freezer", "1", "899", "0", ("23", "23"))],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.locale, "en-GB");
    let sent = offers
        .send_offer(SendOfferRequest {
            id: second.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let v2 = offers
        .add_offer_version(AddOfferVersionRequest {
            offer_id: second.id.clone(),
            lines: vec![line("Freezer", "1", "849", "0", ("23", "23"))],
            etag: sent.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((v2.status(), v2.versions.len()), (OfferStatus::Draft, 2));
    offers
        .send_offer(SendOfferRequest {
            id: second.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stale = offers
        .accept_offer(AcceptOfferRequest {
            id: second.id.clone(),
            version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&stale), "OFFER_VERSION_NOT_CURRENT");
    offers
        .accept_offer(AcceptOfferRequest {
            id: second.id.clone(),
            version: 2,
            ..Default::default()
        })
        .await
        .unwrap();

    // The ERP sees one order per accepted offer, with the figures the client accepted. The relay
    // publishes in commit order: a duplicate of the first would be out before the second, and
    // a third record gets a few seconds more to show up.
    let brokers = suite.broker.brokers();
    let two = read_topic(&brokers, "crm.sales.orders.v1", 2, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    let orders = read_topic(&brokers, "crm.sales.orders.v1", 3, Duration::from_secs(5))
        .await
        .unwrap();
    let mut orders: Vec<SalesOrderRequested> = orders
        .iter()
        .map(|r| SalesOrderRequested::decode(r.payload.as_slice()).unwrap())
        .collect();
    orders.sort_by_key(|o| o.offer_id.clone());
    let offer_ids: Vec<&str> = orders.iter().map(|o| o.offer_id.as_str()).collect();
    assert_eq!(offer_ids, [offer.id.as_str(), second.id.as_str()]);
    let first = &orders[0];
    assert_eq!(first.order_request_id, accepted.order_request_id);
    assert_eq!(
        (first.party_id.as_str(), first.client_reference.as_str()),
        (anna.id.as_str(), "ZAM/2026/117")
    );
    let nets: Vec<&str> = first.lines.iter().map(|l| l.net.as_str()).collect();
    assert_eq!(nets, ["4994.98", "270.00", "0.05", "45.00"]);
    assert_eq!(
        (amount(&first.gross), first.coupon_code.as_str()),
        ("6480.49", coupon.as_str())
    );
    assert_eq!(
        (orders[1].offer_version, amount(&orders[1].net)),
        (2, "849.00")
    );

    // Downstream sees each step of the first offer, without its words.
    let changes = read_topic(&brokers, "crm.cases.offer.v1", 8, Duration::from_secs(20))
        .await
        .unwrap();
    let first_changes: Vec<String> = changes
        .iter()
        .map(|r| OfferChanged::decode(r.payload.as_slice()).unwrap())
        .filter(|e| e.offer.as_ref().unwrap().id == offer.id)
        .inspect(|e| {
            let o = e.offer.as_ref().unwrap();
            assert!(o.notes.is_empty() && o.title.is_empty());
            assert!(o.versions[0].lines.iter().all(|l| l.description.is_empty()));
        })
        .map(|e| e.change)
        .collect();
    assert_eq!(first_changes, ["created", "sent", "accepted"]);
    suite.stop().await.unwrap();
}
