//! What every handler shares: the published document, the cookie key, the limits, and the
//! slots the two roles plug into.
//!
//! [`AppState::load`] reads the key files a [`Config`] names. A key file's contents never
//! reach a message: a file that does not parse is reported by path and a fixed reason.
//!
//! # Seams for the roles
//!
//! [`Roles`] holds, per role, everything dar-core builds from the configuration: the loaded
//! signing keys and the [`Sealer`]. With a database ([`AppState::with_store`],
//! [`AppState::load_with_store`]), each configured role's service is built from its slot, the
//! store and an HTTPS discovery client ([`discovery_settings`]):
//! [`AppState::account_provider`], [`AppState::recovery_provider`]. Their routes are merged
//! through [`crate::app_with`] ([`crate::pages`]). Without a database (the tests of the
//! well-known routes), the role routes answer 503.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRef;
use axum::http::HeaderValue;
use axum_extra::extract::cookie::Key;
use dar_core::{
    AccountProviderConfig, Configuration, EndpointUrl, Origin, RecoveryProviderConfig, Sealer,
    SealingKey, SigningKey, TOKEN_STATUS_PATH, VerifyingKeys,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::config::{
    AccountProviderSettings, Config, ConfigError, Limits, RecoveryProviderSettings,
};
use crate::security::{self, RateLimitConfig};

/// The largest key file read; real ones are under 1 KiB.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;
/// Bytes of a cookie signing key (what `cookie::Key` requires).
pub const COOKIE_KEY_LEN: usize = 64;

/// The account provider role as the server runs it: the role crate's service on the database,
/// discovering recovery providers over HTTPS.
pub type AccountProviderService =
    dar_account_provider::AccountProvider<dar_store::Store, dar_discovery::HttpConfigSource>;

/// The recovery provider role as the server runs it: the role crate's service on the
/// database, discovering account providers over HTTPS.
pub type RecoveryProviderService =
    dar_recovery_provider::RecoveryProvider<dar_store::Store, dar_discovery::HttpConfigSource>;

/// The account provider's slot: what dar-core builds from `[account_provider]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct AccountProviderSlot {
    /// The settings.
    pub settings: AccountProviderSettings,
    /// Token signing keys; the first signs new tokens, all are published.
    pub signing_keys: Vec<SigningKey>,
    /// Seals and opens the tokens' opaque data (§4.1.2).
    pub sealer: Sealer,
    /// The sealing keys the sealer was built from (the role's key ring needs them).
    pub sealing_keys: Vec<SealingKey>,
}

/// The recovery provider's slot: what dar-core builds from `[recovery_provider]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecoveryProviderSlot {
    /// The settings.
    pub settings: RecoveryProviderSettings,
    /// Countersigning keys; the first countersigns, all are published.
    pub countersign_keys: Vec<SigningKey>,
}

/// The roles this deployment plays. At least one slot is filled (the configuration checks it).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Roles {
    /// The account provider role, when configured.
    pub account_provider: Option<AccountProviderSlot>,
    /// The recovery provider role, when configured.
    pub recovery_provider: Option<RecoveryProviderSlot>,
}

/// The state every handler receives. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    clock: Arc<dyn Clock>,
}

