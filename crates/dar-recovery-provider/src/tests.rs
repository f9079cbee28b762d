//! One test per rule of the role, on the in-memory store with fixed keys and times.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use dar_core::{
    AccountProviderConfig, Configuration, CountersignedToken, EndpointUrl, Freshness,
    MAX_TOKEN_LEN, Options, Origin, Rejected, ReturnCheck, SigningKey, Token, TokenId, TokenType,
    VerifyingKeys, decode_base64,
};
use dar_discovery::StaticConfigSource;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:35 UTC);

fn ap() -> Origin {
    Origin::parse("https://ap.example.com").unwrap()
}

fn other_ap() -> Origin {
    Origin::parse("https://other-ap.example.org").unwrap()
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

fn alice() -> UserId {
    UserId::new("alice")
}

fn bob() -> UserId {
    UserId::new("bob")
}

fn ap_config(issuer: &Origin, key: &SigningKey) -> Configuration {
    let url = |p: &str| EndpointUrl::parse(&format!("{issuer}{p}"), false).unwrap();
    Configuration::new(
        issuer.clone(),
        None,
        None,
        Some(AccountProviderConfig {
            tokensign_keys: VerifyingKeys::from(key.verifying_key()),
            save_token_return: url("/dar/save-return"),
            recover_account_return: url("/dar/recover-return"),
        }),
        None,
    )
}

fn configs() -> StaticConfigSource {
    let mut c = StaticConfigSource::new();
    c.insert(ap_config(&ap(), &ap_key()));
    c.insert(ap_config(&other_ap(), &ap_key()));
    c
}

type Provider = RecoveryProvider<MemoryStore, StaticConfigSource>;

fn provider_with(configs: StaticConfigSource) -> Provider {
    let settings = RecoveryProviderSettings::new(vec![rp()], Arc::new(rp_key()));
    RecoveryProvider::new(settings, MemoryStore::new(), configs)
}

fn provider() -> Provider {
    provider_with(configs())
}

struct TokenSpec {
    id: u8,
    issuer: Origin,
    audience: Origin,
    options: Options,
    issued: OffsetDateTime,
    binding: Vec<u8>,
    key: SigningKey,
}

impl Default for TokenSpec {
    fn default() -> Self {
        Self {
            id: 1,
            issuer: ap(),
            audience: rp(),
            options: Options::STATUS_REQUESTED,
            issued: NOW - Duration::seconds(17),
            binding: Vec::new(),
            key: ap_key(),
        }
    }
}

impl TokenSpec {
    fn base64(self) -> String {
        let mut t = Token::recovery(
            TokenId::new([self.id; 16]),
            self.options,
            self.issuer,
            self.audience,
            self.issued,
            b"sealed".to_vec(),
        );
        t.binding = self.binding;
        t.sign(&self.key, MAX_TOKEN_LEN).unwrap().to_base64()
    }

    fn form(self) -> SaveForm {
        SaveForm::with_token(self.base64())
    }
}

fn id(n: u8) -> TokenId {
    TokenId::new([n; 16])
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn snapshot(p: &Provider) -> MemorySnapshot {
    p.store().snapshot().unwrap()
}

fn status_messages(p: &Provider) -> Vec<(TokenId, TokenStatus, Option<TokenId>)> {
    snapshot(p)
        .outbox
        .iter()
        .filter_map(|o| match &o.entry.message {
            OutboxMessage::TokenStatus(s) => Some((s.token_id, s.status, s.countersigned_id)),
            OutboxMessage::UserNotification(_) => None,
        })
        .collect()
}

async fn save(p: &Provider, user: &UserId, form: &SaveForm) -> SaveOutcome {
    p.save(user, form, SaveOptions::default(), NOW)
        .await
        .unwrap()
}

/// Asserts a refusal with the save-failure redirect, and returns its error.
fn refused(outcome: SaveOutcome) -> RecoveryProviderError {
    match outcome {
        SaveOutcome::Refused { error, redirect } => {
            assert_eq!(redirect.status, TokenStatus::SaveFailure);
            assert_eq!(
                redirect.url.as_string(),
                "https://ap.example.com/dar/save-return"
            );
            error
        }
        other => panic!("not refused: {other:?}"),
    }
}

/// Runs a save that must be refused with `want` and leave the store exactly as it was, apart
/// from `callbacks` queued save-failure messages.
fn assert_refused(form: SaveForm, options: SaveOptions<'_>, want: RecoveryProviderError) {
    block_on(async {
        let p = provider();
        save(
            &p,
            &bob(),
            &TokenSpec {
                id: 9,
                ..Default::default()
            }
            .form(),
        )
        .await;
        let before = snapshot(&p);
        let outcome = p.save(&alice(), &form, options, NOW).await.unwrap();
        assert_eq!(refused(outcome), want);
        let after = snapshot(&p);
        assert_eq!(after.tokens, before.tokens);
        assert_eq!(after.recoveries, before.recoveries);
    });
}

/// Runs a save that must fail with `want` (no account provider to redirect to) and change
/// nothing at all.
fn assert_error(p: &Provider, form: &SaveForm, want: RecoveryProviderError) {
    block_on(async {
        let before = snapshot(p);
        let got = p.save(&alice(), form, SaveOptions::default(), NOW).await;
        assert_eq!(got, Err(want));
        assert_eq!(snapshot(p), before);
    });
}

// ---- Saving (§3.1) ----

#[test]
fn saves_a_valid_token_and_redirects_to_save_token_return_with_state() {
    block_on(async {
        let p = provider();
        let mut form = TokenSpec::default().form();
        form.state = Some("a b&c=d/é".into());
        form.nickname_hint = Some("work".into());
        let outcome = save(&p, &alice(), &form).await;
        let SaveOutcome::Saved {
            issuer,
            token_id,
            newly_saved,
            redirect,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!((issuer, token_id, newly_saved), (ap(), id(1), true));
        assert_eq!(redirect.state.as_deref(), Some("a b&c=d/é"));
        assert_eq!(
            redirect.location(),
            "https://ap.example.com/dar/save-return?status=save-success&state=a+b%26c%3Dd%2F%C3%A9"
        );
        let list = p.list(&alice()).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].nickname.as_deref(), Some("work"));
        assert_eq!(list[0].saved_at, NOW);
        assert!(p.list(&bob()).await.unwrap().is_empty());
    });
}

#[test]
fn save_queues_save_success_when_the_token_asks_for_status() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let pending = p.store().pending_outbox(10, NOW).await.unwrap();
        assert_eq!(pending.len(), 1);
        let OutboxMessage::TokenStatus(cb) = &pending[0].message else {
            panic!("{pending:?}")
        };
        assert_eq!(
            cb.url(),
            "https://ap.example.com/.well-known/delegated-account-recovery/token-status"
        );
        assert_eq!(
            cb.form_body(),
            "id=01010101010101010101010101010101&status=save-success"
        );
    });
}

