//! A real HTTPS server on 127.0.0.1 (OS-assigned ports, a local CA), driven by reqwest with the
//! CA as its only root and redirects off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use dar_core::{CONFIGURATION_PATH, Configuration, SigningKey, TOKEN_STATUS_PATH};
use dar_server::config::Config;
use dar_server::security::CsrfForm;
use dar_server::{AppState, Running};
use reqwest::{Client, StatusCode, redirect};

struct Server {
    running: Running,
    client: Client,
    dir: PathBuf,
}

impl Server {
    fn https(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}{path}",
            self.running.https_addr().port()
        )
    }

    fn http(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.running.http_addr().unwrap().port()
        )
    }

    /// Shuts the server down, giving in-flight requests a second.
    async fn stop(self) {
        self.running.shutdown(Duration::from_secs(1)).await.unwrap();
    }
}

#[derive(serde::Deserialize)]
struct Note {
    #[allow(dead_code)]
    note: String,
}

/// Probe routes: a slow one (to be in flight during shutdown) and a CSRF-protected form.
fn probes() -> Router<AppState> {
    Router::new()
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                "done"
            }),
        )
        .route("/test/form", post(|_: CsrfForm<Note>| async { "saved" }))
}

/// Every log line of this test binary, in JSON, captured by a global subscriber installed before
/// any server starts (a global one: thread-local subscribers miss events from server tasks).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn log_text() -> String {
    String::from_utf8(logs().0.lock().unwrap().clone()).unwrap()
}

/// A fresh directory under cargo's per-target scratch space (reused by the next run).
fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-server-http")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start(name: &str) -> Server {
    start_with(name, "").await
}

/// As [`start`], with `extra` appended to `dar.toml`.
async fn start_with(name: &str, extra: &str) -> Server {
    logs();
    let dir = temp_dir(name);
    let ap = SigningKey::from_scalar_bytes(&[7; 32]).unwrap();
    let rp = SigningKey::from_scalar_bytes(&[8; 32]).unwrap();
    std::fs::write(dir.join("ap.pem"), ap.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("rp.pem"), rp.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("seal.hex"), "ab".repeat(32)).unwrap();
    std::fs::write(dir.join("session.hex"), "cd".repeat(64)).unwrap();
    std::fs::write(
        dir.join("dar.toml"),
        r#"listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
public_origin = "https://dar.test"
database = "sqlite::memory:"
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "tls"

[account_provider]
signing_keys = ["ap.pem"]
sealing_keys = [{ id = 1, file = "seal.hex" }]
allowed_recovery_providers = ["https://rp.example.net"]

[recovery_provider]
countersign_keys = ["rp.pem"]

[session]
key_file = "session.hex"
"#
        .to_owned()
            + extra,
    )
    .unwrap();
    #[cfg(unix)]
    for file in ["ap.pem", "rp.pem", "seal.hex", "session.hex"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join(file), mode).unwrap();
    }
    let config = Config::load(&dir.join("dar.toml")).unwrap();
    let state = AppState::load(&config).unwrap();
    let app = dar_server::app_with(state.clone(), probes());
    let running = dar_server::start(&config, &state, app).await.unwrap();
    let ca = std::fs::read(dir.join("tls/ca.pem")).unwrap();
    Server {
        running,
        client: client(&ca),
        dir,
    }
}