struct Inner {
    public_origin: Origin,
    development: bool,
    document: Configuration,
    document_json: Bytes,
    cookie_key: Key,
    limits: Limits,
    csrf_exempt_paths: Vec<String>,
    protocol_paths: Vec<String>,
    roles: Roles,
    store: Option<dar_store::Store>,
    account_provider: Option<AccountProviderService>,
    recovery_provider: Option<RecoveryProviderService>,
    discovery: Option<dar_discovery::HttpConfigSource>,
    rate_limit: Arc<RateLimitConfig>,
    csp: HeaderValue,
    csp_framable: HeaderValue,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_origin", &self.inner.public_origin)
            .field("roles", &self.inner.roles)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Reads every key file the configuration names and builds the state.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyFile`] naming the key and the file (never its contents) when a key
    /// file cannot be read or parsed, and [`ConfigError::Invalid`] when the keys or URLs do not
    /// make a valid configuration document (§2).
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        Self::load_with_store(config, None)
    }

    /// As [`AppState::load`], with the database the accounts, sessions and roles use.
    ///
    /// # Errors
    ///
    /// As [`AppState::load`].
    pub fn load_with_store(
        config: &Config,
        store: Option<dar_store::Store>,
    ) -> Result<Self, ConfigError> {
        let key_file = |key: &str, path: &Path, reason: &str| ConfigError::KeyFile {
            file: config.file.clone(),
            key: key.to_owned(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let read = |key: &str, path: &Path| -> Result<Zeroizing<String>, ConfigError> {
            read_key_file(path).map_err(|reason| key_file(key, path, &reason))
        };
        let signing_keys = |key: &str, paths: &[std::path::PathBuf]| {
            paths
                .iter()
                .map(|path| {
                    let text = read(key, path)?;
                    SigningKey::from_pem_or_base64(&text).map_err(|_| {
                        key_file(key, path, "not a P-256 private key (PKCS#8 or SEC1 PEM)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };

        let account_provider = match &config.account_provider {
            None => None,
            Some(ap) => {
                let keys = signing_keys("account_provider.signing_keys", &ap.signing_keys)?;
                let mut sealing = Vec::with_capacity(ap.sealing_keys.len());
                for k in &ap.sealing_keys {
                    let key = "account_provider.sealing_keys";
                    let text = read(key, &k.file)?;
                    sealing.push(SealingKey::from_hex(k.id, text.trim()).map_err(|_| {
                        key_file(key, &k.file, "not an AES-256 key of 64 hex digits")
                    })?);
                }
                let sealer =
                    Sealer::new(sealing.clone(), ap.current_sealing_key, ap.sealing_layout)
                        .map_err(|e| ConfigError::Invalid {
                            file: config.file.clone(),
                            key: "account_provider.sealing_keys".into(),
                            reason: e.to_string(),
                        })?;
                let sealer = if ap.open_darrrr_v0 {
                    sealer.also_open_darrrr_v0()
                } else {
                    sealer
                };
                Some(AccountProviderSlot {
                    settings: ap.clone(),
                    signing_keys: keys,
                    sealer,
                    sealing_keys: sealing,
                })
            }
        };
        let recovery_provider = match &config.recovery_provider {
            None => None,
            Some(rp) => Some(RecoveryProviderSlot {
                settings: rp.clone(),
                countersign_keys: signing_keys(
                    "recovery_provider.countersign_keys",
                    &rp.countersign_keys,
                )?,
            }),
        };

        let cookie_key = match &config.session.key_file {
            Some(path) => {
                let text = read("session.key_file", path)?;
                cookie_key_from_hex(text.trim()).ok_or_else(|| {
                    key_file(
                        "session.key_file",
                        path,
                        "not 64 bytes written as 128 hex digits",
                    )
                })?
            }
            None => {
                tracing::warn!(
                    "session.key_file is not set: a new session key is generated at each start, \
                     so sessions end at restart and cannot be shared between instances"
                );
                generate_cookie_key().map_err(|_| ConfigError::Invalid {
                    file: config.file.clone(),
                    key: "session.key_file".into(),
                    reason: "the operating system's random number generator failed".into(),
                })?
            }
        };

        Self::build(
            config,
            Roles {
                account_provider,
                recovery_provider,
            },
            cookie_key,
            store,
        )
    }

    /// Builds the state from a configuration and already-loaded roles.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the configuration document built from them is not valid
    /// (it is re-read with dar-core's parser before it is ever published).
    pub fn new(config: &Config, roles: Roles, cookie_key: Key) -> Result<Self, ConfigError> {
        Self::build(config, roles, cookie_key, None)
    }

    /// As [`AppState::new`], with the database the accounts, sessions and roles use.
    ///
    /// # Errors
    ///
    /// As [`AppState::new`].
    pub fn with_store(
        config: &Config,
        roles: Roles,
        cookie_key: Key,
        store: dar_store::Store,
    ) -> Result<Self, ConfigError> {
        Self::build(config, roles, cookie_key, Some(store))
    }

    fn build(
        config: &Config,
        roles: Roles,
        cookie_key: Key,
        store: Option<dar_store::Store>,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: config.file.clone(),
            key: key.to_owned(),
            reason,
        };
        let dev = config.development;
        let url = |key: &str, path: &str| {
            EndpointUrl::parse(&format!("{}{path}", config.public_origin), dev)
                .map_err(|e| invalid(key, e.to_string()))
        };
        let public_keys = |key: &str, keys: &[SigningKey]| {
            VerifyingKeys::new(keys.iter().map(SigningKey::verifying_key))
                .ok_or_else(|| invalid(key, "must list 1 to 8 keys".into()))
        };
        let ap = match &roles.account_provider {
            None => None,
            Some(slot) => Some(AccountProviderConfig {
                tokensign_keys: public_keys("account_provider.signing_keys", &slot.signing_keys)?,
                save_token_return: url(
                    "account_provider.save_token_return_path",
                    &slot.settings.save_token_return_path,
                )?,
                recover_account_return: url(
                    "account_provider.recover_account_return_path",
                    &slot.settings.recover_account_return_path,
                )?,
            }),
        };
        let rp = match &roles.recovery_provider {
            None => None,
            Some(slot) => Some(RecoveryProviderConfig {
                countersign_keys: public_keys(
                    "recovery_provider.countersign_keys",
                    &slot.countersign_keys,
                )?,
                token_max_size: slot.settings.token_max_size,
                save_token: url(
                    "recovery_provider.save_token_path",
                    &slot.settings.save_token_path,
                )?,
                save_token_async_api_iframe: slot
                    .settings
                    .save_token_async_api_iframe_path
                    .as_deref()
                    .map(|p| url("recovery_provider.save_token_async_api_iframe_path", p))
                    .transpose()?,
                recover_account: url(
                    "recovery_provider.recover_account_path",
                    &slot.settings.recover_account_path,
                )?,
            }),
        };
        let document = Configuration::new(
            config.public_origin.clone(),
            Some(config.privacy_policy.clone()),
            Some(config.icon_152px.clone()),
            ap,
            rp,
        );
        let json = serde_json::to_vec(&document.to_json())
            .map_err(|e| invalid("document", e.to_string()))?;
        // Publish only what dar-core's own reader (the one peers' code mirrors) accepts.
        Configuration::from_json(&json, dev).map_err(|e| invalid("document", e.to_string()))?;

        // One discovery client (and cache) for both roles and the pages.
        let discovery = match &store {
            Some(_) => Some(
                dar_discovery::HttpConfigSource::new(discovery_settings(config)?)
                    .map_err(|e| invalid("tls", e.to_string()))?,
            ),
            None => None,
        };
        let account_provider = match (&store, &discovery, &roles.account_provider) {
            (Some(store), Some(discovery), Some(slot)) => Some(account_provider_service(
                config,
                slot,
                store,
                discovery.clone(),
            )?),
            _ => None,
        };
        let recovery_provider = match (&store, &discovery, &roles.recovery_provider) {
            (Some(store), Some(discovery), Some(slot)) => Some(recovery_provider_service(
                config,
                slot,
                store,
                discovery.clone(),
            )?),
            _ => None,
        };
        let protocol_paths = config.protocol_paths();
        let mut csrf_exempt_paths = protocol_paths.clone();
        csrf_exempt_paths.push(TOKEN_STATUS_PATH.to_owned());
        // §3.3: only the account providers the recovery provider serves may frame its iframe.
        let frame_ancestors = roles
            .recovery_provider
            .as_ref()
            .and_then(|slot| slot.settings.allowed_account_providers.clone())
            .unwrap_or_default();
        let rate_limit = security::rate_limit_config(&config.limits)
            .ok_or_else(|| invalid("limits", "rate limit out of range".into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                public_origin: config.public_origin.clone(),
                development: dev,
                document,
                document_json: Bytes::from(json),
                cookie_key,
                limits: config.limits.clone(),
                csrf_exempt_paths,
                protocol_paths,
                roles,
                store,
                account_provider,
                recovery_provider,
                discovery,
                rate_limit: Arc::new(rate_limit),
                csp: security::content_security_policy(false, &[], dev),
                csp_framable: security::content_security_policy(true, &frame_ancestors, dev),
            }),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same state reading time from `clock` (the system's clock until then): every
    /// handler's notion of "now" comes from it.
    ///
    /// ```no_run
    /// # fn run(state: dar_server::AppState) {
    /// use std::sync::Arc;
    /// use dar_server::clock::ManualClock;
    ///
    /// let clock = Arc::new(ManualClock::new(time::OffsetDateTime::UNIX_EPOCH));
    /// let state = state.with_clock(clock.clone());
    /// clock.advance(time::Duration::hours(72));
    /// assert_eq!(state.now(), time::OffsetDateTime::UNIX_EPOCH + time::Duration::hours(72));
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The current time, from the state's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The state's clock, for the workers that run beside the handlers.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// The public origin: the base of every link and redirect.
    pub fn public_origin(&self) -> &Origin {
        &self.inner.public_origin
    }

