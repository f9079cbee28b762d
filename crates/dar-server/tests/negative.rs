//! Refusals over real HTTPS on loopback, each checking the status, the specific error (its
//! code and message, on the HTML page a browser gets or in the JSON a program gets) and that
//! nothing stored changed: a tampered token, a replayed countersigned token, a countersigned
//! token for another account provider, stale and future-dated tokens, configuration servers
//! that redirect or answer plain http, a missing CSRF token, GET on recover-account-return, a
//! forged token-status call and an oversize body.
//!
//! Forged tokens are built with dar-core and the deployments' own key files, with the
//! `issued_time` wanted (the handlers read the wall clock, so time is moved in the token, not
//! in the server). The tests run on SQLite and, when `DAR_TEST_POSTGRES_URL` is set, on
//! PostgreSQL too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use common::{Backend, Pair};
use dar_account_provider::AccountProviderStore as _;
use dar_core::{
    CONFIGURATION_PATH, IssuedTime, MAX_TOKEN_LEN, Options, Origin, SigningKey, TOKEN_STATUS_PATH,
    Token, TokenId, TokenType, TokenView, decode_base64,
};
use dar_discovery::{ConfigSource as _, DiscoveryError};
use dar_recovery_provider::{
    RecoveryProviderStore as _, SaveForm, SaveOptions, SaveOutcome, UserId,
};
use dar_server::demo::{
    BROWSER_ACCEPT, Browser, DeploymentSpec, Page, Role, free_port, start_deployment,
};
use reqwest::StatusCode;
use time::OffsetDateTime;

/// The id every forged countersigned token carries, to look for in the replay guard.
const FORGED_ID: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

/// What the two deployments store about the test's users, to compare before and after a
/// refused request.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    /// The account provider's token records of `alice`: (id, state).
    ap_tokens: Vec<(String, String)>,
    ap_recoveries: usize,
    ap_audit: usize,
    /// The recovery provider's saved tokens of `rita`: ids.
    rp_tokens: Vec<String>,
    rp_recoveries: usize,
    /// The recovery provider's undelivered outbox messages (status callbacks, notices).
    rp_outbox: usize,
}

async fn stored(pair: &Pair) -> Stored {
    let ap = pair.ap.state.store().unwrap();
    let alice = ap.account_by_username("alice").await.unwrap().unwrap();
    let alice = alice.id.to_string();
    let rp = pair.rp.state.store().unwrap();
    let rita = rp.account_by_username("rita").await.unwrap().unwrap();
    let rita = UserId::new(rita.id.to_string());
    Stored {
        ap_tokens: ap
            .tokens_for_account(&alice)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.token_id.to_string(), t.state.to_string()))
            .collect(),
        ap_recoveries: ap.recoveries_for_account(&alice).await.unwrap().len(),
        ap_audit: ap.audit_for_account(&alice).await.unwrap().len(),
        rp_tokens: rp
            .list_tokens(&rita)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.token_id.to_string())
            .collect(),
        rp_recoveries: rp.list_recoveries(&rita).await.unwrap().len(),
        rp_outbox: rp
            .pending_outbox(1000, OffsetDateTime::now_utc() + time::Duration::days(1))
            .await
            .unwrap()
            .len(),
    }
}

/// Whether the account provider's replay guard holds the forged countersigned id.
async fn forged_id_guarded(pair: &Pair) -> bool {
    let ap = pair.ap.state.store().unwrap();
    ap.is_replayed(TokenId::from_hex(FORGED_ID).unwrap())
        .await
        .unwrap()
}

/// The token form the account provider shows after "set up account recovery" (§3.1): the
/// recovery provider's save-token URL, the token and the state.
async fn issue(pair: &mut Pair) -> (String, String, String) {
    let apo = pair.apo.clone();
    let page = pair
        .browser
        .get(&format!("{apo}/ap/recovery/setup"))
        .await
        .unwrap();
    let page = pair
        .browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("recovery_provider", &pair.rpo),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (
        page.form_action().unwrap(),
        page.field("token").unwrap(),
        page.field("state").unwrap(),
    )
}

