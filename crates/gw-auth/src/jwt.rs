//! JWT verification: keys per algorithm family (secret, PEM file, JWKS cache) and the claim
//! checks, which take `now` explicitly.

use std::collections::HashMap;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use tokio::time::Instant;

use crate::config::{is_hmac, JwtConfig};
use crate::error::{AuthConfigError, AuthError};
use crate::verified::VerifiedTokens;

/// The claims the gateway reads from a verified token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    /// Subject: the user id.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, epoch seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub exp: Option<u64>,
    /// Not before, epoch seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub nbf: Option<u64>,
    /// Issued at, epoch seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default)]
    pub iss: Option<String>,
    /// Audience (one string or an array).
    #[serde(default, deserialize_with = "opt_aud")]
    pub aud: Option<Vec<String>>,
    /// Token id (the revocation key).
    #[serde(default)]
    pub jti: Option<String>,
    /// Role claim.
    #[serde(default)]
    pub role: Option<String>,
    /// Permissions claim.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// User name claim.
    #[serde(default)]
    pub username: Option<String>,
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(n.and_then(|n| {
        n.as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    }))
}

fn opt_aud<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<Aud>::deserialize(d)?.map(|a| match a {
        Aud::One(s) => vec![s],
        Aud::Many(v) => v,
    }))
}

/// Claim rules (`exp`, `nbf`, `iss`, `aud`, leeway), applied after the signature verified.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRules {
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Vec<String>,
    pub(crate) leeway: u64,
}

impl ClaimRules {
    /// Pure: checks `claims` at `now` (epoch seconds).
    ///
    /// `exp` is the first second at which the token is no longer valid (RFC 7519 §4.1.4):
    /// refused from `now >= exp + leeway`. A token issued (`iat`) or valid from (`nbf`) later
    /// than `now + leeway` is refused as invalid.
    pub(crate) fn check(&self, c: &TokenClaims, now: u64) -> Result<(), AuthError> {
        let exp = c.exp.ok_or(AuthError::InvalidToken)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::TokenExpired);
        }
        let latest = now.saturating_add(self.leeway);
        if c.nbf.is_some_and(|nbf| nbf > latest) || c.iat.is_some_and(|iat| iat > latest) {
            return Err(AuthError::InvalidToken);
        }
        if let Some(iss) = &self.issuer {
            if c.iss.as_deref() != Some(iss.as_str()) {
                return Err(AuthError::InvalidIssuer);
            }
        }
        if !self.audience.is_empty() {
            let ok = c
                .aud
                .as_ref()
                .is_some_and(|a| a.iter().any(|x| self.audience.contains(x)));
            if !ok {
                return Err(AuthError::InvalidToken);
            }
        }
        match c.sub.as_deref() {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(AuthError::InvalidToken),
        }
    }
}

/// Knobs of the JWKS cache (not part of the user configuration).
#[derive(Clone, Copy, Debug)]
pub struct JwksOptions {
    /// At most one refresh per this interval (unknown `kid`s within it are refused at once).
    pub min_refresh_interval: Duration,
    /// Bound of one JWKS fetch.
    pub fetch_timeout: Duration,
    /// Shortest interval of the periodic refresh (a smaller `Cache-Control: max-age` is raised
    /// to it).
    pub refresh_min: Duration,
    /// Longest interval of the periodic refresh (a larger `max-age` is lowered to it).
    pub refresh_max: Duration,
    /// Interval of the periodic refresh when the JWKS answer has no `max-age`.
    pub refresh_default: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(3600),
            refresh_default: Duration::from_secs(300),
        }
    }
}

/// One usable JWKS key: its decoding key and, when the JWK names one (`alg`), the only
/// algorithm it may verify.
#[derive(Clone)]
struct JwksKey {
    key: Arc<DecodingKey>,
    alg: Option<Algorithm>,
}

impl JwksKey {
    fn allows(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg)
    }
}

