//! Running with no configuration: a private PostgreSQL cluster started from the machine's
//! PostgreSQL binaries, and librdkafka's in-process mock cluster as the broker, shared by every
//! service of the process ([`Local`]). For evaluation and development only; the log says so
//! loudly.

use std::{
    fs::{File, TryLockError},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, mpsc},
    thread,
};

use anyhow::{Context as _, bail};
use rdkafka::{error::RDKafkaErrorCode, mocking::MockCluster};

/// The private cluster's port: away from a system PostgreSQL on 5432.
pub const POSTGRES_PORT: u16 = 54320;

/// The private parts of a run whose configuration names no database or no broker, shared by the
/// services of one process (`crm up`): each stops when its last holder lets go of it.
#[derive(Clone, Default)]
pub struct Local {
    pub postgres: Option<Arc<LocalPostgres>>,
    pub kafka: Option<Arc<LocalKafka>>,
}

/// A PostgreSQL cluster under a data directory, shared by the processes that run on that
/// directory: each holds a lock on it, and the last one to let go stops the cluster (also one
/// that a killed process left running).
pub struct LocalPostgres {
    bin: PathBuf,
    data_dir: PathBuf,
    /// `dir/lock`: shared by services run on their own, held alone by `crm up`.
    lock: File,
}

impl LocalPostgres {
    /// Starts (initialising it the first time) the cluster under `dir/postgres`, or joins it if
    /// another service run on its own started it.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::open(dir, false)
    }

    /// [`LocalPostgres::start`] for a process that runs every service (`crm up`): no other
    /// process may use the cluster while it runs.
    pub fn start_alone(dir: &Path) -> anyhow::Result<Self> {
        Self::open(dir, true)
    }

    fn open(dir: &Path, alone: bool) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = std::path::absolute(dir)?;
        let data_dir = dir.join("postgres");
        std::fs::create_dir_all(&data_dir)?;
        let lock = File::create(dir.join("lock"))?;
        let locked = match alone {
            true => lock.try_lock(),
            false => lock.try_lock_shared(),
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if alone => bail!(
                "`crm up`, or a service run on its own, is running on {}: stop it first",
                dir.display()
            ),
            Err(TryLockError::WouldBlock) => bail!(
                "`crm up` is running on {}: this service is one of its own",
                dir.display()
            ),
            Err(TryLockError::Error(error)) => return Err(error.into()),
        }
        let as_root = is_root();
        if as_root {
            // initdb and postgres refuse to run as root: the cluster belongs to `postgres`.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data_dir))?;
        }
        let postgres_cmd = |program: &str| {
            let path = bin.join(program);
            if as_root {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(path);
                cmd
            } else {
                Command::new(path)
            }
        };
        if !data_dir.join("PG_VERSION").exists() {
            tracing::info!(dir = %data_dir.display(), "initialising a private PostgreSQL cluster");
            let initialised = run(postgres_cmd("initdb")
                .args([
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "-D",
                ])
                .arg(&data_dir));
            if as_root {
                initialised.with_context(|| {
                    format!(
                        "the cluster belongs to the postgres user, which must be able to enter \
                         every directory above {}",
                        data_dir.display()
                    )
                })?;
            } else {
                initialised?;
            }
        }
        let running = postgres_cmd("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&data_dir)
            .output()?
            .status
            .success();
        if !running {
            // Say plainly what a failed start would only hint at in its log.
            if std::net::TcpListener::bind(("127.0.0.1", POSTGRES_PORT)).is_err() {
                bail!(
                    "port {POSTGRES_PORT} of the private PostgreSQL cluster is taken: is `crm up` \
                     (or a service started on its own) running from another directory?"
                );
            }
            let options = format!(
                "-p {POSTGRES_PORT} -k {} -c listen_addresses=127.0.0.1",
                data_dir.display()
            );
            run(postgres_cmd("pg_ctl")
                .args(["-w", "-D"])
                .arg(&data_dir)
                .args(["-o", &options, "-l"])
                .arg(data_dir.join("server.log"))
                .arg("start"))?;
        }
        tracing::warn!(data_dir = %data_dir.display(),
            "CRM__DATABASE__URL is not set: using a private PostgreSQL cluster for local use only");
        Ok(Self {
            bin,
            data_dir,
            lock,
        })
    }

    /// The URL of the database `crm_<service>`, created the first time.
    pub fn database(&self, service: &str) -> anyhow::Result<String> {
        let database = format!("crm_{service}");
        let port = POSTGRES_PORT.to_string();
        let client = |program: &str| {
            let mut command = Command::new(self.bin.join(program));
            command.args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
            command
        };
        let exists = client("psql")
            .arg("-tAc")
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{database}'"
            ))
            .output()?;
        if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
            run(client("createdb").arg(&database))?;
        }
        Ok(format!(
            "postgres://postgres@127.0.0.1:{POSTGRES_PORT}/{database}"
        ))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        // Held alone only when no other process uses the cluster any more.
        if self.lock.try_lock().is_err() {
            return;
        }
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            cmd
        } else {
            Command::new(&pg_ctl)
        };
        let _ = cmd
            .args(["-m", "fast", "-D"])
            .arg(&self.data_dir)
            .arg("stop")
            .output();
    }
}

