//! [`Authenticator`]: verifier + store + configuration, shared by every route's layer, and the
//! admin-facing operations (mint, revoke, users, API keys).

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use gw_core::Identity;
use http::request::Parts;
use http::{header::AUTHORIZATION, HeaderMap, Method};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthMethod, JwtConfig, ResourceCheck, RoutePolicy};
use crate::error::{AdminError, AuthConfigError, AuthError};
use crate::jwt::{JwksOptions, TokenClaims, Verifier};
use crate::store::{ApiKeyRecord, AuthStore, Lookup, LookupResult, UserRecord};

/// Header carrying an API key.
pub const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// Seconds since the Unix epoch (the layer's clock).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Refreshes the JWKS every `max-age` (bounded) for as long as the authenticator lives: it
/// holds only a weak reference, so dropping the last `Arc<Authenticator>` ends it at its next
/// wake-up.
async fn refresh_jwks_periodically(auth: std::sync::Weak<Authenticator>) {
    loop {
        let Some(delay) = auth.upgrade().and_then(|a| a.verifier.jwks_refresh_delay()) else {
            return;
        };
        tokio::time::sleep(delay).await;
        let Some(a) = auth.upgrade() else { return };
        a.verifier.jwks_refresh_scheduled().await;
    }
}

/// `SHA-256` of an API key as lowercase hex: the store key `api_key:{hash}`.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Input of `PUT /admin/users/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserInput {
    /// Display name.
    pub username: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Status; `"active"` when left out.
    pub status: Option<String>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// Input of `POST /admin/api-keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyInput {
    /// Owner's user id (required).
    pub user_id: String,
    /// Owner's name.
    pub username: Option<String>,
    /// Role granted.
    pub role: Option<String>,
    /// Permissions granted.
    pub permissions: Vec<String>,
    /// Epoch seconds after which the key is refused.
    pub expires_at: Option<u64>,
}

/// A refused request: the error, and who the caller was when authentication had succeeded
/// (403s keep the identity for the access log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub error: AuthError,
    /// The authenticated caller, for authorization failures.
    pub identity: Option<Identity>,
}

impl From<AuthError> for Refusal {
    fn from(error: AuthError) -> Self {
        Self {
            error,
            identity: None,
        }
    }
}

#[derive(Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    jti: String,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aud: &'a [String],
}

/// Verifier (keys, JWKS cache), store and configuration; one per gateway, `Arc`-shared by every
/// route's [`AuthLayer`](crate::AuthLayer).
pub struct Authenticator {
    config: JwtConfig,
    verifier: Verifier,
    store: Arc<dyn AuthStore>,
    mint: Option<(Algorithm, EncodingKey)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("verifier", &self.verifier)
            .field("store", &self.store)
            .field("can_mint", &self.mint.is_some())
            .finish()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AdminError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(b)
}

/// The last segment of `path` (`/users/42` and `/users/42/` → `42`), if not empty.
pub(crate) fn last_segment(path: &str) -> Option<&str> {
    let p = path.strip_suffix('/').unwrap_or(path);
    p.rsplit('/').next().filter(|s| !s.is_empty())
}

/// The `n`-th (1-based) segment of `path` (`/users/42/x`: 1 → `users`, 2 → `42`), if there
/// and not empty.
pub(crate) fn path_segment(path: &str, n: usize) -> Option<&str> {
    if n == 0 {
        return None;
    }
    path.strip_prefix('/')?
        .split('/')
        .nth(n - 1)
        .filter(|s| !s.is_empty())
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let v = headers
        .get(AUTHORIZATION)
        .ok_or(AuthError::MissingAuthorization)?;
    let v = v
        .to_str()
        .map_err(|_| AuthError::InvalidAuthorizationFormat)?;
    let (scheme, token) = v
        .split_once(' ')
        .ok_or(AuthError::InvalidAuthorizationFormat)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::InvalidAuthorizationFormat);
    }
    Ok(token)
}

