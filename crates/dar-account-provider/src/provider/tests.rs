//! Every step of the account provider role against an in-memory store, each refusal with its
//! own error and a check that nothing stored changed.

use std::net::IpAddr;
use std::sync::Arc;

use dar_core::{
    Countersign, Freshness, Misuse, RecoveryProviderConfig, RecoveryToken, Rejected, SavedCheck,
    SealingKey, SigningKey, VerifyingKeys, countersign,
};
use dar_discovery::StaticConfigSource;
use time::macros::datetime;

use super::*;
use crate::memory::MemoryStore;
use crate::settings::{IpRange, KnownRecoveryProvider, RateLimit};
use crate::store::{AuditEntry, RecoveryRecord};

const ACCOUNT: &str = "user-42";
const SESSION: &str = "session-abc";
const T0: OffsetDateTime = datetime!(2026-11-22 15:31:18 UTC);

fn ap_origin() -> Origin {
    Origin::parse("https://ap.example.com").unwrap()
}

fn rp_origin() -> Origin {
    Origin::parse("https://rp.example.net").unwrap()
}

fn other_rp_origin() -> Origin {
    Origin::parse("https://other-rp.example.org").unwrap()
}

fn ap_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap()
}

fn rp_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0xc8; 32]).unwrap()
}

fn url(s: &str) -> EndpointUrl {
    EndpointUrl::parse(s, false).unwrap()
}

fn rp_config(origin: &Origin, key: &SigningKey, max_size: usize) -> Configuration {
    Configuration::new(
        origin.clone(),
        None,
        None,
        None,
        Some(RecoveryProviderConfig {
            countersign_keys: VerifyingKeys::from(key.verifying_key()),
            token_max_size: max_size,
            save_token: url(&format!("{origin}/dar/save")),
            save_token_async_api_iframe: None,
            recover_account: url(&format!("{origin}/dar/recover")),
        }),
    )
}

fn settings() -> Settings {
    Settings::new(
        ap_origin(),
        url("https://ap.example.com/dar/save-return"),
        url("https://ap.example.com/dar/recover-return"),
    )
    .with_recovery_provider(KnownRecoveryProvider::new(rp_origin()))
}

fn source() -> StaticConfigSource {
    let mut s = StaticConfigSource::new();
    s.insert(rp_config(&rp_origin(), &rp_key(), MAX_TOKEN_LEN));
    s
}

fn keys() -> KeyRing {
    KeyRing::new(ap_key(), SealingKey::new(1, [0x5e; 32])).unwrap()
}

type Ap<S = MemoryStore, C = StaticConfigSource> = AccountProvider<S, C>;

fn provider() -> Ap {
    AccountProvider::new(settings(), keys(), MemoryStore::new(), source())
}

fn rng() -> getrandom::SysRng {
    getrandom::SysRng
}

async fn issue<S: AccountProviderStore, C: ConfigSource>(ap: &Ap<S, C>) -> SaveTokenRequest {
    ap.issue(
        ACCOUNT,
        &rp_origin(),
        IssueOptions::default(),
        SESSION,
        T0,
        &mut rng(),
    )
    .await
    .unwrap()
}

/// Issues a token and completes the save round trip.
async fn issue_saved<S: AccountProviderStore, C: ConfigSource>(ap: &Ap<S, C>) -> SaveTokenRequest {
    let req = issue(ap).await;
    let done = ap
        .save_token_return(
            req.state(),
            "save-success",
            SESSION,
            T0 + Duration::seconds(30),
        )
        .await
        .unwrap();
    assert_eq!(done.state, TokenState::Saved);
    req
}

/// What the recovery provider does at recovery time (§3.4): re-check the saved token and
/// countersign it.
fn countersigned_with(
    token_b64: &str,
    key: &SigningKey,
    id: u8,
    at: OffsetDateTime,
    binding: Vec<u8>,
) -> String {
    let bytes = decode_base64(token_b64, MAX_TOKEN_LEN).unwrap();
    let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
    let check = SavedCheck {
        issuer: &ap_origin(),
        issuer_keys: &ap_keys,
        authoritative: &[rp_origin(), other_rp_origin()],
    };
    let saved = RecoveryToken::decode(&bytes)
        .unwrap()
        .verify_saved(&check)
        .unwrap();
    countersign(
        &saved,
        Countersign {
            key,
            token_id: TokenId::new([id; 16]),
            issued: at,
            binding,
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        },
    )
    .unwrap()
    .to_base64()
}

const RECOVERY_AT: OffsetDateTime = datetime!(2027-03-01 09:00:00 UTC);

fn countersigned(token_b64: &str, id: u8) -> String {
    countersigned_with(token_b64, &rp_key(), id, RECOVERY_AT, Vec::new())
}

fn accept_time() -> OffsetDateTime {
    RECOVERY_AT + Duration::seconds(5)
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    tokens: Vec<TokenRecord>,
    recoveries: Vec<RecoveryRecord>,
    audit: Vec<AuditEntry>,
    guard: usize,
    pending: usize,
}

