//! One way to start a service, used by `main` and by the tests alike: configuration in, a bound
//! port out, then [`Runtime::serve`] runs the gRPC server and the outbox relay until shutdown.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    auth::{Authenticator, Jwks, TokenIssuer},
    client::TracedChannel,
    config::{Cli, Command, Config, Secret, ServiceSpec},
    kafka::Kafka,
    local::{Local, LocalKafka, LocalPostgres},
    metrics,
    outbox::Relay,
    server::{ServeOptions, serve},
    shutdown::{self, Shutdown},
    store,
    telemetry::Telemetry,
};

/// The HS256 secret of local runs and `dev-token` when none is configured. Never for production:
/// a service with a configured database refuses to start without a real secret.
const DEV_SECRET: &str = "crm-local-development-secret-not-for-production";

/// A started service's shared parts: storage, broker, listener and authenticator.
pub struct Runtime {
    pub spec: ServiceSpec,
    pub config: Config,
    pub pool: store::Pool,
    pub kafka: Kafka,
    listener: TcpListener,
    admin: TcpListener,
    authenticator: Authenticator,
    secret: Option<Secret>,
    jwks: Option<Arc<Jwks>>,
    /// The private parts this runtime uses (none when configured): kept until it is dropped.
    local: Local,
}

impl Runtime {
    /// Connects to PostgreSQL (or starts a private one), applies migrations when configured,
    /// picks the broker (or starts the mock one with `topics`), and binds the gRPC port.
    pub async fn start(
        spec: ServiceSpec,
        config: Config,
        migrator: Migrator,
        topics: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_sharing(spec, config, migrator, topics, Local::default()).await
    }