#[test]
fn save_queues_nothing_when_the_token_does_not_ask_for_status() {
    block_on(async {
        let p = provider();
        let form = TokenSpec {
            options: Options::NONE,
            ..Default::default()
        }
        .form();
        assert!(matches!(
            save(&p, &alice(), &form).await,
            SaveOutcome::Saved { .. }
        ));
        assert!(snapshot(&p).outbox.is_empty());
    });
}

#[test]
fn saving_the_same_token_twice_succeeds_and_changes_nothing() {
    block_on(async {
        let p = provider();
        let form = TokenSpec::default().form();
        save(&p, &alice(), &form).await;
        let before = snapshot(&p);
        let again = save(&p, &alice(), &form).await;
        assert!(matches!(
            again,
            SaveOutcome::Saved {
                newly_saved: false,
                ..
            }
        ));
        assert_eq!(snapshot(&p), before);
    });
}

#[test]
fn rejects_oversize_token_text_before_decoding() {
    let p = provider();
    let max = p.settings().token_max_size;
    // Not even base64: the size check must come first.
    let form = SaveForm::with_token("!".repeat(max.div_ceil(3) * 4 + 1));
    let size = form.token.len() / 4 * 3;
    assert_error(
        &p,
        &form,
        RecoveryProviderError::TokenTooLarge { size, max },
    );
}

#[test]
fn rejects_a_token_above_a_smaller_configured_maximum() {
    let mut p = provider();
    p.settings.token_max_size = 64;
    let form = TokenSpec::default().form();
    assert!(matches!(
        block_on(p.save(&alice(), &form, SaveOptions::default(), NOW)),
        Err(RecoveryProviderError::TokenTooLarge { max: 64, .. })
    ));
}

#[test]
fn rejects_text_that_is_not_base64_without_a_redirect() {
    assert_error(
        &provider(),
        &SaveForm::with_token("AA E="),
        RecoveryProviderError::Protocol(dar_core::DecodeError::Base64.into()),
    );
}

#[test]
fn rejects_a_countersigned_token() {
    let p = provider();
    let inner = TokenSpec::default().base64();
    let inner = decode_base64(&inner, MAX_TOKEN_LEN).unwrap();
    let outer = Token {
        token_type: TokenType::Countersigned,
        token_id: id(2),
        options: Options::NONE,
        issuer: rp(),
        audience: ap(),
        issued_time: dar_core::IssuedTime::from_instant(NOW),
        data: inner,
        binding: vec![],
    }
    .sign(&rp_key(), MAX_TOKEN_LEN)
    .unwrap();
    assert_error(
        &p,
        &SaveForm::with_token(outer.to_base64()),
        RecoveryProviderError::Protocol(
            Rejected::WrongType {
                expected: 0,
                found: 1,
            }
            .into(),
        ),
    );
}

