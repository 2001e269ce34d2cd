//! Load balancing: which instance of a service takes a request. Pure: no I/O, only the
//! service's counters and the instances' weights and in-flight counts.
//!
//! A [`Balancer`] lives as long as its service (the algorithm and its turn counter); a
//! [`Table`] is built whenever the instances change (the weighted round robin's state and
//! the hash ring), never per request. [`Tried`] is the set of instances a request already
//! tried: a retry goes to another one while there is one.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How an instance is chosen for each request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancer {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin, as nginx.
    Weighted,
    /// The instance with the fewest requests in flight (ties in turn).
    LeastConn,
    /// A hash ring keyed by the user id, else the client address.
    ConsistentHash,
}

/// What the balancer reads of an instance.
pub(crate) trait Candidate {
    /// The instance's id: its points on the hash ring are derived from it.
    fn id(&self) -> &str;
    /// Its weight (`weighted`, and its share of the hash ring).
    fn weight(&self) -> u32;
    /// Requests in flight to it (`least_conn`).
    fn in_flight(&self) -> usize;
}

/// Points on the hash ring for an instance of weight 100, and the floor: the lightest
/// instance of a service gets at least this many points (weights 1:2 give 160 and 320), so
/// that small weights (1–10, as nginx users write them) still spread keys evenly.
pub(crate) const RING_POINTS_FLOOR: u64 = 160;

/// The most points a service's hash ring has (plus at most one per instance): when the floor
/// would make the ring larger, every instance's points are scaled down in proportion (each
/// keeps at least one). Bounds the memory and build time of a ring whatever the weights.
pub(crate) const RING_MAX_POINTS: u64 = 65_536;

/// A service's balancing: its algorithm and the turn counter shared by its requests.
#[derive(Debug)]
pub(crate) struct Balancer {
    lb: LoadBalancer,
    rr: AtomicUsize,
}

/// The balancing state of one set of instances, built with it and swapped with it.
#[derive(Debug)]
pub(crate) struct Table {
    /// Smooth weighted round robin `current` values, one per instance.
    wrr: Mutex<Vec<i64>>,
    total_weight: i64,
    /// Sorted `(point, instance index)`; empty unless the service is `consistent_hash`.
    ring: Vec<(u64, u32)>,
}

/// A set of instances already tried by this request, for any number of instances: a bit per
/// index, the first 64 inline, the others in a heap vector allocated only when a retry lands
/// on an index of 64 or more (a service that large, on a request that failed).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tried {
    low: u64,
    high: Vec<u64>,
}

impl Tried {
    pub(crate) fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
            return;
        }
        let word = i / 64 - 1;
        if self.high.len() <= word {
            self.high.resize(word + 1, 0);
        }
        self.high[word] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        if i < 64 {
            return self.low & (1 << i) != 0;
        }
        self.high
            .get(i / 64 - 1)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

impl Balancer {
    /// A balancer running `lb`, its turn at the first instance.
    pub(crate) fn new(lb: LoadBalancer) -> Balancer {
        Balancer {
            lb,
            rr: AtomicUsize::new(0),
        }
    }

    /// The algorithm.
    #[inline]
    pub(crate) fn load_balancer(&self) -> LoadBalancer {
        self.lb
    }

    /// Chooses an instance index, avoiding `tried` when another one is left. `key` is the
    /// request's [`key`] on a `consistent_hash` service (round robin without one).
    pub(crate) fn pick<C: Candidate>(
        &self,
        table: &Table,
        instances: &[C],
        key: Option<u64>,
        tried: &Tried,
    ) -> Option<usize> {
        let n = instances.len();
        if n == 0 {
            return None;
        }
        if n == 1 {
            return Some(0);
        }
        // When every instance was tried already, any is fine.
        let none = Tried::default();
        let tried = if (0..n).all(|i| tried.contains(i)) {
            &none
        } else {
            tried
        };
        match self.lb {
            LoadBalancer::RoundRobin => Some(self.round_robin(n, tried)),
            LoadBalancer::Weighted => Some(
                table
                    .weighted(instances, tried)
                    .unwrap_or_else(|| self.round_robin(n, tried)),
            ),
            LoadBalancer::LeastConn => {
                let start = self.rr.fetch_add(1, Ordering::Relaxed);
                let mut best: Option<(usize, usize)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    if tried.contains(i) {
                        continue;
                    }
                    let load = instances[i].in_flight();
                    if best.is_none_or(|(_, b)| load < b) {
                        best = Some((i, load));
                    }
                }
                best.map(|(i, _)| i)
            }
            LoadBalancer::ConsistentHash => match key {
                Some(key) => table
                    .ring_lookup(key, tried)
                    .or_else(|| Some(self.round_robin(n, tried))),
                None => Some(self.round_robin(n, tried)),
            },
        }
    }

    fn round_robin(&self, n: usize, tried: &Tried) -> usize {
        loop {
            let i = self.rr.fetch_add(1, Ordering::Relaxed) % n;
            if !tried.contains(i) {
                return i;
            }
        }
    }
}

