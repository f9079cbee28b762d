//! An account provider end to end, on a SQLite store: set up a key ring, issue a recovery
//! token for an account, play the recovery provider (save it, later countersign it with
//! dar-core), accept the countersigned token and print the evidence.
//!
//! Run with `cargo run -p dar-store --example account_provider`.

use dar_account_provider::{
    AccountProvider, AccountProviderStore, IssueOptions, KeyRing, KnownRecoveryProvider, Settings,
};
use dar_core::{
    Configuration, Countersign, EndpointUrl, MAX_TOKEN_LEN, Origin, RecoveryProviderConfig,
    RecoveryToken, SavedCheck, SealingKey, SigningKey, TokenId, VerifyingKeys, countersign,
    decode_base64,
};
use dar_discovery::StaticConfigSource;
use dar_store::Store;
use time::{Duration, OffsetDateTime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = getrandom::SysRng;
    let now = OffsetDateTime::now_utc();

    // The account provider: its origin, endpoints, keys and the recovery providers it trusts.
    let ap_origin = Origin::parse("https://ap.example.com")?;
    let rp_origin = Origin::parse("https://rp.example.net")?;
    let settings = Settings::new(
        ap_origin.clone(),
        EndpointUrl::parse("https://ap.example.com/dar/save-return", false)?,
        EndpointUrl::parse("https://ap.example.com/dar/recover-return", false)?,
    )
    .with_recovery_provider(KnownRecoveryProvider::new(rp_origin.clone()));
    // Real deployments load these from their key store (PKCS#8 PEM, and 32-byte AES keys).
    let keys = KeyRing::new(
        SigningKey::generate(&mut rng)?,
        SealingKey::generate(1, &mut rng)?,
    )?;

    // The recovery provider's configuration, as discovery would fetch it (§2).
    let rp_key = SigningKey::generate(&mut rng)?;
    let mut discovery = StaticConfigSource::new();
    discovery.insert(Configuration::new(
        rp_origin.clone(),
        None,
        None,
        None,
        Some(RecoveryProviderConfig {
            countersign_keys: VerifyingKeys::from(rp_key.verifying_key()),
            token_max_size: MAX_TOKEN_LEN,
            save_token: EndpointUrl::parse("https://rp.example.net/dar/save", false)?,
            save_token_async_api_iframe: None,
            recover_account: EndpointUrl::parse("https://rp.example.net/dar/recover", false)?,
        }),
    ));

    let store = Store::connect("sqlite::memory:").await?;
    let ap = AccountProvider::new(settings, keys, store, discovery);
    println!("configuration: {}", ap.configuration().to_json());

    // §3.1: the signed-in user asks to save a recovery token at the recovery provider.
    let session = "session-cookie-id";
    let request = ap
        .issue(
            "user-42",
            &rp_origin,
            IssueOptions::default(),
            session,
            now,
            &mut rng,
        )
        .await?;
    println!(
        "POST {} with token ({} chars) and state",
        request.save_token_url().as_string(),
        request.token().len()
    );

    // The recovery provider saves it and sends the user back (§3.2).
    let saved = ap
        .save_token_return(request.state(), "save-success", session, now)
        .await?;
    println!("token {} is {}", saved.token_id, saved.state);

    // Months later the user is locked out; the recovery provider countersigns (§3.4).
    let later = now + Duration::days(120);
    let bytes = decode_base64(request.token(), MAX_TOKEN_LEN)?;
    let ap_keys = ap.key_ring().published_keys();
    let check = SavedCheck {
        issuer: &ap_origin,
        issuer_keys: ap_keys,
        authoritative: std::slice::from_ref(&rp_origin),
    };
    let verified = RecoveryToken::decode(&bytes)?.verify_saved(&check)?;
    let countersigned = countersign(
        &verified,
        Countersign {
            key: &rp_key,
            token_id: TokenId::generate(&mut rng)?,
            issued: later,
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        },
    )?
    .to_base64();

    // §3.5: the account provider accepts it, once.
    let evidence = ap
        .accept_countersigned(&countersigned, None, later + Duration::seconds(3))
        .await?;
    println!(
        "evidence: account {} via {}, token {} (countersigned {}), issued {} days ago, \
         low friction: {}",
        evidence.account_id(),
        evidence.recovery_provider(),
        evidence.token_id(),
        evidence.countersigned_id(),
        evidence.token_age().whole_days(),
        evidence.low_friction()
    );
    let again = ap
        .accept_countersigned(&countersigned, None, later + Duration::seconds(4))
        .await;
    println!(
        "presented again: {}",
        again.map(|_| "accepted").unwrap_or_else(|e| e.code())
    );
    for recovery in ap.store().recoveries_for_account("user-42").await? {
        println!(
            "recorded: {} at {} by {}",
            recovery.token_id, recovery.recovered_at, recovery.recovery_provider
        );
    }
    Ok(())
}
