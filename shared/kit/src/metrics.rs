//! Prometheus metrics, served as text on the admin port at `/metrics`.
//!
//! - `crm_rpc_calls_total{method, code}` and `crm_rpc_duration_seconds{method}`: every gRPC call;
//! - `crm_outbox_published_total{topic}` and `crm_outbox_backlog`: the relay's progress;
//! - `crm_consumer_events_total{consumer, topic, outcome}`: applied, duplicate or dead-lettered.

use std::{convert::Infallible, sync::OnceLock, time::Duration};

use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Call labels are static strings: recording a call hashes two short strings and allocates
/// nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
    pub topic: String,
    pub outcome: &'static str,
}

type Durations = Family<MethodLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    durations: Durations,
    published: Family<TopicLabels, Counter>,
    backlog: Gauge,
    consumed: Family<ConsumerLabels, Counter>,
}

/// The process's metrics: one registry shared by the server, the relay and the consumers.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("crm");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "rpc_calls",
            "gRPC calls by method and status code",
            calls.clone(),
        );
        // 1 ms to ~33 s.
        let durations: Durations =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency by method",
            durations.clone(),
        );
        let published = Family::<TopicLabels, Counter>::default();
        registry.register(
            "outbox_published",
            "events the relay published, by topic",
            published.clone(),
        );
        let backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "events committed but not yet published",
            backlog.clone(),
        );
        let consumed = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "consumer_events",
            "events consumed, by outcome",
            consumed.clone(),
        );
        Self {
            registry,
            calls,
            durations,
            published,
            backlog,
            consumed,
        }
    }

    /// A finished call of `method` (`package.Service/Method`).
    pub fn record_call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_published(&self, topic: &str, count: u64) {
        self.published
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc_by(count);
    }

    pub fn set_backlog(&self, unpublished: i64) {
        self.backlog.set(unpublished);
    }

    pub fn record_consumed(&self, consumer: &str, topic: &str, outcome: &'static str) {
        let labels = ConsumerLabels {
            consumer: consumer.to_owned(),
            topic: topic.to_owned(),
            outcome,
        };
        self.consumed.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The code's name as its `Debug` form spells it (`Ok`, `InvalidArgument`, …), without formatting.
fn code_name(code: tonic::Code) -> &'static str {
    const NAMES: [&str; 17] = [
        "Ok",
        "Cancelled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).copied().unwrap_or("Unknown")
}

/// Serves `GET /metrics` over HTTP/1 until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: Shutdown) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting an admin connection failed");
                    continue;
                }
            },
            _ = shutdown.clone().wait() => return,
        };
        tokio::spawn(async move {
            let service = service_fn(|request: Request<Incoming>| async move {
                let response = if request.uri().path() == "/metrics" {
                    Response::builder()
                        .header(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(metrics().render())
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body("not found: try /metrics\n".to_owned())
                };
                Ok::<_, Infallible>(response.expect("a static response is valid"))
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_labels_keep_the_names_dashboards_already_use() {
        for number in 0..=16 {
            let code = tonic::Code::from_i32(number);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }
}
