//! `dar load`: both roles under load on this machine, loopback only.
//!
//! Sets up an account provider (`https://localhost:PORT`) and a recovery provider
//! (`https://127.0.0.1:PORT`) with fresh keys and a local CA, as `dar demo` does, but runs each
//! as a `dar serve` child process, so that the server's memory (`VmHWM`) and CPU time are its
//! own. The per-client rate limit of these two deployments is lifted (every request comes
//! from 127.0.0.1); everything else keeps its defaults. Then, in order:
//!
//! - `configuration`: for 3 s (or `--duration` when shorter; `--requests` does not bound it:
//!   GETs are too quick to give a server CPU time of their own in a few thousand),
//!   `--concurrency` workers, one kept-alive connection each, GET the account provider's
//!   configuration document: TLS, HTTP and the middleware with no signature and no database. The server's CPU per GET plus two verifications at the crypto
//!   limit is the least a recover-account-return could cost; `dar load` prints, at the end,
//!   the highest share of the crypto limit that leaves it.
//! - `recover-account-return`: before the timed run, the account provider's own library
//!   issues one token per operation against its database (with its key files) and the
//!   recovery provider's countersigning key countersigns each; then `--concurrency` workers,
//!   one kept-alive connection each, POST them (a cross-site form, as a browser does) and
//!   expect 303 to `/recovery/continue`. Each token is used once, so every request runs the
//!   whole §3.5 path: two signature verifications, opening the payload, the replay guard and
//!   the commit.
//! - `save-token`: tokens minted the same way; each worker is a user signed up at the
//!   recovery provider (password and TOTP), and one operation is the cross-site POST to
//!   save-token, the confirmation page (which verifies the token) and the confirmed save
//!   (303 back to the account provider with `save-success`).
//! - `connections`: `--connections` TLS connections to the account provider open at once,
//!   each asking for the configuration document every two seconds while all are held.
//! - `slow-clients`: `--slow-clients` connections, half never starting TLS and half sending
//!   their headers a byte a second, while workers keep making fresh connections and requests;
//!   reports how soon the server closed the slow ones and how the others fared meanwhile.
//!
//! Before anything starts, the default signature backend's single-thread verification rate is
//! measured (as `dar bench` does, but the best of ten slices): half of it is the crypto limit
//! of recover-account-return per core. The client shares the machine's cores with the
//! servers; its CPU time is reported.

mod process;
mod stats;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dar_account_provider::IssueOptions;
use dar_core::{
    CONFIGURATION_PATH, Countersign, MAX_TOKEN_LEN, Origin, RecoveryToken, SavedCheck, SigningKey,
    TokenId, VerifyingKeys,
};
use dar_server::demo::{Browser, DeploymentSpec, Role, StatusCode, free_port, write_deployment};
use getrandom::SysRng;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bench::CryptoLimit;
use crate::cli::{LoadArgs, LoadScenario};
use crate::output::Failure;
use process::{Memory, Server};
use stats::{Outcome, Samples, millis};
use wire::Target;

/// How long `configuration` runs.
const CONFIGURATION_RUN: Duration = Duration::from_secs(3);

/// The limits of the load deployments: the defaults, but no per-client rate limit or
/// connection cap to speak of, since every request comes from 127.0.0.1.
const LOAD_LIMITS: &str = "\n[limits]\nrequests_per_second = 1000000\nburst = 1000000\n\
                           connections_per_address = 1000000\n";
/// The account the minted tokens belong to (the account provider does not check that it has
/// a web account for a token it issued; the lockout recovery it parks names it).
const ACCOUNT: &str = "1";
/// TLS handshakes in flight at once while opening many connections.
const HANDSHAKES_AT_ONCE: usize = 64;
/// How often each held connection asks again (under the server's 10 s idle timeout).
const HELD_REQUEST_INTERVAL: Duration = Duration::from_secs(2);
/// How long all connections are held open together.
const HOLD: Duration = Duration::from_secs(6);
/// How long opening all connections (held or slow) may take.
const OPEN_BOUND: Duration = Duration::from_secs(60);
/// How long a slow connection is watched before it counts as never closed: well beyond the
/// server's default client timeout (10 s).
const SLOW_BOUND: Duration = Duration::from_secs(45);
/// How often a dripping slow client sends its next header byte.
const DRIP_INTERVAL: Duration = Duration::from_secs(1);
/// Seconds of signature operations per measurement of the crypto limit.
const CRYPTO_BUDGET: Duration = Duration::from_secs(2);
/// Files the process needs besides its connections (and the server the same).
const SPARE_FILES: u64 = 256;

/// Why a load run could not be carried out. Messages never hold a token or key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// A target that is not loopback.
    #[error(
        "refusing non-loopback target `{0}`: dar load only connects to localhost and loopback \
         addresses"
    )]
    NotLoopback(String),
    /// Not an `https://host:port` origin.
    #[error("`{0}` is not an https://host:port origin")]
    BadOrigin(String),
    /// `--database` is neither `sqlite` nor a PostgreSQL URL.
    #[error("--database must be `sqlite` or a postgres:// URL")]
    BadDatabase,
    /// An option out of its range.
    #[error("--{option} must be between {min} and {max}")]
    OutOfRange {
        /// The option.
        option: &'static str,
        /// Its least value.
        min: u64,
        /// Its greatest value.
        max: u64,
    },
    /// The open-file limit is below what the run needs.
    #[error(
        "this run needs {needed} open files but the limit is {limit}: raise it (`ulimit -n \
         {needed}`) or ask for fewer connections"
    )]
    TooFewFiles {
        /// Files needed.
        needed: u64,
        /// The soft limit.
        limit: u64,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The local CA cannot be used.
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// A server did not start.
    #[error("the {role} did not start ({why}); see {}", log.display())]
    ServerStart {
        /// Which role.
        role: &'static str,
        /// Why.
        why: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Setting up the deployments, users or tokens failed.
    #[error("set-up: {0}")]
    Setup(String),
}

impl LoadError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    fn setup(e: impl std::fmt::Display) -> Self {
        Self::Setup(e.to_string())
    }
}

