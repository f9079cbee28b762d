//! Origins (RFC 6454): the identity of an account provider or a recovery provider.
//!
//! Every comparison of issuers and audiences in dar is a comparison of [`Origin`]s in their
//! canonical ASCII serialization (RFC 6454 §6.2): lower-case scheme and host, host in A-labels
//! (IDNA), no default port, no userinfo, path, query, fragment, trailing slash or trailing dot.
//!
//! Two parsers, for two kinds of input:
//!
//! - [`Origin::parse`] normalizes what a person or a configuration file wrote
//!   (`HTTPS://Bücher.Example:443/` becomes `https://xn--bcher-kva.example`).
//! - [`Origin::from_wire`] takes the issuer or audience field of a token and refuses anything
//!   that is not already canonical, so one origin has exactly one encoding on the wire.
//!
//! Issuers and audiences are https. Plain http is accepted only for loopback hosts, and only by
//! [`Origin::parse_development`] (configuration) or on the wire, where such an origin can only
//! ever equal an expected origin that was itself configured with the development option.

use core::fmt;
use core::str::FromStr;
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::error::{DecodeError, OriginError};

/// Longest input the origin parsers look at; a canonical origin is at most about 270 bytes.
const MAX_INPUT_LEN: usize = 1024;

/// A normalized RFC 6454 origin: scheme, host and port, serialized canonically.
///
/// ```
/// use dar_core::Origin;
/// let o = Origin::parse("HTTPS://Example.COM:443/")?;
/// assert_eq!(o.as_str(), "https://example.com");
/// assert_eq!(o, Origin::parse("https://example.com")?);
/// # Ok::<(), dar_core::OriginError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    serialized: String,
    secure: bool,
    loopback: bool,
}

impl Origin {
    /// Parses and normalizes an https origin from configuration or user input.
    ///
    /// Accepts upper-case scheme and host, Unicode hosts (converted to A-labels), a default port,
    /// one trailing `/` and one trailing dot on the host, all of which normalize away.
    ///
    /// # Errors
    ///
    /// An [`OriginError`] naming what is wrong; plain http gives
    /// [`OriginError::InsecureScheme`].
    pub fn parse(input: &str) -> Result<Self, OriginError> {
        let origin = parse_normalizing(input)?;
        if !origin.secure {
            return Err(OriginError::InsecureScheme);
        }
        Ok(origin)
    }

    /// Like [`Origin::parse`], but also accepts plain `http` for loopback hosts (`localhost`,
    /// `*.localhost`, `127.0.0.0/8`, `[::1]`): for local development and tests only.
    ///
    /// # Errors
    ///
    /// As [`Origin::parse`]; http for a non-loopback host gives
    /// [`OriginError::InsecureScheme`].
    pub fn parse_development(input: &str) -> Result<Self, OriginError> {
        let origin = parse_normalizing(input)?;
        if !origin.secure && !origin.loopback {
            return Err(OriginError::InsecureScheme);
        }
        Ok(origin)
    }

    /// Parses the issuer or audience field of a token, which must already be a canonical
    /// origin (§4.1.1; RFC 6454 §6.2).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Origin`] when the bytes are not an origin, and
    /// [`DecodeError::NonCanonicalOrigin`] when they are one but not in canonical form.
    pub fn from_wire(field: &'static str, bytes: &[u8]) -> Result<Self, DecodeError> {
        check_wire(field, bytes)?;
        let text = core::str::from_utf8(bytes).map_err(|_| DecodeError::Origin {
            field,
            reason: OriginError::Character,
        })?;
        parse_normalizing(text).map_err(|reason| DecodeError::Origin { field, reason })
    }

    /// The canonical ASCII serialization (`https://example.com:8443`).
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    /// Whether the scheme is https.
    pub fn is_https(&self) -> bool {
        self.secure
    }

    /// Whether the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// The host and port part, as it appears after `scheme://`.
    pub fn authority(&self) -> &str {
        self.serialized
            .split_once("://")
            .map_or(self.serialized.as_str(), |(_, rest)| rest)
    }
}

