//! What the engine needs from storage, one small trait per concern, so that a service
//! backing the engine with its own tables implements only what the operations it calls
//! need. Every `mas_storage::Repository` is each of them already, so `mas-storage-sql`
//! (and any full unit of work) serves them as it is.
//!
//! Only the clients' concern is split out so far; the other operations still take a
//! whole `Repository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::Client;
use mas_storage::repository::ClientParams;
use mas_storage::{Clock, Repository, Rng, StorageError};
use ulid::Ulid;

/// The clients: what authorization requests, client authentication and dynamic client
/// registration read and write.
#[async_trait]
pub trait ClientStore: Send {
    /// The client with this ID.
    async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError>;

    /// Stores a client that registered itself (RFC 7591), under a new ID of the store's
    /// choosing: a ULID no other client has, made from `rng` at `clock`'s now.
    async fn register_client(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError>;

    /// Remembers a client assertion's `jti` until `expires_at`; `false` when the client
    /// used it before (a replay). Of two concurrent uses, at most one gets `true`; and
    /// the record must outlive the request, so the caller saves it at once, before the
    /// rest of the request can fail (the service authenticates clients in a unit of work
    /// of its own). Records past `expires_at` may be pruned.
    async fn record_client_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
}

#[async_trait]
impl<R: Repository + ?Sized> ClientStore for R {
    async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
        self.client().lookup(id).await
    }

    async fn register_client(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError> {
        self.client().add_dynamic(rng, clock, params).await
    }

    async fn record_client_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        self.client()
            .record_assertion(rng, clock, client_id, jti, expires_at)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use mas_data_model::ClientKind;
    use mas_storage::{Encrypter, SystemClock};
    use serde_json::json;

    use super::*;
    use crate::client_auth::ClientCredentials;
    use crate::params::Params;

    /// A service's own table of clients: nothing but what `ClientStore` asks for.
    #[derive(Default)]
    struct Clients {
        clients: Vec<Client>,
        assertions: HashSet<(Ulid, String)>,
    }

    #[async_trait]
    impl ClientStore for Clients {
        async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
            Ok(self.clients.iter().find(|c| c.id == id).cloned())
        }

        async fn register_client(
            &mut self,
            rng: Rng<'_>,
            clock: &dyn Clock,
            params: ClientParams,
        ) -> Result<Client, StorageError> {
            let millis = u64::try_from(clock.now().timestamp_millis()).unwrap_or_default();
            let id = Ulid::from_parts(millis, u128::from(rng.next_u64()));
            let client = params.into_client(id, ClientKind::Dynamic, clock.now());
            self.clients.push(client.clone());
            Ok(client)
        }

        async fn record_client_assertion(
            &mut self,
            _rng: Rng<'_>,
            _clock: &dyn Clock,
            client_id: Ulid,
            jti: &str,
            _expires_at: DateTime<Utc>,
        ) -> Result<bool, StorageError> {
            Ok(self.assertions.insert((client_id, jti.to_owned())))
        }
    }

    #[tokio::test]
    #[allow(clippy::too_many_lines)] // One story: register, authenticate, validate.
    async fn a_service_with_only_a_client_store_registers_and_authenticates_clients() {
        let mut store = Clients::default();
        let encrypter = Encrypter::new(&[7; 32]);
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let metadata = json!({
            "client_name": "billing",
            "client_uri": "https://billing.example.com/",
            "token_endpoint_auth_method": "client_secret_post",
            "redirect_uris": ["https://billing.example.com/callback"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        });
        let (client, response) = crate::registration::register(
            &mut store,
            &mut rng,
            &SystemClock,
            &encrypter,
            &[],
            crate::policy::ClientRegistrationRules::default(),
            &metadata,
        )
        .await
        .unwrap();
        let secret = response["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(store.clients.len(), 1);

        let authenticate = async |store: &mut Clients, secret: &str| {
            let body = format!("client_id={}&client_secret={secret}", client.id);
            let form = Params::parse(body.as_bytes()).unwrap();
            let credentials = ClientCredentials::from_request(None, &form).unwrap();
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let audiences = ["https://auth.example.com/oauth2/token"];
            credentials
                .authenticate(store, &mut rng, &SystemClock, &encrypter, &audiences, None)
                .await
        };
        let found = authenticate(&mut store, &secret).await.unwrap();
        assert_eq!(found.id, client.id);
        let refused = authenticate(&mut store, "not the secret")
            .await
            .unwrap_err();
        assert_eq!(refused.code.as_str(), "invalid_client");

        // A client authenticating with a signed assertion: its `jti` works once.
        let jwt_metadata = json!({
            "client_uri": "https://billing.example.com/",
            "token_endpoint_auth_method": "client_secret_jwt",
            "redirect_uris": ["https://billing.example.com/callback"],
        });
        let rules = crate::policy::ClientRegistrationRules::default();
        let register = crate::registration::register(
            &mut store,
            &mut rng,
            &SystemClock,
            &encrypter,
            &[],
            rules,
            &jwt_metadata,
        );
        let (signer, response) = register.await.unwrap();
        let key = response["client_secret"].as_str().unwrap().as_bytes();
        let claims = json!({
            "iss": signer.id.to_string(), "sub": signer.id.to_string(),
            "aud": "https://auth.example.com/oauth2/token",
            "exp": chrono::Utc::now().timestamp() + 60, "jti": "once",
        });
        let assertion = crate::jose::sign_hmac("HS256", key, &claims).unwrap();
        let body = format!(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion={assertion}"
        );
        let form = Params::parse(body.as_bytes()).unwrap();
        let credentials = ClientCredentials::from_request(None, &form).unwrap();
        let audiences = ["https://auth.example.com/oauth2/token"];
        for (attempt, accepted) in [(1, true), (2, false)] {
            let found = credentials
                .authenticate(
                    &mut store,
                    &mut rng,
                    &SystemClock,
                    &encrypter,
                    &audiences,
                    None,
                )
                .await;
            assert_eq!(found.is_ok(), accepted, "attempt {attempt}: {found:?}");
        }
        assert_eq!(store.assertions.len(), 1);

        // An authorization request of that client, checked against the same store.
        let query = format!(
            "client_id={}&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fbilling.example.com%2Fcallback\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            client.id
        );
        let issuer = url::Url::parse("https://auth.example.com/").unwrap();
        let params = Params::parse(query.as_bytes()).unwrap();
        let request = crate::authorize::validate(&mut store, &issuer, &params)
            .await
            .unwrap();
        assert_eq!(request.client.id, client.id);
        let unknown =
            Params::parse(b"client_id=01J00000000000000000000000&response_type=code").unwrap();
        assert!(
            crate::authorize::validate(&mut store, &issuer, &unknown)
                .await
                .is_err()
        );
    }
}
