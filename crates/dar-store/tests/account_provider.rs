//! The account provider role on the real store: SQLite always (in memory, and a file for the
//! concurrency tests), PostgreSQL when `DAR_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use dar_account_provider::{
    AccountProvider, AccountProviderError, AccountProviderStore, AuditEntry, AuditEvent,
    EvidenceHandoff, IssueOptions, KeyRing, KnownRecoveryProvider, RateLimit, RecoveryCommit,
    RecoveryRecord, RevocationReason, SaveTokenRequest, Settings, TokenRecord, TokenState,
    TokenStatusForm,
};
use dar_core::{
    Configuration, Countersign, EndpointUrl, MAX_TOKEN_LEN, Origin, RecoveryProviderConfig,
    RecoveryToken, SavedCheck, SealingKey, SigningKey, TokenId, VerifyingKeys, countersign,
    decode_base64,
};
use dar_discovery::StaticConfigSource;
use dar_store::Store;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

type Ap = AccountProvider<Store, StaticConfigSource>;
type TestResult = Result<(), Box<dyn std::error::Error>>;

const ACCOUNT: &str = "user-42";
const SESSION: &str = "session-abc";
const T0: OffsetDateTime = datetime!(2026-11-22 15:31:18 UTC);
const RECOVERY_AT: OffsetDateTime = datetime!(2027-03-01 09:00:00 UTC);

fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
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

fn rp() -> Origin {
    origin("https://rp.example.net")
}

fn settings() -> Settings {
    Settings::new(
        origin("https://ap.example.com"),
        url("https://ap.example.com/dar/save-return"),
        url("https://ap.example.com/dar/recover-return"),
    )
    .with_recovery_provider(KnownRecoveryProvider::new(rp()))
}

fn source() -> StaticConfigSource {
    let mut s = StaticConfigSource::new();
    s.insert(Configuration::new(
        rp(),
        None,
        None,
        None,
        Some(RecoveryProviderConfig {
            countersign_keys: VerifyingKeys::from(rp_key().verifying_key()),
            token_max_size: MAX_TOKEN_LEN,
            save_token: url("https://rp.example.net/dar/save"),
            save_token_async_api_iframe: None,
            recover_account: url("https://rp.example.net/dar/recover"),
        }),
    ));
    s
}

/// One account provider instance on `store` (several may share one database).
fn instance(store: &Store) -> Ap {
    instance_with(store, settings())
}

fn instance_with(store: &Store, settings: Settings) -> Ap {
    let keys = KeyRing::new(ap_key(), SealingKey::new(1, [0x5e; 32])).unwrap();
    AccountProvider::new(settings, keys, store.clone(), source())
}

async fn issue_saved(ap: &Ap) -> SaveTokenRequest {
    let req = ap
        .issue(
            ACCOUNT,
            &rp(),
            IssueOptions::default(),
            SESSION,
            T0,
            &mut getrandom::SysRng,
        )
        .await
        .unwrap();
    ap.save_token_return(
        req.state(),
        "save-success",
        SESSION,
        T0 + Duration::seconds(20),
    )
    .await
    .unwrap();
    req
}

/// The recovery provider's side (§3.4): re-check the saved token and countersign it.
fn countersigned(token_b64: &str, id: u8) -> String {
    let bytes = decode_base64(token_b64, MAX_TOKEN_LEN).unwrap();
    let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
    let check = SavedCheck {
        issuer: &origin("https://ap.example.com"),
        issuer_keys: &ap_keys,
        authoritative: &[rp()],
    };
    let saved = RecoveryToken::decode(&bytes)
        .unwrap()
        .verify_saved(&check)
        .unwrap();
    let key = rp_key();
    countersign(
        &saved,
        Countersign {
            key: &key,
            token_id: TokenId::new([id; 16]),
            issued: RECOVERY_AT,
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        },
    )
    .unwrap()
    .to_base64()
}

