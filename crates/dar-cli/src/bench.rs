//! `dar bench`: operations per second and allocations per operation of the four protocol
//! operations, for each signature backend.
//!
//! Each operation runs in a loop for at least the requested time (one second by default) on
//! fixed keys and inputs, the way a provider runs it per request, with the keys set to the
//! backend measured (`SigningKey::with_backend`):
//!
//! - `issue`: seal a payload and sign a recovery token (account provider, §3.1).
//! - `rp_validate`: decode and run the save checks, one signature (recovery provider, §3.1).
//! - `countersign`: decode a saved token, re-check it by the id of the key it was saved under
//!   (still published, no verification) and countersign it (§3.4), as `dar serve` does.
//! - `ap_validate`: decode a countersigned token, run the return checks (two signatures) and
//!   open the payload (account provider, §3.5).
//!
//! Allocations are counted by `allocation-counter`'s global allocator (installed by linking the
//! crate; its counters are per thread, so the all-core run does not contend on them) over a
//! separate run of [`ALLOC_SAMPLE`] operations. It sees Rust heap allocations only: aws-lc's
//! own C allocations go through `malloc` directly and are not counted.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dar_core::{
    AwsLcRandomized, Countersign, CountersignedToken, Freshness, Issue, KeyId, Layout,
    MAX_TOKEN_LEN, Options, Origin, Payload, Purpose, RecoveryToken, ReturnCheck, RustCrypto,
    SaveCheck, SavedCheck, Sealer, SealingKey, SignatureBackend, SigningKey, TokenId,
    VerifyingKeys,
};
use getrandom::SysRng;
use serde_json::json;
use time::macros::datetime;

use crate::cli::{BenchArgs, BenchBackend};
use crate::output::Failure;

struct Fixture {
    ap: Origin,
    rp: Origin,
    ap_key: SigningKey,
    rp_key: SigningKey,
    ap_keys: VerifyingKeys,
    rp_keys: VerifyingKeys,
    /// The id of the key saved tokens verified with, as a recovery provider records it.
    ap_signer: KeyId,
    sealer: Sealer,
    /// What every issued token seals: the account id is the caller's, allocated once here.
    payload: Payload,
}

fn setup_error(e: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("benchmark set-up failed: {e}"))
}

/// Operations counted per allocation measurement: enough to average out the occasional
/// allocation that is not per operation (none is expected), few enough to be instant.
const ALLOC_SAMPLE: u32 = 64;

impl Fixture {
    /// Keys that sign and verify with `backend` (the verifying keys inherit it).
    fn new(backend: &'static dyn SignatureBackend) -> Result<Self, Failure> {
        let ap_key = SigningKey::from_scalar_bytes(&[0x1a; 32])
            .map_err(setup_error)?
            .with_backend(backend);
        let rp_key = SigningKey::from_scalar_bytes(&[0xc8; 32])
            .map_err(setup_error)?
            .with_backend(backend);
        Ok(Self {
            ap: Origin::parse("https://ap.example.com").map_err(setup_error)?,
            rp: Origin::parse("https://rp.example.net").map_err(setup_error)?,
            ap_keys: VerifyingKeys::from(ap_key.verifying_key()),
            ap_signer: ap_key.verifying_key().key_id(),
            rp_keys: VerifyingKeys::from(rp_key.verifying_key()),
            ap_key,
            rp_key,
            sealer: Sealer::new(vec![SealingKey::new(1, [0x42; 32])], 1, Layout::DarV1)
                .map_err(setup_error)?,
            payload: Payload {
                account_id: "user-4711".into(),
                created_at: datetime!(2026-11-22 15:31:18 UTC).unix_timestamp(),
                secret: [7; 32],
                purpose: Purpose::AccountRecovery,
            },
        })
    }