/// librdkafka's in-process mock broker, living on a thread of its own (it is not `Send`).
pub struct LocalKafka {
    brokers: String,
    commands: mpsc::Sender<MockCommand>,
    thread: Option<thread::JoinHandle<()>>,
}

enum MockCommand {
    Create(Vec<String>, i32, mpsc::Sender<anyhow::Result<()>>),
    Stop,
}

/// Creates topics on the mock broker, whose admin API never answers: what
/// `Kafka::ensure_topics` does there.
#[derive(Debug, Clone)]
pub struct MockTopics(mpsc::Sender<MockCommand>);

impl std::fmt::Debug for MockCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockCommand")
    }
}

impl MockTopics {
    /// Creates those of `topics` that do not exist yet, with `partitions` each.
    pub fn create(&self, topics: &[String], partitions: i32) -> anyhow::Result<()> {
        let (done, answer) = mpsc::channel();
        self.0
            .send(MockCommand::Create(topics.to_vec(), partitions, done))
            .map_err(|_| anyhow::anyhow!("the mock Kafka cluster has stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow::anyhow!("the mock Kafka cluster has stopped"))?
    }
}

impl LocalKafka {
    /// Starts the mock cluster with `topics` created.
    pub fn start(topics: Vec<String>, partitions: i32) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, received) = mpsc::channel::<MockCommand>();
        let thread = thread::spawn(move || {
            let cluster = match MockCluster::new(1) {
                Ok(cluster) => cluster,
                Err(e) => {
                    let _ =
                        ready_tx.send(Err(anyhow::anyhow!("starting the mock Kafka cluster: {e}")));
                    return;
                }
            };
            let create = |topics: &[String], partitions: i32| -> anyhow::Result<()> {
                for topic in topics {
                    match cluster.create_topic(topic, partitions, 1) {
                        Ok(()) => {}
                        Err(e)
                            if e.rdkafka_error_code()
                                == Some(RDKafkaErrorCode::TopicAlreadyExists) => {}
                        Err(e) => anyhow::bail!("creating mock topic {topic}: {e}"),
                    }
                }
                Ok(())
            };
            if let Err(error) = create(&topics, partitions) {
                let _ = ready_tx.send(Err(error));
                return;
            }
            let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
            while let Ok(MockCommand::Create(topics, partitions, done)) = received.recv() {
                let _ = done.send(create(&topics, partitions));
            }
        });
        let brokers = ready_rx.recv().context("the mock Kafka thread died")??;
        tracing::warn!(%brokers,
            "CRM__KAFKA__BROKERS is not set: using librdkafka's in-process mock cluster; events stay in this process");
        Ok(Self {
            brokers,
            commands,
            thread: Some(thread),
        })
    }

    /// Its bootstrap servers: any Kafka client on this machine can attach.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// What creates topics on it.
    pub fn topics(&self) -> MockTopics {
        MockTopics(self.commands.clone())
    }
}

impl Drop for LocalKafka {
    fn drop(&mut self) {
        let _ = self.commands.send(MockCommand::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest installed PostgreSQL's binaries (Debian keeps them off the PATH).
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions
        .into_iter()
        .rev()
        .find(|bin| bin.join("initdb").exists())
    {
        Some(bin) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries (initdb) found: install PostgreSQL (e.g. apt-get install postgresql) or set CRM__DATABASE__URL"
        ),
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
