//! The pieces `dar demo` and the end-to-end tests share: two deployments (an account provider
//! and a recovery provider) set up from freshly generated keys on loopback over HTTPS with a
//! local CA and one SQLite file each, the recovery provider's outbox worker, and a scripted
//! browser without JavaScript.
//!
//! - [`start_deployment`] writes one deployment's keys and `dar.toml` into a directory and
//!   starts it ([`Deployment`]); [`write_deployment`] only writes them, for a `dar serve`
//!   child process (`dar load`).
//! - [`Demo::set_up`] starts both roles side by side, trusting each other, with the outbox
//!   worker of the recovery provider writing user notifications as `.eml` files into
//!   `DIR/mail/` and calling the account provider's token-status back over the local CA.
//! - [`Browser`] is reqwest with redirects off, cookies kept per origin by hand, 303s followed
//!   by hand and forms read from the page; a cross-site POST carries no cookie, as with
//!   `SameSite=Lax`.
//! - [`totp_code`] computes the current code of an authenticator app enrolled with a secret.
//!
//! Nothing here prints or logs a key, token or TOTP secret; [`Page`] bodies may hold tokens and
//! are for the caller to inspect, not to print.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dar_account_provider::AccountProviderStore as _;
use dar_core::{SigningKey, TokenId};
use reqwest::{Client, redirect};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::lockout::worker::{LockoutReport, LockoutWorker};
use crate::outbox::{DeliveryReport, OutboxWorker};
use crate::{AppState, Running};

pub use reqwest::StatusCode;

/// The password every scripted user signs up with.
pub const PASSWORD: &str = "correct horse battery";

/// The domain the demo's recovery provider mails its users at (`alice@localhost`).
pub const MAIL_DOMAIN: &str = "localhost";

/// The account provider's lockout settings in the demo: the default rules, with a waiting
/// period of seconds instead of days so that a timed unlock completes while you watch.
pub const DEMO_LOCKOUT: &str = "[account_provider.lockout]\nwaiting_period_secs = 8\n\
     notice_interval_secs = 3\nfinal_notice_before_secs = 2\n\
     [account_provider.mail]\ndir = \"../mail\"\nsite_name = \"dar demo account provider\"\n\
     interval_secs = 1\n";

/// Why a demo step could not go on. The message never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A file or directory could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A deployment could not be configured or started.
    #[error("cannot start the {role}: {message}")]
    Start {
        /// Which role.
        role: &'static str,
        /// Why.
        message: String,
    },
    /// A request failed, or an answer was not the one the story expects.
    #[error("{0}")]
    Unexpected(String),
}

impl DemoError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    fn unexpected(message: impl Into<String>) -> Self {
        Self::Unexpected(message.into())
    }
}

/// A loopback port that was free a moment ago, for a deployment about to start on it.
///
/// The port is released before the server binds it, so something else could take it in
/// between. Ports the kernel hands out itself (`bind` to port 0, and the source ports of
/// outgoing connections) come from its ephemeral range, which a busy process (tests, the
/// demo's own browser) draws from constantly; so ports are taken below that range, from
/// [`FIRST_PORT`] up, in turn within this process (from an offset that differs between
/// processes), each checked by binding it. Only when there is no room below the ephemeral
/// range does the kernel choose.
///
/// # Errors
///
/// [`DemoError::Io`] when no port can be bound.
pub fn free_port() -> Result<u16, DemoError> {
    static NEXT: std::sync::LazyLock<std::sync::atomic::AtomicU32> =
        std::sync::LazyLock::new(|| {
            std::sync::atomic::AtomicU32::new(std::process::id().wrapping_mul(7_919))
        });
    let ephemeral_start = ephemeral_start();
    let span = u32::from(ephemeral_start.saturating_sub(FIRST_PORT));
    if span >= 1_024 {
        for _ in 0..span {
            let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % span;
            let Ok(port) = u16::try_from(u32::from(FIRST_PORT) + offset) else {
                continue;
            };
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(DemoError::io("cannot bind a loopback port"))?;
    let addr = listener
        .local_addr()
        .map_err(DemoError::io("cannot read a loopback port"))?;
    Ok(addr.port())
}

/// The first port of the kernel's ephemeral range (Linux; elsewhere, or unreadable, the IANA
/// range's 49152 would be right but Linux's default 32768 is the safer guess).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
}

/// The lowest port [`free_port`] hands out: above the registered services most machines run.
pub const FIRST_PORT: u16 = 10_000;

/// Which role a deployment plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The account provider (issues tokens, accepts countersigned ones).
    AccountProvider,
    /// The recovery provider (saves tokens, countersigns them).
    RecoveryProvider,
}

