//! Synapse 1.136 and later: the `/_synapse/mas/*` API, authenticated by the shared secret.

use std::collections::BTreeSet;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    FieldAction, HomeserverConnection, HomeserverError, Http, MatrixUser, ProvisionRequest,
    Unavailable,
};

/// Synapse with `matrix_authentication_service.enabled`.
#[derive(Debug, Clone)]
pub struct SynapseModern {
    server_name: String,
    http: Http,
}

impl SynapseModern {
    /// A connection to the Synapse at `endpoint` serving `server_name`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(
        server_name: impl Into<String>,
        endpoint: url::Url,
        secret: impl Into<String>,
    ) -> Result<Self, HomeserverError> {
        Ok(Self {
            server_name: server_name.into(),
            http: Http::new(endpoint, secret.into())?,
        })
    }

    async fn post(&self, name: &str, body: &Value) -> Result<u16, HomeserverError> {
        let url = self.http.url(&["_synapse", "mas", name]);
        Ok(self.http.call(Method::POST, url, Some(body)).await?.0)
    }

    fn get_url(&self, name: &str, localpart: &str) -> url::Url {
        let mut url = self.http.url(&["_synapse", "mas", name]);
        url.query_pairs_mut().append_pair("localpart", localpart);
        url
    }
}

#[async_trait]
impl HomeserverConnection for SynapseModern {
    fn homeserver(&self) -> &str {
        &self.server_name
    }

    #[tracing::instrument(name = "homeserver.query_user", skip_all)]
    async fn query_user(&self, localpart: &str) -> Result<MatrixUser, HomeserverError> {
        let url = self.get_url("query_user", localpart);
        let (_, body) = self.http.call(Method::GET, url, None).await?;
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(MatrixUser {
            displayname: text("display_name"),
            avatar_url: text("avatar_url"),
            deactivated: body
                .get("is_deactivated")
                .and_then(Value::as_bool)
                .ok_or_else(|| HomeserverError::Invalid("no is_deactivated".to_owned()))?,
        })
    }

    #[tracing::instrument(name = "homeserver.provision_user", skip_all)]
    async fn provision_user(&self, request: &ProvisionRequest) -> Result<bool, HomeserverError> {
        let mut body = json!({ "localpart": request.localpart });
        match &request.displayname {
            FieldAction::Keep => {}
            FieldAction::Set(name) => body["set_displayname"] = json!(name),
            FieldAction::Unset => body["unset_displayname"] = json!(true),
        }
        match &request.avatar_url {
            FieldAction::Keep => {}
            FieldAction::Set(url) => body["set_avatar_url"] = json!(url),
            FieldAction::Unset => body["unset_avatar_url"] = json!(true),
        }
        match &request.emails {
            FieldAction::Keep => {}
            FieldAction::Set(emails) => body["set_emails"] = json!(emails),
            FieldAction::Unset => body["unset_emails"] = json!(true),
        }
        if let Some(locked) = request.locked {
            body["locked"] = json!(locked);
        }
        Ok(self.post("provision_user", &body).await? == 201)
    }

    #[tracing::instrument(name = "homeserver.check_localpart", skip_all)]
    async fn check_localpart(
        &self,
        localpart: &str,
    ) -> Result<Option<Unavailable>, HomeserverError> {
        let url = self.get_url("is_localpart_available", localpart);
        match self.http.call(Method::GET, url, None).await {
            Ok(_) => Ok(None),
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
        let mut body = json!({ "localpart": localpart, "device_id": device_id });
        if let Some(name) = display_name {
            body["display_name"] = json!(name);
        }
        self.post("upsert_device", &body).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.update_device_display_name", skip_all)]
    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError> {
        let body =
            json!({ "localpart": localpart, "device_id": device_id, "display_name": display_name });
        self.post("update_device_display_name", &body)
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.delete_device", skip_all)]
    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError> {
        let body = json!({ "localpart": localpart, "device_id": device_id });
        self.post("delete_device", &body).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.sync_devices", skip_all)]
    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        let body = json!({ "localpart": localpart, "devices": devices });
        self.post("sync_devices", &body).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.delete_user", skip_all)]
    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError> {
        let body = json!({ "localpart": localpart, "erase": erase });
        self.post("delete_user", &body).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.reactivate_user", skip_all)]
    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post("reactivate_user", &json!({ "localpart": localpart }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.set_displayname", skip_all)]
    async fn set_displayname(&self, localpart: &str, name: &str) -> Result<(), HomeserverError> {
        let body = json!({ "localpart": localpart, "displayname": name });
        self.post("set_displayname", &body).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.unset_displayname", skip_all)]
    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post("unset_displayname", &json!({ "localpart": localpart }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "homeserver.allow_cross_signing_reset", skip_all)]
    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post(
            "allow_cross_signing_reset",
            &json!({ "localpart": localpart }),
        )
        .await
        .map(drop)
    }
}
