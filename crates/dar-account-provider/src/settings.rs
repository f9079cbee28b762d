//! What an account provider is configured with: its origin and endpoints, the recovery
//! providers it deals with, and the limits it applies.

use std::net::IpAddr;
use std::str::FromStr;

use dar_core::{EndpointUrl, Freshness, Origin};
use time::Duration;

use crate::error::AccountProviderError;

/// The account provider's settings.
///
/// [`Settings::new`] fills in the defaults; adjust the public fields after it.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Settings {
    /// This account provider's origin: the issuer of its tokens and the audience of the
    /// countersigned tokens it accepts (§2 `issuer`).
    pub origin: Origin,
    /// `save-token-return` (§2, §3.2).
    pub save_token_return: EndpointUrl,
    /// `recover-account-return` (§2, §3.5).
    pub recover_account_return: EndpointUrl,
    /// `privacy-policy` (§2).
    pub privacy_policy: Option<EndpointUrl>,
    /// `icon-152px` (§2).
    pub icon_152px: Option<EndpointUrl>,
    /// The recovery providers tokens may be issued to and accepted from (§6.5, §3.6.2).
    pub recovery_providers: Vec<KnownRecoveryProvider>,
    /// Bounds on a countersigned token's issued_time (§3.5 step 7). The replay guard keeps a
    /// countersigned id for `max_age` after its issued_time.
    pub freshness: Freshness,
    /// How long a save-token `state` stays valid (§3.2); default 1 hour.
    pub save_state_lifetime: Duration,
    /// Token-status events accepted per recovery provider and window (§3.6.2).
    pub status_rate_limit: RateLimit,
}

impl Settings {
    /// Settings with no known recovery provider, [`Freshness::DEFAULT`], a 1-hour save state
    /// and [`RateLimit::DEFAULT`].
    pub fn new(
        origin: Origin,
        save_token_return: EndpointUrl,
        recover_account_return: EndpointUrl,
    ) -> Self {
        Self {
            origin,
            save_token_return,
            recover_account_return,
            privacy_policy: None,
            icon_152px: None,
            recovery_providers: Vec::new(),
            freshness: Freshness::DEFAULT,
            save_state_lifetime: Duration::hours(1),
            status_rate_limit: RateLimit::DEFAULT,
        }
    }

    /// Adds a known recovery provider (builder style).
    #[must_use]
    pub fn with_recovery_provider(mut self, rp: KnownRecoveryProvider) -> Self {
        self.recovery_providers.push(rp);
        self
    }

    /// The known recovery provider with this origin.
    pub fn recovery_provider(&self, origin: &str) -> Option<&KnownRecoveryProvider> {
        self.recovery_providers
            .iter()
            .find(|rp| rp.origin.as_str() == origin)
    }
}

/// A recovery provider this account provider deals with (§3.6.2, §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRecoveryProvider {
    /// Its origin (the `issuer` of its configuration document).
    pub origin: Origin,
    /// Where its token-status calls come from. Empty: any address.
    pub status_addresses: Vec<IpRange>,
}

impl KnownRecoveryProvider {
    /// A recovery provider whose status calls may come from any address.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            status_addresses: Vec::new(),
        }
    }

    /// Restricts its status calls to `ranges` (builder style).
    #[must_use]
    pub fn with_status_addresses(mut self, ranges: Vec<IpRange>) -> Self {
        self.status_addresses = ranges;
        self
    }

    /// Whether a status call from `peer` is acceptable for this provider.
    pub fn allows_address(&self, peer: IpAddr) -> bool {
        self.status_addresses.is_empty() || self.status_addresses.iter().any(|r| r.contains(peer))
    }
}

/// An address range in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`).
///
/// ```
/// use dar_account_provider::IpRange;
/// let range: IpRange = "192.0.2.0/24".parse()?;
/// assert!(range.contains("192.0.2.77".parse()?));
/// assert!(range.contains("::ffff:192.0.2.1".parse()?)); // IPv4-mapped IPv6
/// assert!(!range.contains("198.51.100.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `network/prefix`; host bits of `network` are ignored.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::InvalidAddressRange`] if `prefix` exceeds the address length.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, AccountProviderError> {
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return Err(AccountProviderError::InvalidAddressRange);
        }
        Ok(Self { network, prefix })
    }

    /// Whether `addr` is in the range. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(u128::from(net), u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix.min(128)));
    a & mask == b & mask
}

impl FromStr for IpRange {
    type Err = AccountProviderError;

    /// Parses `address/prefix`, or a bare address (a single host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = AccountProviderError::InvalidAddressRange;
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad.clone())?;
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad.clone())?,
            None if network.is_ipv4() => 32,
            None => 128,
        };
        Self::new(network, prefix)
    }
}

/// A fixed-window rate limit: at most `max_events` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per window.
    pub max_events: u64,
    /// The window length (whole seconds, at least one).
    pub window: Duration,
}

impl RateLimit {
    /// 600 events a minute per recovery provider.
    pub const DEFAULT: Self = Self {
        max_events: 600,
        window: Duration::minutes(1),
    };

    /// The window length in whole seconds, at least 1.
    pub(crate) fn window_seconds(&self) -> i64 {
        self.window.whole_seconds().max(1)
    }
}

#[cfg(test)]
mod tests;