impl Table {
    /// The state `lb` needs for `instances` (the hash ring only for `consistent_hash`).
    pub(crate) fn build<C: Candidate>(lb: LoadBalancer, instances: &[C]) -> Table {
        let total_weight = instances.iter().map(|e| i64::from(e.weight())).sum();
        let mut ring = Vec::new();
        let points = if lb == LoadBalancer::ConsistentHash {
            let weights: Vec<u32> = instances.iter().map(|e| e.weight()).collect();
            ring_points(&weights)
        } else {
            Vec::new()
        };
        ring.reserve_exact(points.iter().sum::<u64>() as usize);
        for ((idx, e), &vnodes) in instances.iter().enumerate().zip(&points) {
            for v in 0..vnodes {
                let mut h = Fnv::new();
                h.write(e.id().as_bytes());
                h.write(b"#");
                h.write(&v.to_le_bytes());
                ring.push((mix(h.0), idx as u32));
            }
        }
        ring.sort_unstable();
        Table {
            wrr: Mutex::new(vec![0; instances.len()]),
            total_weight,
            ring,
        }
    }

    /// The number of points on the hash ring.
    #[cfg(test)]
    pub(crate) fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// nginx's smooth weighted round robin: every `current += weight`, pick the largest,
    /// subtract the total from it.
    fn weighted<C: Candidate>(&self, instances: &[C], tried: &Tried) -> Option<usize> {
        if self.total_weight <= 0 {
            return None;
        }
        let mut current = self.wrr.lock();
        let mut best: Option<usize> = None;
        for (i, e) in instances.iter().enumerate() {
            let w = i64::from(e.weight());
            current[i] += w;
            if w > 0 && !tried.contains(i) && best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= self.total_weight;
        Some(b)
    }

    fn ring_lookup(&self, point: u64, tried: &Tried) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let start = self.ring.partition_point(|&(p, _)| p < point);
        let len = self.ring.len();
        (0..len)
            .map(|k| self.ring[(start + k) % len].1 as usize)
            .find(|&i| !tried.contains(i))
    }
}

/// The number of ring points of each instance, from the weights (0 counts as 1).
///
/// Weight 100 gives [`RING_POINTS_FLOOR`] points; when the lightest weight is below 100 the
/// scale grows so that it still gets the floor; when the total would pass
/// [`RING_MAX_POINTS`], the points are scaled down to fit (each instance at least 1).
pub(crate) fn ring_points(weights: &[u32]) -> Vec<u64> {
    let Some(min) = weights.iter().map(|&w| u128::from(w.max(1))).min() else {
        return Vec::new();
    };
    let total: u128 = weights.iter().map(|&w| u128::from(w.max(1))).sum();
    // Points per unit of weight, as num / den.
    let floor = u128::from(RING_POINTS_FLOOR);
    let (mut num, mut den) = if min < 100 {
        (floor, min)
    } else {
        (floor, 100)
    };
    if total * num / den > u128::from(RING_MAX_POINTS) {
        (num, den) = (u128::from(RING_MAX_POINTS), total);
    }
    weights
        .iter()
        .map(|&w| ((u128::from(w.max(1)) * num / den) as u64).max(1))
        .collect()
}

/// FNV-1a, 64 bit: stable across processes and releases (the ring must not move on restart).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// splitmix64's finaliser: spreads FNV's output over the whole ring.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A point on the hash ring for `key`.
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(key);
    mix(h.0)
}