/// Which database the deployments use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Database {
    /// A SQLite file per deployment.
    Sqlite,
    /// A fresh schema per deployment in this PostgreSQL database.
    Postgres(String),
}

impl Database {
    fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A checked `dar load` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    scenarios: Vec<LoadScenario>,
    database: Database,
    concurrency: usize,
    requests: usize,
    duration: Duration,
    connections: usize,
    slow_clients: usize,
}

impl Plan {
    /// Open files this process (and a server) may hold at once.
    fn files_needed(&self) -> u64 {
        let mut most = 0;
        for scenario in &self.scenarios {
            let n = match scenario {
                LoadScenario::Connections => self.connections,
                LoadScenario::SlowClients => self.slow_clients + self.concurrency,
                LoadScenario::Configuration
                | LoadScenario::RecoverAccountReturn
                | LoadScenario::SaveToken => self.concurrency,
            };
            most = most.max(n);
        }
        u64::try_from(most)
            .unwrap_or(u64::MAX)
            .saturating_add(SPARE_FILES)
    }

    fn mints(&self, scenario: LoadScenario) -> usize {
        if self.scenarios.contains(&scenario) {
            self.requests
        } else {
            0
        }
    }
}

fn in_range(option: &'static str, value: u64, min: u64, max: u64) -> Result<usize, LoadError> {
    let out = LoadError::OutOfRange { option, min, max };
    if !(min..=max).contains(&value) {
        return Err(out);
    }
    usize::try_from(value).map_err(|_| out)
}

fn plan(args: &LoadArgs) -> Result<Plan, LoadError> {
    let mut scenarios = args.scenarios.clone();
    if scenarios.is_empty() {
        scenarios = vec![
            LoadScenario::Configuration,
            LoadScenario::RecoverAccountReturn,
            LoadScenario::SaveToken,
            LoadScenario::Connections,
            LoadScenario::SlowClients,
        ];
    }
    let duration = in_range("duration", args.duration, 1, 600)?;
    Ok(Plan {
        scenarios,
        database: database(&args.database)?,
        concurrency: in_range("concurrency", args.concurrency, 1, 1024)?,
        requests: in_range("requests", args.requests, 1, 100_000)?,
        duration: Duration::from_secs(u64::try_from(duration).unwrap_or(600)),
        connections: in_range("connections", args.connections, 1, 10_000)?,
        slow_clients: in_range("slow-clients", args.slow_clients, 1, 10_000)?,
    })
}

/// `sqlite`, or a PostgreSQL URL whose every host is loopback (or a Unix socket).
fn database(arg: &str) -> Result<Database, LoadError> {
    if arg == "sqlite" {
        return Ok(Database::Sqlite);
    }
    let rest = arg
        .strip_prefix("postgres://")
        .or_else(|| arg.strip_prefix("postgresql://"))
        .ok_or(LoadError::BadDatabase)?;
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, query),
        None => (rest, ""),
    };
    let authority = authority.split('/').next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    for host_port in hosts.split(',') {
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host_port.split(':').next().unwrap_or_default(),
        };
        // No host: the client's default, a local socket or localhost.
        if !host.is_empty() {
            wire::loopback_ip(host)?;
        }
    }
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=')
            && (key == "host" || key == "hostaddr")
            && !(value.starts_with('/') || value.starts_with("%2F") || value.starts_with("%2f"))
        {
            for host in value.split(',') {
                wire::loopback_ip(host)?;
            }
        }
    }
    Ok(Database::Postgres(arg.to_owned()))
}

/// Runs `dar load`.
pub(crate) fn run(args: &LoadArgs) -> Result<(), Failure> {
    let usage = |e: LoadError| Failure::usage(e.to_string());
    let plan = plan(args).map_err(usage)?;
    let needed = plan.files_needed();
    // Up to the hard limit, for this process and the servers it starts.
    dar_server::raise_open_files_limit();
    if let Some(limit) = process::open_files_limit()
        && limit < needed
    {
        return Err(usage(LoadError::TooFewFiles { needed, limit }));
    }
    let binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| Failure::usage(format!("cannot find this program: {e}")))?,
    };
    let dir = crate::demo_cmd::prepare_dir(args.dir.as_deref(), "dar-load", "dar load")
        .map_err(Failure::usage)?;
    // The crypto limit first, while the machine is otherwise idle.
    let crypto = crate::bench::crypto_limit(CRYPTO_BUDGET)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(run_plan(&plan, &binary, &dir, crypto))
        .map_err(usage)
}

async fn run_plan(
    plan: &Plan,
    binary: &Path,
    dir: &Path,
    crypto: CryptoLimit,
) -> Result<(), LoadError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "dar load: {} database, {cores} cores shared by the client and both servers, \
         directory {}",
        plan.database.label(),
        dir.display()
    );
    println!(
        "crypto limit ({} backend, one thread): {:.0} verifications/s, so {:.0} \
         recover-account-return/s per core (two verifications each); the whole return check \
         (two verifications and opening the payload) runs {:.0}/s",
        crypto.backend,
        crypto.verify,
        crypto.per_core(),
        crypto.ap_validate
    );
    let mut deployment = Deployment::set_up(plan, binary, dir).await?;
    let mut reports = Vec::new();
    for scenario in &plan.scenarios {
        let report = match scenario {
            LoadScenario::Configuration => deployment.configuration(plan).await?,
            LoadScenario::RecoverAccountReturn => deployment.recover_account_return(plan).await?,
            LoadScenario::SaveToken => deployment.save_token(plan).await?,
            LoadScenario::Connections => deployment.connections(plan).await?,
            LoadScenario::SlowClients => deployment.slow_clients(plan).await?,
        };
        report.print(&crypto);
        reports.push(report);
    }
    print_summary(plan, &reports);
    print_floor(&reports, &crypto);
    Ok(())
}

