//! Pipelines and cases through the public API, with the suite around them: phases defined in
//! order, cases created, edited by etag, moved forwards and back, closed won or lost, reopened,
//! their passage through the phases kept, refusals naming their fields or reasons, and their
//! events without their words.

mod common;

use common::{phase, pln, sales_pipeline};
use crm_e2e::Suite;
use crm_proto::crm::{
    cases::v1::*,
    common::v1::{Date, Money},
};
use crm_testkit::{read_topic, refusal_reason as reason, violated_fields as fields};
use prost::Message;
use prost_types::FieldMask;
use tonic::Code;

#[tokio::test]
async fn a_case_goes_through_its_pipeline_and_keeps_its_history() {
    let suite = Suite::start().await.unwrap();
    let client_party = suite
        .consumer("Anna", "Kowalska", "anna.kowalska@example.pl")
        .await;
    let pipeline = sales_pipeline(&suite).await;
    let won = &pipeline.phases[3];
    assert_eq!((won.probability, pipeline.phases[4].probability), (100, 0));
    let mut cases = suite.cases_client();

    let case = cases
        .create_case(CreateCaseRequest {
            case: Some(Case {
                pipeline_id: pipeline.id.clone(),
                title: "Fridges for the new office".into(),
                kind: CaseKind::Sales as i32,
                owner: "jan".into(),
                party_id: client_party.id.clone(),
                expected_value: pln("12500.00"),
                expected_close_date: Some(Date {
                    year: 2027,
                    month: 1,
                    day: 31,
                }),
                ..Default::default()
            }),
            request_id: "case-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((case.phase.as_str(), case.probability), ("lead", 10));
    assert_eq!(case.status(), CaseStatus::Open);
    assert_eq!(case.history.len(), 1);

    // Edited by etag: a stale one is refused; amounts are in the case's currency.
    let mask = |paths: &[&str]| {
        Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    };
    let stale = cases
        .update_case(UpdateCaseRequest {
            case: Some(Case {
                id: case.id.clone(),
                etag: "0".into(),
                ..Default::default()
            }),
            update_mask: mask(&["owner"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let euros = cases
        .update_case(UpdateCaseRequest {
            case: Some(Case {
                id: case.id.clone(),
                planned_cost: Some(Money {
                    amount: "100".into(),
                    currency_code: "EUR".into(),
                }),
                ..Default::default()
            }),
            update_mask: mask(&["planned_cost"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&euros), ["case.planned_cost.currency_code"]);
    let case = cases
        .update_case(UpdateCaseRequest {
            case: Some(Case {
                id: case.id.clone(),
                etag: case.etag.clone(),
                probability_override: Some(45),
                planned_cost: pln("8000"),
                ..Default::default()
            }),
            update_mask: mask(&["probability_override", "planned_cost"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.probability, 45);
    assert_eq!(case.planned_cost, pln("8000"));

    // Forwards and back between open phases; closing is CloseCase's.
    let moved = cases
        .move_case(MoveCaseRequest {
            id: case.id.clone(),
            phase: "proposal".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.phase, "proposal");
    let to_won = cases
        .move_case(MoveCaseRequest {
            id: case.id.clone(),
            phase: "won".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&to_won), "CLOSE_TO_CLOSE");
    let no_reason = cases
        .close_case(CloseCaseRequest {
            id: case.id.clone(),
            outcome: CaseStatus::Lost as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&no_reason), ["lost_reason"]);
    let lost = cases
        .close_case(CloseCaseRequest {
            id: case.id.clone(),
            outcome: CaseStatus::Lost as i32,
            lost_reason: "A competitor was cheaper".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (lost.status(), lost.phase.as_str(), lost.probability),
        (CaseStatus::Lost, "lost", 0)
    );
    assert!(lost.close_time.is_some());
    let closed = cases
        .move_case(MoveCaseRequest {
            id: case.id.clone(),
            phase: "qualified".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&closed), "CASE_CLOSED");
    let reopened = cases
        .move_case(MoveCaseRequest {
            id: case.id.clone(),
            phase: "qualified".into(),
            reopen: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.status(), CaseStatus::Open);
    assert!(reopened.lost_reason.is_empty() && reopened.close_time.is_none());
    let won = cases
        .close_case(CloseCaseRequest {
            id: case.id.clone(),
            outcome: CaseStatus::Won as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((won.status(), won.probability), (CaseStatus::Won, 100));
    let passage: Vec<&str> = won.history.iter().map(|v| v.phase.as_str()).collect();
    assert_eq!(passage, ["lead", "proposal", "lost", "qualified", "won"]);
    assert!(won.history[..4].iter().all(|v| v.leave_time.is_some()));
    assert!(won.history[4].leave_time.is_none());

    // Downstream sees each step, without the case's words.
    let events = read_topic(
        &suite.broker.brokers(),
        "crm.cases.case.v1",
        6,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    let changes: Vec<String> = events
        .iter()
        .map(|e| CaseChanged::decode(e.payload.as_slice()).unwrap())
        .inspect(|e| assert!(e.case.as_ref().unwrap().title.is_empty()))
        .map(|e| e.change)
        .collect();
    assert_eq!(
        changes,
        ["created", "updated", "moved", "lost", "reopened", "won"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn what_cannot_be_is_refused_by_field() {
    let suite = Suite::start().await.unwrap();
    let mut cases = suite.cases_client();
    let bad = cases
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "Backwards".into(),
                phases: vec![
                    phase("proposal", PhaseGroup::InProgress, 60),
                    phase("lead", PhaseGroup::Potential, 10),
                    phase("won", PhaseGroup::Won, 100),
                    phase("lost", PhaseGroup::Lost, 0),
                ],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["pipeline.phases[1].group"]);
    let pipeline = sales_pipeline(&suite).await;
    let status = cases
        .create_case(CreateCaseRequest {
            case: Some(Case {
                pipeline_id: pipeline.id.clone(),
                kind: CaseKind::Sales as i32,
                party_id: uuid::Uuid::now_v7().to_string(),
                phase: "won".into(),
                probability_override: Some(120),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&status),
        [
            "case.expected_value",
            "case.owner",
            "case.probability_override",
            "case.title"
        ]
    );
    let unknown = cases
        .create_case(CreateCaseRequest {
            case: Some(Case {
                pipeline_id: pipeline.id.clone(),
                title: "Someone".into(),
                owner: "jan".into(),
                kind: CaseKind::Sales as i32,
                party_id: uuid::Uuid::now_v7().to_string(),
                expected_value: pln("1"),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&unknown), ["case.party_id"]);
    let closed_phase = cases
        .create_case(CreateCaseRequest {
            case: Some(Case {
                pipeline_id: pipeline.id.clone(),
                title: "Internal".into(),
                owner: "jan".into(),
                kind: CaseKind::Internal as i32,
                phase: "won".into(),
                expected_value: pln("0"),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&closed_phase), ["case.phase"]);

    // Lists page by id, newest first, and filter.
    for i in 0..5 {
        cases
            .create_case(CreateCaseRequest {
                case: Some(Case {
                    pipeline_id: pipeline.id.clone(),
                    title: format!("Internal {i}"),
                    owner: if i % 2 == 0 { "jan" } else { "ola" }.into(),
                    kind: CaseKind::Internal as i32,
                    expected_value: pln("0"),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = cases
            .list_cases(ListCasesRequest {
                owner: "jan".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.cases.into_iter().map(|c| c.title));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["Internal 4", "Internal 2", "Internal 0"]);
    suite.stop().await.unwrap();
}