    /// The name users know this deployment by in mail: the account provider's
    /// `mail.site_name`, else the public origin's host and port.
    pub fn site_name(&self) -> String {
        self.roles().account_provider.as_ref().map_or_else(
            || self.public_origin().authority().to_owned(),
            |ap| ap.settings.mail.site_name.clone(),
        )
    }

    /// Whether development mode (http loopback origins) is on.
    pub fn development(&self) -> bool {
        self.inner.development
    }

    /// The configuration document this deployment publishes (§2).
    pub fn document(&self) -> &Configuration {
        &self.inner.document
    }

    /// The document, serialized once at start.
    pub fn document_json(&self) -> Bytes {
        self.inner.document_json.clone()
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The roles' slots.
    pub fn roles(&self) -> &Roles {
        &self.inner.roles
    }

    /// The database, when one was given ([`AppState::with_store`]).
    pub fn store(&self) -> Option<&dar_store::Store> {
        self.inner.store.as_ref()
    }

    /// The account provider role's service, when this deployment plays it and has a database.
    pub fn account_provider(&self) -> Option<&AccountProviderService> {
        self.inner.account_provider.as_ref()
    }

    /// The recovery provider role's service, when this deployment plays it and has a database.
    pub fn recovery_provider(&self) -> Option<&RecoveryProviderService> {
        self.inner.recovery_provider.as_ref()
    }

    /// The client that fetches peers' configuration documents (shared with the roles), when
    /// the state has a database.
    pub fn discovery(&self) -> Option<&dar_discovery::HttpConfigSource> {
        self.inner.discovery.as_ref()
    }

    /// The configured protocol endpoint paths (not the well-known ones).
    pub fn protocol_paths(&self) -> &[String] {
        &self.inner.protocol_paths
    }

    /// The paths whose state-changing requests arrive cross-site by design (§6.5).
    pub fn csrf_exempt_paths(&self) -> &[String] {
        &self.inner.csrf_exempt_paths
    }

    pub(crate) fn rate_limit(&self) -> Arc<RateLimitConfig> {
        self.inner.rate_limit.clone()
    }

    pub(crate) fn csp(&self, framable: bool) -> HeaderValue {
        if framable {
            self.inner.csp_framable.clone()
        } else {
            self.inner.csp.clone()
        }
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.inner.cookie_key.clone()
    }
}

/// The account provider role's service for a slot: its settings from the configuration, its
/// key ring from the slot's keys, the database, and discovery over HTTPS
/// ([`discovery_settings`]).
fn account_provider_service(
    config: &Config,
    slot: &AccountProviderSlot,
    store: &dar_store::Store,
    discovery: dar_discovery::HttpConfigSource,
) -> Result<AccountProviderService, ConfigError> {
    use dar_account_provider::{KeyRing, KnownRecoveryProvider, Settings};
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        file: config.file.clone(),
        key: key.to_owned(),
        reason,
    };
    let dev = config.development;
    let url = |key: &str, path: &str| {
        EndpointUrl::parse(&format!("{}{path}", config.public_origin), dev)
            .map_err(|e| invalid(key, e.to_string()))
    };
    let mut settings = Settings::new(
        config.public_origin.clone(),
        url(
            "account_provider.save_token_return_path",
            &slot.settings.save_token_return_path,
        )?,
        url(
            "account_provider.recover_account_return_path",
            &slot.settings.recover_account_return_path,
        )?,
    );
    settings.privacy_policy = Some(config.privacy_policy.clone());
    settings.icon_152px = Some(config.icon_152px.clone());
    settings.recovery_providers = slot
        .settings
        .allowed_recovery_providers
        .iter()
        .map(|origin| {
            let ranges = slot
                .settings
                .status_addresses
                .iter()
                .find(|(o, _)| o == origin)
                .map(|(_, ranges)| ranges.clone());
            let known = KnownRecoveryProvider::new(origin.clone());
            match ranges {
                Some(ranges) => known.with_status_addresses(ranges),
                None => known,
            }
        })
        .collect();
    let mut keys = slot.signing_keys.iter();
    let signing = keys
        .next()
        .ok_or_else(|| invalid("account_provider.signing_keys", "no key".into()))?;
    // The key ring owns its keys: a copy of the current one, the others published only.
    let signing = SigningKey::from_scalar_bytes(&signing.secret_bytes())
        .map_err(|e| invalid("account_provider.signing_keys", e.to_string()))?;
    let ring = KeyRing::from_parts(
        signing,
        keys.map(SigningKey::verifying_key).collect(),
        slot.sealing_keys.clone(),
        slot.settings.current_sealing_key,
    )
    .map_err(|e| invalid("account_provider.sealing_keys", e.to_string()))?;
    Ok(dar_account_provider::AccountProvider::new(
        settings,
        ring,
        store.clone(),
        discovery,
    ))
}