/// The most recover-account-return could reach on this machine if it did nothing but a
/// configuration GET's work and the two verifications: the CPU the server spent per
/// configuration GET, plus the crypto limit's cost of two verifications on an idle core.
fn print_floor(reports: &[Report], crypto: &CryptoLimit) {
    let per_op = |name| {
        reports
            .iter()
            .find(|r| r.scenario == name)
            .and_then(Report::server_cpu_per_op)
    };
    let Some(floor) = per_op("configuration") else {
        return;
    };
    let verifications = 1.0 / crypto.per_core();
    println!();
    println!(
        "floor: a configuration GET cost the server {:.3} ms of CPU; with the two \
         verifications ({:.3} ms at the crypto limit) a recover-account-return doing nothing \
         else would cost {:.3} ms: at most {:.1}% of the limit per core",
        floor * 1e3,
        verifications * 1e3,
        (floor + verifications) * 1e3,
        share_of_limit(floor + verifications, crypto)
    );
    if let Some(real) = per_op("recover-account-return") {
        println!(
            "       measured: recover-account-return cost {:.3} ms of server CPU per request ({:.1}% of \
             the limit per core)",
            real * 1e3,
            share_of_limit(real, crypto)
        );
    }
}

/// The percentage of the crypto limit per core that a server spending `cpu_per_request`
/// seconds of one core on each recover-account-return reaches.
fn share_of_limit(cpu_per_request: f64, crypto: &CryptoLimit) -> f64 {
    100.0 / cpu_per_request / crypto.per_core()
}

/// What one scenario measured.
struct Report {
    scenario: &'static str,
    server: &'static str,
    samples: Samples,
    elapsed: Duration,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    memory: Option<Memory>,
    peak_reset: bool,
    /// Whether the crypto-limit ratio applies (recover-account-return).
    crypto_bound: bool,
    notes: Vec<String>,
}

impl Report {
    fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.samples.ok_count() as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds of the server's CPU per successful operation.
    fn server_cpu_per_op(&self) -> Option<f64> {
        let ok = self.samples.ok_count();
        self.server_cpu
            .filter(|_| ok > 0)
            .map(|c| c.as_secs_f64() / ok as f64)
    }

    fn cores(&self, cpu: Option<Duration>) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        cpu.filter(|_| secs > 0.0).map(|c| c.as_secs_f64() / secs)
    }

    fn print(&self, crypto: &CryptoLimit) {
        let l = self.samples.latencies();
        println!();
        println!("== {} ({}) ==", self.scenario, self.server);
        println!(
            "operations   {} ok, {} failed ({})",
            self.samples.ok_count(),
            self.samples.error_count(),
            self.samples.errors_text()
        );
        println!(
            "throughput   {:.1}/s over {:.2} s",
            self.throughput(),
            self.elapsed.as_secs_f64()
        );
        println!(
            "latency ms   p50 {}  p90 {}  p99 {}  max {}",
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.max)
        );
        let peak_scope = if self.peak_reset {
            "during this scenario"
        } else {
            "since the server started"
        };
        if let Some(m) = self.memory {
            println!(
                "server       peak RSS {:.1} MiB {peak_scope} (now {:.1} MiB)",
                mib(m.peak_kib),
                mib(m.rss_kib)
            );
        }
        let fmt_cores = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
        println!(
            "CPU cores    server {}, client {}",
            fmt_cores(self.cores(self.server_cpu)),
            fmt_cores(self.cores(self.client_cpu))
        );
        if self.crypto_bound {
            let limit = crypto.per_core();
            let machine = std::thread::available_parallelism().map_or(1, usize::from) as f64;
            if let Some(server_cores) = self.cores(self.server_cpu).filter(|c| *c > 0.0) {
                println!(
                    "crypto limit {:.1}% of the limit x the {server_cores:.2} cores the server \
                     used ({:.0}/s); {:.1}% of one core's limit ({limit:.0}/s); {:.1}% of the \
                     limit x {machine:.0} cores",
                    100.0 * self.throughput() / (limit * server_cores),
                    limit * server_cores,
                    100.0 * self.throughput() / limit,
                    100.0 * self.throughput() / (limit * machine),
                );
            }
        }
        for note in &self.notes {
            println!("note         {note}");
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_summary(plan: &Plan, reports: &[Report]) {
    println!();
    println!(
        "{:<24} {:<9} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}",
        "scenario",
        "database",
        "ok",
        "failed",
        "ops/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "peak MiB",
        "srvCPU",
        "cliCPU"
    );
    for r in reports {
        let l = r.samples.latencies();
        let cores = |c| {
            r.cores(c)
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"))
        };
        println!(
            "{:<24} {:<9} {:>7} {:>6} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}",
            r.scenario,
            plan.database.label(),
            r.samples.ok_count(),
            r.samples.error_count(),
            r.throughput(),
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.max),
            r.memory
                .map_or_else(|| "-".to_owned(), |m| format!("{:.1}", mib(m.peak_kib))),
            cores(r.server_cpu),
            cores(r.client_cpu),
        );
    }
}

/// A timed window over one server: its CPU, this process's CPU, wall time, and its peak
/// memory from the start of the window.
struct Window {
    start: Instant,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    peak_reset: bool,
}

impl Window {
    fn open(server: &Server) -> Self {
        let peak_reset = server.reset_peak();
        Self {
            start: Instant::now(),
            server_cpu: server.cpu(),
            client_cpu: process::own_cpu(),
            peak_reset,
        }
    }