/// Issues a token and saves it at the recovery provider, confirmed; returns the token.
async fn save(pair: &mut Pair) -> String {
    let (save_url, token, state) = issue(pair).await;
    let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
    let page = pair
        .browser
        .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
        .await
        .unwrap();
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    let page = pair.browser.get(&confirm_url).await.unwrap();
    let page = pair
        .browser
        .post(
            &confirm_url,
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("action", "save"),
            ],
        )
        .await
        .unwrap();
    let back = page.location.unwrap();
    let page = pair.browser.get(&back).await.unwrap();
    assert!(
        page.body.contains("saved your recovery token"),
        "{}",
        page.body
    );
    token
}

/// The recovery provider's countersigned token for the saved token (§3.4), not yet sent:
/// the account provider's recover-account-return URL and the token.
async fn countersigned(pair: &mut Pair) -> (String, String) {
    let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
    let issuer = serde_urlencoded::to_string([("issuer", &apo)]).unwrap();
    let page = pair
        .browser
        .get(&format!("{rpo}/dar/recover-account?{issuer}"))
        .await
        .unwrap();
    let page = pair
        .browser
        .post(
            &format!("{rpo}/rp/recover"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("issuer", &page.field("issuer").unwrap()),
                ("token_id", &page.field("token_id").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (
        page.form_action().unwrap(),
        page.field("countersigned-token").unwrap(),
    )
}

fn key_of(deployment: &dar_server::demo::Deployment) -> SigningKey {
    let pem = std::fs::read_to_string(deployment.dir.join("key.pem")).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn origin(text: &str) -> Origin {
    Origin::parse_development(text).unwrap()
}

/// A countersigned token over `token` (base64) as the recovery provider `pair.rp` would make
/// it, but addressed to `audience` and issued at `issued`.
fn forge_countersigned(pair: &Pair, token: &str, audience: &str, issued: OffsetDateTime) -> String {
    let outer = Token {
        token_type: TokenType::Countersigned,
        token_id: TokenId::from_hex(FORGED_ID).unwrap(),
        options: Options::NONE,
        issuer: origin(&pair.rpo),
        audience: origin(audience),
        issued_time: IssuedTime::from_instant(issued),
        data: decode_base64(token, MAX_TOKEN_LEN).unwrap(),
        binding: Vec::new(),
    };
    outer
        .sign(&key_of(&pair.rp), MAX_TOKEN_LEN)
        .unwrap()
        .to_base64()
}

/// A recovery token as the account provider `pair.ap` would issue it for `pair.rp`, but issued
/// at `issued`.
fn forge_recovery_token(pair: &Pair, issued: OffsetDateTime) -> String {
    Token::recovery(
        TokenId::from_hex(FORGED_ID).unwrap(),
        Options::NONE,
        origin(&pair.apo),
        origin(&pair.rpo),
        issued,
        b"opaque".to_vec(),
    )
    .sign(&key_of(&pair.ap), MAX_TOKEN_LEN)
    .unwrap()
    .to_base64()
}

/// The answer is the HTML error page a browser gets, with this code.
fn assert_page_code(page: &Page, code: &str) {
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    assert_eq!(page.error().unwrap().0, code, "{}", page.body);
}

/// A reqwest client trusting the pair's local CA, redirects off.
fn client(pair: &Pair) -> reqwest::Client {
    let ca_file = pair.ap.dir.parent().unwrap().join("tls").join("ca.pem");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_tampered_token_is_not_saved() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_tampered", &backend, "").await;
        let (save_url, token, state) = issue(&mut pair).await;
        let before = stored(&pair).await;
        // Flip a bit of the signature's last byte: still DER, no longer the issuer's signature.
        let mut bytes = decode_base64(&token, MAX_TOKEN_LEN).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let tampered = base64_standard(&bytes);
        let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
        let page = pair
            .browser
            .post_cross_site(&apo, &save_url, &[("token", &tampered), ("state", &state)])
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let parked = format!("{rpo}{}", page.location.unwrap());
        // §3.1: the recovery provider refuses and sends the browser back with save-failure
        // (the reason is not for the account provider's page); it saved nothing.
        let page = pair.browser.get(&parked).await.unwrap();
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let back = page.location.unwrap();
        let expected =
            serde_urlencoded::to_string([("status", "save-failure"), ("state", &state)]).unwrap();
        assert_eq!(back, format!("{apo}/dar/save-token-return?{expected}"));
        assert_eq!(stored(&pair).await, before);
        assert_eq!(
            refusal_at_the_recovery_provider(&pair, tampered).await,
            "signature_invalid"
        );
        assert_eq!(stored(&pair).await, before);
        // The parked request was used up: it cannot be retried.
        let page = pair.browser.get(&parked).await.unwrap();
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
        assert_page_code(&page, "not_found");
        // The account provider tells the user, and records the failure against its token.
        let page = pair.browser.get(&back).await.unwrap();
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("did not save"), "{}", page.body);
        let after = stored(&pair).await;
        let token_id = &before.ap_tokens[0].0;
        assert_eq!(before.ap_tokens, [(token_id.clone(), "issued".to_owned())]);
        assert_eq!(
            after.ap_tokens,
            [(token_id.clone(), "save_failed".to_owned())]
        );
        assert!(after.rp_tokens.is_empty());
        assert_eq!(after.rp_outbox, before.rp_outbox);
        pair.stop().await;
    }
}

/// The code of the recovery provider role's refusal of `token`, asked directly: over HTTP
/// the account provider only learns save-failure (§3.1), so the tests check the reason here.
async fn refusal_at_the_recovery_provider(pair: &Pair, token: String) -> &'static str {
    let rp = pair.rp.state.recovery_provider().unwrap();
    let store = pair.rp.state.store().unwrap();
    let rita = store.account_by_username("rita").await.unwrap().unwrap();
    let outcome = rp
        .save(
            &UserId::new(rita.id.to_string()),
            &SaveForm::with_token(token),
            SaveOptions::default(),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    match outcome {
        SaveOutcome::Refused { error, .. } => error.code(),
        _ => panic!("the recovery provider would not refuse the token"),
    }
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn stale_and_future_recovery_tokens_are_not_saved() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_save_time", &backend, "").await;
        let before = stored(&pair).await;
        let now = OffsetDateTime::now_utc();
        let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
        let save_url = format!("{rpo}/dar/save-token");
        for (issued, code) in [
            (now - time::Duration::hours(2), "stale"),
            (now + time::Duration::hours(1), "issued_in_future"),
        ] {
            let token = forge_recovery_token(&pair, issued);
            let page = pair
                .browser
                .post_cross_site(&apo, &save_url, &[("token", &token), ("state", "s")])
                .await
                .unwrap();
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
            let parked = format!("{rpo}{}", page.location.unwrap());
            let page = pair.browser.get(&parked).await.unwrap();
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{code}: {}", page.body);
            assert_eq!(
                page.location.unwrap(),
                format!("{apo}/dar/save-token-return?status=save-failure&state=s"),
                "{code}"
            );
            // The reason stays at the recovery provider (§3.1 sends only save-failure back).
            assert_eq!(refusal_at_the_recovery_provider(&pair, token).await, code);
            assert_eq!(stored(&pair).await, before);
        }
        pair.stop().await;
    }
}

#[tokio::test]
async fn a_replayed_countersigned_token_is_refused_the_second_time() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_replayed", &backend, "").await;
        save(&mut pair).await;
        let (return_url, countersigned) = countersigned(&mut pair).await;
        let rpo = pair.rpo.clone();
        let page = pair
            .browser
            .post_cross_site(
                &rpo,
                &return_url,
                &[("countersigned-token", &countersigned)],
            )
            .await
            .unwrap();
        // Accepted: the evidence is parked for the browser's lockout recovery.
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(
            page.location
                .as_deref()
                .is_some_and(|l| l.starts_with("/recovery/continue?id=")),
            "{:?}",
            page.location
        );
        let after_first = stored(&pair).await;
        assert_eq!(after_first.ap_recoveries, 1);
        let page = pair
            .browser
            .post_cross_site(
                &rpo,
                &return_url,
                &[("countersigned-token", &countersigned)],
            )
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert_page_code(&page, "replayed");
        assert!(page.body.contains("replayed"), "{}", page.body);
        assert_eq!(stored(&pair).await, after_first);
        pair.stop().await;
    }
}

