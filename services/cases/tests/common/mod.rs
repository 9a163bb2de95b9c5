//! What the cases tests share: a sales pipeline and amounts in złoty.

use crm_e2e::Suite;
use crm_proto::crm::{cases::v1::*, common::v1::Money};

pub fn phase(code: &str, group: PhaseGroup, probability: i32) -> Phase {
    Phase {
        code: code.into(),
        display_name: code.replace('_', " "),
        group: group as i32,
        probability,
    }
}

pub async fn sales_pipeline(suite: &Suite) -> Pipeline {
    suite
        .cases_client()
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "Sales".into(),
                phases: vec![
                    phase("lead", PhaseGroup::Potential, 10),
                    phase("qualified", PhaseGroup::Potential, 30),
                    phase("proposal", PhaseGroup::InProgress, 60),
                    phase("won", PhaseGroup::Won, 0),
                    phase("lost", PhaseGroup::Lost, 50),
                ],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn pln(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency_code: "PLN".into(),
    })
}
