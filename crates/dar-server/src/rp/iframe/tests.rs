use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use serde_json::Value;

use super::{API_SAVE_PATH, API_SCRIPT_PATH};
use crate::config::Config;
use crate::demo::{
    Browser, Deployment, DeploymentSpec, Page, Role, between, free_port, start_deployment, unescape,
};
use crate::testutil::{config, config_with, get, roles, send, temp_dir};
use crate::{AppState, app_with};

const IFRAME: &str = "/dar/save-token-iframe";

/// An account provider and a recovery provider whose async API serves it (and one more
/// listed origin that issues nothing), a browser signed up at both, and a fresh token.
struct Setup {
    ap: Deployment,
    rp: Deployment,
    browser: Browser,
    token: String,
}

impl Setup {
    async fn new(name: &str) -> Self {
        let dir = temp_dir(name);
        let ca_dir = dir.join("tls");
        let (ap_port, rp_port) = (free_port().unwrap(), free_port().unwrap());
        let spec = |role, port, peer_port, extra: String| DeploymentSpec {
            dir: dir.clone(),
            ca_dir: ca_dir.clone(),
            role,
            port,
            peer_port,
            status_addresses: vec!["192.0.2.0/24".to_owned()],
            extra,
        };
        let ap = start_deployment(&spec(
            Role::AccountProvider,
            ap_port,
            rp_port,
            String::new(),
        ))
        .await
        .unwrap();
        let rp_extra = format!(
            "allowed_account_providers = [\"https://localhost:{ap_port}\", \
             \"https://other.example\"]\n\
             save_token_async_api_iframe_path = \"{IFRAME}\"\n"
        );
        let rp = start_deployment(&spec(Role::RecoveryProvider, rp_port, ap_port, rp_extra))
            .await
            .unwrap();
        let ca = std::fs::read(ca_dir.join("ca.pem")).unwrap();
        let mut browser = Browser::new(&ca).unwrap();
        browser.sign_up(&ap.origin, "alice").await.unwrap();
        browser.sign_up(&rp.origin, "rita").await.unwrap();
        let setup = format!("{}/ap/recovery/setup", ap.origin);
        let page = browser.get(&setup).await.unwrap();
        let page = browser
            .post(
                &setup,
                &[
                    ("csrf_token", &page.field("csrf_token").unwrap()),
                    ("recovery_provider", &rp.origin),
                ],
            )
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let token = page.field("token").unwrap();
        Self {
            ap,
            rp,
            browser,
            token,
        }
    }

    /// The API page's CSRF token, as the script reads it.
    async fn page_csrf(&mut self) -> String {
        let page = self
            .browser
            .get(&format!("{}{IFRAME}", self.rp.origin))
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("data-signed-in=\"true\""),
            "{}",
            page.body
        );
        between(&page.body, "data-csrf-token=\"", "\"").unwrap()
    }

    async fn save(&mut self, fields: &[(&str, &str)]) -> Page {
        let url = format!("{}{API_SAVE_PATH}", self.rp.origin);
        self.browser.post(&url, fields).await.unwrap()
    }

    /// How many tokens the signed-in user has at the recovery provider.
    async fn saved_tokens(&mut self) -> usize {
        let page = self
            .browser
            .get(&format!("{}/rp/tokens", self.rp.origin))
            .await
            .unwrap();
        // One delete form per saved token.
        page.body.matches("action=\"/rp/tokens/delete\"").count()
    }

    async fn shut_down(self) {
        self.ap.running.shutdown(Duration::ZERO).await.unwrap();
        self.rp.running.shutdown(Duration::ZERO).await.unwrap();
    }
}

fn answer(page: &Page) -> Value {
    serde_json::from_str(&page.body).unwrap_or_else(|_| panic!("not JSON: {}", page.body))
}

#[tokio::test]
async fn saves_a_listed_issuers_token_once() {
    let mut setup = Setup::new("iframe_saves_once").await;
    let csrf = setup.page_csrf().await;
    let (apo, token) = (setup.ap.origin.clone(), setup.token.clone());
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("origin", apo.as_str()),
        ("token", token.as_str()),
        ("state", "s1"),
    ];
    let page = setup.save(&fields).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let first = answer(&page);
    assert_eq!(first["result"], "save-token-success");
    assert_eq!(first["reason"], "saved");
    let redirect = first["redirect"].as_str().unwrap();
    assert_eq!(
        redirect,
        format!("{apo}/dar/save-token-return?status=save-success&state=s1")
    );
    // The same message again changes nothing.
    let page = setup.save(&fields).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(answer(&page)["reason"], "already-saved");
    assert_eq!(setup.saved_tokens().await, 1);
    setup.shut_down().await;
}