fn accept_time() -> OffsetDateTime {
    RECOVERY_AT + Duration::seconds(5)
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    tokens: Vec<TokenRecord>,
    recoveries: Vec<RecoveryRecord>,
    audit: Vec<AuditEntry>,
}

async fn snapshot(store: &Store) -> Snapshot {
    Snapshot {
        tokens: store.tokens_for_account(ACCOUNT).await.unwrap(),
        recoveries: store.recoveries_for_account(ACCOUNT).await.unwrap(),
        audit: store.audit_for_account(ACCOUNT).await.unwrap(),
    }
}

async fn stores(name: &str) -> Vec<Store> {
    let stores = dar_store::testing::stores(name).await.unwrap();
    if stores.len() == 1 {
        println!("DAR_TEST_POSTGRES_URL not set: PostgreSQL not tested");
    }
    stores
}

/// The stores plus a SQLite file (WAL, as deployments have it; in-memory SQLite keeps its
/// journal in memory).
async fn stores_with_file(name: &str) -> (Vec<Store>, std::path::PathBuf) {
    let mut all = stores(name).await;
    let dir = std::env::temp_dir().join(format!("dar-ap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("ap.db").display());
    all.push(Store::connect(&url).await.unwrap());
    (all, dir)
}

#[tokio::test]
async fn issues_saves_and_accepts_a_countersigned_token() -> TestResult {
    for store in stores("ap_full_flow").await {
        let ap = instance(&store);
        let req = issue_saved(&ap).await;
        let record = store.token(req.token_id()).await?.unwrap();
        assert_eq!(record.state, TokenState::Saved);
        assert_eq!(record.audience, rp());
        assert_eq!(record.created_at, T0);
        assert_eq!(record.sealing_key_id, 1);

        let evidence = ap
            .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
            .await?;
        assert_eq!(evidence.account_id(), ACCOUNT);
        assert_eq!(evidence.recovery_provider(), &rp());
        assert_eq!(evidence.token_id(), req.token_id());
        assert_eq!(evidence.countersigned_id(), TokenId::new([1; 16]));
        assert_eq!(evidence.token_age(), accept_time() - T0);
        assert!(!evidence.low_friction());

        assert_eq!(
            store.token(req.token_id()).await?.unwrap().state,
            TokenState::Used
        );
        assert!(store.is_replayed(TokenId::new([1; 16])).await?);
        // The two reads of §3.5 steps 9 and 14 in one: every combination.
        let (unknown_cs, unknown_token) = (TokenId::new([0xee; 16]), TokenId::new([0xef; 16]));
        let (replayed, token) = store
            .replayed_and_token(TokenId::new([1; 16]), req.token_id())
            .await?;
        assert!(replayed);
        assert_eq!(token.map(|t| t.state), Some(TokenState::Used));
        let (replayed, token) = store.replayed_and_token(unknown_cs, req.token_id()).await?;
        assert!(!replayed);
        assert_eq!(token, store.token(req.token_id()).await?);
        let (replayed, token) = store
            .replayed_and_token(TokenId::new([1; 16]), unknown_token)
            .await?;
        assert!(replayed && token.is_none());
        let (replayed, token) = store.replayed_and_token(unknown_cs, unknown_token).await?;
        assert!(!replayed && token.is_none());
        let recoveries = store.recoveries_for_account(ACCOUNT).await?;
        assert_eq!(recoveries.len(), 1);
        assert_eq!(recoveries[0].recovery_provider, rp());
        assert_eq!(recoveries[0].recovered_at, accept_time());
        // §6.8: by recovery provider and window, the start included and the end excluded.
        let second = Duration::seconds(1);
        let at = accept_time();
        let through = store.recoveries_through(&rp(), at, at + second, 10).await?;
        assert_eq!(through, recoveries);
        for (from, until) in [(at + second, at + Duration::hours(1)), (at - second, at)] {
            assert_eq!(store.recoveries_through(&rp(), from, until, 10).await?, []);
        }
        let other = origin("https://other-rp.example.net");
        let wide = (at - Duration::days(1), at + Duration::days(1));
        assert_eq!(
            store.recoveries_through(&other, wide.0, wide.1, 10).await?,
            []
        );
        let events: Vec<AuditEvent> = store
            .audit_for_account(ACCOUNT)
            .await?
            .iter()
            .map(|a| a.event)
            .collect();
        assert_eq!(
            events,
            vec![
                AuditEvent::Issued,
                AuditEvent::StateChanged,
                AuditEvent::Recovered
            ]
        );
    }
    Ok(())
}

#[tokio::test]
async fn save_state_is_single_use_and_bound_to_its_session() -> TestResult {
    for store in stores("ap_save_state").await {
        let ap = instance(&store);
        let req = ap
            .issue(
                ACCOUNT,
                &rp(),
                IssueOptions::default(),
                SESSION,
                T0,
                &mut getrandom::SysRng,
            )
            .await?;
        let before = snapshot(&store).await;
        let err = ap
            .save_token_return(req.state(), "save-success", "other-session", T0)
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::StateMismatch);
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
        assert_eq!(snapshot(&store).await, before);

        ap.save_token_return(req.state(), "save-failure", SESSION, T0)
            .await?;
        assert_eq!(
            store.token(req.token_id()).await?.unwrap().state,
            TokenState::SaveFailed
        );
        let before = snapshot(&store).await;
        let err = ap
            .save_token_return(req.state(), "save-success", SESSION, T0)
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::StateMismatch);
        assert_eq!(snapshot(&store).await, before);
    }
    Ok(())
}

