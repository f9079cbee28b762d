//! A recovery provider in one file: save a token for a user, list it, recover with it, and show
//! what the outbox holds for the deliverer.
//!
//! Run with `cargo run -p dar-store --example recovery_provider`. Everything the HTTP edge would
//! do (authenticating the user, parsing forms, redirecting, POSTing) is a comment here.

use std::error::Error;
use std::sync::Arc;

use dar_core::{
    AccountProviderConfig, Configuration, EndpointUrl, MAX_TOKEN_LEN, Options, Origin, SigningKey,
    Token, TokenId, VerifyingKeys,
};
use dar_discovery::StaticConfigSource;
use dar_recovery_provider::{
    OutboxMessage, RecoverOutcome, RecoverRequest, RecoveryProvider, RecoveryProviderSettings,
    RecoveryProviderStore, SaveForm, SaveOptions, SaveOutcome, UserId,
};
use dar_store::Store;
use time::OffsetDateTime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let now = OffsetDateTime::now_utc();
    let mut rng = getrandom::SysRng;
    let ap = Origin::parse("https://ap.example.com")?;
    let rp = Origin::parse("https://rp.example.net")?;

    // The account provider's side, as far as this provider sees it: its published
    // configuration (normally fetched over HTTPS by dar-discovery) and a token it issued.
    let ap_key = SigningKey::generate(&mut rng)?;
    let mut configs = StaticConfigSource::new();
    configs.insert(Configuration::new(
        ap.clone(),
        None,
        None,
        Some(AccountProviderConfig {
            tokensign_keys: VerifyingKeys::from(ap_key.verifying_key()),
            save_token_return: EndpointUrl::parse("https://ap.example.com/dar/save-return", false)?,
            recover_account_return: EndpointUrl::parse(
                "https://ap.example.com/dar/recover-return",
                false,
            )?,
        }),
        None,
    ));
    let token = Token::recovery(
        TokenId::generate(&mut rng)?,
        Options::STATUS_REQUESTED,
        ap.clone(),
        rp.clone(),
        now,
        b"sealed by the account provider".to_vec(),
    )
    .sign(&ap_key, MAX_TOKEN_LEN)?;

    // This recovery provider: a store (a file in production: sqlite://dar.db or postgres://),
    // its countersigning key (loaded from a PEM file in production) and the origins it serves.
    let store = Store::in_memory().await?;
    let countersign_key = Arc::new(SigningKey::generate(&mut rng)?);
    let settings = RecoveryProviderSettings::new(vec![rp], countersign_key);
    let provider = RecoveryProvider::new(settings, store, configs);

    // POST /save-token from the signed-in user "alice" (§3.1).
    let alice = UserId::new("alice");
    let form = SaveForm {
        token: token.to_base64(),
        nickname_hint: Some("work account".into()),
        state: Some("opaque-ap-state".into()),
        ..SaveForm::default()
    };
    match provider
        .save(&alice, &form, SaveOptions::default(), now)
        .await?
    {
        SaveOutcome::Saved { redirect, .. } => {
            println!("saved; redirect to {}", redirect.location())
        }
        SaveOutcome::Refused { error, redirect } => {
            println!(
                "refused ({}); redirect to {}",
                error.code(),
                redirect.location()
            );
        }
        SaveOutcome::ConfirmationRequired(preview) => {
            println!("ask alice to confirm saving a token for {}", preview.issuer);
        }
    }

    // GET /tokens: what alice sees (never the token bytes).
    for t in provider.list(&alice).await? {
        let nickname = t.nickname.as_deref().unwrap_or("-");
        println!(
            "token {} from {} ({nickname}), saved {}",
            t.token_id, t.issuer, t.saved_at
        );
    }

    // GET /recover-account?issuer=https://ap.example.com, after a strong re-authentication
    // (§3.4, §6.3.1).
    let request = RecoverRequest {
        issuer_hint: Some(&ap),
        ..RecoverRequest::default()
    };
    match provider.recover(&alice, &request, now, &mut rng).await? {
        RecoverOutcome::Countersigned(recovery) => {
            println!("POST to {}", recovery.post_to.as_string());
            for (name, value) in recovery.form_fields() {
                println!("  {name}={value}");
            }
        }
        RecoverOutcome::Choose(candidates) => {
            println!("ask alice to choose among {} tokens", candidates.len());
        }
    }

    // What the outbox deliverer (another process) would send now.
    for entry in provider.store().pending_outbox(100, now).await? {
        match &entry.message {
            OutboxMessage::TokenStatus(cb) => {
                println!(
                    "outbox {}: POST {} body {}",
                    entry.id.0,
                    cb.url(),
                    cb.form_body()
                );
            }
            OutboxMessage::UserNotification(n) => println!(
                "outbox {}: tell {} their token for {} was used (countersigned id {})",
                entry.id.0, n.user, n.issuer, n.countersigned_id
            ),
        }
        provider
            .store()
            .mark_outbox_delivered(entry.id, now)
            .await?;
    }
    Ok(())
}