    /// [`Runtime::start`] with the private parts of `local` where the configuration names no
    /// database or broker: the services of one process share one cluster and one broker.
    pub async fn start_sharing(
        spec: ServiceSpec,
        config: Config,
        migrator: Migrator,
        topics: &[&str],
        mut local: Local,
    ) -> anyhow::Result<Self> {
        // The ports first, before any connection is made: an outgoing connection's ephemeral
        // port cannot take a port the service is documented to listen on.
        let bind = |address: SocketAddr, what: &str| {
            let what = what.to_owned();
            async move {
                TcpListener::bind(address).await.map_err(|e| {
                    anyhow::anyhow!("{} cannot listen on {address} ({what}): {e}", spec.name)
                })
            }
        };
        let listener = bind(config.grpc_listen()?, "gRPC").await?;
        let admin = bind(config.admin_listen()?, "metrics").await?;
        let (url, local_pg) = match (&config.database.url, local.postgres.take()) {
            (Some(url), _) => (url.expose().to_owned(), None),
            (None, shared) => {
                let pg = match shared {
                    Some(pg) => pg,
                    None => Arc::new(LocalPostgres::start(&config.database.local_dir)?),
                };
                (pg.database(spec.name)?, Some(pg))
            }
        };
        local.postgres = local_pg.clone();
        let secret = match (&config.auth.jwt_secret, &local_pg) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(_)) => Some(Secret::new(DEV_SECRET)),
            (None, None) => None,
        };
        let jwks = match &config.auth.jwks_url {
            Some(url) => Some(Jwks::load(url).await?),
            None => None,
        };
        let authenticator = match (&secret, &jwks) {
            (Some(secret), Some(jwks)) => {
                Authenticator::new(secret.expose(), &config.auth).and_jwks(jwks.clone())
            }
            (Some(secret), None) => Authenticator::new(secret.expose(), &config.auth),
            (None, Some(jwks)) => Authenticator::with_jwks_only(jwks.clone(), &config.auth),
            (None, None) => anyhow::bail!(
                "invalid configuration: auth.jwt_secret (set CRM__AUTH__JWT_SECRET) or auth.jwks_url (set CRM__AUTH__JWKS_URL) is required when CRM__DATABASE__URL is set"
            ),
        };

        let pool = store::connect(
            &url,
            config.database.max_connections,
            config.acquire_timeout(),
        )
        .await?;
        if config.database.migrate_on_start || local_pg.is_some() {
            store::migrate(&pool, migrator).await?;
        }

        let kafka = match (&config.kafka.brokers, local.kafka.take()) {
            (Some(brokers), _) => Kafka::new(brokers.clone(), &config.kafka),
            (None, shared) => {
                let mock = match shared {
                    Some(mock) => mock,
                    None => {
                        let topics = topics.iter().map(|t| t.to_string()).collect();
                        Arc::new(LocalKafka::start(topics, config.kafka.topic_partitions)?)
                    }
                };
                let mut kafka = Kafka::new(mock.brokers().to_owned(), &config.kafka);
                kafka.create_topics = true;
                kafka.mock = Some(mock.topics());
                local.kafka = Some(mock);
                kafka
            }
        };

        Ok(Self {
            spec,
            config,
            pool,
            kafka,
            listener,
            admin,
            authenticator,
            secret,
            jwks,
            local,
        })
    }

    /// A bearer token with `scopes`, valid for 12 hours and signed with this runtime's secret,
    /// when it runs on a private cluster (local mode); None otherwise.
    pub fn dev_token(&self, subject: &str, scopes: &[&str]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        self.local.postgres.as_ref()?;
        let issuer = TokenIssuer::new(secret.expose(), &self.config.auth);
        Some(issuer.issue(subject, scopes, Duration::from_secs(12 * 3600)))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A traced, authenticated channel to the peer service `name` (`CRM__PEERS__<NAME>`), whose
    /// calls carry `scopes`.
    pub fn peer(&self, name: &str, scopes: &[&str]) -> anyhow::Result<TracedChannel> {
        let url = self.config.peers.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "invalid configuration: peers.{name} (set CRM__PEERS__{}) is required: the gRPC URL of the {name} service",
                name.to_uppercase()
            )
        })?;
        let channel = TracedChannel::lazy(url)?;
        Ok(match (&self.config.auth.service_token, &self.secret) {
            (Some(token), _) => channel.with_bearer(token.expose()),
            (None, Some(secret)) => {
                let issuer = Arc::new(TokenIssuer::new(secret.expose(), &self.config.auth));
                channel.with_issued_tokens(issuer, &format!("crm-{}", self.spec.name), scopes)
            }
            (None, None) => anyhow::bail!(
                "invalid configuration: auth.service_token (set CRM__AUTH__SERVICE_TOKEN) is required to call {name}"
            ),
        })
    }

    /// Where `/metrics` is served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves `routes` and relays the outbox to `topics` until `shutdown`; then drains calls in
    /// flight and publishes what they committed before returning.
    pub async fn serve(
        self,
        routes: Routes,
        service_names: Vec<&'static str>,
        topics: &[&str],
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let stages = Stages {
            calls: shutdown.clone(),
            drained: None,
            relay: shutdown.clone(),
            relayed: None,
            rest: shutdown,
        };
        self.serve_in_stages(routes, service_names, topics, stages)
            .await
    }

    /// [`Runtime::serve`] stopping in two stages (see [`Stages`]).
    pub async fn serve_in_stages(
        self,
        routes: Routes,
        service_names: Vec<&'static str>,
        topics: &[&str],
        stages: Stages,
    ) -> anyhow::Result<()> {
        let Stages {
            calls,
            drained,
            relay: stop_relay,
            relayed,
            rest: shutdown,
        } = stages;
        let relay = Relay::new(
            self.pool.clone(),
            self.kafka.clone(),
            self.spec.name,
            topics,
        );
        let relay = tokio::spawn(relay.run(stop_relay));
        tracing::info!(address = %self.local_addr(), metrics = %self.admin_addr(), service = self.spec.name, "serving gRPC");
        tokio::spawn(metrics::serve(self.admin, shutdown.clone()));
        if let Some(jwks) = self.jwks {
            tokio::spawn(jwks.run(shutdown.clone()));
        }
        let options = ServeOptions {
            service_names,
            authenticator: self.authenticator,
            concurrency_limit: self.config.grpc.concurrency_limit,
            request_timeout: self.config.request_timeout(),
            ready: self.pool.watch_reachable(shutdown.clone()),
        };
        let served = serve(self.listener, routes, options, calls).await;
        if let Some(drained) = drained {
            let _ = drained.send(());
        }
        if served.is_err() {
            // The server failed by itself: nothing will stop the relay.
            relay.abort();
        }
        match relay.await {
            Err(error) if !error.is_cancelled() => return Err(error.into()),
            _ => {}
        }
        if let Some(relayed) = relayed {
            let _ = relayed.send(());
        }
        // Workers and consumers use the pool until they stop.
        if served.is_ok() {
            shutdown.wait().await;
        }
        self.pool.close().await;
        Ok(served?)
    }
}

/// How a served runtime stops when its process runs several services (`crm up`), each stage
/// told apart: calls at `calls` (`drained` is told once the calls in flight have finished); the
/// outbox relay at `relay` (`relayed` told once it has stopped); the metrics server, the key
/// refresh and the pool at `rest`, when the service's workers and consumers stop too.
pub struct Stages {
    pub calls: Shutdown,
    pub drained: Option<tokio::sync::oneshot::Sender<()>>,
    pub relay: Shutdown,
    pub relayed: Option<tokio::sync::oneshot::Sender<()>>,
    pub rest: Shutdown,
}

