//! Invoiced sales earn points by the program's accrual rules, exactly once per invoice line, and
//! credit notes take them back, through the real broker as an ERP would deliver them.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::{
    common::v1::Date,
    loyalty::v1::*,
    parties::v1::PartyKind,
    sales::v1::{
        CreditNote, Invoice, InvoiceLine, ReturnedLine, SalesDocument, sales_document::Document,
    },
};
use crm_testkit::{eventually, read_topic};
use prost::Message;
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

/// The ERP's side: one document on the invoice topic with CloudEvents headers.
async fn deliver(brokers: &str, key: &str, ce_id: &str, document: Document) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let payload = SalesDocument {
        document: Some(document),
    }
    .encode_to_vec();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "ce_id",
            value: Some(ce_id),
        })
        .insert(Header {
            key: "ce_type",
            value: Some("crm.sales.v1.SalesDocument"),
        })
        .insert(Header {
            key: "ce_source",
            value: Some("/erp/test"),
        });
    producer
        .send(
            FutureRecord::to("crm.sales.invoices.v1")
                .key(key)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

fn line(id: &str, category: &str, net: &str) -> InvoiceLine {
    InvoiceLine {
        line_id: id.into(),
        product_id: format!("sku-{id}"),
        category: category.into(),
        quantity: "1".into(),
        net_amount: net.into(),
    }
}

async fn wait_for_balance(suite: &Suite, member: &Membership, expected: i64) -> i64 {
    let mut client = suite.client.clone();
    let reached = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        let member = member.clone();
        async move { (balance(&mut client, &member).await.balance == expected).then_some(()) }
    })
    .await;
    let now = balance(&mut client, member).await.balance;
    assert!(reached.is_some(), "balance {now}, expected {expected}");
    now
}

