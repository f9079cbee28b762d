//! Binding, serving, logging and shutting down.

mod connections;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::task::JoinSet;
use tracing_subscriber::EnvFilter;

use self::connections::PerAddressLimit;
use crate::config::{Config, ConfigError, LogFormat, LogSettings};
use crate::state::AppState;
use crate::tls::{self, TlsError};

/// How long in-flight requests may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often idle rate-limit entries are dropped.
const RATE_LIMIT_CLEANUP: Duration = Duration::from_secs(60);
/// The longest path written to the log.
const MAX_LOGGED_PATH: usize = 200;

/// Why the server could not start or stopped with a fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration or a key file is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A listener failed while serving.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The database cannot be opened or migrated.
    #[error("cannot open the database: {0}")]
    Storage(#[source] dar_store::StoreError),
    /// The account provider's mail cannot be set up (`[account_provider.mail]`).
    #[error("cannot set up the account provider's mail: {0}")]
    Mail(String),
    /// The log subscriber cannot be installed.
    #[error("cannot start logging: {0}")]
    Logging(String),
}

/// Installs the global log subscriber: compact lines or JSON objects, filtered by `RUST_LOG`
/// or else `log.level`. Request logs carry method, path (never the query), status and
/// latency, nothing else.
///
/// # Errors
///
/// [`ServerError::Logging`] when the filter does not parse or a subscriber is already set.
pub fn init_tracing(log: &LogSettings) -> Result<(), ServerError> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => {
            EnvFilter::try_new(&log.level).map_err(|e| ServerError::Logging(e.to_string()))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
    result.map_err(|e| ServerError::Logging(e.to_string()))
}

/// Middleware: one log line per request with the method, the path without its query (queries
/// can carry codes and hints), the status and the latency.
pub(crate) async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(MAX_LOGGED_PATH).collect();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::warn!(target: "dar_server::access", %method, %path, status, latency_ms, "request");
    } else {
        tracing::info!(target: "dar_server::access", %method, %path, status, latency_ms, "request");
    }
    response
}

/// The plain-http listener's only answer: 401, empty body, no `Location` (§2, §3: the
/// configuration and protocol paths over http "MUST NOT redirect" and "MUST yield an empty
/// response body and an HTTP status code 401"). Every path gets it, so no protocol path can
/// be missed.
async fn plain_http_refusal() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Body::empty(),
    )
        .into_response()
}

/// The plain-http application: 401 with an empty body for every request.
pub fn http_app() -> Router {
    Router::new()
        .fallback(plain_http_refusal)
        .layer(axum::middleware::from_fn(log_request))
}

/// A started server: its bound addresses and the means to stop it.
#[derive(Debug)]
pub struct Running {
    handle: Handle<SocketAddr>,
    https_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    servers: JoinSet<std::io::Result<()>>,
    cleanup: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The HTTPS listener's address (with the OS-assigned port when `listen` had port 0).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The plain-http listener's address, when `http_listen` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops accepting connections, lets in-flight requests finish for up to `grace`, then
    /// closes what is left and waits for the listeners to end.
    ///
    /// # Errors
    ///
    /// [`ServerError::Serve`] when a listener had failed.
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), ServerError> {
        self.handle.graceful_shutdown(Some(grace));
        let mut result = Ok(());
        while let Some(joined) = self.servers.join_next().await {
            let outcome = joined
                .map_err(|e| ServerError::Serve(std::io::Error::other(e.to_string())))
                .and_then(|r| r.map_err(ServerError::Serve));
            if result.is_ok() {
                result = outcome;
            }
        }
        self.cleanup.abort();
        result
    }

    /// Waits until a listener stops on its own, which only happens on a fault.
    async fn failed(&mut self) -> ServerError {
        match self.servers.join_next().await {
            Some(Ok(Err(e))) => ServerError::Serve(e),
            Some(Err(e)) => ServerError::Serve(std::io::Error::other(e.to_string())),
            Some(Ok(Ok(()))) | None => {
                ServerError::Serve(std::io::Error::other("a listener stopped unexpectedly"))
            }
        }
    }
}

