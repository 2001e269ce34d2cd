//! The idle keep-alive connections to one instance: a lean pool, one per instance, for
//! HTTP/1.1 (the `client` module tells why not hyper-util's).
//!
//! Generic over the connection, so that the pool sits below the HTTP/1.1 exchange that
//! checks connections out of it and gives them back: it only asks whether one is still
//! [`Reusable::usable`].

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A connection that may be kept idle for another request.
pub(crate) trait Reusable {
    /// Whether the connection is still open and nothing was sent on it while idle.
    fn usable(&self) -> bool;
}

/// The idle connections to one instance, most recently used last: each instance owns its
/// list (an uncontended mutex around a `Vec`), and checking out is a `pop`.
pub(crate) struct HostPool<C> {
    idle: Mutex<Vec<Idle<C>>>,
}

struct Idle<C> {
    conn: Box<C>,
    since: Instant,
}

impl<C> Default for HostPool<C> {
    fn default() -> Self {
        HostPool {
            idle: Mutex::new(Vec::new()),
        }
    }
}

impl<C> fmt::Debug for HostPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPool")
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl<C: Reusable> HostPool<C> {
    /// The most recently used connection that is still open and idle for less than
    /// `idle_timeout` at `now`; older ones are closed.
    pub(crate) fn checkout(&self, now: Instant, idle_timeout: Duration) -> Option<Box<C>> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop() {
            if now.saturating_duration_since(entry.since) > idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if entry.conn.usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse (up to `max_idle`); the oldest entry is dropped when it has
    /// expired, so connections that stopped being used do not stay forever, or, when the
    /// list is full, closed (a closed one must not keep a live one out). Checkout finds the
    /// other closed ones; asking a socket costs a waker registration, so it is not done on
    /// every return.
    pub(crate) fn put(&self, conn: Box<C>, max_idle: usize, idle_timeout: Duration) {
        // One clock reading for both the expiry check and the new entry's time.
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let full = idle.len() >= max_idle;
        if idle.first().is_some_and(|e| {
            now.saturating_duration_since(e.since) > idle_timeout || (full && !e.conn.usable())
        }) {
            idle.remove(0);
        }
        if idle.len() < max_idle {
            idle.push(Idle { conn, since: now });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A connection that is open while its flag says so.
    struct Fake {
        id: u32,
        open: std::rc::Rc<Cell<bool>>,
    }

    impl Reusable for Fake {
        fn usable(&self) -> bool {
            self.open.get()
        }
    }

    fn fake(id: u32) -> (Box<Fake>, std::rc::Rc<Cell<bool>>) {
        let open = std::rc::Rc::new(Cell::new(true));
        (
            Box::new(Fake {
                id,
                open: open.clone(),
            }),
            open,
        )
    }

    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn the_most_recently_used_goes_out_first_and_closed_ones_are_skipped() {
        let pool = HostPool::default();
        let (a, _) = fake(1);
        let (b, b_open) = fake(2);
        pool.put(a, 4, IDLE);
        pool.put(b, 4, IDLE);
        b_open.set(false);
        let now = Instant::now();
        assert_eq!(pool.checkout(now, IDLE).map(|c| c.id), Some(1));
        assert!(pool.checkout(now, IDLE).is_none());
    }

    #[test]
    fn expired_connections_are_closed_on_checkout() {
        let pool = HostPool::default();
        pool.put(fake(1).0, 4, IDLE);
        let later = Instant::now() + IDLE + Duration::from_secs(1);
        assert!(pool.checkout(later, IDLE).is_none());
        assert!(pool.checkout(Instant::now(), IDLE).is_none(), "cleared");
    }

    #[test]
    fn a_full_pool_keeps_at_most_max_idle() {
        let pool = HostPool::default();
        for id in 0..3 {
            pool.put(fake(id).0, 2, IDLE);
        }
        let now = Instant::now();
        assert_eq!(pool.checkout(now, IDLE).map(|c| c.id), Some(1));
        assert_eq!(pool.checkout(now, IDLE).map(|c| c.id), Some(0));
        assert!(pool.checkout(now, IDLE).is_none());
    }
}
