//! Fetching and caching the other side's configuration document (§2) safely.
//!
//! The role crates depend only on [`ConfigSource`] (with `default-features = false`), so they
//! never see an HTTP client. The `http` feature adds the HTTPS implementation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use dar_core::{Configuration, Origin};

/// Why a configuration document could not be obtained. Every variant is a refusal to trust the
/// other side; none leaves anything cached.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// No configuration is known for this origin (the static source), or the server answered
    /// 404.
    #[error("no configuration document for this origin")]
    NotFound,
    /// The document does not parse or fails validation (§2).
    #[error("invalid configuration document: {0}")]
    Invalid(dar_core::Error),
    /// The document's issuer is not the origin that was asked for (§3.1 step 6, §3.5 step 11).
    #[error("the document's issuer is not the origin asked for")]
    IssuerMismatch,
}

/// Where the role crates get the other side's configuration from.
pub trait ConfigSource: Send + Sync {
    /// The configuration of `origin`, from a cache entry still within its lifetime or freshly
    /// fetched.
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
    async fn configuration(&self, origin: &Origin) -> Result<Arc<Configuration>, DiscoveryError> {
        self.documents
            .get(origin)
            .cloned()
            .ok_or(DiscoveryError::NotFound)
    }
}
