//! The deployment's configuration file (TOML).
//!
//! [`Config::load`] reads the file and checks every value; the result is a [`Config`] whose
//! fields are already typed ([`Origin`], [`SocketAddr`], validated endpoint paths). Unknown keys
//! are refused (a misspelt key would otherwise be silently ignored), and every error names the
//! file and the key. Key files are only named here; [`crate::AppState::load`] reads them, and
//! its errors name the file but never print what is in it.
//!
//! Relative paths (key files, TLS files, the local CA directory) are relative to the directory
//! of the configuration file, so a deployment directory can be moved as a whole.
//!
//! The documented example is `crates/dar-server/examples/dar.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use dar_core::{EndpointUrl, Layout, MAX_KEYS, MAX_TOKEN_LEN, Origin};
use serde::Deserialize;

/// The largest configuration file read, far above any real one.
const MAX_CONFIG_LEN: u64 = 256 * 1024;
/// The largest endpoint path accepted.
const MAX_PATH_LEN: usize = 256;
/// The well-known prefix (§2, §3.6): configured endpoints may not live under it.
const WELL_KNOWN_PREFIX: &str = "/.well-known/";

/// The deployment configuration, checked. Built only by [`Config::load`] or
/// [`Config::from_toml_str`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The file this came from (for messages).
    pub file: PathBuf,
    /// `listen`: the HTTPS socket address.
    pub listen: SocketAddr,
    /// `public_origin`: the origin users and peers reach this deployment at. Links, redirects
    /// and the configuration document's issuer are built from it, never from a request's
    /// `Host` header.
    pub public_origin: Origin,
    /// `database`: where the roles keep their state (`sqlite:PATH` or `postgres://...`).
    pub database: DatabaseUrl,
    /// `development`: allows an http loopback `public_origin` and http loopback peers. Never on
    /// in production.
    pub development: bool,
    /// `[tls]`: the certificate the HTTPS listener presents.
    pub tls: TlsSettings,
    /// `http_listen`: an optional plain-http listener that answers every request with 401 and
    /// an empty body, never a redirect (§2, §3).
    pub http_listen: Option<SocketAddr>,
    /// `privacy_policy`: published in the configuration document (§2).
    pub privacy_policy: EndpointUrl,
    /// `icon_152px`: published in the configuration document (§2).
    pub icon_152px: EndpointUrl,
    /// `[account_provider]`, when this deployment plays that role.
    pub account_provider: Option<AccountProviderSettings>,
    /// `[recovery_provider]`, when this deployment plays that role.
    pub recovery_provider: Option<RecoveryProviderSettings>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[session]`.
    pub session: SessionSettings,
    /// `[log]`.
    pub log: LogSettings,
}

/// A database URL. It may hold a password, so `Debug` shows only its scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL, for the storage layer.
    ///
    /// # Security
    ///
    /// May contain a password: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (`sqlite`, `postgres`), safe to log.
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}:[redacted])", self.scheme())
    }
}

/// `[tls]`: where the HTTPS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSettings {
    /// `cert` and `key`: PEM files (a certificate chain, leaf first, and its private key).
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key (PKCS#8, SEC1 or PKCS#1 PEM).
        key: PathBuf,
    },
    /// `local_ca_dir` (and optional `local_names`): a local CA and a leaf certificate,
    /// generated once into the directory and reused (see [`crate::tls::ensure_local_ca`]).
    LocalCa {
        /// The directory holding `ca.pem`, `ca-key.pem`, `cert.pem` and `key.pem`.
        dir: PathBuf,
        /// Host names and addresses for the leaf, besides `localhost`, `127.0.0.1` and `::1`.
        names: Vec<String>,
    },
}

/// A sealing key file and the key id tokens sealed under it carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKeyFile {
    /// The key id (dar-v1 layout).
    pub id: u32,
    /// A file holding the 256-bit key as 64 hex digits.
    pub file: PathBuf,
}

/// `[account_provider]`: this deployment issues recovery tokens and accepts them back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountProviderSettings {
    /// `signing_keys`: private key files (PKCS#8 or SEC1 PEM). The first signs new tokens; all
    /// are published as `tokensign-pubkeys-secp256r1` (rotation, §2).
    pub signing_keys: Vec<PathBuf>,
    /// `sealing_keys`: AES-256-GCM keys for the opaque data (§4.1.2).
    pub sealing_keys: Vec<SealingKeyFile>,
    /// `current_sealing_key`: the id that seals new tokens (default: the first listed).
    pub current_sealing_key: u32,
    /// `sealing_layout`: `dar-v1` (default) or `darrrr-v0`.
    pub sealing_layout: Layout,
    /// `open_darrrr_v0`: also open tokens sealed in the Ruby peer's layout.
    pub open_darrrr_v0: bool,
    /// `save_token_return_path`: where recovery providers send users back after saving (§3.2).
    pub save_token_return_path: String,
    /// `recover_account_return_path`: where countersigned tokens arrive (§3.5).
    pub recover_account_return_path: String,
    /// `allowed_recovery_providers`: the recovery providers users may pick (§6.5: tokens are
    /// delegated only to providers the operator chose).
    pub allowed_recovery_providers: Vec<Origin>,
    /// `status_requested`: set the status-requested option on issued tokens (§3.6).
    pub status_requested: bool,
    /// `[account_provider.status_addresses]`: per allowed recovery provider (origin as the
    /// key), the addresses (`address/prefix` or a bare address) its token-status calls may
    /// come from (§3.6.2). A recovery provider not listed may call from any address.
    pub status_addresses: Vec<(Origin, Vec<dar_account_provider::IpRange>)>,
    /// `[account_provider.lockout]`: the lockout-recovery policy (what evidence unlocks, when;
    /// spec/lockout-policy.md). Every key has a default; the rules are checked at load.
    pub lockout: dar_account_provider::LockoutPolicy,
    /// `[account_provider.mail]`: how lockout-recovery notices and email codes are sent.
    pub mail: AccountMailSettings,
}

/// `[account_provider.mail]`: the account provider's mail (recovery notices, cancel links,
/// email codes), sent by the worker `dar serve` runs. Without `smtp_url`, messages are written
/// as `.eml` files into `dir` (the demo does this).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountMailSettings {
    /// `from`: the sender (default `dar@<public origin's host>`).
    pub from: String,
    /// `site_name`: the name users know this provider by (default: the public origin's host).
    pub site_name: String,
    /// `dir`: where `.eml` files go when there is no `smtp_url` (default `mail`).
    pub dir: PathBuf,
    /// `smtp_url` and the keys beside it: the SMTP server, when mail is sent rather than
    /// written to files.
    pub smtp: Option<SmtpServer>,
    /// `interval_secs`: how often due mail and due timed unlocks are processed (default 10).
    pub interval: Duration,
    /// `lease_secs`: how long a message being sent is reserved for the worker sending it
    /// (default 120). A worker that stops mid-send leaves its messages to be sent again once
    /// the lease ends; a shorter lease resends sooner, and twice if sending takes longer.
    pub lease: Duration,
}