/// One service of the suite, as `main` and the tests start it: its name and port, its
/// migrations, the topics it writes, and `start`, which wires its peers, workers and consumers on
/// the runtime and returns its gRPC routes with the names health reports.
pub struct Service {
    pub spec: ServiceSpec,
    pub migrator: fn() -> Migrator,
    pub topics: &'static [&'static str],
    /// It holds personal data and answers data-subject requests (`crm_kit::privacy::join`): a
    /// request completes only once it has, so it belongs in the consent service's registry.
    pub privacy_participant: bool,
    pub start: fn(&Runtime, &Shutdown) -> anyhow::Result<ServiceRoutes>,
    /// Commands an operator runs against the service's database besides serving (`crm-<service>
    /// <task>`).
    pub tasks: &'static [Task],
}

/// An operator's command of a service's own: it reports on standard output and says whether all
/// was well (the exit code is 1 when not).
pub struct Task {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(store::Pool) -> BoxFuture<'static, anyhow::Result<bool>>,
}

/// A service's gRPC routes and the fully-qualified names of its services (for health).
pub type ServiceRoutes = (Routes, Vec<&'static str>);

/// What a service's `main` delegates to: the command line, telemetry, signals, exit codes.
pub async fn main(service: &Service) -> ExitCode {
    match Cli::from_env() {
        Ok(cli) => run(service, cli).await,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command of `service` (`crm serve <service>` and the service's own binary alike).
pub async fn run(service: &Service, cli: Cli) -> ExitCode {
    let spec = service.spec;
    let config = match Config::load(spec, cli.config_file.as_ref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crm-{}: {error}", spec.name);
            return ExitCode::from(2);
        }
    };
    if let Command::DevToken { subject, scopes } = &cli.command {
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        println!("{}", dev_token(&config, subject, &scopes));
        return ExitCode::SUCCESS;
    }
    let telemetry = match Telemetry::init(spec.name, &config.telemetry) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("crm-{}: {error:#}", spec.name);
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Migrate => migrate_only(&config, (service.migrator)()).await,
        Command::Task(name) => run_task(service, &config, &name).await,
        _ => serve_until_signal(service, config).await,
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "crm-{} stopped", spec.name);
            ExitCode::FAILURE
        }
    }
}

/// A bearer token with `scopes` for 12 hours, signed with the configured secret or, without one,
/// the development secret local runs accept.
pub fn dev_token(config: &Config, subject: &str, scopes: &[&str]) -> String {
    let secret = config
        .auth
        .jwt_secret
        .clone()
        .unwrap_or_else(|| Secret::new(DEV_SECRET));
    TokenIssuer::new(secret.expose(), &config.auth).issue(
        subject,
        scopes,
        Duration::from_secs(12 * 3600),
    )
}

async fn migrate_only(config: &Config, migrator: Migrator) -> anyhow::Result<()> {
    let pool = configured_database(config, "migrate").await?;
    store::migrate(&pool, migrator).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn run_task(service: &Service, config: &Config, name: &str) -> anyhow::Result<()> {
    let Some(task) = service.tasks.iter().find(|t| t.name == name) else {
        let known: Vec<String> = service
            .tasks
            .iter()
            .map(|t| format!("  {}: {}", t.name, t.about))
            .collect();
        anyhow::bail!(
            "crm-{} has no command {name:?}; besides serve, migrate and dev-token it has:\n{}",
            service.spec.name,
            known.join("\n")
        );
    };
    let pool = configured_database(config, name).await?;
    anyhow::ensure!((task.run)(pool).await?, "{name} found problems");
    Ok(())
}

/// A small pool on the configured database; commands other than `serve` never start a private one.
async fn configured_database(config: &Config, command: &str) -> anyhow::Result<store::Pool> {
    let url = config
        .database
        .url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{command} needs CRM__DATABASE__URL"))?;
    Ok(store::connect(url.expose(), 1, store::PATIENT).await?)
}

async fn serve_until_signal(service: &Service, config: Config) -> anyhow::Result<()> {
    let topics = service.topics;
    let runtime = Runtime::start(service.spec, config, (service.migrator)(), topics).await?;
    let name = service.spec.name;
    let scopes = [format!("{name}.read"), format!("{name}.write")];
    if let Some(token) = runtime.dev_token("local-developer", &[&scopes[0], &scopes[1]]) {
        tracing::warn!(
            token,
            "local mode: a development bearer token valid for 12 hours"
        );
    }
    let (trigger, shutdown) = shutdown::channel();
    let (routes, names) = (service.start)(&runtime, &shutdown)?;
    tokio::spawn(async move {
        shutdown::os_signal().await;
        trigger.trigger();
        // Keep the trigger alive until the process exits: dropping it is also a shutdown.
        std::future::pending::<()>().await;
    });
    runtime.serve(routes, names, topics, shutdown).await
}
