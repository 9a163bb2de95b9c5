//! A PostgreSQL server of a test's own, for tests that stop and start the database under a
//! service: never the machine's shared one.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

/// A cluster made by `initdb` in a temporary directory, serving on a free port of 127.0.0.1 with
/// trust authentication; stopped and deleted when dropped.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    /// Creates the cluster and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = server_binaries()?;
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("crm-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        if running_as_root() {
            // PostgreSQL refuses to run as root: its files and processes belong to `postgres`.
            run(tokio::process::Command::new("chown").args(["postgres:postgres", path(&dir)]))
                .await?;
        }
        let initdb = bin.join("initdb");
        run(tokio::process::Command::from(as_postgres(&initdb))
            .args([
                "-D",
                path(&dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .stdout(Stdio::null()))
        .await?;
        let cluster = Self { port, dir, bin };
        cluster.resume().await?;
        Ok(cluster)
    }

    /// The URL of its maintenance database, for [`crate::TestDatabase::create_on`].
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            path(&self.dir)
        );
        let log = self.dir.join("log");
        run(self
            .pg_ctl()
            .args(["-w", "-o", &options, "-l", path(&log), "start"])
            .stdout(Stdio::null()))
        .await
    }

    /// Stops the server as an operator would for maintenance (`pg_ctl stop -m fast`): open
    /// connections are ended, and connecting is refused until [`Cluster::resume`].
    pub async fn pause(&self) -> anyhow::Result<()> {
        run(self
            .pg_ctl()
            .args(["-w", "-m", "fast", "stop"])
            .stdout(Stdio::null()))
        .await
    }

    fn pg_ctl(&self) -> tokio::process::Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command.args(["-D", path(&self.dir)]);
        command.into()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", path(&self.dir), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `CRM_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn server_binaries() -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("CRM_PG_BIN") {
        return Ok(bin.into());
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(version, _)| *version);
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        anyhow::anyhow!(
            "no PostgreSQL server under /usr/lib/postgresql; `bash .ci/run` installs it"
        )
    })
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program` run as the `postgres` user when this process is root, else as this user.
fn as_postgres(program: &Path) -> std::process::Command {
    if running_as_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

async fn run(command: &mut tokio::process::Command) -> anyhow::Result<()> {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