#[tokio::test]
async fn status_events_update_records_and_repudiations_revoke() -> TestResult {
    for store in stores("ap_status_events").await {
        let ap = instance(&store);
        let peer = "192.0.2.1".parse()?;
        let a = ap
            .issue(
                ACCOUNT,
                &rp(),
                IssueOptions::default(),
                SESSION,
                T0,
                &mut getrandom::SysRng,
            )
            .await?;
        let id = a.token_id().to_string();
        let form = |status| TokenStatusForm {
            id: &id,
            status,
            countersigned_id: None,
        };
        ap.token_status(&form("save-success"), peer, T0).await?;
        assert_eq!(
            store.token(a.token_id()).await?.unwrap().state,
            TokenState::Saved
        );
        ap.token_status(&form("deleted"), peer, T0).await?;
        assert_eq!(
            store.token(a.token_id()).await?.unwrap().state,
            TokenState::Deleted
        );
        ap.token_status(&form("token-repudiated"), peer, T0).await?;
        let record = store.token(a.token_id()).await?.unwrap();
        assert_eq!(record.state, TokenState::Revoked);
        assert_eq!(
            record.revoked_reason,
            Some(RevocationReason::TokenRepudiated)
        );

        // recovery-repudiated after a recovery: revoked, and the recovery is marked.
        let b = issue_saved(&ap).await;
        let evidence = ap
            .accept_countersigned(&countersigned(b.token(), 2), None, accept_time())
            .await?;
        let idb = b.token_id().to_string();
        let cs = evidence.countersigned_id().to_string();
        let f = TokenStatusForm {
            id: &idb,
            status: "recovery-repudiated",
            countersigned_id: Some(&cs),
        };
        ap.token_status(&f, peer, accept_time()).await?;
        let record = store.token(b.token_id()).await?.unwrap();
        assert_eq!(
            record.revoked_reason,
            Some(RevocationReason::RecoveryRepudiated)
        );
        let recoveries = store.recoveries_for_account(ACCOUNT).await?;
        assert_eq!(recoveries[0].repudiated_at, Some(accept_time()));
        let last = store.audit_for_account(ACCOUNT).await?.pop().unwrap();
        assert_eq!(last.event, AuditEvent::RecoveryRepudiated);
        assert_eq!(last.detail.as_deref(), Some(cs.as_str()));
    }
    Ok(())
}