#[test]
fn rejects_a_token_whose_issuer_has_no_configuration() {
    let form = TokenSpec {
        issuer: Origin::parse("https://unknown.example").unwrap(),
        ..Default::default()
    }
    .form();
    assert_error(
        &provider(),
        &form,
        RecoveryProviderError::Discovery(DiscoveryError::NotFound),
    );
}

/// A configuration source that answers every origin with one document (a broken or hostile
/// discovery layer).
struct OneDocument(Arc<Configuration>);

impl ConfigSource for OneDocument {
    async fn configuration(&self, _: &Origin) -> Result<Arc<Configuration>, DiscoveryError> {
        Ok(self.0.clone())
    }
}

#[test]
fn rejects_a_configuration_naming_another_issuer() {
    block_on(async {
        let settings = RecoveryProviderSettings::new(vec![rp()], Arc::new(rp_key()));
        let doc = Arc::new(ap_config(&other_ap(), &ap_key()));
        let p = RecoveryProvider::new(settings, MemoryStore::new(), OneDocument(doc));
        let got = p
            .save(
                &alice(),
                &TokenSpec::default().form(),
                SaveOptions::default(),
                NOW,
            )
            .await;
        assert_eq!(
            got,
            Err(RecoveryProviderError::Discovery(
                DiscoveryError::IssuerMismatch
            ))
        );
        assert_eq!(p.store().snapshot().unwrap(), MemorySnapshot::default());
    });
}

#[test]
fn rejects_an_issuer_that_is_not_an_account_provider() {
    let mut configs = StaticConfigSource::new();
    let rp_only = Configuration::new(ap(), None, None, None, None);
    configs.insert(rp_only);
    assert_error(
        &provider_with(configs),
        &TokenSpec::default().form(),
        RecoveryProviderError::NotAnAccountProvider,
    );
}

#[test]
fn refuses_a_bad_signature_with_save_failure_and_no_callback() {
    let form = TokenSpec {
        key: rp_key(),
        ..Default::default()
    }
    .form();
    assert_refused(
        form.clone(),
        SaveOptions::default(),
        RecoveryProviderError::Protocol(Rejected::SignatureInvalid.into()),
    );
    block_on(async {
        let p = provider();
        refused(save(&p, &alice(), &form).await);
        // A forged token's id and options are the forger's: no callback for it.
        assert!(snapshot(&p).outbox.is_empty());
    });
}

#[test]
fn refuses_a_foreign_audience_and_queues_save_failure() {
    let form = TokenSpec {
        audience: Origin::parse("https://elsewhere.example").unwrap(),
        ..Default::default()
    }
    .form();
    assert_refused(
        form.clone(),
        SaveOptions::default(),
        RecoveryProviderError::Protocol(Rejected::AudienceNotAuthoritative.into()),
    );
    block_on(async {
        let p = provider();
        refused(save(&p, &alice(), &form).await);
        assert_eq!(
            status_messages(&p),
            vec![(id(1), TokenStatus::SaveFailure, None)]
        );
    });
}

#[test]
fn refuses_a_stale_token() {
    let form = TokenSpec {
        issued: NOW - Duration::hours(2),
        ..Default::default()
    }
    .form();
    assert_refused(
        form,
        SaveOptions::default(),
        RecoveryProviderError::Protocol(Rejected::Stale.into()),
    );
}

#[test]
fn refuses_a_token_issued_in_the_future() {
    let form = TokenSpec {
        issued: NOW + Duration::hours(1),
        ..Default::default()
    }
    .form();
    assert_refused(
        form,
        SaveOptions::default(),
        RecoveryProviderError::Protocol(Rejected::IssuedInFuture.into()),
    );
}

#[test]
fn refuses_a_binding_that_differs_from_the_expected_one() {
    let form = TokenSpec {
        binding: b"tb-1".to_vec(),
        ..Default::default()
    }
    .form();
    let options = SaveOptions {
        binding: Some(b"tb-2"),
        ..Default::default()
    };
    assert_refused(
        form,
        options,
        RecoveryProviderError::Protocol(Rejected::BindingMismatch.into()),
    );
}

#[test]
fn refuses_a_binding_when_none_is_expected() {
    let form = TokenSpec {
        binding: b"tb-1".to_vec(),
        ..Default::default()
    }
    .form();
    assert_refused(
        form,
        SaveOptions::default(),
        RecoveryProviderError::Protocol(Rejected::BindingUnexpected.into()),
    );
}