/// How many connections the kernel may hold accepted but not yet taken by the server (capped
/// by `net.core.somaxconn`). The standard library's 128 overflows under a burst of a few hundred
/// new connections: the excess clients' handshakes are dropped and retried a second or more
/// later, so a burst of slow clients would delay everyone else's connections.
const LISTEN_BACKLOG: u32 = 1024;

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    // As the standard library's bind does: a restarted server can bind at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket
        .listen(LISTEN_BACKLOG)
        .and_then(tokio::net::TcpListener::into_std)
        .map_err(err)
}

/// Binds the listeners and starts serving `app` over HTTPS (and the 401-only application over
/// http when `http_listen` is set). Returns once both listen.
///
/// # Errors
///
/// [`ServerError::Tls`] when TLS cannot be set up, [`ServerError::Bind`] when an address
/// cannot be bound.
pub async fn start(config: &Config, state: &AppState, app: Router) -> Result<Running, ServerError> {
    let tls_config = tls::server_config_for(&config.tls, &config.local_tls_names())?;
    let handle = Handle::<SocketAddr>::new();
    let mut servers = JoinSet::new();

    let https = bind(config.listen)?;
    let https_addr = https.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    // Slow or silent clients (slow-loris) are bounded by `limits.client_timeout` at every
    // stage where the server waits on them: the TLS handshake, the first request (which also
    // covers telling HTTP/1.1 from HTTP/2), each request's headers and HTTP/1.1 keep-alive
    // idleness (hyper's header timer runs while it waits for the next request). An HTTP/2
    // peer that stops answering pings is closed after as long again, and any connection with
    // no request in progress for that long is closed by the acceptor (`connections.rs`).
    let client_timeout = config.limits.client_timeout;
    // TCP_NODELAY (set by the per-client cap's acceptor): with Nagle's algorithm the server's
    // small writes after a handshake wait for an ACK the client delays, and a fresh
    // connection's first answer came about 40 ms late (docs/load.md).
    // One count for both listeners: a client's connections to either are its share.
    let per_client = PerAddressLimit::new(
        config.limits.connections_per_address,
        &config.limits.trusted_proxies,
        client_timeout,
    );
    let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls_config))
        .handshake_timeout(client_timeout)
        .acceptor(per_client.clone());
    let mut server = axum_server::from_tcp(https)
        .map_err(|source| ServerError::Bind {
            addr: https_addr,
            source,
        })?
        .acceptor(acceptor)
        .first_request_timeout(client_timeout)
        .handle(handle.clone());
    server
        .http_builder()
        .http1()
        .header_read_timeout(client_timeout);
    server
        .http_builder()
        .http2()
        .keep_alive_interval(client_timeout)
        .keep_alive_timeout(client_timeout);
    servers.spawn(server.serve(app.into_make_service_with_connect_info::<SocketAddr>()));

    let http_addr = match config.http_listen {
        None => None,
        Some(addr) => {
            let listener = bind(addr)?;
            let bound = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            let mut server = axum_server::from_tcp(listener)
                .map_err(|source| ServerError::Bind { addr, source })?
                .acceptor(per_client)
                .first_request_timeout(client_timeout)
                .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .header_read_timeout(client_timeout);
            servers.spawn(server.serve(http_app().into_make_service()));
            Some(bound)
        }
    };

    let limiter = state.rate_limit();
    let cleanup = tokio::spawn(async move {
        let mut tick = tokio::time::interval(RATE_LIMIT_CLEANUP);
        loop {
            tick.tick().await;
            limiter.limiter().retain_recent();
        }
    });

    Ok(Running {
        handle,
        https_addr,
        http_addr,
        servers,
        cleanup,
    })
}

