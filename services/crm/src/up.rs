//! `crm up`: every service of the suite in one process, with nothing to configure. One private
//! PostgreSQL cluster under `.crm-local/` (a database per service, kept across runs), one
//! in-process Kafka-protocol broker that any Kafka client on the machine can attach to, each
//! service on its documented port of 127.0.0.1 (`--host` for another address), peers wired to
//! each other, the privacy registry set to the services that run, and a development token with
//! every scope.
//!
//! Stopping (SIGTERM or Ctrl-C) goes in stages, because the broker keeps its events only in this
//! process: each service stops taking calls once the services that may call it have drained
//! theirs; relays and consumers carry on until every consumer group has consumed what was
//! published; the relays stop (what they have not published stays in their outbox for the next
//! run) and the consumers take what they published last; then workers and consumers stop and
//! last the cluster. A second signal skips the waiting.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use crm_kit::{
    app::{Runtime, Stages},
    config::{Cli, Command, Config, LogFormat},
    consumer,
    local::{Local, LocalKafka, LocalPostgres},
    shutdown::{self, ShutdownTrigger},
    telemetry::Telemetry,
};
use tokio::{sync::oneshot, task::JoinSet};

use crate::SERVICES;

/// How long no event may have moved before the broker is stopped, and the longest wait for it.
const QUIET: Duration = Duration::from_millis(500);
const MOST_QUIET_WAIT: Duration = Duration::from_secs(15);

