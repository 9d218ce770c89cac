//! An in-memory homeserver for tests: it keeps users and devices, and can be switched
//! "down" to play an outage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::{
    FieldAction, HomeserverConnection, HomeserverError, MatrixUser, ProvisionRequest, Unavailable,
};

/// One user as the mock homeserver holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockUser {
    /// The `sub` it was provisioned with.
    pub sub: String,
    /// The display name.
    pub displayname: Option<String>,
    /// The avatar URL.
    pub avatar_url: Option<String>,
    /// The email addresses.
    pub emails: Vec<String>,
    /// Whether it is locked.
    pub locked: bool,
    /// Whether it is deactivated.
    pub deactivated: bool,
    /// Its devices, by ID, with their display names.
    pub devices: BTreeMap<String, Option<String>>,
    /// Whether a cross-signing reset is allowed.
    pub cross_signing_reset_allowed: bool,
}

/// A homeserver in memory.
#[derive(Debug, Default)]
pub struct MockHomeserver {
    server_name: String,
    users: Mutex<BTreeMap<String, MockUser>>,
    reserved: Mutex<BTreeSet<String>>,
    down: AtomicBool,
}

impl MockHomeserver {
    /// An empty homeserver serving `server_name`.
    #[must_use]
    pub fn new(server_name: impl Into<String>) -> Self {
        Self {
            server_name: server_name.into(),
            ..Self::default()
        }
    }

    /// While `down`, every call fails as unreachable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes a localpart unavailable, as an appservice namespace would.
    pub fn reserve(&self, localpart: &str) {
        lock(&self.reserved).insert(localpart.to_owned());
    }

    /// The user as held now.
    #[must_use]
    pub fn user(&self, localpart: &str) -> Option<MockUser> {
        lock(&self.users).get(localpart).cloned()
    }

    fn check_up(&self) -> Result<(), HomeserverError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(HomeserverError::Unreachable(
                "the mock homeserver is down".to_owned(),
            ));
        }
        Ok(())
    }

    fn with_user<T>(
        &self,
        localpart: &str,
        f: impl FnOnce(&mut MockUser) -> T,
    ) -> Result<T, HomeserverError> {
        self.check_up()?;
        lock(&self.users)
            .get_mut(localpart)
            .map(f)
            .ok_or(HomeserverError::UserNotFound)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn apply<T: Clone>(field: &mut Option<T>, action: &FieldAction<T>) {
    match action {
        FieldAction::Keep => {}
        FieldAction::Set(value) => *field = Some(value.clone()),
        FieldAction::Unset => *field = None,
    }
}

#[async_trait]
impl HomeserverConnection for MockHomeserver {
    fn homeserver(&self) -> &str {
        &self.server_name
    }

    async fn query_user(&self, localpart: &str) -> Result<MatrixUser, HomeserverError> {
        self.with_user(localpart, |user| MatrixUser {
            displayname: user.displayname.clone(),
            avatar_url: user.avatar_url.clone(),
            deactivated: user.deactivated,
        })
    }

    async fn provision_user(&self, request: &ProvisionRequest) -> Result<bool, HomeserverError> {
        self.check_up()?;
        let mut users = lock(&self.users);
        let created = !users.contains_key(&request.localpart);
        let user = users.entry(request.localpart.clone()).or_default();
        user.sub.clone_from(&request.sub);
        apply(&mut user.displayname, &request.displayname);
        apply(&mut user.avatar_url, &request.avatar_url);
        match &request.emails {
            FieldAction::Keep => {}
            FieldAction::Set(emails) => user.emails.clone_from(emails),
            FieldAction::Unset => user.emails.clear(),
        }
        if let Some(locked) = request.locked {
            user.locked = locked;
        }
        Ok(created)
    }

    async fn check_localpart(
        &self,
        localpart: &str,
    ) -> Result<Option<Unavailable>, HomeserverError> {
        self.check_up()?;
        // Synapse's codes and words for the two cases the mock plays.
        let refusal = |errcode: &str, message: &str| {
            Some(Unavailable {
                errcode: Some(errcode.to_owned()),
                message: message.to_owned(),
            })
        };
        Ok(if lock(&self.users).contains_key(localpart) {
            refusal("M_USER_IN_USE", "User ID already taken.")
        } else if lock(&self.reserved).contains(localpart) {
            refusal("M_EXCLUSIVE", "This user ID is reserved.")
        } else {
            None
        })
    }

    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| {
            let name = user.devices.entry(device_id.to_owned()).or_default();
            if let Some(display_name) = display_name {
                *name = Some(display_name.to_owned());
            }
        })
    }

    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| {
            if let Some(name) = user.devices.get_mut(device_id) {
                *name = Some(display_name.to_owned());
            }
        })
    }

    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| {
            user.devices.remove(device_id);
        })
    }

    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| {
            user.devices.retain(|id, _| devices.contains(id));
            for id in devices {
                user.devices.entry(id.clone()).or_default();
            }
        })
    }

    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| {
            user.deactivated = true;
            user.devices.clear();
            if erase {
                user.displayname = None;
                user.avatar_url = None;
            }
        })
    }

    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| user.deactivated = false)
    }

    async fn set_displayname(&self, localpart: &str, name: &str) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| user.displayname = Some(name.to_owned()))
    }

    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| user.displayname = None)
    }

    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.with_user(localpart, |user| user.cross_signing_reset_allowed = true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn provisioning_is_an_upsert_and_devices_sync() {
        let hs = MockHomeserver::new("example.com");
        assert_eq!(hs.mxid("alice"), "@alice:example.com");
        let mut request = ProvisionRequest::new("alice", "01SUB");
        request.displayname = FieldAction::Set("Alice".to_owned());
        assert!(hs.provision_user(&request).await.unwrap(), "created");
        assert!(!hs.provision_user(&request).await.unwrap(), "then updated");
        assert!(!hs.is_localpart_available("alice").await.unwrap());
        let taken = hs.check_localpart("alice").await.unwrap().unwrap();
        assert_eq!(taken.to_string(), "User ID already taken. (M_USER_IN_USE)");
        hs.reserve("bridge");
        let reserved = hs.check_localpart("bridge").await.unwrap().unwrap();
        assert_eq!(reserved.errcode.as_deref(), Some("M_EXCLUSIVE"));
        assert_eq!(hs.check_localpart("bob").await.unwrap(), None);
        hs.upsert_device("alice", "A", Some("phone")).await.unwrap();
        hs.upsert_device("alice", "B", None).await.unwrap();
        hs.sync_devices("alice", &BTreeSet::from(["B".to_owned(), "C".to_owned()]))
            .await
            .unwrap();
        let alice = hs.user("alice").unwrap();
        assert_eq!(alice.devices.keys().collect::<Vec<_>>(), ["B", "C"]);
        assert_eq!(alice.displayname.as_deref(), Some("Alice"));
        assert!(matches!(
            hs.upsert_device("bob", "X", None).await,
            Err(HomeserverError::UserNotFound)
        ));
        hs.set_down(true);
        let down = hs.query_user("alice").await.unwrap_err();
        assert!(down.is_transient(), "{down}");
    }
}