    fn close(
        self,
        server: &Server,
        scenario: &'static str,
        role: &'static str,
        samples: Samples,
        crypto_bound: bool,
    ) -> Report {
        let elapsed = self.start.elapsed();
        let since = |now: Option<Duration>, then: Option<Duration>| {
            now.zip(then).map(|(n, t)| n.saturating_sub(t))
        };
        Report {
            scenario,
            server: role,
            samples,
            elapsed,
            server_cpu: since(server.cpu(), self.server_cpu),
            client_cpu: since(process::own_cpu(), self.client_cpu),
            memory: server.memory(),
            peak_reset: self.peak_reset,
            crypto_bound,
            notes: Vec::new(),
        }
    }
}

/// A token minted for save-token: where to post it, the token and its state.
struct SaveRequest {
    url: String,
    token: String,
    state: String,
}

/// Both servers, running, and the tokens minted for them.
struct Deployment {
    ap: Server,
    rp: Server,
    ap_origin: String,
    rp_origin: String,
    ca_pem: Vec<u8>,
    recover_url: String,
    countersigned: Arc<Vec<String>>,
    to_save: Arc<Vec<SaveRequest>>,
}

impl Deployment {
    async fn set_up(plan: &Plan, binary: &Path, dir: &Path) -> Result<Self, LoadError> {
        let (ap_port, rp_port) = (
            free_port().map_err(LoadError::setup)?,
            free_port().map_err(LoadError::setup)?,
        );
        let (ap_db, rp_db) = match &plan.database {
            Database::Sqlite => (None, None),
            Database::Postgres(url) => (
                Some(fresh_schema(url, "load_ap").await?),
                Some(fresh_schema(url, "load_rp").await?),
            ),
        };
        let ca_dir = dir.join("tls");
        let ap = write_deployment(
            &DeploymentSpec {
                dir: dir.to_owned(),
                ca_dir: ca_dir.clone(),
                role: Role::AccountProvider,
                port: ap_port,
                peer_port: rp_port,
                status_addresses: vec!["127.0.0.1/32".into()],
                extra: String::new(),
            },
            ap_db.as_deref(),
        )
        .map_err(LoadError::setup)?;
        let rp = write_deployment(
            &DeploymentSpec {
                dir: dir.to_owned(),
                ca_dir: ca_dir.clone(),
                role: Role::RecoveryProvider,
                port: rp_port,
                peer_port: ap_port,
                status_addresses: Vec::new(),
                extra: String::new(),
            },
            rp_db.as_deref(),
        )
        .map_err(LoadError::setup)?;
        for file in [&ap.file, &rp.file] {
            let mut text = std::fs::read_to_string(file)
                .map_err(LoadError::io(format!("cannot read {}", file.display())))?;
            text.push_str(LOAD_LIMITS);
            std::fs::write(file, text)
                .map_err(LoadError::io(format!("cannot write {}", file.display())))?;
        }
        // Refuse before anything is sent, should the origins ever not be loopback.
        wire::loopback_addr(&ap.origin)?;
        wire::loopback_addr(&rp.origin)?;
        let ca_file = ca_dir.join("ca.pem");
        // The recovery provider first: it writes the local CA, and minting needs its
        // configuration.
        let mut rp_server = Server::spawn(binary, &rp.file, &rp.dir, "recovery provider")?;
        rp_server
            .wait_ready(&rp.origin, &ca_file, CONFIGURATION_PATH)
            .await?;
        let ca_pem = std::fs::read(&ca_file)
            .map_err(LoadError::io(format!("cannot read {}", ca_file.display())))?;
        let total =
            plan.mints(LoadScenario::RecoverAccountReturn) + plan.mints(LoadScenario::SaveToken);
        let started = Instant::now();
        let minted = mint(&ap.file, total).await?;
        if total > 0 {
            println!(
                "minted {total} tokens in {:.1} s (outside the timed runs)",
                started.elapsed().as_secs_f64()
            );
        }
        let (countersigned, to_save) = split_minted(
            minted,
            plan.mints(LoadScenario::RecoverAccountReturn),
            &ap,
            &rp.dir.join("key.pem"),
        )?;
        let mut ap_server = Server::spawn(binary, &ap.file, &ap.dir, "account provider")?;
        ap_server
            .wait_ready(&ap.origin, &ca_file, CONFIGURATION_PATH)
            .await?;
        let recover_path = ap
            .config
            .account_provider
            .as_ref()
            .map(|s| s.recover_account_return_path.clone())
            .ok_or_else(|| LoadError::Setup("no account provider role".into()))?;
        Ok(Self {
            recover_url: format!("{}{recover_path}", ap.origin),
            ap: ap_server,
            rp: rp_server,
            ap_origin: ap.origin,
            rp_origin: rp.origin,
            ca_pem,
            countersigned: Arc::new(countersigned),
            to_save: Arc::new(to_save),
        })
    }

    fn browser(&self) -> Result<Browser, LoadError> {
        Browser::new(&self.ca_pem).map_err(LoadError::setup)
    }

    /// One browser per worker, each connected to the account provider: the timed runs
    /// measure requests, not handshakes.
    async fn connected_browsers(&self, plan: &Plan) -> Result<Vec<Browser>, LoadError> {
        let mut workers = Vec::new();
        for _ in 0..plan.concurrency {
            let mut b = self.browser()?;
            b.get(&format!("{}{CONFIGURATION_PATH}", self.ap_origin))
                .await
                .map_err(LoadError::setup)?;
            workers.push(b);
        }
        Ok(workers)
    }

