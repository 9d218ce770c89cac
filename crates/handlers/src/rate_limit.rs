//! Login throttles (`rate_limiting.login`): token buckets per client IP and per account,
//! kept in memory per replica, as MAS does.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ConnectInfo;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

/// Buckets past this many keys are pruned of the full (idle) ones.
const PRUNE_ABOVE: usize = 10_000;

/// The login throttles of one replica.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
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
    pub fn new(per_ip: Limit, per_account: Limit, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            per_ip: RateLimiter::keyed(per_ip.quota()),
            per_account: RateLimiter::keyed(per_account.quota()),
            trusted_proxies,
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not one.
    pub(crate) fn client_ip(
        &self,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>().ok())
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

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Takes one login attempt from `ip`'s bucket; `Err` says how long to wait.
    pub(crate) fn login_from(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        take(&self.per_ip, &ip)
    }

    /// Takes one login attempt from the account's bucket; `Err` says how long to wait.
    pub(crate) fn login_as(&self, username: &str) -> Result<(), Duration> {
        take(&self.per_account, &username.to_owned())
    }
}

fn take<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Duration> {
    if limiter.len() > PRUNE_ABOVE {
        limiter.retain_recent();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_run_dry_and_proxies_are_believed_only_when_trusted() {
        let limits = RateLimits::new(
            Limit {
                burst: 2,
                per_second: 1.0 / 60.0,
            },
            Limit {
                burst: 1,
                per_second: 1.0 / 3600.0,
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
