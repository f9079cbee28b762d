use axum::http::{StatusCode, header};
use dar_account_provider::lockout::codes::verify_recovery_code;
use dar_store::{AccountId, EvidenceKind, MailRecord, PendingFactorState, RecoveryState, Store};

use super::normalize_email;
use crate::auth::tests::{Browser, PASSWORD, between, code_at, code_at_time};
use crate::testutil::unix_now;

const DAY: i64 = 24 * 60 * 60;

/// Every queued, undelivered mail (a far-future lease keeps them due for the next look).
async fn mails(store: &Store) -> Vec<MailRecord> {
    let far = i64::MAX / 4;
    store.due_mail(far, far, 1000).await.unwrap()
}

pub(crate) async fn id_of(store: &Store, username: &str) -> AccountId {
    store
        .account_by_username(username)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Marks every address of the account verified, directly in the store.
pub(crate) async fn verify_all(store: &Store, account: AccountId) {
    for e in store.emails(account).await.unwrap() {
        store
            .mark_email_verified(e.id, unix_now(), &[])
            .await
            .unwrap();
    }
}

async fn audit_count(store: &Store, account: AccountId) -> usize {
    store.audit_events(Some(account), 1000).await.unwrap().len()
}

#[tokio::test]
async fn sign_up_stores_an_unverified_address_and_one_verification_mail() {
    let (_browser, store) = Browser::signed_in("Alice").await;
    let alice = id_of(&store, "alice").await;
    let emails = store.emails(alice).await.unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].address, "alice@example.test");
    assert_eq!(emails[0].verified_at, None);
    let mails = mails(&store).await;
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:?}");
    assert_eq!(mails[0].to, "alice@example.test");
    assert!(
        mails[0]
            .subject
            .contains("Confirm your notification address")
    );
    // The link is built from the configured origin.
    assert!(
        mails[0]
            .body
            .contains("https://dar.test/account/email/verify?id=")
    );
    // Newest first: the second factor's recovery codes (no notice: no address is verified
    // yet), after the address.
    let events = store.audit_events(Some(alice), 10).await.unwrap();
    assert_eq!(events[0].event, "recovery_codes.generated");
    assert_eq!(events[1].event, "email.added");
    assert_eq!(events[1].source_address.as_deref(), Some("192.0.2.1"));
    assert_eq!(store.unused_recovery_codes(alice).await.unwrap().len(), 10);
}

#[tokio::test]
async fn sign_up_refuses_a_malformed_address_and_creates_nothing() {
    let (mut browser, store) = Browser::new().await;
    let csrf = browser.get("/signup").await.csrf();
    let page = browser
        .post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("username", "zoe"),
                ("password", PASSWORD),
                ("email", "not an address"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body
            .contains("Enter an email address for security notices")
    );
    assert!(store.account_by_username("zoe").await.unwrap().is_none());
    assert!(mails(&store).await.is_empty());
}

#[test]
fn addresses_are_checked_and_normalized() {
    assert_eq!(
        normalize_email(" Ann@Example.ORG ").as_deref(),
        Some("Ann@example.org")
    );
    for bad in [
        "",
        "ann",
        "@example.org",
        "ann@",
        "ann@localhost",
        "ann@example.org.",
        "a b@example.org",
        "ann@example.org\r\nBcc: x@y.z",
        "<ann@example.org>",
    ] {
        assert_eq!(normalize_email(bad), None, "{bad:?}");
    }
}

