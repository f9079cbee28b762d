use axum::http::StatusCode;
use dar_account_provider::Decision;
use dar_account_provider::lockout::codes;
use dar_store::{AccountId, LockoutRecovery, MailRecord, RecoveryState, Store};
use time::OffsetDateTime;

use super::worker::{LockoutReport, LockoutWorker};
use super::{apply, cancel_secret, link_key};
use crate::account_security::tests::{id_of, verify_all};
use crate::auth::tests::{Browser, PASSWORD};
use crate::mail::Mailer;
use crate::testutil::{PEER, temp_dir};

const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;

/// Undelivered mails with `subject` in their subject; they stay due (leased until time 0).
async fn queued(store: &Store, subject: &str) -> Vec<MailRecord> {
    let far = i64::MAX / 4;
    store
        .due_mail(far, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.subject.contains(subject))
        .collect()
}

/// Alice, signed up with TOTP and a verified address, and her signed-in browser.
async fn alice() -> (Browser, Store, crate::AppState, AccountId) {
    let (mut browser, store, state) = Browser::with_state().await;
    browser.sign_up("alice", PASSWORD).await;
    let alice = id_of(&store, "alice").await;
    verify_all(&store, alice).await;
    (browser, store, state, alice)
}

async fn start_with_password(browser: &mut Browser) -> crate::auth::tests::Page {
    let csrf = browser.get("/ap/recovery/lost").await.csrf();
    let page = browser
        .post(
            "/recovery/start",
            &[
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/recovery"));
    browser.get("/recovery").await
}

#[tokio::test]
async fn password_alone_is_refused_and_a_recovery_code_then_unlocks_at_once() {
    let (mut owner, store, _state, alice) = alice().await;
    let set = codes::generate_recovery_codes(&mut getrandom::SysRng).unwrap();
    let hashes = set.hashes(&mut getrandom::SysRng).unwrap();
    store
        .replace_recovery_codes(alice, &hashes, crate::testutil::unix_now(), &[], &[])
        .await
        .unwrap();
    let code = set.iter().next().unwrap().as_str().to_owned();

    let mut locked_out = owner.other();
    let page = start_with_password(&mut locked_out).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Not enough evidence yet"),
        "{}",
        page.body
    );
    assert!(page.body.contains("add a recovery code"), "{}", page.body);
    assert!(!page.body.contains("id=\"finish\""));

    // Finishing now is refused and changes nothing.
    let page = locked_out
        .post("/recovery/finish", &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    let recovery = &store.account_recoveries(alice, 10).await.unwrap()[0];
    assert_eq!(recovery.state, RecoveryState::Collecting);

    // A wrong code: 401 with its message, nothing used.
    let page = locked_out
        .post(
            "/recovery/code",
            &[
                ("csrf_token", &page.csrf()),
                ("value", "aaaa-bbbb-cccc-dddd"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("That recovery code is not valid"));
    assert_eq!(store.unused_recovery_codes(alice).await.unwrap().len(), 10);

    let page = locked_out
        .post(
            "/recovery/code",
            &[
                ("csrf_token", &page.csrf()),
                ("value", &code.to_uppercase()),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("unlock your account now"),
        "{}",
        page.body
    );
    assert_eq!(store.unused_recovery_codes(alice).await.unwrap().len(), 9);

    let csrf = page.csrf();
    let page = locked_out
        .post("/recovery/finish", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Your account is unlocked"));

    // The unlock: second factor gone, the owner's session revoked, everyone told.
    let account = store.account(alice).await.unwrap().unwrap();
    assert!(account.totp_secret.is_none() && !account.totp_confirmed);
    let page = owner.get("/account").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the old session survived"
    );
    assert_eq!(queued(&store, "Your account was recovered").await.len(), 1);
    let events: Vec<String> = store
        .audit_events(Some(alice), 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(
        events.contains(&"recovery.unlocked".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"recovery_code.used".to_owned()),
        "{events:?}"
    );

    // The recovery takes no more evidence, and the used code is spent.
    let page = locked_out
        .post("/recovery/code", &[("csrf_token", &csrf), ("value", &code)])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);

    // Signing in asks for a new second factor, which comes with a new set of codes: the set
    // the recovery used a code of is revoked, the used code replaced.
    let old_set = store.unused_recovery_codes(alice).await.unwrap();
    let page = locked_out.password("alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    locked_out.enrol_totp().await;
    let new_set = store.unused_recovery_codes(alice).await.unwrap();
    assert_eq!(new_set.len(), 10);
    assert!(new_set.iter().all(|n| old_set.iter().all(|o| o.id != n.id)));
    assert!(locked_out.enrolment_page.contains("Your recovery codes"));
}

#[tokio::test]
async fn a_wrong_password_starts_nothing_and_says_what_sign_in_says() {
    let (browser, store, _state, alice) = alice().await;
    let mut other = browser.other();
    let csrf = other.get("/ap/recovery/lost").await.csrf();
    for username in ["alice", "nobody"] {
        let page = other
            .post(
                "/recovery/start",
                &[
                    ("csrf_token", &csrf),
                    ("username", username),
                    ("password", "wrong password"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Incorrect username or password."));
    }
    assert!(
        store
            .account_recoveries(alice, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A collecting recovery for `account` with only a password as evidence (the store's view).
async fn collecting(store: &Store, account: AccountId) -> LockoutRecovery {
    store
        .start_recovery(
            account,
            &"ab".repeat(32),
            crate::testutil::unix_now(),
            None,
            &[],
            &[],
        )
        .await
        .unwrap()
}

fn timed(state: &crate::AppState) -> Decision {
    Decision::TimedUnlock {
        rule: "recovery provider".to_owned(),
        waiting_period: super::policy(state).unwrap().waiting_period(),
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

#[tokio::test]
async fn a_timed_unlock_notifies_on_schedule_survives_a_restart_and_completes() {
    let (mut owner, store, state, alice) = alice().await;
    let recovery = collecting(&store, alice).await;
    let t0 = crate::testutil::unix_now();
    let changed = apply(&state, &recovery, &timed(&state), t0, Some(PEER.ip()))
        .await
        .unwrap();
    assert_eq!(changed, Some(true));
    let pending = store.recovery(recovery.id).await.unwrap().unwrap();
    assert_eq!(pending.state, RecoveryState::Pending);
    let completes = pending.completes_at.unwrap();
    assert_eq!(completes, t0 + 72 * HOUR);
    let start = queued(&store, "unless you cancel").await;
    assert_eq!(start.len(), 1);
    assert!(start[0].body.contains("/recovery/cancel?c="));

    let dir = temp_dir("lockout-worker");
    let worker = LockoutWorker::new(&state, Mailer::files(&dir, "dar@dar.test").unwrap()).unwrap();
    // The worker holds the cancel links' key: its Debug never shows it.
    let key = link_key(&state).unwrap();
    let shown = format!("{worker:?}");
    assert!(shown.contains("link_key: \"[redacted]\""), "{shown}");
    assert!(!shown.contains(&format!("{key:?}")), "{shown}");
    // Nothing due an hour in (the start notice was the first); its mail is delivered.
    let report = worker.run_once(at(t0 + HOUR)).await.unwrap();
    assert_eq!((report.notices, report.unlocked), (0, 0));
    assert!(report.mail_delivered >= 1);

    // A day in: one reminder, only once.
    let report = worker.run_once(at(t0 + DAY + 1)).await.unwrap();
    assert_eq!(report.notices, 1);
    let report = worker.run_once(at(t0 + DAY + 2)).await.unwrap();
    assert_eq!(report.notices, 0);

    // A restart: a new worker over the same database carries on where the old one stopped.
    drop(worker);
    let worker = LockoutWorker::new(&state, Mailer::files(&dir, "dar@dar.test").unwrap()).unwrap();
    let report = worker.run_once(at(t0 + 2 * DAY + 1)).await.unwrap();
    assert_eq!(report.notices, 1, "the second day's reminder");
    // Six hours before the end: the final notice, and no reminder after it.
    let report = worker.run_once(at(completes - 6 * HOUR + 1)).await.unwrap();
    assert_eq!(report.notices, 1);
    assert_eq!(queued(&store, "unlocks soon").await.len(), 0, "delivered");
    let report = worker.run_once(at(completes - 1)).await.unwrap();
    assert_eq!((report.notices, report.unlocked), (0, 0));
    assert!(
        store.account(alice).await.unwrap().unwrap().totp_confirmed,
        "nothing unlocked before the end"
    );

    // The end: unlocked, second factor reset, sessions revoked.
    let report = worker.run_once(at(completes + 1)).await.unwrap();
    assert_eq!(report.unlocked, 1);
    let account = store.account(alice).await.unwrap().unwrap();
    assert!(account.totp_secret.is_none() && !account.totp_confirmed);
    assert_eq!(owner.get("/account").await.status, StatusCode::SEE_OTHER);
    let report = worker.run_once(at(completes + 2)).await.unwrap();
    assert_eq!(report.unlocked, 0, "completes once");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(
        files >= 5,
        "start, two reminders, final, unlock: {files} files"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_cancel_link_cancels_once_and_stops_the_unlock() {
    let (mut owner, store, state, alice) = alice().await;
    let recovery = collecting(&store, alice).await;
    let t0 = crate::testutil::unix_now();
    apply(&state, &recovery, &timed(&state), t0, Some(PEER.ip()))
        .await
        .unwrap();
    let secret = cancel_secret(&link_key(&state).unwrap(), recovery.id);
    let start = &queued(&store, "unless you cancel").await[0];
    assert!(start.body.contains(&format!("/recovery/cancel?c={secret}")));

    // A GET only shows the button: mail scanners follow links.
    let mut reader = owner.other();
    let page = reader.get(&format!("/recovery/cancel?c={secret}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        store.recovery(recovery.id).await.unwrap().unwrap().state,
        RecoveryState::Pending
    );
    // A made-up link cancels nothing.
    let wrong = "0".repeat(64);
    let again = reader
        .post(
            "/recovery/cancel",
            &[("csrf_token", &page.csrf()), ("c", &wrong)],
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    let done = reader
        .post(
            "/recovery/cancel",
            &[("csrf_token", &page.csrf()), ("c", &secret)],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Recovery cancelled"));
    let again = reader
        .post(
            "/recovery/cancel",
            &[("csrf_token", &page.csrf()), ("c", &secret)],
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    assert_eq!(
        store.recovery(recovery.id).await.unwrap().unwrap().state,
        RecoveryState::Cancelled
    );
    assert_eq!(queued(&store, "was cancelled").await.len(), 1);

    // The waiting period's end unlocks nothing.
    let dir = temp_dir("lockout-cancel");
    let worker = LockoutWorker::new(&state, Mailer::files(&dir, "dar@dar.test").unwrap()).unwrap();
    let report = worker.run_once(at(t0 + 73 * HOUR)).await.unwrap();
    assert_eq!(report.unlocked, 0);
    assert_ne!(report, LockoutReport::default(), "its mail went out");
    assert!(store.account(alice).await.unwrap().unwrap().totp_confirmed);
    assert_eq!(owner.get("/account").await.status, StatusCode::OK);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn email_codes_go_to_a_verified_address_and_wrong_guesses_are_bounded() {
    let (owner, store, _state, alice) = alice().await;
    let mut locked_out = owner.other();
    let page = start_with_password(&mut locked_out).await;
    let email = store.emails(alice).await.unwrap()[0].id.0.to_string();
    let page = locked_out
        .post(
            "/recovery/email/send",
            &[("csrf_token", &page.csrf()), ("email", &email)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mail = &queued(&store, "Your account recovery code").await[0];
    assert_eq!(mail.to, "alice@example.test");
    // Five wrong guesses use the code up; the right one is then refused too.
    for _ in 0..codes::EMAIL_CODE_MAX_ATTEMPTS {
        let page = locked_out
            .post(
                "/recovery/email/check",
                &[("csrf_token", &page.csrf()), ("value", "00000000")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let code = crate::auth::tests::between(&mail.body, "is: ", "\r\n");
    let page = locked_out
        .post(
            "/recovery/email/check",
            &[("csrf_token", &page.csrf()), ("value", &code)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Too many wrong codes"), "{}", page.body);
    let recovery = &store.account_recoveries(alice, 1).await.unwrap()[0];
    let kinds: Vec<_> = store
        .evidence(recovery.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [dar_store::EvidenceKind::Password]);

    // An address that is not the account's verified one gets nothing.
    let page = locked_out
        .post(
            "/recovery/email/send",
            &[("csrf_token", &page.csrf()), ("email", "999")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(queued(&store, "Your account recovery code").await.len(), 1);
}

#[tokio::test]
async fn email_codes_are_rate_limited_per_address() {
    let (owner, store, _state, alice) = alice().await;
    let mut locked_out = owner.other();
    let page = start_with_password(&mut locked_out).await;
    let csrf = page.csrf();
    let email = store.emails(alice).await.unwrap()[0].id.0.to_string();
    for _ in 0..3 {
        let page = locked_out
            .post(
                "/recovery/email/send",
                &[("csrf_token", &csrf), ("email", &email)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
    let page = locked_out
        .post(
            "/recovery/email/send",
            &[("csrf_token", &csrf), ("email", &email)],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.get("retry-after").is_some());
    // Each new code replaced the previous one; the refused request queued nothing.
    assert_eq!(queued(&store, "Your account recovery code").await.len(), 3);
}

#[tokio::test]
async fn over_long_inputs_are_refused_before_any_hashing_and_start_nothing() {
    let (browser, store, _state, alice) = alice().await;
    let mut other = browser.other();
    let csrf = other.get("/ap/recovery/lost").await.csrf();
    // Longer than any password that can be set (but inside the form's body limit): the sign-in
    // answer, and no recovery.
    let long = "x".repeat(crate::auth::MAX_PASSWORD_LEN + 1);
    let page = other
        .post(
            "/recovery/start",
            &[
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("password", &long),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Incorrect username or password."));
    // Over the account forms' body limit: 413 before the handler.
    let huge = "x".repeat(crate::auth::ACCOUNT_FORM_BODY_LIMIT);
    let page = other
        .post(
            "/recovery/start",
            &[
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("password", &huge),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        store
            .account_recoveries(alice, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A recovery-code field far longer than any code is just "not valid".
    let page = start_with_password(&mut other).await;
    let page = other
        .post(
            "/recovery/code",
            &[("csrf_token", &page.csrf()), ("value", &"a".repeat(2000))],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("That recovery code is not valid"));
    // The ten codes that came with her second factor are all still unused.
    assert_eq!(store.unused_recovery_codes(alice).await.unwrap().len(), 10);
}
