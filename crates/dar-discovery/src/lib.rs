//! Fetching and caching the other side's configuration document (§2) safely.
//!
//! The role crates depend only on [`ConfigSource`] (with `default-features = false`), so they
//! never see an HTTP client. The `http` feature (on by default) adds [`HttpConfigSource`], which
//! fetches `https://ORIGIN/.well-known/delegated-account-recovery/configuration` and refuses
//! anything it cannot trust:
//!
//! - plain http, unless built with the development option (loopback origins only);
//! - any redirect (§1.8, §2): no redirect is ever followed;
//! - a status other than 200, a `Content-Type` other than `application/json`, a body over the
//!   cap (checked while streaming), a document that fails validation, or one whose `issuer` is
//!   not byte for byte the origin asked for;
//! - a name that resolves only to loopback, private, link-local or other non-public addresses
//!   (server-side request forgery, §1.8), unless explicitly allowed;
//! - a server that is too slow (connect and total timeouts).
//!
//! Documents are cached per origin for the lifetime their `Cache-Control: max-age` gives, capped
//! (five minutes by default) so a key compromise is not trusted for long (§2); `no-store`,
//! `no-cache` or no `max-age` means no caching. A failed fetch never creates a cache entry.
//!
//! What it does not do: follow redirects, send cookies or credentials, use proxies, decompress,
//! or keep serving a stale document when the origin is down.
//!
//! The parts that decide (URL building, response checks, cache lifetimes, address
//! classification) are pure functions; a single function performs the request.
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use dar_core::Origin;
//! use dar_discovery::{ConfigSource, HttpConfigSource, HttpSettings};
//!
//! let source = HttpConfigSource::new(HttpSettings::default())?;
//! let origin = Origin::parse("https://rp.example.com")?;
//! let config = source.configuration(&origin).await?;
//! assert_eq!(config.issuer(), &origin);
//! # Ok(())
//! # }
//! ```
//!
//! Without the `http` feature, a fixed set of documents:
//!
//! ```
//! use dar_core::{Configuration, Origin, SigningKey};
//! use dar_discovery::{ConfigSource, DiscoveryError, StaticConfigSource};
//!
//! let key = SigningKey::from_scalar_bytes(&[7u8; 32])?.verifying_key().to_spki_base64();
//! let doc = format!(r#"{{"issuer": "https://ap.example.com",
//!     "tokensign-pubkeys-secp256r1": ["{key}"],
//!     "save-token-return": "https://ap.example.com/dar/save-return",
//!     "recover-account-return": "https://ap.example.com/dar/recover-return"}}"#);
//! let mut source = StaticConfigSource::new();
//! source.insert(Configuration::from_json(doc.as_bytes(), false)?);
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let ap = Origin::parse("https://ap.example.com")?;
//! let config = runtime.block_on(source.configuration(&ap))?;
//! assert_eq!(config.issuer(), &ap);
//! let other = Origin::parse("https://other.example.com")?;
//! assert_eq!(
//!     runtime.block_on(source.configuration(&other)).unwrap_err(),
//!     DiscoveryError::NotFound
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use dar_core::{Configuration, Origin};

pub mod address;
#[cfg(feature = "http")]
mod cache;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod request;
#[cfg(feature = "http")]
mod response;

#[cfg(feature = "http")]
pub use cache::{MonotonicClock, SystemClock};
#[cfg(feature = "http")]
pub use http::{BuildError, HttpConfigSource, HttpSettings, PublicResolver, ResolveFailure};

