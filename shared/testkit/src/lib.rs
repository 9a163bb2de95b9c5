//! The test harness of the suite. Everything here is real: a fresh PostgreSQL database per test on
//! the machine's server, a tansu Kafka-protocol broker process per test on its own port, and the
//! service started through the same [`Runtime`] path as its `main`, on `127.0.0.1:0`.
//!
//! Environment: `CRM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names the server to create databases on; `CRM_TANSU` the broker binary (default: the build
//! `.ci/run` installs, then `tansu` on the PATH, then `~/.cargo/bin/tansu`). [`imap::Dovecot`] is
//! an IMAP server for mailbox tests; [`postgres::Cluster`] a PostgreSQL server of a test's own, to
//! stop and start; [`process::ServiceProcess`] a service in a process of its own, to kill.

pub mod bench;
mod broker;
pub mod imap;
pub mod postgres;
pub mod process;
pub mod seed;

pub use bench::CpuTimes;
pub use broker::{
    Broker, PROBE_HEADER, Record, Storage, read_topic, read_topic_until, rebuild,
    sqlite_storage_available,
};

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use crm_kit::{
    app::{Runtime, Service},
    auth::TokenIssuer,
    client::TracedChannel,
    config::{
        AdminConfig, AuthConfig, Config, DatabaseConfig, GrpcConfig, InteractionsConfig,
        KafkaConfig, LogFormat, PrivacyConfig, RewardsConfig, Secret, TelemetryConfig,
    },
    shutdown::{self, ShutdownTrigger},
    telemetry::Telemetry,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use sqlx::{Connection, PgConnection};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use uuid::Uuid;

/// The HS256 secret services under test verify tokens with.
pub const JWT_SECRET: &str = "crm-testkit-secret-of-at-least-32-bytes";

/// A bearer token for `subject` with `scopes`, valid for an hour.
pub fn token(subject: &str, scopes: &[&str]) -> String {
    TokenIssuer::new(JWT_SECRET, &AuthConfig::default()).issue(
        subject,
        scopes,
        Duration::from_secs(3600),
    )
}

fn admin_url() -> String {
    std::env::var("CRM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server's maintenance database, where this one is dropped from.
    admin: String,
}

impl TestDatabase {
    /// A connection to it, to check what a service stored.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }

    /// A pool on it holding only the kit's own tables (outbox, inbox, request ids): for tests of
    /// the kit itself.
    pub async fn kit_pool(&self) -> anyhow::Result<crm_kit::store::Pool> {
        let pool = crm_kit::store::connect(&self.url, 5, crm_kit::store::PATIENT).await?;
        crm_kit::store::migrate(&pool, sqlx::migrate::Migrator::DEFAULT).await?;
        Ok(pool)
    }

    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&admin_url()).await
    }

    /// A database on the server whose maintenance database is at `admin`.
    pub async fn create_on(admin: &str) -> anyhow::Result<Self> {
        let admin = admin.to_owned();
        let name = format!("crm_test_{}", Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let (base, _) = admin.rsplit_once('/').expect("a database URL has a path");
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
            admin,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })?;
            anyhow::Ok(())
        })
        .join();
    }
}

/// Whether something listens on `port` of 127.0.0.1 within 5 seconds (a server process started).
pub(crate) async fn listening(port: u16) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Settings for a service under test: the given database and brokers, a test secret, port 0.
pub fn config(database_url: &str, brokers: &str) -> Config {
    Config {
        grpc: GrpcConfig {
            listen: "127.0.0.1:0".into(),
            request_timeout_ms: 10_000,
            concurrency_limit: 64,
        },
        database: DatabaseConfig {
            url: Some(Secret::new(database_url)),
            max_connections: 5,
            acquire_timeout_ms: 2_000,
            migrate_on_start: true,
            local_dir: ".crm-local".into(),
        },
        kafka: KafkaConfig {
            brokers: Some(brokers.into()),
            create_topics: true,
            topic_partitions: 3,
            replication_factor: 1,
            message_timeout_ms: 5_000,
        },
        auth: AuthConfig {
            jwt_secret: Some(Secret::new(JWT_SECRET)),
            ..AuthConfig::default()
        },
        telemetry: TelemetryConfig {
            otlp_endpoint: None,
            log_format: LogFormat::Pretty,
            log_filter: "warn".into(),
            sample_ratio: 1.0,
        },
        peers: Default::default(),
        admin: AdminConfig {
            listen: "127.0.0.1:0".into(),
        },
        privacy: PrivacyConfig {
            services: "parties,loyalty".into(),
            retry_after_secs: 300,
            bundle_retention_days: 30,
        },
        rewards: RewardsConfig {
            hold_timeout_secs: 1_209_600,
        },
        interactions: InteractionsConfig {
            max_email_bytes: 25 << 20,
            max_stored_attachment_bytes: 1 << 20,
            // Tests deliver and expect mail within seconds.
            mailbox_poll_secs: 1,
            mailbox_secrets_dir: String::new(),
            mailbox_ca_file: String::new(),
            // Mail servers under test run on loopback.
            mailbox_hosts: "127.0.0.1,localhost".into(),
            occasion_lead_days: 7,
        },
        cases: Default::default(),
    }
}

