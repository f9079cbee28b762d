use std::sync::Arc;
use std::time::Duration;

use dar_core::{Origin, TokenId};
use dar_recovery_provider::{
    MemoryStore, OutboxId, OutboxMessage, RecoveryProviderStore, StatusCallback, TokenStatus,
    UserId, UserNotification,
};
use time::macros::datetime;

use super::*;
use crate::testutil::temp_dir;

const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:18 UTC);

fn callback(issuer: &str, status: TokenStatus) -> StatusCallback {
    StatusCallback {
        issuer: Origin::parse_development(issuer).unwrap(),
        token_id: TokenId::new([0xab; 16]),
        status,
        countersigned_id: (status == TokenStatus::RecoveryRepudiated)
            .then(|| TokenId::new([0xcd; 16])),
    }
}

fn notification(user: &str, nickname: Option<&str>) -> UserNotification {
    UserNotification {
        user: UserId::new(user),
        issuer: Origin::parse("https://ap.example.com").unwrap(),
        token_id: TokenId::new([0xab; 16]),
        countersigned_id: TokenId::new([0xcd; 16]),
        nickname: nickname.map(str::to_owned),
        at: datetime!(2026-11-22 15:30:00 UTC),
    }
}

fn mail() -> MailSettings {
    MailSettings::new(
        "dar@rp.example.net",
        "Example RP",
        "https://rp.example.net/dar/recoveries",
    )
    .unwrap()
}

fn headers(eml: &str) -> Vec<(&str, &str)> {
    let (head, _) = eml.split_once("\r\n\r\n").unwrap();
    head.split("\r\n")
        .map(|line| line.split_once(": ").unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Retry schedule

#[test]
fn backoff_doubles_from_thirty_seconds_and_caps_at_six_hours() {
    let policy = RetryPolicy::default();
    let table = [
        (0, 30),
        (1, 60),
        (2, 120),
        (3, 240),
        (4, 480),
        (5, 960),
        (6, 1_920),
        (7, 3_840),
        (8, 7_680),
        (9, 15_360),
        (10, 21_600),
        (11, 21_600),
        (31, 21_600),
        (32, 21_600),
        (u32::MAX, 21_600),
    ];
    for (attempts, seconds) in table {
        assert_eq!(
            policy.backoff(attempts),
            Duration::from_secs(seconds),
            "attempts {attempts}"
        );
    }
}

#[test]
fn gives_up_when_the_failure_reaches_max_attempts() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_attempts, 12);
    assert_eq!(
        policy.after_failure(0, false),
        AfterFailure::RetryAfter(Duration::from_secs(30))
    );
    assert_eq!(
        policy.after_failure(10, false),
        AfterFailure::RetryAfter(Duration::from_secs(21_600))
    );
    assert_eq!(policy.after_failure(11, false), AfterFailure::GiveUp);
    assert_eq!(policy.after_failure(50, false), AfterFailure::GiveUp);
    assert_eq!(policy.after_failure(u32::MAX, false), AfterFailure::GiveUp);
}

#[test]
fn gives_up_at_once_on_a_permanent_failure() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.after_failure(0, true), AfterFailure::GiveUp);
    assert!(DeliveryError::InsecureScheme.is_permanent());
    assert!(DeliveryError::NoRecipient.is_permanent());
    assert!(!DeliveryError::Status(500).is_permanent());
    assert!(!DeliveryError::Redirected { status: 302 }.is_permanent());
    assert!(!DeliveryError::NonPublicAddress.is_permanent());
}

#[test]
fn zero_max_attempts_behaves_as_one() {
    let policy = RetryPolicy {
        max_attempts: 0,
        ..RetryPolicy::default()
    };
    assert_eq!(policy.after_failure(0, false), AfterFailure::GiveUp);
}

#[test]
fn next_attempt_is_now_plus_backoff_or_parked() {
    let policy = RetryPolicy::default();
    assert_eq!(
        policy.next_attempt_at(0, false, NOW),
        NOW + time::Duration::seconds(30)
    );
    assert_eq!(
        policy.next_attempt_at(3, false, NOW),
        NOW + time::Duration::seconds(240)
    );
    assert_eq!(policy.next_attempt_at(11, false, NOW), NOW + PARKED_FOR);
    assert_eq!(policy.next_attempt_at(0, true, NOW), NOW + PARKED_FOR);
}

// ---------------------------------------------------------------------------------------------
// Request building