#[tokio::test]
async fn refuses_origins_that_are_not_the_listed_issuer() {
    let mut setup = Setup::new("iframe_refuses_origins").await;
    let csrf = setup.page_csrf().await;
    let token = setup.token.clone();
    // Not listed: refused before anything is fetched.
    let page = setup
        .save(&[
            ("csrf_token", &csrf),
            ("origin", "https://evil.example"),
            ("token", &token),
        ])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert_eq!(answer(&page)["result"], "save-token-failure");
    assert_eq!(answer(&page)["reason"], "origin-not-allowed");
    // Listed, but not the token's issuer: a page cannot save another site's token.
    let page = setup
        .save(&[
            ("csrf_token", &csrf),
            ("origin", "https://other.example"),
            ("token", &token),
        ])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert_eq!(answer(&page)["reason"], "issuer-mismatch");
    // Not an origin at all.
    let page = setup
        .save(&[("csrf_token", &csrf), ("origin", "null"), ("token", &token)])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert_eq!(setup.saved_tokens().await, 0);
    setup.shut_down().await;
}

#[tokio::test]
async fn needs_a_signed_in_session_and_its_csrf_token() {
    let mut setup = Setup::new("iframe_needs_session").await;
    let (apo, rpo, token) = (
        setup.ap.origin.clone(),
        setup.rp.origin.clone(),
        setup.token.clone(),
    );
    let ca = std::fs::read(setup.rp.dir.join("../tls/ca.pem")).unwrap();
    let mut stranger = Browser::new(&ca).unwrap();
    let page = stranger.get(&format!("{rpo}{IFRAME}")).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("data-signed-in=\"false\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-csrf-token=\"\""), "{}", page.body);
    let page = stranger
        .post(
            &format!("{rpo}{API_SAVE_PATH}"),
            &[("origin", &apo), ("token", &token)],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert_eq!(answer(&page)["reason"], "sign-in-required");
    // Signed in, but without the page's CSRF token.
    let page = setup.save(&[("origin", &apo), ("token", &token)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("csrf"), "{}", page.body);
    assert_eq!(setup.saved_tokens().await, 0);
    setup.shut_down().await;
}

/// The application for `config`, on an in-memory database.
async fn app(config: &Config) -> Router {
    let store = dar_store::Store::in_memory().await.unwrap();
    let state = AppState::with_store(
        config,
        roles(config),
        axum_extra::extract::cookie::Key::from(&[3; 64]),
        store,
    )
    .unwrap();
    app_with(state.clone(), crate::pages(&state))
}

#[tokio::test]
async fn only_listed_account_providers_may_frame_the_api_page() {
    let config = config_with(
        "",
        "allowed_account_providers = [\"https://ap.example.com\", \"https://b.example\"]\n",
    );
    let page = send(app(&config).await, get(IFRAME)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors https://ap.example.com https://b.example;"),
        "{csp}"
    );
    let body = String::from_utf8(crate::testutil::bytes(page).await).unwrap();
    assert!(body.contains("data-signed-in=\"false\""), "{body}");
    // The script's list, as the browser decodes the attribute.
    let listed =
        unescape(&between(&body, "data-allowed-origins=\"", "\"").unwrap()).replace("&#34;", "\"");
    let listed: Vec<String> = serde_json::from_str(&listed).expect(&listed);
    assert_eq!(listed, ["https://ap.example.com", "https://b.example"]);
}

#[tokio::test]
async fn only_the_api_page_may_be_framed() {
    let app = app(&config()).await;
    let page = send(app.clone(), get(IFRAME)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors https:"), "{csp}");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!page.headers().contains_key(header::X_FRAME_OPTIONS));
    let script = send(app.clone(), get(API_SCRIPT_PATH)).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers()[header::X_FRAME_OPTIONS], "DENY");
    let body = String::from_utf8(crate::testutil::bytes(script).await).unwrap();
    assert!(body.contains("delegated-account-recovery-api-message"));
    assert!(!body.contains("'*'"), "never posts to any origin");
    let signin = send(app, get("/signin")).await;
    assert_eq!(signin.headers()[header::X_FRAME_OPTIONS], "DENY");
}
