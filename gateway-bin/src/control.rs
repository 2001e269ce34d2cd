//! The admin API's view of the gateway: [`Control`] implements gw-admin's
//! [`ControlPlane`] over the live [`App`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_admin::{AdminError, ControlPlane, RouteChange};
use gw_auth::{ApiKeyInput, UserInput};
use http::StatusCode;
use serde_json::{json, Value};

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
        gw_auth::AdminError::MintingUnavailable => AdminError::bad_request(
            "Token minting needs [auth.jwt] with an HS256/384/512 algorithm and a secret",
        ),
        gw_auth::AdminError::InvalidToken(why) => {
            AdminError::bad_request(format!("Invalid token: {why}"))
        }
        gw_auth::AdminError::InvalidInput(why) => {
            AdminError::bad_request(format!("Invalid request: {why}"))
        }
        gw_auth::AdminError::Store(e) => AdminError::unavailable(format!("Store unavailable: {e}")),
        other => AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, AdminError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AdminError::bad_request(format!(
            "Invalid request: {key} must be a string"
        ))),
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
                let v = shared
                    .write(change)
                    .await
                    .map_err(|e| AdminError::unavailable(format!("Store unavailable: {e}")))?;
                self.app.set_version(v.max(self.app.config_version()));
                Ok(())
            }
        }
    }
}

impl ControlPlane for Control {
    async fn list_routes(&self) -> Vec<Value> {
        let st = self.app.inner.state.lock().await;
        st.routes
            .iter()
            .map(|e| serde_json::to_value(&e.config).unwrap_or(Value::Null))
            .collect()
    }

    async fn get_route(&self, id: &str) -> Option<Value> {
        let st = self.app.inner.state.lock().await;
        st.routes
            .iter()
            .find(|e| e.config.id == id)
            .and_then(|e| serde_json::to_value(&e.config).ok())
    }