impl Role {
    /// The subdirectory name: `ap` or `rp`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::AccountProvider => "ap",
            Self::RecoveryProvider => "rp",
        }
    }

    /// The loopback host name of the role's origin: `localhost` for the account provider,
    /// `127.0.0.1` for the recovery provider. Cookies are scoped by host, not by port, so two
    /// deployments on one host name would overwrite each other's session cookie in a real
    /// browser (`dar demo --serve`); the local CA's certificate covers both names.
    pub fn host(self) -> &'static str {
        match self {
            Self::AccountProvider => "localhost",
            Self::RecoveryProvider => "127.0.0.1",
        }
    }

    /// The role's name as a person reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountProvider => "account provider",
            Self::RecoveryProvider => "recovery provider",
        }
    }
}

/// How to set up one deployment with [`start_deployment`].
#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// The parent directory; the deployment writes into `dir/ap` or `dir/rp`.
    pub dir: PathBuf,
    /// The local CA's directory (shared by both deployments; created on first use).
    pub ca_dir: PathBuf,
    /// The role.
    pub role: Role,
    /// The HTTPS port on 127.0.0.1 (the origin is `https://<Role::host>:<port>`).
    pub port: u16,
    /// The other deployment's port.
    pub peer_port: u16,
    /// For an account provider: the addresses the peer's token-status calls may come from.
    pub status_addresses: Vec<String>,
    /// Extra TOML lines appended to the role's table.
    pub extra: String,
}

/// A started deployment.
#[derive(Debug)]
pub struct Deployment {
    /// The running server.
    pub running: Running,
    /// Its origin, `https://<Role::host>:<port>`.
    pub origin: String,
    /// Its state (database, role services).
    pub state: AppState,
    /// Its configuration.
    pub config: Config,
    /// Its directory (keys, `dar.toml`, `dar.db`).
    pub dir: PathBuf,
}

