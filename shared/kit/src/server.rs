//! The gRPC server every service runs: its routes plus health and reflection, behind one gate that
//! traces, authenticates and sheds load, with graceful shutdown.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::{self, Either, Ready};
use http::{Request, Response};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tonic::{body::Body, service::Routes, transport::server::TcpIncoming};
use tonic_health::ServingStatus;
use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};

use crm_proto::checks::Rpc;

use crate::{
    auth::Authenticator,
    metrics::metrics,
    shutdown::Shutdown,
    telemetry::{HeaderSource, adopt_parent, extract},
};

/// How a service's server is set up; everything else is the same for all services.
pub struct ServeOptions {
    /// Fully-qualified names of the services in the routes, reported SERVING by health checks.
    pub service_names: Vec<&'static str>,
    pub authenticator: Authenticator,
    pub concurrency_limit: usize,
    pub request_timeout: Duration,
    /// Whether the service can work now (its database answers): health reports its services
    /// NOT_SERVING while not, so that Kubernetes stops routing calls to it.
    pub ready: watch::Receiver<bool>,
}

/// Serves `routes` with health and reflection on `listener` until `shutdown` fires, then reports
/// NOT_SERVING, stops accepting and drains the calls in flight: it waits for at most the request
/// timeout and a second, and then returns, leaving connections still open (streams that never end
/// by themselves, such as health watches) to end with the process.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: ServeOptions,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in &options.service_names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    // Reflection lists only what this server serves; the descriptor set holds the whole suite.
    let reflection = |itself: &str| {
        options.service_names.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name(itself),
            |builder, name| builder.with_service_name(*name),
        )
    };
    let reflection_v1 = reflection("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    // Older grpcurl and many IDE plugins still speak only v1alpha.
    let reflection_v1alpha = reflection("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let gate = GateLayer {
        services: options.service_names.clone(),
        authenticator: Arc::new(options.authenticator),
        permits: Arc::new(Semaphore::new(options.concurrency_limit)),
    };
    let names = options.service_names;
    let readiness = tokio::spawn(report_readiness(
        health.clone(),
        names.clone(),
        options.ready,
    ));
    let drain_limit = options.request_timeout + Duration::from_secs(1);
    let draining = shutdown.clone();
    let server = tonic::transport::Server::builder()
        // Also honours a shorter `grpc-timeout` sent by the client.
        .timeout(options.request_timeout)
        .layer(gate)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.wait().await;
            tracing::info!("shutting down: no new calls, draining calls in flight");
            // Stopped and gone before NOT_SERVING is written: it cannot write SERVING after.
            readiness.abort();
            let _ = readiness.await;
            for name in names {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        });
    tokio::select! {
        served = server => served,
        _ = async {
            draining.wait().await;
            tokio::time::sleep(drain_limit).await;
        } => {
            tracing::warn!(?drain_limit, "connections still open after draining; no longer waiting for them");
            Ok(())
        }
    }
}

