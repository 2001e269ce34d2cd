//! Pooled hyper clients, one per (protocol, connect timeout).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;

use crate::body::ReqBody;
use crate::{ClientOptions, UpstreamProtocol};

pub(crate) type HttpClient = Client<HttpConnector, ReqBody>;

/// Pooled hyper clients shared by all routes (keep-alive pools per upstream instance). One per
/// gateway; clones share the pools.
///
/// The connect timeout is a connector setting, so there is one client per (protocol, connect
/// timeout) pair, created on first use by [`Proxy::new`](crate::Proxy::new) and cached; the
/// lookup happens when a route is built, never per request.
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ClientOptions,
    cache: Mutex<HashMap<(UpstreamProtocol, Duration), HttpClient>>,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("opts", &self.inner.opts)
            .field("clients", &self.inner.cache.lock().len())
            .finish()
    }
}

impl Clients {
    /// Empty pools with these settings.
    pub fn new(opts: ClientOptions) -> Clients {
        Clients {
            inner: Arc::new(Inner {
                opts,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn get(&self, protocol: UpstreamProtocol, connect: Duration) -> HttpClient {
        let mut cache = self.inner.cache.lock();
        cache
            .entry((protocol, connect))
            .or_insert_with(|| build(&self.inner.opts, protocol, connect))
            .clone()
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new(ClientOptions::default())
    }
}

fn build(opts: &ClientOptions, protocol: UpstreamProtocol, connect: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(opts.pool_idle_timeout)
        .pool_max_idle_per_host(opts.pool_max_idle_per_host)
        // We set Host ourselves (the client's); don't let the client add the instance's.
        .set_host(false);
    if protocol == UpstreamProtocol::Http2 {
        builder.http2_only(true);
    }
    builder.build(connector)
}