fn write_secret(path: &Path, contents: &[u8]) -> Result<(), DemoError> {
    std::fs::write(path, contents)
        .map_err(DemoError::io(format!("cannot write {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(DemoError::io(format!("cannot restrict {}", path.display())))?;
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>, DemoError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; N]);
    getrandom::fill(&mut bytes[..])
        .map_err(|e| DemoError::unexpected(format!("no randomness from the OS: {e}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> zeroize::Zeroizing<String> {
    use std::fmt::Write as _;
    let mut text = zeroize::Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

fn generate_signing_key() -> Result<SigningKey, DemoError> {
    // A random 32-byte string is a valid P-256 scalar except with negligible probability.
    for _ in 0..8 {
        let scalar = random_bytes::<32>()?;
        if let Ok(key) = SigningKey::from_scalar_bytes(&scalar) {
            return Ok(key);
        }
    }
    Err(DemoError::unexpected("cannot generate a signing key"))
}

/// Generates the deployment's keys (a P-256 signing or countersigning key, a sealing key, a
/// session cookie key), writes them and `dar.toml` (mode 0600 for keys) into
/// `spec.dir/<ap|rp>`, opens its SQLite database and starts serving.
///
/// # Errors
///
/// [`DemoError::Io`] when a file cannot be written, [`DemoError::Start`] when the
/// configuration, database or listener fails.
pub async fn start_deployment(spec: &DeploymentSpec) -> Result<Deployment, DemoError> {
    start_deployment_on(spec, None).await
}

/// As [`start_deployment`], but on the database at `database` (a `sqlite:` or `postgres://`
/// URL, e.g. a PostgreSQL schema of its own per deployment for the tests) instead of a SQLite
/// file in the deployment's directory when `Some`.
///
/// # Errors
///
/// As [`start_deployment`].
pub async fn start_deployment_on(
    spec: &DeploymentSpec,
    database: Option<&str>,
) -> Result<Deployment, DemoError> {
    let written = write_deployment(spec, database)?;
    let role = spec.role;
    let fail = |message: String| DemoError::Start {
        role: role.name(),
        message,
    };
    let config = written.config;
    let store = dar_store::Store::connect(config.database.expose())
        .await
        .map_err(|e| fail(format!("cannot open the database: {e}")))?;
    let state = AppState::load_with_store(&config, Some(store)).map_err(|e| fail(e.to_string()))?;
    let app = crate::app_with(state.clone(), crate::pages(&state));
    let running = crate::start(&config, &state, app)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(Deployment {
        running,
        origin: written.origin,
        state,
        config,
        dir: written.dir,
    })
}

/// One deployment's files, written by [`write_deployment`] and not started.
#[derive(Debug)]
pub struct WrittenDeployment {
    /// Its directory (keys, `dar.toml`).
    pub dir: PathBuf,
    /// Its `dar.toml`.
    pub file: PathBuf,
    /// Its origin, `https://<Role::host>:<port>`.
    pub origin: String,
    /// Its configuration, as read back from `file`.
    pub config: Config,
}

/// Generates the deployment's keys (a P-256 signing or countersigning key, a sealing key, a
/// session cookie key) and writes them and `dar.toml` (mode 0600 for keys) into
/// `spec.dir/<ap|rp>`, on the database at `database` (as in [`start_deployment_on`]), without
/// opening the database or starting anything: for running it as `dar serve --config FILE`.
///
/// # Errors
///
/// [`DemoError::Io`] when a file cannot be written, [`DemoError::Start`] when the key cannot
/// be encoded or the written configuration does not load.
pub fn write_deployment(
    spec: &DeploymentSpec,
    database: Option<&str>,
) -> Result<WrittenDeployment, DemoError> {
    let role = spec.role;
    let fail = |message: String| DemoError::Start {
        role: role.name(),
        message,
    };
    let dir = spec.dir.join(role.dir_name());
    std::fs::create_dir_all(&dir)
        .map_err(DemoError::io(format!("cannot create {}", dir.display())))?;
    let key = generate_signing_key()?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| fail(format!("cannot encode the key: {e}")))?;
    write_secret(&dir.join("key.pem"), pem.as_bytes())?;
    write_secret(
        &dir.join("seal.hex"),
        hex(&random_bytes::<32>()?[..]).as_bytes(),
    )?;
    write_secret(
        &dir.join("session.hex"),
        hex(&random_bytes::<64>()?[..]).as_bytes(),
    )?;
    let peer_role = match role {
        Role::AccountProvider => Role::RecoveryProvider,
        Role::RecoveryProvider => Role::AccountProvider,
    };
    let peer = format!("https://{}:{}", peer_role.host(), spec.peer_port);
    let origin = format!("https://{}:{}", role.host(), spec.port);
    let role_table = match role {
        Role::AccountProvider => {
            let ranges: Vec<String> = spec
                .status_addresses
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect();
            format!(
                "[account_provider]\nsigning_keys = [\"key.pem\"]\n\
                 sealing_keys = [{{ id = 1, file = \"seal.hex\" }}]\n\
                 allowed_recovery_providers = [\"{peer}\"]\n{extra}\
                 [account_provider.status_addresses]\n\"{peer}\" = [{ranges}]\n",
                extra = spec.extra,
                ranges = ranges.join(", "),
            )
        }
        Role::RecoveryProvider => format!(
            "[recovery_provider]\ncountersign_keys = [\"key.pem\"]\n{}",
            spec.extra
        ),
    };
    let database = match database {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", dir.join("dar.db").display()),
    };
    let text = format!(
        r#"listen = "127.0.0.1:{port}"
public_origin = "{origin}"
database = "{database}"
development = true
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "{ca}"

[session]
key_file = "session.hex"

{role_table}"#,
        port = spec.port,
        ca = spec.ca_dir.display(),
    );
    let file = dir.join("dar.toml");
    std::fs::write(&file, &text)
        .map_err(DemoError::io(format!("cannot write {}", file.display())))?;
    let config = Config::from_toml_str(&text, &file, &dir).map_err(|e| fail(e.to_string()))?;
    Ok(WrittenDeployment {
        dir,
        file,
        origin,
        config,
    })
}

/// Both roles on loopback, trusting each other, and the recovery provider's outbox worker.
pub struct Demo {
    /// The demo's directory.
    pub dir: PathBuf,
    /// The account provider.
    pub ap: Deployment,
    /// The recovery provider.
    pub rp: Deployment,
    /// The local CA certificate's file (`DIR/tls/ca.pem`), for a browser to trust.
    pub ca_file: PathBuf,
    /// Where notifications are written (`DIR/mail`).
    pub mail_dir: PathBuf,
    worker: Arc<OutboxWorker<dar_store::Store>>,
    lockout: LockoutWorker,
    ca_pem: Vec<u8>,
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("dir", &self.dir)
            .field("ap", &self.ap.origin)
            .field("rp", &self.rp.origin)
            .finish_non_exhaustive()
    }
}

/// What the account provider holds about one token (no secret).
#[derive(Debug, Clone)]
pub struct TokenSummary {
    /// The token's state (`issued`, `saved`, `used`, ...).
    pub state: String,
    /// The token's audit trail, oldest first: event name and detail.
    pub audit: Vec<String>,
}

impl Demo {
    /// Sets up both deployments in `dir` (which must exist): a local CA in `dir/tls`, the
    /// account provider in `dir/ap` (issuing tokens that request status callbacks, accepted
    /// from loopback), the
    /// recovery provider in `dir/rp` with `rp_extra` appended to its table, and an outbox worker
    /// for the recovery provider (status callbacks over the local CA, notifications into
    /// `dir/mail`). The worker runs only when [`Demo::deliver_outbox`] or
    /// [`Demo::spawn_outbox`] says so.
    ///
    /// # Errors
    ///
    /// A [`DemoError`] naming what could not be set up.
    pub async fn set_up(dir: &Path, rp_extra: &str) -> Result<Self, DemoError> {
        let ca_dir = dir.join("tls");
        let (ap_port, rp_port) = (free_port()?, free_port()?);
        let ap = start_deployment(&DeploymentSpec {
            dir: dir.to_owned(),
            ca_dir: ca_dir.clone(),
            role: Role::AccountProvider,
            port: ap_port,
            peer_port: rp_port,
            status_addresses: vec!["127.0.0.1/32".into(), "::1/128".into()],
            // Tokens ask for status callbacks, so the recovery provider reports back; the
            // lockout policy keeps its default rules with demo-length timers, and its mail goes
            // into `dir/mail` as `.eml` files.
            extra: format!("status_requested = true\n{DEMO_LOCKOUT}"),
        })
        .await?;
        let rp = start_deployment(&DeploymentSpec {
            dir: dir.to_owned(),
            ca_dir: ca_dir.clone(),
            role: Role::RecoveryProvider,
            port: rp_port,
            peer_port: ap_port,
            status_addresses: Vec::new(),
            // The outbox worker `dar serve` would run, writing mail into `dir/mail`.
            extra: format!(
                "{rp_extra}\n[recovery_provider.outbox]\nmail_dir = \"../mail\"\n\
                 recipient_domain = \"{MAIL_DOMAIN}\"\nsite_name = \"dar demo recovery provider\"\n"
            ),
        })
        .await?;
        let ca_file = ca_dir.join("ca.pem");
        let ca_pem = std::fs::read(&ca_file)
            .map_err(DemoError::io(format!("cannot read {}", ca_file.display())))?;
        let mail_dir = dir.join("mail");
        let worker = outbox_worker(&rp)?;
        let lockout = match crate::lockout::worker::from_config(&ap.config, &ap.state) {
            Ok(Some((worker, _))) => worker,
            Ok(None) => return Err(DemoError::unexpected("no account provider role")),
            Err(e) => return Err(DemoError::unexpected(e.to_string())),
        };
        Ok(Self {
            lockout,
            dir: dir.to_owned(),
            ap,
            rp,
            ca_file,
            mail_dir,
            worker: Arc::new(worker),
            ca_pem,
        })
    }

    /// A fresh browser trusting the local CA.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the HTTP client cannot be built.
    pub fn browser(&self) -> Result<Browser, DemoError> {
        Browser::new(&self.ca_pem)
    }

    /// Runs the recovery provider's outbox worker once, now.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the outbox cannot be read or updated.
    pub async fn deliver_outbox(&self) -> Result<DeliveryReport, DemoError> {
        self.worker
            .run_once(self.rp.state.now())
            .await
            .map_err(|e| DemoError::unexpected(format!("the outbox worker failed: {e}")))
    }

    /// Runs the outbox worker every `interval` until `shutdown` holds `true`.
    pub fn spawn_outbox(
        &self,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let worker = Arc::clone(&self.worker);
        let clock = self.rp.state.clock();
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    biased;
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() { break; }
                    }
                    _ = ticker.tick() => {
                        if let Err(e) = worker.run_once(clock.now()).await {
                            tracing::warn!(error = %e, "outbox run failed");
                        }
                    }
                }
            }
        })
    }

    /// Runs the account provider's lockout worker once at `now`: mail, timed unlocks, held
    /// factors.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the store fails.
    pub async fn deliver_lockout(&self, now: OffsetDateTime) -> Result<LockoutReport, DemoError> {
        self.lockout
            .run_once(now)
            .await
            .map_err(|e| DemoError::unexpected(format!("the lockout worker failed: {e}")))
    }

    /// Runs the account provider's lockout worker every `interval` until `shutdown` holds
    /// `true` (what `dar serve` does).
    pub fn spawn_lockout(
        &self,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        crate::lockout::worker::spawn(
            self.lockout.clone(),
            self.ap.state.clock(),
            interval,
            shutdown,
        )
    }

    /// The newest `.eml` message in the mail directory addressed to `to` whose text holds
    /// `marker`, as text; `None` when there is none.
    pub fn newest_mail(&self, to: &str, marker: &str) -> Option<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.mail_dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        let header = format!("To: {to}");
        files.into_iter().rev().find_map(|(_, path)| {
            let text = std::fs::read_to_string(path).ok()?;
            (text.contains(&header) && text.contains(marker)).then_some(text)
        })
    }

    /// What the account provider holds about the token with id `token_id_hex`.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the id is malformed, the token unknown, or the store
    /// fails.
    pub async fn ap_token(&self, token_id_hex: &str) -> Result<TokenSummary, DemoError> {
        let service = self
            .ap
            .state
            .account_provider()
            .ok_or_else(|| DemoError::unexpected("no account provider role"))?;
        let id = TokenId::from_hex(token_id_hex)
            .map_err(|_| DemoError::unexpected("malformed token id"))?;
        let store = service.store();
        let record = store
            .token(id)
            .await
            .map_err(|e| DemoError::unexpected(e.to_string()))?
            .ok_or_else(|| DemoError::unexpected("the account provider has no such token"))?;
        let audit = store
            .audit_for_account(&record.account_id)
            .await
            .map_err(|e| DemoError::unexpected(e.to_string()))?
            .into_iter()
            .filter(|entry| entry.token_id == id)
            .map(|entry| match entry.detail {
                Some(detail) => format!("{} ({detail})", entry.event.as_str()),
                None => entry.event.as_str().to_owned(),
            })
            .collect();
        Ok(TokenSummary {
            state: record.state.to_string(),
            audit,
        })
    }

    /// Stops both servers.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when a listener had failed.
    pub async fn shut_down(self, grace: Duration) -> Result<(), DemoError> {
        let ap = self.ap.running.shutdown(grace).await;
        let rp = self.rp.running.shutdown(grace).await;
        ap.and(rp)
            .map_err(|e| DemoError::unexpected(format!("server failed: {e}")))
    }
}