    fn issue(&self, id: u64) -> Result<Vec<u8>, dar_core::Error> {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&id.to_be_bytes());
        let params = Issue {
            key: &self.ap_key,
            token_id: TokenId::new(raw),
            options: Options::STATUS_REQUESTED,
            issuer: &self.ap,
            audience: &self.rp,
            issued: datetime!(2026-11-22 15:31:18 UTC),
            max_size: MAX_TOKEN_LEN,
        };
        Ok(dar_core::issue(params, &self.payload, &self.sealer, &mut SysRng)?.into_bytes())
    }

    fn rp_validate(&self, bytes: &[u8]) -> Result<(), dar_core::Error> {
        let check = SaveCheck {
            issuer: &self.ap,
            issuer_keys: &self.ap_keys,
            authoritative: std::slice::from_ref(&self.rp),
            freshness: Freshness::DEFAULT,
            binding: None,
        };
        let now = datetime!(2026-11-22 15:31:20 UTC);
        RecoveryToken::decode(bytes)?
            .verify_for_save(&check, now)
            .map(|v| {
                black_box(v.view().token_id());
            })
    }

    fn countersign(&self, bytes: &[u8]) -> Result<Vec<u8>, dar_core::Error> {
        let check = SavedCheck {
            issuer: &self.ap,
            issuer_keys: &self.ap_keys,
            authoritative: std::slice::from_ref(&self.rp),
        };
        let verified =
            RecoveryToken::decode(bytes)?.verify_saved_signed_by(&check, &self.ap_signer)?;
        let params = Countersign {
            key: &self.rp_key,
            token_id: TokenId::new([0x22; 16]),
            issued: datetime!(2026-11-22 15:31:30 UTC),
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        };
        Ok(dar_core::countersign(&verified, params)?.into_bytes())
    }

    fn ap_validate(&self, bytes: &[u8]) -> Result<(), dar_core::Error> {
        let check = ReturnCheck {
            account_provider: &self.ap,
            own_keys: &self.ap_keys,
            recovery_provider: &self.rp,
            countersign_keys: &self.rp_keys,
            freshness: Freshness::DEFAULT,
            binding: None,
        };
        let now = datetime!(2026-11-22 15:31:35 UTC);
        let verified = CountersignedToken::decode(bytes)?.verify_return(&check, now)?;
        let payload = verified.open_payload(&self.sealer)?;
        black_box(payload.created_at);
        Ok(())
    }
}

/// Runs `op` until `budget` has passed and returns operations per second.
fn measure(
    budget: Duration,
    mut op: impl FnMut(u64) -> Result<(), dar_core::Error>,
) -> Result<f64, Failure> {
    // Warm caches and catch a broken fixture before timing.
    op(0).map_err(setup_error)?;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        // Check the clock every 16 operations: cheap next to a signature.
        for _ in 0..16 {
            n += 1;
            op(n).map_err(setup_error)?;
        }
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Ok(n as f64 / elapsed.as_secs_f64());
        }
    }
}

/// Heap allocations (count and bytes) per operation, averaged over [`ALLOC_SAMPLE`] runs on
/// this thread.
fn allocations(
    mut op: impl FnMut(u64) -> Result<(), dar_core::Error>,
) -> Result<(f64, f64), Failure> {
    let mut result = Ok(());
    let info = allocation_counter::measure(|| {
        for i in 0..ALLOC_SAMPLE {
            if let Err(e) = op(u64::from(i)) {
                result = Err(e);
                return;
            }
        }
    });
    result.map_err(setup_error)?;
    let n = f64::from(ALLOC_SAMPLE);
    Ok((info.count_total as f64 / n, info.bytes_total as f64 / n))
}

/// One figure for each of the four operations.
#[derive(Debug, Clone, Copy, Default)]
struct PerOp {
    issue: f64,
    rp_validate: f64,
    countersign: f64,
    ap_validate: f64,
}

impl PerOp {
    fn entries(&self) -> [(&'static str, f64); 4] {
        [
            ("issue", self.issue),
            ("rp_validate", self.rp_validate),
            ("countersign", self.countersign),
            ("ap_validate", self.ap_validate),
        ]
    }

    fn json(&self, decimals: i32) -> serde_json::Value {
        let scale = 10f64.powi(decimals);
        let map: serde_json::Map<String, serde_json::Value> = self
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), json!((value * scale).round() / scale)))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// Operations per second of the four operations, each measured for `budget` on one thread.
type Rates = PerOp;

