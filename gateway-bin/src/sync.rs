//! Many nodes as one (`store.backend = "redis"`): admin-made routes and instances live in
//! Redis, every change bumps one version counter and is announced on a pub/sub channel, and
//! every node applies the whole shared state whenever it sees a newer version.
//!
//! Nothing depends on hearing every message: a node also polls the version every second, and
//! a node that starts later (or was cut off) loads the current state. Each node reports the
//! version it runs in a heartbeat hash, which is what `?wait=all` reads.
//!
//! This file is the store client ([`SharedState`], errors as [`SyncError`]); the subscriber
//! and the poller that keep a node current are `tasks.rs`'s, applying a snapshot is
//! `state/routes.rs`'s (`App::refresh_shared`).
//!
//! Keys (after `key_prefix`):
//! - `gw:version`: the configuration version (INCR per change).
//! - `gw:routes`: route id → route JSON, or `{"deleted":true}` (a deleted file route).
//! - `gw:route_order`: route id → the version that first added it (pattern order).
//! - `gw:instances`: `service` + `\n` + instance id → instance JSON, or `{"deleted":true}`.
//! - `gw:nodes`: node id → `{"version", "seen_ms"}`.
//! - channel `gw:changes`: the new version.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::Pool;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::config::RouteConfig;

/// A node is live when its heartbeat is at most this old.
const LIVE_MS: u64 = 3_000;

/// Why a call to the shared store failed. The text is what the log lines and the admin API's
/// `Store unavailable: …` answers show.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// The call took longer than `store.timeout_ms`.
    #[error("timed out")]
    TimedOut,
    /// No connection from the pool.
    #[error("{0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// Redis refused the call or the connection failed.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// A route or an instance could not be serialised.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The changes subscription ended.
    #[error("subscription closed")]
    SubscriptionClosed,
}

/// One admin write to the shared state.
#[derive(Debug)]
pub(crate) enum Change {
    PutRoute {
        route: Box<RouteConfig>,
    },
    DeleteRoute {
        id: String,
    },
    PutInstance {
        service: String,
        instance: gw_discovery::Instance,
    },
    DeleteInstance {
        service: String,
        id: String,
    },
}

/// The shared store's handle: pool, key prefix, call timeout.
#[derive(Clone)]
pub(crate) struct SharedState {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    url: String,
    node: String,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Everything the shared store holds.
pub(crate) struct Snapshot {
    pub(crate) version: u64,
    pub(crate) routes: Vec<RouteConfig>,
    pub(crate) deleted_routes: Vec<String>,
    pub(crate) instances: Vec<(String, gw_discovery::Instance)>,
}

/// `gw:version`, `gw:routes`, `gw:route_order`, `gw:instances` as read in one pipeline.
type StoreContents = (
    Option<u64>,
    HashMap<String, String>,
    HashMap<String, u64>,
    HashMap<String, String>,
);

const WRITE: &str = r#"
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == 'order' then
  redis.call('HSETNX', KEYS[3], ARGV[1], v)
elseif ARGV[3] == 'unorder' then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('PUBLISH', KEYS[4], v)
return v
"#;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SharedState {
    pub(crate) fn new(
        pool: Pool,
        prefix: String,
        timeout: Duration,
        url: String,
        node: String,
    ) -> Self {
        Self {
            pool,
            prefix,
            timeout,
            url,
            node,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}gw:{name}", self.prefix)
    }

    async fn bounded<T, F>(&self, f: F) -> Result<T, SyncError>
    where
        F: std::future::Future<Output = Result<T, SyncError>>,
    {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| SyncError::TimedOut)?
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, SyncError> {
        Ok(self.pool.get().await?)
    }

    /// Writes one change atomically with a new version and announces it; returns the version.
    pub(crate) async fn write(&self, change: Change) -> Result<u64, SyncError> {
        let (hash, field, value, order) = match &change {
            Change::PutRoute { route, .. } => (
                "routes",
                route.id.clone(),
                serde_json::to_string(route)?,
                "order",
            ),
            Change::DeleteRoute { id } => (
                "routes",
                id.clone(),
                r#"{"deleted":true}"#.to_string(),
                "unorder",
            ),
            Change::PutInstance { service, instance } => (
                "instances",
                format!("{service}\n{}", instance.id),
                serde_json::to_string(instance)?,
                "",
            ),
            Change::DeleteInstance { service, id } => (
                "instances",
                format!("{service}\n{id}"),
                r#"{"deleted":true}"#.to_string(),
                "",
            ),
        };
        self.bounded(async {
            let mut conn = self.conn().await?;
            let v: u64 = redis::Script::new(WRITE)
                .key(self.key("version"))
                .key(self.key(hash))
                .key(self.key("route_order"))
                .key(self.key("changes"))
                .arg(field)
                .arg(value)
                .arg(order)
                .invoke_async(&mut conn)
                .await?;
            Ok(v)
        })
        .await
    }

