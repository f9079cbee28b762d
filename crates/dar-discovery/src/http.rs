//! The HTTPS configuration source: reqwest with rustls, no redirects, no proxies, timeouts, a
//! streamed body cap and a resolver that refuses non-public addresses.
//!
//! [`exchange`] is the only function here that touches the network; everything it decides, it
//! decides by calling the pure checks in `request`, `response` and `cache`.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dar_core::{Configuration, MAX_DOCUMENT_LEN, Origin};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Client, Url, redirect};
use tracing::debug;

use crate::address::is_public;
use crate::cache::{ConfigCache, MonotonicClock, SystemClock, freshness_lifetime};
use crate::request::{RequestPolicy, configuration_url};
use crate::response::{
    BodyBuffer, check_content_type, check_declared_length, check_document, check_status,
};
use crate::{ConfigSource, DiscoveryError};

/// Settings of an [`HttpConfigSource`]. Start from [`HttpSettings::default`] and change fields.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Longest wait for a TCP connection (default 3 s).
    pub connect_timeout: Duration,
    /// Longest wait for the whole exchange, from connecting to the last body byte (default 5 s).
    pub total_timeout: Duration,
    /// Largest response body accepted, enforced while streaming (default and maximum
    /// [`MAX_DOCUMENT_LEN`], 64 KiB; larger values are lowered to it).
    pub max_body_len: usize,
    /// Longest time a document is reused, whatever its `Cache-Control` says (default 5 min;
    /// zero disables caching).
    pub max_cache_lifetime: Duration,
    /// Most origins cached at once (default 1024; zero disables caching). When full, expired
    /// entries and then the entry closest to expiry make room.
    pub max_cache_entries: usize,
    /// Connect to loopback, private, link-local and other non-public addresses (default
    /// false).
    ///
    /// # Security
    ///
    /// Turning this on lets whoever names the origin (a token's issuer, for one) make this
    /// server send requests into its own network (§1.8). For tests and local demos only.
    pub danger_allow_non_public_addresses: bool,
    /// Accept `http://` origins whose host is loopback, and documents whose issuer and
    /// endpoints are such origins (default false).
    ///
    /// # Security
    ///
    /// For local development only; it never admits http for a non-loopback host. Loopback
    /// addresses are still refused unless `danger_allow_non_public_addresses` is also on.
    pub danger_allow_http_loopback: bool,
    /// Extra trusted root certificates, each a PEM text holding one or more certificates,
    /// added to the platform's roots (tests use a generated CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(5),
            max_body_len: MAX_DOCUMENT_LEN,
            max_cache_lifetime: Duration::from_secs(5 * 60),
            max_cache_entries: 1024,
            danger_allow_non_public_addresses: false,
            danger_allow_http_loopback: false,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// Why an [`HttpConfigSource`] could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// An entry of `extra_root_certificates` is not PEM, holds no certificate, or holds a
    /// certificate rustls cannot use as a root.
    #[error("an extra root certificate could not be used")]
    RootCertificate,
    /// The HTTP client could not be built, for example because the platform has no root
    /// certificates and none were given.
    #[error("the HTTP client could not be built")]
    Client,
}

/// Fetches configuration documents over HTTPS (§2) and caches them per origin.
///
/// TLS is rustls (aws-lc-rs) through reqwest, with certificates checked by
/// `rustls-platform-verifier`: on Linux that is webpki verification against the system's root
/// store (read at run time, honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`), plus
/// [`HttpSettings::extra_root_certificates`]. Nothing is downloaded at build time.
///
/// Clones share the client and the cache.
#[derive(Clone)]
pub struct HttpConfigSource {
    client: Client,
    policy: RequestPolicy,
    total_timeout: Duration,
    max_body_len: usize,
    max_cache_lifetime: Duration,
    cache: Arc<ConfigCache>,
    clock: Arc<dyn MonotonicClock>,
}

