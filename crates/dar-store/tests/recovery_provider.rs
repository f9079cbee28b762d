//! The recovery provider's flows on the real store: SQLite always, PostgreSQL when
//! `DAR_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use dar_core::{
    AccountProviderConfig, Configuration, CountersignedToken, EndpointUrl, Freshness,
    MAX_TOKEN_LEN, Options, Origin, ReturnCheck, SigningKey, Token, TokenId, VerifyingKeys,
    decode_base64,
};
use dar_discovery::StaticConfigSource;
use dar_recovery_provider::{
    OutboxEntry, OutboxMessage, RecoverOutcome, RecoverRequest, Recovery, RecoveryProvider,
    RecoveryProviderError, RecoveryProviderSettings, RecoveryProviderStore, SaveForm, SaveOptions,
    SaveOutcome, SavedTokenSummary, StoreFault, TokenStatus, UserId,
};
use dar_store::{Store, testing};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:35 UTC);

type Provider = RecoveryProvider<Store, StaticConfigSource>;

fn ap() -> Origin {
    Origin::parse("https://ap.example.com").unwrap()
}

fn rp() -> Origin {
    Origin::parse("https://rp.example.net").unwrap()
}

fn ap_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap()
}

fn rp_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0xc8; 32]).unwrap()
}

fn id(n: u8) -> TokenId {
    TokenId::new([n; 16])
}

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn provider(store: Store) -> Provider {
    let url = |p: &str| EndpointUrl::parse(&format!("https://ap.example.com{p}"), false).unwrap();
    let mut configs = StaticConfigSource::new();
    configs.insert(Configuration::new(
        ap(),
        None,
        None,
        Some(AccountProviderConfig {
            tokensign_keys: VerifyingKeys::from(ap_key().verifying_key()),
            save_token_return: url("/dar/save-return"),
            recover_account_return: url("/dar/recover-return"),
        }),
        None,
    ));
    let settings = RecoveryProviderSettings::new(vec![rp()], Arc::new(rp_key()));
    RecoveryProvider::new(settings, store, configs)
}

/// Providers on every configured backend.
async fn providers(test: &str) -> Vec<Provider> {
    testing::stores(test)
        .await
        .unwrap()
        .into_iter()
        .map(provider)
        .collect()
}

fn form(n: u8, options: Options) -> SaveForm {
    let token = Token::recovery(
        id(n),
        options,
        ap(),
        rp(),
        NOW - Duration::seconds(17),
        b"sealed".to_vec(),
    );
    SaveForm::with_token(token.sign(&ap_key(), MAX_TOKEN_LEN).unwrap().to_base64())
}

async fn save(p: &Provider, who: &str, form: &SaveForm) -> SaveOutcome {
    p.save(&user(who), form, SaveOptions::default(), NOW)
        .await
        .unwrap()
}

async fn list(p: &Provider, who: &str) -> Vec<SavedTokenSummary> {
    p.list(&user(who)).await.unwrap()
}

async fn outbox(p: &Provider) -> Vec<OutboxEntry> {
    p.store()
        .pending_outbox(1000, NOW + Duration::days(1))
        .await
        .unwrap()
}

fn statuses(entries: &[OutboxEntry]) -> Vec<(TokenId, TokenStatus)> {
    entries
        .iter()
        .filter_map(|e| match &e.message {
            OutboxMessage::TokenStatus(s) => Some((s.token_id, s.status)),
            OutboxMessage::UserNotification(_) => None,
        })
        .collect()
}

async fn recover(p: &Provider, who: &str, req: &RecoverRequest<'_>) -> RecoverOutcome {
    try_recover(p, who, req).await.unwrap()
}

async fn try_recover(
    p: &Provider,
    who: &str,
    req: &RecoverRequest<'_>,
) -> Result<RecoverOutcome, RecoveryProviderError> {
    p.recover(&user(who), req, NOW, &mut getrandom::SysRng)
        .await
}

