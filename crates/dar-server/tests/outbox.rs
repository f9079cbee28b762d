//! The outbox worker against a real `dar_store::Store` (SQLite in memory; PostgreSQL too when
//! `DAR_TEST_POSTGRES_URL` is set) and real HTTPS receivers on 127.0.0.1.
//!
//! Each receiver has its own OS-assigned port, a leaf certificate for `localhost` signed by a CA
//! rcgen generates at test time, and records every connection and request it sees. Nothing
//! leaves the loopback interface. Time is injected: `run_once(now)` takes the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dar_core::{Origin, TokenId};
use dar_recovery_provider::{
    OutboxMessage, RecoveryProviderStore, StatusCallback, TokenStatus, UserId, UserNotification,
};
use dar_server::outbox::{
    CallbackSettings, DeliveryError, DeliveryReport, EmlFileNotifier, MailSettings, OutboxWorker,
    RetryPolicy, StatusCallbackClient,
};
use dar_store::Store;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:18 UTC);
const PATH: &str = "/.well-known/delegated-account-recovery/token-status";

// ---------------------------------------------------------------------------------------------
// Test PKI (as dar-discovery's tests/https.rs)

struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dar-server outbox test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key_der: leaf_key.serialize_der(),
    }
}

fn acceptor(pki: &Pki) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

// ---------------------------------------------------------------------------------------------
// Recording receiver

/// One request as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    body: String,
}

/// The status (and `Location`, for a redirect) to answer the n-th request (from 0) with.
type ReplyFn = Arc<dyn Fn(usize) -> (u16, Option<String>) + Send + Sync>;

struct Receiver {
    origin: Origin,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receiver(
    pki: &Pki,
    reply: impl Fn(usize) -> (u16, Option<String>) + Send + Sync + 'static,
) -> Receiver {
    let reply: ReplyFn = Arc::new(reply);
    let tls = acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = Origin::parse_development(&format!("https://localhost:{port}")).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = Receiver {
        origin,
        connections: Arc::clone(&connections),
        seen: Arc::clone(&seen),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            let reply = Arc::clone(&reply);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let reply = Arc::clone(&reply);
                    let seen = Arc::clone(&seen);
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let index = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(Seen {
                                method,
                                path,
                                content_type,
                                body: String::from_utf8(body.to_vec()).unwrap(),
                            });
                            seen.len() - 1
                        };
                        let (status, location) = reply(index);
                        let mut response = Response::builder().status(status);
                        if let Some(location) = location {
                            response = response.header("location", location);
                        }
                        Ok::<_, Infallible>(
                            response.body(Full::new(Bytes::from_static(b"ok"))).unwrap(),
                        )
                    }
                });
                if let Ok(stream) = tls.accept(stream).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        }
    });
    server
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn settings(pki: &Pki, allow_non_public: bool) -> CallbackSettings {
    let mut settings = CallbackSettings::default();
    settings.danger_allow_non_public_addresses = allow_non_public;
    settings.extra_root_certificates = vec![pki.ca_pem.clone().into_bytes()];
    settings
}