impl HttpConfigSource {
    /// A source with the given settings and the system clock.
    ///
    /// # Errors
    ///
    /// [`BuildError::RootCertificate`] for an unusable extra root, [`BuildError::Client`] when
    /// the TLS client cannot be set up.
    pub fn new(settings: HttpSettings) -> Result<Self, BuildError> {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// A source whose cache lifetimes are measured by `clock` (tests advance a fake one).
    ///
    /// # Errors
    ///
    /// As [`HttpConfigSource::new`].
    pub fn with_clock(
        settings: HttpSettings,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<Self, BuildError> {
        let mut roots = Vec::new();
        for pem in &settings.extra_root_certificates {
            let bundle = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| BuildError::RootCertificate)?;
            if bundle.is_empty() {
                return Err(BuildError::RootCertificate);
            }
            roots.extend(bundle);
        }
        let resolver = PublicResolver::new(settings.danger_allow_non_public_addresses);
        let client = Client::builder()
            // §1.8, §2: never follow a redirect; a 3xx is answered as an error.
            .redirect(redirect::Policy::none())
            // A proxy would connect on our behalf, past the address check.
            .no_proxy()
            .https_only(!settings.danger_allow_http_loopback)
            .dns_resolver(resolver)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .tls_certs_merge(roots)
            .referer(false)
            .user_agent(concat!("dar-discovery/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                if source_chain_has::<rustls::Error>(&e) {
                    BuildError::RootCertificate
                } else {
                    BuildError::Client
                }
            })?;
        Ok(Self {
            client,
            policy: RequestPolicy {
                danger_allow_http_loopback: settings.danger_allow_http_loopback,
                danger_allow_non_public_addresses: settings.danger_allow_non_public_addresses,
            },
            total_timeout: settings.total_timeout,
            max_body_len: settings.max_body_len.min(MAX_DOCUMENT_LEN),
            max_cache_lifetime: settings.max_cache_lifetime,
            cache: Arc::new(ConfigCache::new(settings.max_cache_entries)),
            clock,
        })
    }

    /// Fetches and checks `origin`'s document, bypassing the cache.
    async fn fetch(
        &self,
        origin: &Origin,
    ) -> Result<(Arc<Configuration>, Option<Duration>), DiscoveryError> {
        let url = configuration_url(origin, self.policy)?;
        let limits = Limits {
            max_body_len: self.max_body_len,
            max_cache_lifetime: self.max_cache_lifetime,
        };
        let answer = tokio::time::timeout(self.total_timeout, exchange(&self.client, url, limits))
            .await
            .map_err(|_| DiscoveryError::Timeout)??;
        let development = self.policy.danger_allow_http_loopback;
        let config = check_document(&answer.body, origin, development)?;
        Ok((Arc::new(config), answer.lifetime))
    }
}

impl fmt::Debug for HttpConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfigSource")
            .field("policy", &self.policy)
            .field("total_timeout", &self.total_timeout)
            .field("max_body_len", &self.max_body_len)
            .field("max_cache_lifetime", &self.max_cache_lifetime)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ConfigSource for HttpConfigSource {
    /// # Errors
    ///
    /// The [`DiscoveryError`] of the first check that fails; see its variants. A failure
    /// leaves no cache entry for `origin` (an expired one is dropped before fetching).
    async fn configuration(&self, origin: &Origin) -> Result<Arc<Configuration>, DiscoveryError> {
        let now: Instant = self.clock.now();
        if let Some(config) = self.cache.get(origin, now) {
            debug!(origin = origin.as_str(), "configuration served from cache");
            return Ok(config);
        }
        match self.fetch(origin).await {
            Ok((config, lifetime)) => {
                // The lifetime counts from when the request was sent (RFC 9111 §4.2.3).
                self.cache.put(origin, &config, lifetime, now);
                debug!(
                    origin = origin.as_str(),
                    cache_seconds = lifetime.map_or(0, |l| l.as_secs()),
                    "configuration fetched"
                );
                Ok(config)
            }
            Err(error) => {
                debug!(
                    origin = origin.as_str(),
                    code = error.code(),
                    "configuration refused"
                );
                Err(error)
            }
        }
    }
}

/// Caps applied while the answer arrives.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_body_len: usize,
    max_cache_lifetime: Duration,
}

/// A 200 `application/json` answer within the size cap, not yet parsed.
struct Answer {
    body: Vec<u8>,
    lifetime: Option<Duration>,
}

