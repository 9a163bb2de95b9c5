//! The runtime kit every CRM service is built on. A service brings its domain (protos, rules,
//! storage, events) and gets the rest from here, written once:
//!
//! - [`app`]: the one start-up path of `main` and the tests;
//! - [`config`]: layered configuration (defaults → file → `CRM__SECTION__KEY`), validated at start;
//! - [`telemetry`]: logs with trace ids, OTLP export, W3C trace-context propagation;
//! - [`server`]: the gRPC server stack (tracing, auth, load shedding, timeouts, health, reflection,
//!   graceful shutdown) and [`client`]: the matching client channel;
//! - [`auth`]: bearer JWTs with per-service scopes;
//! - [`error`]: canonical gRPC errors with `google.rpc` details;
//! - [`enums`]: domain enums stored as text and named by a proto enum, declared once;
//! - [`request`]: the caller, the answer mapping and validators that return parsed values;
//! - [`store`]: the PostgreSQL pool, migrations, pages and request-id idempotency;
//! - [`outbox`]: typed topics, events written in the state change's transaction and relayed to Kafka;
//! - [`consumer`]: idempotent Kafka consumers with retries and a dead-letter topic;
//! - [`privacy`]: the data-subject request fan-out every service holding personal data joins;
//! - [`metrics`]: Prometheus metrics on the admin port;
//! - [`local`]: an embedded PostgreSQL and Kafka for running a service with no configuration.

pub mod address;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod consumer;
pub mod enums;
pub mod error;
pub mod kafka;
pub mod local;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
