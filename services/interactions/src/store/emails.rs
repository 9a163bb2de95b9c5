//! Imported e-mails: the keys that recognise and thread them, and the attachment content kept.

use crm_kit::store::Tx;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// How an imported message is recognised and threaded (SHA-256 keys, see the migration).
#[derive(Debug, Clone)]
pub struct EmailKeys {
    /// The key of its Message-ID: every message under one id takes turns by it.
    pub lock: Vec<u8>,
    pub message: Vec<u8>,
    pub replies: Vec<Vec<u8>>,
    pub references: Vec<Vec<u8>>,
    pub subject: Vec<u8>,
    pub fingerprint: Vec<u8>,
}

/// Serialises imports of the same message until the transaction ends, so that two at once make
/// one interaction.
pub async fn lock(tx: &mut Tx, keys: &EmailKeys) -> sqlx::Result<()> {
    let key: String = keys.lock.iter().map(|b| format!("{b:02x}")).collect();
    crm_kit::store::lock_names(tx, "message", [key]).await
}

/// The interaction a message became, if it was imported before: the one under its key with its
/// fingerprint. Another message under the same Message-ID (reused by a broken or hostile mailer)
/// is recognised instead by a key of both, which `keys.message` becomes.
pub async fn imported(conn: &mut PgConnection, keys: &mut EmailKeys) -> sqlx::Result<Option<Uuid>> {
    let found: Option<(Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT interaction_id, fingerprint FROM emails WHERE message_key = $1")
            .bind(&keys.message)
            .fetch_optional(&mut *conn)
            .await?;
    match found {
        None => Ok(None),
        // An erased message's fingerprint is gone: whatever comes under its id is taken for it.
        Some((id, fingerprint)) if fingerprint == keys.fingerprint || fingerprint.is_empty() => {
            Ok(Some(id))
        }
        Some(_) => {
            keys.message =
                Sha256::digest([&keys.message[..], &keys.fingerprint[..]].concat()).to_vec();
            sqlx::query_scalar("SELECT interaction_id FROM emails WHERE message_key = $1")
                .bind(&keys.message)
                .fetch_optional(conn)
                .await
        }
    }
}

/// The thread a new message joins: that of the message it replies to, else that of the latest
/// message it references with its subject.
pub async fn thread_of(tx: &mut Tx, keys: &EmailKeys) -> sqlx::Result<Option<Uuid>> {
    let parent: Option<Uuid> = sqlx::query_scalar(
        "SELECT i.thread_id FROM emails e JOIN interactions i ON i.id = e.interaction_id
          WHERE e.message_key = ANY($1) LIMIT 1",
    )
    .bind(&keys.replies)
    .fetch_optional(&mut **tx)
    .await?;
    if parent.is_some() {
        return Ok(parent);
    }
    sqlx::query_scalar(
        "SELECT i.thread_id
           FROM unnest($1::bytea[]) WITH ORDINALITY r (key, n)
           JOIN emails e ON e.message_key = r.key
           JOIN interactions i ON i.id = e.interaction_id
          WHERE e.subject_key = $2
          ORDER BY r.n DESC LIMIT 1",
    )
    .bind(&keys.references)
    .bind(&keys.subject)
    .fetch_optional(&mut **tx)
    .await
}

/// Records the keys of interaction `id`, of thread `thread`, and gathers into that thread the
/// conversations begun by replies to it that arrived before it did.
pub async fn insert(tx: &mut Tx, id: Uuid, thread: Uuid, keys: &EmailKeys) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO emails (interaction_id, message_key, reply_keys, reference_keys, subject_key,
             fingerprint)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&keys.message)
    .bind(&keys.replies)
    .bind(&keys.references)
    .bind(&keys.subject)
    .bind(&keys.fingerprint)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE interactions SET thread_id = $2
          WHERE thread_id IN (SELECT i.id FROM emails e JOIN interactions i ON i.id = e.interaction_id
                               WHERE e.reply_keys @> ARRAY[$1::bytea] AND i.thread_id = i.id)",
    )
    .bind(&keys.message)
    .bind(thread)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps the content of the attachment at `position`.
pub async fn store_content(
    tx: &mut Tx,
    id: Uuid,
    position: usize,
    content: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO attachment_contents (interaction_id, position, content) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(position as i32)
    .bind(content)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn content(
    conn: &mut PgConnection,
    id: Uuid,
    position: i32,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT content FROM attachment_contents WHERE interaction_id = $1 AND position = $2",
    )
    .bind(id)
    .bind(position)
    .fetch_optional(conn)
    .await
}
