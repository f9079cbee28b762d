//! Atomicity, shown by making the second write of a transaction fail: the first must not stay.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use dar_core::{
    AccountProviderConfig, Configuration, EndpointUrl, MAX_TOKEN_LEN, Options, Origin, SigningKey,
    Token, TokenId, VerifyingKeys,
};
use dar_discovery::StaticConfigSource;
use dar_recovery_provider::{
    RecoverOutcome, RecoverRequest, RecoveryProvider, RecoveryProviderError,
    RecoveryProviderSettings, SaveForm, SaveOptions, SaveOutcome, StoreFault, UserId,
};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Pool, Store};

const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:35 UTC);

fn ap() -> Origin {
    Origin::parse("https://ap.example.com").unwrap()
}

fn ap_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap()
}

fn provider(store: Store) -> RecoveryProvider<Store, StaticConfigSource> {
    let url = |p: &str| EndpointUrl::parse(&format!("https://ap.example.com{p}"), false).unwrap();
    let mut configs = StaticConfigSource::new();
    configs.insert(Configuration::new(
        ap(),
        None,
        None,
        Some(AccountProviderConfig {
            tokensign_keys: VerifyingKeys::from(ap_key().verifying_key()),
            save_token_return: url("/save-return"),
            recover_account_return: url("/recover-return"),
        }),
        None,
    ));
    let rp = Origin::parse("https://rp.example.net").unwrap();
    let key = Arc::new(SigningKey::from_scalar_bytes(&[0xc8; 32]).unwrap());
    RecoveryProvider::new(RecoveryProviderSettings::new(vec![rp], key), store, configs)
}

fn form(n: u8) -> SaveForm {
    let rp = Origin::parse("https://rp.example.net").unwrap();
    let token = Token::recovery(
        TokenId::new([n; 16]),
        Options::STATUS_REQUESTED,
        ap(),
        rp,
        NOW,
        vec![],
    );
    SaveForm::with_token(token.sign(&ap_key(), MAX_TOKEN_LEN).unwrap().to_base64())
}

async fn exec(store: &Store, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match &store.pool {
        Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
    }
    .unwrap();
}

async fn count(store: &Store, table: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(format!("select count(*) from {table}"));
    match &store.pool {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .unwrap()
}

const BREAK_OUTBOX: &str = "alter table rp_outbox rename to rp_outbox_away";
const MEND_OUTBOX: &str = "alter table rp_outbox_away rename to rp_outbox";

#[tokio::test]
async fn a_save_whose_outbox_row_fails_is_rolled_back() {
    for store in crate::testing::stores("rp_save_rolled_back").await.unwrap() {
        let p = provider(store.clone());
        let alice = UserId::new("alice");
        exec(&store, BREAK_OUTBOX).await;
        let got = p.save(&alice, &form(1), SaveOptions::default(), NOW).await;
        assert_eq!(got, Err(RecoveryProviderError::Store(StoreFault::Failed)));
        exec(&store, MEND_OUTBOX).await;
        assert_eq!(count(&store, "rp_saved_token").await, 0);
        assert_eq!(count(&store, "rp_outbox").await, 0);
        // Retrying works: nothing half-done is in the way.
        let again = p.save(&alice, &form(1), SaveOptions::default(), NOW).await;
        assert!(matches!(
            again,
            Ok(SaveOutcome::Saved {
                newly_saved: true,
                ..
            })
        ));
        assert_eq!(count(&store, "rp_saved_token").await, 1);
        assert_eq!(count(&store, "rp_outbox").await, 1);
    }
}

#[tokio::test]
async fn a_recovery_whose_notification_fails_is_not_recorded_or_returned() {
    for store in crate::testing::stores("rp_recovery_rolled_back")
        .await
        .unwrap()
    {
        let p = provider(store.clone());
        let alice = UserId::new("alice");
        p.save(&alice, &form(1), SaveOptions::default(), NOW)
            .await
            .unwrap();
        exec(&store, BREAK_OUTBOX).await;
        let got = p
            .recover(
                &alice,
                &RecoverRequest::default(),
                NOW,
                &mut getrandom::SysRng,
            )
            .await;
        assert_eq!(got, Err(RecoveryProviderError::Store(StoreFault::Failed)));
        exec(&store, MEND_OUTBOX).await;
        assert_eq!(count(&store, "rp_recovery").await, 0);
        let again = p
            .recover(
                &alice,
                &RecoverRequest::default(),
                NOW,
                &mut getrandom::SysRng,
            )
            .await;
        assert!(matches!(again, Ok(RecoverOutcome::Countersigned(_))));
        assert_eq!(count(&store, "rp_recovery").await, 1);
        assert_eq!(count(&store, "rp_outbox").await, 2);
    }
}

#[tokio::test]
async fn a_delete_whose_callback_fails_keeps_the_token() {
    for store in crate::testing::stores("rp_delete_rolled_back")
        .await
        .unwrap()
    {
        let p = provider(store.clone());
        let alice = UserId::new("alice");
        p.save(&alice, &form(1), SaveOptions::default(), NOW)
            .await
            .unwrap();
        exec(&store, BREAK_OUTBOX).await;
        let got = p.delete(&alice, &ap(), TokenId::new([1; 16]), NOW).await;
        assert_eq!(got, Err(RecoveryProviderError::Store(StoreFault::Failed)));
        exec(&store, MEND_OUTBOX).await;
        assert_eq!(p.list(&alice).await.unwrap().len(), 1);
    }
}
