//! The OAuth 2.0 / OpenID Connect engine: signing keys and JWKS, JSON Web Signatures,
//! discovery metadata. It knows no web framework and no database: a Rust service can
//! embed it with its own storage and HTTP stack.

pub mod authorize;
pub mod client_auth;
pub mod device;
pub mod error;
pub mod grants;
pub mod jose;
pub mod keys;
pub mod metadata;
pub mod params;
pub mod passwords;
pub mod registration;
pub mod tokens;

pub use self::error::{ErrorCode, OAuthError};
pub use self::keys::{KeyError, KeyStore, SigningAlgorithm};
pub use self::metadata::{Endpoints, ProviderMetadata};