#[test]
fn builds_the_well_known_post_for_an_https_issuer() {
    let request = status_request(
        &callback("https://ap.example.com", TokenStatus::SaveSuccess),
        CallbackPolicy::default(),
    )
    .unwrap();
    assert_eq!(
        request.url.as_str(),
        "https://ap.example.com/.well-known/delegated-account-recovery/token-status"
    );
    assert_eq!(
        request.body,
        format!("id={}&status=save-success", "ab".repeat(16))
    );
}

#[test]
fn includes_countersigned_id_for_recovery_repudiated() {
    let request = status_request(
        &callback(
            "https://ap.example.com:8443",
            TokenStatus::RecoveryRepudiated,
        ),
        CallbackPolicy::default(),
    )
    .unwrap();
    assert_eq!(
        request.url.as_str(),
        "https://ap.example.com:8443/.well-known/delegated-account-recovery/token-status"
    );
    assert_eq!(
        request.body,
        format!(
            "id={}&status=recovery-repudiated&countersigned_id={}",
            "ab".repeat(16),
            "cd".repeat(16)
        )
    );
}

#[test]
fn request_debug_redacts_the_body() {
    let request = status_request(
        &callback("https://ap.example.com", TokenStatus::Deleted),
        CallbackPolicy::default(),
    )
    .unwrap();
    let debug = format!("{request:?}");
    assert!(!debug.contains(&"ab".repeat(16)), "{debug}");
    assert!(debug.contains("[redacted]"));
}

#[test]
fn rejects_http_without_the_development_option() {
    let http = callback("http://localhost:8080", TokenStatus::Deleted);
    assert_eq!(
        status_request(&http, CallbackPolicy::default()).unwrap_err(),
        DeliveryError::InsecureScheme
    );
}

#[test]
fn accepts_http_loopback_only_in_development() {
    let policy = CallbackPolicy {
        danger_allow_http_loopback: true,
        danger_allow_non_public_addresses: true,
    };
    let request = status_request(
        &callback("http://localhost:8080", TokenStatus::Deleted),
        policy,
    )
    .unwrap();
    assert_eq!(request.url.scheme(), "http");
    // No `Origin` is http with a host that is not loopback (the parsers refuse it), and
    // `status_request` would refuse one too.
    assert!(Origin::from_wire("issuer", b"http://ap.example.com").is_err());
}

#[test]
fn rejects_non_public_address_literals_unless_allowed() {
    for issuer in [
        "https://127.0.0.1",
        "https://10.1.2.3",
        "https://169.254.169.254",
        "https://[::1]",
    ] {
        let origin = Origin::parse(issuer).unwrap();
        let cb = StatusCallback {
            issuer: origin,
            ..callback("https://ap.example.com", TokenStatus::Deleted)
        };
        assert_eq!(
            status_request(&cb, CallbackPolicy::default()).unwrap_err(),
            DeliveryError::NonPublicAddress,
            "{issuer}"
        );
        let allowed = CallbackPolicy {
            danger_allow_non_public_addresses: true,
            ..CallbackPolicy::default()
        };
        assert!(status_request(&cb, allowed).is_ok(), "{issuer}");
    }
}

#[test]
fn maps_statuses_to_delivery_verdicts() {
    assert_eq!(check_callback_status(200), Ok(()));
    assert_eq!(check_callback_status(204), Ok(()));
    assert_eq!(check_callback_status(299), Ok(()));
    assert_eq!(
        check_callback_status(302),
        Err(DeliveryError::Redirected { status: 302 })
    );
    assert_eq!(
        check_callback_status(307),
        Err(DeliveryError::Redirected { status: 307 })
    );
    assert_eq!(check_callback_status(404), Err(DeliveryError::Status(404)));
    assert_eq!(check_callback_status(500), Err(DeliveryError::Status(500)));
    assert_eq!(check_callback_status(100), Err(DeliveryError::Status(100)));
}

// ---------------------------------------------------------------------------------------------
// Notifications

#[test]
fn renders_the_notification_headers() {
    let n = notification("alice@example.org", Some("work laptop"));
    let eml = render_eml(OutboxId(42), &n, &mail(), "alice@example.org", NOW).unwrap();
    assert_eq!(
        headers(&eml),
        vec![
            ("From", "dar@rp.example.net"),
            ("To", "alice@example.org"),
            ("Subject", "A recovery token for ap.example.com was used"),
            ("Date", "Sun, 22 Nov 2026 15:31:18 +0000"),
            ("Message-ID", "<dar-outbox-42@rp.example.net>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", "8bit"),
            ("Auto-Submitted", "auto-generated"),
        ]
    );
}