async fn snapshot(store: &MemoryStore) -> Snapshot {
    Snapshot {
        tokens: store.tokens_for_account(ACCOUNT).await.unwrap(),
        recoveries: store.recoveries_for_account(ACCOUNT).await.unwrap(),
        audit: store.audit_for_account(ACCOUNT).await.unwrap(),
        guard: store.replay_guard_len().unwrap(),
        pending: store.pending_saves_len().unwrap(),
    }
}

async fn state_of(ap: &Ap, id: TokenId) -> TokenState {
    ap.store().token(id).await.unwrap().unwrap().state
}

// ---------------------------------------------------------------------------------------------
// Issuing (§3.1, account provider steps)

#[tokio::test]
async fn issues_a_token_the_recovery_provider_can_save() {
    let ap = provider();
    let req = issue(&ap).await;
    // §3.1 AP step 8: the POST goes to the configuration's save-token URL.
    assert_eq!(
        req.save_token_url().as_string(),
        "https://rp.example.net/dar/save"
    );
    let fields = req.form_fields();
    assert_eq!(fields[0].0, "token");
    assert_eq!(fields[1], ("state", req.state().to_owned()));
    // The recovery provider's save checks (§3.1 RP steps 2–10) pass.
    let bytes = decode_base64(req.token(), MAX_TOKEN_LEN).unwrap();
    let ap_keys = ap.key_ring().published_keys();
    let check = dar_core::SaveCheck {
        issuer: &ap_origin(),
        issuer_keys: ap_keys,
        authoritative: &[rp_origin()],
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    let saved = RecoveryToken::decode(&bytes)
        .unwrap()
        .verify_for_save(&check, T0 + Duration::seconds(2))
        .unwrap();
    // §3.1 AP step 5: audience = the configuration's issuer; status requested by default.
    assert_eq!(saved.view().audience(), "https://rp.example.net");
    assert!(saved.view().options().status_requested());
    assert_eq!(saved.view().token_id(), req.token_id());
    // §3.1 AP steps 6–7: the record.
    let record = ap.store().token(req.token_id()).await.unwrap().unwrap();
    assert_eq!(record.account_id, ACCOUNT);
    assert_eq!(record.audience, rp_origin());
    assert_eq!(record.state, TokenState::Issued);
    assert_eq!(record.created_at, T0);
    assert_eq!(record.sealing_key_id, 1);
    assert_eq!(record.signing_key, ap_key().verifying_key().fingerprint());
}

#[tokio::test]
async fn token_record_keeps_only_a_hash_of_the_secret() {
    let ap = provider();
    let req = issue(&ap).await;
    let bytes = decode_base64(req.token(), MAX_TOKEN_LEN).unwrap();
    let token = RecoveryToken::decode(&bytes).unwrap();
    let view = token.view();
    let id = view.token_id();
    let ctx = SealContext {
        token_id: id.as_bytes(),
        issuer: view.issuer(),
        audience: view.audience(),
    };
    let payload =
        Payload::from_bytes(&ap.key_ring().sealer().open(view.data(), &ctx).unwrap()).unwrap();
    assert_eq!(payload.account_id, ACCOUNT);
    let record = ap.store().token(id).await.unwrap().unwrap();
    assert_ne!(record.secret_hash, payload.secret);
    assert_eq!(record.secret_hash, hash(SECRET_LABEL, &payload.secret));
    // Nothing in the record's debug output is the token, its data or the state.
    let shown = format!("{record:?}");
    assert!(!shown.contains(req.token()) && !shown.contains(req.state()));
    assert!(!format!("{req:?}").contains(req.state()));
}

#[tokio::test]
async fn issue_refuses_an_unknown_recovery_provider() {
    let ap = provider();
    let before = snapshot(ap.store()).await;
    let err = ap
        .issue(
            ACCOUNT,
            &other_rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::UnknownRecoveryProvider);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn issue_aborts_when_the_configuration_cannot_be_obtained() {
    let ap = AccountProvider::new(
        settings(),
        keys(),
        MemoryStore::new(),
        StaticConfigSource::new(),
    );
    let before = snapshot(ap.store()).await;
    let err = ap
        .issue(
            ACCOUNT,
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Discovery(DiscoveryError::NotFound)
    );
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn issue_refuses_a_configuration_without_a_recovery_provider_part() {
    let mut source = StaticConfigSource::new();
    let ring = keys();
    let mut s = settings();
    s.origin = rp_origin();
    source.insert(ring.configuration(&s));
    let ap = AccountProvider::new(settings(), keys(), MemoryStore::new(), source);
    let err = ap
        .issue(
            ACCOUNT,
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::NotARecoveryProvider);
    assert!(snapshot(ap.store()).await.tokens.is_empty());
}

/// A source that answers every origin with the same document.
struct FixedSource(Arc<Configuration>);

impl ConfigSource for FixedSource {
    async fn configuration(&self, _: &Origin) -> Result<Arc<Configuration>, DiscoveryError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn issue_refuses_a_configuration_naming_another_issuer() {
    let source = FixedSource(Arc::new(rp_config(&other_rp_origin(), &rp_key(), 8192)));
    let ap = AccountProvider::new(settings(), keys(), MemoryStore::new(), source);
    let err = ap
        .issue(
            ACCOUNT,
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Discovery(DiscoveryError::IssuerMismatch)
    );
    assert!(snapshot(ap.store()).await.tokens.is_empty());
}

#[tokio::test]
async fn issue_respects_the_recovery_providers_token_max_size() {
    let mut source = StaticConfigSource::new();
    source.insert(rp_config(&rp_origin(), &rp_key(), 100));
    let ap = AccountProvider::new(settings(), keys(), MemoryStore::new(), source);
    let err = ap
        .issue(
            ACCOUNT,
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AccountProviderError::Protocol(dar_core::Error::Misuse(Misuse::TokenTooLarge { .. }))
    ));
    assert!(snapshot(ap.store()).await.tokens.is_empty());
}

#[tokio::test]
async fn issue_can_leave_status_unrequested_and_ask_for_low_friction() {
    let ap = provider();
    let options = IssueOptions {
        status_requested: false,
        low_friction: true,
        ..IssueOptions::default()
    };
    let req = ap
        .issue(ACCOUNT, &rp_origin(), options, SESSION, T0, &mut rng())
        .await
        .unwrap();
    let bytes = decode_base64(req.token(), MAX_TOKEN_LEN).unwrap();
    let token = RecoveryToken::decode(&bytes).unwrap();
    assert!(!token.view().options().status_requested());
    assert!(token.view().options().low_friction());
}

// ---------------------------------------------------------------------------------------------
// Save token return (§3.2)

#[tokio::test]
async fn save_token_return_consumes_the_state_and_marks_the_token_saved() {
    let ap = provider();
    let req = issue(&ap).await;
    let done = ap
        .save_token_return(req.state(), "save-success", SESSION, T0)
        .await
        .unwrap();
    assert_eq!(
        done,
        SaveReturn {
            token_id: req.token_id(),
            state: TokenState::Saved
        }
    );
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Saved);
    assert_eq!(ap.store().pending_saves_len().unwrap(), 0);
}

#[tokio::test]
async fn save_token_return_records_a_failure() {
    let ap = provider();
    let req = issue(&ap).await;
    let done = ap
        .save_token_return(req.state(), "save-failure", SESSION, T0)
        .await
        .unwrap();
    assert_eq!(done.state, TokenState::SaveFailed);
}

#[tokio::test]
async fn save_token_return_refuses_a_state_of_another_session() {
    let ap = provider();
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .save_token_return(req.state(), "save-success", "attacker-session", T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::StateMismatch);
    assert_eq!(snapshot(ap.store()).await, before);
    // The rightful session can still complete it.
    ap.save_token_return(req.state(), "save-success", SESSION, T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn save_token_return_refuses_a_replayed_state() {
    let ap = provider();
    let req = issue(&ap).await;
    ap.save_token_return(req.state(), "save-failure", SESSION, T0)
        .await
        .unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .save_token_return(req.state(), "save-success", SESSION, T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::StateMismatch);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn save_token_return_refuses_an_expired_state() {
    let ap = provider();
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .save_token_return(
            req.state(),
            "save-success",
            SESSION,
            T0 + Duration::hours(2),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::StateMismatch);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn save_token_return_refuses_an_unknown_status_and_keeps_the_state() {
    let ap = provider();
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .save_token_return(req.state(), "saved!", SESSION, T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::MalformedStatus);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn save_token_return_refuses_a_forged_state() {
    let ap = provider();
    issue(&ap).await;
    let before = snapshot(ap.store()).await;
    for forged in ["", "x", &"A".repeat(500)] {
        let err = ap
            .save_token_return(forged, "save-success", SESSION, T0)
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::StateMismatch);
    }
    assert_eq!(snapshot(ap.store()).await, before);
}

// ---------------------------------------------------------------------------------------------
// Token status (§3.6)

fn peer() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

fn form<'a>(id: &'a str, status: &'a str) -> TokenStatusForm<'a> {
    TokenStatusForm {
        id,
        status,
        countersigned_id: None,
    }
}

#[tokio::test]
async fn status_save_success_and_save_failure_update_the_record() {
    let ap = provider();
    let a = issue(&ap).await;
    let b = issue(&ap).await;
    let (ida, idb) = (a.token_id().to_string(), b.token_id().to_string());
    ap.token_status(&form(&ida, "save-success"), peer(), T0)
        .await
        .unwrap();
    ap.token_status(&form(&idb, "save-failure"), peer(), T0)
        .await
        .unwrap();
    assert_eq!(state_of(&ap, a.token_id()).await, TokenState::Saved);
    assert_eq!(state_of(&ap, b.token_id()).await, TokenState::SaveFailed);
}

#[tokio::test]
async fn status_deleted_marks_the_token_deleted_and_it_no_longer_recovers() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let id = req.token_id().to_string();
    ap.token_status(&form(&id, "deleted"), peer(), T0)
        .await
        .unwrap();
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Deleted);
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::TokenNotHeld);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn status_token_repudiated_revokes_and_audits() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let id = req.token_id().to_string();
    ap.token_status(&form(&id, "token-repudiated"), peer(), T0)
        .await
        .unwrap();
    let record = ap.store().token(req.token_id()).await.unwrap().unwrap();
    assert_eq!(record.state, TokenState::Revoked);
    assert_eq!(
        record.revoked_reason,
        Some(RevocationReason::TokenRepudiated)
    );
    let audit = ap.store().audit_for_account(ACCOUNT).await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.event, AuditEvent::Revoked);
    assert_eq!(last.detail.as_deref(), Some("token_repudiated"));
}

#[tokio::test]
async fn status_recovery_repudiated_revokes_and_marks_the_recovery() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let evidence = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
    let id = req.token_id().to_string();
    let cs = evidence.countersigned_id().to_string();
    let f = TokenStatusForm {
        id: &id,
        status: "recovery-repudiated",
        countersigned_id: Some(&cs),
    };
    ap.token_status(&f, peer(), accept_time()).await.unwrap();
    let record = ap.store().token(req.token_id()).await.unwrap().unwrap();
    assert_eq!(record.state, TokenState::Revoked);
    assert_eq!(
        record.revoked_reason,
        Some(RevocationReason::RecoveryRepudiated)
    );
    let recoveries = ap.store().recoveries_for_account(ACCOUNT).await.unwrap();
    assert_eq!(
        recoveries[0].repudiated_at,
        Some(whole_seconds(accept_time()))
    );
    let audit = ap.store().audit_for_account(ACCOUNT).await.unwrap();
    assert_eq!(audit.last().unwrap().event, AuditEvent::RecoveryRepudiated);
}

#[tokio::test]
async fn status_for_an_unknown_id_changes_nothing_and_looks_like_success() {
    let ap = provider();
    issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let unknown = TokenId::new([0xee; 16]).to_string();
    let result = ap
        .token_status(&form(&unknown, "token-repudiated"), peer(), T0)
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn status_refuses_a_malformed_id() {
    let ap = provider();
    issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .token_status(&form("not-hex", "deleted"), peer(), T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::MalformedStatus);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn status_refuses_an_unknown_status() {
    let ap = provider();
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let id = req.token_id().to_string();
    let err = ap
        .token_status(&form(&id, "exploded"), peer(), T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::MalformedStatus);
    assert_eq!(snapshot(ap.store()).await, before);
}

fn ranged_settings() -> Settings {
    let mut s = settings();
    s.recovery_providers = vec![
        KnownRecoveryProvider::new(rp_origin())
            .with_status_addresses(vec!["192.0.2.0/24".parse::<IpRange>().unwrap()]),
        KnownRecoveryProvider::new(other_rp_origin())
            .with_status_addresses(vec!["198.51.100.0/24".parse::<IpRange>().unwrap()]),
    ];
    s
}

#[tokio::test]
async fn status_refuses_an_address_of_no_known_recovery_provider() {
    let ap = AccountProvider::new(ranged_settings(), keys(), MemoryStore::new(), source());
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let id = req.token_id().to_string();
    let err = ap
        .token_status(
            &form(&id, "token-repudiated"),
            "203.0.113.5".parse().unwrap(),
            T0,
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::ForbiddenAddress);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn status_refuses_an_address_outside_the_tokens_recovery_provider() {
    let ap = AccountProvider::new(ranged_settings(), keys(), MemoryStore::new(), source());
    let req = issue(&ap).await;
    let before = snapshot(ap.store()).await;
    let id = req.token_id().to_string();
    // An address of the other known recovery provider.
    let err = ap
        .token_status(
            &form(&id, "token-repudiated"),
            "198.51.100.9".parse().unwrap(),
            T0,
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::ForbiddenAddress);
    assert_eq!(snapshot(ap.store()).await, before);
    // From its own range it is applied.
    ap.token_status(&form(&id, "token-repudiated"), peer(), T0)
        .await
        .unwrap();
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Revoked);
}

#[tokio::test]
async fn status_refuses_a_token_of_a_recovery_provider_no_longer_known() {
    let store = Arc::new(MemoryStore::new());
    let issuing = AccountProvider::new(settings(), keys(), store.clone(), source());
    let req = issue(&issuing).await;
    let mut later = settings();
    later.recovery_providers = vec![KnownRecoveryProvider::new(other_rp_origin())];
    let ap = AccountProvider::new(later, keys(), store.clone(), source());
    let before = snapshot(&store).await;
    let id = req.token_id().to_string();
    let err = ap
        .token_status(&form(&id, "deleted"), peer(), T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::UnknownRecoveryProvider);
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn status_is_rate_limited_per_recovery_provider() {
    let mut s = settings();
    s.status_rate_limit = RateLimit {
        max_events: 2,
        window: Duration::minutes(1),
    };
    let ap = AccountProvider::new(s, keys(), MemoryStore::new(), source());
    let a = issue(&ap).await;
    let b = issue(&ap).await;
    let (ida, idb) = (a.token_id().to_string(), b.token_id().to_string());
    ap.token_status(&form(&ida, "save-success"), peer(), T0)
        .await
        .unwrap();
    ap.token_status(&form(&ida, "save-success"), peer(), T0)
        .await
        .unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .token_status(&form(&idb, "token-repudiated"), peer(), T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::RateLimited);
    assert_eq!(snapshot(ap.store()).await, before);
    // The next window accepts again.
    ap.token_status(
        &form(&idb, "token-repudiated"),
        peer(),
        T0 + Duration::minutes(1),
    )
    .await
    .unwrap();
    assert_eq!(state_of(&ap, b.token_id()).await, TokenState::Revoked);
}

// ---------------------------------------------------------------------------------------------
// Accepting a countersigned token (§3.5)

#[tokio::test]
async fn accepts_a_countersigned_token_and_returns_evidence() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let evidence = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
    assert_eq!(evidence.account_id(), ACCOUNT);
    assert_eq!(evidence.recovery_provider(), &rp_origin());
    assert_eq!(evidence.token_id(), req.token_id());
    assert_eq!(evidence.countersigned_id(), TokenId::new([1; 16]));
    assert!(!evidence.low_friction());
    assert_eq!(evidence.token_age(), accept_time() - T0);
    assert_eq!(evidence.purpose(), Purpose::AccountRecovery);
    assert_eq!(evidence.recovered_at(), accept_time());
    // §3.5 step 16: the permanent record, and the token is used.
    let recoveries = ap.store().recoveries_for_account(ACCOUNT).await.unwrap();
    assert_eq!(recoveries.len(), 1);
    assert_eq!(recoveries[0].recovery_provider, rp_origin());
    assert_eq!(recoveries[0].countersigned_id, TokenId::new([1; 16]));
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Used);
    assert_eq!(
        ap.store()
            .audit_for_account(ACCOUNT)
            .await
            .unwrap()
            .last()
            .unwrap()
            .event,
        AuditEvent::Recovered
    );
}

#[tokio::test]
async fn the_evidence_handoff_is_committed_with_the_recovery_or_not_at_all() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let token = countersigned(req.token(), 1);
    // The caller refuses after the checks: nothing is written, the token stays usable.
    #[derive(Debug, PartialEq)]
    enum Refusal {
        Role(AccountProviderError),
        NoSuchWebAccount,
    }
    impl From<AccountProviderError> for Refusal {
        fn from(e: AccountProviderError) -> Self {
            Self::Role(e)
        }
    }
    let refused = ap
        .accept_countersigned_with(&token, None, accept_time(), |evidence| {
            assert_eq!(evidence.account_id(), ACCOUNT);
            Err::<Option<EvidenceHandoff>, _>(Refusal::NoSuchWebAccount)
        })
        .await
        .unwrap_err();
    assert_eq!(refused, Refusal::NoSuchWebAccount);
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Saved);
    assert_eq!(ap.store().replay_guard_len().unwrap(), 0);
    assert!(
        ap.store()
            .recoveries_for_account(ACCOUNT)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ap.store().handoffs().unwrap().is_empty());
    // Accepted: the handoff is written with the recovery.
    let handoff = EvidenceHandoff {
        key_hash: "ab".repeat(32),
        kind: "delegated".into(),
        payload: "evidence".into(),
        expires_at: accept_time() + Duration::minutes(10),
    };
    let evidence = ap
        .accept_countersigned_with(&token, None, accept_time(), |evidence| {
            assert_eq!(evidence.token_id(), req.token_id());
            Ok::<_, AccountProviderError>(Some(handoff.clone()))
        })
        .await
        .unwrap();
    assert_eq!(evidence.countersigned_id(), TokenId::new([1; 16]));
    assert_eq!(state_of(&ap, req.token_id()).await, TokenState::Used);
    assert_eq!(ap.store().handoffs().unwrap(), vec![handoff.clone()]);
    // A replay fails in the role's checks, before the caller is asked.
    let replayed = ap
        .accept_countersigned_with(
            &token,
            None,
            accept_time(),
            |_| -> Result<_, AccountProviderError> {
                panic!("asked for a handoff for a replayed token")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(replayed, AccountProviderError::Replayed);
    assert_eq!(ap.store().handoffs().unwrap(), vec![handoff]);
}

#[tokio::test]
async fn accepts_a_token_still_in_issued_state() {
    // The user closed the window before save-token-return: the provider saved it anyway.
    let ap = provider();
    let req = issue(&ap).await;
    ap.accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
}

#[tokio::test]
async fn evidence_reports_low_friction_from_the_countersigned_token() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let bytes = decode_base64(req.token(), MAX_TOKEN_LEN).unwrap();
    let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
    let saved = RecoveryToken::decode(&bytes)
        .unwrap()
        .verify_saved(&SavedCheck {
            issuer: &ap_origin(),
            issuer_keys: &ap_keys,
            authoritative: &[rp_origin()],
        })
        .unwrap();
    let key = rp_key();
    let token = countersign(
        &saved,
        Countersign {
            key: &key,
            token_id: TokenId::new([3; 16]),
            issued: RECOVERY_AT,
            binding: Vec::new(),
            low_friction: true,
            max_size: MAX_TOKEN_LEN,
        },
    )
    .unwrap()
    .to_base64();
    let evidence = ap
        .accept_countersigned(&token, None, accept_time())
        .await
        .unwrap();
    assert!(evidence.low_friction());
}

#[tokio::test]
async fn accepts_tokens_made_before_key_rotation() {
    let mut ap = provider();
    let req = issue_saved(&ap).await;
    ap.key_ring_mut()
        .rotate_signing(SigningKey::from_scalar_bytes(&[0x2b; 32]).unwrap())
        .unwrap();
    ap.key_ring_mut()
        .rotate_sealing(SealingKey::new(2, [0x6f; 32]))
        .unwrap();
    // New tokens use the new keys...
    let fresh = issue(&ap).await;
    let record = ap.store().token(fresh.token_id()).await.unwrap().unwrap();
    assert_eq!(record.sealing_key_id, 2);
    // ...and the old one still recovers (§6.8).
    ap.accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
}

#[tokio::test]
async fn refuses_a_token_signed_with_a_retired_key() {
    let mut ap = provider();
    let req = issue_saved(&ap).await;
    ap.key_ring_mut()
        .rotate_signing(SigningKey::from_scalar_bytes(&[0x2b; 32]).unwrap())
        .unwrap();
    ap.key_ring_mut()
        .retire_signing(&ap_key().verifying_key())
        .unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::InnerSignatureInvalid.into())
    );
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_token_whose_sealing_key_was_removed() {
    let mut ap = provider();
    let req = issue_saved(&ap).await;
    ap.key_ring_mut()
        .rotate_sealing(SealingKey::new(2, [0x6f; 32]))
        .unwrap();
    ap.key_ring_mut().remove_sealing(1).unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::UnknownSealingKey.into())
    );
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_text_that_is_not_base64() {
    let ap = provider();
    let err = ap
        .accept_countersigned("not base64!", None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(dar_core::DecodeError::Base64.into())
    );
}

