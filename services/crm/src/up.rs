//! `crm up`: every service of the suite in one process, with nothing to configure. One private
//! PostgreSQL cluster under `.crm-local/` (a database per service, kept across runs), one
//! in-process Kafka-protocol broker that any Kafka client on the machine can attach to, each
//! service on its documented port, peers wired to each other, the privacy registry set to the
//! services that run, and a development token with every scope.
//!
//! Stopping (SIGTERM or Ctrl-C) goes in stages, because the broker keeps its events only in this
//! process: no new calls; then relays and consumers carry on until no event has moved for a while,
//! so that what was committed is published and consumed; then the workers and relays stop (the
//! relays publish what is left) and last the cluster.

use std::{
    collections::BTreeSet,
    fs::{File, TryLockError},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use crm_kit::{
    app::Runtime,
    config::{Cli, Command, Config},
    local::{Local, LocalKafka, LocalPostgres},
    shutdown,
    telemetry::Telemetry,
};
use tokio::task::JoinSet;

use crate::SERVICES;

/// How long no event may have moved before the broker is stopped, and the longest wait for it.
const QUIET: Duration = Duration::from_millis(1500);
const MOST_QUIET_WAIT: Duration = Duration::from_secs(15);

pub async fn run(args: &[String]) -> ExitCode {
    let cli = match Cli::from_args(args.iter().cloned()) {
        Ok(cli) if cli.command == Command::Serve => cli,
        Ok(_) => return crate::usage_error("crm up takes --config FILE only"),
        Err(message) => return crate::usage_error(&message),
    };
    // Defaults, then the file, then CRM__* variables, for every service alike.
    let mut configs = Vec::new();
    for service in SERVICES {
        match Config::load(service.spec, cli.config_file.as_ref()) {
            Ok(config) => configs.push(config),
            Err(error) => {
                eprintln!("crm up: {error}");
                return ExitCode::from(2);
            }
        }
    }
    let telemetry = match Telemetry::init("crm", &configs[0].telemetry) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("crm up: {error:#}");
            return ExitCode::from(2);
        }
    };
    let result = up(configs).await;
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm up: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(mut configs: Vec<Config>) -> anyhow::Result<()> {
    let dir = configs[0].database.local_dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Held until the process ends: a second `crm up` on the same directory is told, and leaves
    // the first one's cluster alone.
    let lock = File::create(dir.join("crm-up.lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another `crm up` is running on {}: stop it first (Ctrl-C in its terminal)",
            dir.display()
        ),
        Err(TryLockError::Error(error)) => return Err(error.into()),
    }
    // One URL would put every service's tables and migrations in one database.
    anyhow::ensure!(
        configs[0].database.url.is_none(),
        "crm up keeps each service's database on its private cluster; to use another PostgreSQL, \
         run each service with `crm serve <service>` and its own CRM__DATABASE__URL"
    );
    wire(&mut configs)?;
    let local = Local {
        postgres: Some(Arc::new(LocalPostgres::start(&dir)?)),
        kafka: match configs[0].kafka.brokers {
            Some(_) => None,
            None => {
                // Some topics are written by several services (privacy receipts): each once.
                let topics: BTreeSet<&str> = SERVICES
                    .iter()
                    .flat_map(|s| s.topics.iter().copied())
                    .collect();
                let topics = topics.into_iter().map(str::to_owned).collect();
                let partitions = configs[0].kafka.topic_partitions;
                Some(Arc::new(LocalKafka::start(topics, partitions)?))
            }
        },
    };

    let (stop_calls, calls) = shutdown::channel();
    let (stop_work, work) = shutdown::channel();
    let mut serving = JoinSet::new();
    let mut token = None;
    let mut lines = Vec::new();
    for (service, config) in SERVICES.iter().zip(configs) {
        let (spec, topics) = (service.spec, service.topics);
        let runtime =
            Runtime::start_sharing(spec, config, (service.migrator)(), topics, local.clone())
                .await
                .with_context(|| format!("starting {}", spec.name))?;
        token = token.or_else(|| runtime.dev_token("local-developer", crm_proto::checks::SCOPES));
        lines.push(format!(
            "  {:<10} gRPC {:<18} metrics http://{}/metrics",
            spec.name,
            runtime.local_addr(),
            runtime.admin_addr()
        ));
        let (routes, names) = (service.start)(&runtime, &work)?;
        let stages = (calls.clone(), work.clone());
        serving.spawn(async move {
            let served = runtime.serve_in_stages(routes, names, topics, stages).await;
            served.with_context(|| format!("{} stopped", spec.name))
        });
    }
    println!("The CRM suite is up; Ctrl-C stops it.");
    println!("{}", lines.join("\n"));
    if let Some(postgres) = &local.postgres {
        println!(
            "  PostgreSQL postgres://postgres@127.0.0.1:{}/crm_<service> (data in {})",
            crm_kit::local::POSTGRES_PORT,
            postgres.data_dir().display()
        );
    }
    if let Some(kafka) = &local.kafka {
        println!(
            "  Kafka      {} (in this process: its events last while it runs)",
            kafka.brokers()
        );
    }
    if let Some(token) = token {
        println!("  a bearer token with every scope, valid for 12 hours:\n{token}");
    }

    let early_end = tokio::select! {
        _ = shutdown::os_signal() => None,
        ended = serving.join_next() => ended,
    };
    if let Some(ended) = early_end {
        // A service stopped by itself: stop the others too, and say why.
        tracing::error!(?ended, "a service stopped; stopping the suite");
    }
    stop(stop_calls, stop_work, &mut serving).await;
    drop(local);
    drop(lock);
    Ok(())
}

/// Every service calls the others at their addresses here (unless the configuration names a
/// peer), and the consent service waits for the receipts of the services running that hold
/// personal data.
fn wire(configs: &mut [Config]) -> anyhow::Result<()> {
    let mut peers = Vec::new();
    for (service, config) in SERVICES.iter().zip(configs.iter()) {
        let port = config.grpc_listen()?.port();
        peers.push((service.spec.name, format!("http://127.0.0.1:{port}")));
    }
    let participants: Vec<&str> = SERVICES
        .iter()
        .filter(|s| s.privacy_participant)
        .map(|s| s.spec.name)
        .collect();
    for config in configs {
        for (name, url) in &peers {
            config
                .peers
                .entry(name.to_string())
                .or_insert_with(|| url.clone());
        }
        config.privacy.services = participants.join(",");
    }
    Ok(())
}

/// Stops calls, waits until no event has moved for [`QUIET`] (at most [`MOST_QUIET_WAIT`]), then
/// stops the rest and waits for every service to finish.
async fn stop(
    stop_calls: shutdown::ShutdownTrigger,
    stop_work: shutdown::ShutdownTrigger,
    serving: &mut JoinSet<anyhow::Result<()>>,
) {
    println!("Stopping: no new calls; publishing and consuming the events in flight.");
    stop_calls.trigger();
    let started = Instant::now();
    while shutdown::quiet_for() < QUIET && started.elapsed() < MOST_QUIET_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_work.trigger();
    while let Some(ended) = serving.join_next().await {
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error = format!("{error:#}"), "a service failed"),
            Err(error) => tracing::error!(%error, "a service panicked"),
        }
    }
    println!("Stopped.");
}