pub async fn run(args: &[String]) -> ExitCode {
    let (host, args) = match host(args) {
        Ok(parsed) => parsed,
        Err(message) => return crate::usage_error(&message),
    };
    let cli = match Cli::from_args(args) {
        Ok(cli) if cli.command == Command::Serve => cli,
        _ => return crate::usage_error("crm up takes --config FILE and --host ADDRESS only"),
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
    // On a terminal, lines for people: JSON only when asked for.
    let format_chosen = std::env::var_os("CRM__TELEMETRY__LOG_FORMAT").is_some();
    if !format_chosen && cli.config_file.is_none() {
        configs[0].telemetry.log_format = LogFormat::Pretty;
    }
    let telemetry = match Telemetry::init("crm", &configs[0].telemetry) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("crm up: {error:#}");
            return ExitCode::from(2);
        }
    };
    let result = up(configs, host).await;
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm up: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--host ADDRESS` taken out of `args` (127.0.0.1 when absent): the suite answers anyone who
/// reaches it with the development secret, so by default only this machine can.
fn host(args: &[String]) -> Result<(IpAddr, Vec<String>), String> {
    let mut host = IpAddr::from([127, 0, 0, 1]);
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--host" {
            let value = args.next().ok_or("--host needs an address")?;
            host = value
                .parse()
                .map_err(|_| format!("--host {value:?} is not an IP address"))?;
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((host, rest))
}

/// A service being served, and how to stop its calls.
struct Serving {
    stop_calls: ShutdownTrigger,
    drained: oneshot::Receiver<()>,
    relayed: oneshot::Receiver<()>,
}

async fn up(mut configs: Vec<Config>, host: IpAddr) -> anyhow::Result<()> {
    // One URL would put every service's tables and migrations in one database.
    anyhow::ensure!(
        configs[0].database.url.is_none(),
        "crm up keeps each service's database on its private cluster; to use another PostgreSQL, \
         run each service with `crm serve <service>` and its own CRM__DATABASE__URL"
    );
    // First: a second `crm up` (or a service run on its own) on the directory is told so, and
    // nothing of the running one is touched.
    let postgres = LocalPostgres::start_alone(&configs[0].database.local_dir)?;
    wire(&mut configs, host)?;
    // Every service's ports are held from here until it binds them: the connections the suite
    // makes while it starts (to PostgreSQL, to the broker, between services) take ephemeral ports,
    // and one could otherwise land on a service's documented port before that service listens.
    let mut reserved: Vec<Option<[std::net::TcpListener; 2]>> = configs
        .iter()
        .zip(SERVICES)
        .map(|(config, service)| {
            let bind = |address: std::net::SocketAddr| {
                std::net::TcpListener::bind(address).map_err(|e| {
                    anyhow::anyhow!("{} cannot listen on {address}: {e}", service.spec.name)
                })
            };
            Ok(Some([
                bind(config.grpc_listen()?)?,
                bind(config.admin_listen()?)?,
            ]))
        })
        .collect::<anyhow::Result<_>>()?;
    let local = Local {
        postgres: Some(Arc::new(postgres)),
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

    let (stop_relays, relays) = shutdown::channel();
    let (stop_rest, rest) = shutdown::channel();
    let mut tasks = JoinSet::new();
    let mut serving = Vec::new();
    let mut token = None;
    let mut lines = Vec::new();
    for ((service, config), ports) in SERVICES.iter().zip(configs).zip(&mut reserved) {
        let (spec, topics) = (service.spec, service.topics);
        drop(ports.take());
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
        let (routes, names) = (service.start)(&runtime, &rest)?;
        let (stop_calls, calls) = shutdown::channel();
        let (drained_tx, drained) = oneshot::channel();
        let (relayed_tx, relayed) = oneshot::channel();
        let stages = Stages {
            calls,
            drained: Some(drained_tx),
            relay: relays.clone(),
            relayed: Some(relayed_tx),
            rest: rest.clone(),
        };
        tasks.spawn(async move {
            let served = runtime.serve_in_stages(routes, names, topics, stages).await;
            served.with_context(|| format!("{} failed", spec.name))
        });
        serving.push(Serving {
            stop_calls,
            drained,
            relayed,
        });
    }
    // On standard error: the log on standard output may be going to a JSON log shipper.
    eprintln!("The CRM suite is up; Ctrl-C stops it.");
    eprintln!("{}", lines.join("\n"));
    if let Some(postgres) = &local.postgres {
        eprintln!(
            "  PostgreSQL postgres://postgres@127.0.0.1:{}/crm_<service> (data in {})",
            crm_kit::local::POSTGRES_PORT,
            postgres.data_dir().display()
        );
    }
    if let Some(kafka) = &local.kafka {
        eprintln!(
            "  Kafka      {} (in this process: its events last while it runs)",
            kafka.brokers()
        );
    }
    if let Some(token) = token {
        eprintln!("  a bearer token with every scope, valid for 12 hours:\n{token}");
    }

    let mut failed = tokio::select! {
        _ = shutdown::os_signal() => false,
        ended = tasks.join_next() => {
            // A service stopped by itself: stop the others too.
            report(ended);
            true
        }
    };
    tokio::select! {
        clean = stop(serving, stop_relays, stop_rest, &mut tasks) => failed |= !clean,
        _ = shutdown::os_signal() => {
            eprintln!("Stopping at once: what is not yet published stays in the outboxes for the next run.");
        }
    }
    // A service still running holds the private parts too: they stop once it is gone.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    drop(local);
    eprintln!("Stopped.");
    anyhow::ensure!(!failed, "a service failed (see the log above)");
    Ok(())
}

/// Every service listens on its documented ports of `host` and calls the others there (unless
/// the configuration names a peer), and the consent service waits for the receipts of the
/// services running that hold personal data.
fn wire(configs: &mut [Config], host: IpAddr) -> anyhow::Result<()> {
    let reach = match host.is_unspecified() {
        true => IpAddr::from([127, 0, 0, 1]),
        false => host,
    };
    let peers: Vec<(&str, String)> = SERVICES
        .iter()
        .map(|s| {
            let address = SocketAddr::new(reach, s.spec.default_port);
            (s.spec.name, format!("http://{address}"))
        })
        .collect();
    let participants: Vec<&str> = SERVICES
        .iter()
        .filter(|s| s.privacy_participant)
        .map(|s| s.spec.name)
        .collect();
    for (service, config) in SERVICES.iter().zip(configs.iter_mut()) {
        let spec = service.spec;
        config.grpc.listen = SocketAddr::new(host, spec.default_port).to_string();
        config.admin.listen = SocketAddr::new(host, spec.admin_port()).to_string();
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

/// Stops calls service by service, the last started (which may call the others) first; waits
/// until what was committed is published and consumed; stops the relays (what they have not
/// published stays in the outboxes for the next run) and waits until the consumers have taken
/// what the relays published last; then stops the rest and waits for every service to finish.
/// False when one failed.
async fn stop(
    serving: Vec<Serving>,
    stop_relays: ShutdownTrigger,
    stop_rest: ShutdownTrigger,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> bool {
    eprintln!("Stopping: no new calls; publishing and consuming the events in flight.");
    let mut relayed = Vec::new();
    for service in serving.into_iter().rev() {
        service.stop_calls.trigger();
        // A service that failed has nothing left to drain.
        let _ = service.drained.await;
        relayed.push(service.relayed);
    }
    settle().await;
    stop_relays.trigger();
    for relay in relayed {
        let _ = relay.await;
    }
    settle().await;
    stop_rest.trigger();
    let mut clean = true;
    while let Some(ended) = tasks.join_next().await {
        clean &= report(Some(ended));
    }
    clean
}

/// Waits until no event has moved for [`QUIET`] and every consumer group has consumed to the end
/// of its topics, or [`MOST_QUIET_WAIT`] passed.
async fn settle() {
    let started = Instant::now();
    while started.elapsed() < MOST_QUIET_WAIT {
        if shutdown::quiet_for() >= QUIET && consumer::caught_up().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("events still moving after {MOST_QUIET_WAIT:?}; stopping anyway");
}

/// Logs how a service's task ended; true when it ended well.
fn report(ended: Option<Result<anyhow::Result<()>, tokio::task::JoinError>>) -> bool {
    match ended {
        Some(Ok(Ok(()))) | None => true,
        Some(Ok(Err(error))) => {
            tracing::error!(error = format!("{error:#}"), "a service failed");
            false
        }
        Some(Err(error)) => {
            tracing::error!(%error, "a service panicked");
            false
        }
    }
}