/// The worker `dar serve` runs for the recovery provider's configuration: in development,
/// status callbacks may reach loopback and trust the local CA.
fn outbox_worker(rp: &Deployment) -> Result<OutboxWorker<dar_store::Store>, DemoError> {
    let store = rp
        .state
        .store()
        .cloned()
        .ok_or_else(|| DemoError::unexpected("the recovery provider has no database"))?;
    match crate::outbox::worker_from_config(&rp.config, store) {
        Ok(Some((worker, _interval))) => Ok(worker),
        Ok(None) => Err(DemoError::unexpected("no recovery provider role")),
        Err(e) => Err(DemoError::unexpected(format!(
            "cannot set up the outbox worker: {e}"
        ))),
    }
}

/// One answer as the scripted browser saw it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The status.
    pub status: StatusCode,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body (may hold tokens: inspect, do not print).
    pub body: String,
}

impl Page {
    /// The value of the first input named `name`.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the page has no such input.
    pub fn field(&self, name: &str) -> Result<String, DemoError> {
        Ok(unescape(&between(
            &self.body,
            &format!("name=\"{name}\" value=\""),
            "\"",
        )?))
    }

    /// The action of the page's first POST form.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the page has no form.
    pub fn form_action(&self) -> Result<String, DemoError> {
        Ok(unescape(&between(
            &self.body,
            "<form method=\"post\" action=\"",
            "\"",
        )?))
    }