#[tokio::test]
async fn countersigned_tokens_for_another_provider_or_out_of_time_are_refused() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_countersigned", &backend, "").await;
        let token = save(&mut pair).await;
        let before = stored(&pair).await;
        let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
        let return_url = format!("{apo}/dar/recover-account-return");
        let now = OffsetDateTime::now_utc();
        for (audience, issued, code) in [
            (
                "https://ap.other.example",
                now,
                "audience_not_this_provider",
            ),
            (apo.as_str(), now - time::Duration::hours(2), "stale"),
            (
                apo.as_str(),
                now + time::Duration::hours(1),
                "issued_in_future",
            ),
        ] {
            let forged = forge_countersigned(&pair, &token, audience, issued);
            let page = pair
                .browser
                .post_cross_site(&rpo, &return_url, &[("countersigned-token", &forged)])
                .await
                .unwrap();
            assert_eq!(
                page.status,
                StatusCode::BAD_REQUEST,
                "{code}: {}",
                page.body
            );
            assert_page_code(&page, code);
            assert_eq!(stored(&pair).await, before, "{code}");
            assert!(!forged_id_guarded(&pair).await, "{code}");
        }
        // The genuine token still works afterwards: the refusals used nothing up.
        let (return_url, countersigned) = countersigned(&mut pair).await;
        let page = pair
            .browser
            .post_cross_site(
                &rpo,
                &return_url,
                &[("countersigned-token", &countersigned)],
            )
            .await
            .unwrap();
        // Accepted: the evidence is parked for the browser's lockout recovery.
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(
            page.location
                .as_deref()
                .is_some_and(|l| l.starts_with("/recovery/continue?id=")),
            "{:?}",
            page.location
        );
        pair.stop().await;
    }
}