#[test]
fn accepts_the_expected_binding() {
    block_on(async {
        let p = provider();
        let form = TokenSpec {
            binding: b"tb-1".to_vec(),
            ..Default::default()
        }
        .form();
        let options = SaveOptions {
            binding: Some(b"tb-1"),
            ..Default::default()
        };
        let outcome = p.save(&alice(), &form, options, NOW).await.unwrap();
        assert!(matches!(outcome, SaveOutcome::Saved { .. }));
    });
}

#[test]
fn refuses_a_token_saved_by_another_user() {
    block_on(async {
        let p = provider();
        let form = TokenSpec::default().form();
        save(&p, &bob(), &form).await;
        let before = snapshot(&p);
        let error = refused(save(&p, &alice(), &form).await);
        assert_eq!(error, RecoveryProviderError::AlreadySavedByAnotherUser);
        assert_eq!(error.code(), "already_saved_by_another_user");
        let after = snapshot(&p);
        assert_eq!(after.tokens, before.tokens);
        assert!(p.list(&alice()).await.unwrap().is_empty());
        // The refusal of an authentic token is reported to its issuer.
        assert_eq!(
            status_messages(&p),
            vec![
                (id(1), TokenStatus::SaveSuccess, None),
                (id(1), TokenStatus::SaveFailure, None)
            ]
        );
    });
}

#[test]
fn refuses_a_token_saved_by_another_user_even_after_they_deleted_it() {
    block_on(async {
        let p = provider();
        let form = TokenSpec::default().form();
        save(&p, &bob(), &form).await;
        p.delete(&bob(), &ap(), id(1), NOW).await.unwrap();
        let error = refused(save(&p, &alice(), &form).await);
        assert_eq!(error, RecoveryProviderError::AlreadySavedByAnotherUser);
    });
}

#[test]
fn refuses_to_save_again_a_token_the_user_deleted() {
    block_on(async {
        let p = provider();
        let form = TokenSpec::default().form();
        save(&p, &alice(), &form).await;
        p.delete(&alice(), &ap(), id(1), NOW).await.unwrap();
        let before = snapshot(&p).tokens;
        let error = refused(save(&p, &alice(), &form).await);
        assert_eq!(error, RecoveryProviderError::TokenRemoved);
        assert_eq!(snapshot(&p).tokens, before);
    });
}

#[test]
fn obsoletes_removes_the_users_older_token_of_the_same_issuer() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let mut newer = TokenSpec {
            id: 2,
            ..Default::default()
        }
        .form();
        newer.obsoletes = Some(id(1).to_string());
        save(&p, &alice(), &newer).await;
        let ids: Vec<_> = p
            .list(&alice())
            .await
            .unwrap()
            .iter()
            .map(|t| t.token_id)
            .collect();
        assert_eq!(ids, vec![id(2)]);
        let s = snapshot(&p);
        assert_eq!(s.tokens[0].removed, Some((NOW, RemovalReason::Obsoleted)));
        assert!(s.tokens[0].token.token.is_empty(), "bytes erased");
    });
}

#[test]
fn obsoletes_ignores_other_issuers_and_other_users() {
    block_on(async {
        let p = provider();
        save(&p, &bob(), &TokenSpec::default().form()).await;
        let other_issuer = TokenSpec {
            id: 3,
            issuer: other_ap(),
            ..Default::default()
        };
        save(&p, &alice(), &other_issuer.form()).await;
        let mut newer = TokenSpec {
            id: 2,
            ..Default::default()
        }
        .form();
        newer.obsoletes = Some(id(1).to_string());
        save(&p, &alice(), &newer).await;
        let mut newer2 = TokenSpec {
            id: 4,
            ..Default::default()
        }
        .form();
        newer2.obsoletes = Some(id(3).to_string());
        save(&p, &alice(), &newer2).await;
        assert_eq!(p.list(&bob()).await.unwrap().len(), 1);
        assert_eq!(p.list(&alice()).await.unwrap().len(), 3);
    });
}

#[test]
fn refuses_an_obsoletes_that_is_not_a_token_id() {
    let mut form = TokenSpec::default().form();
    form.obsoletes = Some("not-hex".into());
    assert_refused(
        form,
        SaveOptions::default(),
        RecoveryProviderError::InvalidFormField { field: "obsoletes" },
    );
}

#[test]
fn refuses_an_overlong_nickname_hint() {
    let mut form = TokenSpec::default().form();
    form.nickname_hint = Some("x".repeat(257));
    assert_refused(
        form,
        SaveOptions::default(),
        RecoveryProviderError::InvalidFormField {
            field: "nickname_hint",
        },
    );
}

