//! Layered configuration: built-in defaults, then an optional TOML file (`--config FILE` or
//! `CRM_CONFIG`), then environment variables `CRM__SECTION__KEY` (e.g. `CRM__GRPC__LISTEN`).
//! Everything is validated once at start, and an error names the key to fix.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

/// What a service tells the kit about itself.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Short name, e.g. `parties`: the JWT scope prefix, the CloudEvents source, the database name.
    pub name: &'static str,
    /// The gRPC port from the design's service table.
    pub default_port: u16,
}

impl ServiceSpec {
    /// The default port of `/metrics`: 9 followed by the gRPC port's last three digits.
    pub const fn admin_port(&self) -> u16 {
        9000 + self.default_port % 1000
    }
}

/// The settings every service shares.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub admin: AdminConfig,
    /// `CRM__PEERS__<NAME>`: gRPC URLs of the services this one calls, e.g.
    /// `CRM__PEERS__PARTIES=http://crm-parties:50051`.
    #[serde(default)]
    pub peers: std::collections::HashMap<String, String>,
    /// Data-subject requests (used by the consent service).
    pub privacy: PrivacyConfig,
    /// Reward orders (used by the rewards service).
    pub rewards: RewardsConfig,
    /// E-mail import and mailbox sync (used by the interactions service).
    pub interactions: InteractionsConfig,
    /// Offers (used by the cases service).
    #[serde(default)]
    pub cases: CasesConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CasesConfig {
    /// `CRM__CASES__SELLER`: the company as offers print it at their top, one line per line of
    /// text (name, address, tax id). Default none.
    #[serde(default)]
    pub seller: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InteractionsConfig {
    /// `CRM__INTERACTIONS__MAX_EMAIL_BYTES`: the largest raw e-mail imported. Default 26214400
    /// (25 MiB, what common mail servers accept); 1 KiB to 100 MiB.
    pub max_email_bytes: usize,
    /// `CRM__INTERACTIONS__MAX_STORED_ATTACHMENT_BYTES`: attachments of imported e-mails up to this
    /// size keep their content in the database; larger ones keep only their description. Default
    /// 1048576 (1 MiB); 0 keeps none.
    pub max_stored_attachment_bytes: usize,
    /// `CRM__INTERACTIONS__MAILBOX_POLL_SECS`: how often each connected mailbox is read for new
    /// messages. Default 60.
    pub mailbox_poll_secs: u64,
    /// `CRM__INTERACTIONS__MAILBOX_SECRETS_DIR`: where mailbox passwords are, one file per
    /// `Mailbox.password_ref` (a mounted Kubernetes Secret). Default
    /// `/var/run/secrets/crm/mailboxes`.
    pub mailbox_secrets_dir: String,
    /// `CRM__INTERACTIONS__MAILBOX_CA_FILE`: PEM certificates trusted for mailbox TLS besides the
    /// system's (a company CA). Default none.
    #[serde(default)]
    pub mailbox_ca_file: String,
    /// `CRM__INTERACTIONS__MAILBOX_HOSTS`: comma-separated mail servers mailboxes may be
    /// connected to (`imap.example.com`, or `*.example.com` for its subdomains). Default none:
    /// the service connects only where the operator allows, never to an address a caller names.
    #[serde(default)]
    pub mailbox_hosts: String,
    /// `CRM__INTERACTIONS__OCCASION_LEAD_DAYS`: how many days before a person's birthday, name
    /// day or anniversary its owner gets the reminder task. Default 7; 0 to 90.
    pub occasion_lead_days: u16,
}

impl InteractionsConfig {
    pub fn mailbox_poll(&self) -> Duration {
        Duration::from_secs(self.mailbox_poll_secs)
    }

    /// Whether mailboxes may be read on `host` (compared without case).
    pub fn mailbox_host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.mailbox_hosts
            .split(',')
            .map(|allowed| allowed.trim().to_ascii_lowercase())
            .filter(|allowed| !allowed.is_empty())
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => host == allowed,
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RewardsConfig {
    /// `CRM__REWARDS__HOLD_TIMEOUT_SECS`: how long a reward order's points stay held in loyalty: an
    /// order not shipped by then is cancelled and its stock released. Default 1209600 (14 days);
    /// at most 30 days, loyalty's longest hold.
    pub hold_timeout_secs: u64,
}

impl RewardsConfig {
    pub fn hold_timeout(&self) -> Duration {
        Duration::from_secs(self.hold_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PrivacyConfig {
    /// `CRM__PRIVACY__SERVICES`: comma-separated names of the services that must answer every
    /// data-subject request before it completes (the registry). Default `parties,loyalty`.
    pub services: String,
    /// `CRM__PRIVACY__RETRY_AFTER_SECS`: how long a service may stay silent before the request is
    /// sent to it again. Default 300.
    pub retry_after_secs: u64,
    /// `CRM__PRIVACY__BUNDLE_RETENTION_DAYS`: how long a completed export's bundle (the subject's
    /// data) is kept for download. Default 30.
    pub bundle_retention_days: i32,
}

impl PrivacyConfig {
    pub fn registry(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.retry_after_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminConfig {
    /// `CRM__ADMIN__LISTEN`: host:port of the admin HTTP server (`/metrics`). Default
    /// `0.0.0.0:9<last three digits of the gRPC port>`, e.g. 9051 for parties.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcConfig {
    /// `CRM__GRPC__LISTEN`: host:port to serve gRPC on. Default `0.0.0.0:<service port>`.
    pub listen: String,
    /// `CRM__GRPC__REQUEST_TIMEOUT_MS`: longest a call may run (a shorter client deadline wins). Default 10000.
    pub request_timeout_ms: u64,
    /// `CRM__GRPC__CONCURRENCY_LIMIT`: calls in flight before new ones are shed with UNAVAILABLE. Default 256.
    pub concurrency_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    /// `CRM__DATABASE__URL`: `postgres://…`. Unset: a private PostgreSQL is started under `local_dir`.
    pub url: Option<Secret>,
    /// `CRM__DATABASE__MAX_CONNECTIONS`: pool size. Default 10.
    pub max_connections: u32,
    /// `CRM__DATABASE__ACQUIRE_TIMEOUT_MS`: how long a call waits for a connection (a free one,
    /// or a new one while the database refuses them) before it gets UNAVAILABLE. Default 2000;
    /// less than `grpc.request_timeout_ms`, so a caller hears why rather than its deadline.
    pub acquire_timeout_ms: u64,
    /// `CRM__DATABASE__MIGRATE_ON_START`: apply pending migrations when serving. Default true.
    pub migrate_on_start: bool,
    /// `CRM__DATABASE__LOCAL_DIR`: where the private PostgreSQL keeps its data. Default `.crm-local`.
    pub local_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// `CRM__KAFKA__BROKERS`: comma-separated host:port list. Unset: librdkafka's in-process mock cluster.
    pub brokers: Option<String>,
    /// `CRM__KAFKA__CREATE_TOPICS`: create the service's topics at start if missing. Default true.
    pub create_topics: bool,
    /// `CRM__KAFKA__TOPIC_PARTITIONS`: partitions of topics the service creates. Default 6.
    pub topic_partitions: i32,
    /// `CRM__KAFKA__REPLICATION_FACTOR`: replication of topics the service creates. Default 1.
    pub replication_factor: i32,
    /// `CRM__KAFKA__MESSAGE_TIMEOUT_MS`: how long the producer retries one record before the relay
    /// backs off and tries again. Default 30000.
    pub message_timeout_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    /// `CRM__AUTH__JWT_SECRET`: HS256 key, at least 32 bytes. Required unless running locally.
    pub jwt_secret: Option<Secret>,
    /// `CRM__AUTH__JWKS_URL`: the identity provider's signing keys (RS256/ES256), as `http://…`
    /// or `file:///path` (e.g. a mounted secret).
    pub jwks_url: Option<String>,
    /// `CRM__AUTH__SERVICE_TOKEN`: the bearer this service sends to its peers. Unset: it signs
    /// short-lived tokens with `jwt_secret` (development).
    pub service_token: Option<Secret>,
    /// `CRM__AUTH__ISSUER`: when set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// `CRM__AUTH__AUDIENCE`: when set, tokens must carry this `aud`.
    pub audience: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// `CRM__TELEMETRY__OTLP_ENDPOINT`: OTLP/gRPC collector, e.g. `http://otel-collector:4317`. Unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `CRM__TELEMETRY__LOG_FORMAT`: `json` or `pretty`. Default `json`.
    pub log_format: LogFormat,
    /// `CRM__TELEMETRY__LOG_FILTER`: a `tracing` filter, e.g. `info,crm_parties=debug`. Default `info`.
    pub log_filter: String,
    /// `CRM__TELEMETRY__SAMPLE_RATIO`: the share of traces this service starts (0 to 1) that are
    /// sampled: recorded, exported when a collector is set, and marked sampled for the services
    /// and consumers downstream. A caller's decision (`traceparent`) is always followed. Unsampled
    /// calls still get a trace id for their logs, peer calls and events. Takes precedence over
    /// `OTEL_TRACES_SAMPLER`. Default 1.
    pub sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A value that must never reach a log: `Debug` prints `***`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A configuration problem, naming the key (`grpc.listen`) and its variable (`CRM__GRPC__LISTEN`).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, problem: impl fmt::Display) -> Self {
        let var = format!("CRM__{}", key.replace('.', "__").to_uppercase());
        Self(format!("{key} (set {var}): {problem}"))
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment, and validates the result.
    pub fn load(spec: ServiceSpec, file: Option<&PathBuf>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in defaults(spec) {
            builder = builder
                .set_default(key, value)
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        let config: Config = builder
            .add_source(
                config::Environment::with_prefix("CRM")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))?;
        config.normalized().validate()
    }

    /// Empty environment variables mean "unset", as they do to most shells' users.
    fn normalized(mut self) -> Self {
        self.database.url = self.database.url.filter(|url| !url.0.trim().is_empty());
        self.kafka.brokers = self.kafka.brokers.filter(|b| !b.trim().is_empty());
        self.auth.jwt_secret = self.auth.jwt_secret.filter(|s| !s.0.is_empty());
        self.auth.jwks_url = self.auth.jwks_url.filter(|u| !u.trim().is_empty());
        self.telemetry.otlp_endpoint = self
            .telemetry
            .otlp_endpoint
            .filter(|e| !e.trim().is_empty());
        self
    }

    fn validate(self) -> Result<Self, ConfigError> {
        self.grpc_listen()?;
        self.admin_listen()?;
        if self.grpc.concurrency_limit == 0 {
            return Err(ConfigError::key(
                "grpc.concurrency_limit",
                "must be at least 1",
            ));
        }
        if self.grpc.request_timeout_ms == 0 {
            return Err(ConfigError::key(
                "grpc.request_timeout_ms",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.database.url
            && !(url.0.starts_with("postgres://") || url.0.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if !(1..self.grpc.request_timeout_ms).contains(&self.database.acquire_timeout_ms) {
            return Err(ConfigError::key(
                "database.acquire_timeout_ms",
                "must be at least 1 and less than grpc.request_timeout_ms",
            ));
        }
        if let Some(brokers) = &self.kafka.brokers
            && brokers.split(',').any(|b| !b.trim().contains(':'))
        {
            return Err(ConfigError::key(
                "kafka.brokers",
                format!("{brokers:?} is not a comma-separated list of host:port"),
            ));
        }
        if self.kafka.topic_partitions < 1 || self.kafka.replication_factor < 1 {
            return Err(ConfigError::key(
                "kafka.topic_partitions",
                "partitions and replication_factor must be at least 1",
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.0.len() < 32
        {
            return Err(ConfigError::key(
                "auth.jwt_secret",
                "must be at least 32 bytes long",
            ));
        }
        for (name, url) in &self.peers {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::key(
                    &format!("peers.{name}"),
                    format!("{url:?} is not an http:// URL"),
                ));
            }
        }
        if let Some(url) = &self.auth.jwks_url
            && !(url.starts_with("http://") || url.starts_with("file://"))
        {
            return Err(ConfigError::key(
                "auth.jwks_url",
                "must be an http:// or file:// URL (https is not supported yet: serve it in-cluster over http or mount it as a file)",
            ));
        }
        if let Some(bad) = self.privacy.registry().into_iter().find(|name| {
            !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        }) {
            return Err(ConfigError::key(
                "privacy.services",
                format!("{bad:?} is not a service name (lower case, digits, - and _)"),
            ));
        }
        if !(1..=365).contains(&self.privacy.bundle_retention_days) {
            return Err(ConfigError::key(
                "privacy.bundle_retention_days",
                "must be 1 to 365",
            ));
        }
        if !(1..=2_592_000).contains(&self.rewards.hold_timeout_secs) {
            return Err(ConfigError::key(
                "rewards.hold_timeout_secs",
                "must be 1 to 2592000 (30 days, loyalty's longest hold)",
            ));
        }
        if !(1024..=100 << 20).contains(&self.interactions.max_email_bytes) {
            return Err(ConfigError::key(
                "interactions.max_email_bytes",
                "must be 1024 to 104857600 (100 MiB)",
            ));
        }
        if self.interactions.max_stored_attachment_bytes > self.interactions.max_email_bytes {
            return Err(ConfigError::key(
                "interactions.max_stored_attachment_bytes",
                "must not exceed interactions.max_email_bytes",
            ));
        }
        if self.interactions.occasion_lead_days > 90 {
            return Err(ConfigError::key(
                "interactions.occasion_lead_days",
                "must be 0 to 90",
            ));
        }
        if !(1..=86_400).contains(&self.interactions.mailbox_poll_secs) {
            return Err(ConfigError::key(
                "interactions.mailbox_poll_secs",
                "must be 1 to 86400",
            ));
        }
        if self.privacy.retry_after_secs == 0 {
            return Err(ConfigError::key(
                "privacy.retry_after_secs",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(ConfigError::key("telemetry.sample_ratio", "must be 0 to 1"));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::key(
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(self)
    }

    pub fn grpc_listen(&self) -> Result<SocketAddr, ConfigError> {
        self.grpc
            .listen
            .parse()
            .map_err(|e| ConfigError::key("grpc.listen", format!("{:?}: {e}", self.grpc.listen)))
    }

    pub fn admin_listen(&self) -> Result<SocketAddr, ConfigError> {
        self.admin
            .listen
            .parse()
            .map_err(|e| ConfigError::key("admin.listen", format!("{:?}: {e}", self.admin.listen)))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc.request_timeout_ms)
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database.acquire_timeout_ms)
    }
}

fn defaults(spec: ServiceSpec) -> [(&'static str, config::Value); 24] {
    [
        (
            "admin.listen",
            format!("0.0.0.0:{}", spec.admin_port()).into(),
        ),
        (
            "grpc.listen",
            format!("0.0.0.0:{}", spec.default_port).into(),
        ),
        ("grpc.request_timeout_ms", 10_000.into()),
        ("grpc.concurrency_limit", 256.into()),
        ("database.max_connections", 10.into()),
        ("database.acquire_timeout_ms", 2_000.into()),
        ("database.migrate_on_start", true.into()),
        ("database.local_dir", ".crm-local".into()),
        ("kafka.create_topics", true.into()),
        ("kafka.topic_partitions", 6.into()),
        ("kafka.replication_factor", 1.into()),
        ("kafka.message_timeout_ms", 30_000.into()),
        ("telemetry.log_format", "json".into()),
        ("telemetry.log_filter", "info".into()),
        ("telemetry.sample_ratio", 1.0.into()),
        ("privacy.services", "parties,loyalty".into()),
        ("privacy.retry_after_secs", 300.into()),
        ("privacy.bundle_retention_days", 30.into()),
        ("rewards.hold_timeout_secs", 1_209_600.into()),
        ("interactions.max_email_bytes", (25_i64 << 20).into()),
        (
            "interactions.max_stored_attachment_bytes",
            (1_i64 << 20).into(),
        ),
        ("interactions.mailbox_poll_secs", 60.into()),
        ("interactions.occasion_lead_days", 7.into()),
        (
            "interactions.mailbox_secrets_dir",
            "/var/run/secrets/crm/mailboxes".into(),
        ),
    ]
}

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending migrations and exit (the Helm hook runs this).
    Migrate,
    /// Print a bearer token signed with the configured secret, for development.
    DevToken {
        subject: String,
        scopes: Vec<String>,
    },
    /// One of the service's own tasks (e.g. loyalty's `verify`), against the configured database.
    Task(String),
}

/// The command line: `[--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE…] | TASK]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub command: Command,
    pub config_file: Option<PathBuf>,
}

impl Cli {
    pub fn from_env() -> Result<Self, String> {
        Self::from_args(std::env::args().skip(1))
    }

    /// The command line `args` (without the program's name), with `CRM_CONFIG` from the
    /// environment.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        Self::parse(args, std::env::var_os("CRM_CONFIG").map(PathBuf::from))
    }

    fn parse(
        args: impl IntoIterator<Item = String>,
        config_env: Option<PathBuf>,
    ) -> Result<Self, String> {
        let mut args = args.into_iter();
        let mut config_file = config_env;
        let mut command = None;
        let mut subject = "dev".to_owned();
        let mut scopes = Vec::new();
        let mut task = String::new();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => {
                    config_file = Some(args.next().ok_or("--config needs a file")?.into());
                }
                "--subject" => subject = args.next().ok_or("--subject needs a value")?,
                "serve" if command.is_none() => command = Some("serve"),
                "migrate" if command.is_none() => command = Some("migrate"),
                "dev-token" if command.is_none() => command = Some("dev-token"),
                scope if command == Some("dev-token") && !scope.starts_with('-') => {
                    scopes.push(scope.to_owned())
                }
                name if command.is_none() && !name.starts_with('-') => {
                    command = Some("task");
                    task = name.to_owned();
                }
                other => {
                    return Err(format!(
                        "unexpected argument {other:?}\nusage: [--config FILE] [serve | migrate | dev-token [--subject S] [SCOPE...] | TASK]"
                    ));
                }
            }
        }
        let command = match command {
            None | Some("serve") => Command::Serve,
            Some("migrate") => Command::Migrate,
            Some("task") => Command::Task(task),
            _ => Command::DevToken { subject, scopes },
        };
        Ok(Self {
            command,
            config_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ServiceSpec = ServiceSpec {
        name: "parties",
        default_port: 50051,
    };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cli_defaults_to_serve_and_reads_config_from_env() {
        let cli = Cli::parse(args(&[]), Some("/etc/crm.toml".into())).unwrap();
        assert_eq!(cli.command, Command::Serve);
        assert_eq!(cli.config_file, Some(PathBuf::from("/etc/crm.toml")));
    }

    #[test]
    fn cli_parses_migrate_and_dev_token() {
        let cli = Cli::parse(args(&["--config", "a.toml", "migrate"]), None).unwrap();
        assert_eq!(cli.command, Command::Migrate);
        assert_eq!(cli.config_file, Some(PathBuf::from("a.toml")));

        let cli = Cli::parse(
            args(&[
                "dev-token",
                "--subject",
                "alice",
                "parties.read",
                "parties.write",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            cli.command,
            Command::DevToken {
                subject: "alice".into(),
                scopes: vec!["parties.read".into(), "parties.write".into()],
            }
        );
        assert!(Cli::parse(args(&["serve", "extra"]), None).is_err());

        let cli = Cli::parse(args(&["verify", "--config", "a.toml"]), None).unwrap();
        assert_eq!(cli.command, Command::Task("verify".into()));
        assert!(Cli::parse(args(&["verify", "again"]), None).is_err());
    }

    #[test]
    fn file_values_are_validated_with_the_key_named() {
        let dir = std::env::temp_dir().join(format!("crm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");

        std::fs::write(&file, "[grpc]\nlisten = \"not-an-address\"\n").unwrap();
        let err = Config::load(SPEC, Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("grpc.listen") && err.contains("CRM__GRPC__LISTEN"),
            "{err}"
        );

        std::fs::write(&file, "[auth]\njwt_secret = \"short\"\n").unwrap();
        let err = Config::load(SPEC, Some(&file)).unwrap_err().to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");

        std::fs::write(&file, "[database]\nurl = \"mysql://x\"\n").unwrap();
        let err = Config::load(SPEC, Some(&file)).unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");

        std::fs::write(&file, "[grpc]\nlisten = \"127.0.0.1:7000\"\n").unwrap();
        let config = Config::load(SPEC, Some(&file)).unwrap();
        assert_eq!(config.grpc_listen().unwrap().port(), 7000);
        assert_eq!(config.grpc.concurrency_limit, 256);
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
        assert_eq!(config.admin_listen().unwrap().port(), 9051);
        assert_eq!(config.privacy.registry(), ["loyalty", "parties"]);

        std::fs::write(&file, "[privacy]\nservices = \"parties, Loyalty\"\n").unwrap();
        let err = Config::load(SPEC, Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("privacy.services") && err.contains("Loyalty"),
            "{err}"
        );

        std::fs::write(&file, "[privacy]\nbundle_retention_days = 0\n").unwrap();
        let err = Config::load(SPEC, Some(&file)).unwrap_err().to_string();
        assert!(err.contains("CRM__PRIVACY__BUNDLE_RETENTION_DAYS"), "{err}");

        std::fs::write(
            &file,
            "[privacy]\nservices = \" rewards,parties,,rewards \"\n",
        )
        .unwrap();
        let config = Config::load(SPEC, Some(&file)).unwrap();
        assert_eq!(config.privacy.registry(), ["parties", "rewards"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
