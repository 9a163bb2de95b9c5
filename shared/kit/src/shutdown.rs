//! One shutdown signal shared by the gRPC server, the outbox relay and consumers.

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