#[derive(Default)]
struct JwksKeys {
    by_kid: HashMap<String, JwksKey>,
    all: Vec<JwksKey>,
    /// `Cache-Control: max-age` of the answer, if any.
    max_age: Option<Duration>,
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut out = None;
    for d in cache_control.split(',') {
        let d = d.trim();
        if let Some(v) = d
            .strip_prefix("max-age=")
            .or_else(|| d.strip_prefix("MAX-AGE="))
        {
            out = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        } else if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
    }
    out
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: ArcSwap<JwksKeys>,
    /// Bumped whenever `keys` is replaced: tokens verified under older keys are verified again.
    generation: AtomicU64,
    /// Time of the last refresh attempt; the async lock makes refreshes single-flight. Only
    /// requests with an unknown `kid` ever wait on it.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    opts: JwksOptions,
}

impl Jwks {
    fn store(&self, keys: JwksKeys) {
        self.keys.store(Arc::new(keys));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn find(&self, kid: &str) -> Option<JwksKey> {
        self.keys.load().by_kid.get(kid).cloned()
    }

    /// When the next periodic refresh is due: the last answer's `max-age` within the bounds.
    fn refresh_delay(&self) -> Duration {
        self.keys
            .load()
            .max_age
            .unwrap_or(self.opts.refresh_default)
            .clamp(self.opts.refresh_min, self.opts.refresh_max)
    }

    /// The periodic refresh: withdrawn keys stop verifying without waiting for an unknown
    /// `kid`. A failed refresh keeps the old keys.
    async fn refresh_scheduled(&self) {
        let mut last = self.last_refresh.lock().await;
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => self.store(keys),
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "periodic JWKS refresh failed; keeping cached keys");
            }
        }
    }

    async fn fetch(&self) -> Result<JwksKeys, String> {
        let res = self
            .client
            .get(&self.url)
            .timeout(self.opts.fetch_timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .error_for_status()
            .map_err(|e| e.to_string())?;
        let age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let set: JwkSet = res.json().await.map_err(|e| e.to_string())?;
        let mut keys = JwksKeys {
            max_age: age,
            ..JwksKeys::default()
        };
        for jwk in &set.keys {
            // Only signature keys (`use` absent or `sig`); a key whose `alg` is not a JWS
            // algorithm (e.g. an encryption one) is not for us either.
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                continue;
            }
            let alg = match jwk.common.key_algorithm {
                Some(ka) => match Algorithm::try_from(ka) {
                    Ok(a) => Some(a),
                    Err(_) => continue,
                },
                None => None,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = JwksKey {
                key: Arc::new(key),
                alg,
            };
            if let Some(kid) = &jwk.common.key_id {
                keys.by_kid.insert(kid.clone(), key.clone());
            }
            keys.all.push(key);
        }
        Ok(keys)
    }

    /// Refreshes (rate-limited, single-flight) and looks `kid` up again. A failed refresh keeps
    /// the old keys.
    async fn refresh_for(&self, kid: Option<&str>) -> Option<()> {
        let mut last = self.last_refresh.lock().await;
        if let Some(k) = kid {
            if self.find(k).is_some() {
                return Some(()); // another request refreshed meanwhile
            }
        }
        let now = Instant::now();
        if let Some(t) = *last {
            if now.duration_since(t) < self.opts.min_refresh_interval {
                return None;
            }
        }
        *last = Some(now);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.all.len(), "JWKS refreshed");
                self.store(keys);
                Some(())
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed; keeping cached keys");
                None
            }
        }
    }
}

enum KeyRef<'a> {
    Borrowed(&'a DecodingKey),
    Shared(Arc<DecodingKey>),
}

impl Deref for KeyRef<'_> {
    type Target = DecodingKey;
    fn deref(&self) -> &DecodingKey {
        match self {
            KeyRef::Borrowed(k) => k,
            KeyRef::Shared(k) => k,
        }
    }
}