/// What one thread measures for one backend.
struct Measured {
    rates: Rates,
    allocs: PerOp,
    alloc_bytes: PerOp,
}

impl Measured {
    fn run(budget: Duration, backend: &'static dyn SignatureBackend) -> Result<Self, Failure> {
        let f = Fixture::new(backend)?;
        let recovery = f.issue(0).map_err(setup_error)?;
        let countersigned = f.countersign(&recovery).map_err(setup_error)?;
        let mut issue = |i| f.issue(i).map(|b| drop(black_box(b)));
        let mut rp_validate = |_| f.rp_validate(black_box(&recovery));
        let mut countersign = |_| {
            f.countersign(black_box(&recovery))
                .map(|b| drop(black_box(b)))
        };
        let mut ap_validate = |_| f.ap_validate(black_box(&countersigned));
        let rates = Rates {
            issue: measure(budget, &mut issue)?,
            rp_validate: measure(budget, &mut rp_validate)?,
            countersign: measure(budget, &mut countersign)?,
            ap_validate: measure(budget, &mut ap_validate)?,
        };
        let (mut allocs, mut alloc_bytes) = (PerOp::default(), PerOp::default());
        (allocs.issue, alloc_bytes.issue) = allocations(&mut issue)?;
        (allocs.rp_validate, alloc_bytes.rp_validate) = allocations(&mut rp_validate)?;
        (allocs.countersign, alloc_bytes.countersign) = allocations(&mut countersign)?;
        (allocs.ap_validate, alloc_bytes.ap_validate) = allocations(&mut ap_validate)?;
        Ok(Self {
            rates,
            allocs,
            alloc_bytes,
        })
    }
}

impl Rates {
    /// The rates of [`Measured::run`] on `threads` threads at once, summed.
    fn measure_parallel(
        budget: Duration,
        threads: usize,
        backend: &'static dyn SignatureBackend,
    ) -> Result<Self, Failure> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| Measured::run(budget, backend).map(|m| m.rates)))
                .collect();
            let mut total = Self::default();
            for handle in handles {
                let r = handle
                    .join()
                    .map_err(|_| Failure::usage("a benchmark thread failed"))??;
                total.issue += r.issue;
                total.rp_validate += r.rp_validate;
                total.countersign += r.countersign;
                total.ap_validate += r.ap_validate;
            }
            Ok(total)
        })
    }
}

/// The backends `choice` names, with the name `--backend` gives each.
fn backends(choice: BenchBackend) -> Vec<(&'static str, &'static dyn SignatureBackend)> {
    let all: [(BenchBackend, &'static str, &'static dyn SignatureBackend); 3] = [
        (BenchBackend::RustCrypto, "rust-crypto", &RustCrypto),
        (
            BenchBackend::Default,
            "default",
            dar_core::default_backend(),
        ),
        (BenchBackend::AwsLc, "aws-lc", &AwsLcRandomized),
    ];
    all.into_iter()
        .filter(|(which, _, _)| choice == BenchBackend::All || *which == choice)
        .map(|(_, label, backend)| (label, backend))
        .collect()
}

/// One backend's results: one thread, and optionally all cores.
struct Report {
    label: &'static str,
    backend: &'static dyn SignatureBackend,
    single: Measured,
    all: Option<(usize, Rates)>,
}

impl Report {
    fn json(&self) -> serde_json::Value {
        let mut out = json!({
            "backend": self.label,
            "name": self.backend.name(),
            "ops": self.single.rates.json(0),
            "allocs_per_op": self.single.allocs.json(2),
            "alloc_bytes_per_op": self.single.alloc_bytes.json(0),
        });
        if let Some((threads, rates)) = &self.all {
            out["all_cores"] = json!({ "threads": threads, "ops": rates.json(0) });
        }
        out
    }