fn client(ca_pem: &[u8]) -> Client {
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn serves_the_configuration_document_over_https() {
    let server = start("config").await;
    let response = server
        .client
        .get(server.https(CONFIGURATION_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(header(&response, "cache-control"), "public, max-age=300");
    let body = response.bytes().await.unwrap();
    let doc = Configuration::from_json(&body, false).unwrap();
    assert_eq!(doc.issuer().as_str(), "https://dar.test");
    assert!(doc.account_provider().is_some() && doc.recovery_provider().is_some());
    server.stop().await;
}

#[tokio::test]
async fn plain_http_is_401_with_an_empty_body_and_never_redirects() {
    let server = start("http401").await;
    for (method, path) in [
        ("GET", CONFIGURATION_PATH),
        ("POST", TOKEN_STATUS_PATH),
        ("POST", "/dar/save-token"),
        ("POST", "/dar/recover-account-return"),
        ("GET", "/"),
    ] {
        let request = match method {
            "GET" => server.client.get(server.http(path)),
            _ => server.client.post(server.http(path)).body("token=abc"),
        };
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert!(
            response.headers().get("location").is_none(),
            "{method} {path}"
        );
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "{method} {path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn https_never_redirects_and_sends_the_security_headers() {
    let server = start("headers").await;
    for path in [
        CONFIGURATION_PATH,
        "/",
        "/dar/save-token",
        TOKEN_STATUS_PATH,
    ] {
        let response = server.client.get(server.https(path)).send().await.unwrap();
        assert!(!response.status().is_redirection(), "{path}");
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("form-action 'self' https:"), "{path}: {csp}");
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert_eq!(
            header(&response, "strict-transport-security"),
            "max-age=31536000"
        );
        if path != CONFIGURATION_PATH {
            assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let server = start("404").await;
    let response = server
        .client
        .get(server.https("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&response, "content-type"), "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["step"], "request");
    assert!(body["message"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn oversize_body_is_413() {
    let server = start("413").await;
    let body = vec![b'a'; 64 * 1024 + 1];
    let response = server
        .client
        .post(server.https("/test/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    server.stop().await;
}

#[tokio::test]
async fn state_changing_form_without_csrf_token_is_403() {
    let server = start("csrf").await;
    let response = server
        .client
        .post(server.https("/test/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("note=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "csrf_token_missing");
    assert_eq!(body["step"], "§6.5");
    // And one from another site is refused before the form is read.
    let response = server
        .client
        .post(server.https("/test/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body("note=hello&csrf_token=x")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "cross_site_request");
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let server = start("shutdown").await;
    let https_addr = server.running.https_addr();
    let url = server.https("/test/slow");
    let slow_client = server.client.clone();
    let in_flight = tokio::spawn(async move { slow_client.get(url).send().await });
    // Let the request reach the handler, then ask the server to stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = tokio::time::timeout(
        Duration::from_secs(5),
        server.running.shutdown(Duration::from_secs(10)),
    );
    let (response, stopped) = tokio::join!(in_flight, stopped);
    let response = response.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");
    stopped.expect("shutdown took too long").unwrap();
    // Once stopped, nothing listens any more.
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    let after = client(&ca)
        .get(format!(
            "https://127.0.0.1:{}{CONFIGURATION_PATH}",
            https_addr.port()
        ))
        .send()
        .await;
    assert!(after.is_err());
}

#[tokio::test]
async fn request_logs_hold_the_path_but_never_the_query() {
    let server = start("logs").await;
    let url = server.https("/log-probe/recover-account?code=SECRET123&token=AAAA");
    let response = server.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    server.stop().await;
    let logs = log_text();
    let line = logs
        .lines()
        .find(|l| l.contains("/log-probe/recover-account"))
        .unwrap_or_else(|| panic!("no access log line in {logs}"));
    assert!(line.contains("\"status\":404"), "{line}");
    assert!(line.contains("\"method\":\"GET\""), "{line}");
    assert!(line.contains("latency_ms"), "{line}");
    assert!(!logs.contains("SECRET123"), "{logs}");
    assert!(!logs.contains("token=AAAA"), "{logs}");
    // Starting and serving log no warnings (key files are 0600, the session key is configured);
    // only access lines of 5xx answers (other tests' token-status placeholder) are warnings.
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") && !l.contains("dar_server::access"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn speaks_tls_1_3_and_still_accepts_tls_1_2() {
    let server = start("tlsversions").await;
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    for (min, max) in [
        (
            reqwest::tls::Version::TLS_1_3,
            reqwest::tls::Version::TLS_1_3,
        ),
        (
            reqwest::tls::Version::TLS_1_2,
            reqwest::tls::Version::TLS_1_2,
        ),
    ] {
        let client = Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .tls_version_min(min)
            .tls_version_max(max)
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let response = client
            .get(server.https(CONFIGURATION_PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{min:?}");
    }
    server.stop().await;
}

/// Reads from `stream` until the server closes it (end of stream or an error such as a reset),
/// failing after a bound far beyond the timeout under test.
async fn closed_by_server(stream: &mut (impl tokio::io::AsyncRead + Unpin), what: &str) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1024];
    let bound = Duration::from_secs(60);
    let outcome = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // An HTTP/1.1 server may answer a timed-out request (408) before closing.
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "{what}: still open after {bound:?}");
}

fn tls_connector(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    tls_connector_offering(ca_pem, &[])
}

/// A TLS client trusting `ca_pem` and offering these ALPN protocols.
fn tls_connector_offering(ca_pem: &[u8], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem)
            .collect::<Result<_, _>>()
            .unwrap();
    roots.add_parsable_certificates(certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn slow_and_silent_clients_are_closed_by_the_client_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let server = start_with("slowclients", "\n[limits]\nclient_timeout_secs = 1\n").await;
    let addr = server.running.https_addr();
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    let connector = tls_connector(&ca);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();

    // A TCP connection that never starts the TLS handshake.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A TLS connection that never sends a request.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut idle = connector.connect(name.clone(), tcp).await.unwrap();
    // A TLS connection that starts a request and then stalls inside its headers.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stalled = connector.connect(name.clone(), tcp).await.unwrap();
    stalled
        .write_all(b"GET /.well-known/delegated-account-recovery/configuration HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    stalled.flush().await.unwrap();

    closed_by_server(&mut silent, "no TLS handshake").await;
    closed_by_server(&mut idle, "no request after the handshake").await;
    closed_by_server(&mut stalled, "headers never finished").await;

    // Meanwhile the server still answers.
    let response = server
        .client
        .get(server.https(CONFIGURATION_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn an_http2_connection_that_answers_pings_but_asks_nothing_more_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start_with("h2idle", "\n[limits]\nclient_timeout_secs = 1\n").await;
    let addr = server.running.https_addr();
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    let connector = tls_connector_offering(&ca, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface, an empty SETTINGS frame (RFC 9113 §3.4, §6.5) and one request: a
    // HEADERS frame on stream 1 ending the stream, its fields as HPACK literals without
    // indexing (RFC 7541 §6.2.2) after the indexed `:method GET` and `:scheme https`.
    let mut hpack = vec![0x82, 0x87];
    let authority = addr.to_string();
    for (index, value) in [(4u8, CONFIGURATION_PATH), (1, authority.as_str())] {
        hpack.push(index);
        hpack.push(u8::try_from(value.len()).unwrap());
        hpack.extend_from_slice(value.as_bytes());
    }
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    hello.extend_from_slice(&[
        0,
        0,
        u8::try_from(hpack.len()).unwrap(),
        0x1,
        0x5,
        0,
        0,
        0,
        1,
    ]);
    hello.extend_from_slice(&hpack);
    stream.write_all(&hello).await.unwrap();
    // Then every SETTINGS and PING the server sends is acknowledged, and nothing more asked.
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        let mut response_on_stream_1 = false;
        loop {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return response_on_stream_1;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return response_on_stream_1;
            }
            let (kind, ack, stream_id) = (head[3], head[4] & 1 == 1, head[8]);
            let reply: Option<Vec<u8>> = match (kind, ack) {
                // The response's HEADERS.
                (0x1, _) if stream_id == 1 => {
                    response_on_stream_1 = true;
                    None
                }
                // SETTINGS: acknowledge.
                (0x4, false) => Some(vec![0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]),
                // PING: answer with its payload.
                (0x6, false) => {
                    let mut pong = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
                    pong.extend_from_slice(&payload);
                    Some(pong)
                }
                // GOAWAY: the server is closing.
                (0x7, _) => return response_on_stream_1,
                _ => None,
            };
            if let Some(reply) = reply
                && stream.write_all(&reply).await.is_err()
            {
                return response_on_stream_1;
            }
        }
    })
    .await;
    let response_on_stream_1 =
        answered.expect("an idle HTTP/2 connection answering pings was still open after 30 s");
    assert!(response_on_stream_1, "the request was never answered");
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_client_cap_are_closed_before_tls() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start_with(
        "connectioncap",
        "\n[limits]\nconnections_per_address = 2\nclient_timeout_secs = 60\n",
    )
    .await;
    let addr = server.running.https_addr();
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    let connector = tls_connector(&ca);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector.connect(name.clone(), tcp).await
    };
    // Two connections from 127.0.0.1 are held open, TLS done, no request sent.
    let first = connect().await.unwrap();
    let _second = connect().await.unwrap();
    // A third from the same client is closed before its handshake can finish.
    let refused = connect().await;
    assert!(refused.is_err(), "a third connection completed TLS");
    // Once one closes, its place is given back (when the server has seen it go).
    drop(first);
    let mut admitted = None;
    for _ in 0..100 {
        if let Ok(stream) = connect().await {
            admitted = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = admitted.expect("no connection admitted after one closed");
    stream
        .write_all(
            format!(
                "GET {CONFIGURATION_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_by_the_client_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start_with("idlekeepalive", "\n[limits]\nclient_timeout_secs = 1\n").await;
    let ca = std::fs::read(server.dir.join("tls/ca.pem")).unwrap();
    let tcp = tokio::net::TcpStream::connect(server.running.https_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tls_connector(&ca).connect(name, tcp).await.unwrap();
    stream
        .write_all(
            format!("GET {CONFIGURATION_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    // The first answer arrives on the connection, which stays open (keep-alive)...
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    // ...until the client has been idle for the timeout.
    closed_by_server(&mut stream, "idle keep-alive connection").await;
    server.stop().await;
}
