#![doc = include_str!("../README.md")]
#![deny(missing_docs)] // Embedders read this crate's API docs on their own.

pub mod authorize;
pub mod client_auth;
pub mod device;
pub mod error;
pub mod grants;
pub mod introspection_cache;
pub mod jose;
pub mod keys;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metadata;
pub mod params;
pub mod passwords;
pub mod policy;
pub mod registration;
pub mod resource;
pub mod store;
pub mod tokens;

pub use self::error::{ErrorCode, OAuthError};
pub use self::introspection_cache::{
    HomeserverAnswer, IntrospectionCache, introspect_for_homeserver,
};
pub use self::keys::{KeyError, KeyStore, SigningAlgorithm, decrypt_pkcs8_pem};
pub use self::metadata::{Endpoints, ProviderMetadata};