impl Authenticator {
    /// Builds the verifier (reads `public_key_file`; tries a first JWKS fetch, whose failure
    /// does not prevent startup) over `store`. With a `jwks_url`, the periodic JWKS refresh
    /// ([`jwks_refresh`](Self::jwks_refresh)) is spawned on the current tokio runtime; use
    /// [`with_options_unstarted`](Self::with_options_unstarted) to run it yourself.
    pub async fn new(
        config: JwtConfig,
        store: Arc<dyn AuthStore>,
    ) -> Result<Arc<Self>, AuthConfigError> {
        Self::with_options(config, store, JwksOptions::default()).await
    }

    /// [`new`](Self::new) with explicit JWKS cache knobs (refresh interval, fetch timeout).
    /// Spawns the periodic JWKS refresh, as [`new`](Self::new) does.
    pub async fn with_options(
        config: JwtConfig,
        store: Arc<dyn AuthStore>,
        jwks: JwksOptions,
    ) -> Result<Arc<Self>, AuthConfigError> {
        let auth = Self::with_options_unstarted(config, store, jwks).await?;
        if let Some(refresh) = auth.jwks_refresh() {
            tokio::spawn(refresh);
        }
        Ok(auth)
    }

    /// [`with_options`](Self::with_options) without spawning anything: an embedder that
    /// starts its background work in one place (the gateway does, at start and on reload)
    /// runs [`jwks_refresh`](Self::jwks_refresh) itself. Until it does, keys are still
    /// fetched on an unknown `kid` (at most once per `min_refresh_interval`), never on a
    /// schedule.
    pub async fn with_options_unstarted(
        config: JwtConfig,
        store: Arc<dyn AuthStore>,
        jwks: JwksOptions,
    ) -> Result<Arc<Self>, AuthConfigError> {
        let errors = config.validate();
        if !errors.is_empty() {
            return Err(AuthConfigError::Invalid(errors));
        }
        let verifier = Verifier::new(&config, jwks)?;
        verifier.prime().await;
        let mint = match (verifier.mint_algorithm(), &config.secret) {
            (Some(alg), Some(secret)) => Some((alg, EncodingKey::from_secret(secret.as_bytes()))),
            _ => None,
        };
        Ok(Arc::new(Self {
            config,
            verifier,
            store,
            mint,
        }))
    }

    /// The periodic JWKS refresh, to spawn on a tokio runtime: `None` without a `jwks_url`
    /// (nothing to refresh). It refetches the key set every `Cache-Control: max-age` of the
    /// last answer (bounded by [`JwksOptions`]), keeps the old keys when a fetch fails, and
    /// ends by itself once the authenticator is dropped (it holds only a weak reference).
    /// [`new`](Self::new) and [`with_options`](Self::with_options) spawn it already; run it
    /// once per authenticator.
    pub fn jwks_refresh(self: &Arc<Self>) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.verifier
            .jwks_refresh_delay()
            .map(|_| refresh_jwks_periodically(Arc::downgrade(self)))
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    /// Verifies `token` (signature, algorithm, `exp`/`nbf`/`iss`/`aud` at `now`). No store
    /// access: revocation and user checks are part of [`check`](Self::check).
    pub async fn verify_token(&self, token: &str, now: u64) -> Result<TokenClaims, AuthError> {
        self.verifier
            .verify(token, now)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// Authenticates and authorizes a request (its head) for `policy` at `now` (the whole work of the layer
    /// except `require_https` and headers). At most one store round trip.
    pub async fn check(
        &self,
        req: &Parts,
        policy: &RoutePolicy,
        now: u64,
    ) -> Result<Identity, Refusal> {
        let path = req.uri.path();
        let owner_key = match &policy.security.resource_check {
            Some(ResourceCheck::OwnerKey(t)) => last_segment(path).map(|id| t.replace("{id}", id)),
            _ => None,
        };
        let use_api_key = match policy.method {
            AuthMethod::ApiKey => true,
            AuthMethod::Jwt => false,
            AuthMethod::JwtOrApiKey => req.headers.contains_key(X_API_KEY),
        };
        let (identity, found) = if use_api_key {
            self.by_api_key(&req.headers, owner_key.as_deref(), now)
                .await?
        } else {
            self.by_jwt(&req.headers, owner_key.as_deref(), now).await?
        };
        if authorize(&identity, policy, &req.method, path, found.owner.as_deref()) {
            Ok(identity)
        } else {
            Err(Refusal {
                error: AuthError::AccessDenied,
                identity: Some(identity),
            })
        }
    }

    async fn by_api_key(
        &self,
        headers: &HeaderMap,
        owner_key: Option<&str>,
        now: u64,
    ) -> Result<(Identity, LookupResult), AuthError> {
        let key = headers.get(X_API_KEY).ok_or(AuthError::MissingApiKey)?;
        let key = key.to_str().map_err(|_| AuthError::InvalidApiKey)?.trim();
        if key.is_empty() {
            return Err(AuthError::MissingApiKey);
        }
        let hash = hash_api_key(key);
        let mut found = self
            .store
            .lookup(Lookup {
                api_key_hash: Some(&hash),
                owner_key,
                ..Lookup::default()
            })
            .await?;
        let rec = found.api_key.take().ok_or(AuthError::InvalidApiKey)?;
        if let Some(stored) = &rec.key_hash {
            if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(AuthError::InvalidApiKey);
            }
        }
        if rec.status != "active" {
            return Err(AuthError::ApiKeyInactive);
        }
        if rec.expires_at.is_some_and(|t| now >= t) {
            return Err(AuthError::ApiKeyExpired);
        }
        let identity = Identity {
            user_id: rec.user_id,
            username: rec.username,
            role: rec.role,
            permissions: rec.permissions,
        };
        Ok((identity, found))
    }

