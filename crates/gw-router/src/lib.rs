//! The gateway's route table and the [`Router`] service that dispatches on it.
//!
//! A [`RouteSpec`] says what a route matches — host, methods, a path prefix or a regex
//! pattern, a priority — and names the service that answers. [`RouteTable::new`] validates
//! and compiles a list of specs, each paired with a [`RouteService`], into an immutable
//! snapshot; [`RouteTable::find`] picks the route for a request. A [`Router`] reads the
//! current snapshot from an [`ArcSwap`](arc_swap::ArcSwap) on every request, so the admin
//! API or a reload swaps the routes without locks, while requests in flight finish on the
//! snapshot they started with.
//!
//! # Matching
//!
//! A route matches when its host (if any) matches, its path matcher matches, and the method
//! is one of its `methods` (or it has none).
//!
//! - [`PathMatcher::Prefix`] matches on a segment boundary: `/api` matches `/api`, `/api/`
//!   and `/api/x` but not `/apix`; `/api/` matches `/api/…`; `/` matches every path.
//! - [`PathMatcher::Pattern`] is a regex matched against the path (never the query).
//! - Hosts compare case-insensitively, ignoring the request's port; `*.example.com` matches
//!   any sub-domain of `example.com`.
//!
//! Precedence: higher `priority` first; at equal priority prefix routes before pattern
//! routes, longer prefixes first, pattern routes in insertion order. Among the routes whose
//! host and path match, the first whose method matches wins; if none does the answer is 405
//! with `Allow` listing their methods, and if no route matches host and path, 404.
//!
//! Upstream path: for a pattern, capture group 1 when the regex has one (`/` when it is
//! empty), else the whole path; for a prefix, the whole path, or with `strip_prefix` the rest
//! after the prefix (`/` when nothing is left). The query string is always kept.
//!
//! # Why not axum's or matchit's router
//!
//! The gateway needs regex routes with insertion-order precedence, priorities, host
//! wildcards and tables replaced at runtime from the admin API; path-template routers
//! offer none of these. The lookup cost of prefix routes does not grow with their number (a
//! trie over path segments), and all regexes run in one [`regex::RegexSet`] pass, skipped
//! when a prefix route already wins.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use arc_swap::ArcSwap;
//! use gw_router::{Body, PathMatcher, RouteService, RouteSpec, RouteTable, Router};
//! use http::{Method, Request, Response};
//! use tower::ServiceExt;
//!
//! /// A stand-in upstream that answers with the path it was sent.
//! fn echo() -> RouteService {
//!     RouteService::new(tower::service_fn(|req: Request<Body>| async move {
//!         Ok::<_, std::convert::Infallible>(Response::new(Body::from(req.uri().to_string())))
//!     }))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let users = RouteSpec {
//!     methods: vec![Method::GET, Method::POST],
//!     ..RouteSpec::new("users", "user_service", PathMatcher::Pattern("^/api/v1/users(/.*)?$".into()))
//! };
//! let files = RouteSpec::new(
//!     "files",
//!     "file_service",
//!     PathMatcher::Prefix { path: "/files".into(), strip_prefix: true },
//! );
//! let table = RouteTable::new(vec![(users, echo()), (files, echo())])?;
//! let router = Router::new(Arc::new(ArcSwap::from_pointee(table)));
//!
//! let req = Request::get("/api/v1/users/42?full=1").body(Body::empty())?;
//! let res = router.clone().oneshot(req).await?;
//! let tag = res.extensions().get::<gw_core::RouteTag>().unwrap();
//! assert_eq!(&*tag.route, "users");
//! let body = http_body_util::BodyExt::collect(res.into_body()).await?.to_bytes();
//! assert_eq!(body, "/42?full=1");
//!
//! let req = Request::delete("/api/v1/users/42").body(Body::empty())?;
//! let res = router.clone().oneshot(req).await?;
//! assert_eq!(res.status(), 405);
//! assert_eq!(res.headers()["allow"], "GET, POST");
//!
//! // Swap the routes: the next request sees the new table.
//! router.table().store(Arc::new(RouteTable::empty()));
//! let req = Request::get("/files/a.txt").body(Body::empty())?;
//! assert_eq!(router.oneshot(req).await?.status(), 404);
//! # Ok(())
//! # }
//! ```

mod error;
mod service;
mod spec;
mod table;

pub use error::{DispatchError, RouteError};
pub use gw_core::Body;
pub use service::{ResponseFuture, Router};
pub use spec::{PathMatcher, RouteSpec};
pub use table::{Route, RouteMatch, RouteTable};

/// The service behind a route: boxed, cloneable and `Sync`, so a [`RouteTable`] can be
/// shared between threads and each request calls its own clone.
pub type RouteService = tower::util::BoxCloneSyncService<
    http::Request<Body>,
    http::Response<Body>,
    std::convert::Infallible,
>;