#[test]
fn confirmation_required_stores_nothing_until_confirmed() {
    block_on(async {
        let p = provider();
        let mut form = TokenSpec::default().form();
        form.confirmation = Some("required".into());
        form.login_hint = Some("alice@example.com".into());
        let first = save(&p, &alice(), &form).await;
        let SaveOutcome::ConfirmationRequired(preview) = first else {
            panic!("{first:?}")
        };
        assert_eq!(preview.issuer, ap());
        assert_eq!(preview.login_hint.as_deref(), Some("alice@example.com"));
        assert_eq!(snapshot(&p), MemorySnapshot::default());
        let confirmed = SaveOptions {
            confirmed: true,
            ..Default::default()
        };
        let second = p.save(&alice(), &form, confirmed, NOW).await.unwrap();
        assert!(matches!(
            second,
            SaveOutcome::Saved {
                newly_saved: true,
                ..
            }
        ));
    });
}

#[test]
fn declining_stores_nothing_and_queues_save_failure() {
    block_on(async {
        let p = provider();
        let mut form = TokenSpec::default().form();
        form.confirmation = Some("required".into());
        let outcome = p
            .decline_save(&alice(), &form, SaveOptions::default(), NOW)
            .await
            .unwrap();
        assert_eq!(refused(outcome), RecoveryProviderError::Declined);
        assert!(snapshot(&p).tokens.is_empty());
        assert_eq!(
            status_messages(&p),
            vec![(id(1), TokenStatus::SaveFailure, None)]
        );
    });
}

// ---- Managing ----

#[test]
fn deleting_another_users_token_is_unknown_token_and_changes_nothing() {
    block_on(async {
        let p = provider();
        save(&p, &bob(), &TokenSpec::default().form()).await;
        let before = snapshot(&p);
        let got = p.delete(&alice(), &ap(), id(1), NOW).await;
        assert_eq!(got, Err(RecoveryProviderError::UnknownToken));
        let unknown = p.delete(&alice(), &ap(), id(7), NOW).await;
        assert_eq!(unknown, got);
        assert_eq!(snapshot(&p), before);
    });
}

#[test]
fn deleting_queues_deleted_when_status_was_requested() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        p.delete(&alice(), &ap(), id(1), NOW).await.unwrap();
        assert!(p.list(&alice()).await.unwrap().is_empty());
        assert_eq!(
            status_messages(&p),
            vec![
                (id(1), TokenStatus::SaveSuccess, None),
                (id(1), TokenStatus::Deleted, None)
            ]
        );
        let again = p.delete(&alice(), &ap(), id(1), NOW).await;
        assert_eq!(again, Err(RecoveryProviderError::UnknownToken));
    });
}

#[test]
fn renaming_changes_only_the_nickname_and_checks_it_as_the_save_does() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let outbox = status_messages(&p);
        p.rename(&alice(), &ap(), id(1), "  work laptop ")
            .await
            .unwrap();
        let tokens = p.list(&alice()).await.unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].nickname.as_deref(), Some("work laptop"));
        // Nothing is reported to the account provider: the name is this provider's own.
        assert_eq!(status_messages(&p), outbox);

        // Refused texts change nothing.
        let before = snapshot(&p);
        for bad in ["tab\there", &"x".repeat(MAX_NICKNAME_LEN + 1)] {
            let got = p.rename(&alice(), &ap(), id(1), bad).await;
            assert_eq!(
                got,
                Err(RecoveryProviderError::InvalidFormField { field: "nickname" })
            );
        }
        // Another user's token, an unknown one: the same answer, nothing changed.
        let by_other = p.rename(&bob(), &ap(), id(1), "mine").await;
        assert_eq!(by_other, Err(RecoveryProviderError::UnknownToken));
        let unknown = p.rename(&alice(), &ap(), id(7), "mine").await;
        assert_eq!(unknown, by_other);
        assert_eq!(snapshot(&p), before);

        // An empty name clears it; a deleted token cannot be renamed.
        p.rename(&alice(), &ap(), id(1), " ").await.unwrap();
        assert_eq!(p.list(&alice()).await.unwrap()[0].nickname, None);
        p.delete(&alice(), &ap(), id(1), NOW).await.unwrap();
        let deleted = p.rename(&alice(), &ap(), id(1), "again").await;
        assert_eq!(deleted, Err(RecoveryProviderError::UnknownToken));
    });
}

#[test]
fn repudiating_a_save_removes_the_token_and_queues_token_repudiated() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        p.repudiate_save(&alice(), &ap(), id(1), NOW).await.unwrap();
        assert!(p.list(&alice()).await.unwrap().is_empty());
        assert_eq!(
            status_messages(&p).last(),
            Some(&(id(1), TokenStatus::TokenRepudiated, None))
        );
        let by_other = p.repudiate_save(&bob(), &ap(), id(1), NOW).await;
        assert_eq!(by_other, Err(RecoveryProviderError::UnknownToken));
    });
}