    async fn put_route(&self, route: Value) -> Result<RouteChange, AdminError> {
        let rc: RouteConfig = gw_core::strict::from_value(route)
            .map_err(|e| AdminError::bad_request(e.to_string()))?;
        let value =
            serde_json::to_value(&rc).map_err(|e| AdminError::bad_request(e.to_string()))?;
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
            route: value,
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

    fn metrics_json(&self) -> Value {
        self.app.metrics().snapshot_json()
    }

    fn metrics_prometheus(&self) -> String {
        self.app.metrics().render_prometheus()
    }

    async fn health(&self) -> Value {
        json!({
            "status": "healthy",
            "timestamp": epoch_secs(),
            "version": gw_core::VERSION,
            "config_version": self.app.config_version(),
            "node": self.app.node_id(),
            "uptime_secs": self.app.inner.started.elapsed().as_secs(),
            "services": self.app.inner.registry.summary(),
            "circuit_breakers": self.app.inner.breakers.snapshot(),
        })
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

    async fn list_services(&self) -> Result<Value, AdminError> {
        Ok(self.app.inner.registry.summary())
    }

    async fn get_service(&self, name: &str) -> Result<Value, AdminError> {
        self.app
            .inner
            .registry
            .detail(name)
            .ok_or_else(|| AdminError::not_found("Service not found"))
    }

    async fn register_instance(&self, service: &str, instance: Value) -> Result<Value, AdminError> {
        let instance: gw_discovery::Instance = gw_core::strict::from_value(instance)
            .map_err(|e| AdminError::bad_request(format!("Invalid instance: {e}")))?;
        // Writers' lock: a refresh from the shared store must not interleave with this write.
        let _writers = self.app.inner.state.lock().await;
        let registered = self
            .app
            .inner
            .registry
            .register(service, instance.clone())
            .map_err(|e| match e {
                gw_discovery::RegisterError::UnknownService(_) => {
                    AdminError::not_found("Service not found")
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
        serde_json::to_value(&registered).map_err(|e| AdminError::bad_request(e.to_string()))
    }

    async fn deregister_instance(&self, service: &str, id: &str) -> Result<(), AdminError> {
        let _writers = self.app.inner.state.lock().await;
        if !self.app.inner.registry.deregister(service, id) {
            return Err(AdminError::not_found("Service instance not found"));
        }
        self.app.push_all_instances();
        self.bump(sync::Change::DeleteInstance {
            service: service.to_string(),
            id: id.to_string(),
        })
        .await
    }

    async fn list_circuit_breakers(&self) -> Result<Value, AdminError> {
        Ok(self.app.inner.breakers.snapshot())
    }

    async fn get_circuit_breaker(&self, service: &str) -> Result<Value, AdminError> {
        self.app
            .inner
            .breakers
            .get(service)
            .ok_or_else(|| AdminError::not_found("Circuit breaker not found"))
    }

    async fn reset_circuit_breaker(&self, service: &str) -> Result<(), AdminError> {
        if self.app.inner.breakers.reset(service) {
            Ok(())
        } else {
            Err(AdminError::not_found("Circuit breaker not found"))
        }
    }

    async fn rate_limits(&self) -> Result<Value, AdminError> {
        Ok(self.app.inner.features.load().limiter.stats())
    }

    async fn mint_token(&self, request: Value) -> Result<Value, AdminError> {
        let features = self.app.inner.features.load_full();
        if features.jwt.is_none() {
            return Err(AdminError::bad_request(
                "Token minting needs [auth.jwt] with an HS256/384/512 algorithm and a secret",
            ));
        }
        let user_id = str_field(&request, "user_id")?
            .ok_or_else(|| AdminError::bad_request("Invalid request: user_id is required"))?;
        let (token, expires_at) = features
            .auth
            .mint_token(
                user_id,
                str_field(&request, "username")?,
                str_field(&request, "role")?,
            )
            .map_err(auth_error)?;
        Ok(json!({ "token": token, "expires_at": expires_at }))
    }

    async fn revoke_token(&self, request: Value) -> Result<(), AdminError> {
        let token = str_field(&request, "token")?
            .ok_or_else(|| AdminError::bad_request("Invalid request: token is required"))?;
        let auth = self.app.inner.features.load_full().auth.clone();
        auth.revoke_token(token).await.map_err(auth_error)
    }

    async fn put_user(&self, id: &str, user: Value) -> Result<Value, AdminError> {
        let input: UserInput = gw_core::strict::from_value(user)
            .map_err(|e| AdminError::bad_request(format!("Invalid user: {e}")))?;
        let auth = self.app.inner.features.load_full().auth.clone();
        let record = auth.put_user(id, input).await.map_err(auth_error)?;
        serde_json::to_value(record).map_err(|e| AdminError::bad_request(e.to_string()))
    }

    async fn get_user(&self, id: &str) -> Result<Value, AdminError> {
        let auth = self.app.inner.features.load_full().auth.clone();
        match auth.get_user(id).await.map_err(auth_error)? {
            Some(record) => {
                serde_json::to_value(record).map_err(|e| AdminError::bad_request(e.to_string()))
            }
            None => Err(AdminError::not_found("User not found")),
        }
    }

    async fn delete_user(&self, id: &str) -> Result<(), AdminError> {
        let auth = self.app.inner.features.load_full().auth.clone();
        if auth.delete_user(id).await.map_err(auth_error)? {
            Ok(())
        } else {
            Err(AdminError::not_found("User not found"))
        }
    }

    async fn create_api_key(&self, request: Value) -> Result<Value, AdminError> {
        let input: ApiKeyInput = gw_core::strict::from_value(request)
            .map_err(|e| AdminError::bad_request(format!("Invalid request: {e}")))?;
        let auth = self.app.inner.features.load_full().auth.clone();
        let (key, key_id) = auth.create_api_key(input).await.map_err(auth_error)?;
        Ok(json!({ "key": key, "key_id": key_id }))
    }

    async fn delete_api_key(&self, key_id: &str) -> Result<(), AdminError> {
        let auth = self.app.inner.features.load_full().auth.clone();
        if auth.delete_api_key(key_id).await.map_err(auth_error)? {
            Ok(())
        } else {
            Err(AdminError::not_found("API key not found"))
        }
    }
}