#[tokio::test]
async fn status_for_an_unknown_id_changes_nothing() -> TestResult {
    for store in stores("ap_status_unknown").await {
        let ap = instance(&store);
        issue_saved(&ap).await;
        let before = snapshot(&store).await;
        let unknown = TokenId::new([0xee; 16]).to_string();
        let f = TokenStatusForm {
            id: &unknown,
            status: "token-repudiated",
            countersigned_id: None,
        };
        assert_eq!(ap.token_status(&f, "192.0.2.1".parse()?, T0).await, Ok(()));
        assert_eq!(snapshot(&store).await, before);
    }
    Ok(())
}

#[tokio::test]
async fn status_rate_limit_is_shared_by_instances() -> TestResult {
    for store in stores("ap_status_rate").await {
        let mut s = settings();
        s.status_rate_limit = RateLimit {
            max_events: 2,
            window: Duration::minutes(1),
        };
        let (one, two) = (instance_with(&store, s.clone()), instance_with(&store, s));
        let req = issue_saved(&one).await;
        let id = req.token_id().to_string();
        let peer = "192.0.2.1".parse()?;
        let f = |status| TokenStatusForm {
            id: &id,
            status,
            countersigned_id: None,
        };
        one.token_status(&f("save-success"), peer, T0).await?;
        two.token_status(&f("save-success"), peer, T0).await?;
        let before = snapshot(&store).await;
        let err = one.token_status(&f("deleted"), peer, T0).await.unwrap_err();
        assert_eq!(err, AccountProviderError::RateLimited);
        assert_eq!(snapshot(&store).await, before);
        two.token_status(&f("deleted"), peer, T0 + Duration::minutes(1))
            .await?;
        assert_eq!(
            store.token(req.token_id()).await?.unwrap().state,
            TokenState::Deleted
        );
        let purged = one.purge(T0 + Duration::minutes(2)).await?;
        assert_eq!(purged.rate_windows, 2);
    }
    Ok(())
}

#[tokio::test]
async fn refusals_change_nothing() -> TestResult {
    for store in stores("ap_refusals").await {
        let ap = instance(&store);
        let req = issue_saved(&ap).await;
        let first = countersigned(req.token(), 1);
        ap.accept_countersigned(&first, None, accept_time()).await?;
        let before = snapshot(&store).await;
        // §3.5 step 9: the same countersigned token again.
        let err = ap
            .accept_countersigned(&first, None, accept_time())
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::Replayed);
        // Another countersigned token over the used recovery token.
        let err = ap
            .accept_countersigned(&countersigned(req.token(), 2), None, accept_time())
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
        assert!(!store.is_replayed(TokenId::new([2; 16])).await?);
        assert_eq!(snapshot(&store).await, before);

        // A revoked token.
        let other = issue_saved(&ap).await;
        ap.revoke(ACCOUNT, other.token_id(), T0).await?;
        let before = snapshot(&store).await;
        let err = ap
            .accept_countersigned(&countersigned(other.token(), 3), None, accept_time())
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::TokenRevoked);
        assert_eq!(snapshot(&store).await, before);
        // Revoking someone else's token.
        let err = ap.revoke("user-7", req.token_id(), T0).await.unwrap_err();
        assert_eq!(err, AccountProviderError::NotOwnedByAccount);
        assert_eq!(snapshot(&store).await, before);
    }
    Ok(())
}

#[tokio::test]
async fn a_token_unknown_to_this_database_is_refused() -> TestResult {
    let issuing = Store::in_memory().await?;
    let req = issue_saved(&instance(&issuing)).await;
    for store in stores("ap_unknown_token").await {
        let ap = instance(&store);
        let err = ap
            .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::UnknownToken);
        assert!(!store.is_replayed(TokenId::new([1; 16])).await?);
    }
    Ok(())
}

