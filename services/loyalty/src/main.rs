//! `crm-loyalty [--config FILE] [serve | migrate | verify | dev-token [--subject S] [SCOPE...]]`

#[tokio::main]
async fn main() -> std::process::ExitCode {
    crm_kit::app::main(&crm_loyalty::SERVICE).await
}
