//! Logs, traces and the W3C trace context that ties them together across gRPC calls and Kafka hops.
//!
//! Every span gets a real trace id even when no OTLP endpoint is configured, so the ids in logs,
//! gRPC metadata and Kafka headers always agree; the endpoint only decides whether spans leave the
//! process.

use std::{
    collections::HashMap,
    fmt::{self, Write as _},
};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing::{
    Span,
    field::{Field, Visit},
    span::Record,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    Layer, Registry,
    field::RecordFields,
    filter::{LevelFilter, Targets, filter_fn},
    fmt::{FormatFields, FormattedFields, format::Writer},
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
        // A caller's sampling decision is kept, so a trace is recorded whole or not at all, and
        // the decision travels on to peers and into Kafka headers whether or not this process
        // has a collector to export to.
        let mut provider = SdkTracerProvider::builder()
            .with_resource(
                Resource::builder()
                    .with_service_name(format!("crm-{service_name}"))
                    .build(),
            )
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))));
        if let Some(endpoint) = &config.otlp_endpoint {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            provider = provider.with_batch_exporter(exporter);
        }
        let provider = provider.build();
        // Spans carry what the gRPC and messaging conventions name. Source locations, thread
        // names, busy/idle timings and making each span the current OpenTelemetry context on
        // every poll cost time on every call and say nothing a trace viewer needs here.
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("crm"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false);

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
                .fmt_fields(AppendJsonFields)
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

/// A span's fields as one JSON object, written straight into the span's string: a field recorded
/// later is spliced in before the closing brace. tracing-subscriber's `JsonFields` builds a map of
/// JSON values per span and parses and re-serialises the whole object for each field recorded
/// later, and every call records three or four (trace id, caller, status).
struct AppendJsonFields;

impl<'writer> FormatFields<'writer> for AppendJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut members = JsonMembers::default();
        fields.record(&mut members);
        write!(writer, "{{{}}}", members.0)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut members = JsonMembers::default();
        fields.record(&mut members);
        if members.0.is_empty() {
            return Ok(());
        }
        let object = &mut current.fields;
        match object.strip_suffix('}') {
            Some(head) if head.len() > 1 => {
                object.pop();
                object.push(',');
            }
            _ => {
                object.clear();
                object.push('{');
            }
        }
        object.push_str(&members.0);
        object.push('}');
        Ok(())
    }
}

/// `"name":value` pairs, comma-separated, named as tracing-subscriber's JSON formatter names them.
#[derive(Default)]
struct JsonMembers(String);

impl JsonMembers {
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        // Fields that bridge `log` records are metadata, not values (as in `JsonFields`).
        if name.starts_with("log.") {
            return false;
        }
        if !self.0.is_empty() {
            self.0.push(',');
        }
        json_string(&mut self.0, name.strip_prefix("r#").unwrap_or(name));
        self.0.push(':');
        true
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        if self.name(field) {
            let _ = write!(self.0, "{value}");
        }
    }
}

impl Visit for JsonMembers {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.name(field) {
            json_string(&mut self.0, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            json_string(&mut self.0, &format!("{value:?}"));
        }
    }
}

/// `value` as a JSON string literal.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::field::Empty;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_recorded_after_a_span_starts_appear_in_its_json_log_lines() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .fmt_fields(AppendJsonFields)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "call",
                method = "Get",
                code = Empty,
                caller = Empty,
                ok = true,
                share = 0.5,
                nothing = f64::NAN,
                list = ?vec![1, 2],
                r#type = "raw",
            );
            span.record("caller", "alice \"the\" }{ admin\\ \n\t\u{1}");
            span.record("code", -5);
            let empty = tracing::info_span!(parent: &span, "step", attempt = Empty);
            empty.record("attempt", 2);
            let _entered = empty.enter();
            tracing::info!("done");
        });
        let output = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
        let call = &line["spans"][0];
        assert_eq!(call["method"], "Get");
        assert_eq!(call["caller"], "alice \"the\" }{ admin\\ \n\t\u{1}");
        assert_eq!(call["code"], -5);
        assert_eq!(call["ok"], true);
        assert_eq!(call["share"], 0.5);
        assert_eq!(call["nothing"], "NaN");
        assert_eq!(call["list"], "[1, 2]");
        assert_eq!(call["type"], "raw");
        assert_eq!(
            line["span"]["attempt"], 2,
            "a span without fields at start: {line}"
        );
    }
}
