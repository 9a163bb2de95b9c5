//! `crm-consent [--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE...]]`

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    crm_kit::app::main(
        crm_consent::SPEC,
        crm_consent::migrator(),
        &crm_consent::TOPICS,
        crm_consent::routes,
    )
    .await
}