    async fn by_jwt(
        &self,
        headers: &HeaderMap,
        owner_key: Option<&str>,
        now: u64,
    ) -> Result<(Identity, LookupResult), AuthError> {
        let token = bearer(headers)?;
        let claims = self.verifier.verify(token, now).await?;
        let sub = claims.sub.as_deref().unwrap_or_default();
        let q = Lookup {
            revoked_jti: claims.jti.as_deref(),
            user: self.config.user_lookup.then_some(sub),
            owner_key,
            api_key_hash: None,
        };
        let mut found = if q == Lookup::default() {
            LookupResult::default()
        } else {
            self.store.lookup(q).await?
        };
        if found.revoked {
            return Err(AuthError::TokenRevoked);
        }
        let identity = if self.config.user_lookup {
            let user = found.user.take().ok_or(AuthError::UserNotFound)?;
            if user.status != "active" {
                return Err(AuthError::UserInactive);
            }
            Identity {
                user_id: sub.to_owned(),
                username: user.username.or_else(|| claims.username.clone()),
                role: user.role,
                permissions: user.permissions,
            }
        } else {
            Identity {
                user_id: sub.to_owned(),
                username: claims.username.clone(),
                role: claims.role.clone(),
                permissions: claims.permissions.clone().unwrap_or_default(),
            }
        };
        Ok((identity, found))
    }

    // ---- admin-facing ----

    /// Mints a token for `POST /admin/tokens` with the configured secret (first HS* algorithm),
    /// issuer, audience and `expiration_secs`. Returns the token and its `exp`.
    pub fn mint_token(
        &self,
        user_id: &str,
        username: Option<&str>,
        role: Option<&str>,
    ) -> Result<(String, u64), AdminError> {
        self.mint_token_at(user_id, username, role, unix_now())
    }

    /// [`mint_token`](Self::mint_token) at an explicit time.
    pub fn mint_token_at(
        &self,
        user_id: &str,
        username: Option<&str>,
        role: Option<&str>,
        now: u64,
    ) -> Result<(String, u64), AdminError> {
        let (alg, key) = self.mint.as_ref().ok_or(AdminError::MintingUnavailable)?;
        if user_id.is_empty() {
            return Err(AdminError::InvalidInput("user_id is required".into()));
        }
        let exp = now + self.config.expiration_secs;
        let claims = MintClaims {
            sub: user_id,
            username,
            role,
            jti: hex::encode(random_bytes::<16>()?),
            iat: now,
            exp,
            iss: self.config.issuer.as_deref(),
            aud: &self.config.audience,
        };
        let token = encode(&Header::new(*alg), &claims, key)
            .map_err(|e| AdminError::Internal(e.to_string()))?;
        Ok((token, exp))
    }

