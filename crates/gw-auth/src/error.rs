//! Errors: [`AuthError`] (an HTTP answer), [`StoreError`], [`AuthConfigError`], [`AdminError`].

use http::StatusCode;

/// Why a request was refused; each variant is exactly one SPEC §3 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no `Authorization` header.
    #[error("Missing authorization header")]
    MissingAuthorization,
    /// 401: `Authorization` is not `Bearer <token>`.
    #[error("Invalid authorization header format")]
    InvalidAuthorizationFormat,
    /// 401: malformed token, bad signature, refused algorithm, unknown key, bad `nbf`/`aud`.
    #[error("Invalid token")]
    InvalidToken,
    /// 401: `exp` (plus leeway) is past.
    #[error("Token expired")]
    TokenExpired,
    /// 401: `iss` is not the configured issuer.
    #[error("Invalid issuer")]
    InvalidIssuer,
    /// 401: `blacklist:{jti}` exists.
    #[error("Token has been revoked")]
    TokenRevoked,
    /// 401: `user:{sub}` does not exist (with `user_lookup`).
    #[error("User not found")]
    UserNotFound,
    /// 401: the user's status is not `active`.
    #[error("User account is not active")]
    UserInactive,
    /// 401: no `X-API-Key` header.
    #[error("Missing API key")]
    MissingApiKey,
    /// 401: no such key.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// 401: the key's status is not `active`.
    #[error("API key is not active")]
    ApiKeyInactive,
    /// 401: the key's `expires_at` is past.
    #[error("API key has expired")]
    ApiKeyExpired,
    /// 403: role, permission or ownership check failed.
    #[error("Access denied")]
    AccessDenied,
    /// 403: `require_https` and the client used plain HTTP.
    #[error("HTTPS required")]
    HttpsRequired,
    /// 503: the store did not answer (down, timeout, corrupt record).
    #[error("Service temporarily unavailable")]
    StoreUnavailable,
}

/// `WWW-Authenticate` challenge for bearer-token errors without an `error` code.
pub(crate) const BEARER_CHALLENGE: &str = "Bearer realm=\"api-gateway\"";
const BEARER_INVALID_REQUEST: &str = "Bearer realm=\"api-gateway\", error=\"invalid_request\"";
const BEARER_INVALID_TOKEN: &str = "Bearer realm=\"api-gateway\", error=\"invalid_token\"";
/// `WWW-Authenticate` challenge for API-key errors.
pub(crate) const API_KEY_CHALLENGE: &str = "ApiKey realm=\"api-gateway\"";

impl AuthError {
    /// The `WWW-Authenticate` value of a 401 (`None` for 403/503).
    pub fn challenge(&self) -> Option<&'static str> {
        use AuthError::*;
        match self {
            MissingAuthorization => Some(BEARER_CHALLENGE),
            InvalidAuthorizationFormat => Some(BEARER_INVALID_REQUEST),
            InvalidToken | TokenExpired | InvalidIssuer | TokenRevoked | UserNotFound
            | UserInactive => Some(BEARER_INVALID_TOKEN),
            MissingApiKey | InvalidApiKey | ApiKeyInactive | ApiKeyExpired => {
                Some(API_KEY_CHALLENGE)
            }
            AccessDenied | HttpsRequired | StoreUnavailable => None,
        }
    }
}

impl gw_core::HttpError for AuthError {
    fn status(&self) -> StatusCode {
        use AuthError::*;
        match self {
            AccessDenied | HttpsRequired => StatusCode::FORBIDDEN,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(&self) -> &str {
        use AuthError::*;
        match self {
            MissingAuthorization => "Missing authorization header",
            InvalidAuthorizationFormat => "Invalid authorization header format",
            InvalidToken => "Invalid token",
            TokenExpired => "Token expired",
            InvalidIssuer => "Invalid issuer",
            TokenRevoked => "Token has been revoked",
            UserNotFound => "User not found",
            UserInactive => "User account is not active",
            MissingApiKey => "Missing API key",
            InvalidApiKey => "Invalid API key",
            ApiKeyInactive => "API key is not active",
            ApiKeyExpired => "API key has expired",
            AccessDenied => "Access denied",
            HttpsRequired => "HTTPS required",
            StoreUnavailable => "Service temporarily unavailable",
        }
    }
}

/// The store failed (Redis down, timeout, undecodable record).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within the store timeout.
    #[error("store timed out")]
    Timeout,
    /// Connection or command failed.
    #[error("store error: {0}")]
    Backend(String),
    /// A record could not be decoded.
    #[error("corrupt record at {key}: {source}")]
    Corrupt {
        /// The key (without prefix).
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "auth store unavailable");
        AuthError::StoreUnavailable
    }
}

/// [`Authenticator::new`](crate::Authenticator::new) failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// [`JwtConfig::validate`](crate::JwtConfig::validate) found problems.
    #[error("invalid auth.jwt configuration: {}", .0.iter().map(|(p, w)| format!("{p}: {w}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// The public key file could not be read.
    #[error("cannot read public_key_file {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The public key file is not a PEM key of a configured algorithm family.
    #[error("public_key_file {path}: {why}")]
    BadKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        why: String,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("JWKS client: {0}")]
    Client(String),
}

/// An admin-facing operation failed. gw-admin maps these to its answers.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Minting needs an HS* algorithm with a secret.
    #[error("token minting needs an HS256/384/512 algorithm and a secret")]
    MintingUnavailable,
    /// The token to revoke is malformed or its signature does not verify (400).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A field of the input is invalid (400).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing or randomness failed (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// The HTTP status an admin API should answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::InvalidToken(_) | AdminError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::MintingUnavailable | AdminError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}
