//! `dar bench`: single-thread operations per second of the four protocol operations.
//!
//! Each operation runs in a loop for at least the requested time (one second by default) on
//! fixed keys and inputs, the way a provider runs it per request:
//!
//! - `issue`: seal a payload and sign a recovery token (account provider, §3.1).
//! - `rp_validate`: decode and run the save checks, one signature (recovery provider, §3.1).
//! - `countersign`: decode a saved token, re-check its signature and countersign it (§3.4).
//! - `ap_validate`: decode a countersigned token, run the return checks (two signatures) and
//!   open the payload (account provider, §3.5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use dar_core::{
    Countersign, CountersignedToken, Freshness, Layout, MAX_TOKEN_LEN, Options, Origin, Payload,
    Purpose, RecoveryToken, ReturnCheck, SaveCheck, SavedCheck, SealContext, Sealer, SealingKey,
    SigningKey, Token, TokenId, VerifyingKeys,
};
use getrandom::SysRng;
use serde_json::json;
use time::macros::datetime;

use crate::cli::BenchArgs;
use crate::output::Failure;

struct Fixture {
    ap: Origin,
    rp: Origin,
    ap_key: SigningKey,
    rp_key: SigningKey,
    ap_keys: VerifyingKeys,
    rp_keys: VerifyingKeys,
    sealer: Sealer,
}

fn setup_error(e: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("benchmark set-up failed: {e}"))
}

impl Fixture {
    fn new() -> Result<Self, Failure> {
        let ap_key = SigningKey::from_scalar_bytes(&[0x1a; 32]).map_err(setup_error)?;
        let rp_key = SigningKey::from_scalar_bytes(&[0xc8; 32]).map_err(setup_error)?;
        Ok(Self {
            ap: Origin::parse("https://ap.example.com").map_err(setup_error)?,
            rp: Origin::parse("https://rp.example.net").map_err(setup_error)?,
            ap_keys: VerifyingKeys::from(ap_key.verifying_key()),
            rp_keys: VerifyingKeys::from(rp_key.verifying_key()),
            ap_key,
            rp_key,
            sealer: Sealer::new(vec![SealingKey::new(1, [0x42; 32])], 1, Layout::DarV1)
                .map_err(setup_error)?,
        })
    }

    fn issue(&self, id: u64) -> Result<Vec<u8>, dar_core::Error> {
        let now = datetime!(2026-11-22 15:31:18 UTC);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&id.to_be_bytes());
        let token_id = TokenId::new(raw);
        let payload = Payload {
            account_id: "user-4711".into(),
            created_at: now.unix_timestamp(),
            secret: [7; 32],
            purpose: Purpose::AccountRecovery,
        };
        let ctx = SealContext {
            token_id: token_id.as_bytes(),
            issuer: self.ap.as_str(),
            audience: self.rp.as_str(),
        };
        let sealed = self.sealer.seal(&payload.to_bytes()?, &ctx, &mut SysRng)?;
        let token = Token::recovery(
            token_id,
            Options::STATUS_REQUESTED,
            self.ap.clone(),
            self.rp.clone(),
            now,
            sealed,
        );
        Ok(token.sign(&self.ap_key, MAX_TOKEN_LEN)?.into_bytes())
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
        let verified = RecoveryToken::decode(bytes)?.verify_saved(&check)?;
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

/// Operations per second of the four operations, each measured for `budget` on one thread.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    issue: f64,
    rp_validate: f64,
    countersign: f64,
    ap_validate: f64,
}

impl Rates {
    fn measure(budget: Duration) -> Result<Self, Failure> {
        let f = Fixture::new()?;
        let recovery = f.issue(0).map_err(setup_error)?;
        let countersigned = f.countersign(&recovery).map_err(setup_error)?;
        Ok(Self {
            issue: measure(budget, |i| f.issue(i).map(|b| drop(black_box(b))))?,
            rp_validate: measure(budget, |_| f.rp_validate(black_box(&recovery)))?,
            countersign: measure(budget, |_| {
                f.countersign(black_box(&recovery))
                    .map(|b| drop(black_box(b)))
            })?,
            ap_validate: measure(budget, |_| f.ap_validate(black_box(&countersigned)))?,
        })
    }

    /// The same measurement on `threads` threads at once; rates are summed.
    fn measure_parallel(budget: Duration, threads: usize) -> Result<Self, Failure> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| Self::measure(budget)))
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

    fn json(&self) -> serde_json::Value {
        json!({
            "issue": self.issue.round(),
            "rp_validate": self.rp_validate.round(),
            "countersign": self.countersign.round(),
            "ap_validate": self.ap_validate.round(),
        })
    }

    fn print(&self, heading: &str) {
        println!("{heading}");
        for (name, ops) in [
            ("issue", self.issue),
            ("rp_validate", self.rp_validate),
            ("countersign", self.countersign),
            ("ap_validate", self.ap_validate),
        ] {
            println!("  {name:<12} {ops:>10.0} ops/s");
        }
    }
}

pub(crate) fn run(args: &BenchArgs) -> Result<(), Failure> {
    if !args.seconds.is_finite() || args.seconds < 1.0 || args.seconds > 600.0 {
        return Err(Failure::usage("--seconds must be between 1 and 600"));
    }
    let budget = Duration::from_secs_f64(args.seconds);
    let single = Rates::measure(budget)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let all = if args.all_cores && cores > 1 {
        Some(Rates::measure_parallel(budget, cores)?)
    } else {
        None
    };
    let backend = dar_core::default_backend().name();
    if args.json {
        let mut out = json!({
            "backend": backend,
            "threads": 1,
            "seconds_per_op": args.seconds,
            "ops": single.json(),
        });
        if let Some(all) = &all {
            out["all_cores"] = json!({ "threads": cores, "ops": all.json() });
        }
        crate::output::print_json(&out);
    } else {
        single.print(&format!(
            "backend {backend}, one thread, {:.1} s per operation",
            args.seconds
        ));
        if let Some(all) = &all {
            all.print(&format!("all {cores} cores at once (rates summed)"));
        }
    }
    Ok(())
}
