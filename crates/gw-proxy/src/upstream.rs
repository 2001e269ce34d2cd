//! Services, their instances and load balancing.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::Authority;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tower::retry::budget::TpsBudget;

use crate::client::HostPool;

/// One instance of a service: the registry's type (gw-discovery), so that what the registry
/// hands over is what the balancer takes.
pub use gw_discovery::Instance;

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

/// The protocol spoken to the instances of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), e.g. for gRPC.
    Http2,
}

/// Per-instance runtime state, kept across [`Upstream::set_instances`] for ids that remain.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) instance: Instance,
    pub(crate) authority: Authority,
    /// `host:port`, for [`gw_core::UpstreamInfo`].
    pub(crate) addr: Arc<str>,
    pub(crate) id: Arc<str>,
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Idle HTTP/1.1 connections to this instance (kept across swaps while the id and the
    /// address stay the same).
    pub(crate) pool: Arc<HostPool>,
}

/// Points on the hash ring for an instance of weight 100, and the floor: the lightest
/// instance of a service gets at least this many points (weights 1:2 give 160 and 320), so
/// that small weights (1–10, as nginx users write them) still spread keys evenly.
pub(crate) const RING_POINTS_FLOOR: u64 = 160;

/// The most points a service's hash ring has (plus at most one per instance): when the floor
/// would make the ring larger, every instance's points are scaled down in proportion (each
/// keeps at least one). Bounds the memory and build time of a ring whatever the weights.
pub(crate) const RING_MAX_POINTS: u64 = 65_536;

/// An immutable view of the instances, swapped as a whole.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) endpoints: Vec<Endpoint>,
    /// Smooth weighted round robin `current` values, one per endpoint.
    wrr: Mutex<Vec<i64>>,
    total_weight: i64,
    /// Sorted `(point, endpoint index)`; empty unless the service is `consistent_hash`.
    ring: Vec<(u64, u32)>,
}

/// A set of endpoints already tried by this request, for any number of endpoints: a bit per
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

    fn contains(&self, i: usize) -> bool {
        if i < 64 {
            return self.low & (1 << i) != 0;
        }
        self.high
            .get(i / 64 - 1)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// One upstream service: its instances (swappable at runtime), its balancer state, its retry
/// budget.
pub struct Upstream {
    name: String,
    lb: LoadBalancer,
    protocol: UpstreamProtocol,
    snapshot: ArcSwap<Snapshot>,
    rr: AtomicUsize,
    /// Serialises [`Upstream::set_instances`] so in-flight counters are carried over exactly.
    swap_lock: Mutex<()>,
    pub(crate) budget: TpsBudget,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("load_balancer", &self.lb)
            .field("protocol", &self.protocol)
            .field("instances", &self.snapshot.load().endpoints.len())
            .finish()
    }
}

