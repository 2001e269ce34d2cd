//! The admin API's view of the gateway: [`Control`] implements gw-admin's
//! [`ControlPlane`] over the live [`App`], mapping the registry, the breakers, the limiter and
//! the authenticator to gw-admin's types ([`gw_admin::model`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_admin::messages::{self as m, invalid};
use gw_admin::model::{self, RouteDocument, UserDocument};
use gw_admin::{AdminError, ControlPlane, RouteChange};
use gw_discovery::InstanceInfo;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::RouteConfig;
use crate::state::{App, RouteEntry};
use crate::sync;

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn auth_error(e: gw_auth::AdminError) -> AdminError {
    match e {
        gw_auth::AdminError::MintingUnavailable => AdminError::bad_request(m::MINTING_UNAVAILABLE),
        gw_auth::AdminError::InvalidToken(why) => {
            AdminError::bad_request(invalid(m::INVALID_TOKEN, why))
        }
        gw_auth::AdminError::InvalidInput(why) => {
            AdminError::bad_request(invalid(m::INVALID_REQUEST, why))
        }
        gw_auth::AdminError::Store(e) => store_unavailable(e),
        other => AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn store_unavailable(e: impl std::fmt::Display) -> AdminError {
    AdminError::unavailable(invalid(m::STORE_UNAVAILABLE, e))
}

/// A view another crate hands out as JSON (breakers, limiter, metrics) read as gw-admin's
/// type; a mismatch is a bug between the two crates, answered 500 and logged.
fn view<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, AdminError> {
    serde_json::from_value(value).map_err(|e| {
        tracing::error!(error = %e, "the {what} view does not have the admin API's shape");
        AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal error: {what}: {e}"),
        )
    })
}

/// A route as the admin API shows it: the `[[routes]]` table, keys at their default left out.
fn route_document(rc: &RouteConfig) -> Result<RouteDocument, AdminError> {
    match serde_json::to_value(rc) {
        Ok(Value::Object(map)) => Ok(RouteDocument(map)),
        Ok(_) => Err(AdminError::bad_request(m::ROUTE_NOT_AN_OBJECT)),
        Err(e) => Err(AdminError::bad_request(e.to_string())),
    }
}

fn instance_status(info: InstanceInfo) -> model::InstanceStatus {
    let i = info.instance;
    model::InstanceStatus {
        id: i.id,
        host: i.host,
        port: i.port,
        weight: i.weight,
        status: match info.health.status {
            gw_discovery::Status::Healthy => model::InstanceHealth::Healthy,
            gw_discovery::Status::Unhealthy => model::InstanceHealth::Unhealthy,
        },
        last_check: info.health.last_check,
        metadata: i.metadata,
    }
}

fn user(record: gw_auth::UserRecord) -> model::User {
    model::User {
        user_id: record.user_id,
        username: record.username,
        email: record.email,
        role: record.role,
        status: record.status,
        permissions: record.permissions,
    }
}

/// The admin API's view of the gateway.
#[derive(Clone, Debug)]
pub struct Control {
    app: App,
}

impl Control {
    /// The control plane over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Records a local write's new version (memory backend) or writes it to the shared store
    /// and announces it (Redis backend).
    async fn bump(&self, change: sync::Change) -> Result<(), AdminError> {
        match &self.app.inner.shared {
            None => {
                self.app.set_version(self.app.config_version() + 1);
                Ok(())
            }
            Some(shared) => {
                let v = shared.write(change).await.map_err(store_unavailable)?;
                self.app.set_version(v.max(self.app.config_version()));
                Ok(())
            }
        }
    }

    /// Every service with its instance counts, one registry read per service.
    fn services(&self) -> model::Services {
        let registry = &self.app.inner.registry;
        registry
            .services()
            .into_iter()
            .filter_map(|name| {
                let instances = registry.instances(&name)?;
                let healthy = instances
                    .iter()
                    .filter(|i| i.health.status == gw_discovery::Status::Healthy)
                    .count();
                let summary = model::ServiceSummary::new(instances.len() as u64, healthy as u64);
                Some((name, summary))
            })
            .collect()
    }

    fn circuit_breakers(&self) -> Result<model::CircuitBreakers, AdminError> {
        view("circuit breakers", self.app.inner.breakers.snapshot())
    }

    fn auth(&self) -> std::sync::Arc<gw_auth::Authenticator> {
        self.app.inner.features.load_full().auth.clone()
    }
}

impl ControlPlane for Control {
    async fn list_routes(&self) -> Vec<RouteDocument> {
        let st = self.app.inner.state.lock().await;
        st.routes
            .iter()
            .filter_map(|e| route_document(&e.config).ok())
            .collect()
    }

    async fn get_route(&self, id: &str) -> Option<RouteDocument> {
        let st = self.app.inner.state.lock().await;
        st.routes
            .iter()
            .find(|e| e.config.id == id)
            .and_then(|e| route_document(&e.config).ok())
    }

    async fn put_route(&self, route: RouteDocument) -> Result<RouteChange, AdminError> {
        let rc: RouteConfig = gw_core::strict::from_value(route.into_value())
            .map_err(|e| AdminError::bad_request(e.to_string()))?;
        let document = route_document(&rc)?;
        // Validate and apply locally under the writers' lock, then record the change (a new
        // version; with Redis, written and announced); a store failure puts the table back.
        let mut st = self.app.inner.state.lock().await;
        let before: Vec<RouteEntry> = st.routes.clone();
        let created = self
            .app
            .put_route_locked(&mut st, rc.clone())
            .map_err(AdminError::bad_request)?;
        if let Err(e) = self
            .bump(sync::Change::PutRoute {
                route: Box::new(rc),
            })
            .await
        {
            st.routes = before;
            let _ = self.app.publish(&st);
            return Err(e);
        }
        Ok(RouteChange {
            route: document,
            created,
        })
    }

    async fn delete_route(&self, id: &str) -> Result<bool, AdminError> {
        let mut st = self.app.inner.state.lock().await;
        let before: Vec<RouteEntry> = st.routes.clone();
        if !self.app.delete_route_locked(&mut st, id) {
            return Ok(false);
        }
        if let Err(e) = self
            .bump(sync::Change::DeleteRoute { id: id.to_string() })
            .await
        {
            st.routes = before;
            let _ = self.app.publish(&st);
            return Err(e);
        }
        Ok(true)
    }

    fn metrics_json(&self) -> model::Metrics {
        view("metrics", self.app.metrics().snapshot_json()).unwrap_or_else(|_| model::Metrics {
            timestamp: epoch_secs(),
            total_requests: 0,
            status_codes: Default::default(),
            services: Default::default(),
        })
    }

    fn metrics_prometheus(&self) -> String {
        self.app.metrics().render_prometheus()
    }

    async fn health(&self) -> model::Health {
        model::Health {
            status: model::NodeStatus::Healthy,
            timestamp: epoch_secs(),
            version: gw_core::VERSION.to_owned(),
            config_version: Some(self.app.config_version()),
            node: Some(self.app.node_id().to_owned()),
            uptime_secs: Some(self.app.inner.started.elapsed().as_secs()),
            services: self.services(),
            circuit_breakers: self.circuit_breakers().unwrap_or_default(),
        }
    }

    fn config_version(&self) -> u64 {
        self.app.config_version()
    }

    async fn wait_for_version(&self, version: u64) -> Result<(), Vec<String>> {
        match &self.app.inner.shared {
            None => Ok(()),
            Some(shared) => shared.wait_all(version, Duration::from_secs(5)).await,
        }
    }

    async fn list_services(&self) -> Result<model::Services, AdminError> {
        Ok(self.services())
    }

    async fn get_service(&self, name: &str) -> Result<model::ServiceDetail, AdminError> {
        let instances = self
            .app
            .inner
            .registry
            .instances(name)
            .ok_or_else(|| AdminError::not_found(m::SERVICE_NOT_FOUND))?;
        Ok(model::ServiceDetail {
            service: name.to_owned(),
            instances: instances.into_iter().map(instance_status).collect(),
        })
    }

    async fn register_instance(
        &self,
        service: &str,
        input: model::InstanceInput,
    ) -> Result<model::Instance, AdminError> {
        let instance = gw_discovery::Instance {
            id: input.id,
            host: input.host,
            port: input.port,
            weight: input.weight.unwrap_or(gw_discovery::DEFAULT_WEIGHT),
            metadata: input.metadata,
        };
        // Writers' lock: a refresh from the shared store must not interleave with this write.
        let _writers = self.app.inner.state.lock().await;
        let registered = self
            .app
            .inner
            .registry
            .register(service, instance.clone())
            .map_err(|e| match e {
                gw_discovery::RegisterError::UnknownService(_) => {
                    AdminError::not_found(m::SERVICE_NOT_FOUND)
                }
                other => AdminError::bad_request(other.to_string()),
            })?;
        self.app.push_all_instances();
        if let Err(e) = self
            .bump(sync::Change::PutInstance {
                service: service.to_string(),
                instance,
            })
            .await
        {
            self.app.inner.registry.deregister(service, &registered.id);
            self.app.push_all_instances();
            return Err(e);
        }
        Ok(model::Instance {
            id: registered.id,
            host: registered.host,
            port: registered.port,
            weight: registered.weight,
            metadata: registered.metadata,
        })
    }

    async fn deregister_instance(&self, service: &str, id: &str) -> Result<(), AdminError> {
        let _writers = self.app.inner.state.lock().await;
        if !self.app.inner.registry.deregister(service, id) {
            return Err(AdminError::not_found(m::INSTANCE_NOT_FOUND));
        }
        self.app.push_all_instances();
        self.bump(sync::Change::DeleteInstance {
            service: service.to_string(),
            id: id.to_string(),
        })
        .await
    }

    async fn list_circuit_breakers(&self) -> Result<model::CircuitBreakers, AdminError> {
        self.circuit_breakers()
    }

    async fn get_circuit_breaker(
        &self,
        service: &str,
    ) -> Result<model::CircuitBreaker, AdminError> {
        let stats = self
            .app
            .inner
            .breakers
            .get(service)
            .ok_or_else(|| AdminError::not_found(m::CIRCUIT_BREAKER_NOT_FOUND))?;
        view("circuit breaker", stats)
    }

    async fn reset_circuit_breaker(&self, service: &str) -> Result<(), AdminError> {
        if self.app.inner.breakers.reset(service) {
            Ok(())
        } else {
            Err(AdminError::not_found(m::CIRCUIT_BREAKER_NOT_FOUND))
        }
    }

    async fn rate_limits(&self) -> Result<model::RateLimits, AdminError> {
        view(
            "rate limits",
            self.app.inner.features.load().limiter.stats(),
        )
    }

    fn minting_available(&self) -> Result<(), AdminError> {
        if self.app.inner.features.load().jwt.is_none() {
            return Err(AdminError::bad_request(m::MINTING_UNAVAILABLE));
        }
        Ok(())
    }

    async fn mint_token(
        &self,
        request: model::MintTokenRequest,
    ) -> Result<model::Token, AdminError> {
        let (token, expires_at) = self
            .auth()
            .mint_token(
                &request.user_id,
                request.username.as_deref(),
                request.role.as_deref(),
            )
            .map_err(auth_error)?;
        Ok(model::Token { token, expires_at })
    }

    async fn revoke_token(&self, request: model::RevokeTokenRequest) -> Result<(), AdminError> {
        self.auth()
            .revoke_token(&request.token)
            .await
            .map_err(auth_error)
    }

    async fn put_user(&self, id: &str, user: UserDocument) -> Result<model::User, AdminError> {
        let input = user.parse()?;
        let input = gw_auth::UserInput {
            username: input.username,
            email: input.email,
            role: input.role,
            status: input.status,
            permissions: input.permissions,
        };
        let record = self.auth().put_user(id, input).await.map_err(auth_error)?;
        Ok(self::user(record))
    }

    async fn get_user(&self, id: &str) -> Result<model::User, AdminError> {
        match self.auth().get_user(id).await.map_err(auth_error)? {
            Some(record) => Ok(user(record)),
            None => Err(AdminError::not_found(m::USER_NOT_FOUND)),
        }
    }

    async fn delete_user(&self, id: &str) -> Result<(), AdminError> {
        if self.auth().delete_user(id).await.map_err(auth_error)? {
            Ok(())
        } else {
            Err(AdminError::not_found(m::USER_NOT_FOUND))
        }
    }

    async fn create_api_key(&self, input: model::ApiKeyInput) -> Result<model::ApiKey, AdminError> {
        let input = gw_auth::ApiKeyInput {
            user_id: input.user_id,
            username: input.username,
            role: input.role,
            permissions: input.permissions,
            expires_at: input.expires_at,
        };
        let (key, key_id) = self
            .auth()
            .create_api_key(input)
            .await
            .map_err(auth_error)?;
        Ok(model::ApiKey { key, key_id })
    }

    async fn delete_api_key(&self, key_id: &str) -> Result<(), AdminError> {
        if self
            .auth()
            .delete_api_key(key_id)
            .await
            .map_err(auth_error)?
        {
            Ok(())
        } else {
            Err(AdminError::not_found(m::API_KEY_NOT_FOUND))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    /// The error text of reading `body` as `T` through `gw_core::strict`, or `None`.
    fn error<T: DeserializeOwned>(body: &Value) -> Option<String> {
        gw_core::strict::from_value::<T>(body.clone())
            .err()
            .map(|e| e.to_string())
    }

    /// gw-admin's input types refuse exactly what the types the gateway stores refuse, with
    /// the same words, so moving the parse into gw-admin changed no answer.
    #[test]
    fn admin_inputs_read_as_the_stored_types_do() {
        let instances = [
            json!({"id": "a", "host": "h", "port": 1}),
            json!({"id": "a", "host": "h", "port": 1, "weight": 5, "metadata": {"z": "b"}}),
            json!({"id": "a", "host": "h"}),
            json!({"id": "a", "host": "h", "port": 70000}),
            json!({"id": "a", "host": "h", "port": 1, "weight": null}),
            json!({"id": "a", "host": "h", "port": 1, "weight": "x"}),
            json!({"id": "a", "host": "h", "port": 1, "metadata": null}),
            json!({"id": "a", "host": "h", "port": 1, "metadata": [1]}),
            json!({"id": "a", "host": "h", "port": 1, "zone": "b"}),
            json!({"id": 1, "host": "h", "port": 1}),
        ];
        for body in &instances {
            assert_eq!(
                error::<gw_admin::model::InstanceInput>(body),
                error::<gw_discovery::Instance>(body),
                "{body}"
            );
        }
        let ok: gw_admin::model::InstanceInput =
            gw_core::strict::from_value(instances[0].clone()).unwrap();
        assert_eq!(ok.weight, None, "the gateway fills in its default");

        let users = [
            json!({}),
            json!({"username": "a", "email": null, "role": "r", "status": "active", "permissions": ["p"]}),
            json!({"nickname": "a"}),
            json!({"permissions": null}),
            json!({"role": 1, "zzz": 1}),
        ];
        for body in &users {
            assert_eq!(
                error::<gw_admin::model::UserInput>(body),
                error::<gw_auth::UserInput>(body),
                "{body}"
            );
        }

        let keys = [
            json!({"user_id": "u", "permissions": ["p"], "expires_at": 2}),
            json!({}),
            json!({"user_id": 1}),
            json!({"user_id": "u", "expires_at": -1}),
            json!({"user_id": "u", "scope": "x"}),
        ];
        for body in &keys {
            assert_eq!(
                error::<gw_admin::model::ApiKeyInput>(body),
                error::<gw_auth::ApiKeyInput>(body),
                "{body}"
            );
        }
    }

    /// The breakers' JSON reads into gw-admin's view and writes back the same.
    #[test]
    fn the_breaker_view_round_trips() {
        let breakers =
            gw_breaker::BreakerRegistry::new(std::sync::Arc::new(|_: &str, _: &[String]| {}));
        breakers.breaker("s", &gw_breaker::BreakerConfig::default());
        let snapshot = breakers.snapshot();
        let typed: gw_admin::model::CircuitBreakers =
            super::view("breakers", snapshot.clone()).unwrap();
        assert_eq!(serde_json::to_value(typed).unwrap(), snapshot);
    }
}