#[tokio::test]
async fn refuses_a_recovery_token_instead_of_a_countersigned_one() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(req.token(), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(
            Rejected::WrongType {
                expected: 1,
                found: 0
            }
            .into()
        )
    );
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_countersigner_that_is_not_a_known_recovery_provider() {
    // The token was issued for a provider later dropped from the allow-list.
    let store = Arc::new(MemoryStore::new());
    let issuing = AccountProvider::new(settings(), keys(), store.clone(), source());
    let req = issue_saved(&issuing).await;
    let mut later = settings();
    later.recovery_providers.clear();
    let ap = AccountProvider::new(later, keys(), store.clone(), source());
    let before = snapshot(&store).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::UnknownRecoveryProvider);
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn refuses_when_the_recovery_providers_configuration_is_unavailable() {
    let store = Arc::new(MemoryStore::new());
    let issuing = AccountProvider::new(settings(), keys(), store.clone(), source());
    let req = issue_saved(&issuing).await;
    let ap = AccountProvider::new(settings(), keys(), store.clone(), StaticConfigSource::new());
    let before = snapshot(&store).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Discovery(DiscoveryError::NotFound)
    );
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn refuses_when_the_configuration_names_another_issuer() {
    let store = Arc::new(MemoryStore::new());
    let issuing = AccountProvider::new(settings(), keys(), store.clone(), source());
    let req = issue_saved(&issuing).await;
    let wrong = FixedSource(Arc::new(rp_config(&other_rp_origin(), &rp_key(), 8192)));
    let ap = AccountProvider::new(settings(), keys(), store.clone(), wrong);
    let before = snapshot(&store).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::CountersignerMismatch.into())
    );
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn refuses_a_countersignature_by_a_key_not_in_the_configuration() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let before = snapshot(ap.store()).await;
    let forger = SigningKey::from_scalar_bytes(&[0x77; 32]).unwrap();
    let token = countersigned_with(req.token(), &forger, 1, RECOVERY_AT, Vec::new());
    let err = ap
        .accept_countersigned(&token, None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::CountersignatureInvalid.into())
    );
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_stale_countersigned_token() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(
            &countersigned(req.token(), 1),
            None,
            RECOVERY_AT + Duration::hours(2),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::Protocol(Rejected::Stale.into()));
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_binding_it_cannot_check_and_a_wrong_binding() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let before = snapshot(ap.store()).await;
    let token = countersigned_with(req.token(), &rp_key(), 1, RECOVERY_AT, b"tb-1".to_vec());
    let err = ap
        .accept_countersigned(&token, None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::BindingUnexpected.into())
    );
    let err = ap
        .accept_countersigned(&token, Some(b"tb-2"), accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::BindingMismatch.into())
    );
    assert_eq!(snapshot(ap.store()).await, before);
    ap.accept_countersigned(&token, Some(b"tb-1"), accept_time())
        .await
        .unwrap();
}