impl Upstream {
    /// A service with its initial instances.
    pub fn new(
        name: &str,
        lb: LoadBalancer,
        protocol: UpstreamProtocol,
        instances: Vec<Instance>,
    ) -> Arc<Upstream> {
        Arc::new(Upstream {
            name: name.to_owned(),
            lb,
            protocol,
            snapshot: ArcSwap::from_pointee(Snapshot::build(instances, None, lb)),
            rr: AtomicUsize::new(0),
            swap_lock: Mutex::new(()),
            budget: TpsBudget::new(Duration::from_secs(10), 10, 0.2),
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The balancing algorithm.
    pub fn load_balancer(&self) -> LoadBalancer {
        self.lb
    }

    /// The protocol spoken to the instances.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
    }

    /// Replaces the instances atomically. In-flight counts of ids that remain are kept; the
    /// hash ring is rebuilt here, not per request.
    pub fn set_instances(&self, instances: Vec<Instance>) {
        let _guard = self.swap_lock.lock();
        let old = self.snapshot.load_full();
        self.snapshot
            .store(Arc::new(Snapshot::build(instances, Some(&old), self.lb)));
    }

    /// The current instances.
    pub fn instances(&self) -> Vec<Instance> {
        self.snapshot
            .load()
            .endpoints
            .iter()
            .map(|e| e.instance.clone())
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Chooses an endpoint index, avoiding `tried` when another one is left.
    pub(crate) fn pick(&self, snap: &Snapshot, key: Option<u64>, tried: &Tried) -> Option<usize> {
        let n = snap.endpoints.len();
        if n == 0 {
            return None;
        }
        if n == 1 {
            return Some(0);
        }
        // When every endpoint was tried already, any is fine.
        let none = Tried::default();
        let tried = if (0..n).all(|i| tried.contains(i)) {
            &none
        } else {
            tried
        };
        match self.lb {
            LoadBalancer::RoundRobin => Some(self.round_robin(n, tried)),
            LoadBalancer::Weighted => Some(
                snap.weighted(tried)
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
                    let load = snap.endpoints[i].in_flight.load(Ordering::Relaxed);
                    if best.is_none_or(|(_, b)| load < b) {
                        best = Some((i, load));
                    }
                }
                best.map(|(i, _)| i)
            }
            LoadBalancer::ConsistentHash => match key {
                Some(key) => snap
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

impl Snapshot {
    fn build(instances: Vec<Instance>, old: Option<&Snapshot>, lb: LoadBalancer) -> Snapshot {
        let endpoints: Vec<Endpoint> = instances
            .into_iter()
            .map(|instance| {
                let previous =
                    old.and_then(|o| o.endpoints.iter().find(|e| e.instance.id == instance.id));
                let in_flight = previous.map(|e| e.in_flight.clone()).unwrap_or_default();
                let pool = previous
                    .filter(|e| {
                        e.instance.host == instance.host && e.instance.port == instance.port
                    })
                    .map(|e| e.pool.clone())
                    .unwrap_or_default();
                let addr = format_authority(&instance.host, instance.port);
                let authority = Authority::try_from(addr.as_str()).unwrap_or_else(|_| {
                    // An unparsable host never connects; keep the service usable otherwise.
                    Authority::from_static("invalid.invalid")
                });
                Endpoint {
                    id: Arc::from(instance.id.as_str()),
                    addr: Arc::from(addr),
                    authority,
                    in_flight,
                    pool,
                    instance,
                }
            })
            .collect();
        let total_weight = endpoints.iter().map(|e| i64::from(e.instance.weight)).sum();
        let mut ring = Vec::new();
        let points = if lb == LoadBalancer::ConsistentHash {
            let weights: Vec<u32> = endpoints.iter().map(|e| e.instance.weight).collect();
            ring_points(&weights)
        } else {
            Vec::new()
        };
        ring.reserve_exact(points.iter().sum::<u64>() as usize);
        for ((idx, e), &vnodes) in endpoints.iter().enumerate().zip(&points) {
            for v in 0..vnodes {
                let mut h = Fnv::new();
                h.write(e.instance.id.as_bytes());
                h.write(b"#");
                h.write(&v.to_le_bytes());
                ring.push((mix(h.0), idx as u32));
            }
        }
        ring.sort_unstable();
        Snapshot {
            wrr: Mutex::new(vec![0; endpoints.len()]),
            endpoints,
            total_weight,
            ring,
        }
    }

    /// nginx's smooth weighted round robin: every `current += weight`, pick the largest,
    /// subtract the total from it.
    fn weighted(&self, tried: &Tried) -> Option<usize> {
        if self.total_weight <= 0 {
            return None;
        }
        let mut current = self.wrr.lock();
        let mut best: Option<usize> = None;
        for (i, e) in self.endpoints.iter().enumerate() {
            let w = i64::from(e.instance.weight);
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
fn ring_points(weights: &[u32]) -> Vec<u64> {
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

fn format_authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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

pub(crate) fn hash_key(key: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(key);
    mix(h.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, weight: u32) -> Instance {
        Instance {
            id: id.into(),
            host: "127.0.0.1".into(),
            port: 1,
            weight,
            metadata: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn smooth_weighted_matches_nginx() {
        let up = Upstream::new(
            "s",
            LoadBalancer::Weighted,
            UpstreamProtocol::Http1,
            vec![inst("a", 5), inst("b", 1), inst("c", 1)],
        );
        let snap = up.snapshot();
        let seq: String = (0..7)
            .map(|_| ["a", "b", "c"][up.pick(&snap, None, &Tried::default()).unwrap()])
            .collect();
        assert_eq!(seq, "aabacaa");
    }

    #[test]
    fn in_flight_kept_across_swap() {
        let up = Upstream::new(
            "s",
            LoadBalancer::LeastConn,
            UpstreamProtocol::Http1,
            vec![inst("a", 1), inst("b", 1)],
        );
        up.snapshot().endpoints[0]
            .in_flight
            .fetch_add(3, Ordering::Relaxed);
        up.set_instances(vec![inst("c", 1), inst("a", 1)]);
        let snap = up.snapshot();
        assert_eq!(snap.endpoints[1].in_flight.load(Ordering::Relaxed), 3);
        assert_eq!(snap.endpoints[0].in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn pick_avoids_tried() {
        let up = Upstream::new(
            "s",
            LoadBalancer::ConsistentHash,
            UpstreamProtocol::Http1,
            vec![inst("a", 100), inst("b", 100)],
        );
        let snap = up.snapshot();
        let first = up
            .pick(&snap, Some(hash_key(b"user-1")), &Tried::default())
            .unwrap();
        assert_eq!(
            up.pick(&snap, Some(hash_key(b"user-1")), &Tried::default()),
            Some(first)
        );
        let mut tried = Tried::default();
        tried.insert(first);
        assert_eq!(
            up.pick(&snap, Some(hash_key(b"user-1")), &tried),
            Some(1 - first)
        );
    }

    /// The share of `n` keys each instance gets on a consistent-hash service.
    fn ring_shares(weights: &[u32], n: u32) -> Vec<f64> {
        let instances = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| inst(&format!("instance-{i}"), w))
            .collect();
        let up = Upstream::new(
            "s",
            LoadBalancer::ConsistentHash,
            UpstreamProtocol::Http1,
            instances,
        );
        let snap = up.snapshot();
        let mut counts = vec![0u32; weights.len()];
        for k in 0..n {
            let key = hash_key(format!("user-{k}").as_bytes());
            counts[up.pick(&snap, Some(key), &Tried::default()).unwrap()] += 1;
        }
        counts
            .iter()
            .map(|&c| f64::from(c) * 100.0 / f64::from(n))
            .collect()
    }

    #[test]
    fn small_equal_weights_share_the_ring_evenly() {
        for w in [1, 3, 10, 100] {
            let shares = ring_shares(&[w, w, w], 100_000);
            for s in &shares {
                assert!((s - 100.0 / 3.0).abs() < 5.0, "weight {w}: {shares:?}");
            }
        }
    }

    #[test]
    fn small_weights_keep_their_ratio() {
        let shares = ring_shares(&[1, 2], 100_000);
        assert!((shares[0] - 100.0 / 3.0).abs() < 5.0, "{shares:?}");
        assert!((shares[1] - 200.0 / 3.0).abs() < 5.0, "{shares:?}");
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
        let p = ring_points(&[crate::upstream::Instance::new("a", "h", 1).weight; 1000]);
        assert!(p.iter().sum::<u64>() <= RING_MAX_POINTS + 1000, "{p:?}");
    }

    #[test]
    fn ring_size_is_capped_and_only_built_for_consistent_hash() {
        let huge = vec![inst("a", u32::MAX), inst("b", u32::MAX), inst("c", 1)];
        let up = Upstream::new(
            "s",
            LoadBalancer::ConsistentHash,
            UpstreamProtocol::Http1,
            huge.clone(),
        );
        let len = up.snapshot().ring.len() as u64;
        assert!(
            (RING_MAX_POINTS - 3..=RING_MAX_POINTS + 3).contains(&len),
            "{len}"
        );
        up.set_instances(huge.clone());
        assert!(up.snapshot().ring.len() as u64 <= RING_MAX_POINTS + 3);
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
        ] {
            let up = Upstream::new("s", lb, UpstreamProtocol::Http1, huge.clone());
            assert!(up.snapshot().ring.is_empty(), "{lb:?}");
        }
    }

    #[test]
    fn retries_never_return_to_a_tried_instance_among_100() {
        let instances: Vec<Instance> = (0..100).map(|i| inst(&format!("i{i}"), 1)).collect();
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
            LoadBalancer::ConsistentHash,
        ] {
            let up = Upstream::new("s", lb, UpstreamProtocol::Http1, instances.clone());
            let snap = up.snapshot();
            let key = Some(hash_key(b"user-7"));
            let mut tried = Tried::default();
            let mut seen = std::collections::BTreeSet::new();
            for attempt in 0..100 {
                let i = up.pick(&snap, key, &tried).unwrap();
                assert!(seen.insert(i), "{lb:?}: attempt {attempt} returned to {i}");
                tried.insert(i);
            }
            assert_eq!(seen.len(), 100, "{lb:?}");
            // All tried: any instance again.
            assert!(up.pick(&snap, key, &tried).is_some());
        }
        let mut t = Tried::default();
        for i in [0, 63, 64, 127, 128, 1000] {
            assert!(!t.contains(i));
            t.insert(i);
            assert!(t.contains(i));
        }
        assert!(!t.contains(65) && !t.contains(999) && !t.contains(5000));
    }

    #[test]
    fn instance_serde_defaults() {
        let i: Instance = serde_json::from_str(r#"{"id":"a","host":"h","port":1}"#).unwrap();
        assert_eq!(i.weight, 100);
    }
}
