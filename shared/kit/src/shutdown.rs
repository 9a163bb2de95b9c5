//! One shutdown signal shared by the gRPC server, the outbox relay and consumers, and how long the
//! process has moved no event (`crm up` stops its in-process broker, whose events die with it,
//! only once every relay and consumer has been quiet for a while).

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

/// Fires the shutdown; dropping it fires it too, so a crashed owner never leaves tasks running.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Cheap to clone; every task waits on its own copy.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// True once triggered, or once the trigger is gone.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Sleeps for `duration`; false when shutdown came first (and the caller should stop).
    pub async fn sleep(&self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.clone().wait() => false,
        }
    }

    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|triggered| *triggered).await;
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// One more than the milliseconds after [`epoch`] at which an event was last published or
/// consumed; 0 while none has been.
static LAST_EVENT: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Notes that an event was published or consumed just now, or that a consumer is retrying one.
pub fn event_moved() {
    let now = epoch().elapsed().as_millis() as u64 + 1;
    LAST_EVENT.fetch_max(now, Ordering::Relaxed);
}

/// How long since any relay or consumer of the process last moved an event.
pub fn quiet_for() -> Duration {
    match LAST_EVENT.load(Ordering::Relaxed) {
        0 => Duration::MAX,
        last => epoch()
            .elapsed()
            .saturating_sub(Duration::from_millis(last - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_counted_from_the_last_event_moved() {
        event_moved();
        std::thread::sleep(Duration::from_millis(200));
        assert!(quiet_for() >= Duration::from_millis(200));
        event_moved();
        assert!(quiet_for() < Duration::from_millis(200));
    }
}