/// The one network exchange: GET the URL, check status and headers before reading the body,
/// then stream the body under its cap.
async fn exchange(client: &Client, url: Url, limits: Limits) -> Result<Answer, DiscoveryError> {
    debug!(url = url.as_str(), "fetching configuration");
    let mut response = client
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| map_error(&e))?;
    let status = response.status().as_u16();
    debug!(status, "configuration response");
    check_status(status)?;
    let headers = response.headers();
    check_content_type(headers.get_all(CONTENT_TYPE).iter().map(|v| v.as_bytes()))?;
    let lifetime = freshness_lifetime(
        headers.get_all(CACHE_CONTROL).iter().map(|v| v.as_bytes()),
        headers.get(AGE).map(|v| v.as_bytes()),
        limits.max_cache_lifetime,
    );
    check_declared_length(response.content_length(), limits.max_body_len)?;
    let mut body = BodyBuffer::new(limits.max_body_len);
    while let Some(chunk) = response.chunk().await.map_err(|e| map_error(&e))? {
        body.push(&chunk)?;
    }
    Ok(Answer {
        body: body.into_bytes(),
        lifetime,
    })
}

/// Names what went wrong in a reqwest error without keeping it (it may quote the server).
fn map_error(error: &reqwest::Error) -> DiscoveryError {
    if let Some(failure) = find_in_chain::<ResolveFailure>(error) {
        return match failure {
            ResolveFailure::NonPublic => DiscoveryError::NonPublicAddress,
            ResolveFailure::Lookup => DiscoveryError::Resolve,
        };
    }
    if error.is_timeout() {
        DiscoveryError::Timeout
    } else if source_chain_has::<rustls::Error>(error) {
        DiscoveryError::Tls
    } else if error.is_connect() {
        DiscoveryError::Connect
    } else {
        DiscoveryError::Transport
    }
}

fn source_chain_has<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    find_in_chain::<T>(error).is_some()
}

/// The first `T` in `error`'s source chain. An `io::Error`'s `source` skips the error it wraps,
/// so the walk steps into the wrapped error instead (rustls errors arrive that way, nested).
fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        next = match current.downcast_ref::<io::Error>() {
            Some(io_error) => io_error
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    None
}

/// Resolves names with the system resolver and keeps only addresses a fetch may use (§1.8):
/// the check is on the resolved addresses, so a public name pointing at `127.0.0.1` is
/// refused too. The connection then goes to exactly the addresses checked here.
///
/// Public so other outbound clients (the server's status callbacks) install the same check with
/// `reqwest::ClientBuilder::dns_resolver`. Address literals never reach a resolver: check them
/// with [`is_public`](crate::address::is_public) before sending. A refusal appears in reqwest's
/// error source chain as a [`ResolveFailure`].
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    allow_non_public: bool,
}

impl PublicResolver {
    /// A resolver that refuses non-public addresses unless
    /// `danger_allow_non_public_addresses`.
    ///
    /// # Security
    ///
    /// With `danger_allow_non_public_addresses`, whoever names the host can make the client
    /// reach this server's own network (§1.8). For tests and local demos only.
    pub fn new(danger_allow_non_public_addresses: bool) -> Self {
        Self {
            allow_non_public: danger_allow_non_public_addresses,
        }
    }
}

/// Why [`PublicResolver`] gave no address; found again in reqwest's error chain.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    /// The name does not resolve.
    #[error("the name does not resolve")]
    Lookup,
    /// Every address the name resolves to is non-public.
    #[error("the name resolves only to non-public addresses")]
    NonPublic,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_non_public = self.allow_non_public;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| boxed(ResolveFailure::Lookup))?
                .collect();
            if found.is_empty() {
                return Err(boxed(ResolveFailure::Lookup));
            }
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| allow_non_public || is_public(addr.ip()))
                .collect();
            if usable.is_empty() {
                debug!(
                    host = host.as_str(),
                    "name resolves only to non-public addresses"
                );
                return Err(boxed(ResolveFailure::NonPublic));
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

fn boxed(failure: ResolveFailure) -> Box<dyn StdError + Send + Sync> {
    Box::new(failure)
}