    async fn configuration(&mut self, plan: &Plan) -> Result<Report, LoadError> {
        let workers = self.connected_browsers(plan).await?;
        let url = Arc::new(format!("{}{CONFIGURATION_PATH}", self.ap_origin));
        let window = Window::open(&self.ap);
        let deadline = window.start + plan.duration.min(CONFIGURATION_RUN);
        let mut set = JoinSet::new();
        for mut b in workers {
            let url = Arc::clone(&url);
            set.spawn(async move {
                let mut samples = Samples::default();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let outcome = match b.get(&url).await {
                        Ok(page) if page.status == StatusCode::OK => Outcome::Ok,
                        Ok(page) => Outcome::Error(format!("HTTP {}", page.status.as_u16())),
                        Err(_) => Outcome::Error("request failed".into()),
                    };
                    samples.record(start.elapsed(), outcome);
                }
                samples
            });
        }
        let samples = join_samples(set).await;
        let mut report = window.close(
            &self.ap,
            "configuration",
            "account provider",
            samples,
            false,
        );
        report.notes.push(
            "one operation = GET of the configuration document on a kept-alive connection: \
             TLS, HTTP and the middleware, no signature, no database"
                .into(),
        );
        Ok(report)
    }

    async fn recover_account_return(&mut self, plan: &Plan) -> Result<Report, LoadError> {
        let workers = self.connected_browsers(plan).await?;
        let next = Arc::new(AtomicUsize::new(0));
        let window = Window::open(&self.ap);
        let deadline = window.start + plan.duration;
        let mut set = JoinSet::new();
        for mut b in workers {
            let (next, tokens) = (Arc::clone(&next), Arc::clone(&self.countersigned));
            let (url, from) = (self.recover_url.clone(), self.rp_origin.clone());
            set.spawn(async move {
                let mut samples = Samples::default();
                while let Some(token) = claim(&next, &tokens, deadline) {
                    let start = Instant::now();
                    let outcome = match b
                        .post_cross_site(&from, &url, &[("countersigned-token", token)])
                        .await
                    {
                        Ok(page)
                            if page.status == StatusCode::SEE_OTHER
                                && page
                                    .location
                                    .as_deref()
                                    .is_some_and(|l| l.starts_with("/recovery/continue")) =>
                        {
                            Outcome::Ok
                        }
                        Ok(page) => Outcome::Error(format!("HTTP {}", page.status.as_u16())),
                        Err(_) => Outcome::Error("request failed".into()),
                    };
                    samples.record(start.elapsed(), outcome);
                }
                samples
            });
        }
        let samples = join_samples(set).await;
        Ok(window.close(
            &self.ap,
            "recover-account-return",
            "account provider",
            samples,
            true,
        ))
    }

    async fn save_token(&mut self, plan: &Plan) -> Result<Report, LoadError> {
        // One signed-up user per worker (argon2 and TOTP enrolment: before the timed run).
        let before = self.rp.memory();
        let mut workers = Vec::new();
        for i in 0..plan.concurrency {
            let mut b = self.browser()?;
            b.sign_up(&self.rp_origin, &format!("load{i}"))
                .await
                .map_err(LoadError::setup)?;
            workers.push(b);
        }
        let after = self.rp.memory();
        let next = Arc::new(AtomicUsize::new(0));
        let window = Window::open(&self.rp);
        let deadline = window.start + plan.duration;
        let mut set = JoinSet::new();
        for mut b in workers {
            let (next, requests) = (Arc::clone(&next), Arc::clone(&self.to_save));
            let (ap, rp) = (self.ap_origin.clone(), self.rp_origin.clone());
            set.spawn(async move {
                let mut samples = Samples::default();
                while let Some(request) = claim(&next, &requests, deadline) {
                    let start = Instant::now();
                    let outcome = save_once(&mut b, &ap, &rp, request).await;
                    samples.record(start.elapsed(), outcome);
                }
                samples
            });
        }
        let samples = join_samples(set).await;
        let mut report = window.close(&self.rp, "save-token", "recovery provider", samples, false);
        report.notes.push(
            "one operation = POST save-token + GET the confirmation (verifies the token) + POST \
             the confirmed save"
                .into(),
        );
        if let (Some(before), Some(after)) = (before, after) {
            report.notes.push(format!(
                "server RSS {:.1} MiB before the {} sign-ups (argon2id, 46 MiB each, on the hashing pool), {:.1} MiB \
                 after them, before the timed run",
                mib(before.rss_kib),
                plan.concurrency,
                mib(after.rss_kib)
            ));
        }
        Ok(report)
    }

    async fn connections(&mut self, plan: &Plan) -> Result<Report, LoadError> {
        let target = Target::new(&self.ap_origin, &self.ca_pem)?;
        let request = target.get_request(CONFIGURATION_PATH);
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
        let open_now = Arc::new(AtomicUsize::new(0));
        let settled = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let window = Window::open(&self.ap);
        let mut set = JoinSet::new();
        for _ in 0..plan.connections {
            let (target, request) = (target.clone(), request.clone());
            let (handshakes, open_now, settled, stop) = (
                Arc::clone(&handshakes),
                Arc::clone(&open_now),
                Arc::clone(&settled),
                Arc::clone(&stop),
            );
            set.spawn(async move {
                let mut samples = Samples::default();
                let permit = handshakes.acquire().await;
                // Timed from the handshake: waiting for a handshake slot is the client's own.
                let start = Instant::now();
                let connected = target.connect().await;
                drop(permit);
                let Ok(mut stream) = connected else {
                    samples.record(start.elapsed(), Outcome::Error("connect".into()));
                    settled.fetch_add(1, Ordering::SeqCst);
                    return samples;
                };
                let first = wire::get(&mut stream, &request).await;
                samples.record(start.elapsed(), status_outcome(first));
                open_now.fetch_add(1, Ordering::SeqCst);
                settled.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(HELD_REQUEST_INTERVAL).await;
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let start = Instant::now();
                    let result = wire::get(&mut stream, &request).await;
                    let failed = result.is_err();
                    samples.record(start.elapsed(), status_outcome(result));
                    if failed {
                        break;
                    }
                }
                open_now.fetch_sub(1, Ordering::SeqCst);
                samples
            });
        }
        let opening = Instant::now();
        while settled.load(Ordering::SeqCst) < plan.connections && opening.elapsed() < OPEN_BOUND {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let opened_in = opening.elapsed();
        let mut most_open = 0;
        let hold = Instant::now();
        while hold.elapsed() < HOLD {
            most_open = most_open.max(open_now.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let memory_held = self.ap.memory();
        stop.store(true, Ordering::SeqCst);
        let samples = join_samples(set).await;
        let mut report = window.close(&self.ap, "connections", "account provider", samples, false);
        report.notes.push(format!(
            "{most_open} of {} connections open at once (all settled in {:.1} s, held {:.0} s, \
             a request on each every {:.0} s)",
            plan.connections,
            opened_in.as_secs_f64(),
            HOLD.as_secs_f64(),
            HELD_REQUEST_INTERVAL.as_secs_f64()
        ));
        if let Some(m) = memory_held {
            report.notes.push(format!(
                "server RSS {:.1} MiB while all were held",
                mib(m.rss_kib)
            ));
        }
        Ok(report)
    }

    async fn slow_clients(&mut self, plan: &Plan) -> Result<Report, LoadError> {
        let target = Target::new(&self.ap_origin, &self.ca_pem)?;
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
        let settled = Arc::new(AtomicUsize::new(0));
        let window = Window::open(&self.ap);
        let mut slow = JoinSet::new();
        for i in 0..plan.slow_clients {
            let (target, handshakes, settled) = (
                target.clone(),
                Arc::clone(&handshakes),
                Arc::clone(&settled),
            );
            let silent = i % 2 == 0;
            slow.spawn(async move {
                let fate = if silent {
                    silent_client(&target, &handshakes, &settled).await
                } else {
                    dripping_client(&target, &handshakes, &settled).await
                };
                (silent, fate)
            });
        }
        let opening = Instant::now();
        while settled.load(Ordering::SeqCst) < plan.slow_clients && opening.elapsed() < OPEN_BOUND {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Fresh clients, each request on a new connection, while the slow ones hold theirs.
        let stop = Arc::new(AtomicBool::new(false));
        let mut fresh = JoinSet::new();
        for _ in 0..plan.concurrency {
            let (target, stop) = (target.clone(), Arc::clone(&stop));
            fresh.spawn(async move {
                let mut samples = Samples::default();
                let request = target.get_request(CONFIGURATION_PATH);
                while !stop.load(Ordering::SeqCst) {
                    let start = Instant::now();
                    let outcome = match target.connect().await {
                        Ok(mut stream) => status_outcome(wire::get(&mut stream, &request).await),
                        Err(_) => Outcome::Error("connect".into()),
                    };
                    samples.record(start.elapsed(), outcome);
                }
                samples
            });
        }
        let mut fates = Vec::new();
        while let Some(joined) = slow.join_next().await {
            if let Ok(fate) = joined {
                fates.push(fate);
            }
        }
        stop.store(true, Ordering::SeqCst);
        let samples = join_samples(fresh).await;
        let mut report = window.close(&self.ap, "slow-clients", "account provider", samples, false);
        report.notes.push(
            "operations are the fresh clients' requests (a new TLS connection each) made while \
             the slow connections were open"
                .into(),
        );
        for (silent, what) in [(true, "never starting TLS"), (false, "dripping headers")] {
            let mine: Vec<SlowFate> = fates
                .iter()
                .filter(|(s, _)| *s == silent)
                .map(|(_, f)| *f)
                .collect();
            let mut closed: Vec<Duration> = mine
                .iter()
                .filter_map(|f| match f {
                    SlowFate::Closed(d) => Some(*d),
                    _ => None,
                })
                .collect();
            closed.sort_unstable();
            let unopened = mine.iter().filter(|f| **f == SlowFate::NotOpened).count();
            let open = mine.iter().filter(|f| **f == SlowFate::StillOpen).count();
            report.notes.push(format!(
                "{} slow clients {what}: {} closed by the server (after p50 {} ms, max {} ms), \
                 {open} still open after {:.0} s, {unopened} could not connect",
                mine.len(),
                closed.len(),
                millis(stats::percentile(&closed, 50.0)),
                millis(closed.last().copied()),
                SLOW_BOUND.as_secs_f64()
            ));
        }
        Ok(report)
    }
}

/// The next item for a worker, while any are left and the deadline has not passed.
fn claim<'a, T>(next: &AtomicUsize, items: &'a [T], deadline: Instant) -> Option<&'a T> {
    if Instant::now() >= deadline {
        return None;
    }
    items.get(next.fetch_add(1, Ordering::SeqCst))
}