#[test]
fn renders_provider_nickname_time_and_repudiation_link() {
    let n = notification("alice@example.org", Some("work laptop"));
    let eml = render_eml(OutboxId(42), &n, &mail(), "alice@example.org", NOW).unwrap();
    let (_, body) = eml.split_once("\r\n\r\n").unwrap();
    assert!(
        body.contains("Account provider: https://ap.example.com\r\n"),
        "{body}"
    );
    assert!(
        body.contains("Token nickname:   \"work laptop\"\r\n"),
        "{body}"
    );
    assert!(
        body.contains("Used at:          Sun, 22 Nov 2026 15:30:00 +0000\r\n"),
        "{body}"
    );
    assert!(body.contains("Example RP"), "{body}");
    let link = format!(
        "https://rp.example.net/dar/recoveries?countersigned_id={}\r\n",
        "cd".repeat(16)
    );
    assert!(body.contains(&link), "{body}");
    // The recovery token's own id is not in the message.
    assert!(!eml.contains(&"ab".repeat(16)), "{eml}");
    // Every line ends CRLF, none is longer than RFC 5322's 998 octets.
    assert!(eml.ends_with("\r\n"));
    for line in eml.split("\r\n") {
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert!(line.len() <= 998);
    }
}

#[test]
fn omits_the_nickname_line_when_there_is_none() {
    let n = notification("alice@example.org", None);
    let eml = render_eml(OutboxId(1), &n, &mail(), "alice@example.org", NOW).unwrap();
    assert!(!eml.contains("Token nickname"));
}

#[test]
fn nickname_line_breaks_cannot_inject_headers_or_lines() {
    let n = notification(
        "alice@example.org",
        Some(
            "laptop\r\nBcc: attacker@evil.example\r\n\r\nClick http://evil.example\u{2028}x\u{202E}",
        ),
    );
    let eml = render_eml(OutboxId(7), &n, &mail(), "alice@example.org", NOW).unwrap();
    assert_eq!(headers(&eml).len(), 9);
    assert!(!eml.contains("\r\nBcc:"), "{eml}");
    assert!(!eml.contains("\r\nClick"), "{eml}");
    assert!(!eml.contains('\u{2028}') && !eml.contains('\u{202E}'));
    assert!(eml.contains(
        "Token nickname:   \"laptop\u{FFFD}\u{FFFD}Bcc: attacker@evil.example\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}Click http://evil.example\u{FFFD}x\u{FFFD}\"\r\n"
    ));
}

#[test]
fn refuses_a_header_value_with_a_line_break() {
    let n = notification("alice@example.org", None);
    assert_eq!(
        render_eml(
            OutboxId(1),
            &n,
            &mail(),
            "a@b.example\r\nBcc: x@y.example",
            NOW
        ),
        Err(DeliveryError::Render)
    );
    assert_eq!(
        render_eml(OutboxId(1), &n, &mail(), "älice@example.org", NOW),
        Err(DeliveryError::Render)
    );
}

#[test]
fn caps_long_nicknames() {
    let long = "x".repeat(MAX_NICKNAME_CHARS + 50);
    let safe = safe_nickname(&long);
    assert_eq!(safe.chars().count(), MAX_NICKNAME_CHARS + 1);
    assert!(safe.ends_with('…'));
    assert_eq!(safe_nickname("exact"), "exact");
}

#[test]
fn mail_settings_refuse_unsafe_values() {
    let url = "https://rp.example.net/dar/recoveries";
    assert_eq!(
        MailSettings::new("dar@rp.example.net\r\nBcc: x@y", "RP", url).unwrap_err(),
        MailSettingsError::From
    );
    assert_eq!(
        MailSettings::new("not-an-address", "RP", url).unwrap_err(),
        MailSettingsError::From
    );
    assert_eq!(
        MailSettings::new("dar@rp.example.net", "RP\nX", url).unwrap_err(),
        MailSettingsError::SiteName
    );
    for bad in [
        "http://rp.example.net/dar",
        "https://user:pw@rp.example.net/dar",
        "https://rp.example.net/dar#x",
        "javascript:alert(1)",
        "/dar/recoveries",
    ] {
        assert_eq!(
            MailSettings::new("dar@rp.example.net", "RP", bad).unwrap_err(),
            MailSettingsError::RepudiateUrl,
            "{bad}"
        );
    }
    assert!(MailSettings::new("dar@localhost", "RP", "http://localhost:8443/dar").is_ok());
    assert_eq!(
        mail().with_recipient_domain("bad domain").unwrap_err(),
        MailSettingsError::RecipientDomain
    );
}

