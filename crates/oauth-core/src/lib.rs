//! The OAuth 2.0 / OpenID Connect engine: authorization requests, grants, client
//! authentication, tokens, introspection, revocation, registration, signing keys and
//! discovery. It knows no web framework and no database: a Rust service embeds it with
//! its own HTTP stack and any implementation of the `mas-storage` traits.
//!
//! # Embedding
//!
//! A service that wants machine-to-machine tokens: it registers a client, issues a token
//! with the `client_credentials` grant, and answers for it the way a resource server's
//! introspection endpoint would. Storage here is an SQLite database held in memory; the
//! web framework is whatever the service already uses (the form parameters come in as
//! [`params::Params`], the answers go out as serde values).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mas_oauth_core::client_auth::ClientCredentials;
//! use mas_oauth_core::params::Params;
//! use mas_oauth_core::tokens;
//! use mas_storage::repository::ClientParams;
//! use mas_storage::{Encrypter, RepositoryFactory, SystemClock};
//!
//! // Storage: any `RepositoryFactory`; this one keeps everything in memory.
//! let storage = mas_storage_sql::SqlRepositoryFactory::connect(&mas_storage_sql::PoolOptions {
//!     uri: "sqlite::memory:".to_owned(),
//!     max_connections: 1, // one connection: an in-memory database is per connection
//!     min_connections: 1,
//!     connect_timeout: std::time::Duration::from_secs(5),
//!     idle_timeout: None,
//!     max_lifetime: None,
//! })
//! .await?;
//! storage.migrate().await?;
//! let encrypter = Encrypter::new(&[42; 32]);
//! let (clock, mut rng) = (SystemClock, rand::make_rng::<rand::rngs::StdRng>());
//!
//! // A confidential client, registered by the service itself.
//! let sealed = encrypter.encrypt(&mut rng, b"s3cret");
//! let mut repo = storage.begin().await?;
//! let client = repo
//!     .client()
//!     .add_dynamic(&mut rng, &clock, ClientParams {
//!         auth_method: mas_data_model::ClientAuthMethod::ClientSecretPost,
//!         encrypted_secret: Some(sealed),
//!         jwks: None,
//!         jwks_uri: None,
//!         redirect_uris: Vec::new(),
//!         grant_types: vec!["client_credentials".to_owned()],
//!         name: Some("billing".to_owned()),
//!         client_uri: None,
//!         logo_uri: None,
//!         policy_uri: None,
//!         tos_uri: None,
//!         application_type: None,
//!         contacts: Vec::new(),
//!         metadata: None,
//!     })
//!     .await?;
//! repo.save().await?;
//!
//! // The token endpoint: the form as the web framework received it.
//! let body = format!("grant_type=client_credentials&client_id={}&client_secret=s3cret&scope=urn:mas:graphql:*", client.id);
//! let form = Params::parse(body.as_bytes())?;
//! let credentials = ClientCredentials::from_request(None, &form)?;
//! let mut repo = storage.begin().await?;
//! let client = credentials
//!     .authenticate(repo.as_mut(), &mut rng, &clock, &encrypter, &["https://auth.example.com/oauth2/token"], None)
//!     .await?;
//! let ttl = chrono::Duration::minutes(5);
//! // `false`: this client is not in `policy.data.admin_clients`.
//! let answer = tokens::client_credentials(repo.as_mut(), &mut rng, &clock, &client, form.get("scope")?, ttl, false).await?;
//! repo.save().await?;
//! assert!(answer.access_token.starts_with("mat_"));
//!
//! // A resource server asks about the token; the policy says who may hold admin scopes.
//! let policy = mas_oauth_core::policy::Policy::default();
//! let mut repo = storage.reader().await?;
//! let seen = tokens::introspect(repo.as_mut(), &clock, &policy, &answer.access_token, None, tokens::Asker::Client(client.id)).await?;
//! assert!(seen.active);
//! assert_eq!(seen.scope.as_deref(), Some("urn:mas:graphql:*"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)] // Embedders read this crate's API docs on their own.

pub mod authorize;
pub mod client_auth;
pub mod device;
pub mod error;
pub mod grants;
pub mod introspection_cache;
pub mod jose;
pub mod keys;
pub mod metadata;
pub mod params;
pub mod passwords;
pub mod policy;
pub mod registration;
pub mod resource;
pub mod tokens;

pub use self::error::{ErrorCode, OAuthError};
pub use self::introspection_cache::{
    HomeserverAnswer, IntrospectionCache, introspect_for_homeserver,
};
pub use self::keys::{KeyError, KeyStore, SigningAlgorithm, decrypt_pkcs8_pem};
pub use self::metadata::{Endpoints, ProviderMetadata};