async fn join_samples(mut set: JoinSet<Samples>) -> Samples {
    let mut all = Samples::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(samples) => all.merge(samples),
            Err(_) => all.record(Duration::ZERO, Outcome::Error("worker failed".into())),
        }
    }
    all
}

fn status_outcome(result: std::io::Result<u16>) -> Outcome {
    match result {
        Ok(200) => Outcome::Ok,
        Ok(status) => Outcome::Error(format!("HTTP {status}")),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Outcome::Error("closed".into()),
        Err(_) => Outcome::Error("I/O error".into()),
    }
}

/// One save-token operation: the cross-site POST, the confirmation page, the confirmed save.
async fn save_once(b: &mut Browser, ap: &str, rp: &str, request: &SaveRequest) -> Outcome {
    let fail = |what: &str, status: StatusCode| {
        Outcome::Error(format!("{what}: HTTP {}", status.as_u16()))
    };
    let fields = [
        ("token", request.token.as_str()),
        ("state", request.state.as_str()),
    ];
    let Ok(page) = b.post_cross_site(ap, &request.url, &fields).await else {
        return Outcome::Error("save-token: request failed".into());
    };
    let Some(confirm) = page
        .location
        .filter(|_| page.status == StatusCode::SEE_OTHER)
    else {
        return fail("save-token", page.status);
    };
    let confirm_url = format!("{rp}{confirm}");
    let page = match b.get(&confirm_url).await {
        Ok(page) if page.status == StatusCode::OK => page,
        Ok(page) => return fail("confirmation", page.status),
        Err(_) => return Outcome::Error("confirmation: request failed".into()),
    };
    let Ok(csrf) = page.field("csrf_token") else {
        return Outcome::Error("confirmation: no form".into());
    };
    let Ok(page) = b
        .post(&confirm_url, &[("csrf_token", &csrf), ("action", "save")])
        .await
    else {
        return Outcome::Error("save: request failed".into());
    };
    let saved = page.status == StatusCode::SEE_OTHER
        && page
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with(ap) && l.contains("status=save-success"));
    if saved {
        Outcome::Ok
    } else {
        fail("save", page.status)
    }
}

