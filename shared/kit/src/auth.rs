//! Bearer JWTs with per-service scopes (`parties.read`, `parties.write`, …): HS256 with a shared
//! secret for development, RS256/ES256 keys from the identity provider's JWKS for production.
//!
//! Each RPC declares the scope it needs in the proto (`option (crm.common.v1.scope)`); the server's
//! gate looks it up in the table generated from the descriptors ([`crm_proto::checks::rpc`]).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{config::AuthConfig, shutdown::Shutdown};

/// The authenticated caller, put in each request's extensions for handlers (audit fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// Space-separated scopes (RFC 8693 style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Scopes as an array, as some identity providers issue them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scp: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token in the authorization header")]
    Missing,
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    #[error("the token lacks the scope {0}")]
    Forbidden(String),
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Forbidden(_) => tonic::Status::permission_denied(error.to_string()),
            AuthError::Missing | AuthError::Invalid(_) => {
                tonic::Status::unauthenticated(error.to_string())
            }
        }
    }
}

/// Verifies bearer tokens: HS256 against the shared secret, asymmetric ones against JWKS keys.
#[derive(Clone)]
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    verified: Arc<Verified>,
}

/// The longest bearer token looked at: identity providers issue a few KiB at most.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Tokens whose signature and claims were checked in the last minute. A client sends the same
/// bearer with every call; decoding and verifying it each time cost as much as the rest of the
/// gate. An entry ends with its token's `exp` or after [`VERIFIED_FOR`], whichever is first, so a
/// key withdrawn from the JWKS stops working within a minute of the next refresh.
#[derive(Default)]
struct Verified(RwLock<HashMap<String, Entry>>);

struct Entry {
    caller: Arc<Caller>,
    /// The token's `exp`, in seconds since the epoch.
    expires: u64,
    verified_at: Instant,
}

const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Beyond this many distinct tokens the cache starts over rather than grow.
const VERIFIED_MAX: usize = 10_000;

impl Verified {
    fn get(&self, token: &str) -> Option<Arc<Caller>> {
        let entries = self.0.read().expect("token cache lock");
        let entry = entries.get(token)?;
        entry.fresh(unix_now()).then(|| entry.caller.clone())
    }

    fn insert(&self, token: &str, caller: Arc<Caller>, expires: u64) {
        let mut entries = self.0.write().expect("token cache lock");
        if entries.len() >= VERIFIED_MAX {
            let now = unix_now();
            entries.retain(|_, entry| entry.fresh(now));
            if entries.len() >= VERIFIED_MAX {
                entries.clear();
            }
        }
        let entry = Entry {
            caller,
            expires,
            verified_at: Instant::now(),
        };
        entries.insert(token.to_owned(), entry);
    }
}

impl Entry {
    fn fresh(&self, now: u64) -> bool {
        self.verified_at.elapsed() < VERIFIED_FOR && now < self.expires
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// Accepts HS256 tokens signed with `secret`.
    pub fn new(secret: &str, config: &AuthConfig) -> Self {
        Self {
            hs256: Some(DecodingKey::from_secret(secret.as_bytes())),
            ..Self::keyless(config)
        }
    }

    /// Accepts tokens signed by a key of `jwks` only.
    pub fn with_jwks_only(jwks: Arc<Jwks>, config: &AuthConfig) -> Self {
        Self {
            jwks: Some(jwks),
            ..Self::keyless(config)
        }
    }

    /// Also accepts tokens signed by a key of `jwks`.
    pub fn and_jwks(mut self, jwks: Arc<Jwks>) -> Self {
        self.jwks = Some(jwks);
        // What another configuration verified says nothing about this one.
        self.verified = Arc::default();
        self
    }

    fn keyless(config: &AuthConfig) -> Self {
        Self {
            hs256: None,
            jwks: None,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            verified: Arc::default(),
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // A configured issuer or audience must be present, not just correct when present.
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }

    /// Checks the `authorization` header and that the token grants `scope`.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: &str,
    ) -> Result<Arc<Caller>, AuthError> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let caller = match self.verified.get(token) {
            Some(caller) => caller,
            None => {
                let (caller, expires) = self.verify(token)?;
                let caller = Arc::new(caller);
                self.verified.insert(token, caller.clone(), expires);
                caller
            }
        };
        if !caller.scopes.iter().any(|s| s == scope) {
            return Err(AuthError::Forbidden(scope.to_owned()));
        }
        Ok(caller)
    }