/// The recovery provider role's service for a slot: the authoritative audiences (default: the
/// public origin), a copy of the current countersigning key, `token_max_size`, the database,
/// and discovery over HTTPS ([`discovery_settings`]).
fn recovery_provider_service(
    config: &Config,
    slot: &RecoveryProviderSlot,
    store: &dar_store::Store,
    discovery: dar_discovery::HttpConfigSource,
) -> Result<RecoveryProviderService, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        file: config.file.clone(),
        key: key.to_owned(),
        reason,
    };
    let key = slot
        .countersign_keys
        .first()
        .ok_or_else(|| invalid("recovery_provider.countersign_keys", "no key".into()))?;
    let key = SigningKey::from_scalar_bytes(&key.secret_bytes())
        .map_err(|e| invalid("recovery_provider.countersign_keys", e.to_string()))?;
    let mut audiences = slot.settings.authoritative_audiences.clone();
    if audiences.is_empty() {
        audiences.push(config.public_origin.clone());
    }
    let mut settings =
        dar_recovery_provider::RecoveryProviderSettings::new(audiences, Arc::new(key));
    settings.token_max_size = slot.settings.token_max_size;
    Ok(dar_recovery_provider::RecoveryProvider::new(
        settings,
        store.clone(),
        discovery,
    ))
}