/// Runs the deployment: reads the key files, binds, serves until SIGINT or SIGTERM, then
/// shuts down gracefully (in-flight requests get [`SHUTDOWN_GRACE`]). With the recovery
/// provider role it also runs the outbox worker
/// ([`outbox::worker_from_config`](crate::outbox::worker_from_config)), and with the account
/// provider role the lockout worker ([`crate::lockout::worker::from_config`]), both stopped on
/// shutdown. First it raises the soft open-file limit ([`raise_open_files_limit`]).
///
/// # Errors
///
/// A [`ServerError`] when the keys, TLS or a listener cannot be set up, or a listener fails.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let open_files = raise_open_files_limit();
    let store = dar_store::Store::connect(config.database.expose())
        .await
        .map_err(ServerError::Storage)?;
    let outbox = crate::outbox::worker_from_config(&config, store.clone())?;
    let state = AppState::load_with_store(&config, Some(store))?;
    let app = crate::app_with(state.clone(), crate::pages(&state));
    let mut running = start(&config, &state, app).await?;
    // The recovery provider's outbox worker runs beside the listeners and stops with them.
    let (stop_outbox, outbox_shutdown) = tokio::sync::watch::channel(false);
    let outbox = outbox.map(|(worker, interval)| {
        tracing::info!(
            interval_secs = interval.as_secs(),
            "outbox worker started (status callbacks, notifications)"
        );
        crate::outbox::spawn(worker, state.clock(), interval, outbox_shutdown)
    });
    tracing::info!(
        https = %running.https_addr(),
        http = ?running.http_addr(),
        public_origin = %config.public_origin,
        account_provider = state.roles().account_provider.is_some(),
        recovery_provider = state.roles().recovery_provider.is_some(),
        database = config.database.scheme(),
        open_files = ?open_files,
        "dar server listening"
    );
    // The account provider's lockout worker: timed unlocks, held factors, mail.
    let (stop_lockout, lockout_shutdown) = tokio::sync::watch::channel(false);
    let lockout =
        crate::lockout::worker::from_config(&config, &state)?.map(|(worker, interval)| {
            tracing::info!(
                interval_secs = interval.as_secs(),
                "lockout worker started (timed unlocks, mail)"
            );
            crate::lockout::worker::spawn(worker, state.clock(), interval, lockout_shutdown)
        });
    let failure = tokio::select! {
        () = shutdown_signal() => None,
        error = running.failed() => Some(error),
    };
    let _ = stop_outbox.send(true);
    let _ = stop_lockout.send(true);
    if let Some(task) = outbox {
        let _ = task.await;
    }
    if let Some(task) = lockout {
        let _ = task.await;
    }
    match failure {
        None => {
            tracing::info!("shutting down: finishing in-flight requests");
            running.shutdown(SHUTDOWN_GRACE).await
        }
        Some(error) => {
            // Stop the other listener too before reporting.
            let _ = running.shutdown(Duration::ZERO).await;
            Err(error)
        }
    }
}

/// The most open files [`raise_open_files_limit`] asks for (Linux's default `nr_open`).
pub const MAX_OPEN_FILES: u64 = 1 << 20;

/// Raises this process's soft limit on open files to its hard limit (at most
/// [`MAX_OPEN_FILES`]) and returns the soft limit in force (`None`: unlimited). Every
/// connection holds a descriptor until [`crate::config::Limits::client_timeout`] closes it
/// at the latest: under a soft limit of 1,024, a common default, a hundred new slow
/// connections a second would leave none for anyone else. [`serve`] calls it; so does
/// `dar load`, whose children inherit the limit.
#[cfg(unix)]
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let wanted = limit.maximum.unwrap_or(MAX_OPEN_FILES).min(MAX_OPEN_FILES);
    if wanted <= current {
        return Some(current);
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(wanted),
        Err(e) => {
            tracing::warn!(error = %e, soft = current, "cannot raise the open-file limit");
            Some(current)
        }
    }
}

/// Elsewhere there is no such limit to raise: `None`.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests;
