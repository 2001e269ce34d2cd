//! Sharded in-process store: 64 shards, each a `parking_lot::Mutex<HashMap>`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

use super::{BoxFuture, Decision, Decisions, KeyedLimit, Store, StoreError};
use crate::algorithm::{Outcome, SlidingWindow, TokenBucket};
use crate::config::Algorithm;

const SHARDS: usize = 64;
/// A shard sweeps itself when it holds twice as many keys as after its last sweep (and at
/// least this many): amortized O(1) per insert, and idle keys never pile up.
const MIN_SWEEP_LEN: usize = 1024;

#[derive(Debug)]
enum Entry {
    Window(SlidingWindow),
    Bucket {
        bucket: TokenBucket,
        rate: u64,
        capacity: u64,
    },
}

impl Entry {
    fn fresh(limit: &KeyedLimit, now_ms: u64) -> Self {
        match limit.algorithm {
            Algorithm::SlidingWindow => Entry::Window(SlidingWindow::new()),
            Algorithm::TokenBucket => Entry::Bucket {
                bucket: TokenBucket::full(limit.quota(), now_ms),
                rate: limit.limit.requests_per_minute,
                capacity: limit.quota(),
            },
        }
    }

    fn matches(&self, algorithm: Algorithm) -> bool {
        matches!(
            (self, algorithm),
            (Entry::Window(_), Algorithm::SlidingWindow)
                | (Entry::Bucket { .. }, Algorithm::TokenBucket)
        )
    }

    fn peek(&mut self, limit: &KeyedLimit, now_ms: u64) -> Outcome {
        match self {
            Entry::Window(w) => w.peek(limit.limit.requests_per_minute, now_ms),
            Entry::Bucket {
                bucket,
                rate,
                capacity,
            } => {
                *rate = limit.limit.requests_per_minute;
                *capacity = limit.quota();
                bucket.peek(*rate, *capacity, now_ms)
            }
        }
    }

    fn take(&mut self, now_ms: u64) {
        match self {
            Entry::Window(w) => w.take(now_ms),
            Entry::Bucket { bucket, .. } => bucket.take(),
        }
    }

    fn is_idle(&self, now_ms: u64) -> bool {
        match self {
            Entry::Window(w) => w.is_idle(now_ms),
            Entry::Bucket {
                bucket,
                rate,
                capacity,
            } => bucket.is_idle(*rate, *capacity, now_ms),
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, Entry>,
    /// Sweep when `map.len()` reaches this.
    sweep_at: usize,
}

impl Shard {
    fn sweep(&mut self, now_ms: u64) {
        self.map.retain(|_, e| !e.is_idle(now_ms));
        self.sweep_at = MIN_SWEEP_LEN.max(2 * self.map.len());
    }

    fn entry(&mut self, limit: &KeyedLimit, now_ms: u64) -> &mut Entry {
        // Two lookups on a miss, one (and no allocation) on the hot hit path.
        if !self
            .map
            .get(limit.key.as_str())
            .is_some_and(|e| e.matches(limit.algorithm))
        {
            if self.map.len() >= self.sweep_at.max(MIN_SWEEP_LEN) {
                self.sweep(now_ms);
            }
            self.map
                .insert(limit.key.as_str().into(), Entry::fresh(limit, now_ms));
        }
        self.map
            .get_mut(limit.key.as_str())
            .expect("entry present: inserted above")
    }
}

/// Limiter state in this process: exact for one node, no global lock.
///
/// Keys hash to one of 64 shards. A request's limits lock their shards in ascending order
/// (no deadlock), are all evaluated, and are consumed only when all allow — the same
/// atomicity as the Redis script. Idle entries (window passed, bucket full) are forgotten by
/// [`sweep`](Self::sweep) and, amortized, whenever a shard has doubled since its last sweep, so memory stays bounded by the keys active in the last minute.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Decides one request synchronously (what [`Store::check`] does, without a future).
    pub fn check_now(&self, now_ms: u64, limits: &[KeyedLimit]) -> Decisions {
        let shard_ids: SmallVec<[usize; 3]> =
            limits.iter().map(|l| self.shard_of(&l.key)).collect();
        let mut order = shard_ids.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: SmallVec<[(usize, MutexGuard<'_, Shard>); 3]> =
            order.iter().map(|&i| (i, self.shards[i].lock())).collect();
        let mut outcomes: SmallVec<[Outcome; 3]> = SmallVec::new();
        for (i, limit) in limits.iter().enumerate() {
            outcomes.push(
                locked(&mut guards, shard_ids[i])
                    .entry(limit, now_ms)
                    .peek(limit, now_ms),
            );
        }
        let all = outcomes.iter().all(|o| o.allowed);
        if all {
            for (i, limit) in limits.iter().enumerate() {
                locked(&mut guards, shard_ids[i])
                    .entry(limit, now_ms)
                    .take(now_ms);
            }
        }
        drop(guards);
        limits
            .iter()
            .zip(outcomes)
            .map(|(l, o)| Decision::from_outcome(o, l.quota(), now_ms, all))
            .collect()
    }

    /// Forgets every entry that is idle at `now_ms` (window passed, bucket full).
    pub fn sweep(&self, now_ms: u64) {
        for shard in self.shards.iter() {
            shard.lock().sweep(now_ms);
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn locked<'g>(guards: &'g mut [(usize, MutexGuard<'_, Shard>)], shard: usize) -> &'g mut Shard {
    let pos = guards
        .iter()
        .position(|(s, _)| *s == shard)
        .expect("shard locked above");
    &mut guards[pos].1
}

impl Store for MemoryStore {
    fn check<'a>(
        &'a self,
        now_ms: u64,
        limits: &'a [KeyedLimit],
    ) -> BoxFuture<'a, Result<Decisions, StoreError>> {
        let decisions = self.check_now(now_ms, limits);
        Box::pin(std::future::ready(Ok(decisions)))
    }

    fn sweep(&self, now_ms: u64) {
        MemoryStore::sweep(self, now_ms);
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
