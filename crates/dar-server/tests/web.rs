//! Both roles end to end over real HTTPS on loopback: two started servers (an account provider
//! and a recovery provider) sharing a local CA, SQLite files in a temporary directory, and a
//! browser without JavaScript (reqwest with redirects off, cookies kept per origin by hand,
//! 303s followed by hand; cross-site POSTs carry no cookie, as with `SameSite=Lax`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dar_core::SigningKey;
use dar_server::config::Config;
use dar_server::{AppState, Running};
use reqwest::{Client, StatusCode, redirect};

const PASSWORD: &str = "correct horse battery";

struct Server {
    running: Running,
    origin: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-server-web")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts one deployment playing `role` (`"ap"` or `"rp"`) on `port`.
async fn start(
    dir: &Path,
    ca_dir: &Path,
    role: &str,
    port: u16,
    peer_port: u16,
    extra: &str,
) -> Server {
    let dir = dir.join(role);
    std::fs::create_dir_all(&dir).unwrap();
    let key = SigningKey::from_scalar_bytes(&[if role == "ap" { 7 } else { 8 }; 32]).unwrap();
    std::fs::write(dir.join("key.pem"), key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("seal.hex"), "ab".repeat(32)).unwrap();
    std::fs::write(dir.join("session.hex"), "cd".repeat(64)).unwrap();
    #[cfg(unix)]
    for file in ["key.pem", "seal.hex", "session.hex"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join(file), mode).unwrap();
    }
    let origin = format!("https://localhost:{port}");
    let role_table = if role == "ap" {
        format!(
            "[account_provider]\nsigning_keys = [\"key.pem\"]\n\
             sealing_keys = [{{ id = 1, file = \"seal.hex\" }}]\n\
             allowed_recovery_providers = [\"https://localhost:{peer_port}\"]\n\
             [account_provider.status_addresses]\n\
             \"https://localhost:{peer_port}\" = [\"192.0.2.0/24\"]\n"
        )
    } else {
        "[recovery_provider]\ncountersign_keys = [\"key.pem\"]\n".to_owned()
    };
    let role_table = format!("{role_table}{extra}");
    std::fs::write(
        dir.join("dar.toml"),
        format!(
            r#"listen = "127.0.0.1:{port}"
public_origin = "{origin}"
database = "sqlite://{db}"
development = true
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "{ca}"

[session]
key_file = "session.hex"

{role_table}"#,
            db = dir.join("dar.db").display(),
            ca = ca_dir.display(),
        ),
    )
    .unwrap();
    let config = Config::load(&dir.join("dar.toml")).unwrap();
    let store = dar_store::Store::connect(config.database.expose())
        .await
        .unwrap();
    let state = AppState::load_with_store(&config, Some(store)).unwrap();
    let app = dar_server::app_with(state.clone(), dar_server::pages(&state));
    let running = dar_server::start(&config, &state, app).await.unwrap();
    Server { running, origin }
}

struct Browser {
    client: Client,
    /// Cookies per origin.
    cookies: HashMap<String, HashMap<String, String>>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The value of the first hidden or checked input named `name`.
    fn field(&self, name: &str) -> String {
        unescape(&between(
            &self.body,
            &format!("name=\"{name}\" value=\""),
            "\"",
        ))
    }

    fn form_action(&self) -> String {
        unescape(&between(
            &self.body,
            "<form method=\"post\" action=\"",
            "\"",
        ))
    }
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    text[from..from + len].to_owned()
}

fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#43;", "+")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn origin_of(url: &str) -> String {
    let rest = url.strip_prefix("https://").unwrap();
    let host = rest.split('/').next().unwrap();
    format!("https://{host}")
}

impl Browser {
    fn new(ca_pem: &[u8]) -> Self {
        let client = Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            client,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder, url: &str, cookies: bool) -> Page {
        let origin = origin_of(url);
        let mut request = request;
        if cookies && let Some(jar) = self.cookies.get(&origin) {
            let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !header.is_empty() {
                request = request.header("cookie", header.join("; "));
            }
        }
        let response = request.send().await.unwrap();
        let jar = self.cookies.entry(origin).or_default();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            body,
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        self.send(self.client.get(url), url, true).await
    }