#[tokio::test]
async fn refuses_a_replayed_countersigned_token() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let token = countersigned(req.token(), 1);
    ap.accept_countersigned(&token, None, accept_time())
        .await
        .unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&token, None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::Replayed);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_second_countersigned_token_over_a_used_token() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    ap.accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 2), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_revoked_token() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    ap.revoke(ACCOUNT, req.token_id(), T0).await.unwrap();
    let before = snapshot(ap.store()).await;
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::TokenRevoked);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn refuses_a_token_with_no_record() {
    // Same keys, another database: the token verifies and opens, but was never recorded.
    let issuing = provider();
    let req = issue_saved(&issuing).await;
    let ap = provider();
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::UnknownToken);
    assert_eq!(snapshot(ap.store()).await.guard, 0);
}

#[tokio::test]
async fn refuses_a_token_issued_by_another_account_provider() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let mut other = settings();
    other.origin = Origin::parse("https://elsewhere.example.com").unwrap();
    let elsewhere = AccountProvider::new(other, keys(), MemoryStore::new(), source());
    let err = elsewhere
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AccountProviderError::Protocol(Rejected::AudienceNotThisProvider.into())
    );
}

/// A store whose `token` answers are altered, to show the checks of §3.5 step 14 against a
/// record that disagrees with the token.
struct Tampered {
    inner: MemoryStore,
    tamper: fn(&mut TokenRecord),
}