/// Verifies tokens against the configured algorithms and keys.
pub(crate) struct Verifier {
    algorithms: Vec<Algorithm>,
    hmac: Option<DecodingKey>,
    public: Option<DecodingKey>,
    jwks: Option<Jwks>,
    /// One `Validation` per algorithm family: jsonwebtoken requires every algorithm of a
    /// `Validation` to match the key's family.
    validations: Vec<(AlgorithmFamily, Validation)>,
    pub(crate) rules: ClaimRules,
    /// Tokens whose signature verified (`cache_size`); `None` when off.
    verified: Option<VerifiedTokens>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.algorithms)
            .field("hmac", &self.hmac.is_some())
            .field("public_key", &self.public.is_some())
            .field("jwks", &self.jwks.as_ref().map(|j| &j.url))
            .field("rules", &self.rules)
            .finish()
    }
}

fn load_public_key(
    path: &std::path::Path,
    algorithms: &[Algorithm],
) -> Result<Option<DecodingKey>, AuthConfigError> {
    let pem = std::fs::read(path).map_err(|source| AuthConfigError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    let families: Vec<AlgorithmFamily> = algorithms
        .iter()
        .map(|a| a.family())
        .filter(|f| *f != AlgorithmFamily::Hmac)
        .collect();
    let mut last_err = String::from("no RS*/ES*/EdDSA algorithm is configured");
    for fam in families {
        let r = match fam {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
            AlgorithmFamily::Hmac => continue,
        };
        match r {
            Ok(k) => return Ok(Some(k)),
            Err(e) => last_err = format!("not a {fam:?} public key: {e}"),
        }
    }
    Err(AuthConfigError::BadKey {
        path: path.to_owned(),
        why: last_err,
    })
}

impl Verifier {
    pub(crate) fn new(cfg: &JwtConfig, opts: JwksOptions) -> Result<Self, AuthConfigError> {
        let algorithms = cfg.parsed_algorithms();
        let hmac = match (&cfg.secret, algorithms.iter().any(|a| is_hmac(*a))) {
            (Some(s), true) => Some(DecodingKey::from_secret(s.as_bytes())),
            _ => None,
        };
        let public = match &cfg.public_key_file {
            Some(p) => load_public_key(p, &algorithms)?,
            None => None,
        };
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(Jwks {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .connect_timeout(opts.fetch_timeout)
                    .build()
                    .map_err(|e| AuthConfigError::Client(e.to_string()))?,
                keys: ArcSwap::from_pointee(JwksKeys::default()),
                last_refresh: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                opts,
            }),
            None => None,
        };
        // Signature and algorithm only; the claim rules run in `ClaimRules::check` with an
        // explicit clock.
        let mut validations: Vec<(AlgorithmFamily, Validation)> = Vec::new();
        for alg in &algorithms {
            let fam = alg.family();
            if let Some((_, v)) = validations.iter_mut().find(|(f, _)| *f == fam) {
                v.algorithms.push(*alg);
                continue;
            }
            let mut v = Validation::new(*alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.leeway = 0;
            validations.push((fam, v));
        }
        Ok(Self {
            algorithms,
            hmac,
            public,
            jwks,
            validations,
            rules: ClaimRules {
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                leeway: cfg.leeway_secs,
            },
            verified: VerifiedTokens::new(cfg.cache_size),
        })
    }

    /// First JWKS fetch; failure is logged, not fatal (keys are fetched on first use).
    pub(crate) async fn prime(&self) {
        if let Some(j) = &self.jwks {
            if let Err(e) = j.fetch().await.map(|k| j.store(k)) {
                tracing::warn!(url = %j.url, error = %e, "JWKS not reachable at start; will retry on first use");
            }
        }
    }

    /// When the periodic JWKS refresh is next due; `None` without a JWKS.
    pub(crate) fn jwks_refresh_delay(&self) -> Option<Duration> {
        self.jwks.as_ref().map(Jwks::refresh_delay)
    }

    /// The periodic JWKS refresh (nothing without a JWKS).
    pub(crate) async fn jwks_refresh_scheduled(&self) {
        if let Some(j) = &self.jwks {
            j.refresh_scheduled().await;
        }
    }

    fn decode_with(&self, token: &str, key: &DecodingKey) -> Result<TokenClaims, AuthError> {
        let validation = self
            .validations
            .iter()
            .find(|(f, _)| *f == key.family())
            .map(|(_, v)| v)
            .ok_or(AuthError::InvalidToken)?;
        match decode::<TokenClaims>(token, key, validation) {
            Ok(d) => Ok(d.claims),
            Err(e) => {
                tracing::debug!(error = ?e.kind(), "token refused");
                Err(match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                    ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
                    _ => AuthError::InvalidToken,
                })
            }
        }
    }

    /// Verifies the signature and algorithm (not the claims): returns the claims.
    pub(crate) async fn verify_signature(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        // The gateway understands no header extension: a token that marks one critical is
        // invalid (RFC 7515 §4.1.11).
        if !self.algorithms.contains(&header.alg) || header.crit.is_some() {
            return Err(AuthError::InvalidToken);
        }
        let family = header.alg.family();
        if family == AlgorithmFamily::Hmac {
            let key = self.hmac.as_ref().ok_or(AuthError::InvalidToken)?;
            return self.decode_with(token, key);
        }
        if let Some(k) = &self.public {
            if k.family() == family && (header.kid.is_none() || self.jwks.is_none()) {
                return self.decode_with(token, &KeyRef::Borrowed(k));
            }
        }
        let jwks = self.jwks.as_ref().ok_or(AuthError::InvalidToken)?;
        match header.kid.as_deref() {
            Some(kid) => {
                let key = match jwks.find(kid) {
                    Some(k) => k,
                    None => {
                        jwks.refresh_for(Some(kid)).await;
                        jwks.find(kid).ok_or(AuthError::InvalidToken)?
                    }
                };
                if key.key.family() != family || !key.allows(header.alg) {
                    return Err(AuthError::InvalidToken);
                }
                self.decode_with(token, &KeyRef::Shared(key.key))
            }
            None => {
                // No kid: try the cached keys of the token's family.
                let keys = jwks.keys.load();
                let mut out = Err(AuthError::InvalidToken);
                for k in keys
                    .all
                    .iter()
                    .filter(|k| k.key.family() == family && k.allows(header.alg))
                {
                    out = self.decode_with(token, &k.key);
                    if out.is_ok() {
                        break;
                    }
                }
                out
            }
        }
    }

    /// Signature, algorithm and claims at `now`.
    ///
    /// A token seen before under the same keys skips the signature check (see
    /// [`VerifiedTokens`]); its claims are checked at `now` all the same.
    pub(crate) async fn verify(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Arc<TokenClaims>, AuthError> {
        let keys = self
            .jwks
            .as_ref()
            .map_or(0, |j| j.generation.load(Ordering::Acquire));
        if let Some(verified) = &self.verified {
            if let Some(claims) = verified.get(token, keys) {
                if let Err(e) = self.rules.check(&claims, now) {
                    verified.remove(token);
                    return Err(e);
                }
                return Ok(claims);
            }
        }
        let claims = self.verify_signature(token).await?;
        self.rules.check(&claims, now)?;
        let claims = Arc::new(claims);
        if let Some(verified) = &self.verified {
            // `keys` was read before verifying: a refresh meanwhile makes this entry stale,
            // never the other way round.
            verified.insert(token, claims.clone(), keys);
        }
        Ok(claims)
    }

    /// The algorithm used to mint tokens: the first configured HS* one.
    pub(crate) fn mint_algorithm(&self) -> Option<Algorithm> {
        self.algorithms.iter().copied().find(|a| is_hmac(*a))
    }
}

/// Parses an algorithm name (for tests and tooling).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: Some("api-gateway".into()),
            audience: vec!["gw".into()],
            leeway: 5,
        }
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            sub: Some("u1".into()),
            exp: Some(1000),
            iss: Some("api-gateway".into()),
            aud: Some(vec!["gw".into()]),
            ..TokenClaims::default()
        }
    }

    #[test]
    fn exp_with_leeway() {
        let r = rules();
        assert_eq!(r.check(&claims(), 1000), Ok(()));
        assert_eq!(r.check(&claims(), 1004), Ok(()));
        assert_eq!(r.check(&claims(), 1005), Err(AuthError::TokenExpired));
        assert_eq!(r.check(&claims(), 1006), Err(AuthError::TokenExpired));
        let no_exp = TokenClaims {
            exp: None,
            ..claims()
        };
        assert_eq!(r.check(&no_exp, 0), Err(AuthError::InvalidToken));
    }

    fn hs_verifier(cache_size: usize) -> (Verifier, String) {
        let cfg = JwtConfig {
            secret: Some("s3cret".into()),
            user_lookup: false,
            cache_size,
            ..JwtConfig::default()
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "exp": 2_000, "iss": "api-gateway"}),
            &jsonwebtoken::EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        (Verifier::new(&cfg, JwksOptions::default()).unwrap(), token)
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_its_expiry_still_checked() {
        let (v, token) = hs_verifier(16);
        let first = v.verify(&token, 1_000).await.unwrap();
        let again = v.verify(&token, 1_500).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "second check served from memory"
        );
        assert_eq!(v.verify(&token, 2_000).await, Err(AuthError::TokenExpired));
        // Expired: forgotten, so a later check verifies (and fails) from scratch.
        assert!(v.verified.as_ref().unwrap().get(&token, 0).is_none());
        // One changed signature character is another text: verified, and refused.
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(v.verify(&forged, 1_000).await, Err(AuthError::InvalidToken));
    }

    #[tokio::test]
    async fn cache_size_zero_verifies_every_time() {
        let (v, token) = hs_verifier(0);
        let first = v.verify(&token, 1_000).await.unwrap();
        let again = v.verify(&token, 1_000).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(first, again);
    }

    #[test]
    fn refused_at_exactly_exp_without_leeway() {
        let r = ClaimRules {
            leeway: 0,
            ..rules()
        };
        assert_eq!(r.check(&claims(), 999), Ok(()));
        assert_eq!(r.check(&claims(), 1000), Err(AuthError::TokenExpired));
    }

    #[test]
    fn future_iat_is_refused() {
        let r = rules(); // leeway 5
        let iat = TokenClaims {
            iat: Some(900),
            ..claims()
        };
        assert_eq!(r.check(&iat, 895), Ok(()));
        assert_eq!(r.check(&iat, 894), Err(AuthError::InvalidToken));
        let r0 = ClaimRules {
            leeway: 0,
            ..rules()
        };
        assert_eq!(r0.check(&iat, 900), Ok(()));
        assert_eq!(r0.check(&iat, 899), Err(AuthError::InvalidToken));
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn nbf_iss_aud_sub() {
        let r = rules();
        let nbf = TokenClaims {
            nbf: Some(900),
            ..claims()
        };
        assert_eq!(r.check(&nbf, 894), Err(AuthError::InvalidToken));
        assert_eq!(r.check(&nbf, 895), Ok(()));
        let iss = TokenClaims {
            iss: Some("evil".into()),
            ..claims()
        };
        assert_eq!(r.check(&iss, 900), Err(AuthError::InvalidIssuer));
        let aud = TokenClaims {
            aud: Some(vec!["other".into()]),
            ..claims()
        };
        assert_eq!(r.check(&aud, 900), Err(AuthError::InvalidToken));
        let sub = TokenClaims {
            sub: None,
            ..claims()
        };
        assert_eq!(r.check(&sub, 900), Err(AuthError::InvalidToken));
    }
}