/// An SMTP server to send through: the `smtp_*` keys of `[account_provider.mail]` and
/// `[recovery_provider.outbox]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpServer {
    /// `smtp_url`: `smtps://host[:port]` or `smtp://host[:port]?tls=required`; plain
    /// `smtp://` only with `development` and a loopback host.
    pub url: String,
    /// `smtp_user`: the SMTP user name, when the server wants authentication.
    pub user: Option<String>,
    /// `smtp_password_file`: a file holding the SMTP password (never in the configuration).
    pub password_file: Option<PathBuf>,
    /// `smtp_ca_file`: a PEM CA to trust for the SMTP server instead of the web roots.
    pub ca_file: Option<PathBuf>,
}

/// The `smtp_*` keys of a mail section, as written (each section lists them itself:
/// `serde(flatten)` would lose `deny_unknown_fields`).
struct RawSmtp {
    smtp_url: Option<String>,
    smtp_user: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca_file: Option<PathBuf>,
}

/// `[recovery_provider]`: this deployment saves tokens for its users and countersigns them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryProviderSettings {
    /// `countersign_keys`: private key files. The first countersigns; all are published as
    /// `countersign-pubkeys-secp256r1`.
    pub countersign_keys: Vec<PathBuf>,
    /// `save_token_path` (§3.1).
    pub save_token_path: String,
    /// `save_token_async_api_iframe_path` (§3.3), if offered. The only route that may be
    /// framed.
    pub save_token_async_api_iframe_path: Option<String>,
    /// `recover_account_path` (§3.4).
    pub recover_account_path: String,
    /// `token_max_size`: the largest token accepted, published in the document (§2).
    pub token_max_size: usize,
    /// `authoritative_audiences`: the origins saved tokens may be addressed to (default: the
    /// public origin).
    pub authoritative_audiences: Vec<Origin>,
    /// `allowed_account_providers`: when set, only these issuers' tokens are saved; when
    /// absent, any account provider whose configuration can be fetched.
    pub allowed_account_providers: Option<Vec<Origin>>,
    /// `recovery_sign_in_max_age_secs`: how long ago the user may have signed in (password and
    /// second factor) and still exercise a token without signing in again (§6.3.1: exercising
    /// is a high-risk action). 60 s to the session's own 12 h; default 10 minutes.
    pub recovery_sign_in_max_age: Duration,
    /// `[recovery_provider.outbox]`: how `dar serve` delivers status callbacks and user
    /// notifications.
    pub outbox: OutboxSettings,
}

/// `[recovery_provider.outbox]`: the outbox worker `dar serve` runs next to the listeners.
/// Every key has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxSettings {
    /// `interval_secs`: how often due messages are sent (default 10).
    pub interval: Duration,
    /// `mail_dir`: where notifications are written as `.eml` files when there is no
    /// `smtp_url` (default `mail`, relative to the configuration file).
    pub mail_dir: PathBuf,
    /// `smtp_url` and the keys beside it: the SMTP server notifications are sent through,
    /// instead of being written into `mail_dir`.
    pub smtp: Option<SmtpServer>,
    /// `mail_from`: the notifications' `From` address (default `dar@<public origin's host>`).
    pub mail_from: String,
    /// `site_name`: the recovery provider's name as users know it (default: the public
    /// origin's host).
    pub site_name: String,
    /// `repudiate_url`: the page where a signed-in user repudiates a recovery (default
    /// `<public_origin>/rp/tokens`).
    pub repudiate_url: String,
    /// `recipient_domain`: mail users whose id is not an address at `<id>@<domain>` (default:
    /// none, such users get no mail).
    pub recipient_domain: Option<String>,
}

