//! The funnel and the forecast of a known set of cases, worked out by hand.

mod common;

use chrono::Datelike;
use common::{pln, sales_pipeline};
use crm_e2e::Suite;
use crm_proto::crm::{
    cases::v1::*,
    common::v1::{Date, Money},
};
use crm_testkit::violated_fields as fields;

#[tokio::test]
async fn the_funnel_adds_up_on_a_known_set() {
    let suite = Suite::start().await.unwrap();
    let pipeline = sales_pipeline(&suite).await;
    let mut cases = suite.cases_client();
    // (owner, value, currency, the phases it goes through after "lead", how it closes)
    type Known<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], Option<CaseStatus>);
    let set: [Known; 6] = [
        ("ola", "1000", "PLN", &[], None),
        // Back to where it began: it entered the lead once, and got as far as qualified.
        ("ola", "600", "PLN", &["qualified", "lead"], None),
        ("jan", "2000", "PLN", &["qualified", "proposal"], None),
        ("jan", "3000", "PLN", &["qualified"], Some(CaseStatus::Won)),
        ("jan", "4000", "PLN", &[], Some(CaseStatus::Lost)),
        ("jan", "500", "EUR", &[], None),
    ];
    for (owner, value, currency, phases, closed) in set {
        let case = cases
            .create_case(CreateCaseRequest {
                case: Some(Case {
                    pipeline_id: pipeline.id.clone(),
                    title: format!("{owner} {value}"),
                    owner: owner.into(),
                    kind: CaseKind::Internal as i32,
                    expected_value: Some(Money {
                        amount: value.into(),
                        currency_code: currency.into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for phase in phases {
            cases
                .move_case(MoveCaseRequest {
                    id: case.id.clone(),
                    phase: phase.to_string(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        if let Some(outcome) = closed {
            cases
                .close_case(CloseCaseRequest {
                    id: case.id.clone(),
                    outcome: outcome as i32,
                    lost_reason: "too dear".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let funnel = |owner: &str| GetFunnelRequest {
        pipeline_id: pipeline.id.clone(),
        currency_code: "pln".into(),
        owner: owner.into(),
        ..Default::default()
    };
    let all = cases.get_funnel(funnel("")).await.unwrap().into_inner();
    let figures: Vec<(&str, i64, String, String, i64, f64)> = all
        .phases
        .iter()
        .map(|p| {
            let amount = |m: &Option<Money>| {
                m.as_ref()
                    .unwrap()
                    .amount
                    .parse::<f64>()
                    .unwrap()
                    .to_string()
            };
            (
                p.phase.as_str(),
                p.count,
                amount(&p.value),
                amount(&p.weighted_value),
                p.entered,
                p.conversion,
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        figures,
        [
            ("lead", 2, s("1600"), s("160"), 5, 0.6),
            ("qualified", 0, s("0"), s("0"), 3, 2.0 / 3.0),
            ("proposal", 1, s("2000"), s("1200"), 1, 0.0),
            ("won", 1, s("3000"), s("3000"), 1, 0.0),
            ("lost", 1, s("4000"), s("0"), 1, 0.0),
        ]
    );
    let open = |m: &Option<Money>| m.as_ref().unwrap().amount.parse::<f64>().unwrap();
    assert_eq!(
        (open(&all.open_value), open(&all.open_weighted_value)),
        (3600.0, 1360.0)
    );
    assert!(all.phases.iter().all(|p| p.average_seconds >= 0.0));

    // One owner's share.
    let jan = cases.get_funnel(funnel("jan")).await.unwrap().into_inner();
    assert_eq!((jan.phases[0].count, jan.phases[0].entered), (0, 3));
    assert_eq!(jan.phases[0].conversion, 2.0 / 3.0);

    let refused = cases
        .get_funnel(GetFunnelRequest {
            pipeline_id: pipeline.id.clone(),
            currency_code: "zł".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["currency_code"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_forecast_sums_months_and_owners_plans_against_actuals() {
    let suite = Suite::start().await.unwrap();
    let pipeline = sales_pipeline(&suite).await;
    let mut cases = suite.cases_client();
    let day = |year, month, day| Some(Date { year, month, day });
    struct Known {
        owner: &'static str,
        value: Option<Money>,
        close: Option<Date>,
        phase: &'static str,
        probability: Option<i32>,
        outcome: Option<CaseStatus>,
        // planned cost, actual cost, planned revenue, actual revenue
        figures: [Option<Money>; 4],
    }
    let known = |owner, value: &str, close, phase, outcome| Known {
        owner,
        value: pln(value),
        close,
        phase,
        probability: None,
        outcome,
        figures: Default::default(),
    };
    let set = [
        Known {
            figures: [pln("400"), None, pln("1000"), None],
            ..known("ola", "1000", day(2027, 1, 15), "lead", None)
        },
        Known {
            figures: [pln("1500"), pln("1700"), pln("2000"), pln("1900")],
            ..known("jan", "2000", day(2027, 1, 31), "proposal", None)
        },
        Known {
            figures: [None, pln("2500"), None, pln("3000")],
            ..known(
                "jan",
                "3000",
                day(2027, 6, 1),
                "lead",
                Some(CaseStatus::Won),
            )
        },
        known("jan", "4000", None, "lead", Some(CaseStatus::Lost)),
        Known {
            value: Some(Money {
                amount: "500".into(),
                currency_code: "EUR".into(),
            }),
            ..known("jan", "0", day(2027, 1, 2), "lead", None)
        },
        known("jan", "700", None, "lead", None),
        Known {
            probability: Some(25),
            ..known("ola", "800", day(2027, 3, 1), "lead", None)
        },
    ];
    for k in set {
        let [planned_cost, actual_cost, planned_revenue, actual_revenue] = k.figures;
        let case = cases
            .create_case(CreateCaseRequest {
                case: Some(Case {
                    pipeline_id: pipeline.id.clone(),
                    title: "Known".into(),
                    owner: k.owner.into(),
                    kind: CaseKind::Internal as i32,
                    phase: k.phase.into(),
                    expected_value: k.value,
                    expected_close_date: k.close,
                    probability_override: k.probability,
                    planned_cost,
                    actual_cost,
                    planned_revenue,
                    actual_revenue,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(outcome) = k.outcome {
            cases
                .close_case(CloseCaseRequest {
                    id: case.id,
                    outcome: outcome as i32,
                    lost_reason: "went elsewhere".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let amount = |m: &Option<Money>| m.as_ref().unwrap().amount.parse::<f64>().unwrap();
    let month = |m: &ForecastMonth| {
        let d = m.month.unwrap_or_default();
        (
            (d.year, d.month, d.day),
            (
                m.open_count,
                amount(&m.open_value),
                amount(&m.weighted_value),
            ),
            (
                m.won_count,
                amount(&m.won_value),
                m.lost_count,
                amount(&m.lost_value),
            ),
        )
    };
    let plan = |f: &Option<PlanVsActual>| {
        let f = f.as_ref().unwrap();
        (
            f.cases,
            [
                &f.planned_cost,
                &f.actual_cost,
                &f.planned_revenue,
                &f.actual_revenue,
            ]
            .map(amount),
            (amount(&f.planned_margin), amount(&f.actual_margin)),
        )
    };
    let forecast = |from_month, before_month| GetForecastRequest {
        pipeline_id: pipeline.id.clone(),
        currency_code: "PLN".into(),
        from_month,
        before_month,
        ..Default::default()
    };

    let all = cases
        .get_forecast(forecast(None, None))
        .await
        .unwrap()
        .into_inner();
    // Closed cases count in the month they closed: this one.
    let now = chrono::Utc::now();
    let this_month = (now.year(), now.month() as i32, 1);
    assert_eq!(
        all.months.iter().map(month).collect::<Vec<_>>(),
        [
            (this_month, (0, 0.0, 0.0), (1, 3000.0, 1, 4000.0)),
            ((2027, 1, 1), (2, 3000.0, 1300.0), (0, 0.0, 0, 0.0)),
            ((2027, 3, 1), (1, 800.0, 200.0), (0, 0.0, 0, 0.0)),
        ]
    );
    let undated = all.undated.as_ref().unwrap();
    assert_eq!(undated.month, None);
    assert_eq!(
        (
            undated.open_count,
            amount(&undated.open_value),
            amount(&undated.weighted_value)
        ),
        (1, 700.0, 70.0)
    );
    let owners: Vec<_> = all
        .owners
        .iter()
        .map(|o| (o.owner.as_str(), plan(&o.figures)))
        .collect();
    assert_eq!(
        owners,
        [
            ("jan", (4, [1500.0, 4200.0, 2000.0, 4900.0], (500.0, 700.0))),
            ("ola", (2, [400.0, 0.0, 1000.0, 0.0], (600.0, 0.0))),
        ]
    );
    assert_eq!(
        plan(&all.total),
        (6, [1900.0, 4200.0, 3000.0, 4900.0], (1100.0, 700.0))
    );

    // A period: January and February 2027, given by any day of those months.
    let winter = cases
        .get_forecast(forecast(day(2027, 1, 10), day(2027, 3, 31)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(winter.months.len(), 1);
    assert_eq!(month(&winter.months[0]).1, (2, 3000.0, 1300.0));
    assert_eq!(winter.undated, None);
    assert_eq!(plan(&winter.total).0, 2);

    // One owner's.
    let ola = cases
        .get_forecast(GetForecastRequest {
            owner: "ola".into(),
            ..forecast(None, None)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ola.owners.len(), 1);
    assert_eq!(plan(&ola.total).0, 2);

    let refused = cases
        .get_forecast(GetForecastRequest {
            pipeline_id: "nope".into(),
            currency_code: String::new(),
            from_month: day(2027, 2, 30),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&refused),
        ["currency_code", "from_month", "pipeline_id"]
    );
    suite.stop().await.unwrap();
}
