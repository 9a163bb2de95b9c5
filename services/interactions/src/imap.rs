//! Reading one folder of a mailbox over IMAP (RFC 3501): connect (TLS, STARTTLS or plain), log in,
//! examine the folder (read-only), find the messages after a UID and their sizes, fetch one at a
//! time without marking it read, log out. Every step is bounded in time.

use std::{fmt::Debug, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use async_imap::{Client, Session};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

use crate::domain::MailboxSecurity;

/// The longest any one exchange with the server may take.
const STEP: Duration = Duration::from_secs(30);

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

/// Where and as whom to read.
pub struct Account<'a> {
    pub host: &'a str,
    pub port: u16,
    pub security: MailboxSecurity,
    pub username: &'a str,
    pub password: &'a str,
    pub folder: &'a str,
}

/// The TLS settings every mailbox connection uses: the system's trust store (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured), plus the PEM certificates of `ca_file` when one is configured.
pub fn tls(ca_file: &str) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system certificate could not be read");
    }
    roots.add_parsable_certificates(native.certs);
    if !ca_file.is_empty() {
        for cert in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("reading interactions.mailbox_ca_file {ca_file}"))?
        {
            roots
                .add(cert.with_context(|| format!("a certificate of {ca_file}"))?)
                .with_context(|| format!("a certificate of {ca_file}"))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A selected folder, read under its UIDVALIDITY.
pub struct Folder {
    session: Session<Box<dyn Io>>,
    pub uid_validity: u32,
    /// How many messages it held, and the UID the next one will get, when selected.
    exists: u32,
    uid_next: Option<u32>,
}

async fn step<T, E: Into<anyhow::Error>>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match timeout(STEP, future).await {
        Ok(result) => result.map_err(Into::into).context(what.to_owned()),
        Err(_) => bail!("{what}: no answer within {} s", STEP.as_secs()),
    }
}

impl Folder {
    pub async fn open(account: &Account<'_>, tls: &TlsConnector) -> anyhow::Result<Self> {
        let address = format!("{}:{}", account.host, account.port);
        let tcp = step(
            &format!("connecting to {address}"),
            TcpStream::connect(&address),
        )
        .await?;
        tcp.set_nodelay(true)?;
        let name = || {
            ServerName::try_from(account.host.to_owned())
                .map_err(|_| anyhow!("{:?} is not a host name", account.host))
        };
        let stream: Box<dyn Io> = match account.security {
            MailboxSecurity::Tls => {
                Box::new(step("the TLS handshake", tls.connect(name()?, tcp)).await?)
            }
            MailboxSecurity::Starttls => {
                let mut plain = Client::new(tcp);
                greeting(&mut plain).await?;
                step("STARTTLS", plain.run_command_and_check_ok("STARTTLS", None)).await?;
                let tcp = plain.into_inner();
                Box::new(step("the TLS handshake", tls.connect(name()?, tcp)).await?)
            }
            MailboxSecurity::None => Box::new(tcp),
        };
        let mut client = Client::new(stream);
        if account.security != MailboxSecurity::Starttls {
            greeting(&mut client).await?;
        }
        let mut session =
            match timeout(STEP, client.login(account.username, account.password)).await {
                Ok(Ok(session)) => session,
                Ok(Err((error, _))) => bail!("logging in as {}: {error}", account.username),
                Err(_) => bail!("logging in: no answer within {} s", STEP.as_secs()),
            };
        // Read-only: reading changes nothing in the mailbox (no Recent or Seen flags).
        let selected = step(
            &format!("selecting folder {:?}", account.folder),
            session.examine(account.folder),
        )
        .await?;
        let uid_validity = selected
            .uid_validity
            .ok_or_else(|| anyhow!("the server gave folder {:?} no UIDVALIDITY", account.folder))?;
        Ok(Self {
            session,
            uid_validity,
            exists: selected.exists,
            uid_next: selected.uid_next.filter(|next| *next > 0),
        })
    }

    /// The messages after `last_uid`, oldest first, with their sizes in bytes (0 when the server
    /// does not say): their UIDs found by a search, their sizes asked a thousand at a time.
    pub async fn after(&mut self, last_uid: u32) -> anyhow::Result<Vec<(u32, u32)>> {
        const CHUNK: usize = 1_000;
        let Some(first) = last_uid.checked_add(1) else {
            return Ok(Vec::new());
        };
        if self.exists == 0 || self.uid_next.is_some_and(|next| next <= first) {
            return Ok(Vec::new());
        }
        // `n:*` names the last message even when its UID is below n.
        let found = step(
            "searching for new messages",
            self.session.uid_search(format!("UID {first}:*")),
        )
        .await?;
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > last_uid).collect();
        uids.sort_unstable();
        let mut listed: Vec<(u32, u32)> = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(CHUNK) {
            let set = chunk
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let fetches = step(
                "listing new messages",
                self.session.uid_fetch(&set, "(UID RFC822.SIZE)"),
            )
            .await?;
            let fetches: Vec<_> = step("listing new messages", fetches.try_collect()).await?;
            let sizes: std::collections::HashMap<u32, u32> = fetches
                .iter()
                .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
                .collect();
            listed.extend(
                chunk
                    .iter()
                    .map(|uid| (*uid, sizes.get(uid).copied().unwrap_or(0))),
            );
        }
        Ok(listed)
    }

    /// Message `uid` as sent, at most `limit + 1` bytes of it (more tells it is too large), and
    /// when the server received it; `None` when it has gone since it was listed.
    pub async fn fetch(
        &mut self,
        uid: u32,
        limit: usize,
    ) -> anyhow::Result<Option<(Vec<u8>, Option<DateTime<Utc>>)>> {
        let fetches = step(
            &format!("fetching message {uid}"),
            self.session.uid_fetch(
                uid.to_string(),
                format!("(UID INTERNALDATE BODY.PEEK[]<0.{}>)", limit + 1),
            ),
        )
        .await?;
        let fetches: Vec<_> =
            step(&format!("fetching message {uid}"), fetches.try_collect()).await?;
        Ok(fetches.iter().find(|f| f.uid == Some(uid)).and_then(|f| {
            let body = f.body()?.to_vec();
            Some((body, f.internal_date().map(|at| at.with_timezone(&Utc))))
        }))
    }

    pub async fn close(mut self) {
        // The server ends the session on its own if the goodbye is lost.
        let _ = timeout(STEP, self.session.logout()).await;
    }
}

async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(
    client: &mut Client<T>,
) -> anyhow::Result<()> {
    match step("reading the server's greeting", client.read_response()).await? {
        Some(_) => Ok(()),
        None => bail!("the server closed the connection before greeting"),
    }
}
