//! Lockout recovery storage on the real backends: SQLite in memory and in a file (whose pool
//! has several connections, for the concurrency tests), and PostgreSQL when
//! `DAR_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dar_store::{
    AccountId, EmailCodeCheck, EmailId, EvidenceKind, MailRecord, NewAudit, NewEvidence, NewMail,
    PendingFactorState, RecoveryState, StateChange, Store,
};

/// A time far enough ahead that every queued mail is due.
const FAR: i64 = 1 << 40;

const T0: i64 = 1_800_000_000;
const WAIT: i64 = 259_200;
const INTERVAL: i64 = 86_400;
const FINAL: i64 = 21_600;

/// The stores to test: in-memory SQLite, a SQLite file, and PostgreSQL when configured. The
/// returned directory holds the file; remove it at the end.
async fn stores(name: &str) -> (Vec<Store>, std::path::PathBuf) {
    let mut all = dar_store::testing::stores(name).await.unwrap();
    if all.len() == 1 {
        println!("DAR_TEST_POSTGRES_URL not set: PostgreSQL not tested");
    }
    let dir = std::env::temp_dir().join(format!("dar-lockout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("lockout.db").display());
    all.push(Store::connect(&url).await.unwrap());
    (all, dir)
}

async fn account(store: &Store, name: &str) -> AccountId {
    store
        .create_account(name, "$argon2id$hash", T0 - 90 * 86_400)
        .await
        .unwrap()
        .unwrap()
}

/// An account with a confirmed TOTP secret and two live sessions.
async fn enrolled(store: &Store, name: &str) -> AccountId {
    let id = account(store, name).await;
    assert!(store.set_totp_secret(id, "JBSWY3DPEHPK3PXP").await.unwrap());
    assert!(store.accept_totp_step(id, 100).await.unwrap());
    store
        .create_session(&format!("{name}-s1"), id, true, T0 - 10)
        .await
        .unwrap();
    store
        .create_session(&format!("{name}-s2"), id, false, T0 - 5)
        .await
        .unwrap();
    id
}

async fn verified_email(store: &Store, id: AccountId, address: &str) -> EmailId {
    let email = store
        .add_email(id, address, T0 - 100, &[], &[])
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .mark_email_verified(email, T0 - 99, &[])
            .await
            .unwrap()
    );
    email
}

fn mail(to: &str, subject: &str) -> NewMail {
    NewMail {
        to: to.into(),
        subject: subject.into(),
        body: format!("{subject}: body"),
    }
}

fn audit(account: AccountId, event: &str) -> NewAudit {
    NewAudit {
        account: Some(account),
        actor: "user".into(),
        event: event.into(),
        detail: String::new(),
        source_address: Some("192.0.2.7".into()),
    }
}

/// Every queued, undelivered mail (left queued).
async fn queued(store: &Store) -> Vec<MailRecord> {
    store.due_mail(FAR, FAR, 1000).await.unwrap()
}

async fn subjects(store: &Store) -> Vec<String> {
    queued(store).await.into_iter().map(|m| m.subject).collect()
}

async fn events(store: &Store, id: AccountId) -> Vec<String> {
    let mut events: Vec<String> = store
        .audit_events(Some(id), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.event)
        .collect();
    events.reverse();
    events
}

fn delegated(token: &str) -> NewEvidence {
    NewEvidence {
        kind: EvidenceKind::Delegated,
        reference: token.into(),
        detail: "rp=https://rp.example.net low_friction=0 age=86400".into(),
    }
}

/// A recovery moved to pending at T0 with cancel hash `cancel`.
async fn pending(
    store: &Store,
    id: AccountId,
    handle: &str,
    cancel: &str,
) -> dar_store::RecoveryId {
    let r = store
        .start_recovery(id, handle, T0, Some("192.0.2.7"), &[], &[])
        .await
        .unwrap();
    let change = StateChange::new(&[RecoveryState::Collecting], RecoveryState::Pending, T0)
        .outcome_rule("recovery provider")
        .completes_at(T0 + WAIT)
        .cancel_hash(cancel);
    assert!(
        store
            .set_recovery_state(r.id, &change, &[], &[])
            .await
            .unwrap()
    );
    r.id
}

#[tokio::test]
async fn timed_recovery_unlocks_resets_totp_and_revokes_every_session_in_one_change() {
    let (stores, dir) = stores("lockout_lifecycle").await;
    for store in stores {
        let alice = enrolled(&store, "alice").await;
        verified_email(&store, alice, "alice@example.com").await;

        let r = store
            .start_recovery(
                alice,
                "handle-hash-1",
                T0,
                Some("192.0.2.7"),
                &[mail("alice@example.com", "recovery started")],
                &[audit(alice, "recovery.started")],
            )
            .await
            .unwrap();
        assert_eq!(r.state, RecoveryState::Collecting);
        assert_eq!((r.account, r.created_at, r.updated_at), (alice, T0, T0));
        assert_eq!(r.source_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(
            store.recovery_by_handle("handle-hash-1").await.unwrap(),
            Some(r.clone())
        );
        assert_eq!(store.recovery(r.id).await.unwrap(), Some(r.clone()));
        assert_eq!(store.recovery_by_handle("other").await.unwrap(), None);

        // Evidence counts once per (kind, reference).
        assert!(
            store
                .add_evidence(
                    r.id,
                    &delegated("aa11"),
                    T0 + 1,
                    &[audit(alice, "evidence.added")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .add_evidence(
                    r.id,
                    &delegated("aa11"),
                    T0 + 2,
                    &[audit(alice, "evidence.added")]
                )
                .await
                .unwrap()
        );
        let password = NewEvidence {
            kind: EvidenceKind::Password,
            reference: String::new(),
            detail: String::new(),
        };
        assert!(
            store
                .add_evidence(r.id, &password, T0 + 3, &[])
                .await
                .unwrap()
        );
        let evidence = store.evidence(r.id).await.unwrap();
        let kinds: Vec<_> = evidence
            .iter()
            .map(|e| (e.kind, e.reference.as_str(), e.added_at))
            .collect();
        assert_eq!(
            kinds,
            [
                (EvidenceKind::Delegated, "aa11", T0 + 1),
                (EvidenceKind::Password, "", T0 + 3)
            ]
        );

        // The policy decides "timed": pending, with the start notices.
        let change = StateChange::new(
            &[RecoveryState::Collecting],
            RecoveryState::Pending,
            T0 + 10,
        )
        .outcome_rule("recovery provider")
        .completes_at(T0 + 10 + WAIT)
        .cancel_hash("cancel-hash-1");
        assert!(
            store
                .set_recovery_state(
                    r.id,
                    &change,
                    &[mail("alice@example.com", "pending")],
                    &[audit(alice, "recovery.pending")]
                )
                .await
                .unwrap()
        );
        let p = store.recovery(r.id).await.unwrap().unwrap();
        assert_eq!(p.state, RecoveryState::Pending);
        assert_eq!(p.outcome_rule.as_deref(), Some("recovery provider"));
        assert_eq!(
            (p.completes_at, p.last_notice_at, p.updated_at),
            (Some(T0 + 10 + WAIT), Some(T0 + 10), T0 + 10)
        );
        assert!(!p.final_notice_sent);
        assert_eq!(
            store
                .recovery_by_cancel_hash("cancel-hash-1")
                .await
                .unwrap()
                .unwrap()
                .id,
            r.id
        );
        // No more evidence once decided.
        assert!(
            !store
                .add_evidence(r.id, &delegated("bb22"), T0 + 11, &[])
                .await
                .unwrap()
        );

        // Not complete before the waiting period is over.
        assert!(
            !store
                .complete_unlock(
                    r.id,
                    T0 + 9 + WAIT,
                    &[mail("x", "unlocked")],
                    &[audit(alice, "recovery.unlocked")]
                )
                .await
                .unwrap()
        );
        assert!(store.account(alice).await.unwrap().unwrap().totp_confirmed);

        let done = T0 + 10 + WAIT;
        assert!(
            store
                .complete_unlock(
                    r.id,
                    done,
                    &[mail("alice@example.com", "unlocked")],
                    &[audit(alice, "recovery.unlocked")]
                )
                .await
                .unwrap()
        );
        let a = store.account(alice).await.unwrap().unwrap();
        assert_eq!((a.totp_secret, a.totp_confirmed), (None, false));
        assert!(store.session("alice-s1").await.unwrap().is_none());
        assert!(store.session("alice-s2").await.unwrap().is_none());
        let u = store.recovery(r.id).await.unwrap().unwrap();
        assert_eq!((u.state, u.updated_at), (RecoveryState::Unlocked, done));
        // A second worker loses.
        assert!(
            !store
                .complete_unlock(
                    r.id,
                    done + 1,
                    &[mail("x", "again")],
                    &[audit(alice, "again")]
                )
                .await
                .unwrap()
        );

        assert_eq!(
            subjects(&store).await,
            ["recovery started", "pending", "unlocked"]
        );
        assert_eq!(
            events(&store, alice).await,
            [
                "recovery.started",
                "evidence.added",
                "recovery.pending",
                "recovery.unlocked"
            ]
        );
        let a = &store.audit_events(Some(alice), 1).await.unwrap()[0];
        assert_eq!(
            (a.at, a.actor.as_str(), a.source_address.as_deref()),
            (done, "user", Some("192.0.2.7"))
        );
        assert!(
            store.set_totp_secret(alice, "NEWSECRET").await.unwrap(),
            "enrols again"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn staff_review_and_immediate_unlock_go_through_the_same_reset() {
    let (stores, dir) = stores("lockout_review").await;
    for store in stores {
        let bob = enrolled(&store, "bob").await;
        let r = store
            .start_recovery(bob, "h-review", T0, None, &[], &[])
            .await
            .unwrap();
        let to_review =
            StateChange::new(&[RecoveryState::Collecting], RecoveryState::Review, T0 + 1)
                .outcome_rule("trusted contacts and email");
        assert!(
            store
                .set_recovery_state(r.id, &to_review, &[], &[])
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .recoveries(Some(RecoveryState::Review), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .recoveries(Some(RecoveryState::Pending), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.recoveries(None, 10).await.unwrap()[0].id, r.id);
        // Staff approve: unlocked without a waiting period, decided_by recorded.
        let approve = StateChange::new(&[RecoveryState::Review], RecoveryState::Unlocked, T0 + 2)
            .decided_by("carol");
        assert!(
            store
                .set_recovery_state(r.id, &approve, &[], &[audit(bob, "recovery.approved")])
                .await
                .unwrap()
        );
        let u = store.recovery(r.id).await.unwrap().unwrap();
        assert_eq!(
            (u.state, u.decided_by.as_deref()),
            (RecoveryState::Unlocked, Some("carol"))
        );
        assert_eq!(
            u.outcome_rule.as_deref(),
            Some("trusted contacts and email")
        );
        assert!(!store.account(bob).await.unwrap().unwrap().totp_confirmed);
        assert!(store.session("bob-s1").await.unwrap().is_none());
        // A deny after the approval loses.
        let deny = StateChange::new(&[RecoveryState::Review], RecoveryState::Denied, T0 + 3)
            .decided_by("dave");
        assert!(
            !store
                .set_recovery_state(r.id, &deny, &[], &[audit(bob, "recovery.denied")])
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_recovery_state(
                    r.id,
                    &StateChange::new(&[], RecoveryState::Denied, T0 + 3),
                    &[],
                    &[]
                )
                .await
                .unwrap()
        );
        assert_eq!(events(&store, bob).await, ["recovery.approved"]);
        // Entering pending without a completion time is refused by the schema.
        let r2 = store
            .start_recovery(bob, "h-review-2", T0, None, &[], &[])
            .await
            .unwrap();
        let bad = StateChange::new(&[RecoveryState::Collecting], RecoveryState::Pending, T0 + 4);
        assert!(matches!(
            store
                .set_recovery_state(r2.id, &bad, &[mail("x", "lost")], &[])
                .await,
            Err(dar_store::StoreError::Database(_))
        ));
        assert!(queued(&store).await.is_empty());
        assert_eq!(
            store
                .account_recoveries(bob, 10)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            [r2.id, r.id]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cancel_links_work_once_and_sign_in_cancels_open_recoveries() {
    let (stores, dir) = stores("lockout_cancel").await;
    for store in stores {
        let alice = enrolled(&store, "alice").await;
        let id = pending(&store, alice, "h1", "c1").await;
        assert!(
            !store
                .cancel_recovery_by_hash(
                    "unknown",
                    T0 + 5,
                    &[mail("x", "no")],
                    &[audit(alice, "no")]
                )
                .await
                .unwrap()
        );
        assert!(
            store
                .cancel_recovery_by_hash(
                    "c1",
                    T0 + 5,
                    &[mail("alice@example.com", "cancelled")],
                    &[audit(alice, "recovery.cancelled")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_recovery_by_hash(
                    "c1",
                    T0 + 6,
                    &[mail("x", "twice")],
                    &[audit(alice, "twice")]
                )
                .await
                .unwrap()
        );
        let c = store.recovery(id).await.unwrap().unwrap();
        assert_eq!((c.state, c.updated_at), (RecoveryState::Cancelled, T0 + 5));
        assert!(!store.complete_unlock(id, FAR, &[], &[]).await.unwrap());
        assert!(store.account(alice).await.unwrap().unwrap().totp_confirmed);

        // Signing in with the second factor ends every open recovery, and only those.
        let p = pending(&store, alice, "h2", "c2").await;
        let collecting = store
            .start_recovery(alice, "h3", T0, None, &[], &[])
            .await
            .unwrap()
            .id;
        let other = enrolled(&store, "bob").await;
        let bobs = pending(&store, other, "h4", "c4").await;
        assert_eq!(
            store
                .cancel_pending_recoveries(
                    alice,
                    T0 + 7,
                    &[mail("alice@example.com", "signed in")],
                    &[audit(alice, "recovery.cancelled.sign_in")]
                )
                .await
                .unwrap(),
            2
        );
        for r in [p, collecting] {
            assert_eq!(
                store.recovery(r).await.unwrap().unwrap().state,
                RecoveryState::Cancelled
            );
        }
        assert_eq!(
            store.recovery(id).await.unwrap().unwrap().updated_at,
            T0 + 5
        );
        assert_eq!(
            store.recovery(bobs).await.unwrap().unwrap().state,
            RecoveryState::Pending
        );
        // Nothing left to cancel: no mail, no audit row.
        assert_eq!(
            store
                .cancel_pending_recoveries(
                    alice,
                    T0 + 8,
                    &[mail("x", "none")],
                    &[audit(alice, "none")]
                )
                .await
                .unwrap(),
            0
        );
        assert_eq!(subjects(&store).await, ["cancelled", "signed in"]);
        assert_eq!(
            events(&store, alice).await,
            ["recovery.cancelled", "recovery.cancelled.sign_in"]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn due_recoveries_follow_the_notice_schedule_and_one_worker_sends_each_notice() {
    let (stores, dir) = stores("lockout_due").await;
    for store in stores {
        let alice = enrolled(&store, "alice").await;
        let id = pending(&store, alice, "h1", "c1").await;
        let due = |now| {
            let store = store.clone();
            async move {
                store
                    .due_recoveries(now, INTERVAL, FINAL, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        assert!(due(T0 + INTERVAL - 1).await.is_empty());
        assert_eq!(due(T0 + INTERVAL).await, [id]);
        // Two workers saw last_notice_at = T0: one sends the reminder.
        assert!(
            store
                .record_notice(
                    id,
                    Some(T0),
                    false,
                    T0 + INTERVAL,
                    &[mail("a", "reminder")],
                    &[audit(alice, "notice.reminder")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .record_notice(
                    id,
                    Some(T0),
                    false,
                    T0 + INTERVAL,
                    &[mail("a", "duplicate")],
                    &[audit(alice, "duplicate")]
                )
                .await
                .unwrap()
        );
        assert!(due(T0 + 2 * INTERVAL - 1).await.is_empty());
        assert!(
            store
                .record_notice(
                    id,
                    Some(T0 + INTERVAL),
                    false,
                    T0 + 2 * INTERVAL,
                    &[mail("a", "reminder 2")],
                    &[]
                )
                .await
                .unwrap()
        );
        // The next reminder would fall in the final window: only the final notice is due.
        let window = T0 + WAIT - FINAL;
        assert!(due(window - 1).await.is_empty());
        assert_eq!(due(window).await, [id]);
        assert!(
            store
                .record_notice(
                    id,
                    Some(T0 + 2 * INTERVAL),
                    true,
                    window,
                    &[mail("a", "final")],
                    &[audit(alice, "notice.final")]
                )
                .await
                .unwrap()
        );
        let r = store.recovery(id).await.unwrap().unwrap();
        assert!(r.final_notice_sent);
        assert_eq!(r.last_notice_at, Some(window));
        assert!(
            !store
                .record_notice(
                    id,
                    Some(window),
                    true,
                    window + 1,
                    &[mail("a", "final again")],
                    &[]
                )
                .await
                .unwrap()
        );
        assert!(due(T0 + WAIT - 1).await.is_empty());
        assert_eq!(due(T0 + WAIT).await, [id]);
        assert!(
            store
                .complete_unlock(id, T0 + WAIT, &[], &[])
                .await
                .unwrap()
        );
        assert!(due(FAR).await.is_empty());
        assert!(
            !store
                .record_notice(id, Some(window), false, FAR, &[], &[])
                .await
                .unwrap()
        );
        assert_eq!(subjects(&store).await, ["reminder", "reminder 2", "final"]);
        assert_eq!(
            events(&store, alice).await,
            ["notice.reminder", "notice.final"]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn recovery_codes_are_replaced_as_a_set_and_used_once_even_concurrently() {
    let (stores, dir) = stores("lockout_recovery_codes").await;
    for store in stores {
        let alice = account(&store, "alice").await;
        let bob = account(&store, "bob").await;
        let old: Vec<String> = (0..10).map(|i| format!("$argon2id$old{i}")).collect();
        store
            .replace_recovery_codes(alice, &old, T0, &[], &[audit(alice, "codes.generated")])
            .await
            .unwrap();
        let codes = store.unused_recovery_codes(alice).await.unwrap();
        assert_eq!(
            codes
                .iter()
                .map(|c| c.code_hash.clone())
                .collect::<Vec<_>>(),
            old
        );
        assert!(!format!("{codes:?}").contains("argon2id"));
        assert!(store.unused_recovery_codes(bob).await.unwrap().is_empty());

        let first = codes[0].id;
        let old_unused = codes[1].id;
        assert!(
            !store
                .use_recovery_code(bob, first, T0 + 1, &[], &[audit(bob, "x")])
                .await
                .unwrap(),
            "another account's code"
        );
        assert!(
            store
                .use_recovery_code(alice, first, T0 + 1, &[], &[audit(alice, "code.used")])
                .await
                .unwrap()
        );
        assert!(
            !store
                .use_recovery_code(
                    alice,
                    first,
                    T0 + 2,
                    &[mail("x", "replay")],
                    &[audit(alice, "replay")]
                )
                .await
                .unwrap()
        );
        assert_eq!(store.unused_recovery_codes(alice).await.unwrap().len(), 9);

        // Regenerating revokes the whole old set.
        let new: Vec<String> = (0..10).map(|i| format!("$argon2id$new{i}")).collect();
        store
            .replace_recovery_codes(
                alice,
                &new,
                T0 + 3,
                &[mail("alice@example.com", "new codes")],
                &[audit(alice, "codes.generated")],
            )
            .await
            .unwrap();
        let codes = store.unused_recovery_codes(alice).await.unwrap();
        assert_eq!(
            codes
                .iter()
                .map(|c| c.code_hash.clone())
                .collect::<Vec<_>>(),
            new
        );
        assert!(
            !store
                .use_recovery_code(alice, old_unused, T0 + 4, &[], &[])
                .await
                .unwrap(),
            "revoked"
        );

        // Eight concurrent uses of one code: exactly one wins, one audit row.
        let store = Arc::new(store);
        let code = codes[1].id;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .use_recovery_code(alice, code, T0 + 5, &[], &[audit(alice, "code.used.race")])
                    .await
                    .unwrap()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(
            events(&store, alice).await,
            [
                "codes.generated",
                "code.used",
                "codes.generated",
                "code.used.race"
            ]
        );
        assert_eq!(subjects(&store).await, ["new codes"]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn email_codes_supersede_expire_and_hold_their_attempt_limit_under_concurrency() {
    const MAX: u32 = 5;
    let (stores, dir) = stores("lockout_email_codes").await;
    for store in stores {
        let alice = account(&store, "alice").await;
        let bob = account(&store, "bob").await;
        let email = verified_email(&store, alice, "alice@example.com").await;
        let unverified = store
            .add_email(alice, "new@example.com", T0, &[], &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store
                .add_email(alice, "new@example.com", T0, &[], &[])
                .await
                .unwrap(),
            None
        );
        let bobs_email = verified_email(&store, bob, "bob@example.com").await;
        let emails = store.emails(alice).await.unwrap();
        assert_eq!(
            emails
                .iter()
                .map(|e| (e.address.as_str(), e.verified_at))
                .collect::<Vec<_>>(),
            [
                ("alice@example.com", Some(T0 - 99)),
                ("new@example.com", None)
            ]
        );
        assert!(
            !store.mark_email_verified(email, T0, &[]).await.unwrap(),
            "already verified"
        );

        let r = store
            .start_recovery(alice, "h1", T0, None, &[], &[])
            .await
            .unwrap()
            .id;
        assert_eq!(
            store.check_email_code(r, "x", T0, MAX).await.unwrap(),
            EmailCodeCheck::NoCode
        );
        // Only to a verified address of the recovery's own account.
        assert_eq!(
            store
                .issue_email_code(
                    r,
                    unverified,
                    "hash-0",
                    T0,
                    T0 + 600,
                    &[mail("x", "no")],
                    &[]
                )
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .issue_email_code(
                    r,
                    bobs_email,
                    "hash-0",
                    T0,
                    T0 + 600,
                    &[mail("x", "no")],
                    &[]
                )
                .await
                .unwrap(),
            None
        );
        assert!(queued(&store).await.is_empty());

        let first = store
            .issue_email_code(
                r,
                email,
                "hash-1",
                T0,
                T0 + 600,
                &[mail("alice@example.com", "code 1")],
                &[audit(alice, "email_code.sent")],
            )
            .await
            .unwrap()
            .unwrap();
        let second = store
            .issue_email_code(
                r,
                email,
                "hash-2",
                T0 + 10,
                T0 + 610,
                &[mail("alice@example.com", "code 2")],
                &[audit(alice, "email_code.sent")],
            )
            .await
            .unwrap()
            .unwrap();
        assert_ne!(first, second);
        // The first code no longer works: checked against the current one, it is wrong.
        assert_eq!(
            store
                .check_email_code(r, "hash-1", T0 + 20, MAX)
                .await
                .unwrap(),
            EmailCodeCheck::Wrong { attempts_left: 4 }
        );
        assert_eq!(
            store
                .check_email_code(r, "hash-2", T0 + 21, MAX)
                .await
                .unwrap(),
            EmailCodeCheck::Accepted {
                code: second,
                email
            }
        );
        assert_eq!(
            store
                .check_email_code(r, "hash-2", T0 + 22, MAX)
                .await
                .unwrap(),
            EmailCodeCheck::Used
        );
        assert_eq!(store.email_codes_sent_since(alice, T0).await.unwrap(), 2);
        assert_eq!(
            store.email_codes_sent_since(alice, T0 + 1).await.unwrap(),
            1
        );
        assert_eq!(
            store
                .email_codes_sent_to_since("alice@example.com", T0)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .email_codes_sent_to_since("bob@example.com", T0)
                .await
                .unwrap(),
            0
        );

        // Expiry.
        store
            .issue_email_code(r, email, "hash-3", T0 + 30, T0 + 630, &[], &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store
                .check_email_code(r, "hash-3", T0 + 630, MAX)
                .await
                .unwrap(),
            EmailCodeCheck::Expired
        );

        // Eight concurrent wrong guesses: exactly MAX are counted, then the code is dead,
        // even for the right code.
        store
            .issue_email_code(r, email, "hash-4", T0 + 40, T0 + 640, &[], &[])
            .await
            .unwrap()
            .unwrap();
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .check_email_code(r, &format!("guess-{i}"), T0 + 50, MAX)
                    .await
                    .unwrap()
            }));
        }
        let mut left = Vec::new();
        let mut dead = 0;
        for t in tasks {
            match t.await.unwrap() {
                EmailCodeCheck::Wrong { attempts_left } => left.push(attempts_left),
                EmailCodeCheck::TooManyAttempts => dead += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        left.sort_unstable();
        assert_eq!(left, [0, 1, 2, 3, 4]);
        assert_eq!(dead, 3);
        assert_eq!(
            store
                .check_email_code(r, "hash-4", T0 + 51, MAX)
                .await
                .unwrap(),
            EmailCodeCheck::TooManyAttempts
        );

        // A decided recovery takes no new code.
        assert!(
            store
                .cancel_pending_recoveries(alice, T0 + 60, &[], &[])
                .await
                .unwrap()
                == 1
        );
        assert_eq!(
            store
                .issue_email_code(
                    r,
                    email,
                    "hash-5",
                    T0 + 61,
                    T0 + 661,
                    &[mail("x", "no")],
                    &[audit(alice, "no")]
                )
                .await
                .unwrap(),
            None
        );
        assert_eq!(subjects(&store).await, ["code 1", "code 2"]);
        assert_eq!(
            events(&store, alice).await,
            ["email_code.sent", "email_code.sent"]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn trusted_contacts_are_added_listed_and_removed() {
    let (stores, dir) = stores("lockout_contacts").await;
    for store in stores {
        let alice = account(&store, "alice").await;
        let bob = account(&store, "bob").await;
        let carol = account(&store, "carol").await;
        assert!(
            store
                .add_trusted_contact(
                    alice,
                    bob,
                    T0,
                    &[mail("bob@example.com", "named")],
                    &[audit(alice, "contact.added")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .add_trusted_contact(
                    alice,
                    bob,
                    T0 + 1,
                    &[mail("x", "again")],
                    &[audit(alice, "again")]
                )
                .await
                .unwrap()
        );
        assert!(
            store
                .add_trusted_contact(alice, carol, T0 + 2, &[], &[])
                .await
                .unwrap()
        );
        assert!(
            store
                .add_trusted_contact(carol, bob, T0 + 3, &[], &[])
                .await
                .unwrap()
        );
        assert!(matches!(
            store.add_trusted_contact(alice, alice, T0, &[], &[]).await,
            Err(dar_store::StoreError::Database(_))
        ));
        let of_alice: Vec<_> = store
            .contacts_of(alice)
            .await
            .unwrap()
            .iter()
            .map(|c| (c.contact, c.added_at))
            .collect();
        assert_eq!(of_alice, [(bob, T0), (carol, T0 + 2)]);
        let trusting_bob: Vec<_> = store
            .owners_trusting(bob)
            .await
            .unwrap()
            .iter()
            .map(|c| c.owner)
            .collect();
        assert_eq!(trusting_bob, [alice, carol]);
        assert!(
            store
                .remove_trusted_contact(alice, bob, T0 + 4, &[], &[audit(alice, "contact.removed")])
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_trusted_contact(
                    alice,
                    bob,
                    T0 + 5,
                    &[mail("x", "gone")],
                    &[audit(alice, "gone")]
                )
                .await
                .unwrap()
        );
        assert_eq!(store.contacts_of(alice).await.unwrap().len(), 1);
        assert_eq!(
            store
                .owners_trusting(bob)
                .await
                .unwrap()
                .iter()
                .map(|c| c.owner)
                .collect::<Vec<_>>(),
            [carol]
        );
        assert_eq!(subjects(&store).await, ["named"]);
        assert_eq!(
            events(&store, alice).await,
            ["contact.added", "contact.removed"]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn held_factors_wait_for_their_pause_and_can_be_cancelled_once() {
    let (stores, dir) = stores("lockout_pending_factor").await;
    for store in stores {
        let alice = account(&store, "alice").await;
        let first = store
            .hold_factor(alice, "FIRSTSECRET", T0, T0 + 86_400, "fc1", &[], &[])
            .await
            .unwrap();
        let second = store
            .hold_factor(
                alice,
                "SECONDSECRET",
                T0 + 1,
                T0 + 86_401,
                "fc2",
                &[mail("alice@example.com", "2fa held")],
                &[audit(alice, "factor.held")],
            )
            .await
            .unwrap();
        let held = store.pending_factor(alice).await.unwrap().unwrap();
        assert_eq!(
            (held.id, held.effective_at, held.state),
            (second, T0 + 86_401, PendingFactorState::Pending)
        );
        assert!(!format!("{held:?}").contains("SECONDSECRET"));
        assert_eq!(
            store
                .pending_factor_by_cancel_hash("fc1")
                .await
                .unwrap()
                .unwrap()
                .state,
            PendingFactorState::Cancelled
        );
        assert!(
            !store
                .activate_pending_factor(first, FAR, &[], &[])
                .await
                .unwrap(),
            "replaced"
        );

        assert!(
            store
                .due_pending_factors(T0 + 86_400, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .activate_pending_factor(second, T0 + 86_400, &[], &[audit(alice, "early")])
                .await
                .unwrap()
        );
        let due = store.due_pending_factors(T0 + 86_401, 10).await.unwrap();
        assert_eq!(due.iter().map(|f| f.id).collect::<Vec<_>>(), [second]);
        assert!(
            store
                .activate_pending_factor(
                    second,
                    T0 + 86_401,
                    &[mail("alice@example.com", "2fa on")],
                    &[audit(alice, "factor.active")]
                )
                .await
                .unwrap()
        );
        let a = store.account(alice).await.unwrap().unwrap();
        assert_eq!(
            (a.totp_secret.as_deref(), a.totp_confirmed),
            (Some("SECONDSECRET"), true)
        );
        assert!(
            !store
                .activate_pending_factor(second, T0 + 86_402, &[], &[])
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_pending_factor_by_hash("fc2", T0 + 86_402, &[], &[])
                .await
                .unwrap(),
            "already active"
        );
        assert!(store.pending_factor(alice).await.unwrap().is_none());

        // The owner cancels the next one, once.
        let bob = account(&store, "bob").await;
        let third = store
            .hold_factor(bob, "THIRD", T0, T0 + 10, "fc3", &[], &[])
            .await
            .unwrap();
        assert!(
            store
                .cancel_pending_factor_by_hash(
                    "fc3",
                    T0 + 5,
                    &[mail("bob@example.com", "2fa cancelled")],
                    &[audit(bob, "factor.cancelled")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_pending_factor_by_hash(
                    "fc3",
                    T0 + 6,
                    &[mail("x", "twice")],
                    &[audit(bob, "twice")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .activate_pending_factor(third, T0 + 10, &[], &[])
                .await
                .unwrap()
        );
        assert!(
            store
                .account(bob)
                .await
                .unwrap()
                .unwrap()
                .totp_secret
                .is_none()
        );

        // An unlock drops a held factor.
        let fourth = store
            .hold_factor(bob, "FOURTH", T0, T0 + 10, "fc4", &[], &[])
            .await
            .unwrap();
        let r = store
            .start_recovery(bob, "hb", T0, None, &[], &[])
            .await
            .unwrap()
            .id;
        let unlock = StateChange::new(
            &[RecoveryState::Collecting],
            RecoveryState::Unlocked,
            T0 + 1,
        )
        .outcome_rule("recovery code and password");
        assert!(
            store
                .set_recovery_state(r, &unlock, &[], &[])
                .await
                .unwrap()
        );
        assert!(
            !store
                .activate_pending_factor(fourth, T0 + 10, &[], &[])
                .await
                .unwrap()
        );

        assert_eq!(
            subjects(&store).await,
            ["2fa held", "2fa on", "2fa cancelled"]
        );
        assert_eq!(
            events(&store, alice).await,
            ["factor.held", "factor.active"]
        );
        assert_eq!(events(&store, bob).await, ["factor.cancelled"]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_mail_outbox_leases_delivers_and_retries() {
    let (stores, dir) = stores("lockout_mail").await;
    for store in stores {
        store
            .record_event(
                T0,
                &[mail("a@example.com", "one"), mail("b@example.com", "two")],
                &[],
            )
            .await
            .unwrap();
        assert!(
            store
                .due_mail(T0 - 1, T0 + 60, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = store.due_mail(T0, T0 + 60, 1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let one = &claimed[0];
        assert_eq!(
            (one.to.as_str(), one.subject.as_str(), one.body.as_str()),
            ("a@example.com", "one", "one: body")
        );
        assert_eq!(
            (one.created_at, one.attempts, one.last_error.clone()),
            (T0, 0, None)
        );
        assert!(!format!("{one:?}").contains("body"));
        // Leased: another worker gets only the other mail.
        let other = store.due_mail(T0, T0 + 60, 10).await.unwrap();
        assert_eq!(
            other.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
            ["two"]
        );

        assert!(store.mark_mail_delivered(one.id, T0 + 1).await.unwrap());
        assert!(!store.mark_mail_delivered(one.id, T0 + 2).await.unwrap());
        assert!(
            !store
                .mark_mail_failed(one.id, T0 + 100, "421")
                .await
                .unwrap()
        );

        let two = other[0].id;
        assert!(store.mark_mail_failed(two, T0 + 300, "451").await.unwrap());
        assert!(
            store
                .due_mail(T0 + 299, T0 + 400, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let retry = store.due_mail(T0 + 300, T0 + 400, 10).await.unwrap();
        assert_eq!(retry.len(), 1);
        assert_eq!(
            (
                retry[0].id,
                retry[0].attempts,
                retry[0].last_error.as_deref()
            ),
            (two, 1, Some("451"))
        );
        // A worker that died leaves it due again after the lease.
        let again = store.due_mail(T0 + 400, T0 + 500, 10).await.unwrap();
        assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [two]);
        assert!(store.mark_mail_delivered(two, T0 + 401).await.unwrap());
        assert!(store.due_mail(FAR, FAR, 10).await.unwrap().is_empty());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_lost_compare_and_set_writes_no_mail_and_no_audit_row() {
    let (stores, dir) = stores("lockout_cas_loses").await;
    for store in stores {
        let alice = enrolled(&store, "alice").await;
        let email = verified_email(&store, alice, "alice@example.com").await;
        let id = pending(&store, alice, "h1", "c1").await;
        let m = [mail("alice@example.com", "must not be queued")];
        let a = [audit(alice, "must.not.be.audited")];
        let collecting_to_refused =
            StateChange::new(&[RecoveryState::Collecting], RecoveryState::Refused, T0 + 1);
        assert!(
            !store
                .set_recovery_state(id, &collecting_to_refused, &m, &a)
                .await
                .unwrap()
        );
        assert!(!store.complete_unlock(id, T0 + 1, &m, &a).await.unwrap());
        assert!(
            !store
                .add_evidence(id, &delegated("cc"), T0 + 1, &a)
                .await
                .unwrap()
        );
        assert!(
            !store
                .record_notice(id, Some(T0 - 1), false, T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .issue_email_code(id, email, "h", T0, T0 + 600, &m, &a)
                .await
                .unwrap(),
            None
        );
        assert!(
            !store
                .cancel_recovery_by_hash("c-unknown", T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert!(
            !store
                .use_recovery_code(alice, dar_store::RecoveryCodeId(1), T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_pending_factor_by_hash("none", T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert!(
            !store
                .activate_pending_factor(dar_store::PendingFactorId(1), T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_trusted_contact(alice, alice, T0 + 1, &m, &a)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .add_email(alice, "alice@example.com", T0, &m, &a)
                .await
                .unwrap(),
            None
        );
        assert!(!store.mark_email_verified(email, T0, &a).await.unwrap());
        assert!(queued(&store).await.is_empty());
        assert!(store.audit_events(None, 100).await.unwrap().is_empty());
        // The state and the account are untouched.
        let r = store.recovery(id).await.unwrap().unwrap();
        assert_eq!((r.state, r.updated_at), (RecoveryState::Pending, T0));
        assert!(store.account(alice).await.unwrap().unwrap().totp_confirmed);
        assert!(store.session("alice-s1").await.unwrap().is_some());
    }
    let _ = std::fs::remove_dir_all(dir);
}