    /// The whole shared state.
    pub(crate) async fn load(&self) -> Result<Snapshot, SyncError> {
        self.bounded(async {
            let mut conn = self.conn().await?;
            let (version, routes, order, instances): StoreContents = redis::pipe()
                .get(self.key("version"))
                .hgetall(self.key("routes"))
                .hgetall(self.key("route_order"))
                .hgetall(self.key("instances"))
                .query_async(&mut conn)
                .await?;
            let mut live: Vec<(u64, RouteConfig)> = Vec::new();
            let mut deleted = Vec::new();
            for (id, text) in routes {
                if is_tombstone(&text) {
                    deleted.push(id);
                    continue;
                }
                match gw_core::strict::from_str::<RouteConfig>(&text) {
                    Ok(rc) => live.push((order.get(&id).copied().unwrap_or(u64::MAX), rc)),
                    Err(e) => tracing::warn!(route = %id, error = %e, "unreadable route in the shared store"),
                }
            }
            live.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
            let mut insts = Vec::new();
            for (field, text) in instances {
                if is_tombstone(&text) {
                    continue;
                }
                let Some((service, _)) = field.split_once('\n') else { continue };
                match gw_core::strict::from_str::<gw_discovery::Instance>(&text) {
                    // Validated as the admin API validates it: a record written by hand or by
                    // an older node must not take this node down (a huge weight, a bad host).
                    Ok(i) => match instance_problems(&i) {
                        None => insts.push((service.to_string(), i)),
                        Some(why) => tracing::warn!(instance = %field, problems = %why, "invalid instance in the shared store skipped"),
                    },
                    Err(e) => tracing::warn!(instance = %field, error = %e, "unreadable instance in the shared store"),
                }
            }
            Ok(Snapshot {
                version: version.unwrap_or(0),
                routes: live.into_iter().map(|(_, rc)| rc).collect(),
                deleted_routes: deleted,
                instances: insts,
            })
        })
        .await
    }

    /// The version counter of the shared store.
    pub(crate) async fn version(&self) -> Result<u64, SyncError> {
        self.bounded(async {
            let mut conn = self.conn().await?;
            let v: Option<u64> = conn.get(self.key("version")).await?;
            Ok(v.unwrap_or(0))
        })
        .await
    }

    /// Reports the version this node runs.
    pub(crate) async fn heartbeat(&self, version: u64) -> Result<(), SyncError> {
        let value = json!({ "version": version, "seen_ms": now_ms() }).to_string();
        self.bounded(async {
            let mut conn = self.conn().await?;
            let _: () = conn.hset(self.key("nodes"), &self.node, value).await?;
            Ok(())
        })
        .await
    }

    /// Removes this node's heartbeat (it leaves the cluster).
    pub(crate) async fn leave(&self) {
        let _ = self
            .bounded(async {
                let mut conn = self.conn().await?;
                let _: () = conn.hdel(self.key("nodes"), &self.node).await?;
                Ok(())
            })
            .await;
    }

    /// Subscribes to the changes channel on a connection of its own and sends on `kick` once
    /// subscribed (whatever was missed is picked up by one refresh) and for every message;
    /// returns when the subscription is lost.
    pub(crate) async fn follow_changes(
        &self,
        kick: &tokio::sync::mpsc::Sender<()>,
    ) -> Result<(), SyncError> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(self.key("changes")).await?;
        let _ = kick.try_send(());
        let mut messages = pubsub.on_message();
        while messages.next().await.is_some() {
            let _ = kick.try_send(());
        }
        Err(SyncError::SubscriptionClosed)
    }

    /// Live nodes still below `version`.
    async fn laggards(&self, version: u64) -> Result<Vec<String>, SyncError> {
        let nodes: HashMap<String, String> = self
            .bounded(async {
                let mut conn = self.conn().await?;
                Ok(conn.hgetall(self.key("nodes")).await?)
            })
            .await?;
        let now = now_ms();
        let mut late = Vec::new();
        for (node, text) in nodes {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let seen = v["seen_ms"].as_u64().unwrap_or(0);
            if now.saturating_sub(seen) > LIVE_MS {
                continue;
            }
            if v["version"].as_u64().unwrap_or(0) < version {
                late.push(node);
            }
        }
        late.sort();
        Ok(late)
    }

    /// Waits until every live node reports `version`, at most `bound`.
    pub(crate) async fn wait_all(&self, version: u64, bound: Duration) -> Result<(), Vec<String>> {
        let _ = self.heartbeat(version).await;
        let deadline = tokio::time::Instant::now() + bound;
        let mut late = Vec::new();
        while tokio::time::Instant::now() < deadline {
            match self.laggards(version).await {
                Ok(l) if l.is_empty() => return Ok(()),
                Ok(l) => late = l,
                Err(e) => late = vec![format!("(store unavailable: {e})")],
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(late)
    }
}

/// The problems of an instance read from the shared store, joined; `None` when it is valid.
fn instance_problems(instance: &gw_discovery::Instance) -> Option<String> {
    let problems = instance.problems();
    (!problems.is_empty()).then(|| gw_core::ConfigProblem::join(&problems))
}

fn is_tombstone(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .map(|v| v.get("deleted") == Some(&Value::Bool(true)))
        .unwrap_or(false)
}