fn countersigned(outcome: RecoverOutcome) -> Recovery {
    match outcome {
        RecoverOutcome::Countersigned(r) => r,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn saves_lists_and_queues_save_success_in_one_transaction() {
    for p in providers("rp_saves_lists_and_queues").await {
        let mut f = form(1, Options::STATUS_REQUESTED);
        f.nickname_hint = Some("work".into());
        f.state = Some("xyz".into());
        let outcome = save(&p, "alice", &f).await;
        let SaveOutcome::Saved {
            newly_saved,
            redirect,
            ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(newly_saved);
        assert_eq!(
            redirect.location(),
            "https://ap.example.com/dar/save-return?status=save-success&state=xyz"
        );
        let listed = list(&p, "alice").await;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].issuer.clone(), listed[0].token_id),
            (ap(), id(1))
        );
        assert_eq!(listed[0].nickname.as_deref(), Some("work"));
        assert_eq!(listed[0].saved_at, NOW);
        assert_eq!(listed[0].options, Options::STATUS_REQUESTED);
        let entries = outbox(&p).await;
        assert_eq!(statuses(&entries), vec![(id(1), TokenStatus::SaveSuccess)]);
        let OutboxMessage::TokenStatus(cb) = &entries[0].message else {
            panic!()
        };
        assert_eq!(
            cb.url(),
            "https://ap.example.com/.well-known/delegated-account-recovery/token-status"
        );
        assert_eq!(cb.form_body(), format!("id={}&status=save-success", id(1)));
        assert_eq!(entries[0].created_at, NOW);
    }
}

#[tokio::test]
async fn saving_twice_changes_nothing_and_another_user_is_refused() {
    for p in providers("rp_saving_twice").await {
        let f = form(1, Options::STATUS_REQUESTED);
        save(&p, "alice", &f).await;
        let (tokens, queued) = (list(&p, "alice").await, outbox(&p).await);
        let again = save(&p, "alice", &f).await;
        assert!(matches!(
            again,
            SaveOutcome::Saved {
                newly_saved: false,
                ..
            }
        ));
        assert_eq!(list(&p, "alice").await, tokens);
        assert_eq!(outbox(&p).await, queued);

        let SaveOutcome::Refused { error, redirect } = save(&p, "bob", &f).await else {
            panic!("bob saved alice's token")
        };
        assert_eq!(error, RecoveryProviderError::AlreadySavedByAnotherUser);
        assert_eq!(redirect.status, TokenStatus::SaveFailure);
        assert!(list(&p, "bob").await.is_empty());
        assert_eq!(list(&p, "alice").await, tokens);
        assert_eq!(
            statuses(&outbox(&p).await),
            vec![
                (id(1), TokenStatus::SaveSuccess),
                (id(1), TokenStatus::SaveFailure)
            ]
        );
    }
}

#[tokio::test]
async fn a_refused_token_leaves_the_store_unchanged() {
    for p in providers("rp_refused_unchanged").await {
        save(&p, "alice", &form(1, Options::STATUS_REQUESTED)).await;
        let (tokens, queued) = (list(&p, "alice").await, outbox(&p).await);
        let stale = p
            .save(
                &user("alice"),
                &form(2, Options::STATUS_REQUESTED),
                SaveOptions::default(),
                NOW + Duration::hours(3),
            )
            .await
            .unwrap();
        let SaveOutcome::Refused { error, .. } = stale else {
            panic!("{stale:?}")
        };
        assert_eq!(error.code(), "stale");
        assert_eq!(list(&p, "alice").await, tokens);
        // Only the save-failure callback for the (authentic) token was added.
        let after = outbox(&p).await;
        assert_eq!(after[..queued.len()], queued[..]);
        assert_eq!(
            statuses(&after[queued.len()..]),
            vec![(id(2), TokenStatus::SaveFailure)]
        );
        let too_big = SaveForm::with_token("A".repeat(20_000));
        let got = p
            .save(&user("alice"), &too_big, SaveOptions::default(), NOW)
            .await;
        assert!(matches!(
            got,
            Err(RecoveryProviderError::TokenTooLarge { .. })
        ));
        assert_eq!(list(&p, "alice").await, tokens);
        assert_eq!(outbox(&p).await, after);
    }
}

#[tokio::test]
async fn obsoletes_replaces_the_older_token_in_the_same_save() {
    for p in providers("rp_obsoletes").await {
        save(&p, "alice", &form(1, Options::NONE)).await;
        save(&p, "bob", &form(3, Options::NONE)).await;
        let mut newer = form(2, Options::NONE);
        newer.obsoletes = Some(id(1).to_string());
        save(&p, "alice", &newer).await;
        let ids: Vec<_> = list(&p, "alice").await.iter().map(|t| t.token_id).collect();
        assert_eq!(ids, vec![id(2)]);
        let bytes = p.store().token_bytes(&user("alice"), &ap(), id(1)).await;
        assert_eq!(bytes, Ok(None), "the obsoleted token's bytes are gone");
        // Another user's token is never obsoleted.
        let mut foreign = form(4, Options::NONE);
        foreign.obsoletes = Some(id(3).to_string());
        save(&p, "alice", &foreign).await;
        assert_eq!(list(&p, "bob").await.len(), 1);
    }
}

