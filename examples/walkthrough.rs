//! A whole delegated recovery, in one process, with dar-core alone.
//!
//! Run it with `cargo run -p dar-core --example walkthrough`. It plays both providers: the
//! account provider issues a sealed, signed recovery token; the recovery provider checks and
//! saves it; later the recovery provider countersigns it; the account provider checks the
//! countersigned token and opens its sealed payload. Then it shows a forged countersignature
//! and a replayed-to-another-provider token being refused. No network, no files: this is the
//! sans-IO core that the roles and the server build on.

use std::time::Instant;

use dar_core::{
    Countersign, CountersignedToken, Freshness, Layout, MAX_TOKEN_LEN, Options, Origin, Payload,
    Purpose, RecoveryToken, ReturnCheck, SaveCheck, SavedCheck, SealContext, Sealer, SealingKey,
    SigningKey, Token, TokenId, VerifyingKeys,
};
use getrandom::SysRng;
use time::{Duration, OffsetDateTime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ap = Origin::parse("https://accounts.example.com")?;
    let rp = Origin::parse("https://recovery.example.net")?;
    let mut now = OffsetDateTime::now_utc();

    step("set-up", "each provider makes its keys (OS randomness)");
    let ap_key = SigningKey::generate(&mut SysRng)?;
    let rp_key = SigningKey::generate(&mut SysRng)?;
    let sealer = Sealer::new(
        vec![SealingKey::generate(1, &mut SysRng)?],
        1,
        Layout::DarV1,
    )?;
    // What each side learns from the other's configuration document (§2).
    let ap_published = VerifyingKeys::from(ap_key.verifying_key());
    let rp_published = VerifyingKeys::from(rp_key.verifying_key());
    println!(
        "    account provider  {ap}  key {}",
        ap_key.verifying_key().fingerprint()
    );
    println!(
        "    recovery provider {rp}  key {}",
        rp_key.verifying_key().fingerprint()
    );

    step(
        "§3.1 issue",
        "the account provider seals a payload for alice and signs a token",
    );
    let t = Instant::now();
    let token_id = TokenId::generate(&mut SysRng)?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let payload = Payload {
        account_id: "alice".into(),
        created_at: now.unix_timestamp(),
        secret,
        purpose: Purpose::AccountRecovery,
    };
    let ctx = SealContext {
        token_id: token_id.as_bytes(),
        issuer: ap.as_str(),
        audience: rp.as_str(),
    };
    let sealed = sealer.seal(&payload.to_bytes()?, &ctx, &mut SysRng)?;
    let token = Token::recovery(
        token_id,
        Options::STATUS_REQUESTED,
        ap.clone(),
        rp.clone(),
        now,
        sealed,
    )
    .sign(&ap_key, MAX_TOKEN_LEN)?;
    println!(
        "    token {token_id}: {} bytes, {:?}",
        token.as_bytes().len(),
        t.elapsed()
    );

    step(
        "§3.1 save",
        "the recovery provider checks the token before saving it for the user",
    );
    now += Duration::seconds(2);
    let t = Instant::now();
    let authoritative = [rp.clone()];
    let check = SaveCheck {
        issuer: &ap,
        issuer_keys: &ap_published,
        authoritative: &authoritative,
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    RecoveryToken::decode(token.as_bytes())?.verify_for_save(&check, now)?;
    println!(
        "    issuer, signature, audience, freshness, binding: ok ({:?})",
        t.elapsed()
    );
    let saved = token.as_bytes().to_vec();

    step("lockout", "months later alice has lost her second factor");
    now += Duration::days(200);

    step(
        "§3.4 recover",
        "the recovery provider re-authenticates alice and countersigns",
    );
    let t = Instant::now();
    let saved_check = SavedCheck {
        issuer: &ap,
        issuer_keys: &ap_published,
        authoritative: &authoritative,
    };
    let verified = RecoveryToken::decode(&saved)?.verify_saved(&saved_check)?;
    let countersigned = dar_core::countersign(
        &verified,
        Countersign {
            key: &rp_key,
            token_id: TokenId::generate(&mut SysRng)?,
            issued: now,
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        },
    )?;
    println!(
        "    countersigned token: {} bytes ({:?})",
        countersigned.as_bytes().len(),
        t.elapsed()
    );

    step(
        "§3.5 return",
        "the account provider checks both signatures and opens the payload",
    );
    now += Duration::seconds(3);
    let t = Instant::now();
    let return_check = ReturnCheck {
        account_provider: &ap,
        own_keys: &ap_published,
        recovery_provider: &rp,
        countersign_keys: &rp_published,
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    let evidence =
        CountersignedToken::decode(countersigned.as_bytes())?.verify_return(&return_check, now)?;
    let opened = evidence.open_payload(&sealer)?;
    println!(
        "    evidence for account {:?} from {} ({:?})",
        opened.account_id,
        evidence.outer().issuer(),
        t.elapsed()
    );
    println!("    this is evidence for the lockout-recovery decision, not an unlocked account");

    step("attacks", "what the account provider refuses");
    let mut forged = countersigned.as_bytes().to_vec();
    if let Some(last) = forged.last_mut() {
        *last ^= 1;
    }
    report(
        "flipped bit",
        CountersignedToken::decode(&forged)
            .and_then(|t| t.verify_return(&return_check, now))
            .map(|_| ()),
    );
    let evil = Origin::parse("https://evil.example.org")?;
    let other = ReturnCheck {
        recovery_provider: &evil,
        ..return_check
    };
    report(
        "other countersigner",
        CountersignedToken::decode(countersigned.as_bytes())
            .and_then(|t| t.verify_return(&other, now))
            .map(|_| ()),
    );
    report(
        "two hours late",
        CountersignedToken::decode(countersigned.as_bytes())
            .and_then(|t| t.verify_return(&return_check, now + Duration::hours(2)))
            .map(|_| ()),
    );
    Ok(())
}

fn step(name: &str, what: &str) {
    println!("\n[{name}] {what}");
}

fn report(what: &str, result: Result<(), dar_core::Error>) {
    match result {
        Ok(()) => println!("    {what}: ACCEPTED (unexpected)"),
        Err(e) => println!("    {what}: refused, {} at {}", e.code(), e.step()),
    }
}
