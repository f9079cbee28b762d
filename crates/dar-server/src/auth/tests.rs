use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dar_store::{Factor, Store};

use zeroize::Zeroizing;

use super::{DUMMY_HASH, MAX_FAILURES, safe_next};
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::testutil::{config, roles, send};
use crate::{AppState, app_with};

/// A browser without JavaScript: keeps cookies, follows nothing by itself.
pub(crate) struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
    /// When the last TOTP enrolment's code was computed (unix seconds).
    enrolled_at: i64,
    /// The page the last TOTP enrolment answered with (the new recovery codes).
    pub(crate) enrolment_page: String,
    /// The deployment's clock, for the codes this browser's user types.
    clock: Arc<dyn Clock>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn csrf(&self) -> String {
        between(&self.body, "name=\"csrf_token\" value=\"", "\"")
    }
}

pub(crate) fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    text[from..from + len].to_owned()
}

impl Browser {
    /// Signs up, enrols TOTP and is signed in.
    pub(crate) async fn signed_in(username: &str) -> (Self, Store) {
        let (mut browser, store) = Self::new().await;
        browser.sign_up(username, PASSWORD).await;
        (browser, store)
    }

    pub(crate) async fn new() -> (Self, Store) {
        let (browser, store, _) = Self::with_state().await;
        (browser, store)
    }

    /// A browser, its store, and the deployment's state (for workers).
    pub(crate) async fn with_state() -> (Self, Store, AppState) {
        Self::with_clock(Arc::new(SystemClock)).await
    }

    /// As [`Browser::with_state`], the deployment reading time from `clock`.
    pub(crate) async fn with_clock(clock: Arc<dyn Clock>) -> (Self, Store, AppState) {
        let config = config();
        let store = Store::in_memory().await.unwrap();
        let state = AppState::with_store(
            &config,
            roles(&config),
            axum_extra::extract::cookie::Key::from(&[3; 64]),
            store.clone(),
        )
        .unwrap()
        .with_clock(clock.clone());
        let app = app_with(state.clone(), crate::pages(&state));
        (
            Self {
                app,
                cookies: HashMap::new(),
                enrolled_at: 0,
                enrolment_page: String::new(),
                clock,
            },
            store,
            state,
        )
    }

    pub(crate) fn other(&self) -> Self {
        Self {
            app: self.app.clone(),
            cookies: HashMap::new(),
            enrolled_at: 0,
            enrolment_page: String::new(),
            clock: self.clock.clone(),
        }
    }