    fn print(&self, seconds: f64) {
        println!(
            "backend {} ({}), {seconds:.1} s per operation",
            self.label,
            self.backend.name()
        );
        let all_heading = self
            .all
            .as_ref()
            .map(|(threads, _)| format!("  {:>14}", format!("{threads} threads/s")))
            .unwrap_or_default();
        println!(
            "  {:<12} {:>12} {:>10} {:>10}{all_heading}",
            "operation", "1 thread/s", "allocs/op", "bytes/op"
        );
        let rows = self
            .single
            .rates
            .entries()
            .into_iter()
            .zip(self.single.allocs.entries())
            .zip(self.single.alloc_bytes.entries());
        let all = self.all.as_ref().map(|(_, rates)| rates.entries());
        for (i, (((name, ops), (_, allocs)), (_, bytes))) in rows.enumerate() {
            let all_cell = all
                .as_ref()
                .and_then(|entries| entries.get(i))
                .map(|(_, ops)| format!("  {ops:>14.0}"))
                .unwrap_or_default();
            println!("  {name:<12} {ops:>12.0} {allocs:>10.1} {bytes:>10.0}{all_cell}");
        }
    }
}

/// How many slices [`crypto_limit`] measures; it keeps the best.
const LIMIT_SLICES: u32 = 10;

/// The single-thread rates of the build's default backend (the one `dar serve` uses) that
/// bound the account provider's recover-account-return, for `dar load`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CryptoLimit {
    /// The backend's name.
    pub(crate) backend: &'static str,
    /// `rp_validate` per second: one signature verification and the save checks, so about
    /// the verification rate.
    pub(crate) verify: f64,
    /// `ap_validate` per second: the whole crypto of one recover-account-return (two
    /// verifications and opening the sealed payload).
    pub(crate) ap_validate: f64,
}

impl CryptoLimit {
    /// recover-account-return requests per second one core can verify: the verification rate
    /// over the two verifications each request needs.
    pub(crate) fn per_core(&self) -> f64 {
        self.verify / 2.0
    }
}

/// Measures [`CryptoLimit`] on this thread, `budget` per operation, as the best of
/// [`LIMIT_SLICES`] equal slices of it: the limit is what one core can do, and anything else
/// the machine does meanwhile (a database still writing out the previous run, another
/// virtual machine on the same host) can only lower a slice's rate, so the highest is the
/// least disturbed, and the percentages of it the most conservative.
pub(crate) fn crypto_limit(budget: Duration) -> Result<CryptoLimit, Failure> {
    let backend = dar_core::default_backend();
    let f = Fixture::new(backend)?;
    let recovery = f.issue(0).map_err(setup_error)?;
    let countersigned = f.countersign(&recovery).map_err(setup_error)?;
    let slice = budget / LIMIT_SLICES;
    let (mut verify, mut ap_validate) = (0.0_f64, 0.0_f64);
    for _ in 0..LIMIT_SLICES {
        verify = verify.max(measure(slice, |_| f.rp_validate(black_box(&recovery)))?);
        ap_validate = ap_validate.max(measure(slice, |_| {
            f.ap_validate(black_box(&countersigned))
        })?);
    }
    Ok(CryptoLimit {
        backend: backend.name(),
        verify,
        ap_validate,
    })
}

pub(crate) fn run(args: &BenchArgs) -> Result<(), Failure> {
    if !args.seconds.is_finite() || args.seconds < 1.0 || args.seconds > 600.0 {
        return Err(Failure::usage("--seconds must be between 1 and 600"));
    }
    let budget = Duration::from_secs_f64(args.seconds);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut reports = Vec::new();
    for (label, backend) in backends(args.backend) {
        let single = Measured::run(budget, backend)?;
        let all = if args.all_cores && cores > 1 {
            Some((cores, Rates::measure_parallel(budget, cores, backend)?))
        } else {
            None
        };
        let report = Report {
            label,
            backend,
            single,
            all,
        };
        if !args.json {
            // Printed as each backend finishes: a full run takes a while.
            report.print(args.seconds);
        }
        reports.push(report);
    }
    if args.json {
        crate::output::print_json(&json!({
            "threads": 1,
            "cores": cores,
            "seconds_per_op": args.seconds,
            "backends": reports.iter().map(Report::json).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}
