//! A service of the suite in a process of its own, as a deployment runs it: for what only a
//! separate process shows (a `kill -9`, CPU time per call). The process is the test or bench
//! binary itself, started again with [`SERVE`] set: its `main` hands over to
//! [`serve_if_child`] first.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::Duration,
};

use crm_kit::app::Service;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::JWT_SECRET;

/// Set in a child process: the name of the service it runs.
const SERVE: &str = "CRM_TESTKIT_SERVE";

/// Runs the service named by [`SERVE`] when this process is such a child, until its parent ends;
/// `None` in the parent.
pub fn serve_if_child(services: &[Service]) -> Option<ExitCode> {
    let name = std::env::var(SERVE).ok()?;
    let service = services
        .iter()
        .find(|s| s.spec.name == name)
        .expect("a service of the suite");
    // The parent holds this process's stdin: when it ends, however it ends, so does this.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    Some(runtime.block_on(crm_kit::app::main(service)))
}

/// A service running in a child process, configured only by what a deployment must set (its
/// database, brokers, secret, addresses and peers) and `settings`; everything else is a default.
pub struct ServiceProcess {
    pub name: &'static str,
    pub addr: SocketAddr,
    /// Where its output goes (appended across restarts).
    pub log: PathBuf,
    command: tokio::process::Command,
    process: tokio::process::Child,
}

impl ServiceProcess {
    /// Starts `name` and waits until it serves.
    pub async fn start(
        name: &'static str,
        database_url: &str,
        brokers: &str,
        settings: &[(String, String)],
    ) -> Self {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::env::temp_dir().join(format!("crm-{name}-{port}.log"));
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        // Only the defaults and what a deployment must set: nothing from the caller's shell.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("CRM__")) {
            command.env_remove(key);
        }
        command
            .env(SERVE, name)
            .env("CRM__DATABASE__URL", database_url)
            .env("CRM__KAFKA__BROKERS", brokers)
            .env("CRM__AUTH__JWT_SECRET", JWT_SECRET)
            .env("CRM__GRPC__LISTEN", addr.to_string())
            .env("CRM__ADMIN__LISTEN", "127.0.0.1:0")
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in settings {
            command.env(key, value);
        }
        let process = spawn(&mut command, &log);
        let child = Self {
            name,
            addr,
            log,
            command,
            process,
        };
        child.wait_until_serving().await;
        child
    }

    /// Kills the process with SIGKILL: no draining, no goodbye to the database or the broker.
    pub async fn kill(&mut self) {
        let _ = self.process.start_kill();
        let _ = self.process.wait().await;
    }

    /// Starts the process again, as before (after [`ServiceProcess::kill`]), and waits until it
    /// serves.
    pub async fn restart(&mut self) {
        self.process = spawn(&mut self.command, &self.log);
        self.wait_until_serving().await;
    }

    /// SIGTERM, as an orchestrator would: it drains and closes its pool; waits up to 10 s.
    pub async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill")
            .arg(self.pid().to_string())
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.process.wait()).await;
    }

    pub fn pid(&self) -> u32 {
        self.process.id().expect("the service is running")
    }

    /// One HTTP/2 connection of its own.
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await
    }

    async fn wait_until_serving(&self) {
        for _ in 0..600 {
            if let Ok(channel) = self.channel().await {
                let mut health = HealthClient::new(channel);
                if health.check(HealthCheckRequest::default()).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "crm-{} did not start; its log: {}",
            self.name,
            self.log.display()
        );
    }
}

fn spawn(command: &mut tokio::process::Command, log: &PathBuf) -> tokio::process::Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening the log file");
    command
        .stdout(file.try_clone().expect("the log file"))
        .stderr(file)
        .spawn()
        .expect("starting the service")
}