/// Each task presents the countersigned token with id `ids[i]`; exactly one may succeed.
async fn race(ids: &[u8], stores: Vec<Store>, label: &str) {
    for store in stores {
        // One recovery token per store; each task is its own provider instance on the shared
        // database.
        let req = issue_saved(&instance(&store)).await;
        let mut tasks = Vec::new();
        for &id in ids {
            let ap = Arc::new(instance(&store));
            let token = countersigned(req.token(), id);
            tasks.push(tokio::spawn(async move {
                ap.accept_countersigned(&token, None, accept_time()).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(AccountProviderError::Replayed | AccountProviderError::TokenAlreadyUsed) => {}
                Err(other) => panic!("{label} on {:?}: unexpected {other:?}", store.backend()),
            }
        }
        assert_eq!(ok, 1, "{label} on {:?}", store.backend());
        assert_eq!(
            store.recoveries_for_account(ACCOUNT).await.unwrap().len(),
            1
        );
        assert_eq!(
            store.token(req.token_id()).await.unwrap().unwrap().state,
            TokenState::Used
        );
        let recovered = store
            .audit_for_account(ACCOUNT)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.event == AuditEvent::Recovered)
            .count();
        assert_eq!(recovered, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acceptances_of_one_countersigned_token_succeed_once() {
    let (stores, dir) = stores_with_file("ap_race_same").await;
    race(&[1; 8], stores, "same countersigned token").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_countersigned_tokens_over_one_recovery_token_succeed_once() {
    let (stores, dir) = stores_with_file("ap_race_distinct").await;
    race(
        &[1, 2, 3, 4, 5, 6, 7, 8],
        stores,
        "distinct countersigned tokens",
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn reissuing_revokes_the_obsoleted_token_once_saved() -> TestResult {
    for store in stores("ap_reissue").await {
        let ap = instance(&store);
        let old = issue_saved(&ap).await;
        let options = IssueOptions {
            obsoletes: Some(old.token_id()),
            ..IssueOptions::default()
        };
        let new = ap
            .issue(ACCOUNT, &rp(), options, SESSION, T0, &mut getrandom::SysRng)
            .await?;
        assert_eq!(
            store.token(new.token_id()).await?.unwrap().obsoletes,
            Some(old.token_id())
        );
        assert_eq!(
            store.token(old.token_id()).await?.unwrap().state,
            TokenState::Saved
        );
        ap.save_token_return(new.state(), "save-success", SESSION, T0)
            .await?;
        let record = store.token(old.token_id()).await?.unwrap();
        assert_eq!(record.state, TokenState::Revoked);
        assert_eq!(record.revoked_reason, Some(RevocationReason::Replaced));
        let listed = ap.list_tokens(ACCOUNT).await?;
        assert_eq!(listed.len(), 2);
    }
    Ok(())
}

#[tokio::test]
async fn purge_drops_only_expired_rows() -> TestResult {
    for store in stores("ap_purge").await {
        let ap = instance(&store);
        let req = issue_saved(&ap).await;
        let _pending = ap
            .issue(
                ACCOUNT,
                &rp(),
                IssueOptions::default(),
                SESSION,
                T0,
                &mut getrandom::SysRng,
            )
            .await?;
        ap.accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
            .await?;
        let first = ap.purge(accept_time()).await?;
        assert_eq!((first.save_states, first.replay_guard), (1, 0));
        assert!(store.is_replayed(TokenId::new([1; 16])).await?);
        let later = ap.purge(accept_time() + Duration::hours(2)).await?;
        assert_eq!(later.replay_guard, 1);
        // The token stays used: a purged guard never re-enables a recovery.
        let err = ap
            .accept_countersigned(&countersigned(req.token(), 1), None, accept_time())
            .await
            .unwrap_err();
        assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
    }
    Ok(())
}

/// The store alone, without the role's read-before-commit checks: every commit below was
/// decided on the same snapshot (`from: saved`), so only the database can stop the others.
async fn raw_commit_race(
    ids: &[u8],
    stores: Vec<Store>,
) -> Vec<(usize, Vec<AccountProviderError>)> {
    let mut outcomes = Vec::new();
    for store in stores {
        let req = issue_saved(&instance(&store)).await;
        let mut tasks = Vec::new();
        for (n, &id) in ids.iter().enumerate() {
            let store = store.clone();
            // Each commit parks its own evidence; only the winner's may be written.
            let commit = commit_of(req.token_id(), id, TokenState::Saved, &format!("race-{n}"));
            tasks.push(tokio::spawn(
                async move { store.commit_recovery(&commit).await },
            ));
        }
        let (mut ok, mut errors, mut winner) = (0, Vec::new(), None);
        for (n, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(()) => {
                    ok += 1;
                    winner = Some(n);
                }
                Err(e) => errors.push(e),
            }
        }
        let now = accept_time().unix_timestamp();
        for n in 0..ids.len() {
            let parked = store
                .take_parked_request(&format!("race-{n}"), "race", now)
                .await
                .unwrap();
            if Some(n) == winner {
                assert_eq!(
                    parked.as_deref(),
                    Some(format!("evidence of commit race-{n}").as_str())
                );
            } else {
                assert_eq!(parked, None, "a losing commit left its evidence behind");
            }
        }
        assert_eq!(
            store.recoveries_for_account(ACCOUNT).await.unwrap().len(),
            1
        );
        outcomes.push((ok, errors));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_commits_one_of_concurrent_commits_of_one_countersigned_id() {
    let (stores, dir) = stores_with_file("ap_raw_same").await;
    for (ok, errors) in raw_commit_race(&[9; 8], stores).await {
        assert_eq!(ok, 1);
        assert!(
            errors.iter().all(|e| *e == AccountProviderError::Replayed),
            "{errors:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_commits_one_of_concurrent_commits_over_one_recovery_token() {
    let (stores, dir) = stores_with_file("ap_raw_distinct").await;
    for (ok, errors) in raw_commit_race(&[11, 12, 13, 14, 15, 16, 17, 18], stores).await {
        assert_eq!(ok, 1);
        assert!(
            errors
                .iter()
                .all(|e| *e == AccountProviderError::TokenAlreadyUsed),
            "{errors:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A commit decided on `from`, parking evidence under `key` (kind `race`, payload
/// `evidence of commit KEY`).
fn commit_of(token_id: TokenId, countersigned: u8, from: TokenState, key: &str) -> RecoveryCommit {
    RecoveryCommit {
        countersigned_id: TokenId::new([countersigned; 16]),
        guard_expires_at: accept_time() + Duration::hours(1),
        token_id,
        from,
        account_id: ACCOUNT.into(),
        recovery_provider: rp(),
        low_friction: false,
        at: accept_time(),
        handoff: Some(EvidenceHandoff {
            key_hash: key.into(),
            kind: "race".into(),
            payload: format!("evidence of commit {key}"),
            expires_at: accept_time() + Duration::minutes(10),
        }),
    }
}

/// The commit's writes go to the database together (several statements in one call on
/// SQLite, one statement on PostgreSQL); a refusal at any of them must leave none behind.
#[tokio::test]
async fn a_refused_commit_writes_nothing() -> TestResult {
    for store in stores("ap_refused_commit").await {
        let req = issue_saved(&instance(&store)).await;
        let before = snapshot(&store).await;
        let now = accept_time().unix_timestamp();

        // Decided on a state the token is no longer in: refused at the token's update, after
        // the replay guard's insert, which must be undone.
        let stale = commit_of(req.token_id(), 1, TokenState::Issued, "refused-1");
        let err = store.commit_recovery(&stale).await.unwrap_err();
        assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
        assert_eq!(snapshot(&store).await, before);
        assert!(!store.is_replayed(TokenId::new([1; 16])).await?);
        assert_eq!(
            store.take_parked_request("refused-1", "race", now).await?,
            None
        );

        // Without a handoff nothing is parked, and the rest is written.
        let mut first = commit_of(req.token_id(), 2, TokenState::Saved, "refused-2");
        first.handoff = None;
        store.commit_recovery(&first).await?;
        let recovered = snapshot(&store).await;
        assert_eq!(recovered.tokens[0].state, TokenState::Used);
        assert_eq!(recovered.recoveries.len(), 1);
        assert!(store.is_replayed(TokenId::new([2; 16])).await?);
        assert_eq!(
            store.take_parked_request("refused-2", "race", now).await?,
            None
        );

        // The same countersigned id again: refused at the guard, as a replay.
        let again = commit_of(req.token_id(), 2, TokenState::Used, "refused-2");
        let err = store.commit_recovery(&again).await.unwrap_err();
        assert_eq!(err, AccountProviderError::Replayed);
        // Another countersigned id over the used token, decided on its current state: refused
        // at the permanent record, one per token.
        let second = commit_of(req.token_id(), 3, TokenState::Used, "refused-3");
        let err = store.commit_recovery(&second).await.unwrap_err();
        assert_eq!(err, AccountProviderError::TokenAlreadyUsed);
        assert_eq!(snapshot(&store).await, recovered);
        assert!(!store.is_replayed(TokenId::new([3; 16])).await?);
        for n in [2, 3] {
            let key = format!("refused-{n}");
            assert_eq!(store.take_parked_request(&key, "race", now).await?, None);
        }
    }
    Ok(())
}

/// `recover` reads, decides and commits on one connection: what `decide` sees is the stored
/// state, a refusal or a decline writes nothing, and a commit with evidence parks it (and the
/// purge that parking triggers does not wait for the connection `recover` held).
#[tokio::test]
async fn recover_decides_on_the_stored_state_and_writes_only_what_it_accepts() -> TestResult {
    for store in stores("ap_recover").await {
        let req = issue_saved(&instance(&store)).await;
        let before = snapshot(&store).await;
        let now = accept_time().unix_timestamp();
        let (cs, token) = (TokenId::new([4; 16]), req.token_id());

        let refused = store
            .recover(cs, token, |_, _| {
                Err::<Result<(RecoveryCommit, ()), ()>, _>(AccountProviderError::PayloadMismatch)
            })
            .await
            .unwrap_err();
        assert_eq!(refused, AccountProviderError::PayloadMismatch);
        let declined = store
            .recover(cs, token, |_, _| {
                Ok::<Result<(RecoveryCommit, ()), _>, _>(Err("declined"))
            })
            .await?;
        assert_eq!(declined, Err("declined"));
        assert_eq!(snapshot(&store).await, before);
        assert!(!store.is_replayed(cs).await?);

        let accepted = store
            .recover(cs, token, |replayed, record| {
                assert!(!replayed);
                let record = record.unwrap();
                assert_eq!(record.state, TokenState::Saved);
                let commit = commit_of(token, 4, record.state, "recover-4");
                Ok::<_, AccountProviderError>(Ok::<_, ()>((commit, record.account_id)))
            })
            .await?;
        assert_eq!(accepted, Ok(ACCOUNT.to_owned()));
        assert_eq!(snapshot(&store).await.tokens[0].state, TokenState::Used);
        assert_eq!(
            store.take_parked_request("recover-4", "race", now).await?,
            Some("evidence of commit recover-4".to_owned())
        );

        // The same countersigned token again: `decide` sees the replay.
        let again = store
            .recover(cs, token, |replayed, record| {
                assert!(replayed);
                assert_eq!(record.unwrap().state, TokenState::Used);
                Err::<Result<(RecoveryCommit, ()), ()>, _>(AccountProviderError::Replayed)
            })
            .await
            .unwrap_err();
        assert_eq!(again, AccountProviderError::Replayed);
    }
    Ok(())
}