    /// `POST /admin/tokens/revoke`: the signature must verify (an expired token is fine); sets
    /// `blacklist:{jti}` until the token's `exp` plus `leeway_secs`, the last moment at which the
    /// token could still be accepted (a token without `exp` is refused anyway; its entry lives
    /// `expiration_secs` plus the leeway).
    pub async fn revoke_token(&self, token: &str) -> Result<(), AdminError> {
        let claims = self
            .verifier
            .verify_signature(token.trim())
            .await
            .map_err(|e| AdminError::InvalidToken(e.to_string()))?;
        let jti = claims
            .jti
            .ok_or_else(|| AdminError::InvalidToken("token has no jti".into()))?;
        let leeway = self.config.leeway_secs;
        let until = match claims.exp {
            Some(exp) => exp.saturating_add(leeway),
            None => unix_now()
                .saturating_add(self.config.expiration_secs)
                .saturating_add(leeway),
        };
        // One second past the last accepted second (`now < exp + leeway` is accepted).
        self.store
            .revoke_until(&jti, until.saturating_add(1))
            .await?;
        Ok(())
    }

    /// `PUT /admin/users/{id}`: writes the record and returns it.
    pub async fn put_user(&self, id: &str, input: UserInput) -> Result<UserRecord, AdminError> {
        if id.is_empty() {
            return Err(AdminError::InvalidInput("user id is required".into()));
        }
        let rec = UserRecord {
            user_id: id.to_owned(),
            username: input.username,
            email: input.email,
            role: input.role,
            status: input.status.unwrap_or_else(|| "active".to_owned()),
            permissions: input.permissions,
        };
        self.store.put_user(&rec).await?;
        Ok(rec)
    }

    /// `GET /admin/users/{id}`.
    pub async fn get_user(&self, id: &str) -> Result<Option<UserRecord>, AdminError> {
        Ok(self.store.get_user(id).await?)
    }

    /// `DELETE /admin/users/{id}`: whether it existed.
    pub async fn delete_user(&self, id: &str) -> Result<bool, AdminError> {
        Ok(self.store.delete_user(id).await?)
    }

    /// `POST /admin/api-keys`: a new key (`gwk_` + 32 random bytes, base64url) and its id. The
    /// key itself is not stored, only its SHA-256; show it to the caller once.
    pub async fn create_api_key(&self, input: ApiKeyInput) -> Result<(String, String), AdminError> {
        if input.user_id.is_empty() {
            return Err(AdminError::InvalidInput("user_id is required".into()));
        }
        let key = format!(
            "gwk_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let key_id = format!("key_{}", hex::encode(random_bytes::<8>()?));
        let hash = hash_api_key(&key);
        let rec = ApiKeyRecord {
            key_id: key_id.clone(),
            user_id: input.user_id,
            username: input.username,
            role: input.role,
            permissions: input.permissions,
            status: "active".to_owned(),
            expires_at: input.expires_at,
            key_hash: Some(hash.clone()),
        };
        self.store.put_api_key(&hash, &rec).await?;
        Ok((key, key_id))
    }

    /// `DELETE /admin/api-keys/{key_id}`: whether it existed.
    pub async fn delete_api_key(&self, key_id: &str) -> Result<bool, AdminError> {
        Ok(self.store.delete_api_key(key_id).await?)
    }
}

/// Role, permission and ownership rules (docs/configuration.md, "Route authentication and authorization"). `owner` is the value of the owner key.
fn authorize(
    id: &Identity,
    policy: &RoutePolicy,
    method: &Method,
    path: &str,
    owner: Option<&str>,
) -> bool {
    let sec = &policy.security;
    if !sec.allowed_roles.is_empty()
        && !id
            .role
            .as_ref()
            .is_some_and(|r| sec.allowed_roles.contains(r))
    {
        return false;
    }
    if !sec
        .required_permissions
        .iter()
        .all(|p| id.permissions.contains(p))
    {
        return false;
    }
    match &sec.resource_check {
        None => true,
        Some(ResourceCheck::OwnerKey(_)) => owner == Some(id.user_id.as_str()),
        Some(check) => {
            // Fail closed: a method whose meaning the check does not know is refused, for
            // everyone; every known method is checked.
            let known = matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::POST
                    | Method::PUT
                    | Method::PATCH
                    | Method::DELETE
            );
            let n = check.self_segment().unwrap_or(usize::MAX);
            known
                && (id.role.as_deref() == Some("admin")
                    || path_segment(path, n) == Some(id.user_id.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityConfig;

    #[test]
    fn segments_and_bearer() {
        assert_eq!(last_segment("/users/42"), Some("42"));
        assert_eq!(last_segment("/users/42/"), Some("42"));
        assert_eq!(last_segment("/"), None);
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), Err(AuthError::InvalidAuthorizationFormat));
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), Err(AuthError::InvalidAuthorizationFormat));
    }