#[tokio::test]
async fn recover_account_return_refuses_get_and_oversize_bodies() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_return_request", &backend, "").await;
        save(&mut pair).await;
        let before = stored(&pair).await;
        let return_url = format!("{}/dar/recover-account-return", pair.apo);
        let client = client(&pair);

        // GET: 405 with `Allow: POST`, a page for a browser, JSON for a program.
        let response = client
            .get(&return_url)
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = Page {
            status: response.status(),
            location: None,
            body: response.text().await.unwrap(),
        };
        assert_page_code(&page, "method_not_allowed");
        assert!(
            page.body.contains("<h1>Method Not Allowed</h1>"),
            "{}",
            page.body
        );
        let (_, message) = page.error().unwrap();
        assert_eq!(
            message,
            "recover-account-return accepts POST only: the countersigned token must not \
             travel in a URL (§3.5)"
        );
        let response = client
            .get(&return_url)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["step"], "request");
        assert!(
            body["message"].as_str().unwrap().contains("POST only"),
            "{body}"
        );

        // A body over the route's 16 KiB limit.
        let rpo = pair.rpo.clone();
        let big = "A".repeat(20 * 1024);
        let page = pair
            .browser
            .post_cross_site(&rpo, &return_url, &[("countersigned-token", &big)])
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.body);
        assert_page_code(&page, "payload_too_large");
        assert!(
            page.body
                .contains("the request body is too large for this endpoint"),
            "{}",
            page.body
        );
        assert_eq!(stored(&pair).await, before);
        pair.stop().await;
    }
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let mut pair = Pair::start("neg_csrf", &Backend::Sqlite, "").await;
    let before = stored(&pair).await;
    let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
    let page = pair
        .browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[("recovery_provider", &rpo)],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert_page_code(&page, "csrf_token_missing");
    assert!(page.body.contains("the form has no CSRF token"));
    assert_eq!(stored(&pair).await, before);
    pair.stop().await;
}