/// Reports `names` SERVING while `ready` holds true and NOT_SERVING while it holds false.
async fn report_readiness(
    health: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    mut ready: watch::Receiver<bool>,
) {
    while ready.changed().await.is_ok() {
        let status = match *ready.borrow_and_update() {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        for name in &names {
            health.set_service_status(*name, status).await;
        }
    }
}

/// The accepted connections, with Nagle's algorithm off: a unary reply is a few small HTTP/2
/// frames, and with Nagle on, the last of them waits for the client's delayed ACK (~40 ms).
/// tonic's own `tcp_nodelay` setting applies only to listeners it binds itself.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Paths that stay open without a token and are never shed: probes and tooling must always get
/// an answer.
const OPEN: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The label and span name of calls to paths no service has: one label, however many paths
/// callers try.
const UNKNOWN: &str = "unknown";

/// What a call's path names.
enum Target {
    /// A method of a service served here, with the scope it needs.
    Rpc(Rpc),
    /// Health or reflection: no token, no permit.
    Open(&'static str),
    /// Anything else: UNIMPLEMENTED.
    Unknown,
}

impl Target {
    fn resolve(path: &str, served: &[&'static str]) -> Self {
        if let Some(rpc) = crm_proto::checks::rpc(path) {
            if served.contains(&rpc.service()) {
                return Self::Rpc(rpc);
            }
            return Self::Unknown;
        }
        match OPEN.iter().find(|open| **open == path) {
            Some(open) => Self::Open(open),
            None => Self::Unknown,
        }
    }

    /// `package.Service/Method`: the metrics label and the span name.
    fn name(&self) -> &'static str {
        match self {
            Self::Rpc(rpc) => &rpc.path[1..],
            Self::Open(path) => &path[1..],
            Self::Unknown => UNKNOWN,
        }
    }
}

#[derive(Clone)]
struct GateLayer {
    /// The services served here: a call to any other path is UNIMPLEMENTED, saying so.
    services: Vec<&'static str>,
    authenticator: Arc<Authenticator>,
    permits: Arc<Semaphore>,
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

/// One stop in front of every call: the server span (child of the caller's trace context), then
/// authentication, then a concurrency permit, then the handler.
#[derive(Clone)]
struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

type GateFuture<F> = Either<Ready<Result<Response<Body>, Infallible>>, F>;

impl<S> Service<Request<Body>> for Gate<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        GateFuture<Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let target = Target::resolve(request.uri().path(), &self.layer.services);
        let name = target.name();
        let (service, method) = name.split_once('/').unwrap_or((name, ""));
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = name,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            enduser.id = Empty,
            trace_id = Empty,
        );
        adopt_parent(&span, extract(&HeaderSource(request.headers())));

        let permit = match target {
            Target::Open(_) => None,
            Target::Unknown => {
                let path = crm_proto::checks::truncate(request.uri().path().to_owned(), 200);
                let _entered = span.enter();
                tracing::info!(path, "call to an unknown method");
                let status = tonic::Status::unimplemented(format!(
                    "{path} is not a method of this server; it serves {}",
                    self.layer.services.join(", ")
                ));
                return reject(&span, name, status);
            }
            Target::Rpc(rpc) => {
                let authorization = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                match self.layer.authenticator.authorize(authorization, rpc.scope) {
                    Ok(caller) => {
                        span.record("enduser.id", caller.subject.as_str());
                        request.extensions_mut().insert(caller);
                    }
                    Err(error) => {
                        let _entered = span.enter();
                        tracing::info!(%error, "call refused");
                        return reject(&span, name, tonic::Status::from(error));
                    }
                }
                match self.layer.permits.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        let status = crate::error::retry_later(
                            tonic::Code::Unavailable,
                            "OVERLOADED",
                            "the server is at its concurrency limit; retry with backoff",
                            Duration::from_millis(100),
                        );
                        return reject(&span, name, status);
                    }
                }
            }
        };

        // The clone that was polled ready goes into the call; the fresh clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let record_on = span.clone();
        let started = Instant::now();
        Either::Right(Box::pin(
            async move {
                let response = inner.call(request).await;
                drop(permit);
                if let Ok(response) = &response {
                    let code = grpc_status(response);
                    record_status(&record_on, code);
                    metrics().record_call(name, tonic::Code::from_i32(code), started.elapsed());
                }
                response
            }
            .instrument(span),
        ))
    }
}

fn reject<F>(span: &tracing::Span, name: &'static str, status: tonic::Status) -> GateFuture<F> {
    record_status(span, status.code() as i32);
    metrics().record_call(name, status.code(), Duration::ZERO);
    Either::Left(future::ready(Ok(status.into_http())))
}

/// Errors come back as trailers-only responses with `grpc-status` in the headers; a success's status
/// travels in the trailers, so no header means OK.
fn grpc_status(response: &Response<Body>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn record_status(span: &tracing::Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    // Server-side errors per the OpenTelemetry gRPC conventions: the server's fault, not the caller's.
    let server_fault = matches!(
        tonic::Code::from_i32(code),
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    );
    if server_fault {
        span.record("otel.status_code", "ERROR");
    }
}
