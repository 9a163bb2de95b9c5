//! The services' PostgreSQL pool: a connection goes back to the pool without a round trip.
//!
//! sqlx's own pool pings every connection it takes back (sqlx-core `Floating::return_to_pool`,
//! not configurable) from a task spawned per release: on a one-statement read that doubles
//! PostgreSQL's wake-ups and the service's. Here a connection with nothing in flight goes back at
//! once; only one that is not settled (a call cancelled mid-statement, a transaction not ended, even
//! one cancelled while BEGIN was on its way) is settled by a task first (replies read, rolled
//! back), and one whose socket failed is closed. A connection is pinged on checkout only after
//! sitting idle (where a database restart or a proxy's idle timeout may have closed it), as
//! HikariCP does. While the database refuses connections, checkout retries until its timeout;
//! once [`Pool::watch_reachable`] has found the database gone, checkout fails at once, so calls
//! answer UNAVAILABLE without waiting while the outage lasts.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::FutureExt;
use sqlx::{
    ConnectOptions, Connection, Executor, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::shutdown::Shutdown;

/// How long a pooled connection may sit unused before it is pinged on checkout.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Idle connections beyond this are closed, so a quiet service gives PostgreSQL its memory back.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections are replaced after this, so that after a failover or a configuration change every
/// connection is eventually a fresh one.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);
/// How long a returned connection may take to finish what was in flight before it is closed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Pool::connect`] waits for a database that is still starting.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// How often [`Pool::watch_reachable`] asks the database whether it is there.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Unanswered probes in a row before the database counts as gone: one slow answer from a busy
/// database must not take every replica out of service at once.
const PROBES_LOST: u32 = 2;

/// A pool of at most `max_connections` connections to one database. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool(Arc<Shared>);

struct Shared {
    options: PgConnectOptions,
    /// Checked-out and idle connections together never exceed the permits.
    slots: Arc<Semaphore>,
    /// Most recently returned last: checkout takes the warmest connection.
    idle: Mutex<Vec<Idle>>,
    acquire_timeout: Duration,
    /// False while the reachability probe finds the database gone (true until it has looked).
    reachable: AtomicBool,
    /// Raised after the commit of a transaction that asked for it ([`Tx::signal_commit`]).
    committed: Arc<Notify>,
}

struct Idle {
    conn: PgConnection,
    born: Instant,
    since: Instant,
}

impl Pool {
    /// Opens one connection to check the database is there (waiting for one that is still
    /// starting), and keeps it.
    pub async fn connect(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let pool = Self(Arc::new(Shared {
            options,
            slots: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
            idle: Mutex::new(Vec::new()),
            acquire_timeout,
            reachable: AtomicBool::new(true),
            committed: Arc::new(Notify::new()),
        }));
        let first = pool.open(Instant::now() + STARTUP_WAIT.max(acquire_timeout));
        pool.0.put(first.await?, Instant::now());
        tokio::spawn(reap(Arc::downgrade(&pool.0)));
        Ok(pool)
    }

    /// A connection of the pool's, waiting up to the acquire timeout for one to be free or
    /// opened; `PoolTimedOut` when none is, `PoolClosed` after [`Pool::close`].
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        let deadline = Instant::now() + self.0.acquire_timeout;
        tokio::time::timeout_at(deadline.into(), self.checkout(deadline))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn checkout(&self, deadline: Instant) -> Result<Conn, sqlx::Error> {
        if !self.0.reachable.load(Ordering::Relaxed) {
            return Err(sqlx::Error::PoolTimedOut);
        }
        let permit = self
            .0
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self.0.idle.lock().expect("pool lock").pop();
            let Some(mut idle) = idle else {
                let conn = self.open(deadline).await?;
                return Ok(self.lease(conn, Instant::now(), permit));
            };
            if idle.born.elapsed() >= MAX_LIFETIME {
                spawn(close(idle.conn));
                continue;
            }
            if idle.since.elapsed() < PING_AFTER_IDLE || idle.conn.ping().await.is_ok() {
                return Ok(self.lease(idle.conn, idle.born, permit));
            }
        }
    }

    /// A new connection. While the database refuses connections (starting, restarting, failing
    /// over) it tries again with backoff until `deadline`, then reports the last refusal.
    async fn open(&self, deadline: Instant) -> Result<PgConnection, sqlx::Error> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.0.options.connect().await {
                Err(error) if refused(&error) && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                opened => return opened,
            }
        }
    }

    fn lease(&self, conn: PgConnection, born: Instant, permit: OwnedSemaphorePermit) -> Conn {
        Conn {
            conn: Some(conn),
            born,
            in_transaction: false,
            permit: Some(permit),
            pool: self.0.clone(),
        }
    }

    /// Raised (once for any number of commits since the last wait) after each commit of a
    /// transaction that called [`Tx::signal_commit`].
    pub fn commits(&self) -> Arc<Notify> {
        self.0.committed.clone()
    }

    /// Opens a transaction on a connection of the pool's.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Set before BEGIN is sent: if this future is dropped while waiting for the reply, the
        // connection still knows to roll back.
        conn.in_transaction = true;
        conn.execute("BEGIN").await?;
        Ok(Tx {
            conn: Some(conn),
            signal: false,
        })
    }

    /// Refuses further checkouts and closes the idle connections; connections in use are closed
    /// as they come back.
    pub async fn close(&self) {
        let idle = {
            let mut idle = self.0.idle.lock().expect("pool lock");
            self.0.slots.close();
            std::mem::take(&mut *idle)
        };
        for idle in idle {
            close(idle.conn).await;
        }
    }

    /// Asks the database every second, on a connection of its own, whether it answers: the
    /// receiver holds whether it does (true to begin with; false after [`PROBES_LOST`]
    /// unanswered probes in a row) until `shutdown`. While it does not, checkouts fail at once
    /// instead of waiting for a connection.
    pub fn watch_reachable(&self, shutdown: Shutdown) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(true);
        let pool = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut probe: Option<PgConnection> = None;
            let mut unanswered = 0;
            while shutdown.sleep(PROBE_EVERY).await {
                let Some(pool) = pool.upgrade() else { return };
                let answered = tokio::time::timeout(pool.acquire_timeout, async {
                    let conn = match probe.as_mut() {
                        Some(conn) => conn,
                        None => probe.insert(pool.options.connect().await?),
                    };
                    conn.ping().await
                })
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut));
                unanswered = match &answered {
                    Ok(()) => 0,
                    Err(_) => unanswered + 1,
                };
                let reachable = unanswered < PROBES_LOST;
                match (&answered, pool.reachable.load(Ordering::Relaxed), reachable) {
                    (Err(error), true, false) => {
                        tracing::warn!(%error, "the database does not answer; calls fail fast until it does");
                    }
                    (Ok(()), false, true) => tracing::info!("the database answers again"),
                    _ => {}
                }
                if answered.is_err() {
                    probe = None;
                }
                pool.reachable.store(reachable, Ordering::Relaxed);
                tx.send_if_modified(|was| std::mem::replace(was, reachable) != reachable);
            }
            // Unwatched from here on: what is still draining tries the database, as without a probe.
            if let Some(pool) = pool.upgrade() {
                pool.reachable.store(true, Ordering::Relaxed);
            }
        });
        rx
    }

    /// A one-connection sqlx pool to the same database, for sqlx's `PgListener`, which reconnects
    /// through a pool of its own.
    pub fn listener_pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.0.options.clone())
    }
}