#[test]
fn repudiation_link_keeps_the_configured_query() {
    let mail = MailSettings::new(
        "dar@rp.example.net",
        "RP",
        "https://rp.example.net/dar?lang=en",
    )
    .unwrap();
    let link = mail.repudiation_link(&notification("alice", None));
    assert_eq!(
        link.as_str(),
        format!(
            "https://rp.example.net/dar?lang=en&countersigned_id={}",
            "cd".repeat(16)
        )
    );
}

#[test]
fn recipient_is_the_user_id_or_id_at_the_configured_domain() {
    let plain = mail();
    assert_eq!(
        plain
            .recipient(&UserId::new("alice@example.org"))
            .as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(plain.recipient(&UserId::new("alice")), None);
    let with_domain = mail().with_recipient_domain("users.example.net").unwrap();
    assert_eq!(
        with_domain.recipient(&UserId::new("alice")).as_deref(),
        Some("alice@users.example.net")
    );
    assert_eq!(with_domain.recipient(&UserId::new("al ice\r\n")), None);
}

// ---------------------------------------------------------------------------------------------
// The worker, without network: refusals happen before any connection.

fn worker(store: MemoryStore, notifier: EmlFileNotifier) -> OutboxWorker<MemoryStore> {
    let callbacks = StatusCallbackClient::new(CallbackSettings::default()).unwrap();
    OutboxWorker::new(store, callbacks, Arc::new(notifier), RetryPolicy::default())
}

#[tokio::test]
async fn parks_a_callback_to_an_http_issuer_without_sending() {
    let store = MemoryStore::new();
    let message =
        OutboxMessage::TokenStatus(callback("http://localhost:8080", TokenStatus::Deleted));
    store.queue(&message, NOW).await.unwrap();
    let dir = temp_dir("outbox-parks-http");
    let worker = worker(store, EmlFileNotifier::new(&dir, mail()));
    let report = worker.run_once(NOW).await.unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            delivered: 0,
            retrying: 0,
            given_up: 1
        }
    );
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.delivered_at, None);
    assert_eq!(row.entry.attempts, 1);
    assert_eq!(row.next_attempt_at, NOW + PARKED_FOR);
    assert!(
        worker
            .run_once(NOW + time::Duration::days(365))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn retries_a_callback_to_a_loopback_literal_after_backoff() {
    let store = MemoryStore::new();
    let message =
        OutboxMessage::TokenStatus(callback("https://127.0.0.1:9", TokenStatus::SaveSuccess));
    store.queue(&message, NOW).await.unwrap();
    let dir = temp_dir("outbox-retries-literal");
    let worker = worker(store, EmlFileNotifier::new(&dir, mail()));
    assert_eq!(worker.run_once(NOW).await.unwrap().retrying, 1);
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.next_attempt_at, NOW + time::Duration::seconds(30));
    assert!(
        worker
            .run_once(NOW + time::Duration::seconds(29))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        worker
            .run_once(NOW + time::Duration::seconds(30))
            .await
            .unwrap()
            .retrying,
        1
    );
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.entry.attempts, 2);
    assert_eq!(row.next_attempt_at, NOW + time::Duration::seconds(30 + 60));
}

