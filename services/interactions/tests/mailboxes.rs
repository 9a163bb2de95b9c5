//! Mailbox sync against a real IMAP server (Dovecot): messages delivered to the mailbox appear
//! once, a restart resumes from the cursor, a renumbered folder is read again without duplicates,
//! and what goes wrong is visible in the mailbox's status.

use std::time::Duration;

use crm_e2e::Suite;
use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    interactions::v1::{interactions_service_client::InteractionsServiceClient, *},
    parties::v1::Party,
};
use crm_testkit::{
    imap::{self, Dovecot},
    token,
};
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(60);

fn eml(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/emails/{name}.eml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const STRANGER: &[u8] = b"From: Someone <someone@elsewhere.example>\r\n\
To: sales@ourco.example\r\nSubject: Offer you cannot refuse\r\n\
Date: Mon, 02 Nov 2026 12:00:00 +0000\r\nMessage-ID: <spam-1@elsewhere.example>\r\n\r\nBuy now.\r\n";

/// The suite, with interactions reading its mailbox passwords from a directory of its own.
struct Setup {
    suite: Suite,
    secrets: std::path::PathBuf,
}

impl Setup {
    async fn start() -> Self {
        let secrets = std::env::temp_dir().join(format!("crm-secrets-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("sales"), format!("{}\n", imap::PASSWORD)).unwrap();
        std::fs::write(secrets.join("wrong"), "not-the-password").unwrap();
        let mut setup = Self {
            suite: Suite::start().await.unwrap(),
            secrets,
        };
        setup.suite.stop_interactions().await.unwrap();
        setup.start_interactions().await;
        setup
    }

    async fn start_interactions(&mut self) {
        let secrets = self.secrets.display().to_string();
        self.suite
            .start_interactions_with(|config| config.interactions.mailbox_secrets_dir = secrets)
            .await
            .unwrap();
    }

    async fn restart_interactions(&mut self) {
        self.suite.stop_interactions().await.unwrap();
        self.start_interactions().await;
    }

    fn client(&self) -> InteractionsServiceClient<TracedChannel> {
        let scopes = [
            "interactions.read",
            "interactions.write",
            "interactions.mailboxes",
        ];
        InteractionsServiceClient::new(self.suite.interactions().channel(&token("admin", &scopes)))
    }

    async fn connect(&self, dovecot: &Dovecot, password_ref: &str) -> Mailbox {
        self.client()
            .connect_mailbox(ConnectMailboxRequest {
                mailbox: Some(Mailbox {
                    host: "127.0.0.1".into(),
                    port: dovecot.port.into(),
                    security: MailboxSecurity::None as i32,
                    username: imap::USER.into(),
                    password_ref: password_ref.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// The mailbox once `done` holds for it.
    async fn mailbox_when(&self, id: &str, done: impl Fn(&Mailbox) -> bool) -> Mailbox {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mailbox = self
                .client()
                .get_mailbox(GetMailboxRequest { id: id.into() })
                .await
                .unwrap()
                .into_inner();
            if done(&mailbox) {
                return mailbox;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the mailbox never got there: {mailbox:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn history(&self, party: &Party) -> Vec<Interaction> {
        self.client()
            .list_interactions(ListInteractionsRequest {
                party_id: party.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .interactions
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.secrets);
    }
}

fn counts(m: &Mailbox) -> (i64, i64, i64) {
    (m.imported_count, m.duplicate_count, m.skipped_count)
}

#[tokio::test]
async fn a_mailbox_is_read_once_resumed_after_a_restart_and_reread_when_renumbered() {
    let mut setup = Setup::start().await;
    let anna = setup
        .suite
        .consumer("Anna", "Kowalska", "anna.kowalska@example.pl")
        .await;
    let mut dovecot = Dovecot::start().await.unwrap();
    dovecot.deliver(&eml("plain")).unwrap();
    dovecot.deliver(&eml("thread-1")).unwrap();
    dovecot.deliver(STRANGER).unwrap();

    let mailbox = setup.connect(&dovecot, "sales").await;
    assert_eq!(mailbox.status(), MailboxStatus::Active);
    assert_eq!(mailbox.folder, "INBOX");
    assert_eq!(mailbox.own_addresses, [imap::USER], "the username is ours");
    let read = setup.mailbox_when(&mailbox.id, |m| m.last_uid == 3).await;
    assert_eq!(
        counts(&read),
        (2, 0, 1),
        "the stranger's message is skipped"
    );
    assert!(read.uid_validity > 0 && read.last_sync_time.is_some());
    let first_validity = read.uid_validity;

    // New mail appears once, and ours to the client is outbound.
    dovecot.deliver(&eml("thread-2")).unwrap();
    let read = setup.mailbox_when(&mailbox.id, |m| m.last_uid == 4).await;
    assert_eq!(counts(&read), (3, 0, 1));
    let history = setup.history(&anna).await;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].direction(), Direction::Outbound);
    assert_eq!(
        history[0].thread_id, history[1].thread_id,
        "a reply joins its thread"
    );

    // Mail that arrives while the service is down is read after it comes back, from the cursor:
    // nothing read before is read again.
    setup.suite.stop_interactions().await.unwrap();
    dovecot.deliver(&eml("thread-3")).unwrap();
    setup.start_interactions().await;
    let read = setup.mailbox_when(&mailbox.id, |m| m.last_uid == 5).await;
    assert_eq!(counts(&read), (4, 0, 1), "resumed from UID 4");
    assert_eq!(read.uid_validity, first_validity);

    // The server renumbers the folder: it is read again from the start; what was imported is
    // recognised, the new message imported, nothing twice.
    dovecot.renumber().await.unwrap();
    dovecot.deliver(&eml("thread-4")).unwrap();
    let read = setup
        .mailbox_when(&mailbox.id, |m| {
            m.uid_validity != first_validity && m.last_uid == 6
        })
        .await;
    assert_eq!(counts(&read), (5, 4, 2));
    let history = setup.history(&anna).await;
    assert_eq!(history.len(), 5, "{history:#?}");
    let mut ids: Vec<&str> = history.iter().map(|i| i.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each message once");

    // The same message through ImportEmail is recognised too.
    let again = setup
        .client()
        .import_email(ImportEmailRequest {
            raw_message: eml("thread-4"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);

    setup.restart_interactions().await;
    let disconnected = setup
        .client()
        .disconnect_mailbox(DisconnectMailboxRequest {
            id: mailbox.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disconnected.status(), MailboxStatus::Disconnected);
    dovecot.deliver(&eml("alternative")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = setup.mailbox_when(&mailbox.id, |_| true).await;
    assert_eq!(after.last_uid, 6, "a disconnected mailbox is not read");
}

#[tokio::test]
async fn what_goes_wrong_is_in_the_mailboxs_status_and_bad_settings_are_refused() {
    let setup = Setup::start().await;
    let dovecot = Dovecot::start().await.unwrap();
    let mut client = setup.client();

    let wrong = setup.connect(&dovecot, "wrong").await;
    let failing = setup
        .mailbox_when(&wrong.id, |m| m.status() == MailboxStatus::Failing)
        .await;
    assert!(
        failing.last_error.contains("logging in"),
        "{}",
        failing.last_error
    );
    assert!(failing.last_error_time.is_some());

    // The same folder of the same account is connected once.
    let twice = client
        .connect_mailbox(ConnectMailboxRequest {
            mailbox: Some(Mailbox {
                host: "127.0.0.1".into(),
                port: dovecot.port.into(),
                security: MailboxSecurity::None as i32,
                username: imap::USER.into(),
                password_ref: "sales".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);

    let missing = setup.connect_missing_secret(&dovecot).await;
    let failing = setup
        .mailbox_when(&missing.id, |m| m.status() == MailboxStatus::Failing)
        .await;
    assert!(
        failing.last_error.contains("no password"),
        "{}",
        failing.last_error
    );

    let status = client
        .connect_mailbox(ConnectMailboxRequest {
            mailbox: Some(Mailbox {
                host: "imap example.com".into(),
                port: 70_000,
                username: String::new(),
                password_ref: "../../etc/passwd".into(),
                folder: "In\"box".into(),
                own_addresses: vec!["not an address".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "mailbox.folder",
            "mailbox.host",
            "mailbox.own_addresses[0]",
            "mailbox.password_ref",
            "mailbox.port",
            "mailbox.username"
        ]
    );
    // Only the mail servers the operator allows (interactions.mailbox_hosts).
    let elsewhere = client
        .connect_mailbox(ConnectMailboxRequest {
            mailbox: Some(Mailbox {
                host: "169.254.169.254".into(),
                port: 80,
                username: imap::USER.into(),
                password_ref: "sales".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let violation = &elsewhere
        .get_details_bad_request()
        .unwrap()
        .field_violations[0];
    assert_eq!(violation.field, "mailbox.host");
    assert!(
        violation.description.contains("mailbox_hosts"),
        "{violation:?}"
    );
    let listed = client
        .list_mailboxes(ListMailboxesRequest {
            status: MailboxStatus::Failing as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .mailboxes;
    assert_eq!(listed.len(), 2);
}

impl Setup {
    /// A mailbox whose password is nowhere: in another folder, so it is not the same connection.
    async fn connect_missing_secret(&self, dovecot: &Dovecot) -> Mailbox {
        self.client()
            .connect_mailbox(ConnectMailboxRequest {
                mailbox: Some(Mailbox {
                    host: "127.0.0.1".into(),
                    port: dovecot.port.into(),
                    security: MailboxSecurity::None as i32,
                    username: imap::USER.into(),
                    password_ref: "nowhere".into(),
                    folder: "Sent".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }
}