#[tokio::test]
async fn a_saved_token_keeps_the_id_of_the_key_it_verified_with() {
    for p in providers("rp_signer").await {
        save(&p, "alice", &form(1, Options::NONE)).await;
        let saved = p.store().token_bytes(&user("alice"), &ap(), id(1)).await;
        let saved = saved.unwrap().unwrap();
        assert_eq!(saved.signer, Some(ap_key().verifying_key().key_id()));
        assert_eq!(
            saved.token,
            decode_base64(&form(1, Options::NONE).token, MAX_TOKEN_LEN).unwrap()
        );
    }
}

#[tokio::test]
async fn a_token_stored_without_its_key_id_is_verified_again_and_still_recovers() {
    for p in providers("rp_signer_null").await {
        save(&p, "alice", &form(1, Options::NONE)).await;
        // A row saved before migration 0201 added the column.
        testing::execute(p.store(), "update rp_saved_token set signer_key_id = null")
            .await
            .unwrap();
        let saved = p.store().token_bytes(&user("alice"), &ap(), id(1)).await;
        assert_eq!(saved.unwrap().unwrap().signer, None);
        let got = recover(&p, "alice", &RecoverRequest::default()).await;
        assert!(matches!(got, RecoverOutcome::Countersigned(_)), "{got:?}");
    }
}

#[tokio::test]
async fn a_stored_key_id_that_does_not_parse_fails_the_read_and_changes_nothing() {
    for p in providers("rp_signer_corrupt").await {
        save(&p, "alice", &form(1, Options::NONE)).await;
        testing::execute(
            p.store(),
            "update rp_saved_token set signer_key_id = \
             'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'",
        )
        .await
        .unwrap();
        let before = (list(&p, "alice").await, outbox(&p).await);
        let saved = p.store().token_bytes(&user("alice"), &ap(), id(1)).await;
        assert_eq!(saved, Err(StoreFault::Failed));
        let got = try_recover(&p, "alice", &RecoverRequest::default()).await;
        assert_eq!(got, Err(RecoveryProviderError::Store(StoreFault::Failed)));
        assert_eq!((list(&p, "alice").await, outbox(&p).await), before);
    }
}

#[tokio::test]
async fn renaming_is_for_the_owner_only_and_changes_only_the_nickname() {
    for p in providers("rp_renaming").await {
        save(&p, "alice", &form(1, Options::STATUS_REQUESTED)).await;
        let (tokens, queued) = (list(&p, "alice").await, outbox(&p).await);
        let got = p.rename(&user("bob"), &ap(), id(1), "mine").await;
        assert_eq!(got, Err(RecoveryProviderError::UnknownToken));
        assert_eq!(list(&p, "alice").await, tokens);

        p.rename(&user("alice"), &ap(), id(1), "work laptop")
            .await
            .unwrap();
        let renamed = list(&p, "alice").await;
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].nickname.as_deref(), Some("work laptop"));
        assert_eq!(renamed[0].saved_at, tokens[0].saved_at);
        assert_eq!(outbox(&p).await, queued);
        p.rename(&user("alice"), &ap(), id(1), "").await.unwrap();
        assert_eq!(list(&p, "alice").await, tokens);

        // A deleted token keeps no name to change.
        p.delete(&user("alice"), &ap(), id(1), NOW).await.unwrap();
        let deleted = p.rename(&user("alice"), &ap(), id(1), "again").await;
        assert_eq!(deleted, Err(RecoveryProviderError::UnknownToken));
    }
}

