//! systemd's notify protocol (`Type=notify`): `READY=1` once the store is
//! open, the source started and the API listening; `WATCHDOG=1` every half
//! `WatchdogSec` while the engine runs; `EXTEND_TIMEOUT_USEC` while the start
//! waits for a read-only or full store filesystem (a stuck or dead engine stops the
//! pings and systemd restarts the service); `STOPPING=1` when a stop
//! begins. Outside systemd (no `NOTIFY_SOCKET`) nothing is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// The daemon is up: store open, source started, API listening.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Still starting, waiting for `status`: systemd gives the start another
/// `extend` before its start timeout would stop the service.
pub fn still_starting(status: &str, extend: Duration) {
    let usec = u32::try_from(extend.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::Status(status), NotifyState::ExtendTimeoutUsec(usec)]);
}

/// A stop has begun (intake stops, the pipeline drains and commits).
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining and committing"),
    ]);
}

/// With `WatchdogSec` set for this process, ping every half of it while
/// `engine_alive` holds; `None` without a watchdog.
pub fn watchdog(engine_alive: Arc<AtomicBool>) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    tracing::info!(every = ?every, "systemd watchdog: pinging while the engine runs");
    Some(tokio::spawn(async move {
        let mut warned = false;
        loop {
            tokio::time::sleep(every).await;
            if engine_alive.load(Ordering::Acquire) {
                send(&[NotifyState::Watchdog]);
            } else if !warned {
                warned = true;
                tracing::error!("the engine has stopped: no more watchdog pings, systemd will restart the service");
            }
        }
    }))
}