#[tokio::test]
async fn forged_token_status_calls_are_refused() {
    for backend in Backend::all() {
        let mut pair = Pair::start("neg_token_status", &backend, "").await;
        let token = save(&mut pair).await;
        let token_id = TokenView::decode(&decode_base64(&token, MAX_TOKEN_LEN).unwrap())
            .unwrap()
            .token_id()
            .to_string();
        let before = stored(&pair).await;
        let status_url = format!("{}{TOKEN_STATUS_PATH}", pair.apo);
        let client = client(&pair);
        // From this test's address, which no recovery provider uses (the account provider
        // takes its peer's calls from 192.0.2.0/24 only); a browser's Accept still gets JSON.
        for (id, status, expected, code) in [
            (
                "not-hex",
                "deleted",
                StatusCode::BAD_REQUEST,
                "malformed_status",
            ),
            (
                FORGED_ID,
                "deleted",
                StatusCode::FORBIDDEN,
                "forbidden_address",
            ),
            (
                token_id.as_str(),
                "deleted",
                StatusCode::FORBIDDEN,
                "forbidden_address",
            ),
        ] {
            let response = client
                .post(&status_url)
                .header("accept", BROWSER_ACCEPT)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string([("id", id), ("status", status)]).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), expected, "{id}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["code"], code, "{id}: {body}");
            assert!(body["step"].as_str().unwrap().contains("3.6"), "{body}");
            assert_eq!(stored(&pair).await, before, "{id}");
        }
        pair.stop().await;
    }
}

/// A stand-in server: its task, and for an HTTP server the handle that closes its
/// connections (the account provider's client keeps connections alive across requests).
struct StandIn {
    task: tokio::task::JoinHandle<()>,
    handle: Option<axum_server::Handle<std::net::SocketAddr>>,
}

impl StandIn {
    /// Stops it and waits until its listener and every connection are closed, so the port
    /// can serve the next one.
    async fn stop(self) {
        match self.handle {
            Some(handle) => handle.shutdown(),
            None => self.task.abort(),
        }
        let _ = self.task.await;
    }
}

/// Serves `app` over HTTPS on `port` with the account provider `ap`'s certificate (its local
/// names include the recovery provider's host), standing in for the recovery provider's
/// configuration server.
fn tls_server(ap: &dar_server::demo::Deployment, port: u16, app: Router) -> StandIn {
    let tls =
        dar_server::tls::server_config_for(&ap.config.tls, &ap.config.local_tls_names()).unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .unwrap()
    .handle(handle.clone());
    let task = tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    StandIn {
        task,
        handle: Some(handle),
    }
}

/// A configuration server whose configuration path redirects to `/moved`, whose requests it
/// counts.
fn redirecting_server(ap: &dar_server::demo::Deployment, port: u16) -> (Arc<AtomicUsize>, StandIn) {
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let app = Router::new()
        .route(CONFIGURATION_PATH, get(|| async { Redirect::to("/moved") }))
        .route(
            "/moved",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "{}" }
            }),
        );
    (followed, tls_server(ap, port, app))
}

/// A server that answers plain http where https is expected.
async fn plain_http_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().fallback(|| async { "{}" });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

/// An account provider whose one allowed recovery provider's port is only reserved (nothing
/// listens there until a test serves something), with `alice` signed up and signed in.
struct LoneAccountProvider {
    ap: dar_server::demo::Deployment,
    browser: Browser,
    rp_port: u16,
    alice: String,
}

impl LoneAccountProvider {
    async fn start(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("dar-server-negative")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let rp_port = free_port().unwrap();
        let ap_port = free_port().unwrap();
        let ap = start_deployment(&DeploymentSpec {
            dir: dir.clone(),
            ca_dir: dir.join("tls"),
            role: Role::AccountProvider,
            port: ap_port,
            peer_port: rp_port,
            status_addresses: vec!["192.0.2.0/24".to_owned()],
            extra: String::new(),
        })
        .await
        .unwrap();
        let ca = std::fs::read(dir.join("tls").join("ca.pem")).unwrap();
        let mut browser = Browser::new(&ca).unwrap();
        browser.sign_up(&ap.origin, "alice").await.unwrap();
        let alice = ap
            .state
            .store()
            .unwrap()
            .account_by_username("alice")
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string();
        Self {
            ap,
            browser,
            rp_port,
            alice,
        }
    }

    fn rp_origin(&self) -> String {
        format!("https://{}:{}", Role::RecoveryProvider.host(), self.rp_port)
    }