    /// The deployment's time in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    pub(crate) async fn send(&mut self, mut request: Request<Body>) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookie.is_empty() {
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.join("; ").parse().unwrap());
        }
        let response = send(self.app.clone(), request).await;
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = String::from_utf8(crate::testutil::bytes(response).await).unwrap();
        Page {
            status,
            headers,
            location,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Signs up and enrols TOTP ([`Self::enrol_totp`]); returns the secret.
    pub(crate) async fn sign_up(&mut self, username: &str, password: &str) -> String {
        let page = self.get("/signup").await;
        let csrf = page.csrf();
        let page = self
            .post(
                "/signup",
                &[
                    ("csrf_token", &csrf),
                    ("username", username),
                    ("password", password),
                    (
                        "email",
                        &format!("{}@example.test", username.to_lowercase()),
                    ),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/account/totp"));
        self.enrol_totp().await
    }

    /// Enrols an authenticator (the password step done, no second factor yet), going on to
    /// `/account`; keeps the answer, the new recovery codes, in `enrolment_page`; returns the
    /// secret.
    pub(crate) async fn enrol_totp(&mut self) -> String {
        let page = self.get("/account/totp").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("otpauth://totp/"));
        let secret = between(&page.body, "<dt>Secret</dt><dd><code>", "</code>");
        // Remembered, so that a replay of this code is computed for the same step even across
        // a step boundary.
        self.enrolled_at = self.now();
        let code = code_at_time(&secret, self.enrolled_at);
        let page = self
            .post(
                "/account/totp",
                &[
                    ("csrf_token", &page.csrf()),
                    ("code", &code),
                    ("next", "/account"),
                ],
            )
            .await;
        // A new second factor comes with recovery codes, shown once, and a link on.
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Your recovery codes"), "{}", page.body);
        assert!(page.body.contains(r#"<a href="/account">Continue</a>"#));
        self.enrolment_page = page.body;
        secret
    }

    /// Both sign-in steps: the password (which must pass), then `code` as the second factor;
    /// returns the second step's answer.
    pub(crate) async fn sign_in_with_code(&mut self, username: &str, code: &str) -> Page {
        let page = self.password(username, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let csrf = self.get("/signin/totp").await.csrf();
        self.post("/signin/totp", &[("csrf_token", &csrf), ("code", code)])
            .await
    }

    /// The password step; returns the response.
    pub(crate) async fn password(&mut self, username: &str, password: &str) -> Page {
        let csrf = self.get("/signin").await.csrf();
        self.post(
            "/signin",
            &[
                ("csrf_token", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

/// The code of the step `offset` steps from now.
pub(crate) fn code_at(secret: &str, offset: i64) -> String {
    code_at_time(secret, crate::testutil::unix_now() + offset * 30)
}

/// The code for unix time `t`.
pub(crate) fn code_at_time(secret: &str, t: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("test")
        .build()
        .unwrap();
    totp.generate(u64::try_from(t).unwrap()).to_string()
}

pub(crate) const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_enrol_sign_in_and_out() {
    let (mut browser, store) = Browser::new().await;
    let secret = browser.sign_up("Alice", PASSWORD).await;
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<strong>alice</strong>"));
    // The secret is stored as shown.
    let account = store.account_by_username("alice").await.unwrap().unwrap();
    assert_eq!(account.totp_secret.as_deref(), Some(secret.as_str()));

    // Sign out, then the account page sends the browser to sign in, coming back after.
    let csrf = page.csrf();
    let page = browser.post("/signout", &[("csrf_token", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/signin?next=%2Faccount"));

    // Password, then code (the next step: the enrolment's step was used once already).
    let page = browser.password("alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location.as_deref(),
        Some("/signin/totp?next=%2Faccount")
    );
    // Password alone does not sign in.
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
    let page = browser.get("/signin/totp?next=%2Faccount").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    // The enrolment's code is not accepted twice.
    let replay = code_at_time(&secret, browser.enrolled_at);
    let page = browser
        .post("/signin/totp", &[("csrf_token", &csrf), ("code", &replay)])
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("That code is not correct"));
    let code = code_at(&secret, 1);
    let page = browser
        .post(
            "/signin/totp",
            &[("csrf_token", &csrf), ("code", &code), ("next", "/account")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/account"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    let account = store.account_by_username("alice").await.unwrap().unwrap();
    assert_eq!(account.totp_failures, 0, "a success resets the counter");
}

#[tokio::test]
async fn sign_in_failures_are_generic_and_counted() {
    let (mut browser, store) = Browser::new().await;
    browser.sign_up("bob", PASSWORD).await;
    let mut other = browser.other();
    let wrong = other.password("bob", "not the password").await;
    let unknown = other.password("nobody", PASSWORD).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Incorrect username or password."));
    // Same page either way, except for the per-session CSRF token.
    assert_eq!(
        wrong.body.replace(&wrong.csrf(), ""),
        unknown.body.replace(&unknown.csrf(), "")
    );
    let id = store.account_by_username("bob").await.unwrap().unwrap().id;
    assert_eq!(
        store.account(id).await.unwrap().unwrap().password_failures,
        1
    );

    // A success resets the counter.
    let page = other.password("bob", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        store.account(id).await.unwrap().unwrap().password_failures,
        0
    );

    // After MAX_FAILURES, the password method stops, with the same generic answer; the
    // account is not locked (nothing else changes).
    for _ in 0..MAX_FAILURES {
        store.record_failure(id, Factor::Password).await.unwrap();
    }
    let mut third = browser.other();
    let page = third.password("bob", PASSWORD).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Incorrect username or password."));
    // The already signed-in session is unaffected.
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn totp_method_stops_after_too_many_failures() {
    let (mut browser, store) = Browser::new().await;
    let secret = browser.sign_up("carol", PASSWORD).await;
    let id = store
        .account_by_username("carol")
        .await
        .unwrap()
        .unwrap()
        .id;
    for _ in 0..MAX_FAILURES {
        store.record_failure(id, Factor::Totp).await.unwrap();
    }
    let mut other = browser.other();
    let code = code_at(&secret, 1);
    let page = other.sign_in_with_code("carol", &code).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Use account recovery"));
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn second_factor_codes_are_checked_at_the_deployments_clock() {
    // The deployment runs ten years ahead of the machine: the codes it takes are those of its
    // own clock, never the machine's.
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::days(3_650);
    let clock = Arc::new(ManualClock::new(ahead));
    let (mut browser, _store, state) = Browser::with_clock(clock.clone()).await;
    assert_eq!(state.now(), ahead);
    let secret = browser.sign_up("dora", PASSWORD).await;
    let mut other = browser.other();
    let machine_code = code_at(&secret, 1);
    let page = other.sign_in_with_code("dora", &machine_code).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("That code is not correct"));
    // Two steps later on the deployment's clock, that step's code signs in.
    clock.advance(time::Duration::seconds(60));
    let code = code_at_time(&secret, other.now());
    let page = other.sign_in_with_code("dora", &code).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(other.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_valid_input() {
    let (mut browser, store) = Browser::new().await;
    let csrf = browser.get("/signup").await.csrf();
    let page = browser
        .post("/signup", &[("username", "dave"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("csrf_token_missing"));
    let page = browser
        .post(
            "/signup",
            &[
                ("csrf_token", "AAAA"),
                ("username", "dave"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = browser
        .post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("username", "dave"),
                ("password", "short"),
                ("email", "dave@example.test"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("at least 12 characters"));
    let page = browser
        .post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("username", "a:b"),
                ("password", PASSWORD),
                ("email", "dave@example.test"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(store.account_by_username("dave").await.unwrap().is_none());

    browser.sign_up("dave", PASSWORD).await;
    let mut other = browser.other();
    let csrf = other.get("/signup").await.csrf();
    let page = other
        .post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("username", "DAVE"),
                ("password", PASSWORD),
                ("email", "dave@example.test"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn sign_out_everywhere_revokes_every_session() {
    let (mut first, _store) = Browser::new().await;
    let secret = first.sign_up("erin", PASSWORD).await;
    let mut second = first.other();
    let code = code_at(&secret, 1);
    let page = second.sign_in_with_code("erin", &code).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let csrf = second.get("/account").await.csrf();
    let page = second
        .post("/signout/everywhere", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(first.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(second.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[test]
fn next_stays_on_this_origin() {
    assert_eq!(safe_next(Some("/rp/save/abc?x=1")), "/rp/save/abc?x=1");
    for bad in ["//evil.example", "https://evil.example", "/\\evil", "", "x"] {
        assert_eq!(safe_next(Some(bad)), "/account", "{bad}");
    }
    assert_eq!(safe_next(None), "/account");
}

#[test]
fn dummy_hash_parses() {
    assert!(argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok());
}

#[test]
fn the_dummy_hash_costs_what_a_password_hash_costs() {
    let parsed = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).unwrap();
    let params = argon2::Params::try_from(&parsed).unwrap();
    let ours = dar_account_provider::lockout::argon2id();
    assert_eq!(
        (params.m_cost(), params.t_cost(), params.p_cost()),
        (
            ours.params().m_cost(),
            ours.params().t_cost(),
            ours.params().p_cost()
        )
    );
}

#[tokio::test]
async fn passwords_hash_with_the_chosen_parameters_and_verify() {
    let hash = super::hash_password(Zeroizing::new("a long enough password".to_owned()))
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=47104,t=1,p=1$"),
        "{hash}"
    );
    assert!(
        super::verify_password(
            Zeroizing::new("a long enough password".to_owned()),
            Some(hash.clone())
        )
        .await
        .unwrap()
    );
    assert!(
        !super::verify_password(Zeroizing::new("another one".to_owned()), Some(hash))
            .await
            .unwrap()
    );
}
