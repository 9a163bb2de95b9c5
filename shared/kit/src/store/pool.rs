//! The services' PostgreSQL pool: a connection goes back to the pool without a round trip.
//!
//! sqlx's own pool pings every connection it takes back (sqlx-core `Floating::return_to_pool`,
//! not configurable) from a task spawned per release: on a one-statement read that doubles
//! PostgreSQL's wake-ups and the service's. Here a connection with nothing in flight goes back at
//! once; only one that is not settled (a call cancelled mid-statement, a transaction dropped
//! before its end) is settled by a task first, and one whose socket failed is closed. A connection
//! is pinged on checkout only after sitting idle (where a database restart or a proxy's idle
//! timeout may have closed it), as HikariCP does.

use std::{
    ops::{Deref, DerefMut},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use futures::FutureExt;
use sqlx::{
    ConnectOptions, Connection, Executor, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a pooled connection may sit unused before it is pinged on checkout.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Idle connections beyond this are closed, so a quiet service gives PostgreSQL its memory back.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections are replaced after this, so that after a failover or a configuration change every
/// connection is eventually a fresh one.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);
/// How long a returned connection may take to finish what was in flight before it is closed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

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
}

struct Idle {
    conn: PgConnection,
    born: Instant,
    since: Instant,
}

impl Pool {
    /// Opens one connection to check the database is there, and keeps it.
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
        }));
        drop(pool.acquire().await?);
        tokio::spawn(reap(Arc::downgrade(&pool.0)));
        Ok(pool)
    }

    /// A connection of the pool's, waiting up to the acquire timeout for one to be free or
    /// opened; `PoolTimedOut` when none is, `PoolClosed` after [`Pool::close`].
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        tokio::time::timeout(self.0.acquire_timeout, self.checkout())
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn checkout(&self) -> Result<Conn, sqlx::Error> {
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
                let conn = self.0.options.connect().await?;
                return Ok(self.lease(conn, Instant::now(), permit));
            };
            if idle.since.elapsed() < PING_AFTER_IDLE || idle.conn.ping().await.is_ok() {
                return Ok(self.lease(idle.conn, idle.born, permit));
            }
        }
    }

    fn lease(&self, conn: PgConnection, born: Instant, permit: OwnedSemaphorePermit) -> Conn {
        Conn {
            conn: Some(conn),
            born,
            permit: Some(permit),
            pool: self.0.clone(),
        }
    }

    /// Opens a transaction on a connection of the pool's.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        conn.execute("BEGIN").await?;
        Ok(Tx { conn: Some(conn) })
    }

    /// Refuses further checkouts and closes the idle connections; connections in use are closed
    /// as they come back.
    pub async fn close(&self) {
        self.0.slots.close();
        let idle = std::mem::take(&mut *self.0.idle.lock().expect("pool lock"));
        for idle in idle {
            let _ = idle.conn.close().await;
        }
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
        if self.slots.is_closed() || born.elapsed() >= MAX_LIFETIME {
            spawn(conn.close().map(drop));
            return;
        }
        let since = Instant::now();
        self.idle
            .lock()
            .expect("pool lock")
            .push(Idle { conn, born, since });
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
            let _ = idle.conn.close().await;
        }
    }
}

/// A checked-out connection; dereferences to sqlx's `PgConnection` and goes back to the pool
/// when dropped.
pub struct Conn {
    conn: Option<PgConnection>,
    born: Instant,
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
        // `flush` sends what is queued and reads replies still owed. With neither it finishes
        // without touching the socket; a failed socket makes it fail at once.
        match conn.flush().now_or_never() {
            Some(Ok(())) => self.pool.put(conn, self.born),
            Some(Err(_)) => {}
            None => {
                let (pool, born, permit) = (self.pool.clone(), self.born, self.permit.take());
                spawn(async move {
                    if let Ok(Ok(())) = tokio::time::timeout(SETTLE_TIMEOUT, conn.flush()).await {
                        pool.put(conn, born);
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// A transaction on a pooled connection: dereferences to the connection, [`Tx::commit`] ends it,
/// and dropping it without a commit rolls it back before the connection is reused.
pub struct Tx {
    conn: Option<Conn>,
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("an open transaction");
        conn.execute("COMMIT").await?;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("an open transaction");
        conn.execute("ROLLBACK").await?;
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

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Rolled back before the connection is idle again, so that no lock outlives the call.
        spawn(async move {
            let rolled_back = tokio::time::timeout(SETTLE_TIMEOUT, conn.execute("ROLLBACK")).await;
            if !matches!(rolled_back, Ok(Ok(_))) {
                drop(conn.detach());
            }
        });
    }
}

/// Runs `task` on the current runtime; without one (a pool dropped after its runtime), the
/// connections it holds are dropped, which closes their sockets.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}