#[tokio::test]
async fn invoices_accrue_once_per_line_and_credit_notes_reverse_them() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let rules = client
        .set_accrual_rules(SetAccrualRulesRequest {
            program_id: program.id.clone(),
            rules: Some(AccrualRules {
                operation_type: "purchase".into(),
                points_per_unit: "1".into(),
                category_rates: vec![CategoryRate {
                    category: "premium".into(),
                    points_per_unit: "2.5".into(),
                }],
                minimum_amount: "10".into(),
                cap_per_invoice: 1000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rules.accrual_rules.unwrap().category_rates[0].points_per_unit,
        "2.5"
    );
    let party = suite.party(PartyKind::Organization, "Acme").await;
    suite.consent_to_loyalty(&party.id).await;
    let member = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let invoice = Invoice {
        invoice_id: "inv-1".into(),
        party_id: party.id.clone(),
        number: "FV/2026/11/1".into(),
        issue_date: Some(Date {
            year: 2026,
            month: 11,
            day: 22,
        }),
        currency_code: "PLN".into(),
        lines: vec![line("1", "basic", "100.99"), line("2", "premium", "40.00")],
    };
    let brokers = suite.loyalty.broker.brokers();
    deliver(
        &brokers,
        "inv-1",
        "evt-1",
        Document::Invoice(invoice.clone()),
    )
    .await;
    // floor(100.99 × 1) + floor(40 × 2.5)
    wait_for_balance(&suite, &member, 200).await;

    // Delivered again, and re-sent by the ERP under a new event id: nothing more is earned.
    deliver(
        &brokers,
        "inv-1",
        "evt-1",
        Document::Invoice(invoice.clone()),
    )
    .await;
    deliver(
        &brokers,
        "inv-1",
        "evt-1-resent",
        Document::Invoice(invoice.clone()),
    )
    .await;
    // A small invoice below the minimum, then a marker invoice: once it counts, the others were handled.
    let small = Invoice {
        invoice_id: "inv-2".into(),
        lines: vec![line("1", "basic", "9.99")],
        ..invoice.clone()
    };
    deliver(&brokers, "inv-2", "evt-2", Document::Invoice(small)).await;
    let marker = Invoice {
        invoice_id: "inv-3".into(),
        lines: vec![line("1", "basic", "10")],
        ..invoice.clone()
    };
    deliver(&brokers, "inv-3", "evt-3", Document::Invoice(marker)).await;
    assert_eq!(wait_for_balance(&suite, &member, 210).await, 210);

    let entries = client
        .list_ledger_entries(ListLedgerEntriesRequest {
            account: account(&member),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 3, "one entry per line: {entries:?}");

    // The premium line is returned; the credit note arrives twice.
    let note = CreditNote {
        credit_note_id: "cn-1".into(),
        invoice_id: "inv-1".into(),
        party_id: party.id.clone(),
        number: "FK/2026/11/1".into(),
        line_ids: vec!["2".into()],
        lines: vec![],
    };
    deliver(
        &brokers,
        "inv-1",
        "evt-4",
        Document::CreditNote(note.clone()),
    )
    .await;
    deliver(
        &brokers,
        "inv-1",
        "evt-4-resent",
        Document::CreditNote(note),
    )
    .await;
    wait_for_balance(&suite, &member, 110).await;

    // Line 1 (100 points) comes back in parts: a quarter of its amount, then another quarter of
    // its amount (half its quantity).
    let partial = |id: &str, net_amount: &str, quantity: &str| CreditNote {
        credit_note_id: id.into(),
        invoice_id: "inv-1".into(),
        party_id: party.id.clone(),
        number: format!("FK/{id}"),
        line_ids: vec![],
        lines: vec![ReturnedLine {
            line_id: "1".into(),
            quantity: quantity.into(),
            net_amount: net_amount.into(),
        }],
    };
    let quarter = partial("cn-p1", "25.25", "");
    deliver(
        &brokers,
        "inv-1",
        "evt-p1",
        Document::CreditNote(quarter.clone()),
    )
    .await;
    // floor(100 × 25.25 / 100.99)
    wait_for_balance(&suite, &member, 85).await;
    // The same note re-sent under a new event id returns nothing more.
    deliver(
        &brokers,
        "inv-1",
        "evt-p1-again",
        Document::CreditNote(quarter),
    )
    .await;
    let half = partial("cn-p2", "25.25", "0.5");
    deliver(&brokers, "inv-1", "evt-p2", Document::CreditNote(half)).await;
    // Half of the line is back in all: 50 points, of which 25 were taken back already.
    wait_for_balance(&suite, &member, 60).await;
    let line_operation = GetOperationRequest {
        operation_id: format!("invoice:inv-1:1:{}", program.id),
    };
    let earned = client
        .get_operation(line_operation.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(earned.status(), OperationStatus::PartiallyReversed);
    assert_eq!(earned.reversed_points, 50);

    // A second note for the whole invoice reverses only what is left.
    let whole = CreditNote {
        credit_note_id: "cn-2".into(),
        line_ids: vec![],
        ..Default::default()
    };
    let whole = CreditNote {
        invoice_id: "inv-1".into(),
        party_id: party.id.clone(),
        number: "FK/2".into(),
        ..whole
    };
    deliver(&brokers, "inv-1", "evt-5", Document::CreditNote(whole)).await;
    wait_for_balance(&suite, &member, 10).await;
    let earned = client
        .get_operation(line_operation)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(earned.status(), OperationStatus::Reversed);
    assert_eq!(earned.reversed_points, 100);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn a_document_the_ledger_cannot_take_is_dead_lettered() {
    let suite = Suite::start().await;
    let brokers = suite.loyalty.broker.brokers();
    let broken = Invoice {
        invoice_id: "inv:9".into(),
        party_id: "not-a-party".into(),
        ..Default::default()
    };
    deliver(&brokers, "inv-9", "evt-9", Document::Invoice(broken)).await;
    let parked = read_topic(
        &brokers,
        "crm.sales.invoices.v1.dlq",
        1,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].headers["ce_id"], "evt-9");
    assert!(
        parked[0].headers["crm_dlq_error"].contains("invoice.party_id"),
        "{:?}",
        parked[0].headers
    );
    suite.assert_invariants().await;
}

#[tokio::test]
async fn discounts_follow_assignments_validity_and_invoiced_turnover() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let party = suite.party(PartyKind::Organization, "Acme").await;
    let set = |discount: Discount| SetDiscountRequest {
        discount: Some(discount),
        ..Default::default()
    };
    let own = client
        .set_discount(set(Discount {
            party_id: party.id.clone(),
            price_list: "retail".into(),
            percentage: "5".into(),
            valid_from: Some(Date {
                year: 2026,
                month: 1,
                day: 1,
            }),
            valid_to: Some(Date {
                year: 2026,
                month: 12,
                day: 31,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    for (category, percentage, threshold) in [("", "10", "1000"), ("premium", "12", "5000")] {
        client
            .set_discount(set(Discount {
                price_list: "retail".into(),
                category: category.into(),
                percentage: percentage.into(),
                turnover_threshold: threshold.into(),
                currency_code: "PLN".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    let applicable = |category: &str, date: Date| GetApplicableDiscountsRequest {
        party_id: party.id.clone(),
        price_list: "retail".into(),
        category: category.into(),
        date: Some(date),
    };
    let today = Date {
        year: 2026,
        month: 11,
        day: 22,
    };
    let percentages = |response: GetApplicableDiscountsResponse| -> Vec<(String, String)> {
        response
            .discounts
            .into_iter()
            .map(|d| (d.discount.unwrap().percentage, d.source))
            .collect()
    };
    let now = client
        .get_applicable_discounts(applicable("basic", today))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(percentages(now), [("5".to_owned(), "assigned".to_owned())]);

    let invoice = Invoice {
        invoice_id: "inv-big".into(),
        party_id: party.id.clone(),
        number: "FV/1".into(),
        currency_code: "PLN".into(),
        lines: vec![line("1", "basic", "1500")],
        ..Default::default()
    };
    deliver(
        &suite.loyalty.broker.brokers(),
        "inv-big",
        "evt-big",
        Document::Invoice(invoice),
    )
    .await;
    let reached = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        let request = applicable("basic", today);
        async move {
            let response = client
                .get_applicable_discounts(request)
                .await
                .ok()?
                .into_inner();
            (response.turnover.get("PLN").map(String::as_str) == Some("1500")).then_some(response)
        }
    })
    .await
    .expect("the invoice counts as turnover");
    assert_eq!(
        percentages(reached),
        [
            ("10".to_owned(), "turnover".to_owned()),
            ("5".to_owned(), "assigned".to_owned())
        ],
        "the 12% premium level needs 5000"
    );

    let note = CreditNote {
        credit_note_id: "cn-big".into(),
        invoice_id: "inv-big".into(),
        party_id: party.id.clone(),
        ..Default::default()
    };
    deliver(
        &suite.loyalty.broker.brokers(),
        "inv-big",
        "evt-cn-big",
        Document::CreditNote(note),
    )
    .await;
    let back = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        let request = applicable("basic", today);
        async move {
            let response = client
                .get_applicable_discounts(request)
                .await
                .ok()?
                .into_inner();
            (response.discounts.len() == 1).then_some(response)
        }
    })
    .await
    .expect("a credit note takes the turnover back");
    assert_eq!(percentages(back), [("5".to_owned(), "assigned".to_owned())]);

    let next_year = client
        .get_applicable_discounts(applicable(
            "basic",
            Date {
                year: 2027,
                month: 1,
                day: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        next_year.discounts.is_empty(),
        "the party's discount ended with 2026"
    );

    let both = client
        .set_discount(set(Discount {
            turnover_threshold: "1".into(),
            ..own.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(both.code(), tonic::Code::InvalidArgument);

    // A party's own discounts are listed apart from the automatic levels, and removed by id.
    let list = |party_id: &str| ListDiscountsRequest {
        party_id: party_id.into(),
        ..Default::default()
    };
    let owns = client
        .list_discounts(list(&party.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(owns.discounts, std::slice::from_ref(&own));
    let levels = client.list_discounts(list("")).await.unwrap().into_inner();
    assert!(
        levels
            .discounts
            .iter()
            .all(|d| d.party_id.is_empty() && !d.turnover_threshold.is_empty())
    );
    assert!(!levels.discounts.is_empty());
    let removed = client
        .delete_discount(DeleteDiscountRequest {
            id: own.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed, own);
    assert!(
        client
            .list_discounts(list(&party.id))
            .await
            .unwrap()
            .into_inner()
            .discounts
            .is_empty()
    );
    let again = client
        .delete_discount(DeleteDiscountRequest {
            id: own.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn tier_and_campaign_multipliers_apply_within_the_cap_per_period() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    client
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "gold".into(),
                display_name: "Gold".into(),
                threshold: 1_000_000,
                window_months: 12,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    client
        .set_accrual_rules(SetAccrualRulesRequest {
            program_id: program.id.clone(),
            rules: Some(AccrualRules {
                operation_type: "purchase".into(),
                points_per_unit: "1".into(),
                tier_multipliers: vec![TierMultiplier {
                    tier: "gold".into(),
                    multiplier: "2".into(),
                }],
                campaigns: vec![Campaign {
                    code: "toy_week".into(),
                    multiplier: "1.5".into(),
                    categories: vec!["toys".into()],
                    start_time: Some(prost_types::Timestamp {
                        seconds: now - 86_400 * 3,
                        nanos: 0,
                    }),
                    end_time: Some(prost_types::Timestamp {
                        seconds: now + 86_400 * 3,
                        nanos: 0,
                    }),
                }],
                cap_per_period: 500,
                period_days: 30,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let party = suite.party(PartyKind::Organization, "Acme").await;
    suite.consent_to_loyalty(&party.id).await;
    let member = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: party.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    client
        .assign_tier(AssignTierRequest {
            membership_id: member.id.clone(),
            tier: "gold".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let brokers = suite.loyalty.broker.brokers();
    let invoice = |id: &str, lines: Vec<InvoiceLine>| Invoice {
        invoice_id: id.into(),
        party_id: party.id.clone(),
        number: format!("FV/{id}"),
        currency_code: "PLN".into(),
        lines,
        ..Default::default()
    };
    // 100 toys × 2 (gold) × 1.5 (toy week) + 50 other × 2 = 400.
    deliver(
        &brokers,
        "a",
        "evt-a",
        Document::Invoice(invoice(
            "a",
            vec![line("1", "toys", "100"), line("2", "books", "50")],
        )),
    )
    .await;
    wait_for_balance(&suite, &member, 400).await;
    // 100 × 2 = 200 would pass the 500 cap for the last 30 days: 100 are earned.
    let b = invoice("b", vec![line("1", "books", "100")]);
    deliver(&brokers, "b", "evt-b", Document::Invoice(b.clone())).await;
    wait_for_balance(&suite, &member, 500).await;
    deliver(&brokers, "b", "evt-b-again", Document::Invoice(b)).await;
    // A marker on another member shows the redelivery was processed without effect.
    let other = suite.party(PartyKind::Organization, "Marker").await;
    suite.consent_to_loyalty(&other.id).await;
    let marker_member = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: other.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let marker = Invoice {
        party_id: other.id.clone(),
        ..invoice("m", vec![line("1", "books", "10")])
    };
    deliver(&brokers, "m", "evt-m", Document::Invoice(marker)).await;
    wait_for_balance(&suite, &marker_member, 10).await;
    assert_eq!(balance(&mut client, &member).await.balance, 500);
    suite.assert_invariants().await;
}
