//! A homeserver that is only ever asked, never changed: for a migration period or a dry run.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::{HomeserverConnection, HomeserverError, MatrixUser, ProvisionRequest, Unavailable};

/// Wraps a connection; queries pass through, every change is logged and skipped.
#[derive(Debug, Clone)]
pub struct ReadOnly<C>(pub C);

fn skipped(what: &str) {
    tracing::info!(what, "homeserver is read-only: change skipped");
}

#[async_trait]
impl<C: HomeserverConnection> HomeserverConnection for ReadOnly<C> {
    fn homeserver(&self) -> &str {
        self.0.homeserver()
    }

    async fn query_user(&self, localpart: &str) -> Result<MatrixUser, HomeserverError> {
        self.0.query_user(localpart).await
    }

    async fn provision_user(&self, _request: &ProvisionRequest) -> Result<bool, HomeserverError> {
        skipped("provision_user");
        Ok(false)
    }

    async fn check_localpart(
        &self,
        localpart: &str,
    ) -> Result<Option<Unavailable>, HomeserverError> {
        self.0.check_localpart(localpart).await
    }

    async fn upsert_device(
        &self,
        _localpart: &str,
        _device_id: &str,
        _display_name: Option<&str>,
    ) -> Result<(), HomeserverError> {
        skipped("upsert_device");
        Ok(())
    }

    async fn update_device_display_name(
        &self,
        _localpart: &str,
        _device_id: &str,
        _display_name: &str,
    ) -> Result<(), HomeserverError> {
        skipped("update_device_display_name");
        Ok(())
    }

    async fn delete_device(
        &self,
        _localpart: &str,
        _device_id: &str,
    ) -> Result<(), HomeserverError> {
        skipped("delete_device");
        Ok(())
    }

    async fn sync_devices(
        &self,
        _localpart: &str,
        _devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        skipped("sync_devices");
        Ok(())
    }

    async fn delete_user(&self, _localpart: &str, _erase: bool) -> Result<(), HomeserverError> {
        skipped("delete_user");
        Ok(())
    }

    async fn reactivate_user(&self, _localpart: &str) -> Result<(), HomeserverError> {
        skipped("reactivate_user");
        Ok(())
    }

    async fn set_displayname(&self, _localpart: &str, _name: &str) -> Result<(), HomeserverError> {
        skipped("set_displayname");
        Ok(())
    }

    async fn unset_displayname(&self, _localpart: &str) -> Result<(), HomeserverError> {
        skipped("unset_displayname");
        Ok(())
    }

    async fn allow_cross_signing_reset(&self, _localpart: &str) -> Result<(), HomeserverError> {
        skipped("allow_cross_signing_reset");
        Ok(())
    }
}