impl AccountProviderStore for Tampered {
    async fn insert_token(
        &self,
        r: &TokenRecord,
        p: &PendingSave,
        a: &AuditEntry,
    ) -> Result<(), AccountProviderError> {
        self.inner.insert_token(r, p, a).await
    }
    async fn token(&self, id: TokenId) -> Result<Option<TokenRecord>, AccountProviderError> {
        Ok(self.inner.token(id).await?.map(|mut r| {
            (self.tamper)(&mut r);
            r
        }))
    }
    async fn tokens_for_account(&self, a: &str) -> Result<Vec<TokenRecord>, AccountProviderError> {
        self.inner.tokens_for_account(a).await
    }
    async fn take_pending_save(
        &self,
        s: &[u8; 32],
        h: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<TokenId>, AccountProviderError> {
        self.inner.take_pending_save(s, h, now).await
    }
    async fn apply_transition(&self, t: &Transition) -> Result<bool, AccountProviderError> {
        self.inner.apply_transition(t).await
    }
    async fn is_replayed(&self, id: TokenId) -> Result<bool, AccountProviderError> {
        self.inner.is_replayed(id).await
    }
    async fn commit_recovery(&self, c: &RecoveryCommit) -> Result<(), AccountProviderError> {
        self.inner.commit_recovery(c).await
    }
    async fn recoveries_for_account(
        &self,
        a: &str,
    ) -> Result<Vec<RecoveryRecord>, AccountProviderError> {
        self.inner.recoveries_for_account(a).await
    }
    async fn audit_for_account(&self, a: &str) -> Result<Vec<AuditEntry>, AccountProviderError> {
        self.inner.audit_for_account(a).await
    }
    async fn count_status_event(&self, o: &Origin, w: i64) -> Result<u64, AccountProviderError> {
        self.inner.count_status_event(o, w).await
    }
    async fn purge(&self, now: OffsetDateTime, w: i64) -> Result<Purged, AccountProviderError> {
        self.inner.purge(now, w).await
    }
}

async fn refused_with_tampered_record(tamper: fn(&mut TokenRecord)) -> AccountProviderError {
    let store = Arc::new(Tampered {
        inner: MemoryStore::new(),
        tamper: |_| {},
    });
    let ap = AccountProvider::new(settings(), keys(), store.clone(), source());
    let req = issue_saved(&ap).await;
    let tampered = AccountProvider::new(
        settings(),
        keys(),
        Tampered {
            inner: MemoryStore::new(),
            tamper,
        },
        source(),
    );
    // Move the records into the tampering store.
    for r in store.tokens_for_account(ACCOUNT).await.unwrap() {
        let pending = PendingSave {
            state_hash: [0; 32],
            session_hash: [0; 32],
            token_id: r.token_id,
            expires_at: T0,
        };
        let audit = audit_entry(&r, AuditEvent::Issued, T0, String::new());
        tampered
            .store()
            .inner
            .insert_token(&r, &pending, &audit)
            .await
            .unwrap();
    }
    let before = snapshot(&tampered.store().inner).await;
    let err = tampered
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(snapshot(&tampered.store().inner).await, before);
    err
}

#[tokio::test]
async fn refuses_a_payload_whose_secret_does_not_match_the_record() {
    let err = refused_with_tampered_record(|r| r.secret_hash = [0; 32]).await;
    assert_eq!(err, AccountProviderError::PayloadMismatch);
}

#[tokio::test]
async fn refuses_a_record_of_another_account() {
    let err = refused_with_tampered_record(|r| r.account_id = "user-7".into()).await;
    assert_eq!(err, AccountProviderError::NotOwnedByAccount);
}

#[tokio::test]
async fn refuses_a_record_addressed_to_another_recovery_provider() {
    let err = refused_with_tampered_record(|r| r.audience = other_rp_origin()).await;
    assert_eq!(err, AccountProviderError::WrongRecoveryProvider);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acceptances_of_one_token_succeed_once() {
    let ap = Arc::new(provider());
    let req = issue_saved(&*ap).await;
    let same = countersigned(req.token(), 1);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let ap = ap.clone();
        // Half present the same countersigned token, half a different one over the same
        // recovery token.
        let token = if i % 2 == 0 {
            same.clone()
        } else {
            countersigned(req.token(), 10 + i)
        };
        tasks.push(tokio::spawn(async move {
            ap.accept_countersigned(&token, None, accept_time()).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(AccountProviderError::Replayed | AccountProviderError::TokenAlreadyUsed) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        ap.store()
            .recoveries_for_account(ACCOUNT)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Revoking, listing, re-issuing, purging

#[tokio::test]
async fn lists_and_revokes_a_users_tokens() {
    let ap = provider();
    let a = issue_saved(&ap).await;
    let b = issue_saved(&ap).await;
    let listed: Vec<_> = ap
        .list_tokens(ACCOUNT)
        .await
        .unwrap()
        .iter()
        .map(|r| r.token_id)
        .collect();
    assert_eq!(listed, vec![a.token_id(), b.token_id()]);
    ap.revoke(ACCOUNT, a.token_id(), T0).await.unwrap();
    let record = ap.store().token(a.token_id()).await.unwrap().unwrap();
    assert_eq!(record.state, TokenState::Revoked);
    assert_eq!(record.revoked_reason, Some(RevocationReason::User));
    // Idempotent.
    ap.revoke(ACCOUNT, a.token_id(), T0).await.unwrap();
    assert!(ap.list_tokens("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn revoke_refuses_a_token_of_another_account() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let before = snapshot(ap.store()).await;
    let err = ap.revoke("user-7", req.token_id(), T0).await.unwrap_err();
    assert_eq!(err, AccountProviderError::NotOwnedByAccount);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn revoke_refuses_an_unknown_token() {
    let ap = provider();
    let err = ap
        .revoke(ACCOUNT, TokenId::new([9; 16]), T0)
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::UnknownToken);
}

#[tokio::test]
async fn reissuing_revokes_the_obsoleted_token_once_the_new_one_is_saved() {
    let ap = provider();
    let old = issue_saved(&ap).await;
    let options = IssueOptions {
        obsoletes: Some(old.token_id()),
        ..IssueOptions::default()
    };
    let new = ap
        .issue(ACCOUNT, &rp_origin(), options, SESSION, T0, &mut rng())
        .await
        .unwrap();
    assert!(
        new.form_fields()
            .contains(&("obsoletes", old.token_id().to_string()))
    );
    assert_eq!(
        ap.store()
            .token(new.token_id())
            .await
            .unwrap()
            .unwrap()
            .obsoletes,
        Some(old.token_id())
    );
    // Not saved yet: the old token still works.
    assert_eq!(state_of(&ap, old.token_id()).await, TokenState::Saved);
    ap.save_token_return(new.state(), "save-success", SESSION, T0)
        .await
        .unwrap();
    let record = ap.store().token(old.token_id()).await.unwrap().unwrap();
    assert_eq!(record.state, TokenState::Revoked);
    assert_eq!(record.revoked_reason, Some(RevocationReason::Replaced));
}

#[tokio::test]
async fn reissuing_keeps_the_old_token_when_the_new_one_fails_to_save() {
    let ap = provider();
    let old = issue_saved(&ap).await;
    let options = IssueOptions {
        obsoletes: Some(old.token_id()),
        ..IssueOptions::default()
    };
    let new = ap
        .issue(ACCOUNT, &rp_origin(), options, SESSION, T0, &mut rng())
        .await
        .unwrap();
    ap.save_token_return(new.state(), "save-failure", SESSION, T0)
        .await
        .unwrap();
    assert_eq!(state_of(&ap, old.token_id()).await, TokenState::Saved);
}

#[tokio::test]
async fn reissuing_refuses_to_obsolete_another_accounts_token() {
    let ap = provider();
    let theirs = ap
        .issue(
            "user-7",
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut rng(),
        )
        .await
        .unwrap();
    let before = snapshot(ap.store()).await;
    let options = IssueOptions {
        obsoletes: Some(theirs.token_id()),
        ..IssueOptions::default()
    };
    let err = ap
        .issue(ACCOUNT, &rp_origin(), options, SESSION, T0, &mut rng())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::NotOwnedByAccount);
    assert_eq!(snapshot(ap.store()).await, before);
}

#[tokio::test]
async fn revokes_the_tokens_issued_during_a_compromise() {
    let ap = provider();
    let before = issue_saved(&ap).await;
    let during = ap
        .issue(
            ACCOUNT,
            &rp_origin(),
            IssueOptions::default(),
            SESSION,
            T0 + Duration::days(3),
            &mut rng(),
        )
        .await
        .unwrap();
    let n = ap
        .revoke_issued_since(ACCOUNT, T0 + Duration::days(1), T0 + Duration::days(5))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(state_of(&ap, before.token_id()).await, TokenState::Saved);
    let record = ap.store().token(during.token_id()).await.unwrap().unwrap();
    assert_eq!(record.revoked_reason, Some(RevocationReason::Compromise));
}

#[tokio::test]
async fn purge_drops_expired_states_and_replay_guard_entries_only() {
    let ap = provider();
    let req = issue_saved(&ap).await;
    let _pending = issue(&ap).await;
    ap.accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap();
    // The unfinished save's state expired long ago; the guard entry is still needed.
    let first = ap.purge(accept_time()).await.unwrap();
    assert_eq!((first.save_states, first.replay_guard), (1, 0));
    assert_eq!(ap.store().replay_guard_len().unwrap(), 1);
    let purged = ap.purge(accept_time() + Duration::hours(2)).await.unwrap();
    assert_eq!((purged.save_states, purged.replay_guard), (0, 1));
    // The used token stays used: purging the guard never re-enables a recovery.
    let err = ap
        .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
        .await
        .unwrap_err();
    assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
}