#[tokio::test]
async fn deleting_is_for_the_owner_only_and_queues_deleted() {
    for p in providers("rp_deleting").await {
        save(&p, "alice", &form(1, Options::STATUS_REQUESTED)).await;
        let (tokens, queued) = (list(&p, "alice").await, outbox(&p).await);
        let got = p.delete(&user("bob"), &ap(), id(1), NOW).await;
        assert_eq!(got, Err(RecoveryProviderError::UnknownToken));
        assert_eq!(list(&p, "alice").await, tokens);
        assert_eq!(outbox(&p).await, queued);

        p.delete(&user("alice"), &ap(), id(1), NOW).await.unwrap();
        assert!(list(&p, "alice").await.is_empty());
        assert_eq!(
            statuses(&outbox(&p).await).last(),
            Some(&(id(1), TokenStatus::Deleted))
        );
        // Deleted stays deleted, for its owner and for anyone else.
        let f = form(1, Options::STATUS_REQUESTED);
        let SaveOutcome::Refused { error, .. } = save(&p, "alice", &f).await else {
            panic!()
        };
        assert_eq!(error, RecoveryProviderError::TokenRemoved);
        let SaveOutcome::Refused { error, .. } = save(&p, "bob", &f).await else {
            panic!()
        };
        assert_eq!(error, RecoveryProviderError::AlreadySavedByAnotherUser);
    }
}

#[tokio::test]
async fn recovery_countersigns_records_and_queues_the_notification() {
    for p in providers("rp_recovery").await {
        let mut f = form(1, Options::STATUS_REQUESTED);
        f.nickname_hint = Some("home".into());
        save(&p, "alice", &f).await;
        let before = outbox(&p).await.len();
        let r = countersigned(recover(&p, "alice", &RecoverRequest::default()).await);
        assert_eq!(
            r.post_to.as_string(),
            "https://ap.example.com/dar/recover-return"
        );

        // The account provider's view (§3.5).
        let bytes = decode_base64(&r.countersigned_token, MAX_TOKEN_LEN).unwrap();
        let (ap, rp) = (ap(), rp());
        let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
        let rp_keys = VerifyingKeys::from(rp_key().verifying_key());
        let check = ReturnCheck {
            account_provider: &ap,
            own_keys: &ap_keys,
            recovery_provider: &rp,
            countersign_keys: &rp_keys,
            freshness: Freshness::DEFAULT,
            binding: None,
        };
        let verified = CountersignedToken::decode(&bytes)
            .unwrap()
            .verify_return(&check, NOW)
            .unwrap();
        assert_eq!(verified.inner().token_id(), id(1));
        assert_eq!(verified.outer().token_id(), r.countersigned_id);

        // Recorded, and the notification queued with it.
        let records = p.recoveries(&user("alice")).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].countersigned_id, r.countersigned_id);
        assert_eq!(records[0].recovered_at, NOW);
        assert!(records[0].status_requested && !records[0].low_friction);
        let entries = outbox(&p).await;
        assert_eq!(entries.len(), before + 1);
        let Some(OutboxMessage::UserNotification(n)) = entries.last().map(|e| &e.message) else {
            panic!("{entries:?}")
        };
        assert_eq!(n.user, user("alice"));
        assert_eq!(n.issuer, ap);
        assert_eq!(n.nickname.as_deref(), Some("home"));
        assert_eq!(n.countersigned_id, r.countersigned_id);
        assert_eq!(n.at, NOW);
    }
}

#[tokio::test]
async fn recovery_with_several_tokens_asks_to_choose_and_hints_select() {
    for p in providers("rp_recovery_choose").await {
        let got = try_recover(&p, "alice", &RecoverRequest::default()).await;
        assert_eq!(got, Err(RecoveryProviderError::NoMatchingToken));
        save(&p, "alice", &form(1, Options::NONE)).await;
        save(&p, "alice", &form(2, Options::NONE)).await;
        let outcome = recover(&p, "alice", &RecoverRequest::default()).await;
        let RecoverOutcome::Choose(candidates) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(candidates.len(), 2);
        assert!(p.recoveries(&user("alice")).await.unwrap().is_empty());
        let by_id = RecoverRequest {
            id_hint: Some(id(2)),
            ..Default::default()
        };
        assert_eq!(
            countersigned(recover(&p, "alice", &by_id).await).token_id,
            id(2)
        );
    }
}