/// A request's point on the hash ring: its user's id when it has one, else the client's
/// address (the same point for every request without either).
pub(crate) fn key(user_id: Option<&str>, client: Option<IpAddr>) -> u64 {
    match (user_id, client) {
        (Some(id), _) => hash_key(id.as_bytes()),
        (None, Some(IpAddr::V4(v4))) => hash_key(&v4.octets()),
        (None, Some(IpAddr::V6(v6))) => hash_key(&v6.octets()),
        (None, None) => hash_key(b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// An instance as the balancer sees it.
    struct Inst {
        id: String,
        weight: u32,
        in_flight: AtomicUsize,
    }

    impl Candidate for Inst {
        fn id(&self) -> &str {
            &self.id
        }
        fn weight(&self) -> u32 {
            self.weight
        }
        fn in_flight(&self) -> usize {
            self.in_flight.load(Ordering::Relaxed)
        }
    }

    fn insts(weights: &[u32]) -> Vec<Inst> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Inst {
                id: format!("instance-{i}"),
                weight,
                in_flight: AtomicUsize::new(0),
            })
            .collect()
    }

    /// `n` picks without a retry.
    fn picks(lb: LoadBalancer, instances: &[Inst], key: Option<u64>, n: usize) -> Vec<usize> {
        let balancer = Balancer::new(lb);
        let table = Table::build(lb, instances);
        (0..n)
            .map(|_| {
                balancer
                    .pick(&table, instances, key, &Tried::default())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn no_instance_no_pick_and_one_instance_always() {
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
            LoadBalancer::ConsistentHash,
        ] {
            let balancer = Balancer::new(lb);
            let none: Vec<Inst> = Vec::new();
            let table = Table::build(lb, &none);
            assert_eq!(balancer.pick(&table, &none, None, &Tried::default()), None);
            let one = insts(&[0]);
            let table = Table::build(lb, &one);
            let mut tried = Tried::default();
            tried.insert(0);
            assert_eq!(balancer.pick(&table, &one, Some(7), &tried), Some(0));
        }
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let i = insts(&[1, 100, 5]);
        assert_eq!(
            picks(LoadBalancer::RoundRobin, &i, None, 7),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn smooth_weighted_matches_nginx() {
        let i = insts(&[5, 1, 1]);
        assert_eq!(
            picks(LoadBalancer::Weighted, &i, None, 7),
            [0, 0, 1, 0, 2, 0, 0]
        );
    }

    #[test]
    fn weighted_without_weight_falls_back_to_turns() {
        let i = insts(&[0, 0]);
        assert_eq!(picks(LoadBalancer::Weighted, &i, None, 4), [0, 1, 0, 1]);
    }

    #[test]
    fn least_conn_takes_the_least_loaded_ties_in_turn() {
        let i = insts(&[1, 1, 1]);
        i[0].in_flight.store(2, Ordering::Relaxed);
        i[1].in_flight.store(1, Ordering::Relaxed);
        i[2].in_flight.store(1, Ordering::Relaxed);
        // Instances 1 and 2 tie: the turn decides which one is looked at first.
        assert_eq!(picks(LoadBalancer::LeastConn, &i, None, 4), [1, 1, 2, 1]);
        i[2].in_flight.store(0, Ordering::Relaxed);
        assert_eq!(picks(LoadBalancer::LeastConn, &i, None, 3), [2, 2, 2]);
    }

    #[test]
    fn consistent_hash_keeps_a_key_on_its_instance() {
        let i = insts(&[100, 100, 100]);
        for user in ["alice", "bob", "carol"] {
            let k = key(Some(user), None);
            let seq = picks(LoadBalancer::ConsistentHash, &i, Some(k), 5);
            assert!(seq.iter().all(|&p| p == seq[0]), "{user}: {seq:?}");
        }
        // Without a key: in turn.
        assert_eq!(
            picks(LoadBalancer::ConsistentHash, &i, None, 4),
            [0, 1, 2, 0]
        );
    }

    #[test]
    fn the_key_is_the_user_then_the_client_address() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(key(Some("u"), Some(ip)), hash_key(b"u"));
        assert_eq!(key(None, Some(ip)), hash_key(&[10, 0, 0, 1]));
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            key(None, Some(v6)),
            hash_key(&std::net::Ipv6Addr::LOCALHOST.octets())
        );
        assert_eq!(key(None, None), hash_key(b""));
    }

    #[test]
    fn a_retry_avoids_the_tried_instances() {
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
            LoadBalancer::ConsistentHash,
        ] {
            let i = insts(&[100, 100, 100]);
            let balancer = Balancer::new(lb);
            let table = Table::build(lb, &i);
            let k = Some(key(Some("user-1"), None));
            let mut tried = Tried::default();
            let first = balancer.pick(&table, &i, k, &tried).unwrap();
            tried.insert(first);
            let second = balancer.pick(&table, &i, k, &tried).unwrap();
            assert_ne!(second, first, "{lb:?}");
            tried.insert(second);
            let third = balancer.pick(&table, &i, k, &tried).unwrap();
            assert!(third != first && third != second, "{lb:?}");
            // All tried: any one again.
            tried.insert(third);
            assert!(balancer.pick(&table, &i, k, &tried).is_some(), "{lb:?}");
        }
    }

    #[test]
    fn the_ring_is_only_built_for_consistent_hash() {
        let i = insts(&[100, 100]);
        assert_eq!(
            Table::build(LoadBalancer::ConsistentHash, &i).ring_len(),
            320
        );
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
        ] {
            assert_eq!(Table::build(lb, &i).ring_len(), 0, "{lb:?}");
        }
    }

    #[test]
    fn ring_points_floor_and_cap() {
        assert_eq!(ring_points(&[100, 100]), [160, 160]);
        assert_eq!(ring_points(&[1, 2]), [160, 320]);
        assert_eq!(ring_points(&[50, 100]), [160, 320]);
        assert_eq!(ring_points(&[0]), [160]);
        assert!(ring_points(&[]).is_empty());
        // Heavy weights: capped, in proportion, each instance at least one point.
        let p = ring_points(&[u32::MAX, u32::MAX, 1]);
        assert!(p.iter().sum::<u64>() <= RING_MAX_POINTS + 3, "{p:?}");
        assert_eq!(p[0], p[1]);
        assert_eq!(p[2], 1);
        let p = ring_points(&[gw_discovery::Instance::new("a", "h", 1).weight; 1000]);
        assert!(p.iter().sum::<u64>() <= RING_MAX_POINTS + 1000, "{p:?}");
    }

    #[test]
    fn tried_holds_any_index() {
        let mut t = Tried::default();
        for i in [0, 63, 64, 127, 128, 1000] {
            assert!(!t.contains(i));
            t.insert(i);
            assert!(t.contains(i));
        }
        assert!(!t.contains(65) && !t.contains(999) && !t.contains(5000));
    }
}