/// `[limits]`: what one request or one client may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// `body_limit_bytes`: the largest request body on routes that do not set their own
    /// (default 64 KiB, far below axum's 2 MB).
    pub body_limit_bytes: usize,
    /// `request_timeout_secs`: how long one request may take (default 15 s).
    pub request_timeout: Duration,
    /// `client_timeout_secs`: how long a connection may wait on its client (default 10 s): to
    /// finish the TLS handshake, to send its first request, to send a request's headers, and
    /// (HTTP/1.1) between requests on a kept-alive connection. Slow or silent clients are
    /// closed after it, so they cannot hold connections open.
    pub client_timeout: Duration,
    /// `connections_per_address`: how many connections one client (an IPv4 address, an IPv6
    /// /64) may hold open at once (default 256); more are closed as they are accepted. Trusted
    /// proxies are not counted.
    pub connections_per_address: usize,
    /// `requests_per_second`: the sustained per-client rate (default 20).
    pub requests_per_second: u32,
    /// `burst`: how many requests a client may send at once (default 60).
    pub burst: u32,
    /// `trusted_proxies`: peers whose `X-Forwarded-For` is believed. Empty (the default): the
    /// rate limit is keyed by the TCP peer address, and forwarding headers are ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(15),
            client_timeout: Duration::from_secs(10),
            connections_per_address: 256,
            requests_per_second: 20,
            burst: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[session]`: the key that signs session cookies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionSettings {
    /// `key_file`: 64 random bytes as 128 hex digits. When absent a key is generated at each
    /// start: sessions end at every restart and cannot be shared between instances.
    pub key_file: Option<PathBuf>,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One short human-readable line per event (default).
    #[default]
    Compact,
    /// One JSON object per event.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSettings {
    /// `format`: `compact` or `json`.
    pub format: LogFormat,
    /// `level`: a tracing filter (`info`, `dar_server=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Compact,
            level: "info".into(),
        }
    }
}

/// Why a configuration cannot be used. Every variant names the file; none holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read the configuration: {source}", file.display())]
    Read {
        /// The configuration file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key (never quoting a string value).
        message: String,
    },
    /// A value is well-typed but not acceptable.
    #[error("{}: `{key}`: {reason}", file.display())]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// The key, dotted (`recovery_provider.token_max_size`).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A key file named by the configuration cannot be used. Its contents are never printed.
    #[error("{}: `{key}`: {}: {reason}", file.display(), path.display())]
    KeyFile {
        /// The configuration file.
        file: PathBuf,
        /// The key naming the key file.
        key: String,
        /// The key file.
        path: PathBuf,
        /// What is wrong (a fixed description).
        reason: String,
    },
}

impl ConfigError {
    /// The key at fault, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } | Self::KeyFile { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } => None,
        }
    }
}