    /// A same-origin form submission (with cookies and a same-origin `Origin`).
    async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(url)
            .header("origin", origin_of(url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        self.send(request, url, true).await
    }

    /// A form submitted from `from`'s page to another site: no cookie (`SameSite=Lax`).
    async fn post_cross_site(&mut self, from: &str, url: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(url)
            .header("origin", from)
            .header("sec-fetch-site", "cross-site")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        self.send(request, url, false).await
    }

    /// Signs up at `origin` and enrols TOTP.
    async fn sign_up(&mut self, origin: &str, username: &str) {
        let page = self.get(&format!("{origin}/signup")).await;
        let csrf = page.field("csrf_token");
        let page = self
            .post(
                &format!("{origin}/signup"),
                &[
                    ("csrf_token", &csrf),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let page = self.get(&format!("{origin}/account/totp")).await;
        let secret = between(&page.body, "<dt>Secret</dt><dd><code>", "</code>");
        let totp = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
            .with_account_name("test")
            .build()
            .unwrap();
        let code = totp.generate_current().to_string();
        let page = self
            .post(
                &format!("{origin}/account/totp"),
                &[("csrf_token", &page.field("csrf_token")), ("code", &code)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(
            self.get(&format!("{origin}/account")).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn save_and_recover_across_two_deployments() {
    let dir = temp_dir("save_and_recover");
    let ca_dir = dir.join("tls");
    let (ap_port, rp_port) = (free_port(), free_port());
    let ap = start(&dir, &ca_dir, "ap", ap_port, rp_port, "").await;
    let rp = start(&dir, &ca_dir, "rp", rp_port, ap_port, "").await;
    let ca = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    let mut browser = Browser::new(&ca);
    let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());

    browser.sign_up(&apo, "alice").await;
    browser.sign_up(&rpo, "rita").await;

    // §3.1 at the account provider: choose the recovery provider, get the token form.
    let page = browser.get(&format!("{apo}/ap/recovery/setup")).await;
    assert_eq!(page.status, StatusCode::OK);
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("recovery_provider", &rpo),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let save_url = page.form_action();
    assert_eq!(save_url, format!("{rpo}/dar/save-token"));
    let (token, state) = (page.field("token"), page.field("state"));

    // Negative: a tampered token is refused and nothing is saved.
    let mut tampered = token.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &tampered), ("state", "x")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let parked = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&parked).await;
    assert!(
        page.status == StatusCode::SEE_OTHER || page.status.is_client_error(),
        "{} {}",
        page.status,
        page.body
    );
    if page.status == StatusCode::SEE_OTHER {
        assert!(page.location.unwrap().contains("status=save-failure"));
    }
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await;
    assert!(
        tokens.body.contains("no saved recovery tokens"),
        "{}",
        tokens.body
    );

    // Negative: GET on save-token, and an oversize body.
    let page = browser.get(&save_url).await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    let big = "A".repeat(3 * 8 * 1024);
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &big)])
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The real save: parked, confirmed at the recovery provider, back to the account provider.
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&confirm_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&apo));
    // Negative: the confirmation needs the CSRF token.
    let page2 = browser.post(&confirm_url, &[("action", "save")]).await;
    assert_eq!(page2.status, StatusCode::FORBIDDEN);
    let page = browser
        .post(
            &confirm_url,
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = page.location.unwrap();
    assert!(back.starts_with(&format!("{apo}/dar/save-token-return?status=save-success")));
    let page = browser.get(&back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("saved your recovery token"));
    // The state is single-use.
    assert_eq!(browser.get(&back).await.status, StatusCode::BAD_REQUEST);
    let token_id = between(&page.body, "Token id: <code>", "</code>");
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await;
    assert!(tokens.body.contains(&apo), "{}", tokens.body);

    // Negative: a token-status call from an address the recovery provider does not use is
    // refused, and changes nothing (the recovery below still succeeds).
    let status_url = format!("{apo}/.well-known/delegated-account-recovery/token-status");
    let page = browser
        .post_cross_site(
            &rpo,
            &status_url,
            &[("id", &token_id), ("status", "deleted")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("forbidden_address"), "{}", page.body);

    // "I lost my second factor" at the account provider sends the browser to the recovery
    // provider's recover-account with the issuer hint (§3.4 step 1).
    let page = browser.get(&format!("{apo}/ap/recovery/lost")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/lost"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("recovery_provider", &rpo),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let recover_url = page.location.unwrap();
    assert_eq!(
        recover_url,
        format!("{rpo}/dar/recover-account?issuer=https%3A%2F%2Flocalhost%3A{ap_port}")
    );

    // §3.4 at the recovery provider (signed in with both factors); §3.5 at the account
    // provider.
    let page = browser.get(&recover_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .post(
            &format!("{rpo}/rp/recover"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("issuer", &page.field("issuer")),
                ("token_id", &page.field("token_id")),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let return_url = page.form_action();
    assert_eq!(return_url, format!("{apo}/dar/recover-account-return"));
    let countersigned = page.field("countersigned-token");
    let page = browser
        .post_cross_site(
            &rpo,
            &return_url,
            &[("countersigned-token", &countersigned)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("nothing has been unlocked"));
    assert!(page.body.contains(&rpo));

    // Negative: a replayed countersigned token, and GET on recover-account-return.
    let page = browser
        .post_cross_site(
            &rpo,
            &return_url,
            &[("countersigned-token", &countersigned)],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("replayed"), "{}", page.body);
    let page = browser.get(&return_url).await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.body.contains("POST only"));

    // Deleting the token at the recovery provider needs the CSRF token.
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await;
    let page = browser
        .post(
            &format!("{rpo}/rp/tokens/delete"),
            &[
                ("issuer", &tokens.field("issuer")),
                ("token_id", &tokens.field("token_id")),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = browser
        .post(
            &format!("{rpo}/rp/tokens/delete"),
            &[
                ("csrf_token", &tokens.field("csrf_token")),
                ("issuer", &tokens.field("issuer")),
                ("token_id", &tokens.field("token_id")),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await;
    assert!(tokens.body.contains("no saved recovery tokens"));

    ap.running.shutdown(Duration::ZERO).await.unwrap();
    rp.running.shutdown(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn a_recovery_provider_declines_account_providers_it_does_not_allow() {
    let dir = temp_dir("not_allowed");
    let ca_dir = dir.join("tls");
    let (ap_port, rp_port) = (free_port(), free_port());
    let ap = start(&dir, &ca_dir, "ap", ap_port, rp_port, "").await;
    let rp = start(
        &dir,
        &ca_dir,
        "rp",
        rp_port,
        ap_port,
        "allowed_account_providers = [\"https://ap.example.com\"]\n",
    )
    .await;
    let ca = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    let mut browser = Browser::new(&ca);
    let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());
    browser.sign_up(&apo, "alice").await;
    browser.sign_up(&rpo, "rita").await;

    let page = browser.get(&format!("{apo}/ap/recovery/setup")).await;
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("recovery_provider", &rpo),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let save_url = page.form_action();
    let (token, state) = (page.field("token"), page.field("state"));
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
        .await;
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    // No interstitial: declined at once, back to the account provider with save-failure.
    let page = browser.get(&confirm_url).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = page.location.unwrap();
    assert!(back.contains("status=save-failure"), "{back}");
    let page = browser.get(&back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("did not save"));
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await;
    assert!(tokens.body.contains("no saved recovery tokens"));

    ap.running.shutdown(Duration::ZERO).await.unwrap();
    rp.running.shutdown(Duration::ZERO).await.unwrap();
}
