//! Typed configuration: `[auth.jwt]` ([`JwtConfig`]) and the per-route policy ([`RoutePolicy`]).

use std::path::PathBuf;
use std::str::FromStr;

use gw_core::ConfigProblem;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[auth.jwt]`: how bearer tokens are verified and minted.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Accepted algorithms: `HS256/384/512`, `RS256/384/512`, `ES256/384`, `EdDSA`.
    /// A token whose header names any other algorithm (`none` included) is refused.
    pub algorithms: Vec<String>,
    /// Shared secret for the `HS*` algorithms (also used by `mint_token`).
    pub secret: Option<String>,
    /// PEM public key (RSA, EC or Ed25519) for the asymmetric algorithms.
    pub public_key_file: Option<PathBuf>,
    /// JWKS endpoint for the asymmetric algorithms (`https://`, checked against the public
    /// web PKI roots, or `http://` for a local sidecar).
    pub jwks_url: Option<String>,
    /// Required `iss`; a token with another issuer is refused with `Invalid issuer`.
    pub issuer: Option<String>,
    /// Accepted audiences; when non-empty a token must carry one of them in `aud`.
    pub audience: Vec<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`, in seconds: a token is refused from
    /// `exp + leeway_secs` on, and when `nbf` or `iat` is later than `now + leeway_secs`.
    pub leeway_secs: u64,
    /// Lifetime of tokens minted by `POST /admin/tokens`, in seconds.
    pub expiration_secs: u64,
    /// Read `user:{sub}` from the store; it must exist and have `status = "active"`.
    pub user_lookup: bool,
    /// How many verified tokens this node remembers, so that a token sent again skips the
    /// signature check (its claims are still checked on every request); 0 turns it off.
    pub cache_size: usize,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithms: vec!["HS256".to_owned()],
            secret: None,
            public_key_file: None,
            jwks_url: None,
            issuer: Some("api-gateway".to_owned()),
            audience: Vec::new(),
            leeway_secs: 0,
            expiration_secs: 3600,
            user_lookup: true,
            cache_size: 4096,
        }
    }
}

pub(crate) fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl JwtConfig {
    /// Every problem of this configuration, paths relative to `[auth.jwt]`; empty when valid.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if self.algorithms.is_empty() {
            errors.push(ConfigProblem::new(
                "algorithms",
                "at least one algorithm is required",
            ));
        }
        let mut needs_secret = false;
        let mut needs_public = false;
        for (i, name) in self.algorithms.iter().enumerate() {
            match Algorithm::from_str(name) {
                Ok(alg) if is_hmac(alg) => needs_secret = true,
                Ok(Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) | Err(_) => {
                    errors.push(ConfigProblem::new(
                        format!("algorithms[{i}]"),
                        format!(
                            "unknown algorithm \"{name}\" (HS256/384/512, RS256/384/512, ES256/384, EdDSA)"
                        ),
                    ));
                }
                Ok(_) => needs_public = true,
            }
        }
        if needs_secret && self.secret.as_deref().is_none_or(str::is_empty) {
            errors.push(ConfigProblem::new(
                "secret",
                "an HS* algorithm is configured but no secret is set",
            ));
        }
        if needs_public && self.public_key_file.is_none() && self.jwks_url.is_none() {
            errors.push(ConfigProblem::new(
                "public_key_file",
                "an RS*/ES*/EdDSA algorithm needs public_key_file or jwks_url",
            ));
        }
        if let Some(url) = &self.jwks_url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                errors.push(ConfigProblem::new(
                    "jwks_url",
                    format!("not an http:// or https:// URL: \"{url}\""),
                ));
            }
        }
        if self.issuer.as_deref() == Some("") {
            errors.push(ConfigProblem::new(
                "issuer",
                "must not be empty (leave it out to accept any issuer)",
            ));
        }
        if self.expiration_secs == 0 {
            errors.push(ConfigProblem::new("expiration_secs", "must be at least 1"));
        }
        errors
    }

    /// The configured algorithms, parsed (unknown names skipped; see [`validate`](Self::validate)).
    pub(crate) fn parsed_algorithms(&self) -> Vec<Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .collect()
    }
}

/// How a route authenticates its callers (route `auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `Authorization: Bearer <jwt>`.
    #[default]
    Jwt,
    /// `X-API-Key: <key>`.
    ApiKey,
    /// `X-API-Key` when present, else the JWT.
    JwtOrApiKey,
}

/// Route `security`: transport and authorization rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Refuse plain-HTTP clients with 403 `HTTPS required`.
    pub require_https: bool,
    /// When non-empty, the caller's role must be one of these (else 403 `Access denied`).
    pub allowed_roles: Vec<String>,
    /// The caller must hold every one of these permissions (else 403 `Access denied`).
    pub required_permissions: Vec<String>,
    /// Ownership check: the caller's id at a path segment (`self`), or an owner record in the
    /// store (`owner_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_check: Option<ResourceCheck>,
}

impl SecurityConfig {
    /// Every problem, paths relative to the route's `security`; empty when valid.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        match &self.resource_check {
            Some(ResourceCheck::OwnerKey(key)) if !key.contains("{id}") => {
                errors.push(ConfigProblem::new(
                    "resource_check.owner_key",
                    "must contain \"{id}\"",
                ));
            }
            Some(ResourceCheck::SelfSegment(0)) => errors.push(ConfigProblem::new(
                "resource_check.self_segment",
                "must be 1 or more (segments are counted from 1)",
            )),
            _ => {}
        }
        errors
    }
}