// ---- The file as written -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    public_origin: String,
    database: String,
    #[serde(default)]
    development: bool,
    http_listen: Option<String>,
    privacy_policy: String,
    icon_152px: String,
    tls: RawTls,
    account_provider: Option<RawAccountProvider>,
    recovery_provider: Option<RawRecoveryProvider>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    local_ca_dir: Option<PathBuf>,
    #[serde(default)]
    local_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSealingKey {
    id: u32,
    file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccountProvider {
    signing_keys: Vec<PathBuf>,
    sealing_keys: Vec<RawSealingKey>,
    current_sealing_key: Option<u32>,
    sealing_layout: Option<String>,
    #[serde(default)]
    open_darrrr_v0: bool,
    save_token_return_path: Option<String>,
    recover_account_return_path: Option<String>,
    allowed_recovery_providers: Vec<String>,
    #[serde(default)]
    status_requested: bool,
    #[serde(default)]
    status_addresses: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    lockout: dar_account_provider::LockoutPolicy,
    #[serde(default)]
    mail: RawAccountMail,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccountMail {
    from: Option<String>,
    site_name: Option<String>,
    dir: Option<PathBuf>,
    smtp_url: Option<String>,
    smtp_user: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca_file: Option<PathBuf>,
    interval_secs: Option<u64>,
    lease_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecoveryProvider {
    countersign_keys: Vec<PathBuf>,
    save_token_path: Option<String>,
    save_token_async_api_iframe_path: Option<String>,
    recover_account_path: Option<String>,
    token_max_size: Option<u64>,
    authoritative_audiences: Option<Vec<String>>,
    allowed_account_providers: Option<Vec<String>>,
    recovery_sign_in_max_age_secs: Option<u64>,
    #[serde(default)]
    outbox: RawOutbox,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    interval_secs: Option<u64>,
    mail_dir: Option<PathBuf>,
    mail_from: Option<String>,
    site_name: Option<String>,
    repudiate_url: Option<String>,
    recipient_domain: Option<String>,
    smtp_url: Option<String>,
    smtp_user: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    body_limit_bytes: Option<u64>,
    request_timeout_secs: Option<u64>,
    client_timeout_secs: Option<u64>,
    connections_per_address: Option<u32>,
    requests_per_second: Option<u32>,
    burst: Option<u32>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    key_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

/// Default endpoint paths.
pub(crate) const DEFAULT_SAVE_TOKEN_RETURN: &str = "/dar/save-token-return";
pub(crate) const DEFAULT_RECOVER_ACCOUNT_RETURN: &str = "/dar/recover-account-return";
pub(crate) const DEFAULT_SAVE_TOKEN: &str = "/dar/save-token";
pub(crate) const DEFAULT_RECOVER_ACCOUNT: &str = "/dar/recover-account";
/// Default `token-max-size`: real tokens are a few hundred bytes.
const DEFAULT_TOKEN_MAX_SIZE: usize = 8 * 1024;
const DEFAULT_OUTBOX_INTERVAL_SECS: u64 = 10;
/// Default `recovery_provider.recovery_sign_in_max_age_secs`: ten minutes.
const DEFAULT_RECOVERY_SIGN_IN_MAX_AGE_SECS: u64 = 10 * 60;
/// Default `account_provider.mail.lease_secs`: far longer than an SMTP delivery takes.
const DEFAULT_MAIL_LEASE_SECS: u64 = 120;

impl Config {
    /// Reads and checks a configuration file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] when the file cannot be read (or is over 256 KiB),
    /// [`ConfigError::Syntax`] for TOML errors, unknown keys and wrong types, and
    /// [`ConfigError::Invalid`] for values that are not acceptable.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let read_err = |source| ConfigError::Read {
            file: file.to_owned(),
            source,
        };
        let len = std::fs::metadata(file).map_err(read_err)?.len();
        if len > MAX_CONFIG_LEN {
            return Err(read_err(std::io::Error::other("larger than 256 KiB")));
        }
        let text = std::fs::read_to_string(file).map_err(read_err)?;
        let base = file.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, file, base)
    }

    /// Checks a configuration given as text. `file` is used in messages; relative paths are
    /// resolved against `base_dir`.
    ///
    /// # Errors
    ///
    /// As [`Config::load`], less the read errors.
    pub fn from_toml_str(text: &str, file: &Path, base_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(&e, text, file))?;
        Checker {
            file,
            base: base_dir,
        }
        .check(raw)
    }

    /// The paths of the protocol endpoints this deployment serves (§3), besides the well-known
    /// ones: the http listener answers them with 401, and the CSRF origin check exempts them.
    pub fn protocol_paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        if let Some(ap) = &self.account_provider {
            paths.push(ap.save_token_return_path.clone());
            paths.push(ap.recover_account_return_path.clone());
        }
        if let Some(rp) = &self.recovery_provider {
            paths.push(rp.save_token_path.clone());
            paths.push(rp.recover_account_path.clone());
            paths.extend(rp.save_token_async_api_iframe_path.clone());
        }
        paths
    }

    /// The names the local CA's leaf certificate covers: `localhost`, `127.0.0.1`, `::1`, the
    /// public origin's host, and `local_names`.
    pub fn local_tls_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let host = origin_host(&self.public_origin);
        if !host.is_empty() {
            names.push(host);
        }
        if let TlsSettings::LocalCa { names: extra, .. } = &self.tls {
            names.extend(extra.iter().cloned());
        }
        let mut seen = BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

/// The host of an origin, without brackets or port.
fn origin_host(origin: &Origin) -> String {
    let authority = origin.authority();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .to_owned()
}