/// What became of one slow connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlowFate {
    /// The server closed it this long after it was opened.
    Closed(Duration),
    /// Still open when the watch ended.
    StillOpen,
    /// It could not be opened.
    NotOpened,
}

/// A TCP connection that never starts TLS. Connections are opened a few dozen at a time, as
/// the TLS ones are: this measures how the server closes connections it accepted, not how the
/// kernel copes with a burst of connection attempts.
async fn silent_client(target: &Target, handshakes: &Semaphore, settled: &AtomicUsize) -> SlowFate {
    let permit = handshakes.acquire().await;
    let stream = target.tcp().await;
    drop(permit);
    settled.fetch_add(1, Ordering::SeqCst);
    let Ok(mut stream) = stream else {
        return SlowFate::NotOpened;
    };
    let opened = Instant::now();
    let mut buf = [0u8; 512];
    let watch = tokio::time::timeout(SLOW_BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    match watch {
        Ok(()) => SlowFate::Closed(opened.elapsed()),
        Err(_) => SlowFate::StillOpen,
    }
}

/// A TLS connection that sends a request's headers one byte at a time, never finishing.
async fn dripping_client(
    target: &Target,
    handshakes: &Semaphore,
    settled: &AtomicUsize,
) -> SlowFate {
    let permit = handshakes.acquire().await;
    let opened = Instant::now();
    let stream = target.connect().await;
    drop(permit);
    settled.fetch_add(1, Ordering::SeqCst);
    let Ok(stream) = stream else {
        return SlowFate::NotOpened;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let start = target.unfinished_request(CONFIGURATION_PATH);
    if writer.write_all(start.as_bytes()).await.is_err() {
        return SlowFate::Closed(opened.elapsed());
    }
    let closed = async {
        let mut buf = [0u8; 512];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // A 408 or similar before the close.
                Ok(_) => {}
            }
        }
    };
    let drip = async {
        loop {
            tokio::time::sleep(DRIP_INTERVAL).await;
            if writer.write_all(b"a").await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    };
    let watch = tokio::time::timeout(SLOW_BOUND, async {
        tokio::select! {
            () = closed => {}
            () = drip => {}
        }
    })
    .await;
    match watch {
        Ok(()) => SlowFate::Closed(opened.elapsed()),
        Err(_) => SlowFate::StillOpen,
    }
}

/// A fresh PostgreSQL schema `schema` in `url`, migrated, and the URL that selects it.
async fn fresh_schema(url: &str, schema: &str) -> Result<String, LoadError> {
    let store = dar_store::testing::fresh_schema(url, schema)
        .await
        .map_err(|e| LoadError::Setup(format!("cannot set up PostgreSQL schema {schema}: {e}")))?;
    store.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// A token the account provider issued: where its save-token goes, the token and state.
struct Issued {
    url: String,
    token: String,
    state: String,
}

/// Issues `count` tokens through the account provider's own library, on its database and
/// with its key files (the recovery provider must be answering: issuing fetches its
/// configuration), before the account provider's server starts.
async fn mint(ap_file: &Path, count: usize) -> Result<Vec<Issued>, LoadError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let config = dar_server::config::Config::load(ap_file).map_err(LoadError::setup)?;
    let store = dar_store::Store::connect(config.database.expose())
        .await
        .map_err(LoadError::setup)?;
    let state = dar_server::AppState::load_with_store(&config, Some(store.clone()))
        .map_err(LoadError::setup)?;
    let ap = state
        .account_provider()
        .ok_or_else(|| LoadError::Setup("no account provider role".into()))?;
    let rp = config
        .account_provider
        .as_ref()
        .and_then(|s| s.allowed_recovery_providers.first())
        .cloned()
        .ok_or_else(|| LoadError::Setup("no recovery provider allowed".into()))?;
    let mut issued = Vec::with_capacity(count);
    for i in 0..count {
        let request = ap
            .issue(
                ACCOUNT,
                &rp,
                IssueOptions::default(),
                &format!("load-session-{i}"),
                OffsetDateTime::now_utc(),
                &mut SysRng,
            )
            .await
            .map_err(LoadError::setup)?;
        issued.push(Issued {
            url: request.save_token_url().as_string(),
            token: request.token().to_owned(),
            state: request.state().to_owned(),
        });
    }
    store.close().await;
    Ok(issued)
}

/// The first `recover` tokens countersigned with the recovery provider's key (for
/// recover-account-return), the rest as save-token requests.
fn split_minted(
    minted: Vec<Issued>,
    recover: usize,
    ap: &dar_server::demo::WrittenDeployment,
    rp_key_file: &Path,
) -> Result<(Vec<String>, Vec<SaveRequest>), LoadError> {
    if minted.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let read_key = |path: &Path| -> Result<SigningKey, LoadError> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(LoadError::io(format!("cannot read {}", path.display())))?,
        );
        SigningKey::from_pem_or_base64(text.trim()).map_err(LoadError::setup)
    };
    let rp_key = read_key(rp_key_file)?;
    let ap_keys = VerifyingKeys::from(read_key(&ap.dir.join("key.pem"))?.verifying_key());
    let ap_origin = ap.config.public_origin.clone();
    let rp_origin: Origin = ap
        .config
        .account_provider
        .as_ref()
        .and_then(|s| s.allowed_recovery_providers.first())
        .cloned()
        .ok_or_else(|| LoadError::Setup("no recovery provider allowed".into()))?;
    let mut countersigned = Vec::with_capacity(recover);
    let mut to_save = Vec::new();
    for (i, issued) in minted.into_iter().enumerate() {
        if i >= recover {
            to_save.push(SaveRequest {
                url: issued.url,
                token: issued.token,
                state: issued.state,
            });
            continue;
        }
        let bytes =
            dar_core::decode_base64(&issued.token, MAX_TOKEN_LEN).map_err(LoadError::setup)?;
        let token = RecoveryToken::decode(&bytes).map_err(LoadError::setup)?;
        let check = SavedCheck {
            issuer: &ap_origin,
            issuer_keys: &ap_keys,
            authoritative: std::slice::from_ref(&rp_origin),
        };
        let verified = token.verify_saved(&check).map_err(LoadError::setup)?;
        let params = Countersign {
            key: &rp_key,
            token_id: TokenId::generate(&mut SysRng).map_err(LoadError::setup)?,
            issued: OffsetDateTime::now_utc(),
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        };
        let encoded = dar_core::countersign(&verified, params).map_err(LoadError::setup)?;
        countersigned.push(encoded.to_base64());
    }
    Ok((countersigned, to_save))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> LoadArgs {
        LoadArgs {
            scenarios: Vec::new(),
            database: "sqlite".into(),
            concurrency: 16,
            requests: 2000,
            duration: 60,
            connections: 1000,
            slow_clients: 2000,
            dir: None,
            server_binary: None,
        }
    }

    #[test]
    fn defaults_run_every_scenario_on_sqlite() {
        let p = plan(&args()).unwrap();
        assert_eq!(p.scenarios.len(), 5);
        assert_eq!(p.database, Database::Sqlite);
        assert_eq!(p.duration, Duration::from_secs(60));
        // The slow clients and the fresh ones beside them, and spare files.
        assert_eq!(p.files_needed(), 2000 + 16 + SPARE_FILES);
        assert_eq!(p.mints(LoadScenario::SaveToken), 2000);
    }

    #[test]
    fn options_out_of_range_are_refused_by_name() {
        type Set = fn(&mut LoadArgs);
        let cases: [(Set, &str, u64, u64); 6] = [
            (|a| a.concurrency = 0, "concurrency", 1, 1024),
            (|a| a.requests = 100_001, "requests", 1, 100_000),
            (|a| a.duration = 0, "duration", 1, 600),
            (|a| a.duration = 601, "duration", 1, 600),
            (|a| a.connections = 10_001, "connections", 1, 10_000),
            (|a| a.slow_clients = 0, "slow-clients", 1, 10_000),
        ];
        for (set, name, lo, hi) in cases {
            let mut a = args();
            set(&mut a);
            match plan(&a) {
                Err(LoadError::OutOfRange { option, min, max }) => {
                    assert_eq!((option, min, max), (name, lo, hi));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let e = plan(&LoadArgs {
            concurrency: 0,
            ..args()
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "--concurrency must be between 1 and 1024");
    }

    #[test]
    fn only_loopback_postgres_is_a_database() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://u:p@localhost/test?sslmode=disable",
            "postgres://[::1]:5432/test",
            "postgres:///test?host=/var/run/postgresql",
            "postgres://127.0.0.1,localhost:5433/test",
        ] {
            assert_eq!(
                database(url).unwrap(),
                Database::Postgres(url.into()),
                "{url}"
            );
        }
        for (url, host) in [
            (
                "postgres://postgres@db.example.com:5432/test",
                "db.example.com",
            ),
            ("postgres://10.1.2.3/test", "10.1.2.3"),
            ("postgres://127.0.0.1,db.internal/test", "db.internal"),
            ("postgres:///test?host=db.example.com", "db.example.com"),
            ("postgres://localhost/test?hostaddr=192.0.2.1", "192.0.2.1"),
        ] {
            match database(url) {
                Err(e @ LoadError::NotLoopback(_)) => {
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "refusing non-loopback target `{host}`: dar load only connects to \
                             localhost and loopback addresses"
                        )
                    );
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        for bad in ["mysql://localhost/x", "sqlite://x.db", ""] {
            assert!(
                matches!(database(bad), Err(LoadError::BadDatabase)),
                "{bad}"
            );
        }
    }

    #[test]
    fn shares_of_the_crypto_limit_count_two_verifications_per_request() {
        let crypto = CryptoLimit {
            backend: "test",
            verify: 20_000.0,
            ap_validate: 9_000.0,
        };
        // Two verifications at 20,000/s are 0.1 ms: spending only that is the whole limit.
        assert!((share_of_limit(0.000_1, &crypto) - 100.0).abs() < 1e-9);
        // Twice that is half the limit (issue 7's target); four times, a quarter.
        assert!((share_of_limit(0.000_2, &crypto) - 50.0).abs() < 1e-9);
        assert!((share_of_limit(0.000_4, &crypto) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn workers_claim_each_item_once_until_the_deadline() {
        let items = [10, 20, 30];
        let next = AtomicUsize::new(0);
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(claim(&next, &items, later), Some(&10));
        assert_eq!(claim(&next, &items, later), Some(&20));
        assert_eq!(claim(&next, &items, Instant::now()), None);
        assert_eq!(claim(&next, &items, later), Some(&30));
        assert_eq!(claim(&next, &items, later), None);
    }

    #[test]
    fn outcomes_of_raw_requests() {
        assert_eq!(status_outcome(Ok(200)), Outcome::Ok);
        assert_eq!(status_outcome(Ok(503)), Outcome::Error("HTTP 503".into()));
        assert_eq!(
            status_outcome(Err(std::io::ErrorKind::UnexpectedEof.into())),
            Outcome::Error("closed".into())
        );
        assert_eq!(
            status_outcome(Err(std::io::ErrorKind::ConnectionReset.into())),
            Outcome::Error("I/O error".into())
        );
    }
}
