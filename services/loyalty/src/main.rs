//! `crm-loyalty [--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE...]]`

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    crm_kit::app::main(
        crm_loyalty::SPEC,
        crm_loyalty::migrator(),
        &crm_loyalty::events::TOPICS,
        crm_loyalty::routes,
    )
    .await
}