// ---- Recovering (§3.4) ----

fn rng() -> getrandom::SysRng {
    getrandom::SysRng
}

async fn recover(p: &Provider, user: &UserId, req: &RecoverRequest<'_>) -> RecoverOutcome {
    p.recover(user, req, NOW, &mut rng()).await.unwrap()
}

fn countersigned(outcome: RecoverOutcome) -> Recovery {
    match outcome {
        RecoverOutcome::Countersigned(r) => r,
        other => panic!("{other:?}"),
    }
}

fn return_check<'a>(
    ap: &'a Origin,
    ap_keys: &'a VerifyingKeys,
    rp: &'a Origin,
    rp_keys: &'a VerifyingKeys,
    binding: Option<&'a [u8]>,
) -> ReturnCheck<'a> {
    ReturnCheck {
        account_provider: ap,
        own_keys: ap_keys,
        recovery_provider: rp,
        countersign_keys: rp_keys,
        freshness: Freshness::DEFAULT,
        binding,
    }
}

#[test]
fn recovering_without_a_saved_token_is_no_matching_token() {
    block_on(async {
        let p = provider();
        save(&p, &bob(), &TokenSpec::default().form()).await;
        let before = snapshot(&p);
        let got = p
            .recover(&alice(), &RecoverRequest::default(), NOW, &mut rng())
            .await;
        assert_eq!(got, Err(RecoveryProviderError::NoMatchingToken));
        assert_eq!(snapshot(&p), before);
    });
}

#[test]
fn recovering_with_several_tokens_asks_to_choose_and_records_nothing() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let second = TokenSpec {
            id: 2,
            ..Default::default()
        };
        save(&p, &alice(), &second.form()).await;
        let before = snapshot(&p);
        let outcome = recover(&p, &alice(), &RecoverRequest::default()).await;
        let RecoverOutcome::Choose(candidates) = outcome else {
            panic!("{outcome:?}")
        };
        let ids: Vec<_> = candidates.iter().map(|c| c.token_id).collect();
        assert_eq!(ids, vec![id(1), id(2)]);
        assert_eq!(snapshot(&p), before);
    });
}

#[test]
fn recovery_hints_select_one_token() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let other = TokenSpec {
            id: 2,
            issuer: other_ap(),
            ..Default::default()
        };
        save(&p, &alice(), &other.form()).await;
        let third = TokenSpec {
            id: 3,
            issuer: other_ap(),
            ..Default::default()
        };
        save(&p, &alice(), &third.form()).await;
        let by_issuer = RecoverRequest {
            issuer_hint: Some(&ap()),
            ..Default::default()
        };
        assert_eq!(
            countersigned(recover(&p, &alice(), &by_issuer).await).token_id,
            id(1)
        );
        let by_id = RecoverRequest {
            id_hint: Some(id(3)),
            ..Default::default()
        };
        let r = countersigned(recover(&p, &alice(), &by_id).await);
        assert_eq!((r.issuer, r.token_id), (other_ap(), id(3)));
        let nothing = RecoverRequest {
            issuer_hint: Some(&ap()),
            id_hint: Some(id(3)),
            ..Default::default()
        };
        let got = p.recover(&alice(), &nothing, NOW, &mut rng()).await;
        assert_eq!(got, Err(RecoveryProviderError::NoMatchingToken));
    });
}

#[test]
fn countersigned_token_verifies_as_the_account_provider_would() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let r = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        assert_eq!(
            r.post_to.as_string(),
            "https://ap.example.com/dar/recover-return"
        );
        assert_eq!(r.form_fields()[0].0, "countersigned-token");
        assert!(!format!("{r:?}").contains(&r.countersigned_token));

        let bytes = decode_base64(&r.countersigned_token, MAX_TOKEN_LEN).unwrap();
        let (ap, rp) = (ap(), rp());
        let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
        let rp_keys = VerifyingKeys::from(rp_key().verifying_key());
        let check = return_check(&ap, &ap_keys, &rp, &rp_keys, None);
        let verified = CountersignedToken::decode(&bytes)
            .unwrap()
            .verify_return(&check, NOW + Duration::seconds(3))
            .unwrap();
        assert_eq!(verified.outer().token_id(), r.countersigned_id);
        assert_eq!(verified.inner().token_id(), id(1));
        assert_eq!(verified.outer().issued_at(), NOW);
        assert!(!verified.low_friction());
    });
}