    /// Submits `path`'s form (`/ap/recovery/setup` or `/ap/recovery/lost`) choosing the
    /// recovery provider, which makes the account provider fetch its configuration.
    async fn choose_recovery_provider(&mut self, path: &str) -> Page {
        let url = format!("{}{path}", self.ap.origin);
        let page = self.browser.get(&url).await.unwrap();
        let rpo = self.rp_origin();
        self.browser
            .post(
                &url,
                &[
                    ("csrf_token", &page.field("csrf_token").unwrap()),
                    ("recovery_provider", &rpo),
                ],
            )
            .await
            .unwrap()
    }

    /// Both forms are refused with the error `code` and `message`, and nothing is stored.
    async fn assert_refused(&mut self, code: &str, message: &str) {
        for path in ["/ap/recovery/setup", "/ap/recovery/lost"] {
            let page = self.choose_recovery_provider(path).await;
            assert_eq!(
                page.status,
                StatusCode::BAD_GATEWAY,
                "{path}: {}",
                page.body
            );
            assert_page_code(&page, code);
            assert!(page.body.contains(message), "{path}: {}", page.body);
            let store = self.ap.state.store().unwrap();
            assert!(
                store
                    .tokens_for_account(&self.alice)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .audit_for_account(&self.alice)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    async fn stop(self) {
        self.ap.running.shutdown(Duration::ZERO).await.unwrap();
    }
}

#[tokio::test]
async fn configuration_servers_that_redirect_or_speak_plain_http_are_refused() {
    let mut lone = LoneAccountProvider::start("discovery").await;
    // The recovery provider's port was only reserved: serve the redirect there now.
    let (followed, redirector) = redirecting_server(&lone.ap, lone.rp_port);
    lone.assert_refused(
        "config_unavailable",
        "the origin answered with a redirect (303)",
    )
    .await;
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );

    // The same discovery client, asked about a server that answers plain http.
    let (plain_port, plain) = plain_http_server().await;
    let discovery = lone.ap.state.discovery().unwrap();
    let error = discovery
        .configuration(&origin(&format!("https://localhost:{plain_port}")))
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Tls), "{error:?}");
    let error = discovery
        .configuration(&origin(&lone.rp_origin()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Redirected { status: 303 }),
        "{error:?}"
    );

    redirector.stop().await;
    plain.abort();
    lone.stop().await;
}

/// Issue 7, "Faults": the other side's configuration server down, slow or answering garbage.
/// Each request fails on its own timeout or check, with the reason on the page, well before the
/// server's own request timeout (whose answer would be a 503, not this 502),
/// and nothing is stored; no failure is cached, so the next request asks again.
#[tokio::test]
async fn configuration_servers_that_are_down_slow_or_garbled_fail_with_the_reason() {
    let mut lone = LoneAccountProvider::start("discovery-faults").await;
    let port = lone.rp_port;

    // Down: nothing listens.
    lone.assert_refused("config_unavailable", "could not connect to the origin")
        .await;

    // Garbage: a 200 whose JSON body is not JSON, then one that is not JSON at all.
    let garbled = Router::new().route(
        CONFIGURATION_PATH,
        get(|| async {
            (
                [("content-type", "application/json")],
                b"{\"issuer\": \x00\xff]]".to_vec(),
            )
        }),
    );
    let server = tls_server(&lone.ap, port, garbled);
    lone.assert_refused(
        "config_invalid",
        "invalid configuration document: malformed input",
    )
    .await;
    server.stop().await;
    let html = Router::new().route(
        CONFIGURATION_PATH,
        get(|| async { axum::response::Html("<h1>Welcome</h1>") }),
    );
    let server = tls_server(&lone.ap, port, html);
    lone.assert_refused("config_unavailable", "the response is not application/json")
        .await;
    server.stop().await;

    // Slow: the headers never come (the handler outlives the discovery client's timeout).
    let slow = Router::new().route(
        CONFIGURATION_PATH,
        get(|| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            "{}"
        }),
    );
    let server = tls_server(&lone.ap, port, slow);
    lone.assert_refused("config_unavailable", "the origin took too long to answer")
        .await;
    server.stop().await;

    // Slower still: connections are accepted and the TLS handshake never starts.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    lone.assert_refused("config_unavailable", "the origin took too long to answer")
        .await;
    StandIn {
        task: silent,
        handle: None,
    }
    .stop()
    .await;

    lone.stop().await;
}
