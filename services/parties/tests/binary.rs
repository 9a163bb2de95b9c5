//! The `crm-parties` binary as operators run it: configured by environment variables, with the
//! `migrate` and `dev-token` subcommands, refusing bad settings by name, and stopping cleanly on
//! SIGTERM.

use std::{process::Stdio, time::Duration};

use crm_proto::crm::parties::v1::{
    CreatePartyRequest, Party, PartyKind, parties_service_client::PartiesServiceClient,
};
use crm_testkit::{Broker, JWT_SECRET, TestDatabase, eventually};
use tokio::process::Command;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const BIN: &str = env!("CARGO_BIN_EXE_crm-parties");

fn command(database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CRM__DATABASE__URL", database_url)
        .env("CRM__AUTH__JWT_SECRET", JWT_SECRET)
        .env("CRM__TELEMETRY__LOG_FILTER", "warn")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn bad_settings_are_refused_by_name() {
    let output = command("postgres://postgres@127.0.0.1:5432/unused")
        .env("CRM__GRPC__LISTEN", "everywhere")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("grpc.listen") && stderr.contains("CRM__GRPC__LISTEN"),
        "{stderr}"
    );

    let output = command("postgres://postgres@127.0.0.1:5432/unused")
        .env_remove("CRM__AUTH__JWT_SECRET")
        .env("CRM__TELEMETRY__LOG_FORMAT", "pretty")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("CRM__AUTH__JWT_SECRET"), "{logs}");
}

#[tokio::test]
async fn migrates_serves_with_a_dev_token_and_stops_on_sigterm() {
    let database = TestDatabase::create().await.unwrap();
    let broker = Broker::start().await.unwrap();

    let migrated = command(&database.url)
        .arg("migrate")
        .status()
        .await
        .unwrap();
    assert!(migrated.success());

    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = command(&database.url)
        .env("CRM__GRPC__LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM__KAFKA__BROKERS", broker.brokers())
        .env("CRM__DATABASE__MIGRATE_ON_START", "false")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let endpoint = format!("http://127.0.0.1:{port}");
    let serving = eventually(Duration::from_secs(20), || {
        let endpoint = endpoint.clone();
        async move {
            let mut health =
                HealthClient::new(crm_kit::client::TracedChannel::lazy(&endpoint).ok()?);
            let reply = health
                .check(HealthCheckRequest {
                    service: "crm.parties.v1.PartiesService".into(),
                })
                .await
                .ok()?;
            (reply.into_inner().status() == ServingStatus::Serving).then_some(())
        }
    })
    .await;
    assert!(serving.is_some(), "the service reports SERVING");

    let token = command(&database.url)
        .args(["dev-token", "--subject", "ops", "parties.write"])
        .output()
        .await
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let channel = crm_kit::client::TracedChannel::lazy(&endpoint)
        .unwrap()
        .with_bearer(&token);
    let party = PartiesServiceClient::new(channel)
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Organization as i32,
                display_name: "Ops Ltd".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(party.audit.unwrap().created_by, "ops");

    let pid = server.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("stops within 15 s")
        .unwrap();
    assert!(exit.success(), "a SIGTERM is a clean stop: {exit:?}");
}
