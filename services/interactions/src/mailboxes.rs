//! Mailboxes read over IMAP: connected through the API, then read on schedule by every replica
//! in turn (a lease in the database), each message imported as ImportEmail imports it, the cursor
//! (UIDVALIDITY, last UID) moved past it once it is in.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, audit, required, text, timestamp},
    shutdown::Shutdown,
    store::Page,
};
use crm_proto::crm::interactions::v1::{self as proto, *};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    Interactions,
    domain::{MailboxSecurity, MailboxStatus},
    error::Refusal,
    imap::{Account, Folder},
    store::mailboxes::{self as store, MailboxRow, Outcome},
};

/// How long a reader holds a mailbox without moving its cursor before another may take it.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// How many mailboxes one replica reads at once.
const READERS: usize = 8;

impl Interactions {
    pub async fn connect_mailbox(
        &self,
        caller: &str,
        req: ConnectMailboxRequest,
    ) -> Result<proto::Mailbox> {
        let mut v = FieldViolations::new();
        let input = required(req.mailbox.clone(), "mailbox", &mut v);
        let host = text(&input.host, "mailbox.host", &mut v).to_lowercase();
        let well_formed = host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        v.check(
            well_formed,
            "mailbox.host",
            "is a host name or an IP address",
        );
        v.check(
            host.is_empty() || !well_formed || self.limits.mailbox_host_allowed(&host),
            "mailbox.host",
            "is not among the mail servers the service may connect to \
             (interactions.mailbox_hosts)",
        );
        let security = MailboxSecurity::optional(input.security, "mailbox.security", &mut v)
            .unwrap_or(MailboxSecurity::Tls);
        let port = match input.port {
            0 if security == MailboxSecurity::Tls => 993,
            0 => 143,
            port => port,
        };
        v.check(
            (1..=65535).contains(&port),
            "mailbox.port",
            "must be 1 to 65535",
        );
        let username = text(&input.username, "mailbox.username", &mut v);
        v.check(
            !username.contains(['\r', '\n', '\0']),
            "mailbox.username",
            "is one line",
        );
        let password_ref = input.password_ref.trim().to_owned();
        v.check(
            (1..=64).contains(&password_ref.len())
                && password_ref.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }),
            "mailbox.password_ref",
            "names a secret: 1 to 64 lower-case letters, digits, - and _",
        );
        let folder = match input.folder.trim() {
            "" => "INBOX".to_owned(),
            folder => folder.to_owned(),
        };
        v.check(
            folder.len() <= 1000
                && folder.is_ascii()
                && !folder
                    .chars()
                    .any(|c| c.is_ascii_control() || "\"\\&".contains(c)),
            "mailbox.folder",
            "is a folder name in ASCII, without quotes, backslashes or & (names in other \
             scripts are not supported yet)",
        );
        let mut own =
            crate::email::own_addresses(&input.own_addresses, "mailbox.own_addresses", &mut v);
        if own.is_empty() && username.contains('@') {
            own.push(username.to_lowercase());
        }
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let now = Utc::now();
        let row = MailboxRow {
            id: Uuid::now_v7(),
            host,
            port,
            security,
            username,
            password_ref,
            folder,
            own_addresses: own,
            status: MailboxStatus::Active,
            uid_validity: None,
            last_uid: 0,
            last_sync_at: None,
            last_error: String::new(),
            last_error_at: None,
            failures: 0,
            imported_count: 0,
            duplicate_count: 0,
            skipped_count: 0,
            created_at: now,
            updated_at: now,
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        let inserted =
            store::insert(&mut tx, &row)
                .await?
                .ok_or_else(|| Refusal::MailboxConnected {
                    username: row.username.clone(),
                    folder: row.folder.clone(),
                    host: row.host.clone(),
                })?;
        let mailbox = mailbox(&inserted);
        claim.commit(tx, &mailbox).await?;
        Ok(mailbox)
    }

    pub async fn get_mailbox(&self, req: GetMailboxRequest) -> Result<proto::Mailbox> {
        let id = request::id(&req.id, "id")?;
        let row = store::get(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Mailbox", id))?;
        Ok(mailbox(&row))
    }

    pub async fn list_mailboxes(&self, req: ListMailboxesRequest) -> Result<ListMailboxesResponse> {
        let mut v = FieldViolations::new();
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &req.status, &mut v);
        let status = MailboxStatus::optional(req.status, "status", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, status, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListMailboxesResponse {
            mailboxes: rows.iter().map(mailbox).collect(),
            next_page_token,
        })
    }

    pub async fn disconnect_mailbox(
        &self,
        caller: &str,
        req: DisconnectMailboxRequest,
    ) -> Result<proto::Mailbox> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let row = store::disconnect(&mut tx, id, caller)
            .await?
            .ok_or_else(|| ServiceError::not_found("Mailbox", id))?;
        let mailbox = mailbox(&row);
        claim.commit(tx, &mailbox).await?;
        Ok(mailbox)
    }

    /// Reads every mailbox that is due, a few at a time, until `shutdown`; then gives back the
    /// leases it holds.
    pub async fn read_mailboxes(self, shutdown: Shutdown) {
        let holder = Uuid::new_v4();
        let mut readers = JoinSet::new();
        while shutdown.sleep(Duration::from_secs(1)).await {
            while readers.try_join_next().is_some() {}
            while readers.len() < READERS {
                let leased = async {
                    let mut conn = self.pool.acquire().await?;
                    store::lease_due(&mut conn, holder, LEASE).await
                };
                match leased.await {
                    Ok(Some(row)) => {
                        let this = self.clone();
                        readers.spawn(async move { this.read(row, holder).await });
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "leasing a mailbox failed; retrying");
                        break;
                    }
                }
            }
        }
        readers.shutdown().await;
        let released = async { store::release(&mut *self.pool.acquire().await?, holder).await };
        if let Err(error) = released.await {
            tracing::warn!(%error, "giving back mailbox leases failed; they lapse by themselves");
        }
    }

    /// One read of `row`, its outcome recorded: synced, or failing with the reason.
    async fn read(&self, row: MailboxRow, holder: Uuid) {
        let poll = TimeDelta::from_std(self.limits.mailbox_poll()).unwrap_or(TimeDelta::MAX);
        let result = self.sync(&row, holder).await;
        let recorded = async {
            let mut conn = self.pool.acquire().await?;
            match &result {
                Ok(()) => store::synced(&mut conn, row.id, holder, poll).await,
                Err(error) => {
                    let reason = one_line(&format!("{error:#}"), 500);
                    tracing::warn!(mailbox = %row.id, error = %reason, "reading a mailbox failed");
                    store::failed(&mut conn, row.id, holder, &reason, poll).await
                }
            }
        };
        if let Err(error) = recorded.await {
            tracing::warn!(mailbox = %row.id, %error, "recording a mailbox read failed");
        }
    }

    async fn sync(&self, row: &MailboxRow, holder: Uuid) -> anyhow::Result<()> {
        // The allowed servers may have changed since it was connected.
        anyhow::ensure!(
            self.limits.mailbox_host_allowed(&row.host),
            "{} is no longer among interactions.mailbox_hosts",
            row.host
        );
        let password = self.password(&row.password_ref)?;
        let account = Account {
            host: &row.host,
            port: u16::try_from(row.port)?,
            security: row.security,
            username: &row.username,
            password: &password,
            folder: &row.folder,
        };
        let mut folder = Folder::open(&account, &self.tls).await?;
        let mut last_uid = row.last_uid;
        if row.uid_validity != Some(i64::from(folder.uid_validity)) {
            // Renumbered (or never read): from the start; what was imported is recognised.
            let mut conn = self.pool.acquire().await?;
            if !store::restart(&mut conn, row.id, holder, folder.uid_validity.into()).await? {
                return Ok(());
            }
            last_uid = 0;
        }
        let caller = format!("mailbox:{}", row.id);
        let limit = self.limits.max_email_bytes;
        for (uid, size) in folder.after(u32::try_from(last_uid)?).await? {
            let outcome = match folder.fetch(uid, limit).await? {
                _ if size as usize > limit => Outcome::Skipped,
                // Larger than the server said: cut at the limit, and left out.
                Some((raw, _)) if raw.len() > limit => Outcome::Skipped,
                Some((raw, received)) => {
                    let request = ImportEmailRequest {
                        raw_message: raw,
                        own_addresses: row.own_addresses.clone(),
                        received_time: received.map(timestamp),
                        request_id: String::new(),
                    };
                    match self.import_email(&caller, request).await {
                        Ok(answer) if answer.duplicate => Outcome::Duplicate,
                        Ok(_) => Outcome::Imported,
                        Err(ServiceError::Invalid(_) | ServiceError::Precondition(..)) => {
                            Outcome::Skipped
                        }
                        Err(error) => anyhow::bail!("importing message {uid}: {error}"),
                    }
                }
                // Expunged since it was listed.
                None => Outcome::Skipped,
            };
            if outcome == Outcome::Skipped {
                tracing::info!(mailbox = %row.id, uid, "a message is left out");
            }
            let mut conn = self.pool.acquire().await?;
            if !store::advance(&mut conn, row.id, holder, uid.into(), outcome, LEASE).await? {
                break;
            }
        }
        folder.close().await;
        Ok(())
    }

    /// The mailbox password named `name`: a file of the secrets directory, else an environment
    /// variable of its own prefix. Never any other file or variable.
    fn password(&self, name: &str) -> anyhow::Result<String> {
        let path = std::path::Path::new(&self.limits.mailbox_secrets_dir).join(name);
        if let Ok(password) = std::fs::read_to_string(&path) {
            return Ok(password.trim_end_matches(['\r', '\n']).to_owned());
        }
        let variable = format!(
            "CRM_MAILBOX_PASSWORD_{}",
            name.to_uppercase().replace('-', "_")
        );
        std::env::var(&variable).map_err(|_| {
            anyhow::anyhow!(
                "no password {name:?}: neither {} nor ${variable} is there",
                path.display()
            )
        })
    }
}

/// `text` as one line of at most `max` characters, without control characters: what a server
/// answers is kept and shown, whatever it sent.
fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

fn mailbox(row: &MailboxRow) -> proto::Mailbox {
    proto::Mailbox {
        id: row.id.to_string(),
        host: row.host.clone(),
        port: row.port,
        security: row.security.to_proto() as i32,
        username: row.username.clone(),
        password_ref: row.password_ref.clone(),
        folder: row.folder.clone(),
        own_addresses: row.own_addresses.clone(),
        status: row.status.to_proto() as i32,
        uid_validity: row.uid_validity.unwrap_or(0),
        last_uid: row.last_uid,
        last_sync_time: row.last_sync_at.map(timestamp),
        last_error: row.last_error.clone(),
        last_error_time: row.last_error_at.map(timestamp),
        imported_count: row.imported_count,
        duplicate_count: row.duplicate_count,
        skipped_count: row.skipped_count,
        audit: Some(audit(
            row.created_at,
            row.updated_at,
            &row.created_by,
            &row.updated_by,
        )),
        etag: row.version.to_string(),
    }
}