fn mail() -> MailSettings {
    MailSettings::new(
        "dar@rp.example.net",
        "Example RP",
        "https://rp.example.net/dar/recoveries",
    )
    .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("dar-server-outbox-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn worker(store: Store, settings: CallbackSettings, mail_dir: PathBuf) -> OutboxWorker<Store> {
    let callbacks = StatusCallbackClient::new(settings).unwrap();
    let notifier = EmlFileNotifier::new(mail_dir, mail());
    OutboxWorker::new(store, callbacks, Arc::new(notifier), RetryPolicy::default())
}

fn callback(issuer: &Origin, status: TokenStatus) -> OutboxMessage {
    OutboxMessage::TokenStatus(StatusCallback {
        issuer: issuer.clone(),
        token_id: TokenId::new([0xab; 16]),
        status,
        countersigned_id: None,
    })
}

fn status_callback(issuer: &Origin) -> StatusCallback {
    StatusCallback {
        issuer: issuer.clone(),
        token_id: TokenId::new([0xab; 16]),
        status: TokenStatus::Deleted,
        countersigned_id: None,
    }
}

fn seconds(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn report(delivered: u32, retrying: u32, given_up: u32) -> DeliveryReport {
    DeliveryReport {
        delivered,
        retrying,
        given_up,
    }
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn delivers_once_and_never_sends_again() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("dar_server=trace,dar_discovery=trace")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let pki = pki();
    for store in dar_store::testing::stores("outbox_delivers_once")
        .await
        .unwrap()
    {
        let ap = receiver(&pki, |_| (204, None)).await;
        store
            .queue(&callback(&ap.origin, TokenStatus::SaveSuccess), NOW)
            .await
            .unwrap();
        let worker = worker(store, settings(&pki, true), temp_dir("delivers-once"));

        assert_eq!(worker.run_once(NOW).await.unwrap(), report(1, 0, 0));
        assert_eq!(
            ap.seen(),
            vec![Seen {
                method: "POST".to_owned(),
                path: PATH.to_owned(),
                content_type: Some("application/x-www-form-urlencoded".to_owned()),
                body: format!("id={}&status=save-success", "ab".repeat(16)),
            }]
        );
        // Marked delivered: never due again, never sent again.
        assert!(
            worker
                .store()
                .pending_outbox(10, NOW + time::Duration::days(365))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            worker
                .run_once(NOW + seconds(3600))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ap.seen().len(), 1);
    }

    // The happy path logs the outcome with the outbox id, no warning, and never the token id
    // or the form body.
    let text = logs.text();
    assert!(text.contains("outbox message delivered"), "{text}");
    assert!(text.contains("outbox_id="), "{text}");
    assert!(!text.contains("WARN"), "{text}");
    assert!(!text.contains(&"ab".repeat(16)), "{text}");
    assert!(!text.contains("status=save-success"), "{text}");
}

#[tokio::test]
async fn retries_a_failing_receiver_after_the_backoff_not_before() {
    let pki = pki();
    for store in dar_store::testing::stores("outbox_retries").await.unwrap() {
        // 500 twice, then 200.
        let ap = receiver(&pki, |n| (if n < 2 { 500 } else { 200 }, None)).await;
        store
            .queue(&callback(&ap.origin, TokenStatus::Deleted), NOW)
            .await
            .unwrap();
        let worker = worker(store, settings(&pki, true), temp_dir("retries"));

        assert_eq!(worker.run_once(NOW).await.unwrap(), report(0, 1, 0));
        assert_eq!(ap.seen().len(), 1);
        let pending = worker
            .store()
            .pending_outbox(10, NOW + seconds(30))
            .await
            .unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].attempts, 1);

        // Not before the first backoff (30 s).
        assert!(worker.run_once(NOW + seconds(29)).await.unwrap().is_empty());
        assert_eq!(ap.seen().len(), 1);

        // At 30 s: sent again, fails again; the next wait is 60 s.
        assert_eq!(
            worker.run_once(NOW + seconds(30)).await.unwrap(),
            report(0, 1, 0)
        );
        assert_eq!(ap.seen().len(), 2);
        assert!(
            worker
                .run_once(NOW + seconds(30 + 59))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ap.seen().len(), 2);

        // At 90 s: the receiver accepts; delivered, and never again.
        assert_eq!(
            worker.run_once(NOW + seconds(30 + 60)).await.unwrap(),
            report(1, 0, 0)
        );
        assert_eq!(ap.seen().len(), 3);
        assert!(
            worker
                .run_once(NOW + time::Duration::days(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ap.seen().len(), 3);
        assert!(ap.seen().iter().all(|s| s.body == ap.seen()[0].body));
    }
}

#[tokio::test]
async fn does_not_follow_a_redirect() {
    let pki = pki();
    for store in dar_store::testing::stores("outbox_redirect").await.unwrap() {
        let target = receiver(&pki, |_| (200, None)).await;
        let location = format!("{}{PATH}", target.origin);
        let ap = receiver(&pki, move |_| (307, Some(location.clone()))).await;
        store
            .queue(&callback(&ap.origin, TokenStatus::Deleted), NOW)
            .await
            .unwrap();
        let worker = worker(store, settings(&pki, true), temp_dir("redirect"));

        assert_eq!(worker.run_once(NOW).await.unwrap(), report(0, 1, 0));
        assert_eq!(ap.seen().len(), 1);
        assert_eq!(target.connections(), 0, "the redirect was followed");
        let pending = worker
            .store()
            .pending_outbox(10, NOW + seconds(30))
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "a redirect is not delivery");
    }
}

#[tokio::test]
async fn refuses_a_non_public_receiver_before_connecting() {
    let pki = pki();
    for store in dar_store::testing::stores("outbox_non_public")
        .await
        .unwrap()
    {
        let ap = receiver(&pki, |_| (200, None)).await;
        // By name (`localhost` resolves to loopback) and by address literal.
        let literal = Origin::parse_development(&format!(
            "https://127.0.0.1:{}",
            ap.origin.as_str().rsplit(':').next().unwrap()
        ))
        .unwrap();
        store
            .queue(&callback(&ap.origin, TokenStatus::Deleted), NOW)
            .await
            .unwrap();
        store
            .queue(&callback(&literal, TokenStatus::Deleted), NOW)
            .await
            .unwrap();
        let worker = worker(store, settings(&pki, false), temp_dir("non-public"));

        assert_eq!(worker.run_once(NOW).await.unwrap(), report(0, 2, 0));
        assert_eq!(ap.connections(), 0);
        assert!(ap.seen().is_empty());
    }
}

#[tokio::test]
async fn writes_the_user_notification_as_an_eml_file() {
    let pki = pki();
    for (i, store) in dar_store::testing::stores("outbox_notification")
        .await
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let notification = UserNotification {
            user: UserId::new("alice@example.org"),
            issuer: Origin::parse("https://ap.example.com").unwrap(),
            token_id: TokenId::new([0xab; 16]),
            countersigned_id: TokenId::new([0xcd; 16]),
            nickname: Some("work laptop\r\nBcc: mallory@evil.example".to_owned()),
            at: datetime!(2026-11-22 15:30:00 UTC),
        };
        let id = store
            .queue(&OutboxMessage::UserNotification(notification), NOW)
            .await
            .unwrap();
        let dir = temp_dir(&format!("notification-{i}"));
        let worker = worker(store, settings(&pki, false), dir.clone());

        assert_eq!(worker.run_once(NOW).await.unwrap(), report(1, 0, 0));
        let eml = std::fs::read_to_string(dir.join(format!("outbox-{}.eml", id.0))).unwrap();
        let (head, body) = eml.split_once("\r\n\r\n").unwrap();
        let headers: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            headers,
            vec![
                "From: dar@rp.example.net",
                "To: alice@example.org",
                "Subject: A recovery token for ap.example.com was used",
                "Date: Sun, 22 Nov 2026 15:31:18 +0000",
                &format!("Message-ID: <dar-outbox-{}@rp.example.net>", id.0),
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: 8bit",
                "Auto-Submitted: auto-generated",
            ]
        );
        assert!(body.contains("Account provider: https://ap.example.com\r\n"));
        assert!(body.contains("\"work laptop\u{FFFD}\u{FFFD}Bcc: mallory@evil.example\""));
        assert!(body.contains("Used at:          Sun, 22 Nov 2026 15:30:00 +0000\r\n"));
        assert!(body.contains(&format!(
            "https://rp.example.net/dar/recoveries?countersigned_id={}\r\n",
            "cd".repeat(16)
        )));
        // Delivered: not written again.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            worker
                .run_once(NOW + seconds(3600))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!dir.exists());
    }
}

