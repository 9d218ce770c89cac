//! The `experimental_features.msc3861` generation of Synapse, driven through its admin API
//! with `matrix.secret` as the admin token.

use std::collections::BTreeSet;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    FieldAction, HomeserverConnection, HomeserverError, Http, MatrixUser, ProvisionRequest,
    Unavailable,
};

/// The external-ID provider under which Synapse links its users to this service.
const AUTH_PROVIDER: &str = "oauth-delegated";

/// Synapse with `experimental_features.msc3861.enabled`.
#[derive(Debug, Clone)]
pub struct SynapseLegacy {
    server_name: String,
    http: Http,
}

impl SynapseLegacy {
    /// A connection to the Synapse at `endpoint` serving `server_name`, with its admin token.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(
        server_name: impl Into<String>,
        endpoint: url::Url,
        admin_token: impl Into<String>,
    ) -> Result<Self, HomeserverError> {
        Ok(Self {
            server_name: server_name.into(),
            http: Http::new(endpoint, admin_token.into())?,
        })
    }

    fn user_url(&self, localpart: &str, rest: &[&str]) -> url::Url {
        let mxid = self.mxid(localpart);
        let mut segments = vec!["_synapse", "admin", "v2", "users", mxid.as_str()];
        segments.extend_from_slice(rest);
        self.http.url(&segments)
    }

    async fn put_user(&self, localpart: &str, body: &Value) -> Result<u16, HomeserverError> {
        let url = self.user_url(localpart, &[]);
        Ok(self.http.call(Method::PUT, url, Some(body)).await?.0)
    }

    async fn device_ids(&self, localpart: &str) -> Result<BTreeSet<String>, HomeserverError> {
        let url = self.user_url(localpart, &["devices"]);
        let (_, body) = self.http.call(Method::GET, url, None).await?;
        let devices = body
            .get("devices")
            .and_then(Value::as_array)
            .ok_or_else(|| HomeserverError::Invalid("no devices list".to_owned()))?;
        Ok(devices
            .iter()
            .filter_map(|d| d.get("device_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect())
    }
}

#[async_trait]
impl HomeserverConnection for SynapseLegacy {
    fn homeserver(&self) -> &str {
        &self.server_name
    }

    #[tracing::instrument(name = "homeserver.query_user", skip_all)]
    async fn query_user(&self, localpart: &str) -> Result<MatrixUser, HomeserverError> {
        let url = self.user_url(localpart, &[]);
        let (_, body) = self.http.call(Method::GET, url, None).await?;
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(MatrixUser {
            displayname: text("displayname"),
            avatar_url: text("avatar_url"),
            deactivated: body
                .get("deactivated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    #[tracing::instrument(name = "homeserver.provision_user", skip_all)]
    async fn provision_user(&self, request: &ProvisionRequest) -> Result<bool, HomeserverError> {
        let mut body = json!({
            "external_ids": [{ "auth_provider": AUTH_PROVIDER, "external_id": request.sub }],
        });
        // The admin API has no "unset": an empty value clears the field.
        match &request.displayname {
            FieldAction::Keep => {}
            FieldAction::Set(name) => body["displayname"] = json!(name),
            FieldAction::Unset => body["displayname"] = json!(""),
        }
        match &request.avatar_url {
            FieldAction::Keep => {}
            FieldAction::Set(url) => body["avatar_url"] = json!(url),
            FieldAction::Unset => body["avatar_url"] = json!(""),
        }
        match &request.emails {
            FieldAction::Keep => {}
            FieldAction::Set(emails) => {
                body["threepids"] = emails
                    .iter()
                    .map(|address| json!({ "medium": "email", "address": address }))
                    .collect();
            }
            FieldAction::Unset => body["threepids"] = json!([]),
        }
        if let Some(locked) = request.locked {
            body["locked"] = json!(locked);
        }
        Ok(self.put_user(&request.localpart, &body).await? == 201)
    }

    #[tracing::instrument(name = "homeserver.check_localpart", skip_all)]
    async fn check_localpart(
        &self,
        localpart: &str,
    ) -> Result<Option<Unavailable>, HomeserverError> {
        let mut url = self
            .http
            .url(&["_synapse", "admin", "v1", "username_available"]);
        url.query_pairs_mut().append_pair("username", localpart);
        match self.http.call(Method::GET, url, None).await {
            Ok((_, body)) if body.get("available").and_then(Value::as_bool) == Some(true) => {
                Ok(None)
            }
            // Synapse refuses with a 400 rather than answer `false`; anything else is odd.
            Ok(_) => Ok(Some(Unavailable {
                errcode: None,
                message: "the homeserver did not say the name is available".to_owned(),
            })),
            Err(error) => error.into_unavailable(),
        }
    }

    #[tracing::instrument(name = "homeserver.upsert_device", skip_all)]
    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), HomeserverError> {
        let url = self.user_url(localpart, &["devices"]);
        self.http
            .call(Method::POST, url, Some(&json!({ "device_id": device_id })))
            .await?;
        if let Some(name) = display_name {
            self.update_device_display_name(localpart, device_id, name)
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "homeserver.update_device_display_name", skip_all)]
    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError> {
        let url = self.user_url(localpart, &["devices", device_id]);
        let body = json!({ "display_name": display_name });
        self.http
            .call(Method::PUT, url, Some(&body))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.delete_device", skip_all)]
    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError> {
        let url = self.user_url(localpart, &["devices", device_id]);
        self.http.call(Method::DELETE, url, None).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.sync_devices", skip_all)]
    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        let present = self.device_ids(localpart).await?;
        let stale: Vec<&String> = present.difference(devices).collect();
        if !stale.is_empty() {
            let url = self.user_url(localpart, &["delete_devices"]);
            self.http
                .call(Method::POST, url, Some(&json!({ "devices": stale })))
                .await?;
        }
        for device_id in devices.difference(&present) {
            self.upsert_device(localpart, device_id, None).await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "homeserver.delete_user", skip_all)]
    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError> {
        let mxid = self.mxid(localpart);
        let url = self
            .http
            .url(&["_synapse", "admin", "v1", "deactivate", mxid.as_str()]);
        self.http
            .call(Method::POST, url, Some(&json!({ "erase": erase })))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.reactivate_user", skip_all)]
    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.put_user(localpart, &json!({ "deactivated": false }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.set_displayname", skip_all)]
    async fn set_displayname(&self, localpart: &str, name: &str) -> Result<(), HomeserverError> {
        self.put_user(localpart, &json!({ "displayname": name }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.unset_displayname", skip_all)]
    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.put_user(localpart, &json!({ "displayname": "" }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.allow_cross_signing_reset", skip_all)]
    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError> {
        let mxid = self.mxid(localpart);
        let url = self.http.url(&[
            "_synapse",
            "admin",
            "v1",
            "users",
            mxid.as_str(),
            "_allow_cross_signing_replacement_without_uia",
        ]);
        self.http
            .call(Method::POST, url, Some(&json!({})))
            .await
            .map(drop)
    }
}