#[test]
fn countersigned_token_carries_the_binding() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let req = RecoverRequest {
            binding: Some(b"ap-session"),
            ..Default::default()
        };
        let r = countersigned(recover(&p, &alice(), &req).await);
        let bytes = decode_base64(&r.countersigned_token, MAX_TOKEN_LEN).unwrap();
        let (ap, rp) = (ap(), rp());
        let ap_keys = VerifyingKeys::from(ap_key().verifying_key());
        let rp_keys = VerifyingKeys::from(rp_key().verifying_key());
        let good = return_check(&ap, &ap_keys, &rp, &rp_keys, Some(b"ap-session"));
        assert!(
            CountersignedToken::decode(&bytes)
                .unwrap()
                .verify_return(&good, NOW)
                .is_ok()
        );
        let bad = return_check(&ap, &ap_keys, &rp, &rp_keys, Some(b"other"));
        assert_eq!(
            CountersignedToken::decode(&bytes)
                .unwrap()
                .verify_return(&bad, NOW)
                .err(),
            Some(Rejected::BindingMismatch.into())
        );
    });
}

#[test]
fn low_friction_when_the_token_asks_for_it() {
    block_on(async {
        let p = provider();
        let form = TokenSpec {
            options: Options::LOW_FRICTION,
            ..Default::default()
        }
        .form();
        save(&p, &alice(), &form).await;
        let r = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        assert!(r.low_friction);
        let bytes = decode_base64(&r.countersigned_token, MAX_TOKEN_LEN).unwrap();
        let token = CountersignedToken::decode(&bytes).unwrap();
        assert!(token.outer().options().low_friction());
        assert!(!token.outer().options().status_requested());
    });
}

#[test]
fn low_friction_when_reauthentication_was_weak() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let req = RecoverRequest {
            low_friction_auth: true,
            ..Default::default()
        };
        let r = countersigned(recover(&p, &alice(), &req).await);
        let bytes = decode_base64(&r.countersigned_token, MAX_TOKEN_LEN).unwrap();
        assert!(
            CountersignedToken::decode(&bytes)
                .unwrap()
                .outer()
                .options()
                .low_friction()
        );
        assert!(snapshot(&p).recoveries[0].low_friction);
    });
}

#[test]
fn recovery_is_recorded_with_a_user_notification_and_fresh_ids() {
    block_on(async {
        let p = provider();
        let mut form = TokenSpec::default().form();
        form.nickname_hint = Some("home".into());
        save(&p, &alice(), &form).await;
        let r1 = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        let r2 = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        assert_ne!(r1.countersigned_id, r2.countersigned_id);
        let s = snapshot(&p);
        assert_eq!(s.recoveries.len(), 2);
        assert_eq!(s.recoveries[0].countersigned_id, r1.countersigned_id);
        assert_eq!(s.recoveries[0].recovered_at, NOW);
        let notes: Vec<_> = s
            .outbox
            .iter()
            .filter_map(|o| match &o.entry.message {
                OutboxMessage::UserNotification(n) => Some(n.clone()),
                OutboxMessage::TokenStatus(_) => None,
            })
            .collect();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].user, alice());
        assert_eq!(notes[0].issuer, ap());
        assert_eq!(notes[0].nickname.as_deref(), Some("home"));
        assert_eq!(notes[0].countersigned_id, r1.countersigned_id);
        let listed = p.recoveries(&alice()).await.unwrap();
        assert_eq!(
            listed[0].countersigned_id, r2.countersigned_id,
            "newest first"
        );
    });
}

#[test]
fn recovery_refuses_a_token_the_issuer_no_longer_signs_for() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let state = snapshot(&p);
        assert_eq!(
            state.tokens.first().and_then(|t| t.token.signer),
            Some(ap_key().verifying_key().key_id()),
            "the save records the key the token verified with"
        );
        // The account provider rotated its key away since the save: refused by the recorded
        // key's id, and (for a token stored without it) by verifying the signature again.
        for (signer_kept, refusal) in [
            (true, Rejected::SignerNotPublished),
            (false, Rejected::SignatureInvalid),
        ] {
            let mut rotated = StaticConfigSource::new();
            rotated.insert(ap_config(&ap(), &rp_key()));
            let later = RecoveryProvider::new(p.settings().clone(), MemoryStore::new(), rotated);
            for t in &state.tokens {
                let mut token = t.token.clone();
                if !signer_kept {
                    token.signer = None;
                }
                later.store().save_token(&token, None).await.unwrap();
            }
            let before = later.store().snapshot().unwrap();
            let got = later
                .recover(&alice(), &RecoverRequest::default(), NOW, &mut rng())
                .await;
            assert_eq!(
                got,
                Err(RecoveryProviderError::Protocol(refusal.into())),
                "signer kept: {signer_kept}"
            );
            assert_eq!(later.store().snapshot().unwrap(), before);
        }
    });
}

