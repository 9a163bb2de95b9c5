//! Tokens signed by the identity provider's keys, published as a JWKS file or over HTTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crm_kit::{
    auth::{AuthError, Authenticator, Jwks, TokenIssuer},
    config::AuthConfig,
};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A throwaway RSA key (PKCS#1 DER) generated for these tests; it signs nothing anywhere else.
const PRIVATE_KEY: &[u8] = include_bytes!("fixtures/test-only-rsa-key.der");

fn jwks_document(kid: &str) -> String {
    let key = EncodingKey::from_rsa_der(PRIVATE_KEY);
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap()
}

fn rs256_token(kid: &str, scope: &str) -> String {
    let exp = (SystemTime::now() + Duration::from_secs(60))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({ "sub": "svc-loyalty", "exp": exp, "scope": scope, "iss": "https://id.example" });
    let header = Header {
        kid: Some(kid.into()),
        ..Header::new(Algorithm::RS256)
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(PRIVATE_KEY)).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn tokens_signed_by_a_published_key_are_accepted() {
    let path = std::env::temp_dir().join(format!("crm-jwks-{}.json", std::process::id()));
    std::fs::write(&path, jwks_document("key-2026")).unwrap();
    let config = AuthConfig {
        issuer: Some("https://id.example".into()),
        ..AuthConfig::default()
    };
    let jwks = Jwks::load(&format!("file://{}", path.display()))
        .await
        .unwrap();
    let auth = Authenticator::with_jwks_only(jwks, &config);

    let caller = auth
        .authorize(
            Some(&bearer(&rs256_token("key-2026", "parties.read"))),
            "parties.read",
        )
        .unwrap();
    assert_eq!(caller.subject, "svc-loyalty");
    assert_eq!(
        auth.authorize(
            Some(&bearer(&rs256_token("key-2026", "parties.read"))),
            "parties.write"
        ),
        Err(AuthError::Forbidden("parties.write".into()))
    );
    let unknown = auth.authorize(
        Some(&bearer(&rs256_token("key-2027", "parties.read"))),
        "parties.read",
    );
    assert!(matches!(unknown, Err(AuthError::Invalid(_))), "{unknown:?}");

    // A development HS256 token is no good where only the provider's keys are trusted.
    let dev = TokenIssuer::new("a-development-secret-of-32-bytes-or-more", &config).issue(
        "dev",
        &["parties.read"],
        Duration::from_secs(60),
    );
    assert!(matches!(
        auth.authorize(Some(&bearer(&dev)), "parties.read"),
        Err(AuthError::Invalid(_))
    ));
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn keys_load_over_http_and_a_bad_source_names_the_setting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let body = jwks_document("key-http");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await.unwrap();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
    });
    let auth =
        Authenticator::with_jwks_only(Jwks::load(&url).await.unwrap(), &AuthConfig::default());
    assert!(
        auth.authorize(
            Some(&bearer(&rs256_token("key-http", "parties.read"))),
            "parties.read"
        )
        .is_ok()
    );

    let error = Jwks::load("file:///nonexistent/jwks.json")
        .await
        .err()
        .unwrap();
    assert!(
        format!("{error:#}").contains("CRM__AUTH__JWKS_URL"),
        "{error:#}"
    );
}