    /// The caller a token names and its `exp`, once its signature and claims check out.
    fn verify(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match (header.alg, &self.hs256, &self.jwks) {
            (Algorithm::HS256, Some(secret), _) => secret.clone(),
            (Algorithm::HS256, None, _) => {
                return Err(AuthError::Invalid(
                    "HS256 tokens are not accepted here".into(),
                ));
            }
            (algorithm, _, Some(jwks)) => {
                jwks.key(header.kid.as_deref(), algorithm).ok_or_else(|| {
                    AuthError::Invalid(format!("no {algorithm:?} key with kid {:?}", header.kid))
                })?
            }
            (algorithm, _, None) => {
                return Err(AuthError::Invalid(format!(
                    "{algorithm:?} tokens are not accepted here"
                )));
            }
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        let mut scopes: Vec<String> = claims
            .scope
            .iter()
            .flat_map(|s| s.split_whitespace().map(str::to_owned))
            .collect();
        scopes.extend(claims.scp.into_iter().flatten());
        let caller = Caller {
            subject: claims.sub,
            scopes,
        };
        Ok((caller, claims.exp))
    }
}

/// Signs HS256 tokens: for development and tests, never for production (production tokens come
/// from the identity provider).
pub struct TokenIssuer {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenIssuer {
    pub fn new(secret: &str, config: &AuthConfig) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    pub fn issue(&self, subject: &str, scopes: &[&str], ttl: Duration) -> String {
        let exp = (SystemTime::now() + ttl)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: subject.to_owned(),
            exp,
            scope: Some(scopes.join(" ")),
            scp: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

/// The identity provider's signing keys, from a JWKS document at an `http://` or `file://` URL,
/// refreshed every five minutes and soon after a token names a key id not seen yet (rotation).
pub struct Jwks {
    url: String,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    wanted: Notify,
}

const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// However many unknown key ids arrive, the provider is asked at most this often.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

impl Jwks {
    /// Fetches the keys once; a service does not start without them.
    pub async fn load(url: &str) -> anyhow::Result<Arc<Self>> {
        let jwks = Arc::new(Self {
            url: url.to_owned(),
            keys: RwLock::default(),
            wanted: Notify::new(),
        });
        jwks.refresh()
            .await
            .with_context(|| format!("auth.jwks_url (set CRM__AUTH__JWKS_URL): loading {url}"))?;
        Ok(jwks)
    }

    /// The key for `kid` (or the only key of the algorithm when the token names none).
    fn key(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().expect("JWKS lock");
        let found = match kid {
            Some(kid) => keys.get(kid).filter(|(_, alg)| *alg == algorithm),
            None => {
                let mut matching = keys.values().filter(|(_, alg)| *alg == algorithm);
                matching.next().filter(|_| matching.next().is_none())
            }
        };
        if found.is_none() {
            self.wanted.notify_one();
        }
        found.map(|(key, _)| key.clone())
    }

    /// Keeps the keys fresh until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = self.wanted.notified() => {
                    tokio::time::sleep(REFRESH_AT_MOST_EVERY.saturating_sub(last.elapsed())).await;
                }
                _ = shutdown.clone().wait() => return,
            }
            last = Instant::now();
            if let Err(error) = self.refresh().await {
                tracing::warn!(error = format!("{error:#}"), url = %self.url, "refreshing the JWKS failed; keeping the known keys");
            }
        }
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let document = match self.url.strip_prefix("file://") {
            Some(path) => tokio::fs::read(path).await?,
            None => fetch(&self.url).await?,
        };
        let set: JwkSet = serde_json::from_slice(&document).context("not a JWKS document")?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let algorithm = match jwk.common.key_algorithm {
                Some(alg) => alg.to_string().parse::<Algorithm>().ok(),
                None => default_algorithm(&jwk.algorithm),
            };
            // Keys for other uses (encryption) or algorithms we do not verify are skipped.
            if let (Some(algorithm), Ok(key)) = (algorithm, DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, (key, algorithm));
            }
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "the JWKS has no usable signing key with a kid"
        );
        tracing::info!(keys = keys.len(), url = %self.url, "JWKS loaded");
        *self.keys.write().expect("JWKS lock") = keys;
        Ok(())
    }
}

