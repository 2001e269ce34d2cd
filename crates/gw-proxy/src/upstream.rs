//! Services and their instances: the set swapped at runtime, each instance's runtime state
//! (in-flight count, idle connections), the balancing state built with each set (see
//! [`balancer`](crate::balancer) for the choice itself) and the service's retry budget.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::Authority;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tower::retry::budget::TpsBudget;

use crate::balancer::{Balancer, Candidate, LoadBalancer, Table, Tried};
use crate::h1::Conn;
use crate::pool::HostPool;

/// One instance of a service: the registry's type (gw-discovery), so that what the registry
/// hands over is what the balancer takes.
pub use gw_discovery::Instance;

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
    pub(crate) pool: Arc<HostPool<Conn>>,
}

impl Candidate for Endpoint {
    #[inline]
    fn id(&self) -> &str {
        &self.instance.id
    }

    #[inline]
    fn weight(&self) -> u32 {
        self.instance.weight
    }

    #[inline]
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// An immutable view of the instances, swapped as a whole.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) endpoints: Vec<Endpoint>,
    /// The balancer's state for these endpoints.
    table: Table,
}

/// One upstream service: its instances (swappable at runtime), its balancer state, its retry
/// budget.
pub struct Upstream {
    name: String,
    balancer: Balancer,
    protocol: UpstreamProtocol,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises [`Upstream::set_instances`] so in-flight counters are carried over exactly.
    swap_lock: Mutex<()>,
    pub(crate) budget: TpsBudget,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("load_balancer", &self.balancer.load_balancer())
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
            balancer: Balancer::new(lb),
            protocol,
            snapshot: ArcSwap::from_pointee(Snapshot::build(instances, None, lb)),
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
        self.balancer.load_balancer()
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
        self.snapshot.store(Arc::new(Snapshot::build(
            instances,
            Some(&old),
            self.load_balancer(),
        )));
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
    #[inline]
    pub(crate) fn pick(&self, snap: &Snapshot, key: Option<u64>, tried: &Tried) -> Option<usize> {
        self.balancer.pick(&snap.table, &snap.endpoints, key, tried)
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
        Snapshot {
            table: Table::build(lb, &endpoints),
            endpoints,
        }
    }
}

fn format_authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::{hash_key, RING_MAX_POINTS};

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
    fn ring_size_is_capped_and_only_built_for_consistent_hash() {
        let huge = vec![inst("a", u32::MAX), inst("b", u32::MAX), inst("c", 1)];
        let up = Upstream::new(
            "s",
            LoadBalancer::ConsistentHash,
            UpstreamProtocol::Http1,
            huge.clone(),
        );
        let len = up.snapshot().table.ring_len() as u64;
        assert!(
            (RING_MAX_POINTS - 3..=RING_MAX_POINTS + 3).contains(&len),
            "{len}"
        );
        up.set_instances(huge.clone());
        assert!(up.snapshot().table.ring_len() as u64 <= RING_MAX_POINTS + 3);
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::Weighted,
            LoadBalancer::LeastConn,
        ] {
            let up = Upstream::new("s", lb, UpstreamProtocol::Http1, huge.clone());
            assert_eq!(up.snapshot().table.ring_len(), 0, "{lb:?}");
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