    /// The `Location` header, or an error naming `what` was expected.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when there is none.
    pub fn redirect(&self, what: &str) -> Result<String, DemoError> {
        self.location.clone().ok_or_else(|| {
            DemoError::unexpected(format!(
                "expected a redirect to {what}, got {}",
                self.status
            ))
        })
    }

    /// The code and message of an error answer, as JSON (`{"code", "message"}`) or as the
    /// HTML error page a browser gets (see [`crate::error`]); `None` when the body is neither.
    pub fn error(&self) -> Option<(String, String)> {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&self.body) {
            let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
            return Some((text("code")?, text("message")?));
        }
        let code = between(&self.body, "<dt>Error code</dt><dd><code>", "</code>").ok()?;
        let message = between(&self.body, "<p role=\"alert\"><strong>", "</strong>").ok()?;
        Some((unescape(&code), unescape(&message)))
    }

    /// Checks the status, or says what came instead (status and a short, tag-free excerpt).
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] on another status.
    pub fn expect(&self, status: StatusCode, what: &str) -> Result<&Self, DemoError> {
        if self.status == status {
            Ok(self)
        } else {
            Err(DemoError::unexpected(format!(
                "{what}: expected {status}, got {}",
                self.status
            )))
        }
    }
}

/// The text between the first `start` and the next `end` in `text`.
///
/// # Errors
///
/// [`DemoError::Unexpected`] when either is missing.
pub fn between(text: &str, start: &str, end: &str) -> Result<String, DemoError> {
    let missing = || DemoError::unexpected(format!("the page lacks `{start}`"));
    let from = text.find(start).ok_or_else(missing)? + start.len();
    let rest = text.get(from..).ok_or_else(missing)?;
    let len = rest.find(end).ok_or_else(missing)?;
    Ok(rest.get(..len).ok_or_else(missing)?.to_owned())
}

