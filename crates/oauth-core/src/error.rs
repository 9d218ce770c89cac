//! OAuth 2.0 errors (RFC 6749 §5.2 and extensions), with the HTTP status each maps to.

use std::fmt;

use mas_storage::StorageError;

/// The `error` codes this provider answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A parameter is missing, repeated, malformed or not allowed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (code, refresh token, device code) is invalid, expired or used.
    InvalidGrant,
    /// The client may not use this grant or endpoint.
    UnauthorizedClient,
    /// The grant type is unknown or not offered.
    UnsupportedGrantType,
    /// The scope is malformed or not allowed.
    InvalidScope,
    /// The user or the server refused.
    AccessDenied,
    /// Only `response_type=code` exists here.
    UnsupportedResponseType,
    /// `request` and `request_uri` are not supported.
    RequestNotSupported,
    /// `prompt=none`, but the user must log in.
    LoginRequired,
    /// `prompt=none`, but the user must consent.
    ConsentRequired,
    /// Device flow: the user has not answered yet.
    AuthorizationPending,
    /// Device flow: the device polls faster than its interval.
    SlowDown,
    /// Device flow: the device code expired.
    ExpiredToken,
    /// The token type cannot be revoked here.
    UnsupportedTokenType,
    /// Registration: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// Registration: some metadata is not acceptable.
    InvalidClientMetadata,
    /// Something broke on our side.
    ServerError,
    /// The database is away; try again shortly.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::RequestNotSupported => "request_not_supported",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status of a JSON error response with this code.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::AccessDenied => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error to send to the client: a code and a description meant for developers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The `error` member.
    pub code: ErrorCode,
    /// The `error_description` member. Never holds a secret or database text.
    pub description: String,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` (always the same words: nothing to learn about which part failed).
    #[must_use]
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }
}

impl From<StorageError> for OAuthError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; try again shortly",
            ),
            other => {
                tracing::error!(error = %other, "storage error");
                Self::new(ErrorCode::ServerError, "internal error")
            }
        }
    }
}