/// Checks that a token's origin field is a canonical origin without building an [`Origin`]:
/// the verification hot path compares the bytes directly with the expected origin.
///
/// # Errors
///
/// As [`Origin::from_wire`].
pub(crate) fn check_wire(field: &'static str, bytes: &[u8]) -> Result<(), DecodeError> {
    let text = core::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(DecodeError::Origin {
            field,
            reason: OriginError::Character,
        })?;
    if let Some(fast) = canonical_fast_path(text) {
        return fast.map_err(|reason| DecodeError::Origin { field, reason });
    }
    let origin = parse_normalizing(text).map_err(|reason| DecodeError::Origin { field, reason })?;
    if !origin.secure && !origin.loopback {
        return Err(DecodeError::Origin {
            field,
            reason: OriginError::InsecureScheme,
        });
    }
    if origin.serialized != text {
        return Err(DecodeError::NonCanonicalOrigin { field });
    }
    Ok(())
}

/// Decides the common case — `https://` + lower-case LDH labels without A-labels + optional
/// canonical port — without allocating. `None` means "take the full parser".
fn canonical_fast_path(text: &str) -> Option<Result<(), OriginError>> {
    let rest = text.strip_prefix("https://")?;
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if host.is_empty() || host.len() > 253 || host.ends_with('.') {
        return None;
    }
    let mut labels = 0usize;
    for label in host.split('.') {
        labels += 1;
        let ldh = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.get(2..4) != Some("--");
        if !ldh {
            return None;
        }
    }
    // A numeric last label makes the host an IPv4 address or invalid: the full parser decides.
    let last = host.rsplit('.').next()?;
    if labels == 0 || last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match port {
        None => Some(Ok(())),
        Some(p) => {
            let canonical = !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && !p.starts_with('0');
            if !canonical {
                return None;
            }
            match p.parse::<u32>() {
                Ok(443) | Err(_) => None,
                Ok(n) if n > 65_535 => None,
                Ok(_) => Some(Ok(())),
            }
        }
    }
}

fn parse_normalizing(input: &str) -> Result<Origin, OriginError> {
    if input.is_empty() {
        return Err(OriginError::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(OriginError::TooLong);
    }
    if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(OriginError::Character);
    }
    let (scheme, rest) = input.split_once("://").ok_or(OriginError::Scheme)?;
    let secure = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err(OriginError::Scheme);
    };
    // One trailing slash is what people paste; any other path, query or fragment is not an
    // origin.
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '\\']) {
        return Err(OriginError::PathQueryFragment);
    }
    if authority.contains('@') {
        return Err(OriginError::Userinfo);
    }
    let (host_text, port_text) = split_host_port(authority)?;
    let (host, loopback) = normalize_host(host_text)?;
    let default_port = if secure { 443 } else { 80 };
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p)?).filter(|&p| p != default_port),
    };
    let scheme = if secure { "https" } else { "http" };
    let serialized = match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    Ok(Origin {
        serialized,
        secure,
        loopback,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), OriginError> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or(OriginError::Host)?;
        let host = authority.get(..inside.len() + 2).ok_or(OriginError::Host)?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or(OriginError::Host),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn parse_port(text: &str) -> Result<u16, OriginError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::Port);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(OriginError::Port),
        Ok(p) => Ok(p),
    }
}

/// Returns the canonical host and whether it is loopback.
fn normalize_host(host: &str) -> Result<(String, bool), OriginError> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let addr = Ipv6Addr::from_str(inner).map_err(|_| OriginError::Host)?;
        return Ok((format!("[{addr}]"), addr.is_loopback()));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(OriginError::Host);
    }
    let ascii: Cow<'_, str> = Uts46::new()
        .to_ascii(
            host.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| OriginError::Host)?;
    let last = ascii.rsplit('.').next().unwrap_or_default();
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        // A numeric last label is an IPv4 address (RFC 3986 dotted decimal only) or nothing.
        let addr = Ipv4Addr::from_str(&ascii).map_err(|_| OriginError::Host)?;
        return Ok((addr.to_string(), addr.is_loopback()));
    }
    let loopback = ascii == "localhost" || ascii.ends_with(".localhost");
    Ok((ascii.into_owned(), loopback))
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialized)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({})", self.serialized)
    }
}

impl FromStr for Origin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Origin {
    fn as_ref(&self) -> &str {
        &self.serialized
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.serialized)
    }
}

#[cfg(test)]
mod tests;
