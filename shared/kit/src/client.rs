//! The client side of the server stack: a channel whose calls carry the caller's trace context and
//! bearer token, each in a CLIENT span, so a call chain across services is one trace.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::{HeaderValue, Request, Response};
use tonic::{body::Body, transport::Channel};
use tower::Service;
use tracing::{Instrument, field::Empty};

use crate::{
    auth::TokenIssuer,
    error::ServiceError,
    telemetry::{HeaderCarrier, inject, record_trace_id},
};

/// A [`Channel`] that traces every call and optionally authenticates it.
#[derive(Clone)]
pub struct TracedChannel {
    inner: Channel,
    bearer: Option<Bearer>,
}

/// How calls authenticate.
#[derive(Clone)]
enum Bearer {
    /// A token handed over by configuration (the identity provider's client credentials).
    Fixed(HeaderValue),
    /// Short-lived tokens signed with the shared development secret, each used until a minute
    /// before it expires: a token per call would cost a signature here and a verification there.
    Issued {
        issuer: Arc<TokenIssuer>,
        subject: String,
        scopes: Vec<String>,
        current: Arc<Mutex<Option<(HeaderValue, Instant)>>>,
    },
}

const ISSUED_FOR: Duration = Duration::from_secs(300);
const REISSUE_AFTER: Duration = Duration::from_secs(240);

impl Bearer {
    fn header(&self) -> Option<HeaderValue> {
        match self {
            Bearer::Fixed(value) => Some(value.clone()),
            Bearer::Issued {
                issuer,
                subject,
                scopes,
                current,
            } => {
                let mut current = current.lock().expect("token lock");
                if let Some((value, issued)) = current.as_ref()
                    && issued.elapsed() < REISSUE_AFTER
                {
                    return Some(value.clone());
                }
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let token = issuer.issue(subject, &scopes, ISSUED_FOR);
                let value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
                *current = Some((value.clone(), Instant::now()));
                Some(value)
            }
        }
    }
}

impl TracedChannel {
    /// Connects lazily: the first call opens the connection, so services can start in any order.
    /// A peer that does not connect within 3 s, or answer within 10 s, fails the call rather than
    /// holding it (and the caller's caller) indefinitely.
    pub fn lazy(uri: &str) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(uri.to_owned())?
            .connect_timeout(Duration::from_secs(3))
            // tonic's default, stated because latency depends on it (see `server::incoming`).
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            inner: channel,
            bearer: None,
        })
    }

    /// Sends `Bearer <token>` with every call.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .ok()
            .map(Bearer::Fixed);
        self
    }

    /// Sends five-minute tokens for `subject` with `scopes`, signed as they are needed.
    pub fn with_issued_tokens(
        mut self,
        issuer: Arc<TokenIssuer>,
        subject: &str,
        scopes: &[&str],
    ) -> Self {
        self.bearer = Some(Bearer::Issued {
            issuer,
            subject: subject.to_owned(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            current: Arc::default(),
        });
        self
    }
}

impl Service<Request<Body>> for TracedChannel {
    type Response = Response<Body>;
    type Error = <Channel as Service<Request<Body>>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %path,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            trace_id = Empty,
        );
        record_trace_id(&span);
        inject(&span, &mut HeaderCarrier(request.headers_mut()));
        if !request.headers().contains_key(http::header::AUTHORIZATION)
            && let Some(authorization) = self.bearer.as_ref().and_then(Bearer::header)
        {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, authorization);
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await }.instrument(span))
    }
}

/// A peer's failure in this service's terms, for whatever a use case did not match itself (it
/// handles the refusals it understands, such as NOT_FOUND, first). A peer that cannot answer now
/// is UNAVAILABLE to our caller, who may retry; a peer refusing our credentials or our request is
/// this service's fault, logged as INTERNAL.
pub fn peer_error(peer: &str, status: tonic::Status) -> ServiceError {
    use tonic::Code;
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Unknown => {
            tracing::warn!(peer, code = ?status.code(), message = status.message(), "peer unavailable");
            ServiceError::Unavailable(format!("the {peer} service is unavailable; retry later"))
        }
        code => ServiceError::Internal(anyhow::anyhow!(
            "the {peer} service refused a call: {code:?} {}",
            status.message()
        )),
    }
}
