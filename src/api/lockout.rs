//! Failed-authentication limits: an address that presents
//! `api.max_auth_failures` missing or unknown tokens within a minute is
//! answered 429 (with `Retry-After`) for the rest of that minute, whatever it
//! sends, valid token included, so guessing gains nothing from the answers.
//! Tokens are 256 bits, so this is not what keeps them safe; it keeps a
//! prober slow and makes probing visible (a warning per lockout, and
//! `trailwarden_api_requests_total{status="429"}`). Behind a reverse proxy
//! every caller shares the proxy's address: the limit then counts them
//! together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in, and the lockout lasts to its end.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at most; beyond it the oldest windows are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failures per address in the current window.
#[derive(Debug, Default)]
pub struct Lockout {
    /// Failures that lock an address out; 0 = never.
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl Lockout {
    pub fn new(limit: u32) -> Lockout {
        Lockout {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` is still locked out, if it is.
    pub fn locked(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = windows.get(&address)?;
        let left = WINDOW.checked_sub(now.saturating_duration_since(window.started))?;
        (window.failures >= self.limit && !left.is_zero()).then_some(left)
    }

    /// Count a failure of `address`; true when it locks the address out.
    pub fn failed(&self, address: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&address) {
            windows.retain(|_, window| now.saturating_duration_since(window.started) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                return false;
            }
        }
        let window = windows.entry(address).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.saturating_duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures += 1;
        window.failures == self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_for_the_rest_of_its_window_and_others_are_not() {
        let lockout = Lockout::new(3);
        let start = Instant::now();
        let prober: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(!lockout.failed(prober, start));
        assert!(!lockout.failed(prober, start + Duration::from_secs(1)));
        assert_eq!(lockout.locked(prober, start + Duration::from_secs(2)), None);
        assert!(lockout.failed(prober, start + Duration::from_secs(2)));
        assert_eq!(
            lockout.locked(prober, start + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(lockout.locked(other, start + Duration::from_secs(20)), None);
        // The window over, the address starts again.
        assert_eq!(lockout.locked(prober, start + WINDOW), None);
        assert!(!lockout.failed(prober, start + WINDOW));
        assert_eq!(lockout.locked(prober, start + WINDOW), None);
        // Off: never locked.
        let off = Lockout::new(0);
        for _ in 0..100 {
            assert!(!off.failed(prober, start));
        }
        assert_eq!(off.locked(prober, start), None);
    }
}
