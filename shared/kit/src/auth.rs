//! Bearer JWTs with per-service scopes (`parties.read`, `parties.write`, …).
//!
//! Scopes follow the method name, so every service applies the same rule: methods that only read
//! (`Get…`, `List…`, `Search…`, `Find…`, `Check…`, `Validate…`) need `<service>.read`, every other
//! method needs `<service>.write`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;

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

/// Verifies HS256 tokens signed with the configured shared secret.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    pub fn new(secret: &str, config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // A configured issuer or audience must be present, not just correct when present.
        let mut required = vec!["exp", "sub"];
        required.extend(config.issuer.as_ref().map(|_| "iss"));
        required.extend(config.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        Self {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// Checks the `authorization` header and that the token grants `scope`.
    pub fn authorize(&self, authorization: Option<&str>, scope: &str) -> Result<Caller, AuthError> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        let mut scopes: Vec<String> = claims
            .scope
            .iter()
            .flat_map(|s| s.split_whitespace().map(str::to_owned))
            .collect();
        scopes.extend(claims.scp.into_iter().flatten());
        if !scopes.iter().any(|s| s == scope) {
            return Err(AuthError::Forbidden(scope.to_owned()));
        }
        Ok(Caller {
            subject: claims.sub,
            scopes,
        })
    }

    /// Signs a token for `subject` with `scopes`: for development and tests, never for production
    /// (production tokens come from the identity provider).
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
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

/// The scope a call to `method` of `service` needs (see the module docs).
pub fn required_scope(service: &str, method: &str) -> String {
    const READS: [&str; 6] = ["Get", "List", "Search", "Find", "Check", "Validate"];
    let access = if READS.iter().any(|verb| method.starts_with(verb)) {
        "read"
    } else {
        "write"
    };
    format!("{service}.{access}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn scopes_follow_the_method_verb() {
        assert_eq!(required_scope("parties", "GetParty"), "parties.read");
        assert_eq!(required_scope("parties", "SearchParties"), "parties.read");
        assert_eq!(required_scope("parties", "CreateParty"), "parties.write");
        assert_eq!(required_scope("parties", "MergeParties"), "parties.write");
    }

    #[test]
    fn a_token_grants_only_its_scopes() {
        let auth = Authenticator::new(SECRET, &AuthConfig::default());
        let token = auth.issue("alice", &["parties.read"], Duration::from_secs(60));
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

        let other = Authenticator::new(
            "another-secret-that-is-32-bytes-long",
            &AuthConfig::default(),
        );
        let forged = other.issue("mallory", &["parties.read"], Duration::from_secs(60));
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
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding).unwrap();
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
        let lax = Authenticator::new(SECRET, &AuthConfig::default());
        let token = lax.issue("carol", &["parties.read"], Duration::from_secs(60));
        assert!(
            strict
                .authorize(Some(&bearer(&token)), "parties.read")
                .is_err()
        );
        let token = strict.issue("carol", &["parties.read"], Duration::from_secs(60));
        assert!(
            strict
                .authorize(Some(&bearer(&token)), "parties.read")
                .is_ok()
        );
    }
}
