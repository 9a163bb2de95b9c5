//! The client side of the server stack: a channel whose calls carry the caller's trace context and
//! bearer token, each in a CLIENT span, so a call chain across services is one trace.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tonic::{body::Body, transport::Channel};
use tower::Service;
use tracing::{Instrument, field::Empty};

use crate::telemetry::{HeaderCarrier, inject, record_trace_id};

/// A [`Channel`] that traces every call and optionally authenticates it.
#[derive(Clone)]
pub struct TracedChannel {
    inner: Channel,
    authorization: Option<HeaderValue>,
}

impl TracedChannel {
    /// Connects lazily: the first call opens the connection, so services can start in any order.
    pub fn lazy(uri: &str) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(uri.to_owned())?.connect_lazy();
        Ok(Self {
            inner: channel,
            authorization: None,
        })
    }

    /// Sends `Bearer <token>` with every call.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.authorization = HeaderValue::from_str(&format!("Bearer {token}")).ok();
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
        if let Some(authorization) = &self.authorization
            && !request.headers().contains_key(http::header::AUTHORIZATION)
        {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, authorization.clone());
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await }.instrument(span))
    }
}