/// How the server fetches peers' configuration documents. In development, loopback and other
/// non-public addresses and http loopback origins are allowed, and the local CA's certificate
/// (`tls.local_ca_dir`, created if missing) is trusted, so that two local deployments can talk
/// to each other. In production, none of that.
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming `tls.local_ca_dir` when the local CA cannot be created or
/// read.
pub fn discovery_settings(config: &Config) -> Result<dar_discovery::HttpSettings, ConfigError> {
    let mut settings = dar_discovery::HttpSettings::default();
    if config.development {
        settings.danger_allow_non_public_addresses = true;
        settings.danger_allow_http_loopback = true;
        if let crate::config::TlsSettings::LocalCa { dir, .. } = &config.tls {
            let ca = crate::tls::ensure_local_ca(dir, &config.local_tls_names()).map_err(|e| {
                ConfigError::Invalid {
                    file: config.file.clone(),
                    key: "tls.local_ca_dir".into(),
                    reason: e.to_string(),
                }
            })?;
            let pem = std::fs::read(ca.ca_cert_path()).map_err(|e| ConfigError::Invalid {
                file: config.file.clone(),
                key: "tls.local_ca_dir".into(),
                reason: format!("cannot read ca.pem: {}", e.kind()),
            })?;
            settings.extra_root_certificates.push(pem);
        }
    }
    Ok(settings)
}

/// Reads a key file, refusing oversize ones. The error is a fixed description.
pub(crate) fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, String> {
    read_key_file(path)
}

/// Reads a key file, refusing oversize ones. The error is a fixed description.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {}", e.kind()))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err("larger than 64 KiB: not a key file".into());
    }
    warn_if_readable_by_others(path, &meta);
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read: {}", e.kind()))?);
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err("not text (expected PEM or hex)".into()),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt as _;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "key file is accessible to group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _meta: &std::fs::Metadata) {}

/// A cookie key from 128 hex digits.
pub(crate) fn cookie_key_from_hex(text: &str) -> Option<Key> {
    let digits = text.as_bytes();
    if digits.len() != 2 * COOKIE_KEY_LEN {
        return None;
    }
    let mut bytes = Zeroizing::new([0u8; COOKIE_KEY_LEN]);
    for (out, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *out = u8::try_from(hi * 16 + lo).ok()?;
    }
    Key::try_from(&bytes[..]).ok()
}

/// A fresh random cookie key from the operating system.
///
/// # Errors
///
/// When the operating system's random number generator fails.
pub fn generate_cookie_key() -> Result<Key, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; COOKIE_KEY_LEN]);
    getrandom::fill(&mut bytes[..])?;
    // `Key::from` panics only on fewer than 64 bytes; `bytes` has exactly COOKIE_KEY_LEN = 64.
    Ok(Key::from(&bytes[..]))
}

#[cfg(test)]
mod tests;