/// Undoes the HTML escaping askama applies to attribute values.
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#43;", "+")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The origin (`https://host:port`) of an https URL.
///
/// # Errors
///
/// [`DemoError::Unexpected`] when `url` is not https.
pub fn origin_of(url: &str) -> Result<String, DemoError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| DemoError::unexpected("not an https URL"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    Ok(format!("https://{host}"))
}

/// The current code of an authenticator app enrolled with the base32 `secret`.
///
/// # Errors
///
/// [`DemoError::Unexpected`] when the secret is not base32 or the clock is unusable.
pub fn totp_code(secret: &str) -> Result<String, DemoError> {
    let secret = totp_rs::Secret::try_from_base32(secret)
        .map_err(|_| DemoError::unexpected("the TOTP secret is not base32"))?;
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name("demo")
        .build()
        .map_err(|_| DemoError::unexpected("cannot build the authenticator"))?;
    Ok(totp.generate_current().to_string())
}

/// The `Accept` header [`Browser`] sends, as browsers do on navigations and form submissions.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// A browser without JavaScript: redirects off, cookies kept per origin, forms by hand.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    /// Cookies per origin.
    cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    /// A browser trusting only the CA certificates in `ca_pem`.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the certificate or the client cannot be built.
    pub fn new(ca_pem: &[u8]) -> Result<Self, DemoError> {
        let ca = reqwest::Certificate::from_pem(ca_pem)
            .map_err(|_| DemoError::unexpected("the local CA certificate does not parse"))?;
        // Like a browser, it asks for pages: errors come back as HTML error pages.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static(BROWSER_ACCEPT),
        );
        let client = Client::builder()
            .tls_certs_only([ca])
            .default_headers(headers)
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| DemoError::unexpected(format!("cannot build the browser: {e}")))?;
        Ok(Self {
            client,
            cookies: HashMap::new(),
        })
    }

    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        url: &str,
        cookies: bool,
    ) -> Result<Page, DemoError> {
        let origin = origin_of(url)?;
        let mut request = request;
        if cookies && let Some(jar) = self.cookies.get(&origin) {
            let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !header.is_empty() {
                request = request.header("cookie", header.join("; "));
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| DemoError::unexpected(format!("request to {origin} failed: {e}")))?;
        let jar = self.cookies.entry(origin).or_default();
        for set in response.headers().get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            let pair = set.split(';').next().unwrap_or(set);
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| DemoError::unexpected(format!("cannot read an answer: {e}")))?;
        Ok(Page {
            status,
            location,
            body,
        })
    }

    /// GET `url` with this origin's cookies.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the request fails.
    pub async fn get(&mut self, url: &str) -> Result<Page, DemoError> {
        self.send(self.client.get(url), url, true).await
    }

    /// A same-origin form submission (with cookies and a same-origin `Origin`).
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the request fails.
    pub async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Result<Page, DemoError> {
        let body = serde_urlencoded::to_string(fields)
            .map_err(|_| DemoError::unexpected("cannot encode a form"))?;
        let request = self
            .client
            .post(url)
            .header("origin", origin_of(url)?)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request, url, true).await
    }

    /// A form submitted from `from`'s page to another site: no cookie (`SameSite=Lax`).
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when the request fails.
    pub async fn post_cross_site(
        &mut self,
        from: &str,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<Page, DemoError> {
        let body = serde_urlencoded::to_string(fields)
            .map_err(|_| DemoError::unexpected("cannot encode a form"))?;
        let request = self
            .client
            .post(url)
            .header("origin", from)
            .header("sec-fetch-site", "cross-site")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request, url, false).await
    }

    /// Signs up at `origin` as `username` with [`PASSWORD`], enrols an authenticator app
    /// (TOTP) with the secret the page shows, and checks the account page opens.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] naming the step that went wrong.
    pub async fn sign_up(&mut self, origin: &str, username: &str) -> Result<(), DemoError> {
        let page = self.get(&format!("{origin}/signup")).await?;
        let csrf = page.field("csrf_token")?;
        self.post(
            &format!("{origin}/signup"),
            &[
                ("csrf_token", &csrf),
                ("username", username),
                ("password", PASSWORD),
                ("email", &format!("{username}@example.com")),
            ],
        )
        .await?
        .expect(StatusCode::SEE_OTHER, "sign-up")?;
        self.enrol_totp(origin).await
    }

    /// Enrols an authenticator app at `origin` (the user is signed in with the password), which
    /// answers with the account's new recovery codes, and checks the account page opens.
    ///
    /// # Errors
    ///
    /// [`DemoError::Unexpected`] when a page is not the expected one.
    pub async fn enrol_totp(&mut self, origin: &str) -> Result<(), DemoError> {
        let page = self.get(&format!("{origin}/account/totp")).await?;
        let secret =
            zeroize::Zeroizing::new(between(&page.body, "<dt>Secret</dt><dd><code>", "</code>")?);
        let code = totp_code(&secret)?;
        self.post(
            &format!("{origin}/account/totp"),
            &[("csrf_token", &page.field("csrf_token")?), ("code", &code)],
        )
        .await?
        .expect(StatusCode::OK, "TOTP enrolment (the recovery codes page)")?;
        self.get(&format!("{origin}/account"))
            .await?
            .expect(StatusCode::OK, "the account page")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ephemeral_start = ephemeral_start();
        let ports: Vec<u16> = (0..64).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            if ephemeral_start >= FIRST_PORT + 1_024 {
                assert!((FIRST_PORT..ephemeral_start).contains(&port), "{port}");
            }
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
