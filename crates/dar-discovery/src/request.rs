//! Building the configuration request: which URL, and whether it may be requested at all.

use std::net::IpAddr;

use dar_core::{CONFIGURATION_PATH, Origin};
use reqwest::Url;

use crate::DiscoveryError;
use crate::address::is_public;

/// What the caller allows beyond the draft's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestPolicy {
    /// Accept `http://` origins whose host is loopback (local development only).
    pub(crate) danger_allow_http_loopback: bool,
    /// Accept hosts that are, or resolve to, non-public addresses.
    pub(crate) danger_allow_non_public_addresses: bool,
}

/// The URL of `origin`'s configuration document,
/// `https://ORIGIN/.well-known/delegated-account-recovery/configuration`.
///
/// # Errors
///
/// - [`DiscoveryError::InsecureScheme`]: the origin is http and the policy does not allow it
///   (§2: configuration is fetched from the https origin);
/// - [`DiscoveryError::NonPublicAddress`]: the host is an IP literal that is not public and the
///   policy does not allow it (§1.8); names are checked when they resolve;
/// - [`DiscoveryError::UnsupportedOrigin`]: the origin does not make a URL.
pub(crate) fn configuration_url(
    origin: &Origin,
    policy: RequestPolicy,
) -> Result<Url, DiscoveryError> {
    // §2: normalize to an origin with an "https" scheme; http only for loopback development.
    let http_allowed = policy.danger_allow_http_loopback && origin.is_loopback();
    if !(origin.is_https() || http_allowed) {
        return Err(DiscoveryError::InsecureScheme);
    }
    let url = Url::parse(&format!("{}{CONFIGURATION_PATH}", origin.as_str()))
        .map_err(|_| DiscoveryError::UnsupportedOrigin)?;
    // The URL parser may read a host the origin keeps as a name as an address (`0x7f`); check
    // the host exactly as the client will connect to it.
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => policy.danger_allow_http_loopback,
        _ => false,
    };
    if !scheme_ok || url.path() != CONFIGURATION_PATH || url.query().is_some() {
        return Err(DiscoveryError::UnsupportedOrigin);
    }
    let host = url.host_str().ok_or(DiscoveryError::UnsupportedOrigin)?;
    // The parser has already turned every address form into dotted decimal or `[v6]`.
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let literal = unbracketed.parse::<IpAddr>().ok();
    // §1.8 (SSRF): an address literal never reaches the resolver, so it is checked here.
    if let Some(ip) = literal
        && !policy.danger_allow_non_public_addresses
        && !is_public(ip)
    {
        return Err(DiscoveryError::NonPublicAddress);
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