/// `resource_check`: `"self"`, `{ self_segment = N }` or `{ owner_key = "order:{id}:owner" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceCheck {
    /// `"self"`: shorthand for `{ self_segment = 2 }`, the `/users/{id}` layout (the segment
    /// after the first one).
    SelfId,
    /// `{ self_segment = N }`: the N-th path segment (1-based: in `/api/users/alice/orders`
    /// segment 3 is `alice`) must be the caller's user id, unless the caller's role is `admin`.
    /// Every method is checked; a path without that segment, and a method other than GET,
    /// HEAD, OPTIONS, POST, PUT, PATCH and DELETE, are refused (403).
    SelfSegment(usize),
    /// The store value at this key (`{id}` = last path segment, `key_prefix` applied) must be
    /// the caller's user id.
    OwnerKey(String),
}

impl ResourceCheck {
    /// The path segment (1-based) holding the caller's id, for the `self` checks.
    pub fn self_segment(&self) -> Option<usize> {
        match self {
            Self::SelfId => Some(2),
            Self::SelfSegment(n) => Some(*n),
            Self::OwnerKey(_) => None,
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum ResourceCheckRepr {
    Name(String),
    Owner { owner_key: String },
    Segment { self_segment: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerOnly {
    owner_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentOnly {
    self_segment: usize,
}

const EXPECTED: &str = "expected \"self\", { self_segment = N } or { owner_key = \"...\" }";

impl<'de> Deserialize<'de> for ResourceCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) if s == "self" => Ok(Self::SelfId),
            serde_json::Value::String(s) => Err(D::Error::custom(format!(
                "unknown resource_check \"{s}\" ({EXPECTED})"
            ))),
            serde_json::Value::Object(ref o) if o.contains_key("self_segment") => {
                serde_json::from_value::<SegmentOnly>(v)
                    .map(|o| Self::SelfSegment(o.self_segment))
                    .map_err(D::Error::custom)
            }
            obj @ serde_json::Value::Object(_) => serde_json::from_value::<OwnerOnly>(obj)
                .map(|o| Self::OwnerKey(o.owner_key))
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

impl Serialize for ResourceCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::SelfId => ResourceCheckRepr::Name("self".to_owned()).serialize(s),
            Self::SelfSegment(n) => ResourceCheckRepr::Segment { self_segment: *n }.serialize(s),
            Self::OwnerKey(k) => ResourceCheckRepr::Owner {
                owner_key: k.clone(),
            }
            .serialize(s),
        }
    }
}

/// What one route asks of [`AuthLayer`](crate::AuthLayer): built by gateway-bin from the route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Route `auth_required`. Without it the layer does no authentication work and no store
    /// access (it still strips client `X-User-*` headers and enforces `require_https`).
    pub auth_required: bool,
    /// Route `auth`.
    pub method: AuthMethod,
    /// Route `security`.
    pub security: SecurityConfig,
}

impl RoutePolicy {
    /// A policy that requires authentication with `method`.
    pub fn required(method: AuthMethod) -> Self {
        Self {
            auth_required: true,
            method,
            security: SecurityConfig::default(),
        }
    }

    /// A policy without authentication.
    pub fn open() -> Self {
        Self::default()
    }

    /// Replaces the security rules.
    pub fn with_security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_needs_secret_and_jwks_url_must_be_http_or_https() {
        let errs = JwtConfig::default().validate();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "secret");
        let cfg = JwtConfig {
            algorithms: vec!["RS256".into(), "none".into()],
            jwks_url: Some("ftp://idp.example/jwks".into()),
            ..JwtConfig::default()
        };
        let errs = cfg.validate();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["algorithms[1]", "jwks_url"]);
        let https = JwtConfig {
            algorithms: vec!["RS256".into()],
            jwks_url: Some("https://idp.example/jwks".into()),
            ..JwtConfig::default()
        };
        assert!(https.validate().is_empty(), "{:?}", https.validate());
    }

    #[test]
    fn resource_check_serde() {
        let s: SecurityConfig =
            serde_json::from_str(r#"{"resource_check":"self","allowed_roles":["admin"]}"#).unwrap();
        assert_eq!(s.resource_check, Some(ResourceCheck::SelfId));
        let s: SecurityConfig =
            serde_json::from_str(r#"{"resource_check":{"owner_key":"order:{id}:owner"}}"#).unwrap();
        assert_eq!(
            s.resource_check,
            Some(ResourceCheck::OwnerKey("order:{id}:owner".into()))
        );
        assert_eq!(
            serde_json::to_string(&s.resource_check).unwrap(),
            r#"{"owner_key":"order:{id}:owner"}"#
        );
        assert!(serde_json::from_str::<SecurityConfig>(r#"{"resource_check":"other"}"#).is_err());
        let seg: SecurityConfig =
            serde_json::from_str(r#"{"resource_check":{"self_segment":3}}"#).unwrap();
        assert_eq!(seg.resource_check, Some(ResourceCheck::SelfSegment(3)));
        assert_eq!(
            serde_json::to_string(&seg.resource_check).unwrap(),
            r#"{"self_segment":3}"#
        );
        assert!(seg.validate().is_empty());
        let zero: SecurityConfig =
            serde_json::from_str(r#"{"resource_check":{"self_segment":0}}"#).unwrap();
        assert_eq!(zero.validate().len(), 1);
        assert!(serde_json::from_str::<SecurityConfig>(
            r#"{"resource_check":{"self_segment":2,"owner_key":"a{id}"}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<SecurityConfig>(r#"{"unknown":1}"#).is_err());
        assert!(serde_json::from_str::<SecurityConfig>(
            r#"{"resource_check":{"owner_key":"a","x":1}}"#
        )
        .is_err());
        let m: AuthMethod = serde_json::from_str(r#""jwt_or_api_key""#).unwrap();
        assert_eq!(m, AuthMethod::JwtOrApiKey);
    }
}