#[tokio::test]
async fn client_names_each_failure() {
    let pki = pki();
    let allowed = StatusCallbackClient::new(settings(&pki, true)).unwrap();
    let refusing = StatusCallbackClient::new(settings(&pki, false)).unwrap();

    let failing = receiver(&pki, |_| (500, None)).await;
    assert_eq!(
        allowed.send(&status_callback(&failing.origin)).await,
        Err(DeliveryError::Status(500))
    );

    let redirecting = receiver(&pki, |_| (302, Some("https://example.com/".to_owned()))).await;
    assert_eq!(
        allowed.send(&status_callback(&redirecting.origin)).await,
        Err(DeliveryError::Redirected { status: 302 })
    );

    let ok = receiver(&pki, |_| (200, None)).await;
    assert_eq!(
        refusing.send(&status_callback(&ok.origin)).await,
        Err(DeliveryError::NonPublicAddress)
    );
    let port = ok.origin.as_str().rsplit(':').next().unwrap();
    let literal = Origin::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    assert_eq!(
        refusing.send(&status_callback(&literal)).await,
        Err(DeliveryError::NonPublicAddress)
    );
    assert_eq!(ok.connections(), 0);

    // A receiver whose certificate no configured root vouches for.
    let untrusting = StatusCallbackClient::new({
        let mut s = CallbackSettings::default();
        s.danger_allow_non_public_addresses = true;
        s
    })
    .unwrap();
    assert_eq!(
        untrusting.send(&status_callback(&ok.origin)).await,
        Err(DeliveryError::Tls)
    );
    assert!(ok.seen().is_empty());
    assert_eq!(allowed.send(&status_callback(&ok.origin)).await, Ok(()));
}
