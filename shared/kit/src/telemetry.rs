//! Logs, traces and the W3C trace context that ties them together across gRPC calls and Kafka hops.
//!
//! Every span gets a real trace id even when no OTLP endpoint is configured, so the ids in logs,
//! gRPC metadata and Kafka headers always agree; the endpoint only decides whether spans leave the
//! process.

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    Layer, Registry,
    filter::{LevelFilter, Targets, filter_fn},
    layer::{Filter, SubscriberExt},
    util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetryConfig};

/// Owns the tracer provider; [`Telemetry::shutdown`] flushes spans still in the exporter's queue.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Installs the global `tracing` subscriber: the log formatter, the OpenTelemetry layer and
    /// the filter. A second call in one process (tests) keeps the first subscriber.
    pub fn init(service_name: &str, config: &TelemetryConfig) -> anyhow::Result<Self> {
        let mut provider = SdkTracerProvider::builder().with_resource(
            Resource::builder()
                .with_service_name(format!("crm-{service_name}"))
                .build(),
        );
        if let Some(endpoint) = &config.otlp_endpoint {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            provider = provider.with_batch_exporter(exporter);
        }
        let provider = provider.build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("crm"));

        let targets: Targets = config.log_filter.parse().map_err(|e| {
            anyhow::anyhow!("telemetry.log_filter (set CRM__TELEMETRY__LOG_FILTER): {e}")
        })?;
        // Spans below INFO are off unless the log filter asks for them.
        let floor = <Targets as Filter<Registry>>::max_level_hint(&targets)
            .map_or(LevelFilter::INFO, |hint| hint.max(LevelFilter::INFO));
        // The log filter quiets log lines only. Spans always pass it: hiding a span from one layer
        // hides it from `Span::current()`, and with it the trace context events must carry.
        let keep = move |meta: &tracing::Metadata<'_>| {
            meta.is_span() || targets.would_enable(meta.target(), meta.level())
        };
        let json = (config.log_format == LogFormat::Json).then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_filter(filter_fn(keep.clone()))
        });
        let pretty = (config.log_format == LogFormat::Pretty)
            .then(|| tracing_subscriber::fmt::layer().with_filter(filter_fn(keep)));

        // Ignored when a subscriber is already set: tests start several services in one process.
        let _ = tracing_subscriber::registry()
            .with(floor)
            .with(otel)
            .with(json)
            .with(pretty)
            .try_init();
        Ok(Self { provider })
    }

    /// Exports what is still buffered; call it before exit and in tests before asserting on spans.
    pub fn flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "flushing spans failed");
        }
    }

    pub fn shutdown(self) {
        self.flush();
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "stopping the span exporter failed");
        }
    }
}

/// Gives `span` the remote parent `parent` and records its trace id as the span field `trace_id`
/// (declare the field `Empty`), so every log line inside carries it. Must run before the span is
/// entered: a parent set later is silently ignored.
pub fn adopt_parent(span: &Span, parent: Context) {
    let _ = span.set_parent(parent);
    record_trace_id(span);
}

/// Records the span's trace id in its `trace_id` field, if it has one.
pub fn record_trace_id(span: &Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

/// The W3C `traceparent`/`tracestate` of `span`, as header name → value.
pub fn trace_headers(span: &Span) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers
}

/// Reads a W3C trace context from any header-like carrier (gRPC metadata, Kafka headers).
pub fn extract(carrier: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract(carrier)
}

/// Writes the trace context of `span` into `carrier`.
pub fn inject(span: &Span, carrier: &mut dyn Injector) {
    TraceContextPropagator::new().inject_context(&span.context(), carrier);
}

/// HTTP/2 headers (gRPC metadata) as a trace-context carrier.
pub struct HeaderCarrier<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Read-only HTTP/2 headers as a trace-context source.
pub struct HeaderSource<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderSource<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
