//! gw-discovery's own test helper: a health server as a discovery [`Instance`]. The servers
//! (health endpoints, the fake Consul) come from the workspace's test-support crate.
#![allow(dead_code, unreachable_pub, unused_imports)]

use gw_discovery::Instance;

pub use test_support::consul::{ConsulEntry, FakeConsul};
pub use test_support::HealthServer;

/// The [`Instance`] of a test server.
pub trait InstanceOf {
    /// The server as instance `id`.
    fn instance(&self, id: &str) -> Instance;
}

impl InstanceOf for HealthServer {
    fn instance(&self, id: &str) -> Instance {
        Instance::new(id, self.addr.ip().to_string(), self.addr.port())
    }
}