fn default_algorithm(parameters: &AlgorithmParameters) -> Option<Algorithm> {
    match parameters {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

async fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse()?))
        .await
        .context("timed out")??;
    anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
    Ok(response.into_body().collect().await?.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn issue(config: &AuthConfig, subject: &str, scopes: &[&str]) -> String {
        TokenIssuer::new(SECRET, config).issue(subject, scopes, Duration::from_secs(60))
    }

    #[test]
    fn a_token_grants_only_its_scopes() {
        let auth = Authenticator::new(SECRET, &AuthConfig::default());
        let token = issue(&AuthConfig::default(), "alice", &["parties.read"]);
        let caller = auth
            .authorize(Some(&bearer(&token)), "parties.read")
            .unwrap();
        assert_eq!(caller.subject, "alice");
        assert_eq!(
            auth.authorize(Some(&bearer(&token)), "parties.write"),
            Err(AuthError::Forbidden("parties.write".into()))
        );
    }

    #[test]
    fn a_verified_token_is_remembered_but_still_checked_for_scope_and_expiry() {
        let auth = Authenticator::new(SECRET, &AuthConfig::default());
        let token = issue(&AuthConfig::default(), "alice", &["parties.read"]);
        let first = auth
            .authorize(Some(&bearer(&token)), "parties.read")
            .unwrap();
        let again = auth
            .authorize(Some(&bearer(&token)), "parties.read")
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second call reuses the first verification"
        );
        assert_eq!(
            auth.authorize(Some(&bearer(&token)), "parties.write"),
            Err(AuthError::Forbidden("parties.write".into())),
            "a remembered token grants only its scopes"
        );

        // An entry past its token's `exp` is not used: full verification decides again.
        auth.verified.insert(&token, first, unix_now() - 1);
        assert!(
            auth.verified.get(&token).is_none(),
            "an expired entry is not used"
        );

        // Another secret's authenticator shares nothing with this one.
        let other = Authenticator::new(
            "another-secret-of-at-least-32-bytes!!",
            &AuthConfig::default(),
        );
        assert!(matches!(
            other.authorize(Some(&bearer(&token)), "parties.read"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn missing_forged_and_expired_tokens_are_rejected() {
        let auth = Authenticator::new(SECRET, &AuthConfig::default());
        assert_eq!(
            auth.authorize(None, "parties.read"),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authorize(Some("Bearer "), "parties.read"),
            Err(AuthError::Missing)
        );

        let forged = TokenIssuer::new(
            "another-secret-that-is-32-bytes-long",
            &AuthConfig::default(),
        )
        .issue("mallory", &["parties.read"], Duration::from_secs(60));
        assert!(matches!(
            auth.authorize(Some(&bearer(&forged)), "parties.read"),
            Err(AuthError::Invalid(_))
        ));

        let claims = Claims {
            sub: "bob".into(),
            exp: 1,
            scope: Some("parties.read".into()),
            scp: None,
            iss: None,
            aud: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            auth.authorize(Some(&bearer(&expired)), "parties.read"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let config = AuthConfig {
            issuer: Some("https://id.example".into()),
            audience: Some("crm".into()),
            ..AuthConfig::default()
        };
        let strict = Authenticator::new(SECRET, &config);
        let token = issue(&AuthConfig::default(), "carol", &["parties.read"]);
        assert!(
            strict
                .authorize(Some(&bearer(&token)), "parties.read")
                .is_err()
        );
        let token = issue(&config, "carol", &["parties.read"]);
        assert!(
            strict
                .authorize(Some(&bearer(&token)), "parties.read")
                .is_ok()
        );
    }
}
