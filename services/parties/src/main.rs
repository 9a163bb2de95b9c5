//! `crm-parties [--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE...]]`

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    crm_kit::app::main(
        crm_parties::SPEC,
        crm_parties::migrator(),
        &crm_parties::events::TOPICS,
        crm_parties::routes,
    )
    .await
}
