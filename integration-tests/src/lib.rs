//! The end-to-end suite's support is the workspace's `test-support` crate with its `gateway`
//! feature: upstream servers on `127.0.0.1:0`, the gateway in-process on ephemeral ports, a
//! plain HTTP client, raw HTTP/1.1, Redis, and bounded polls. Re-exported here so the suite
//! reads `integration_tests::…`.
//!
//! ```no_run
//! # async fn t() {
//! use integration_tests::{TestGateway, Upstream};
//! let up = Upstream::echo("a").await;
//! let gw = TestGateway::builder().service("svc", &[&up]).route(r#"id = "r"
//! path = "/api"
//! service = "svc""#).start().await;
//! let res = gw.get("/api/x").await;
//! assert_eq!(res.status(), 200);
//! # }
//! ```
//!
//! A test about the wire puts a [`raw::RecordingUpstream`] behind the gateway and talks to
//! the gateway in raw bytes:
//!
//! ```no_run
//! # async fn t() {
//! use integration_tests::raw::{raw_exchange, RecordingUpstream};
//! use integration_tests::TestGateway;
//! let up = RecordingUpstream::start().await;
//! let gw = TestGateway::builder()
//!     .service_addrs("rec", &[up.addr])
//!     .route("id = \"all\"\npath = \"/\"\nservice = \"rec\"")
//!     .start()
//!     .await;
//! let answer = raw_exchange(
//!     gw.gateway.proxy_addr(),
//!     b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
//! )
//! .await;
//! assert_eq!(answer.statuses(), [200]);
//! assert_eq!(up.requests()[0].target, "/x");
//! # }
//! ```

pub use test_support::*;