/// Turns a TOML error into a message that names the key and never quotes a string value.
fn syntax_error(error: &toml::de::Error, text: &str, file: &Path) -> ConfigError {
    let (line, column, key) = match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or_default();
            // The table the line is in: the last `[header]` above it.
            let table = text
                .lines()
                .take(line - 1)
                .map(str::trim)
                .filter(|l| l.starts_with('[') && !l.starts_with("[["))
                .last()
                .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim().to_owned())
                .filter(|k| !k.is_empty() && !k.starts_with('['))
                .map(|k| match table {
                    Some(table) => format!("{table}.{k}"),
                    None => k,
                });
            (line, column, key)
        }
        None => (0, 0, None),
    };
    let message = redact_quoted_strings(error.message().trim());
    let message = match key {
        Some(key) => format!("`{key}`: {message}"),
        None => message,
    };
    ConfigError::Syntax {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// serde quotes a mistyped string value (`invalid type: string "…"`); a misplaced secret
/// must not reach a terminal or a log, so the quoted part is dropped.
fn redact_quoted_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        let (head, tail) = rest.split_at(start + "string ".len());
        out.push_str(head);
        let after_quote = tail.get(1..).unwrap_or_default();
        match after_quote.find("\",") {
            Some(end) => {
                out.push_str("value");
                rest = after_quote.get(end + 1..).unwrap_or_default();
            }
            None => {
                out.push_str("value");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

struct Checker<'a> {
    file: &'a Path,
    base: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn socket(&self, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
        SocketAddr::from_str(text)
            .map_err(|_| self.invalid(key, "not a socket address (like 0.0.0.0:443 or [::1]:8443)"))
    }

    fn origin(&self, key: &str, text: &str, development: bool) -> Result<Origin, ConfigError> {
        let parsed = if development {
            Origin::parse_development(text)
        } else {
            Origin::parse(text)
        };
        parsed.map_err(|e| {
            let hint = if development {
                "an https origin, or http on a loopback host"
            } else {
                "an https origin (http is allowed only with development = true, on loopback)"
            };
            self.invalid(key, format!("not {hint}: {e}"))
        })
    }

    fn origins(
        &self,
        key: &str,
        list: &[String],
        development: bool,
    ) -> Result<Vec<Origin>, ConfigError> {
        let mut out: Vec<Origin> = Vec::with_capacity(list.len());
        for (i, text) in list.iter().enumerate() {
            let origin = self.origin(&format!("{key}[{i}]"), text, development)?;
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
        Ok(out)
    }

    /// A URL published in the document: a full URL, or a path on the public origin.
    fn url(
        &self,
        key: &str,
        text: &str,
        origin: &Origin,
        development: bool,
    ) -> Result<EndpointUrl, ConfigError> {
        let full = if text.starts_with('/') {
            format!("{origin}{text}")
        } else {
            text.to_owned()
        };
        let url = EndpointUrl::parse(&full, development)
            .map_err(|e| self.invalid(key, format!("not a usable URL: {e}")))?;
        if origin.is_https() && !url.origin().is_https() {
            return Err(self.invalid(key, "must be https when the public origin is"));
        }
        Ok(url)
    }

    /// An endpoint path served by this deployment.
    fn endpoint_path(
        &self,
        key: &str,
        text: Option<&str>,
        default: &str,
    ) -> Result<String, ConfigError> {
        let path = text.unwrap_or(default);
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~/!$&'()*+,;=:@%".contains(c);
        if !path.starts_with('/') {
            return Err(self.invalid(key, "must start with /"));
        }
        if path.len() > MAX_PATH_LEN || !path.chars().all(ok_char) {
            return Err(self.invalid(
                key,
                "must be at most 256 URL path characters, without query or fragment",
            ));
        }
        if path.split('/').any(|seg| seg == "." || seg == "..") || path.contains("//") {
            return Err(self.invalid(key, "must not contain empty, . or .. segments"));
        }
        if path == "/" {
            return Err(self.invalid(key, "must not be the root path"));
        }
        if path.starts_with(WELL_KNOWN_PREFIX) {
            return Err(self.invalid(key, "must not be under /.well-known/ (reserved, §2, §3.6)"));
        }
        Ok(path.to_owned())
    }

    fn key_files(&self, key: &str, list: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
        if list.is_empty() || list.len() > MAX_KEYS {
            return Err(self.invalid(key, format!("must list 1 to {MAX_KEYS} key files")));
        }
        Ok(list.iter().map(|p| self.path(p)).collect())
    }

    fn check(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let development = raw.development;
        let listen = self.socket("listen", &raw.listen)?;
        let public_origin = self.origin("public_origin", &raw.public_origin, development)?;
        let http_listen = raw
            .http_listen
            .as_deref()
            .map(|t| self.socket("http_listen", t))
            .transpose()?;
        // Port 0 asks the OS for a free port, so two listeners may both say it.
        if http_listen == Some(listen) && listen.port() != 0 {
            return Err(self.invalid("http_listen", "must differ from listen"));
        }
        let database = self.database(&raw.database)?;
        let privacy_policy = self.url(
            "privacy_policy",
            &raw.privacy_policy,
            &public_origin,
            development,
        )?;
        let icon_152px = self.url("icon_152px", &raw.icon_152px, &public_origin, development)?;
        let tls = self.tls(raw.tls)?;

        let account_provider = raw
            .account_provider
            .map(|ap| self.account_provider(ap, &public_origin, development))
            .transpose()?;
        let recovery_provider = raw
            .recovery_provider
            .map(|rp| self.recovery_provider(rp, &public_origin, development))
            .transpose()?;
        if account_provider.is_none() && recovery_provider.is_none() {
            return Err(self.invalid(
                "account_provider",
                "configure [account_provider], [recovery_provider] or both",
            ));
        }

        let limits = self.limits(raw.limits)?;
        let session = SessionSettings {
            key_file: raw.session.key_file.map(|p| self.path(&p)),
        };
        let level = raw.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(self.invalid(
                "log.level",
                "not a tracing filter (like info, or dar_server=debug,info)",
            ));
        }
        let log = LogSettings {
            format: raw.log.format.unwrap_or_default(),
            level,
        };

        let config = Config {
            file: self.file.to_owned(),
            listen,
            public_origin,
            database,
            development,
            tls,
            http_listen,
            privacy_policy,
            icon_152px,
            account_provider,
            recovery_provider,
            limits,
            session,
            log,
        };
        self.distinct_paths(&config)?;
        Ok(config)
    }

    fn database(&self, text: &str) -> Result<DatabaseUrl, ConfigError> {
        let ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| text.starts_with(p));
        if !ok {
            // The value is not repeated: it may hold a password.
            return Err(self.invalid("database", "must be a sqlite: or postgres:// URL"));
        }
        Ok(DatabaseUrl(text.to_owned()))
    }

    fn tls(&self, raw: RawTls) -> Result<TlsSettings, ConfigError> {
        match (raw.cert, raw.key, raw.local_ca_dir) {
            (Some(cert), Some(key), None) => {
                if !raw.local_names.is_empty() {
                    return Err(self.invalid("tls.local_names", "only with tls.local_ca_dir"));
                }
                Ok(TlsSettings::Files {
                    cert: self.path(&cert),
                    key: self.path(&key),
                })
            }
            (None, None, Some(dir)) => {
                for (i, name) in raw.local_names.iter().enumerate() {
                    let ok = IpAddr::from_str(name).is_ok()
                        || (!name.is_empty()
                            && name.len() <= 253
                            && name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
                    if !ok {
                        return Err(self.invalid(
                            &format!("tls.local_names[{i}]"),
                            "not a DNS name or IP address",
                        ));
                    }
                }
                Ok(TlsSettings::LocalCa {
                    dir: self.path(&dir),
                    names: raw.local_names,
                })
            }
            (Some(_), None, None) => Err(self.invalid("tls.key", "missing (tls.cert is set)")),
            (None, Some(_), None) => Err(self.invalid("tls.cert", "missing (tls.key is set)")),
            (None, None, None) => {
                Err(self.invalid("tls", "set either cert and key, or local_ca_dir"))
            }
            _ => Err(self.invalid(
                "tls.local_ca_dir",
                "set either cert and key, or local_ca_dir, not both",
            )),
        }
    }

    fn account_provider(
        &self,
        raw: RawAccountProvider,
        public_origin: &Origin,
        development: bool,
    ) -> Result<AccountProviderSettings, ConfigError> {
        let signing_keys = self.key_files("account_provider.signing_keys", &raw.signing_keys)?;
        if raw.sealing_keys.is_empty() {
            return Err(self.invalid(
                "account_provider.sealing_keys",
                "must list at least one key",
            ));
        }
        let mut ids = BTreeSet::new();
        let mut sealing_keys = Vec::with_capacity(raw.sealing_keys.len());
        for (i, k) in raw.sealing_keys.iter().enumerate() {
            if !ids.insert(k.id) {
                return Err(self.invalid(
                    &format!("account_provider.sealing_keys[{i}].id"),
                    format!("key id {} is listed twice", k.id),
                ));
            }
            sealing_keys.push(SealingKeyFile {
                id: k.id,
                file: self.path(&k.file),
            });
        }
        let first_id = raw.sealing_keys.first().map_or(0, |k| k.id);
        let current_sealing_key = raw.current_sealing_key.unwrap_or(first_id);
        if !ids.contains(&current_sealing_key) {
            return Err(self.invalid(
                "account_provider.current_sealing_key",
                "is not the id of a listed sealing key",
            ));
        }
        let sealing_layout = match raw.sealing_layout.as_deref() {
            None => Layout::DarV1,
            Some(text) => Layout::from_str(text).map_err(|_| {
                self.invalid(
                    "account_provider.sealing_layout",
                    "must be dar-v1 or darrrr-v0",
                )
            })?,
        };
        let allowed_recovery_providers = self.origins(
            "account_provider.allowed_recovery_providers",
            &raw.allowed_recovery_providers,
            development,
        )?;
        if allowed_recovery_providers.is_empty() {
            return Err(self.invalid(
                "account_provider.allowed_recovery_providers",
                "must list at least one recovery provider origin",
            ));
        }
        let key = "account_provider.status_addresses";
        let mut status_addresses = Vec::with_capacity(raw.status_addresses.len());
        for (origin, ranges) in &raw.status_addresses {
            let origin = self
                .origins(key, std::slice::from_ref(origin), development)?
                .into_iter()
                .next()
                .ok_or_else(|| self.invalid(key, "an origin is missing"))?;
            if !allowed_recovery_providers.contains(&origin) {
                return Err(self.invalid(
                    key,
                    format!("{origin} is not in allowed_recovery_providers"),
                ));
            }
            let ranges = ranges
                .iter()
                .map(|r| {
                    dar_account_provider::IpRange::from_str(r).map_err(|_| {
                        self.invalid(key, format!("{r} is not an address or address/prefix"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            status_addresses.push((origin, ranges));
        }
        Ok(AccountProviderSettings {
            signing_keys,
            sealing_keys,
            current_sealing_key,
            sealing_layout,
            open_darrrr_v0: raw.open_darrrr_v0,
            save_token_return_path: self.endpoint_path(
                "account_provider.save_token_return_path",
                raw.save_token_return_path.as_deref(),
                DEFAULT_SAVE_TOKEN_RETURN,
            )?,
            recover_account_return_path: self.endpoint_path(
                "account_provider.recover_account_return_path",
                raw.recover_account_return_path.as_deref(),
                DEFAULT_RECOVER_ACCOUNT_RETURN,
            )?,
            allowed_recovery_providers,
            status_requested: raw.status_requested,
            status_addresses,
            lockout: self.lockout(raw.lockout)?,
            mail: self.account_mail(raw.mail, public_origin, development)?,
        })
    }

    fn lockout(
        &self,
        policy: dar_account_provider::LockoutPolicy,
    ) -> Result<dar_account_provider::LockoutPolicy, ConfigError> {
        policy
            .validate()
            .map_err(|e| self.invalid("account_provider.lockout", e.to_string()))?;
        Ok(policy)
    }

    fn account_mail(
        &self,
        raw: RawAccountMail,
        public_origin: &Origin,
        development: bool,
    ) -> Result<AccountMailSettings, ConfigError> {
        let interval_secs = raw.interval_secs.unwrap_or(DEFAULT_OUTBOX_INTERVAL_SECS);
        if !(1..=3600).contains(&interval_secs) {
            return Err(self.invalid(
                "account_provider.mail.interval_secs",
                "must be between 1 and 3600",
            ));
        }
        let lease_secs = raw.lease_secs.unwrap_or(DEFAULT_MAIL_LEASE_SECS);
        if !(1..=3600).contains(&lease_secs) {
            return Err(self.invalid(
                "account_provider.mail.lease_secs",
                "must be between 1 and 3600",
            ));
        }
        let host = origin_host(public_origin);
        let from = raw.from.unwrap_or_else(|| format!("dar@{host}"));
        let smtp = RawSmtp {
            smtp_url: raw.smtp_url,
            smtp_user: raw.smtp_user,
            smtp_password_file: raw.smtp_password_file,
            smtp_ca_file: raw.smtp_ca_file,
        };
        let smtp = self.smtp("account_provider.mail", "from", &from, smtp, development)?;
        Ok(AccountMailSettings {
            from,
            site_name: raw.site_name.unwrap_or_else(|| host.clone()),
            dir: self.path(raw.dir.as_deref().unwrap_or(Path::new("mail"))),
            smtp,
            interval: Duration::from_secs(interval_secs),
            lease: Duration::from_secs(lease_secs),
        })
    }

    /// The `smtp_*` keys of `section`, checked as far as can be without reading files: the
    /// URL's form (plain SMTP only in `development`, to loopback) and the sender `from` (named
    /// `from_key`), which must be an address whether or not SMTP is used.
    fn smtp(
        &self,
        section: &str,
        from_key: &str,
        from: &str,
        raw: RawSmtp,
        development: bool,
    ) -> Result<Option<SmtpServer>, ConfigError> {
        let key = |name: &str| format!("{section}.{name}");
        let checked = match &raw.smtp_url {
            Some(url) => {
                let settings = crate::mail::SmtpSettings {
                    url: url.clone(),
                    credentials: None,
                    ca_file: None,
                    allow_plain_loopback: development,
                };
                crate::mail::Mailer::smtp(&settings, from).map(drop)
            }
            None => crate::mail::Mailer::files(PathBuf::new(), from).map(drop),
        };
        checked.map_err(|e| {
            let name = match e {
                crate::mail::MailSetupError::BadSender => from_key,
                _ => "smtp_url",
            };
            self.invalid(&key(name), e.to_string())
        })?;
        let Some(url) = raw.smtp_url else {
            let stray = [
                ("smtp_user", raw.smtp_user.is_some()),
                ("smtp_password_file", raw.smtp_password_file.is_some()),
                ("smtp_ca_file", raw.smtp_ca_file.is_some()),
            ];
            return match stray.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(self.invalid(&key(name), "needs smtp_url")),
                None => Ok(None),
            };
        };
        if raw.smtp_user.is_some() != raw.smtp_password_file.is_some() {
            return Err(self.invalid(
                &key("smtp_user"),
                "smtp_user and smtp_password_file go together",
            ));
        }
        Ok(Some(SmtpServer {
            url,
            user: raw.smtp_user,
            password_file: raw.smtp_password_file.map(|p| self.path(&p)),
            ca_file: raw.smtp_ca_file.map(|p| self.path(&p)),
        }))
    }

    fn recovery_provider(
        &self,
        raw: RawRecoveryProvider,
        public_origin: &Origin,
        development: bool,
    ) -> Result<RecoveryProviderSettings, ConfigError> {
        let countersign_keys =
            self.key_files("recovery_provider.countersign_keys", &raw.countersign_keys)?;
        let token_max_size = match raw.token_max_size {
            None => DEFAULT_TOKEN_MAX_SIZE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|&n| (1..=MAX_TOKEN_LEN).contains(&n))
                .ok_or_else(|| {
                    self.invalid(
                        "recovery_provider.token_max_size",
                        format!("must be between 1 and {MAX_TOKEN_LEN}"),
                    )
                })?,
        };
        let sign_in_max_age = raw
            .recovery_sign_in_max_age_secs
            .unwrap_or(DEFAULT_RECOVERY_SIGN_IN_MAX_AGE_SECS);
        let session_max = crate::auth::SESSION_MAX_SECS.unsigned_abs();
        if !(60..=session_max).contains(&sign_in_max_age) {
            return Err(self.invalid(
                "recovery_provider.recovery_sign_in_max_age_secs",
                format!("must be between 60 and {session_max} (a session's longest life)"),
            ));
        }
        let authoritative_audiences = match &raw.authoritative_audiences {
            None => vec![public_origin.clone()],
            Some(list) => {
                let list = self.origins(
                    "recovery_provider.authoritative_audiences",
                    list,
                    development,
                )?;
                if list.is_empty() {
                    return Err(self.invalid(
                        "recovery_provider.authoritative_audiences",
                        "must list at least one origin (or be left out)",
                    ));
                }
                list
            }
        };
        let allowed_account_providers = raw
            .allowed_account_providers
            .as_deref()
            .map(|list| {
                self.origins(
                    "recovery_provider.allowed_account_providers",
                    list,
                    development,
                )
            })
            .transpose()?;
        let iframe = raw
            .save_token_async_api_iframe_path
            .as_deref()
            .map(|p| {
                self.endpoint_path(
                    "recovery_provider.save_token_async_api_iframe_path",
                    Some(p),
                    p,
                )
            })
            .transpose()?;
        Ok(RecoveryProviderSettings {
            countersign_keys,
            save_token_path: self.endpoint_path(
                "recovery_provider.save_token_path",
                raw.save_token_path.as_deref(),
                DEFAULT_SAVE_TOKEN,
            )?,
            save_token_async_api_iframe_path: iframe,
            recover_account_path: self.endpoint_path(
                "recovery_provider.recover_account_path",
                raw.recover_account_path.as_deref(),
                DEFAULT_RECOVER_ACCOUNT,
            )?,
            token_max_size,
            authoritative_audiences,
            allowed_account_providers,
            recovery_sign_in_max_age: Duration::from_secs(sign_in_max_age),
            outbox: self.outbox(raw.outbox, public_origin, development)?,
        })
    }

    fn outbox(
        &self,
        raw: RawOutbox,
        public_origin: &Origin,
        development: bool,
    ) -> Result<OutboxSettings, ConfigError> {
        let interval_secs = raw.interval_secs.unwrap_or(DEFAULT_OUTBOX_INTERVAL_SECS);
        if !(1..=3600).contains(&interval_secs) {
            return Err(self.invalid(
                "recovery_provider.outbox.interval_secs",
                "must be between 1 and 3600",
            ));
        }
        let origin = public_origin.as_str().trim_end_matches('/');
        let host = origin_host(public_origin);
        let mail_from = raw.mail_from.unwrap_or_else(|| format!("dar@{host}"));
        let smtp = RawSmtp {
            smtp_url: raw.smtp_url,
            smtp_user: raw.smtp_user,
            smtp_password_file: raw.smtp_password_file,
            smtp_ca_file: raw.smtp_ca_file,
        };
        let smtp = self.smtp(
            "recovery_provider.outbox",
            "mail_from",
            &mail_from,
            smtp,
            development,
        )?;
        Ok(OutboxSettings {
            interval: Duration::from_secs(interval_secs),
            mail_dir: self.path(raw.mail_dir.as_deref().unwrap_or(Path::new("mail"))),
            smtp,
            mail_from,
            site_name: raw.site_name.unwrap_or_else(|| host.clone()),
            repudiate_url: raw
                .repudiate_url
                .unwrap_or_else(|| format!("{origin}/rp/tokens")),
            recipient_domain: raw.recipient_domain,
        })
    }

    fn limits(&self, raw: RawLimits) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let body_limit_bytes = match raw.body_limit_bytes {
            None => defaults.body_limit_bytes,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1024..=1024 * 1024).contains(n))
                .ok_or_else(|| {
                    self.invalid(
                        "limits.body_limit_bytes",
                        "must be between 1024 and 1048576",
                    )
                })?,
        };
        let request_timeout = match raw.request_timeout_secs {
            None => defaults.request_timeout,
            Some(n @ 1..=300) => Duration::from_secs(n),
            Some(_) => {
                return Err(
                    self.invalid("limits.request_timeout_secs", "must be between 1 and 300")
                );
            }
        };
        let client_timeout = match raw.client_timeout_secs {
            None => defaults.client_timeout,
            Some(n @ 1..=300) => Duration::from_secs(n),
            Some(_) => {
                return Err(self.invalid("limits.client_timeout_secs", "must be between 1 and 300"));
            }
        };
        let connections_per_address = match raw.connections_per_address {
            None => defaults.connections_per_address,
            Some(n @ 1..=1_000_000) => n as usize,
            Some(_) => {
                return Err(self.invalid(
                    "limits.connections_per_address",
                    "must be between 1 and 1000000",
                ));
            }
        };
        let requests_per_second = match raw.requests_per_second {
            None => defaults.requests_per_second,
            Some(n @ 1..=1_000_000) => n,
            Some(_) => {
                return Err(self.invalid(
                    "limits.requests_per_second",
                    "must be between 1 and 1000000",
                ));
            }
        };
        let burst = match raw.burst {
            None => defaults.burst,
            Some(n @ 1..=1_000_000) => n,
            Some(_) => {
                return Err(self.invalid("limits.burst", "must be between 1 and 1000000"));
            }
        };
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, t)| {
                IpAddr::from_str(t).map_err(|_| {
                    self.invalid(&format!("limits.trusted_proxies[{i}]"), "not an IP address")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Limits {
            body_limit_bytes,
            request_timeout,
            client_timeout,
            connections_per_address,
            requests_per_second,
            burst,
            trusted_proxies,
        })
    }

    /// Two endpoints on one path would make one of them unreachable.
    fn distinct_paths(&self, config: &Config) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for path in config.protocol_paths() {
            if !seen.insert(path.clone()) {
                return Err(self.invalid(
                    "recovery_provider",
                    format!("the endpoint path {path} is configured twice"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
