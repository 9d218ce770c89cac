//! Throttles: token buckets per client address (and per account for logins), kept in
//! memory per replica, as MAS does. `rate_limiting` configures the login, registration,
//! username-check and device-link buckets; requests that store a row for an anonymous
//! caller (client registration, authorization and device requests) have fixed ones.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};

/// One bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Requests per second refilled.
    pub per_second: f64,
}

impl Limit {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        // A refill slower than once in ten years is no refill at all.
        let ten_years = Duration::from_hours(87_600);
        let period = if self.per_second > 0.0 {
            Duration::try_from_secs_f64(1.0 / self.per_second)
                .unwrap_or(ten_years)
                .min(ten_years)
        } else {
            ten_years
        };
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }
}

/// Buckets past this many keys are pruned of the full (idle) ones, at most once a second.
const PRUNE_ABOVE: usize = 10_000;
/// No limiter keeps more buckets than this (about 100 bytes each). Past it, while
/// pruning frees nothing, new keys share one bucket: memory stays bounded under a flood,
/// at the price of throttling the newcomers together.
const MAX_KEYS: usize = 100_000;
/// The longest username a login may name: a Matrix user ID has at most 255 bytes, so
/// its localpart has fewer. Longer ones are refused before any bucket sees them.
pub(crate) const MAX_USERNAME_BYTES: usize = 255;

/// A bucket's key: an address (IPv4 as mapped IPv6, IPv6 cut to its /64) or the start
/// of an account name's SHA-256. Fixed-size, whatever the caller sends.
type Key = [u8; 16];

/// The key shared by newcomers once a limiter holds [`MAX_KEYS`] buckets. No address
/// key is all ones (a /64 ends in zeros), and a hash prefix is that only by chance.
const OVERFLOW: Key = [0xff; 16];

/// governor's own bucket map, shared with the limiter that updates it, so [`Buckets`]
/// can tell a key that already has a bucket from a newcomer.
#[derive(Clone, Default)]
struct SharedStore(std::sync::Arc<DashMapStateStore<Key>>);

