//! What the workspace's tests share, so that each is written once: servers on `127.0.0.1:0`
//! ([`upstream`]), a fake Consul ([`consul`]), Redis on demand ([`redis`]), bounded polls instead of sleeps ([`wait`],
//! which also run on tokio's paused clock), background tasks with a stop signal ([`task`]),
//! HTTP/1.1 as raw bytes ([`raw`]), HS256 tokens ([`jwt`]), the proptest configuration
//! ([`prop`]), and, behind the `gateway` feature, the gateway in-process
//! ([`GatewayBuilder`], [`TestGateway`]).
//!
//! The gw-* crates' tests use it without the `gateway` feature, so none of them pulls in
//! gateway-bin; the end-to-end suite (integration-tests) turns it on.

pub mod consul;
#[cfg(feature = "gateway")]
pub mod gateway;
pub mod jwt;
pub mod prop;
pub mod raw;
pub mod redis;
pub mod task;
pub mod upstream;
pub mod wait;

#[cfg(feature = "gateway")]
pub use gateway::{client, GatewayBuilder, TestGateway};
pub use prop::proptest_config;
pub use task::{Running, StopSignal};
pub use upstream::{
    refused_addr, serve_on, HealthServer, Protocol, ServedBody, Server, Serving, TestBody, Upstream,
};
pub use wait::{eventually, wait_for, wait_until, wait_until_blocking};
