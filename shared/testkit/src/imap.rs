//! A private Dovecot IMAP server for tests (Debian's `dovecot-imapd`, installed by `.ci/run`):
//! one account with a Maildir inbox, plain IMAP on a loopback port of its own, in a directory of
//! its own that goes with it. Messages are delivered as a mail server delivers them (a file
//! written to `tmp/`, then moved to `new/`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{net::TcpListener, process::Child};
use uuid::Uuid;

pub const USER: &str = "sales@ourco.example";
pub const PASSWORD: &str = "dovecot-test-password";

pub struct Dovecot {
    pub port: u16,
    dir: PathBuf,
    owner: (u32, u32),
    child: Option<Child>,
}

impl Dovecot {
    pub async fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("crm-dovecot-{}", Uuid::now_v7()));
        let root = id("-u", None)? == 0;
        // Dovecot serves mail as a user other than root; as root, as its own `dovecot` user.
        let owner = if root {
            (id("-u", Some("dovecot"))?, id("-g", Some("dovecot"))?)
        } else {
            (id("-u", None)?, id("-g", None)?)
        };
        for sub in ["run", "state", "home", "mail/new", "mail/cur", "mail/tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n"))?;
        std::fs::write(dir.join("dovecot.conf"), config(&dir, port, owner, root))?;
        let mut server = Self {
            port,
            dir,
            owner,
            child: None,
        };
        server.own_mail()?;
        server.restart().await?;
        Ok(server)
    }

    /// Delivers one message to the inbox.
    pub fn deliver(&self, raw: &[u8]) -> anyhow::Result<()> {
        let name = format!("{}.crm-test", Uuid::now_v7());
        let tmp = self.dir.join("mail/tmp").join(&name);
        std::fs::write(&tmp, raw)?;
        std::os::unix::fs::chown(&tmp, Some(self.owner.0), Some(self.owner.1))?;
        std::fs::rename(&tmp, self.dir.join("mail/new").join(&name))?;
        Ok(())
    }

    /// Renumbers the inbox as a restored or rebuilt server does: the same messages under a new
    /// UIDVALIDITY (the server stopped, its UID list and indexes dropped, started again).
    pub async fn renumber(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        for entry in std::fs::read_dir(self.dir.join("mail"))? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
                std::fs::remove_file(&path)?;
            }
        }
        // UIDVALIDITY is a time in seconds: a new second makes a new one.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.restart().await
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        // Its helpers leave when the master goes; its pid file must go too.
        let _ = std::fs::remove_file(self.dir.join("run/master.pid"));
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        // Debian puts it in /usr/sbin, which is not on every user's PATH.
        let binary = if Path::new("/usr/sbin/dovecot").exists() {
            "/usr/sbin/dovecot"
        } else {
            "dovecot"
        };
        let child = tokio::process::Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("starting dovecot: {e}; install Debian's dovecot-imapd")
            })?;
        self.child = Some(child);
        if crate::listening(self.port).await {
            return Ok(());
        }
        anyhow::bail!(
            "dovecot did not start listening on port {}: {}",
            self.port,
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        )
    }

    fn own_mail(&self) -> anyhow::Result<()> {
        for sub in ["home", "mail", "mail/new", "mail/cur", "mail/tmp"] {
            std::os::unix::fs::chown(self.dir.join(sub), Some(self.owner.0), Some(self.owner.1))?;
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn id(flag: &str, user: Option<&str>) -> anyhow::Result<u32> {
    let output = std::process::Command::new("id")
        .arg(flag)
        .args(user)
        .output()?;
    anyhow::ensure!(output.status.success(), "id {flag} {user:?} failed");
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

fn config(dir: &Path, port: u16, (uid, gid): (u32, u32), root: bool) -> String {
    let dir = dir.display();
    // As root, Dovecot's own users run its parts; otherwise the caller runs them all, unconfined.
    let users = if root {
        "default_internal_user = dovecot\ndefault_login_user = dovenull\n".to_owned()
    } else {
        let me = std::env::var("USER").unwrap_or_else(|_| uid.to_string());
        format!(
            "default_internal_user = {me}\ndefault_login_user = {me}\n\
             service anvil {{\n  chroot =\n}}\nservice imap-login {{\n  chroot =\n}}\n"
        )
    };
    format!(
        "base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
{users}first_valid_uid = 1
mail_location = maildir:{dir}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"
    )
}
