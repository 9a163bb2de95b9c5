//! What downstream systems see: every change of a program, a coupon definition, a discount and a
//! bulk accrual is on its topic, and the latest event of each is the aggregate as the API answers.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::loyalty::v1::{
    AccrualRules, BulkAccrualChanged, BulkAccrualStatus, CouponDefinition, CouponDefinitionChanged,
    CouponKind, CouponsGenerated, CreateCouponDefinitionRequest, DefineTierRequest, Discount,
    DiscountChanged, GenerateCouponsRequest, GetBulkAccrualRequest, GetProgramRequest, Program,
    ProgramChanged, SetAccrualRulesRequest, SetDiscountRequest, StartBulkAccrualRequest, Tier,
    UpdateProgramRequest, start_bulk_accrual_request::Selection,
};
use crm_testkit::{eventually, rebuild};

#[tokio::test]
async fn downstream_systems_rebuild_programs_coupons_discounts_and_jobs_from_their_topics() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let brokers = suite.loyalty.broker.brokers();

    // Created, a point type and three operation types defined (5 events), renamed, a tier, rules.
    let program = suite.program().await;
    client
        .update_program(UpdateProgramRequest {
            program: Some(Program {
                id: program.id.clone(),
                display_name: "Partner club plus".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .define_tier(DefineTierRequest {
            program_id: program.id.clone(),
            tier: Some(Tier {
                code: "gold".into(),
                display_name: "Gold".into(),
                threshold: 1000,
                window_months: 12,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .set_accrual_rules(SetAccrualRulesRequest {
            program_id: program.id.clone(),
            rules: Some(AccrualRules {
                operation_type: "purchase".into(),
                points_per_unit: "0.5".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let programs = rebuild(
        &brokers,
        "crm.loyalty.program.v1",
        8,
        |event: ProgramChanged| event.program.map(|p| (p.id.clone(), p)),
    )
    .await;
    let got = client
        .get_program(GetProgramRequest {
            id: program.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(programs.get(&program.id), Some(&got));
    assert_eq!(got.tiers.len(), 1);
    assert!(got.accrual_rules.is_some());

    let definition = client
        .create_coupon_definition(CreateCouponDefinitionRequest {
            definition: Some(CouponDefinition {
                program_id: program.id.clone(),
                display_name: "Spring".into(),
                kind: CouponKind::Percentage as i32,
                percentage: "10".into(),
                uses_per_code: 1,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let generated = client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: definition.id.clone(),
            count: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let records = crm_testkit::read_topic(
        &brokers,
        "crm.loyalty.coupon.v1",
        2,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 2);
    let decoded_definition: CouponDefinitionChanged =
        prost::Message::decode(records[0].payload.as_slice()).unwrap();
    assert_eq!(decoded_definition.definition, Some(definition.clone()));
    let decoded_codes: CouponsGenerated =
        prost::Message::decode(records[1].payload.as_slice()).unwrap();
    assert_eq!(decoded_codes.coupons, generated.coupons);

    let member = suite.member(&program, "Discounted Ltd").await;
    let set = |percentage: &str, id: &str| SetDiscountRequest {
        discount: Some(Discount {
            id: id.into(),
            party_id: member.party_id.clone(),
            price_list: "retail".into(),
            percentage: percentage.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first = client
        .set_discount(set("5", ""))
        .await
        .unwrap()
        .into_inner();
    let changed = client
        .set_discount(set("7.5", &first.id))
        .await
        .unwrap()
        .into_inner();
    let discounts = rebuild(
        &brokers,
        "crm.loyalty.discount.v1",
        2,
        |event: DiscountChanged| event.discount.map(|d| (d.id.clone(), d)),
    )
    .await;
    assert_eq!(discounts.into_values().collect::<Vec<_>>(), [changed]);

    let job_id = "events-campaign";
    client
        .start_bulk_accrual(StartBulkAccrualRequest {
            job_id: job_id.into(),
            program_id: program.id.clone(),
            operation_type: "purchase".into(),
            points: 10,
            selection: Some(Selection::AllMembers(true)),
            reference: "spring".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = eventually(Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let job = client
                .get_bulk_accrual(GetBulkAccrualRequest {
                    job_id: job_id.into(),
                })
                .await
                .ok()?
                .into_inner();
            (job.status() == BulkAccrualStatus::Completed).then_some(job)
        }
    })
    .await
    .expect("the job completes");
    // Scheduled (a worker starts it), started, one batch, completed.
    let jobs = rebuild(
        &brokers,
        "crm.loyalty.bulk_accrual.v1",
        4,
        |event: BulkAccrualChanged| event.job.map(|j| (j.job_id.clone(), j)),
    )
    .await;
    assert_eq!(jobs.get(job_id), Some(&done));
    suite.stop().await;
}