#[tokio::test]
async fn repudiations_are_recorded_and_queued() {
    for p in providers("rp_repudiations").await {
        save(&p, "alice", &form(1, Options::STATUS_REQUESTED)).await;
        save(&p, "alice", &form(2, Options::STATUS_REQUESTED)).await;
        let r = countersigned(
            recover(
                &p,
                "alice",
                &RecoverRequest {
                    id_hint: Some(id(1)),
                    ..Default::default()
                },
            )
            .await,
        );
        let got = p
            .repudiate_recovery(&user("bob"), r.countersigned_id, NOW)
            .await;
        assert_eq!(got, Err(RecoveryProviderError::UnknownRecovery));
        p.repudiate_recovery(&user("alice"), r.countersigned_id, NOW)
            .await
            .unwrap();
        let queued = outbox(&p).await;
        let Some(OutboxMessage::TokenStatus(cb)) = queued.last().map(|e| &e.message) else {
            panic!("{queued:?}")
        };
        assert_eq!(cb.status, TokenStatus::RecoveryRepudiated);
        assert_eq!(cb.countersigned_id, Some(r.countersigned_id));
        assert_eq!(
            cb.form_body(),
            format!(
                "id={}&status=recovery-repudiated&countersigned_id={}",
                id(1),
                r.countersigned_id
            )
        );
        let record = &p.recoveries(&user("alice")).await.unwrap()[0];
        assert_eq!(record.repudiated_at, Some(NOW));
        p.repudiate_recovery(&user("alice"), r.countersigned_id, NOW)
            .await
            .unwrap();
        assert_eq!(
            outbox(&p).await,
            queued,
            "a second repudiation queues nothing"
        );

        p.repudiate_save(&user("alice"), &ap(), id(2), NOW)
            .await
            .unwrap();
        assert_eq!(
            statuses(&outbox(&p).await).last(),
            Some(&(id(2), TokenStatus::TokenRepudiated))
        );
        assert_eq!(list(&p, "alice").await.len(), 1);
    }
}

#[tokio::test]
async fn outbox_rows_are_delivered_once_and_retried_when_failed() {
    for p in providers("rp_outbox").await {
        save(&p, "alice", &form(1, Options::STATUS_REQUESTED)).await;
        save(&p, "alice", &form(2, Options::STATUS_REQUESTED)).await;
        save(&p, "alice", &form(3, Options::STATUS_REQUESTED)).await;
        let store = p.store();
        let first = store.pending_outbox(2, NOW).await.unwrap();
        assert_eq!(first.len(), 2, "the limit holds");
        store.mark_outbox_delivered(first[0].id, NOW).await.unwrap();
        let retry_at = NOW + Duration::minutes(10);
        store
            .mark_outbox_failed(first[1].id, retry_at)
            .await
            .unwrap();
        let now_pending = store.pending_outbox(10, NOW).await.unwrap();
        assert_eq!(
            statuses(&now_pending),
            vec![(id(3), TokenStatus::SaveSuccess)]
        );
        let later = store.pending_outbox(10, retry_at).await.unwrap();
        assert_eq!(later.len(), 2);
        assert_eq!(later[0].id, first[1].id);
        assert_eq!(later[0].attempts, 1);
    }
}

/// Many users save one token at once: exactly one owns it.
async fn race(p: Arc<Provider>) {
    let f = Arc::new(form(1, Options::STATUS_REQUESTED));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (p, f) = (p.clone(), f.clone());
            tokio::spawn(async move {
                let who = user(&format!("user{i}"));
                p.save(&who, &f, SaveOptions::default(), NOW).await
            })
        })
        .collect();
    let mut saved = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            SaveOutcome::Saved { .. } => saved += 1,
            SaveOutcome::Refused { error, .. } => {
                assert_eq!(error, RecoveryProviderError::AlreadySavedByAnotherUser);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(saved, 1);
    let mut owners = 0;
    for i in 0..8 {
        owners += list(&p, &format!("user{i}")).await.len();
    }
    assert_eq!(owners, 1);
    let s = statuses(&outbox(&p).await);
    assert_eq!(
        s.iter()
            .filter(|(_, st)| *st == TokenStatus::SaveSuccess)
            .count(),
        1
    );
    assert_eq!(s.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_of_one_token_by_several_users_have_one_owner() {
    for p in providers("rp_concurrent_saves").await {
        race(Arc::new(p)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_on_a_sqlite_file_have_one_owner() {
    let dir = std::env::temp_dir().join(format!("dar-rp-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rp.db").display());
    let store = Store::connect(&url).await.unwrap();
    race(Arc::new(provider(store.clone()))).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