#[tokio::test]
async fn writes_a_notification_file_and_marks_it_delivered() {
    let store = MemoryStore::new();
    let message = OutboxMessage::UserNotification(notification("alice", Some("phone")));
    let id = store.queue(&message, NOW).await.unwrap();
    let dir = temp_dir("outbox-writes-eml");
    let notifier = EmlFileNotifier::new(
        &dir,
        mail().with_recipient_domain("users.example.net").unwrap(),
    );
    let path = notifier.path_for(id);
    let worker = worker(store, notifier);
    assert_eq!(worker.run_once(NOW).await.unwrap().delivered, 1);
    let eml = std::fs::read_to_string(&path).unwrap();
    assert!(eml.contains("To: alice@users.example.net\r\n"));
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.delivered_at, Some(NOW));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[tokio::test]
async fn parks_a_notification_for_a_user_without_address() {
    let store = MemoryStore::new();
    let message = OutboxMessage::UserNotification(notification("alice", None));
    store.queue(&message, NOW).await.unwrap();
    let dir = temp_dir("outbox-no-recipient");
    let worker = worker(store, EmlFileNotifier::new(&dir, mail()));
    assert_eq!(worker.run_once(NOW).await.unwrap().given_up, 1);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[tokio::test]
async fn spawned_worker_stops_on_shutdown() {
    let store = MemoryStore::new();
    let message = OutboxMessage::UserNotification(notification("alice@example.org", None));
    let id = store.queue(&message, NOW).await.unwrap();
    let dir = temp_dir("outbox-spawn");
    let worker = worker(store, EmlFileNotifier::new(&dir, mail()));
    let (stop, shutdown) = watch::channel(false);
    let clock = std::sync::Arc::new(crate::clock::ManualClock::new(NOW));
    let task = spawn(worker, clock, Duration::from_millis(20), shutdown);
    let path = dir.join(format!("outbox-{}.eml", id.0));
    for _ in 0..200 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(path.exists(), "the first run happens at once");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn spawned_worker_stops_when_the_sender_is_dropped() {
    let dir = temp_dir("outbox-spawn-drop");
    let worker = worker(MemoryStore::new(), EmlFileNotifier::new(&dir, mail()));
    let (stop, shutdown) = watch::channel(false);
    let clock = std::sync::Arc::new(crate::clock::ManualClock::new(NOW));
    let task = spawn(worker, clock, Duration::from_secs(3600), shutdown);
    drop(stop);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn serve_builds_a_worker_only_for_the_recovery_provider_role() {
    let dir = temp_dir("outbox_worker_from_config");
    let store = dar_store::Store::connect(&format!("sqlite://{}", dir.join("dar.db").display()))
        .await
        .unwrap();
    let config = crate::testutil::config();
    let (_worker, interval) = worker_from_config(&config, store.clone()).unwrap().unwrap();
    assert_eq!(interval, Duration::from_secs(10));
    let mut ap_only = config.clone();
    ap_only.recovery_provider = None;
    assert!(worker_from_config(&ap_only, store).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Notices over SMTP, to a loopback server.

/// A worker sending notices through SMTP on loopback `port`, with `message` queued.
async fn smtp_worker(port: u16, message: &OutboxMessage) -> OutboxWorker<MemoryStore> {
    let store = MemoryStore::new();
    store.queue(message, NOW).await.unwrap();
    let mailer = Mailer::smtp(&crate::mail::tests::plain(port), "dar@rp.example.net").unwrap();
    let callbacks = StatusCallbackClient::new(CallbackSettings::default()).unwrap();
    let notifier = MailerNotifier::new(mailer, mail());
    OutboxWorker::new(store, callbacks, Arc::new(notifier), RetryPolicy::default())
}

#[tokio::test]
async fn sends_the_notice_over_smtp_with_the_text_of_the_eml_file() {
    let (port, received) = crate::mail::tests::smtp_server(None).await;
    let notice = notification("alice@example.com", Some("laptop"));
    let worker = smtp_worker(port, &OutboxMessage::UserNotification(notice.clone())).await;
    let report = worker.run_once(NOW).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let id = worker.store().snapshot().unwrap().outbox[0].entry.id;
    let received = received.lock().unwrap();
    assert_eq!(received.rcpt, ["RCPT TO:<alice@example.com>"]);
    let data = &received.data[0];
    let message_id = format!("Message-ID: <dar-outbox-{}@rp.example.net>", id.0);
    assert!(data.contains(&message_id), "{data}");
    assert!(
        data.contains("Subject: A recovery token for ap.example.com was used"),
        "{data}"
    );
    let eml = render_eml(id, &notice, &mail(), "alice@example.com", NOW).unwrap();
    let (_, body) = eml.split_once("\r\n\r\n").unwrap();
    assert!(data.contains(&body.replace("\r\n", "\n")), "{data}");
}

#[tokio::test]
async fn a_notice_the_smtp_server_refuses_is_parked_and_a_busy_server_retried() {
    let notice = OutboxMessage::UserNotification(notification("alice@example.com", None));
    let (port, _) = crate::mail::tests::smtp_server(Some("550 no such user")).await;
    let worker = smtp_worker(port, &notice).await;
    let report = worker.run_once(NOW).await.unwrap();
    assert_eq!(report.given_up, 1, "{report:?}");
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.delivered_at, None);
    assert_eq!(row.next_attempt_at, NOW + PARKED_FOR);

    let (port, _) = crate::mail::tests::smtp_server(Some("451 try again later")).await;
    let worker = smtp_worker(port, &notice).await;
    let report = worker.run_once(NOW).await.unwrap();
    assert_eq!(report.retrying, 1, "{report:?}");
    let row = &worker.store().snapshot().unwrap().outbox[0];
    assert_eq!(row.delivered_at, None);
    assert!(row.next_attempt_at < NOW + PARKED_FOR);
}

#[test]
fn smtp_failures_map_to_delivery_errors_that_park_or_retry() {
    assert!(DeliveryError::MailRejected.is_permanent());
    assert!(!DeliveryError::MailUnavailable.is_permanent());
    assert_eq!(DeliveryError::MailRejected.code(), "notify_mail_rejected");
    assert_eq!(
        DeliveryError::MailUnavailable.code(),
        "notify_mail_unavailable"
    );
}