impl Shared {
    fn put(&self, conn: PgConnection, born: Instant) {
        if born.elapsed() < MAX_LIFETIME {
            let mut idle = self.idle.lock().expect("pool lock");
            // Checked under the lock, so that `close` cannot miss a connection returned meanwhile.
            if !self.slots.is_closed() {
                let since = Instant::now();
                idle.push(Idle { conn, born, since });
                return;
            }
        }
        spawn(close(conn));
    }
}

/// Closes connections idle for longer than [`IDLE_TIMEOUT`] until the pool is dropped.
async fn reap(pool: Weak<Shared>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 10).await;
        let Some(pool) = pool.upgrade() else { return };
        let stale: Vec<Idle> = {
            let mut idle = pool.idle.lock().expect("pool lock");
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.since.elapsed() >= IDLE_TIMEOUT);
            *idle = fresh;
            stale
        };
        for idle in stale {
            close(idle.conn).await;
        }
    }
}

/// A checked-out connection; dereferences to sqlx's `PgConnection` and goes back to the pool
/// when dropped.
pub struct Conn {
    conn: Option<PgConnection>,
    born: Instant,
    /// From [`Pool::begin`] sending BEGIN until the transaction's end is confirmed.
    in_transaction: bool,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Shared>,
}

impl Conn {
    /// Takes the connection out of the pool for good (its place is freed for a new one).
    pub fn detach(mut self) -> PgConnection {
        self.conn.take().expect("a leased connection")
    }
}

impl Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a leased connection")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a leased connection")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // `flush` sends what is queued and reads replies still owed; with neither it finishes
        // at once without touching the socket. An error there (a failed socket, or the error a
        // cancelled statement was about to report) closes the connection: it is not trusted.
        if !self.in_transaction {
            match conn.flush().now_or_never() {
                Some(Ok(())) => return self.pool.put(conn, self.born),
                Some(Err(_)) => return,
                None => {}
            }
        }
        let (pool, born, permit) = (self.pool.clone(), self.born, self.permit.take());
        let in_transaction = self.in_transaction;
        spawn(async move {
            let settle = async {
                conn.flush().await?;
                if in_transaction {
                    conn.execute("ROLLBACK").await?;
                }
                Ok::<_, sqlx::Error>(())
            };
            if let Ok(Ok(())) = tokio::time::timeout(SETTLE_TIMEOUT, settle).await {
                pool.put(conn, born);
            }
            drop(permit);
        });
    }
}

/// A transaction on a pooled connection: dereferences to the connection, [`Tx::commit`] ends it,
/// and dropping it without a commit rolls it back before the connection is reused.
pub struct Tx {
    conn: Option<Conn>,
    signal: bool,
}

impl Tx {
    /// Raises the pool's [`Pool::commits`] signal once this transaction commits.
    pub fn signal_commit(&mut self) {
        self.signal = true;
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("an open transaction");
        conn.execute(statement).await?;
        conn.in_transaction = false;
        if self.signal && statement == "COMMIT" {
            conn.pool.committed.notify_one();
        }
        Ok(())
    }
}

impl Deref for Tx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("an open transaction")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("an open transaction")
    }
}

/// Runs `task` on the current runtime; without one (a pool dropped after its runtime), the
/// connections it holds are dropped, which closes their sockets.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// Says goodbye to the server, or gives up after [`SETTLE_TIMEOUT`] and drops the socket.
async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(SETTLE_TIMEOUT, conn.close()).await;
}

/// The database is not taking connections now but may soon: refused, or starting up.
fn refused(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        // Starting up or shutting down; or its max_connections taken, until some are closed.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code == "57P03" || code == "53300"),
        _ => false,
    }
}