impl StateStore for SharedStore {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Key> for SharedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

/// Keyed token buckets that stay bounded in memory.
struct Buckets {
    limiter: RateLimiter<Key, SharedStore, DefaultClock>,
    store: SharedStore,
    /// Seconds since `epoch` of the last prune: pruning walks every bucket.
    last_prune: AtomicU64,
    epoch: std::time::Instant,
}

impl Buckets {
    fn new(limit: Limit) -> Self {
        let store = SharedStore::default();
        Self {
            limiter: RateLimiter::new(limit.quota(), store.clone(), DefaultClock::default()),
            store,
            last_prune: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// Takes one token from `key`'s bucket; `Err` says how long to wait.
    fn take(&self, key: Key) -> Result<(), Duration> {
        let mut len = self.limiter.len();
        if len > PRUNE_ABOVE {
            let now = self.epoch.elapsed().as_secs() + 1;
            let last = self.last_prune.load(Ordering::Relaxed);
            if now > last
                && self
                    .last_prune
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
                len = self.limiter.len();
            }
        }
        // Checking a key that has no bucket yet makes one: past the cap, newcomers go
        // to the shared bucket instead, and keys that have one keep it.
        let key = if len >= MAX_KEYS && !self.store.0.contains_key(&key) {
            OVERFLOW
        } else {
            key
        };
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The bucket of a client address: IPv4-mapped IPv6 addresses (a proxy on `127.0.0.1`
/// seen through a `[::]` socket) are the IPv4 address they carry, and an IPv6 client is
/// its /64, the smallest network a home or a server is usually given.
fn address_key(ip: IpAddr) -> Key {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            octets
        }
    }
}

/// An IPv4-mapped IPv6 network as the IPv4 network it covers; others as they are.
fn canonical_net(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// The key of an (address, client ID) pair.
fn pair_key(ip: IpAddr, client: &str) -> Key {
    hashed_key(&[&address_key(ip), client.as_bytes()])
}

/// The bucket of an account name, case-insensitive as Matrix localparts are.
fn account_key(username: &str) -> Key {
    hashed_key(&[username.to_lowercase().as_bytes()])
}

/// The first 16 bytes of the SHA-256 of `parts`, one after the other.
fn hashed_key(parts: &[&[u8]]) -> Key {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut key = [0; 16];
    key.copy_from_slice(&context.finish().as_ref()[..16]);
    key
}

#[cfg(test)]
impl Limits {
    /// Limits no test reaches unless it means to.
    pub(crate) fn generous() -> Self {
        let generous = Limit {
            burst: 1000,
            per_second: 100.0,
        };
        Self {
            login_per_ip: generous,
            login_per_account: generous,
            registration: generous,
            username_availability: generous,
            device_code_link: generous,
            email_per_ip: generous,
            email_per_address: generous,
            emails_per_session: generous,
            email_attempts_per_session: generous,
            recovery_per_ip: generous,
            recovery_per_address: generous,
        }
    }
}

/// Why a login attempt is not let through to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// The bucket is dry: try again after this long.
    Wait(Duration),
    /// The username is longer than any account's can be.
    UsernameTooLong,
}

/// The configurable limits (`rate_limiting`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `login.per_ip`: password logins and SSO starts per address.
    pub login_per_ip: Limit,
    /// `login.per_account`: password logins per account name.
    pub login_per_account: Limit,
    /// `registration`: accounts made per address.
    pub registration: Limit,
    /// `username_availability`: usernames checked per address (each registration form).
    pub username_availability: Limit,
    /// `device_code_link`: user codes tried per address at `/link`.
    pub device_code_link: Limit,
    /// `email_authentication.per_ip`: codes sent per client address.
    pub email_per_ip: Limit,
    /// `email_authentication.per_address`: codes sent per email address.
    pub email_per_address: Limit,
    /// `email_authentication.emails_per_session`: codes sent per browser session.
    pub emails_per_session: Limit,
    /// `email_authentication.attempt_per_session`: codes typed per browser session.
    pub email_attempts_per_session: Limit,
    /// `account_recovery.per_ip`: recovery links asked for per client address.
    pub recovery_per_ip: Limit,
    /// `account_recovery.per_address`: recovery links asked for per email address.
    pub recovery_per_address: Limit,
}

/// Clients registered per address: a native app registers once per install, a web
/// client (Element Web) may register at each sign-in, and many people can share an
/// address (an office's NAT).
const CLIENT_REGISTRATION: Limit = Limit {
    burst: 100,
    per_second: 100.0 / 3600.0,
};
/// Authorization and device requests per address: each stores a row before anyone has
/// signed in. A person signing in makes a handful.
const ANONYMOUS_REQUESTS: Limit = Limit {
    burst: 60,
    per_second: 1.0,
};

/// Failed client authentications per address and client ID, at the token,
/// introspection, revocation and device endpoints (a wrong secret, a forged or replayed
/// assertion). Past the budget, that client ID is refused from that address before
/// anything is checked, so guessing gets a try every 10 s; other client IDs, and the same
/// client from elsewhere, are not held back. The homeserver's secret is counted too, but
/// the right one always passes.
const CLIENT_AUTH_FAILURES: Limit = Limit {
    burst: 30,
    per_second: 0.1,
};

/// Which address bucket a request takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PerAddress {
    /// A password login, or the start of an SSO login.
    Login,
    /// Making an account.
    Registration,
    /// Asking whether a username is free.
    UsernameCheck,
    /// Trying a user code at `/link`.
    DeviceLink,
    /// Registering an OAuth client.
    ClientRegistration,
    /// An authorization or device authorization request.
    AnonymousRequest,
}

/// The throttles of one replica.
pub struct RateLimits {
    per_ip: Buckets,
    per_account: Buckets,
    registration: Buckets,
    username_availability: Buckets,
    device_code_link: Buckets,
    client_registration: Buckets,
    anonymous_requests: Buckets,
    email_per_ip: Buckets,
    email_per_address: Buckets,
    emails_per_session: Buckets,
    email_attempts_per_session: Buckets,
    recovery_per_ip: Buckets,
    recovery_per_address: Buckets,
    client_auth_failures: Buckets,
    /// (Address, client) pairs that ran out of failures, until when.
    blocked: std::sync::Mutex<std::collections::HashMap<Key, std::time::Instant>>,
    /// When the last block ends, in milliseconds since `epoch`: past it nobody is held
    /// back, and the common case takes no lock.
    blocked_until: AtomicU64,
    epoch: std::time::Instant,
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Throttles with these limits; `X-Forwarded-For` is believed only from
    /// `trusted_proxies`.
    #[must_use]
    pub fn new(limits: Limits, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            per_ip: Buckets::new(limits.login_per_ip),
            per_account: Buckets::new(limits.login_per_account),
            registration: Buckets::new(limits.registration),
            username_availability: Buckets::new(limits.username_availability),
            device_code_link: Buckets::new(limits.device_code_link),
            client_registration: Buckets::new(CLIENT_REGISTRATION),
            anonymous_requests: Buckets::new(ANONYMOUS_REQUESTS),
            email_per_ip: Buckets::new(limits.email_per_ip),
            email_per_address: Buckets::new(limits.email_per_address),
            emails_per_session: Buckets::new(limits.emails_per_session),
            email_attempts_per_session: Buckets::new(limits.email_attempts_per_session),
            recovery_per_ip: Buckets::new(limits.recovery_per_ip),
            recovery_per_address: Buckets::new(limits.recovery_per_address),
            client_auth_failures: Buckets::new(CLIENT_AUTH_FAILURES),
            blocked: std::sync::Mutex::default(),
            blocked_until: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            // Peers are compared as IPv4 when they carry one, so networks written in
            // the mapped form (`::ffff:10.0.0.0/104`) are too.
            trusted_proxies: trusted_proxies.into_iter().map(canonical_net).collect(),
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not one. IPv4-mapped IPv6 addresses are
    /// read as the IPv4 address they carry, so a proxy on `127.0.0.1` is recognised
    /// behind a dual-stack `[::]` listener.
    pub(crate) fn client_ip(
        &self,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| {
                hop.trim()
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| ip.to_canonical())
            })
            .collect::<Vec<_>>();
        // From the nearest hop outwards: the first one that is not a trusted proxy is the
        // client. A hop that cannot be read ends the walk at the last trusted address:
        // anything further out may be the client's own invention.
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return Some(ip),
                None => return Some(client),
            }
        }
        Some(client)
    }

    /// How many per-account buckets are kept (for tests).
    #[cfg(test)]
    pub(crate) fn account_buckets(&self) -> usize {
        self.per_account.limiter.len()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Takes one login attempt from `ip`'s bucket; `Err` says how long to wait.
    pub(crate) fn login_from(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.throttle(PerAddress::Login, ip)
    }

    /// Takes one request from `ip`'s bucket of this kind; `Err` says how long to wait.
    /// An unknown address (in-process tests) is not throttled.
    pub(crate) fn throttle(&self, kind: PerAddress, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        let buckets = match kind {
            PerAddress::Login => &self.per_ip,
            PerAddress::Registration => &self.registration,
            PerAddress::UsernameCheck => &self.username_availability,
            PerAddress::DeviceLink => &self.device_code_link,
            PerAddress::ClientRegistration => &self.client_registration,
            PerAddress::AnonymousRequest => &self.anonymous_requests,
        };
        buckets.take(address_key(ip))
    }

    /// Takes one code sent from the buckets of the client's address, the email address
    /// and the browser session; `Err` says how long to wait.
    pub(crate) fn email_code_sent(
        &self,
        ip: Option<IpAddr>,
        email: &str,
        session: ulid::Ulid,
    ) -> Result<(), Duration> {
        if let Some(ip) = ip {
            self.email_per_ip.take(address_key(ip))?;
        }
        self.email_per_address
            .take(account_key(&email.to_lowercase()))?;
        self.emails_per_session
            .take(account_key(&session.to_string()))
    }

    /// Takes one registration code sent from the buckets of the client's address and the
    /// email address; `Err` says how long to wait.
    pub(crate) fn registration_code_sent(
        &self,
        ip: Option<IpAddr>,
        email: &str,
    ) -> Result<(), Duration> {
        if let Some(ip) = ip {
            self.email_per_ip.take(address_key(ip))?;
        }
        self.email_per_address
            .take(account_key(&email.to_lowercase()))
    }

    /// Takes one recovery request from the buckets of the client's address and the
    /// email address typed; `Err` says how long to wait.
    pub(crate) fn recovery_requested(
        &self,
        ip: Option<IpAddr>,
        email: &str,
    ) -> Result<(), Duration> {
        if let Some(ip) = ip {
            self.recovery_per_ip.take(address_key(ip))?;
        }
        self.recovery_per_address
            .take(account_key(&email.to_lowercase()))
    }

    /// Whether `ip` may try to authenticate as `client` now; `Err` says how long to wait.
    pub(crate) fn client_auth_allowed(
        &self,
        ip: Option<IpAddr>,
        client: &str,
    ) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        let now = std::time::Instant::now();
        if self.millis(now) >= self.blocked_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match blocked.get(&pair_key(ip, client)) {
            Some(until) if *until > now => Err(*until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication as `client` from `ip`; past the budget, the pair is
    /// refused until its bucket has a token again.
    pub(crate) fn client_auth_failed(&self, ip: Option<IpAddr>, client: &str) {
        let Some(ip) = ip else { return };
        let key = pair_key(ip, client);
        let Err(wait) = self.client_auth_failures.take(key) else {
            return;
        };
        let now = std::time::Instant::now();
        let until = now + wait;
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if blocked.len() >= MAX_KEYS
            || self.millis(now) >= self.blocked_until.load(Ordering::Relaxed)
        {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(key, until);
        self.blocked_until
            .fetch_max(self.millis(until) + 1, Ordering::Relaxed);
    }

    fn millis(&self, at: std::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes one code typed from the browser session's bucket.
    pub(crate) fn email_code_tried(&self, session: ulid::Ulid) -> Result<(), Duration> {
        self.email_attempts_per_session
            .take(account_key(&session.to_string()))
    }

    /// Takes one login attempt from the account's bucket. A username longer than any
    /// account's is refused first, so it never costs memory.
    pub(crate) fn login_as(&self, username: &str) -> Result<(), Throttled> {
        if username.len() > MAX_USERNAME_BYTES {
            return Err(Throttled::UsernameTooLong);
        }
        self.per_account
            .take(account_key(username))
            .map_err(Throttled::Wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_new_keys_stays_bounded() {
        let buckets = Buckets::new(Limit {
            burst: 1,
            per_second: 1.0 / 3600.0,
        });
        for n in 0..(MAX_KEYS + 5_000) {
            let _ = buckets.take(account_key(&format!("user{n}")));
        }
        // One bucket more than the cap at most: the newcomers' shared one.
        assert!(
            buckets.limiter.len() <= MAX_KEYS + 1,
            "{}",
            buckets.limiter.len()
        );
        // The newcomers past the cap share a bucket that is now dry...
        assert!(buckets.take(account_key("yet-another")).is_err());
        // ...while a key that had a bucket before the flood keeps its own.
        let early = Buckets::new(Limit {
            burst: 2,
            per_second: 1.0 / 3600.0,
        });
        assert!(early.take(account_key("alice")).is_ok());
        for n in 0..(MAX_KEYS + 10) {
            let _ = early.take(account_key(&format!("flood{n}")));
        }
        assert!(
            early.take(account_key("alice")).is_ok(),
            "alice's second try"
        );
        assert!(early.take(account_key("bob")).is_err(), "a newcomer");
        assert_eq!(
            address_key("::ffff:192.0.2.1".parse().unwrap()),
            address_key("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            canonical_net("::ffff:10.0.0.0/104".parse().unwrap()),
            "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()
        );
        assert_eq!(
            canonical_net("fd00::/8".parse().unwrap()),
            "fd00::/8".parse::<ipnet::IpNet>().unwrap()
        );
        assert_eq!(
            address_key("2001:db8::1".parse().unwrap()),
            address_key("2001:db8::2".parse().unwrap())
        );
        assert_ne!(
            address_key("2001:db8::1".parse().unwrap()),
            address_key("2001:db8:0:1::1".parse().unwrap())
        );
    }

    #[test]
    fn buckets_run_dry_and_proxies_are_believed_only_when_trusted() {
        let limits = RateLimits::new(
            Limits {
                login_per_ip: Limit {
                    burst: 2,
                    per_second: 1.0 / 60.0,
                },
                login_per_account: Limit {
                    burst: 1,
                    per_second: 1.0 / 3600.0,
                },
                ..Limits::generous()
            },
            vec!["127.0.0.0/8".parse().unwrap()],
        );
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(limits.login_from(Some(ip)).is_ok());
        assert!(limits.login_from(Some(ip)).is_ok());
        let wait = limits.login_from(Some(ip)).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_mins(1),
            "{wait:?}"
        );
        assert!(
            limits
                .login_from(Some("203.0.113.8".parse().unwrap()))
                .is_ok()
        );
        assert!(limits.login_as("alice").is_ok());
        assert!(limits.login_as("alice").is_err());
        assert!(limits.login_as("bob").is_ok());

        let request = |peer: &str, forwarded: &str| {
            let mut request = axum::http::Request::builder()
                .header("x-forwarded-for", forwarded)
                .body(())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            request
        };
        let seen = |peer, forwarded| {
            let request = request(peer, forwarded);
            limits
                .client_ip(request.extensions(), request.headers())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            seen("127.0.0.1:5000", "198.51.100.1, 127.0.0.2"),
            "198.51.100.1"
        );
        assert_eq!(
            seen("198.51.100.9:5000", "10.0.0.1"),
            "198.51.100.9",
            "not a trusted proxy"
        );
        assert_eq!(seen("127.0.0.1:5000", "garbage"), "127.0.0.1");
        // A proxy that writes `ip:port` cannot be read past: the attacker's hop is ignored.
        assert_eq!(
            seen("127.0.0.1:5000", "6.6.6.6, 198.51.100.1:4444"),
            "127.0.0.1"
        );
    }
}

/// The client's IP address, as [`RateLimits::client_ip`] reads it; `None` when the
/// connection's address is unknown (in-process tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl axum::extract::FromRequestParts<crate::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            state
                .rate_limits
                .client_ip(&parts.extensions, &parts.headers),
        ))
    }
}