/// Why a configuration document could not be obtained. Every variant is a refusal to trust the
/// other side; none leaves anything cached. No variant carries any part of a response body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// No configuration is known for this origin (the static source), or the server answered
    /// 404 (§2: the configuration resource does not exist).
    #[error("no configuration document for this origin")]
    NotFound,
    /// The document does not parse or fails validation (§2).
    #[error("invalid configuration document: {0}")]
    Invalid(dar_core::Error),
    /// The document's issuer is not the origin that was asked for (§3.1 step 6, §3.5 step 11).
    #[error("the document's issuer is not the origin asked for")]
    IssuerMismatch,
    /// The origin is plain http (§2: configuration is fetched from the "https" origin). Refused
    /// before connecting; only the development option admits http, and only for loopback.
    #[error("configuration is only fetched over https")]
    InsecureScheme,
    /// The origin cannot be turned into a request URL.
    #[error("the origin cannot be turned into a configuration URL")]
    UnsupportedOrigin,
    /// The host is, or resolves only to, non-public addresses (loopback, private, link-local,
    /// ...): refused before connecting, against server-side request forgery (§1.8).
    #[error("the origin resolves to no public address")]
    NonPublicAddress,
    /// The host name does not resolve (§2: the origin must be reachable).
    #[error("the origin's host name does not resolve")]
    Resolve,
    /// No connection could be made.
    #[error("could not connect to the origin")]
    Connect,
    /// The TLS handshake failed: bad or untrusted certificate, wrong name, no common version
    /// (§1.7).
    #[error("TLS handshake with the origin failed")]
    Tls,
    /// The connect timeout or the total timeout passed.
    #[error("the origin took too long to answer")]
    Timeout,
    /// The connection broke or the answer is not well-formed HTTP.
    #[error("the HTTP exchange with the origin failed")]
    Transport,
    /// The server answered with a redirect (§1.8, §2): redirects are never followed, so a
    /// configuration cannot be moved to another host behind the caller's back.
    #[error("the origin answered with a redirect ({status}), which is never followed")]
    Redirected {
        /// The 3xx status code.
        status: u16,
    },
    /// The server answered a status other than 200 (§2: the document is the response body).
    #[error("the origin answered HTTP status {0}")]
    Status(u16),
    /// The response's `Content-Type` is not `application/json` (§2: a JSON dictionary is the
    /// entire response body).
    #[error("the response is not application/json")]
    NotJson,
    /// The response body is larger than the cap (§2; bounds what a hostile origin can make us
    /// buffer).
    #[error("the response body exceeds the size cap")]
    TooLarge,
}

impl DiscoveryError {
    /// A stable, machine-readable code for logs and error responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "config_not_found",
            Self::Invalid(_) => "config_invalid",
            Self::IssuerMismatch => "config_issuer_mismatch",
            Self::InsecureScheme => "config_insecure_scheme",
            Self::UnsupportedOrigin => "config_unsupported_origin",
            Self::NonPublicAddress => "config_non_public_address",
            Self::Resolve => "config_resolve_failed",
            Self::Connect => "config_connect_failed",
            Self::Tls => "config_tls_failed",
            Self::Timeout => "config_timeout",
            Self::Transport => "config_transport_failed",
            Self::Redirected { .. } => "config_redirected",
            Self::Status(_) => "config_bad_status",
            Self::NotJson => "config_not_json",
            Self::TooLarge => "config_too_large",
        }
    }
}

/// Where the role crates get the other side's configuration from.
pub trait ConfigSource: Send + Sync {
    /// The configuration of `origin`, from a cache entry still within its lifetime or freshly
    /// fetched.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`] naming the check that failed; the caller must then abort the step
    /// that needed the configuration (§3.1 step 4).
    fn configuration(
        &self,
        origin: &Origin,
    ) -> impl Future<Output = Result<Arc<Configuration>, DiscoveryError>> + Send;
}

/// A fixed set of configurations, for tests, examples and deployments that pin their peers.
#[derive(Debug, Clone, Default)]
pub struct StaticConfigSource {
    documents: HashMap<Origin, Arc<Configuration>>,
}

impl StaticConfigSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the configuration of its issuer.
    pub fn insert(&mut self, config: Configuration) {
        self.documents
            .insert(config.issuer().clone(), Arc::new(config));
    }
}

impl ConfigSource for StaticConfigSource {
    /// # Errors
    ///
    /// [`DiscoveryError::NotFound`] when no document was inserted for `origin`.
    async fn configuration(&self, origin: &Origin) -> Result<Arc<Configuration>, DiscoveryError> {
        self.documents
            .get(origin)
            .cloned()
            .ok_or(DiscoveryError::NotFound)
    }
}