#[tokio::test]
async fn a_verification_link_works_once_and_only_by_post() {
    let (mut browser, store) = Browser::signed_in("bea").await;
    let bea = id_of(&store, "bea").await;
    let link = between(&mails(&store).await[0].body, "https://dar.test", "\r\n");
    // The GET only shows a button.
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Confirm this address"));
    assert!(page.body.contains("bea@example.test"));
    assert_eq!(store.emails(bea).await.unwrap()[0].verified_at, None);
    let id = between(&page.body, "name=\"id\" value=\"", "\"");
    let csrf = page.csrf();
    let page = browser
        .post(
            "/account/email/verify",
            &[("csrf_token", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location.as_deref(),
        Some("/account/security?m=email-verified")
    );
    assert!(store.emails(bea).await.unwrap()[0].verified_at.is_some());
    let events = store.audit_events(Some(bea), 10).await.unwrap();
    assert_eq!(events[0].event, "email.verified");

    // Used: the second POST and a GET are refused, and nothing changes.
    let before = audit_count(&store, bea).await;
    let page = browser
        .post(
            "/account/email/verify",
            &[("csrf_token", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("has expired or was already used"));
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(audit_count(&store, bea).await, before);

    let page = browser.get("/account/security").await;
    assert!(page.body.contains("bea@example.test"));
    assert!(page.body.contains("confirmed "));
}

#[tokio::test]
async fn another_account_cannot_use_a_verification_link() {
    let (mut first, store) = Browser::signed_in("cid").await;
    let link = between(&mails(&store).await[0].body, "https://dar.test", "\r\n");
    let mut other = first.other();
    other.sign_up("dot", PASSWORD).await;
    let page = other.get(&link).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let id = link.split_once("id=").unwrap().1.to_owned();
    let csrf = other.get("/account/security").await.csrf();
    let page = other
        .post(
            "/account/email/verify",
            &[("csrf_token", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // Not used up: the owner still can.
    assert_eq!(first.get(&link).await.status, StatusCode::OK);
    let cid = id_of(&store, "cid").await;
    assert_eq!(store.emails(cid).await.unwrap()[0].verified_at, None);
}

#[tokio::test]
async fn a_second_address_can_be_added_and_is_announced() {
    let (mut browser, store) = Browser::signed_in("eve").await;
    let eve = id_of(&store, "eve").await;
    verify_all(&store, eve).await;
    let before = mails(&store).await.len();
    let csrf = browser.get("/account/security").await.csrf();
    let page = browser
        .post(
            "/account/email/add",
            &[("csrf_token", &csrf), ("email", "eve@other.test")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let all = mails(&store).await;
    assert_eq!(all.len(), before + 2);
    assert!(all.iter().any(
        |m| m.to == "eve@other.test" && m.subject.contains("Confirm your notification address")
    ));
    assert!(
        all.iter().any(|m| m.to == "eve@example.test"
            && m.subject.contains("A notification address was added"))
    );
    // The same address again is refused, and nothing is queued.
    let page = browser
        .post(
            "/account/email/add",
            &[("csrf_token", &csrf), ("email", "eve@other.test")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("already on your account"));
    assert_eq!(mails(&store).await.len(), before + 2);
    assert_eq!(store.emails(eve).await.unwrap().len(), 2);
}

/// The codes on a recovery-codes page.
fn shown_codes(body: &str) -> Vec<String> {
    body.split("<li><code>")
        .skip(1)
        .map(|s| s.split("</code>").next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_new_second_factor_comes_with_recovery_codes_shown_once() {
    let (browser, store) = Browser::signed_in("ida").await;
    let ida = id_of(&store, "ida").await;
    let shown = shown_codes(&browser.enrolment_page);
    assert_eq!(shown.len(), 10);
    let stored = store.unused_recovery_codes(ida).await.unwrap();
    assert_eq!(stored.len(), 10);
    for (code, record) in shown.iter().zip(&stored) {
        assert!(verify_recovery_code(code, &record.code_hash).unwrap());
    }
    // No address was verified yet, so no notice; the audit row names no code.
    assert!(
        mails(&store)
            .await
            .iter()
            .all(|m| !m.subject.contains("New recovery codes"))
    );
    let events = store.audit_events(Some(ida), 1).await.unwrap();
    assert_eq!(events[0].event, "recovery_codes.generated");
    assert!(shown.iter().all(|c| !events[0].detail.contains(c.as_str())));
}

#[tokio::test]
async fn recovery_codes_are_shown_once_stored_hashed_and_regenerating_revokes() {
    let (mut browser, store) = Browser::signed_in("fay").await;
    let fay = id_of(&store, "fay").await;
    verify_all(&store, fay).await;
    // The set that came with the second factor at sign-up.
    let page = browser.get("/account/security").await;
    assert!(
        page.body
            .contains("<strong>10</strong> unused recovery codes")
    );
    let at_sign_up = store.unused_recovery_codes(fay).await.unwrap();
    let csrf = page.csrf();
    let page = browser
        .post("/account/recovery-codes", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert!(page.body.contains("somewhere safe"));
    let first = shown_codes(&page.body);
    assert_eq!(first.len(), 10);
    let stored = store.unused_recovery_codes(fay).await.unwrap();
    assert_eq!(stored.len(), 10);
    // The sign-up set is gone.
    assert!(
        stored
            .iter()
            .all(|s| at_sign_up.iter().all(|a| a.id != s.id))
    );
    for (code, record) in first.iter().zip(&stored) {
        assert!(record.code_hash.starts_with("$argon2id$"));
        assert!(first.iter().all(|c| !record.code_hash.contains(c.as_str())));
        assert!(verify_recovery_code(code, &record.code_hash).unwrap());
    }
    // Not shown again.
    let page = browser.get("/account/security").await;
    assert!(
        page.body
            .contains("<strong>10</strong> unused recovery codes")
    );
    assert!(!page.body.contains(first[0].as_str()));
    let notices = mails(&store).await;
    assert!(
        notices
            .iter()
            .any(|m| m.subject.contains("New recovery codes"))
    );
    assert!(notices.iter().all(|m| !m.body.contains(first[0].as_str())));

    // Regenerating replaces the whole set.
    let page = browser
        .post("/account/recovery-codes", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let second = shown_codes(&page.body);
    assert_eq!(second.len(), 10);
    let restored = store.unused_recovery_codes(fay).await.unwrap();
    assert_eq!(restored.len(), 10);
    assert!(restored.iter().all(|r| stored.iter().all(|s| s.id != r.id)));
    for old in &first {
        for record in &restored {
            assert!(!verify_recovery_code(old, &record.code_hash).unwrap());
        }
    }
    let events = store.audit_events(Some(fay), 10).await.unwrap();
    assert_eq!(events[0].event, "recovery_codes.generated");
    assert_eq!(events[1].event, "recovery_codes.generated");
}

#[tokio::test]
async fn adding_a_contact_refuses_yourself_and_unknown_names() {
    let (mut alice, store) = Browser::signed_in("gus").await;
    let mut other = alice.other();
    other.sign_up("hal", PASSWORD).await;
    let gus = id_of(&store, "gus").await;
    verify_all(&store, gus).await;
    let csrf = alice.get("/account/security").await.csrf();
    let audit_before = audit_count(&store, gus).await;
    let mails_before = mails(&store).await.len();

    let page = alice
        .post(
            "/account/contacts/add",
            &[("csrf_token", &csrf), ("username", "GUS")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body
            .contains("You cannot name yourself as a trusted contact")
    );
    let page = alice
        .post(
            "/account/contacts/add",
            &[("csrf_token", &csrf), ("username", "nobody")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body
            .contains("There is no account with that username.")
    );
    assert!(store.contacts_of(gus).await.unwrap().is_empty());
    assert_eq!(audit_count(&store, gus).await, audit_before);
    assert_eq!(mails(&store).await.len(), mails_before);

    // A real contact is added, announced, shown with the day it becomes usable; once.
    let page = alice
        .post(
            "/account/contacts/add",
            &[("csrf_token", &csrf), ("username", "hal")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(store.contacts_of(gus).await.unwrap().len(), 1);
    assert!(
        mails(&store)
            .await
            .iter()
            .any(|m| m.to == "gus@example.test" && m.subject.contains("trusted contact was added"))
    );
    let page = alice.get("/account/security").await;
    assert!(page.body.contains("<td>hal</td>"));
    assert!(page.body.contains("from "));
    let page = alice
        .post(
            "/account/contacts/add",
            &[("csrf_token", &csrf), ("username", "hal")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("already one of your trusted contacts"));

    // Removing is announced too.
    let hal = id_of(&store, "hal").await;
    let page = alice
        .post(
            "/account/contacts/remove",
            &[("csrf_token", &csrf), ("contact", &hal.0.to_string())],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(store.contacts_of(gus).await.unwrap().is_empty());
    assert!(
        mails(&store)
            .await
            .iter()
            .any(|m| m.subject.contains("trusted contact was removed"))
    );
    let page = alice
        .post(
            "/account/contacts/remove",
            &[("csrf_token", &csrf), ("contact", &hal.0.to_string())],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("not one of your trusted contacts"));
}

#[tokio::test]
async fn an_approval_needs_the_cooldown_and_counts_once() {
    let (mut owner, store) = Browser::signed_in("ida").await;
    let mut contact = owner.other();
    contact.sign_up("jon", PASSWORD).await;
    let ida = id_of(&store, "ida").await;
    let jon = id_of(&store, "jon").await;
    verify_all(&store, ida).await;
    let csrf = owner.get("/account/security").await.csrf();
    let page = owner
        .post(
            "/account/contacts/add",
            &[("csrf_token", &csrf), ("username", "jon")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let recovery = store
        .start_recovery(ida, "handle-hash-ida", unix_now(), None, &[], &[])
        .await
        .unwrap();
    let rid = recovery.id.0.to_string();

    // Before the cooldown: listed, not approvable.
    let page = contact.get("/account/approvals").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<td>ida</td>"));
    assert!(page.body.contains("you can approve from"));
    let csrf = contact.get("/account/security").await.csrf();
    let audit_before = audit_count(&store, ida).await;
    let mails_before = mails(&store).await.len();
    let page = contact
        .post(
            "/account/approvals/approve",
            &[("csrf_token", &csrf), ("recovery", &rid)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("You cannot approve yet"));
    assert!(store.evidence(recovery.id).await.unwrap().is_empty());
    assert_eq!(audit_count(&store, ida).await, audit_before);
    assert_eq!(mails(&store).await.len(), mails_before);

    // Someone the owner did not name cannot approve at all.
    let mut stranger = owner.other();
    stranger.sign_up("kim", PASSWORD).await;
    let csrf_k = stranger.get("/account/security").await.csrf();
    let page = stranger
        .post(
            "/account/approvals/approve",
            &[("csrf_token", &csrf_k), ("recovery", &rid)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body
            .contains("No recovery of an account that named you")
    );
    assert!(store.evidence(recovery.id).await.unwrap().is_empty());

    // Named eight days ago: usable.
    store
        .remove_trusted_contact(ida, jon, unix_now(), &[], &[])
        .await
        .unwrap();
    store
        .add_trusted_contact(ida, jon, unix_now() - 8 * DAY, &[], &[])
        .await
        .unwrap();
    let page = contact.get("/account/approvals").await;
    assert!(page.body.contains("Approve recovery"));
    let page = contact
        .post(
            "/account/approvals/approve",
            &[("csrf_token", &csrf), ("recovery", &rid)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let evidence = store.evidence(recovery.id).await.unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].kind, EvidenceKind::TrustedContact);
    assert_eq!(evidence[0].reference, jon.0.to_string());
    assert_eq!(evidence[0].detail, "jon");
    let events = store.audit_events(Some(ida), 10).await.unwrap();
    assert_eq!(events[0].actor, "contact:jon");
    assert_eq!(events[0].event, "recovery.contact_approved");
    let notices = mails(&store).await;
    assert!(
        notices
            .iter()
            .any(|m| m.to == "ida@example.test" && m.subject.contains("trusted contact approved"))
    );

    // Twice: a no-op with a message.
    let audit_before = audit_count(&store, ida).await;
    let page = contact
        .post(
            "/account/approvals/approve",
            &[("csrf_token", &csrf), ("recovery", &rid)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("You already approved this recovery; nothing changed.")
    );
    assert_eq!(store.evidence(recovery.id).await.unwrap().len(), 1);
    assert_eq!(audit_count(&store, ida).await, audit_before);
    assert_eq!(mails(&store).await.len(), notices.len());
}

#[tokio::test]
async fn a_new_factor_on_an_old_account_is_held_and_the_cancel_link_works_once() {
    use argon2::password_hash::PasswordHasher as _;
    let (mut browser, store) = Browser::new().await;
    let hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let lea = store
        .create_account("lea", &hash, unix_now() - 40 * DAY)
        .await
        .unwrap()
        .unwrap();
    store
        .add_email(lea, "lea@example.test", unix_now(), &[], &[])
        .await
        .unwrap();
    verify_all(&store, lea).await;

    let page = browser.password("lea", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/account/totp").await;
    assert_eq!(page.status, StatusCode::OK);
    let secret = between(&page.body, "<dt>Secret</dt><dd><code>", "</code>");
    let code = code_at_time(&secret, unix_now());
    let page = browser
        .post(
            "/account/totp",
            &[("csrf_token", &page.csrf()), ("code", &code)],
        )
        .await;
    assert_eq!(page.status, StatusCode::ACCEPTED, "{}", page.body);
    assert!(page.body.contains("becomes active at"));
    // Not active, not signed in; the enrolment page now says it is held.
    let account = store.account(lea).await.unwrap().unwrap();
    assert!(!account.totp_confirmed);
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.get("/account/totp").await.status,
        StatusCode::ACCEPTED
    );
    let held = store.pending_factor(lea).await.unwrap().unwrap();
    assert_eq!(held.totp_secret, secret);
    let pause = 24 * 60 * 60;
    assert!((held.effective_at - held.created_at - pause).abs() <= 1);

    let notice = mails(&store)
        .await
        .into_iter()
        .find(|m| m.subject.contains("A new authenticator was set up"))
        .unwrap();
    assert_eq!(notice.to, "lea@example.test");
    let token = between(&notice.body, "/account/factor/cancel?c=", "\r\n");
    assert_eq!(token.len(), 32);
    let link = format!("/account/factor/cancel?c={token}");

    // A GET (a mail scanner) cancels nothing; no sign-in is needed.
    let mut reader = browser.other();
    let page = reader.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Cancel the new authenticator"));
    assert!(store.pending_factor(lea).await.unwrap().is_some());
    let csrf = page.csrf();
    let page = reader
        .post(
            "/account/factor/cancel",
            &[("csrf_token", &csrf), ("c", &token)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("was cancelled"));
    let factor = store
        .pending_factor_by_cancel_hash(&crate::auth::hash_hex(token.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(factor.state, PendingFactorState::Cancelled);
    let events = store.audit_events(Some(lea), 10).await.unwrap();
    assert_eq!(events[0].event, "factor.cancelled");

    // Once only.
    let audit_before = audit_count(&store, lea).await;
    let page = reader
        .post(
            "/account/factor/cancel",
            &[("csrf_token", &csrf), ("c", &token)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("unknown or was already used"));
    assert_eq!(reader.get(&link).await.status, StatusCode::NOT_FOUND);
    let page = reader
        .get("/account/factor/cancel?c=00000000000000000000000000000000")
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(audit_count(&store, lea).await, audit_before);
}

#[tokio::test]
async fn a_new_account_enrols_at_once() {
    let (_browser, store) = Browser::signed_in("max").await;
    let max = id_of(&store, "max").await;
    assert!(store.account(max).await.unwrap().unwrap().totp_confirmed);
    assert!(store.pending_factor(max).await.unwrap().is_none());
}

#[tokio::test]
async fn signing_in_with_the_second_factor_cancels_a_pending_recovery() {
    let (mut browser, store) = Browser::new().await;
    let secret = browser.sign_up("ned", PASSWORD).await;
    let ned = id_of(&store, "ned").await;
    verify_all(&store, ned).await;
    let recovery = store
        .start_recovery(ned, "handle-hash-ned", unix_now(), None, &[], &[])
        .await
        .unwrap();
    let before = mails(&store).await.len();

    let mut other = browser.other();
    let code = code_at(&secret, 1);
    let page = other.sign_in_with_code("ned", &code).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let recovery = store.recovery(recovery.id).await.unwrap().unwrap();
    assert_eq!(recovery.state, RecoveryState::Cancelled);
    let all = mails(&store).await;
    assert_eq!(all.len(), before + 1);
    assert!(all.iter().any(|m| m.to == "ned@example.test"
        && m.subject.contains("Account recovery cancelled")));
    let events = store.audit_events(Some(ned), 10).await.unwrap();
    assert_eq!(events[0].event, "recovery.cancelled");

    // The security page shows the history, newest first.
    let page = other.get("/account/security").await;
    assert_eq!(page.status, StatusCode::OK);
    let cancelled = page.body.find("recovery.cancelled").unwrap();
    let added = page.body.find("email.added").unwrap();
    assert!(cancelled < added);
    assert!(page.body.contains("192.0.2.1"));
}