    #[test]
    fn authorize_rules() {
        let id = Identity {
            user_id: "u1".into(),
            role: Some("user".into()),
            permissions: vec!["read".into()],
            ..Identity::default()
        };
        let pol = |sec: SecurityConfig| RoutePolicy::required(AuthMethod::Jwt).with_security(sec);
        let roles = pol(SecurityConfig {
            allowed_roles: vec!["admin".into()],
            ..Default::default()
        });
        assert!(!authorize(&id, &roles, &Method::GET, "/x", None));
        let perms = pol(SecurityConfig {
            required_permissions: vec!["read".into(), "write".into()],
            ..Default::default()
        });
        assert!(!authorize(&id, &perms, &Method::GET, "/x", None));
        let me = pol(SecurityConfig {
            resource_check: Some(ResourceCheck::SelfId),
            ..Default::default()
        });
        assert!(authorize(&id, &me, &Method::GET, "/users/u1", None));
        assert!(!authorize(&id, &me, &Method::GET, "/users/u2", None));
    }

    #[test]
    fn self_check_covers_every_method_and_a_fixed_segment() {
        let id = Identity {
            user_id: "alice".into(),
            role: Some("user".into()),
            ..Identity::default()
        };
        let admin = Identity {
            role: Some("admin".into()),
            ..id.clone()
        };
        let pol = |rc| {
            RoutePolicy::required(AuthMethod::Jwt).with_security(SecurityConfig {
                resource_check: Some(rc),
                ..Default::default()
            })
        };
        let me = pol(ResourceCheck::SelfId);
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            assert!(authorize(&id, &me, &m, "/users/alice", None), "{m}");
            assert!(!authorize(&id, &me, &m, "/users/bob", None), "{m}");
            assert!(authorize(&admin, &me, &m, "/users/bob", None), "{m}");
        }
        // Only the declared position counts.
        assert!(!authorize(&id, &me, &Method::GET, "/users/bob/alice", None));
        assert!(authorize(
            &id,
            &me,
            &Method::GET,
            "/users/alice/orders",
            None
        ));
        assert!(!authorize(&id, &me, &Method::GET, "/users", None));
        assert!(!authorize(&id, &me, &Method::GET, "/users//alice", None));
        // A method the check cannot judge is refused, to everyone.
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(!authorize(&id, &me, &odd, "/users/alice", None));
        assert!(!authorize(&admin, &me, &odd, "/users/alice", None));
        assert!(!authorize(&id, &me, &Method::TRACE, "/users/alice", None));
        let deep = pol(ResourceCheck::SelfSegment(3));
        assert!(authorize(
            &id,
            &deep,
            &Method::GET,
            "/api/users/alice",
            None
        ));
        assert!(!authorize(&id, &deep, &Method::GET, "/api/alice/bob", None));
        assert!(!authorize(
            &id,
            &deep,
            &Method::GET,
            "/api/users/bob/alice",
            None
        ));
        assert_eq!(path_segment("/a/b/c", 0), None);
        assert_eq!(path_segment("/a/b/c", 4), None);
    }
}