#[test]
fn recovery_refuses_when_the_issuer_configuration_is_gone() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let gone = RecoveryProvider::new(
            p.settings().clone(),
            MemoryStore::new(),
            StaticConfigSource::new(),
        );
        for t in &snapshot(&p).tokens {
            gone.store().save_token(&t.token, None).await.unwrap();
        }
        let got = gone
            .recover(&alice(), &RecoverRequest::default(), NOW, &mut rng())
            .await;
        assert_eq!(
            got,
            Err(RecoveryProviderError::Discovery(DiscoveryError::NotFound))
        );
        assert!(gone.store().snapshot().unwrap().recoveries.is_empty());
    });
}

// ---- Repudiation (§3.6) ----

#[test]
fn repudiating_a_recovery_queues_recovery_repudiated_with_the_countersigned_id() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let r = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        p.repudiate_recovery(&alice(), r.countersigned_id, NOW)
            .await
            .unwrap();
        let expected = (
            id(1),
            TokenStatus::RecoveryRepudiated,
            Some(r.countersigned_id),
        );
        assert_eq!(status_messages(&p).last(), Some(&expected));
        let pending = p.store().pending_outbox(10, NOW).await.unwrap();
        let Some(OutboxMessage::TokenStatus(cb)) = pending.last().map(|e| &e.message) else {
            panic!("{pending:?}")
        };
        assert_eq!(
            cb.form_body(),
            format!(
                "id=01010101010101010101010101010101&status=recovery-repudiated&countersigned_id={}",
                r.countersigned_id
            )
        );
        // Again: nothing more is queued.
        let before = snapshot(&p);
        p.repudiate_recovery(&alice(), r.countersigned_id, NOW)
            .await
            .unwrap();
        assert_eq!(snapshot(&p), before);
        assert!(snapshot(&p).recoveries[0].repudiated_at.is_some());
    });
}

#[test]
fn repudiating_another_users_recovery_is_unknown_recovery() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        let r = countersigned(recover(&p, &alice(), &RecoverRequest::default()).await);
        let before = snapshot(&p);
        let got = p.repudiate_recovery(&bob(), r.countersigned_id, NOW).await;
        assert_eq!(got, Err(RecoveryProviderError::UnknownRecovery));
        assert_eq!(snapshot(&p), before);
    });
}

// ---- Outbox ----

#[test]
fn delivered_outbox_rows_are_not_pending_and_failed_ones_wait() {
    block_on(async {
        let p = provider();
        save(&p, &alice(), &TokenSpec::default().form()).await;
        save(
            &p,
            &alice(),
            &TokenSpec {
                id: 2,
                ..Default::default()
            }
            .form(),
        )
        .await;
        let pending = p.store().pending_outbox(10, NOW).await.unwrap();
        assert_eq!(pending.len(), 2);
        p.store()
            .mark_outbox_delivered(pending[0].id, NOW)
            .await
            .unwrap();
        let later = NOW + Duration::minutes(5);
        p.store()
            .mark_outbox_failed(pending[1].id, later)
            .await
            .unwrap();
        assert!(p.store().pending_outbox(10, NOW).await.unwrap().is_empty());
        let retry = p.store().pending_outbox(10, later).await.unwrap();
        assert_eq!(retry.len(), 1);
        assert_eq!(retry[0].attempts, 1);
        assert_eq!(p.store().pending_outbox(0, later).await.unwrap(), vec![]);
    });
}

// ---- Errors ----

#[test]
fn error_codes_are_stable_snake_case_and_cite_the_draft() {
    let all = [
        RecoveryProviderError::TokenTooLarge { size: 1, max: 0 },
        RecoveryProviderError::InvalidFormField { field: "state" },
        RecoveryProviderError::Protocol(Rejected::Stale.into()),
        RecoveryProviderError::Discovery(DiscoveryError::NotFound),
        RecoveryProviderError::NotAnAccountProvider,
        RecoveryProviderError::AlreadySavedByAnotherUser,
        RecoveryProviderError::TokenRemoved,
        RecoveryProviderError::Declined,
        RecoveryProviderError::UnknownToken,
        RecoveryProviderError::NoMatchingToken,
        RecoveryProviderError::UnknownRecovery,
        RecoveryProviderError::Store(StoreFault::Unavailable),
    ];
    let mut codes = std::collections::HashSet::new();
    for e in &all {
        let snake = |c: char| c.is_ascii_lowercase() || c == '_';
        assert!(e.code().chars().all(snake), "{e:?}");
        assert!(e.step().starts_with('§'), "{e:?}");
        assert!(codes.insert(e.code()), "duplicate {}", e.code());
    }
    assert_eq!(
        RecoveryProviderError::Protocol(Rejected::Stale.into()).code(),
        "stale"
    );
    assert!(!RecoveryProviderError::Store(StoreFault::Failed).is_client_fault());
}

#[test]
fn debug_output_holds_no_token() {
    let form = TokenSpec::default().form();
    assert!(!format!("{form:?}").contains(&form.token[..20]));
}
