//! Writes to the route list, under the writers' lock ([`Inner::state`](super::Inner)): publishing
//! a new table snapshot, the admin API's put and delete, and applying what other nodes wrote
//! to the shared store. A write that the route table refuses leaves the list as it was.

use std::sync::Arc;

use gw_router::RouteTable;

use super::{App, Origin, RouteEntry, WriteState};
use crate::assemble::route_spec;
use crate::config::RouteConfig;
use crate::sync::SyncError;

impl App {
    /// Publishes the current route list as a new table snapshot.
    pub(crate) fn publish(&self, st: &WriteState) -> Result<(), String> {
        let entries = st
            .routes
            .iter()
            .map(|e| (route_spec(&e.config), e.service.clone()))
            .collect();
        let table = RouteTable::new(entries).map_err(|e| e.to_string())?;
        self.inner.table.store(Arc::new(table));
        Ok(())
    }

    /// Adds or replaces an admin route under the writers' lock; returns whether it was new.
    pub(crate) fn put_route_locked(
        &self,
        st: &mut WriteState,
        rc: RouteConfig,
    ) -> Result<bool, String> {
        let problems = rc.problems(&st.config.services, st.config.auth.jwt.is_some());
        if !problems.is_empty() {
            return Err(problems
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "));
        }
        let service = self.build_route(&st.config, &rc);
        let entry = RouteEntry {
            config: rc.clone(),
            service,
            origin: Origin::Admin,
        };
        let position = st.routes.iter().position(|e| e.config.id == rc.id);
        let previous = match position {
            Some(i) => Some(std::mem::replace(&mut st.routes[i], entry)),
            None => {
                st.routes.push(entry);
                None
            }
        };
        if let Err(e) = self.publish(st) {
            // Put the list back as it was; the live table was never replaced.
            match (position, previous) {
                (Some(i), Some(prev)) => st.routes[i] = prev,
                _ => {
                    st.routes.pop();
                }
            }
            return Err(e);
        }
        Ok(position.is_none())
    }

    pub(crate) fn delete_route_locked(&self, st: &mut WriteState, id: &str) -> bool {
        let Some(i) = st.routes.iter().position(|e| e.config.id == id) else {
            return false;
        };
        let removed = st.routes.remove(i);
        if self.publish(st).is_err() {
            st.routes.insert(i, removed);
            return false;
        }
        true
    }

    /// Loads the shared store and applies it when it is newer than what this node runs (or,
    /// with `force`, at least as new). Holds the writers' lock from the load to the apply, so
    /// a local admin write can never be overwritten by an older snapshot.
    pub(crate) async fn refresh_shared(&self, force: bool) -> Result<(), SyncError> {
        let Some(shared) = self.shared().cloned() else {
            return Ok(());
        };
        {
            let mut st = self.inner.state.lock().await;
            let snapshot = shared.load().await?;
            let local = self.config_version();
            if snapshot.version > local || (force && snapshot.version >= local) {
                self.apply_shared_routes(&mut st, snapshot.routes, snapshot.deleted_routes);
                self.apply_shared_instances(snapshot.instances);
                self.set_version(snapshot.version.max(local));
                tracing::debug!(
                    version = snapshot.version,
                    "applied the shared configuration"
                );
            }
        }
        shared.heartbeat(self.config_version()).await
    }

    /// Makes the admin overlay equal to `routes` (in order) minus `deleted` file routes: what
    /// another node wrote to the shared store.
    fn apply_shared_routes(
        &self,
        st: &mut WriteState,
        routes: Vec<RouteConfig>,
        deleted: Vec<String>,
    ) {
        let file: Vec<RouteConfig> = st.config.routes.clone();
        let mut next: Vec<RouteEntry> = Vec::new();
        for rc in &file {
            if deleted.contains(&rc.id) || routes.iter().any(|r| r.id == rc.id) {
                continue;
            }
            let existing = st
                .routes
                .iter()
                .find(|e| e.origin == Origin::File && e.config == *rc)
                .cloned();
            next.push(existing.unwrap_or_else(|| RouteEntry {
                service: self.build_route(&st.config, rc),
                config: rc.clone(),
                origin: Origin::File,
            }));
        }
        for rc in routes {
            if !rc
                .problems(&st.config.services, st.config.auth.jwt.is_some())
                .is_empty()
            {
                tracing::warn!(route = %rc.id, "route from the shared store does not fit this node's configuration; skipped");
                continue;
            }
            let existing = st
                .routes
                .iter()
                .find(|e| e.origin == Origin::Admin && e.config == rc)
                .cloned();
            next.push(existing.unwrap_or_else(|| RouteEntry {
                service: self.build_route(&st.config, &rc),
                config: rc,
                origin: Origin::Admin,
            }));
        }
        let previous = std::mem::replace(&mut st.routes, next);
        if let Err(e) = self.publish(st) {
            tracing::error!(error = %e, "routes from the shared store refused");
            st.routes = previous;
        }
    }
}
