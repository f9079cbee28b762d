//! The command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Delegated Account Recovery: keys, tokens, test vectors and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "dar", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate a P-256 key pair: writes the private key (PKCS#8 PEM, mode 0600) and prints the
    /// public key as base64 SPKI.
    Keygen(KeygenArgs),
    /// Recovery tokens: inspect, verify, issue, decrypt.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Countersign a recovery token, as a recovery provider does at recovery time.
    Countersign(CountersignArgs),
    /// Countersigned tokens: verify, as an account provider does.
    #[command(subcommand)]
    Countersigned(CountersignedCommand),
    /// Test vectors: generate them reproducibly, or check a directory of them.
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// Measure operations per second and allocations per operation, per signature backend.
    Bench(BenchArgs),
    /// Run the HTTPS server of a deployment (its configuration file: see
    /// crates/dar-server/examples/dar.toml).
    Serve(ServeArgs),
    /// Run the whole story on this machine: an account provider and a recovery provider on
    /// loopback over HTTPS, and a scripted browser through sign-up, saving a recovery token,
    /// losing the second factor and recovering (or, with `--serve`, keep both running).
    Demo(DemoArgs),
    /// Staff review of an account provider's lockout recoveries: list them, show one with its
    /// evidence and history, approve or deny it (each decision is mailed to the account's
    /// verified addresses and audited with the staff member's name).
    Recoveries(RecoveriesArgs),
    /// Print the OpenAPI description of the HTTP endpoints (JSON, generated from the code);
    /// with `--config`, adapted to that deployment's paths and roles.
    Openapi(OpenapiArgs),
    /// Put both roles under load on this machine (loopback only): `dar serve` child processes
    /// on SQLite or PostgreSQL, driven through configuration GETs (the floor of a request),
    /// save-token and recover-account-return, a thousand open connections and slow clients;
    /// prints throughput, latency percentiles, the servers' peak memory and the crypto-limit
    /// ratio (see docs/load.md).
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct OpenapiArgs {
    /// A deployment's configuration file: describe its paths and roles (default: both roles
    /// at the default paths, as docs/openapi.json).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Decode a token (either type) without verifying it.
    Inspect(InspectArgs),
    /// Verify a recovery token as a recovery provider does before saving it (§3.1).
    Verify(VerifyArgs),
    /// Issue a recovery token as an account provider does (§4.1).
    Issue(IssueArgs),
    /// Open the sealed data of a recovery token (or of the one inside a countersigned token).
    Decrypt(DecryptArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CountersignedCommand {
    /// Verify a countersigned token as an account provider does (§3.5).
    Verify(CountersignedVerifyArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum VectorsCommand {
    /// Write the test vectors into a directory (byte-for-byte reproducible).
    Generate(VectorsDirArgs),
    /// Run every vector in a directory through the library and report mismatches.
    Check(VectorsDirArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VectorsDirArgs {
    /// The directory (default: test-vectors).
    #[arg(default_value = "test-vectors")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token, base64; `-` reads it from standard input.
    pub(crate) token: String,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options shared by the verify commands.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The verifier's clock, RFC 3339 (default: the system clock).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// Largest distance in seconds between now and issued_time, both directions (default: 300
    /// seconds into the future, 3600 into the past).
    #[arg(long)]
    pub(crate) skew: Option<u32>,
    /// The expected token binding, hex. Without it a token carrying a binding is refused.
    #[arg(long)]
    pub(crate) binding: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The token, base64; `-` reads it from standard input.
    pub(crate) token: String,
    /// The issuer's public key: base64 SPKI, PEM, or a path to either. Repeat for rotation.
    #[arg(long = "key", required = true)]
    pub(crate) keys: Vec<String>,
    /// The expected issuer (the account provider).
    #[arg(long)]
    pub(crate) issuer: String,
    /// The audience this recovery provider is authoritative for. Repeat for several.
    #[arg(long = "audience", required = true)]
    pub(crate) audiences: Vec<String>,
    #[command(flatten)]
    pub(crate) check: CheckArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CountersignedVerifyArgs {
    /// The countersigned token, base64; `-` reads it from standard input.
    pub(crate) token: String,
    /// The recovery provider's countersign public key(s).
    #[arg(long = "rp-key", required = true)]
    pub(crate) rp_keys: Vec<String>,
    /// The account provider's own token-signing public key(s).
    #[arg(long = "ap-key", required = true)]
    pub(crate) ap_keys: Vec<String>,
    /// The verifying account provider: the inner token's issuer and the outer audience.
    #[arg(long)]
    pub(crate) ap: String,
    /// The expected countersigner: the outer issuer and the inner audience.
    #[arg(long)]
    pub(crate) rp: String,
    #[command(flatten)]
    pub(crate) check: CheckArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The account provider's private key (PKCS#8 or SEC1 PEM, or a path to one).
    #[arg(long)]
    pub(crate) key: String,
    /// The issuer: this account provider's origin.
    #[arg(long)]
    pub(crate) issuer: String,
    /// The audience: the recovery provider's origin.
    #[arg(long)]
    pub(crate) audience: String,
    /// Raw opaque data, hex (already sealed, or for tests).
    #[arg(long, conflicts_with_all = ["account", "aes_key"])]
    pub(crate) data_hex: Option<String>,
    /// Seal a payload for this account id (needs --aes-key).
    #[arg(long, requires = "aes_key")]
    pub(crate) account: Option<String>,
    /// The 256-bit sealing key, hex.
    #[arg(long, requires = "account")]
    pub(crate) aes_key: Option<String>,
    /// The sealing key's id (dar-v1 layout).
    #[arg(long, default_value_t = 1)]
    pub(crate) aes_key_id: u32,
    /// The sealing layout.
    #[arg(long, default_value = "dar-v1")]
    pub(crate) layout: String,
    /// Request status callbacks (option 0x01).
    #[arg(long)]
    pub(crate) status_requested: bool,
    /// Request low friction (option 0x02).
    #[arg(long)]
    pub(crate) low_friction: bool,
    /// A token binding, hex.
    #[arg(long)]
    pub(crate) binding: Option<String>,
    /// issued_time, RFC 3339 (default: the system clock).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// The token id, 32 hex digits (default: random), for reproducible output.
    #[arg(long)]
    pub(crate) token_id: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CountersignArgs {
    /// The recovery token, base64; `-` reads it from standard input.
    pub(crate) token: String,
    /// This recovery provider's private countersigning key.
    #[arg(long)]
    pub(crate) key: String,
    /// The account provider's public key(s), to re-check the token before countersigning.
    #[arg(long = "ap-key", required = true)]
    pub(crate) ap_keys: Vec<String>,
    /// The expected issuer of the token (default: the token's own issuer).
    #[arg(long)]
    pub(crate) ap: Option<String>,
    /// The origin(s) this recovery provider is authoritative for (default: the token's
    /// audience).
    #[arg(long = "rp")]
    pub(crate) rp: Vec<String>,
    /// issued_time of the countersigned token, RFC 3339 (default: the system clock).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// The countersigned token's id, 32 hex digits (default: random).
    #[arg(long)]
    pub(crate) token_id: Option<String>,
    /// A token binding, hex.
    #[arg(long)]
    pub(crate) binding: Option<String>,
    /// Report low friction (option 0x02). Default: copy the recovery token's request.
    #[arg(long)]
    pub(crate) low_friction: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// The token, base64; `-` reads it from standard input.
    pub(crate) token: String,
    /// The 256-bit sealing key, hex.
    #[arg(long)]
    pub(crate) aes_key: String,
    /// The sealing key's id (dar-v1 layout).
    #[arg(long, default_value_t = 1)]
    pub(crate) aes_key_id: u32,
    /// Require this layout (`darrrr-v0` or `dar-v1`); default: detect it.
    #[arg(long)]
    pub(crate) layout: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Seconds to spend on each operation (at least 1).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) seconds: f64,
    /// Also run every operation on all cores at once and report the summed rates.
    #[arg(long)]
    pub(crate) all_cores: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    /// The signature backend to measure: `rust-crypto` (pure Rust, RFC 6979 signing),
    /// `default` (the build's default: aws-lc-rs verification, RFC 6979 signing), `aws-lc`
    /// (aws-lc-rs for both, randomized signing) or `all` of them in turn.
    #[arg(long, value_enum, default_value_t = BenchBackend::All)]
    pub(crate) backend: BenchBackend,
}

/// Which signature backends `dar bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchBackend {
    /// `dar_core::RustCrypto`.
    RustCrypto,
    /// `dar_core::default_backend()`.
    Default,
    /// `dar_core::AwsLcRandomized`.
    AwsLc,
    /// Each of the above.
    All,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The deployment's TOML configuration file.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// Check the configuration and its key files, then exit (0 valid, 1 invalid).
    #[arg(long)]
    pub(crate) check: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The directory to set the demo up in (keys, configuration, databases, the local CA,
    /// mail); created when missing, and must be empty. Default: a new temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Set both deployments up, print their URLs and keep them running until Ctrl-C.
    #[arg(long)]
    pub(crate) serve: bool,
    /// In the last chapter, cancel the timed unlock through the link in its notice instead of
    /// waiting for it to complete.
    #[arg(long, conflicts_with = "serve")]
    pub(crate) cancel: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoveriesArgs {
    /// The deployment's TOML configuration file: its `database` and `[account_provider]`.
    /// Required; may come before or after the subcommand.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: RecoveriesCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecoveriesCommand {
    /// List recoveries, newest first.
    List(RecoveriesListArgs),
    /// Show one recovery: its state, evidence (never a secret) and the account's recent
    /// audit events.
    Show(RecoveryShowArgs),
    /// Approve a recovery in review: the account's second factor is reset and every session
    /// revoked; the user signs in with the password and enrols a new second factor.
    Approve(RecoveryApproveArgs),
    /// Deny a recovery that can still unlock (collecting, pending or review).
    Deny(RecoveryDenyArgs),
    /// List the delegated recoveries one recovery provider countersigned in a time window,
    /// oldest first (§6.8: after that provider reports its key compromised in the window).
    Through(RecoveriesThroughArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RecoveriesThroughArgs {
    /// The recovery provider's origin, as its configuration document names it.
    #[arg(value_name = "ORIGIN")]
    pub(crate) recovery_provider: String,
    /// The window's start (RFC 3339, included).
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub(crate) since: time::OffsetDateTime,
    /// The window's end (RFC 3339, excluded; default: now).
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub(crate) until: Option<time::OffsetDateTime>,
    /// At most this many (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

fn rfc3339(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| "expected an RFC 3339 time, such as 2026-11-30T23:16:11Z".to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct RecoveriesListArgs {
    /// Only recoveries in this state (collecting, pending, unlocked, refused, cancelled,
    /// review, denied).
    #[arg(long, value_parser = recovery_state)]
    pub(crate) state: Option<dar_store::RecoveryState>,
    /// At most this many (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoveryShowArgs {
    /// The recovery's id (as `list` prints it).
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) id: i64,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoveryApproveArgs {
    /// The recovery's id.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) id: i64,
    /// Who decides: recorded in the recovery and the audit log as `staff:NAME`.
    #[arg(long, value_name = "NAME")]
    pub(crate) staff: String,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoveryDenyArgs {
    /// The recovery's id.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) id: i64,
    /// Who decides: recorded in the recovery and the audit log as `staff:NAME`.
    #[arg(long, value_name = "NAME")]
    pub(crate) staff: String,
    /// Why, told to the account's owner and kept in the audit log (control characters become
    /// spaces; at most 500 characters are kept).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

fn recovery_state(text: &str) -> Result<dar_store::RecoveryState, String> {
    dar_store::RecoveryState::parse(text).ok_or_else(|| {
        let all: Vec<&str> = dar_store::RecoveryState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        format!("expected one of {}", all.join(", "))
    })
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// A scenario to run; repeat for several, in order (default: all four).
    #[arg(long = "scenario", value_enum, value_name = "SCENARIO")]
    pub(crate) scenarios: Vec<LoadScenario>,
    /// `sqlite` (a file per deployment) or a `postgres://` URL on loopback (each deployment
    /// gets a fresh schema, `load_ap` and `load_rp`, dropped first if they exist).
    #[arg(long, value_name = "sqlite|URL", default_value = "sqlite")]
    pub(crate) database: String,
    /// Operations in flight at once in save-token and recover-account-return (each worker
    /// keeps one connection), and fresh-connection requests in flight in slow-clients
    /// (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) concurrency: u64,
    /// At most this many operations per request scenario but `configuration` (1 to 100000);
    /// each needs a token minted before the timed run.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub(crate) requests: u64,
    /// At most this many seconds per request scenario (1 to 600).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) duration: u64,
    /// Connections held open at once in `connections` (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) connections: u64,
    /// Slow connections in `slow-clients` (1 to 10000): half never start TLS, half send
    /// their headers a byte a second.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub(crate) slow_clients: u64,
    /// The working directory (keys, configurations, SQLite files, server logs); created when
    /// missing, and must be empty. Default: a new temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// The `dar` binary to run the servers with (default: this one).
    #[arg(long, value_name = "PATH")]
    pub(crate) server_binary: Option<PathBuf>,
}

/// What `dar load` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LoadScenario {
    /// GETs of the account provider's configuration document on kept-alive connections for
    /// 3 s: what a request costs the server with no signature and no database.
    Configuration,
    /// The account provider's recover-account-return with freshly countersigned tokens.
    RecoverAccountReturn,
    /// The recovery provider's save-token: the cross-site POST, the confirmation page and
    /// the confirmed save, by signed-in users.
    SaveToken,
    /// Hold many TLS connections to the account provider open at once.
    Connections,
    /// Slow and silent connections while fresh clients keep asking.
    SlowClients,
}