/// Installs the process's telemetry once, as `main` does, so services under test carry real trace
/// context. A test that wants spans exported calls [`Telemetry::init`] with its endpoint first.
pub fn init_telemetry(service: &str, config: &TelemetryConfig) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let telemetry = Telemetry::init(service, config).expect("installing telemetry");
        // The subscriber lives as long as the process; so must its provider.
        std::mem::forget(telemetry);
    });
}

/// A running service with its own database and broker; stops when dropped.
pub struct TestService {
    pub addr: SocketAddr,
    /// Where the service serves `/metrics`.
    pub admin_addr: SocketAddr,
    pub database: TestDatabase,
    pub broker: Broker,
    trigger: Option<ShutdownTrigger>,
    task: Option<Serving>,
}

/// The service's task; aborted if the test drops the service without stopping it.
struct Serving(JoinHandle<anyhow::Result<()>>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TestService {
    pub async fn start(service: &Service) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let broker = Broker::start().await?;
        Self::start_with(service, database, broker, |_| {}).await
    }

    /// Starts on an existing database and broker, with `adjust` applied to the test settings.
    pub async fn start_with(
        service: &Service,
        database: TestDatabase,
        broker: Broker,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut config = config(&database.url, &broker.brokers());
        adjust(&mut config);
        init_telemetry(service.spec.name, &config.telemetry);
        let runtime =
            Runtime::start(service.spec, config, (service.migrator)(), service.topics).await?;
        let addr = runtime.local_addr();
        let admin_addr = runtime.admin_addr();
        let (trigger, shutdown) = shutdown::channel();
        let (routes, names) = (service.start)(&runtime, &shutdown)?;
        let topics = service.topics;
        let task = tokio::spawn(runtime.serve(routes, names, topics, shutdown));
        Ok(Self {
            addr,
            admin_addr,
            database,
            broker,
            trigger: Some(trigger),
            task: Some(Serving(task)),
        })
    }

    /// A traced channel to the service carrying `token`.
    pub fn channel(&self, token: &str) -> TracedChannel {
        TracedChannel::lazy(&format!("http://{}", self.addr))
            .expect("a socket address is a valid URI")
            .with_bearer(token)
    }

    /// A connection to the service's database, to check what it stored.
    pub async fn db(&self) -> PgConnection {
        self.database.connect().await
    }

    /// Graceful shutdown: drains calls and publishes what they committed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_keeping_storage().await.map(drop)
    }

    /// Graceful shutdown that keeps the database and the broker, to start the service again on
    /// them (a restart, a deployment, recovery after a crash).
    pub async fn stop_keeping_storage(self) -> anyhow::Result<(TestDatabase, Broker)> {
        let Self {
            database,
            broker,
            trigger,
            task,
            ..
        } = self;
        if let Some(trigger) = trigger {
            trigger.trigger();
        }
        if let Some(mut serving) = task {
            (&mut serving.0).await??;
        }
        Ok((database, broker))
    }
}

/// An in-process OTLP/gRPC collector that keeps every span exported to it.
#[derive(Clone, Default)]
pub struct OtlpReceiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

impl OtlpReceiver {
    /// Starts the receiver; returns it with its `http://127.0.0.1:PORT` endpoint.
    pub async fn start() -> anyhow::Result<(Self, String)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let receiver = Self::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Ok((receiver, endpoint))
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("span list lock").clone()
    }
}

#[tonic::async_trait]
impl TraceService for OtlpReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans.lock().expect("span list lock").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `pgbench` measured: the baseline a benchmark prints its figures against.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    pub tps: f64,
    pub latency_ms: f64,
}

/// Runs `script` (pgbench's script language, with `:name` for each of `variables`) `transactions`
/// times in all, over `clients` connections to `database_url` on two threads, with prepared
/// statements as the services use them. Needs `pgbench` (Debian package postgresql-client).
pub async fn pgbench(
    database_url: &str,
    script: &str,
    variables: &[(&str, &str)],
    clients: usize,
    transactions: usize,
) -> anyhow::Result<Pgbench> {
    let file = std::env::temp_dir().join(format!("crm-pgbench-{}.sql", Uuid::now_v7()));
    std::fs::write(&file, script)?;
    let output = tokio::process::Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=prepared", "--jobs=2"])
        .arg(format!("--client={clients}"))
        .arg(format!("--transactions={}", transactions.div_ceil(clients)))
        .args(
            variables
                .iter()
                .map(|(name, value)| format!("--define={name}={value}")),
        )
        .arg("--file")
        .arg(&file)
        .arg(database_url)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running pgbench (Debian package postgresql-client): {e}"));
    let _ = std::fs::remove_file(&file);
    let output = output?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figure = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or_else(|| anyhow::anyhow!("pgbench printed no {prefix:?}: {stdout}"))
    };
    Ok(Pgbench {
        tps: figure("tps = ")?,
        latency_ms: figure("latency average = ")?,
    })
}

/// The fields an INVALID_ARGUMENT names, sorted: what a caller reads to fix its request.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut fields: Vec<String> = status
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    fields
}

/// The `ErrorInfo.reason` of a refusal: what a caller branches on.
pub fn refusal_reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("a reason in {status:?}"))
        .reason
}
