//! Errors: [`AuthError`] (an HTTP answer), [`StoreError`], [`AuthConfigError`], [`AdminError`].

use gw_core::{messages, ConfigProblem};
use http::StatusCode;

/// Why a request was refused; each variant is exactly one answer, its `Display` the
/// answer's message (from [`gw_core::messages`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no `Authorization` header.
    #[error("{}", messages::MISSING_AUTHORIZATION)]
    MissingAuthorization,
    /// 401: `Authorization` is not `Bearer <token>`.
    #[error("{}", messages::INVALID_AUTHORIZATION_FORMAT)]
    InvalidAuthorizationFormat,
    /// 401: malformed token, bad signature, refused algorithm, unknown key, bad `nbf`/`aud`.
    #[error("{}", messages::INVALID_TOKEN)]
    InvalidToken,
    /// 401: `exp` (plus leeway) is past.
    #[error("{}", messages::TOKEN_EXPIRED)]
    TokenExpired,
    /// 401: `iss` is not the configured issuer.
    #[error("{}", messages::INVALID_ISSUER)]
    InvalidIssuer,
    /// 401: `blacklist:{jti}` exists.
    #[error("{}", messages::TOKEN_REVOKED)]
    TokenRevoked,
    /// 401: `user:{sub}` does not exist (with `user_lookup`).
    #[error("{}", messages::USER_NOT_FOUND)]
    UserNotFound,
    /// 401: the user's status is not `active`.
    #[error("{}", messages::USER_NOT_ACTIVE)]
    UserInactive,
    /// 401: no `X-API-Key` header.
    #[error("{}", messages::MISSING_API_KEY)]
    MissingApiKey,
    /// 401: no such key.
    #[error("{}", messages::INVALID_API_KEY)]
    InvalidApiKey,
    /// 401: the key's status is not `active`.
    #[error("{}", messages::API_KEY_NOT_ACTIVE)]
    ApiKeyInactive,
    /// 401: the key's `expires_at` is past.
    #[error("{}", messages::API_KEY_EXPIRED)]
    ApiKeyExpired,
    /// 403: role, permission or ownership check failed.
    #[error("{}", messages::ACCESS_DENIED)]
    AccessDenied,
    /// 403: `require_https` and the client used plain HTTP.
    #[error("{}", messages::HTTPS_REQUIRED)]
    HttpsRequired,
    /// 503: the store did not answer (down, timeout, corrupt record).
    #[error("{}", messages::SERVICE_UNAVAILABLE)]
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
            MissingAuthorization => messages::MISSING_AUTHORIZATION,
            InvalidAuthorizationFormat => messages::INVALID_AUTHORIZATION_FORMAT,
            InvalidToken => messages::INVALID_TOKEN,
            TokenExpired => messages::TOKEN_EXPIRED,
            InvalidIssuer => messages::INVALID_ISSUER,
            TokenRevoked => messages::TOKEN_REVOKED,
            UserNotFound => messages::USER_NOT_FOUND,
            UserInactive => messages::USER_NOT_ACTIVE,
            MissingApiKey => messages::MISSING_API_KEY,
            InvalidApiKey => messages::INVALID_API_KEY,
            ApiKeyInactive => messages::API_KEY_NOT_ACTIVE,
            ApiKeyExpired => messages::API_KEY_EXPIRED,
            AccessDenied => messages::ACCESS_DENIED,
            HttpsRequired => messages::HTTPS_REQUIRED,
            StoreUnavailable => messages::SERVICE_UNAVAILABLE,
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
    #[error("invalid auth.jwt configuration: {}", ConfigProblem::join(.0))]
    Invalid(Vec<ConfigProblem>),
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
