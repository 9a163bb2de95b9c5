//! `crm-cases [--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE...]]`

#[tokio::main]
async fn main() -> std::process::ExitCode {
    crm_kit::app::main(&crm_cases::SERVICE).await
}
