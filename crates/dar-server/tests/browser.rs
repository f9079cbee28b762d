//! Browser end-to-end tests: headless Chromium (Debian's `chromium` and `chromium-driver`)
//! driven over WebDriver ([`fantoccini`]) through the pages of two real deployments on
//! loopback, an account provider and a recovery provider (started as `tests/web.rs` does).
//!
//! - [`a_person_saves_a_token_and_recovers_with_it`]: sign-up with password and TOTP at both,
//!   "set up account recovery", the recovery provider's confirmation, "I lost my second
//!   factor", the recovery provider's countersignature, and the account provider's page.
//! - [`an_account_provider_page_saves_through_the_iframe_api`]: a page on the account
//!   provider's origin embeds the recovery provider's `save-token-async-api-iframe` (§3.3) and
//!   talks to it with `postMessage`, logging every answer into its own DOM for the test to read.
//!
//! Each page is photographed into `target/browser-screenshots/NN-name.png` (a 1000×700 window).
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the tests print a note and pass, so
//! `cargo test --workspace` works on a machine without a browser, unless
//! `DAR_REQUIRE_BROWSER=1` (as `.ci/run` sets), which makes them fail instead.
//!
//! Two choices that only suit loopback tests:
//! - Chromium accepts the servers' certificates without checking them (`acceptInsecureCerts`):
//!   they come from the test's own local CA, which this throw-away profile does not trust.
//! - Both servers are `localhost` on two ports. Browsers share cookies between the ports of a
//!   host, and both deployments name their session cookie alike, so Chromium runs with
//!   port-bound cookies (`EnablePortBoundCookies`), as two real sites would have two hosts.
//!   The two ports are one *site*, so the iframe's requests carry the recovery provider's
//!   `SameSite=Lax` session: the silent save is possible here (see `src/rp/iframe.rs` on why a
//!   cross-site page's iframe takes the interactive path instead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use dar_server::demo::{
    Deployment, DeploymentSpec, PASSWORD, Role, free_port, start_deployment, totp_code,
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const IFRAME: &str = "/dar/save-token-iframe";
/// The account provider's test page that embeds the iframe.
const HOST_PAGE: &str = "/test/iframe-host";
/// How long to wait for a page or an element.
const WAIT: Duration = Duration::from_secs(20);

/// Whether the browser is installed; otherwise a note, or a failure under
/// `DAR_REQUIRE_BROWSER=1`.
fn browser_installed(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("DAR_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "DAR_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
         (apt-get install chromium chromium-driver)"
    );
    eprintln!("note: {test} skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
    false
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-server-browser")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver, in its own process group so that the browsers it starts go with it.
struct Driver {
    child: Child,
}

impl Driver {
    fn spawn(port: u16) -> Self {
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let driver = Self { child };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < WAIT, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session and the screenshots it takes.
struct Chrome {
    client: Client,
    shots: PathBuf,
    prefix: &'static str,
    taken: usize,
    // Dropped last: the browser goes with it.
    _driver: Driver,
}

impl Chrome {
    async fn start(prefix: &'static str, profile: &Path) -> Self {
        let port = free_port().unwrap();
        let driver = Driver::spawn(port);
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    // No crash handler: it would run outside chromedriver's process group.
                    "--disable-breakpad",
                    "--disable-crash-reporter",
                    "--window-size=1000,700",
                    "--hide-scrollbars",
                    "--enable-features=EnablePortBoundCookies",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let shots = target_dir().join("browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            shots,
            prefix,
            taken: 0,
            _driver: driver,
        }
    }

    async fn shot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.unwrap();
        let file = self
            .shots
            .join(format!("{}{:02}-{name}.png", self.prefix, self.taken));
        std::fs::write(file, png).unwrap();
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element, once the page shows it: a click that navigates returns before the next
    /// page is there, so every lookup waits (up to [`WAIT`]).
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let start = Instant::now();
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) => assert!(
                    start.elapsed() < WAIT,
                    "no {css}: {e}\n{}",
                    self.text().await
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.element(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    /// Waits until the address starts with `prefix`.
    async fn arrive(&self, prefix: &str) {
        self.arrive_where(prefix, |url| url.starts_with(prefix))
            .await;
    }

    /// Waits until the address is `url` itself: where a prefix would also match the page the
    /// click started from (a form that redirects to the site's root).
    async fn arrive_exactly(&self, url: &str) {
        self.arrive_where(url, |at| at == url).await;
    }

    async fn arrive_where(&self, expected: &str, arrived: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let url = self.client.current_url().await.unwrap();
            if arrived(url.as_str()) {
                // The address changes before the document is complete.
                while self
                    .client
                    .execute("return document.readyState", Vec::new())
                    .await
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .as_deref()
                    != Some("complete")
                {
                    assert!(start.elapsed() < WAIT, "{url} never finished loading");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "still at {url}, expected {expected}: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn value(&self, css: &str) -> String {
        self.element(css)
            .await
            .attr("value")
            .await
            .unwrap()
            .unwrap()
    }

    /// Signs up at `origin` with a password and an authenticator code; `shots` photographs
    /// each page.
    async fn sign_up(&mut self, origin: &str, username: &str, shots: bool) {
        self.goto(&format!("{origin}/signup")).await;
        self.fill("#username", username).await;
        self.fill("#password", PASSWORD).await;
        self.fill("#email", &format!("{username}@example.com"))
            .await;
        if shots {
            self.shot("sign-up").await;
        }
        self.click("main form button[type=submit]").await;
        self.arrive(&format!("{origin}/account/totp")).await;
        if shots {
            self.shot("authenticator").await;
        }
        // The code field is on the same page as the secret: wait for the page first.
        self.element("#code").await;
        let secret = self
            .client
            .find(Locator::XPath(
                "//dt[normalize-space()='Secret']/following-sibling::dd[1]/code",
            ))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        self.fill("#code", &totp_code(&secret).unwrap()).await;
        self.click("main form button[type=submit]").await;
        // The new factor comes with recovery codes, shown once, and a link on.
        self.element("main ol li code").await;
        if shots {
            self.shot("recovery-codes").await;
        }
        self.click("main p a").await;
        // Exactly: the authenticator page's own address has this one as a prefix.
        self.arrive_exactly(&format!("{origin}/account")).await;
        if shots {
            self.shot("account").await;
        }
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Starts an account provider and a recovery provider; `rp_extra` goes into the recovery
/// provider's table.
async fn deployments(dir: &Path, rp_extra: &str) -> (Deployment, Deployment) {
    let ca_dir = dir.join("tls");
    let (ap_port, rp_port) = (free_port().unwrap(), free_port().unwrap());
    let spec = |role, port, peer_port, extra: &str| DeploymentSpec {
        dir: dir.to_owned(),
        ca_dir: ca_dir.clone(),
        role,
        port,
        peer_port,
        status_addresses: vec!["192.0.2.0/24".to_owned()],
        extra: extra.to_owned(),
    };
    let ap = start_deployment(&spec(Role::AccountProvider, ap_port, rp_port, ""))
        .await
        .unwrap();
    let rp_extra = rp_extra.replace("AP_ORIGIN", &ap.origin);
    let rp = start_deployment(&spec(Role::RecoveryProvider, rp_port, ap_port, &rp_extra))
        .await
        .unwrap();
    (ap, rp)
}

/// At the account provider (signed in): "set up account recovery" with the recovery provider,
/// up to the page that sends the token there.
async fn set_up_recovery(chrome: &mut Chrome, apo: &str, rpo: &str, shots: bool) {
    chrome.goto(&format!("{apo}/ap/recovery/setup")).await;
    chrome
        .click(&format!("input[name=recovery_provider][value=\"{rpo}\"]"))
        .await;
    if shots {
        chrome.shot("ap-set-up-recovery").await;
    }
    chrome.click("main form button[type=submit]").await;
    // The form posts to its own address: wait for the new page's token field.
    chrome.element("input[name=token]").await;
    if shots {
        chrome.shot("ap-send-token").await;
    }
}

#[tokio::test]
async fn a_person_saves_a_token_and_recovers_with_it() {
    if !browser_installed("a_person_saves_a_token_and_recovers_with_it") {
        return;
    }
    let dir = temp_dir("story");
    let (ap, rp) = deployments(&dir, "").await;
    let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());
    let mut chrome = Chrome::start("", &dir.join("profile")).await;

    chrome.sign_up(&apo, "alice", true).await;
    chrome.sign_up(&rpo, "rita", false).await;
    // The account provider's session survived the recovery provider's sign-up.
    chrome.goto(&format!("{apo}/account")).await;
    assert!(chrome.text().await.contains("alice"));

    // §3.1: the token goes to the recovery provider, which asks before saving.
    set_up_recovery(&mut chrome, &apo, &rpo, true).await;
    chrome.click("main form button[type=submit]").await;
    chrome.arrive(&format!("{rpo}/rp/save?id=")).await;
    let text = chrome.text().await;
    assert!(text.contains(&apo) && text.contains("rita"), "{text}");
    chrome.shot("rp-confirm-save").await;
    chrome.click("button[value=save]").await;
    chrome
        .arrive(&format!("{apo}/dar/save-token-return?status=save-success"))
        .await;
    assert!(chrome.text().await.contains("saved your recovery token"));
    chrome.shot("ap-token-saved").await;
    chrome.goto(&format!("{rpo}/rp/tokens")).await;
    assert!(chrome.text().await.contains(&apo));
    chrome.shot("rp-saved-tokens").await;

    // Locked out: signed out at the account provider, "I lost my second factor".
    chrome.goto(&format!("{apo}/account")).await;
    chrome.click("form[action='/signout'] button").await;
    // The sign-out's redirect must land before the next address is typed, or it wins the race.
    chrome.arrive_exactly(&format!("{apo}/")).await;
    chrome.goto(&format!("{apo}/ap/recovery/lost")).await;
    chrome
        .click(&format!("input[name=recovery_provider][value=\"{rpo}\"]"))
        .await;
    chrome.shot("ap-lost-second-factor").await;
    chrome.click("main form button[type=submit]").await;

    // §3.4 at the recovery provider: choose the token; it countersigns.
    chrome
        .arrive(&format!("{rpo}/dar/recover-account?issuer="))
        .await;
    chrome.shot("rp-recover").await;
    chrome.click("main form button[type=submit]").await;
    chrome.arrive(&format!("{rpo}/rp/recover")).await;
    chrome.element("input[name=countersigned-token]").await;
    chrome.shot("rp-send-countersigned").await;

    // §3.5 at the account provider: the countersigned token arrives.
    chrome.click("main form button[type=submit]").await;
    // The evidence joins a lockout recovery; the policy decides (spec/lockout-policy.md): one
    // delegated token alone earns a timed unlock.
    chrome.arrive(&format!("{apo}/recovery")).await;
    let text = chrome.text().await;
    assert!(
        text.contains(&rpo) && text.contains("timed unlock"),
        "{text}"
    );
    chrome.shot("ap-recovery-decision").await;
    chrome.click("#finish").await;
    chrome.arrive(&format!("{apo}/recovery/finish")).await;
    let text = chrome.text().await;
    assert!(text.contains("The waiting period is running"), "{text}");
    chrome.shot("ap-recovery-pending").await;

    chrome.close().await;
    ap.running.shutdown(Duration::ZERO).await.unwrap();
    rp.running.shutdown(Duration::ZERO).await.unwrap();
}

/// The account provider's test page: it embeds the iframe, asks for a binding once `ready`
/// arrives, then to save the token from its address's fragment without navigation, then a
/// broken token; it lists every message from the recovery provider's origin as JSON.
fn host_page(rp_origin: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>An account provider's page</title></head>
<body>
<h1>An account provider's page using the iframe save API</h1>
<p>The frame below is the recovery provider's save-token-async-api-iframe. This page asks it to
save a recovery token without leaving the page, and lists its answers.</p>
<iframe id="api" title="Recovery provider" src="{rp_origin}{IFRAME}" width="900" height="110"></iframe>
<h2>Messages from {rp_origin}</h2>
<ol id="log"></ol>
<script>
const rp = {rp_json};
const kind = 'delegated-account-recovery-api-message';
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const frame = document.getElementById('api');
function ask(message) {{ frame.contentWindow.postMessage(message, rp); }}
window.addEventListener('message', function (event) {{
  if (event.origin !== rp || event.source !== frame.contentWindow) {{ return; }}
  const item = document.createElement('li');
  item.textContent = JSON.stringify(event.data);
  document.getElementById('log').appendChild(item);
  const m = event.data;
  if (m[kind] === 'ready') {{
    ask({{ [kind]: 'get-binding', id: 'b1' }});
  }} else if (m[kind] === 'binding') {{
    ask({{ [kind]: 'save-token-no-navigation', id: 's1', token: token, nickname_hint: 'work' }});
  }} else if (m[kind] === 'save-token-result' && m['in-reply-to'] === 's1') {{
    ask({{ [kind]: 'save-token-no-navigation', id: 's2', token: 'AAAA' }});
  }}
}});
</script>
</body></html>"#,
        rp_json = serde_json::to_string(rp_origin).unwrap(),
    )
}

#[tokio::test]
async fn an_account_provider_page_saves_through_the_iframe_api() {
    if !browser_installed("an_account_provider_page_saves_through_the_iframe_api") {
        return;
    }
    let dir = temp_dir("iframe");
    let rp_extra = format!(
        "allowed_account_providers = [\"AP_ORIGIN\"]\n\
         save_token_async_api_iframe_path = \"{IFRAME}\"\n"
    );
    let (ap, rp) = deployments(&dir, &rp_extra).await;
    let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());
    // The account provider again, on the same port, with the test page beside its own routes
    // (outside its security headers: the page has an inline script and frames another origin).
    ap.running.shutdown(Duration::ZERO).await.unwrap();
    let page = host_page(&rpo);
    let app = Router::new()
        .route(HOST_PAGE, get(move || async move { Html(page) }))
        .merge(dar_server::app_with(
            ap.state.clone(),
            dar_server::pages(&ap.state),
        ));
    // The old listener's socket may take a moment to go: retry the bind for a few seconds.
    let mut attempts = 0;
    let ap_running = loop {
        match dar_server::start(&ap.config, &ap.state, app.clone()).await {
            Ok(running) => break running,
            Err(dar_server::ServerError::Bind { .. }) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot restart the account provider: {e}"),
        }
    };

    let mut chrome = Chrome::start("iframe-", &dir.join("profile")).await;
    chrome.sign_up(&apo, "alice", false).await;
    chrome.sign_up(&rpo, "rita", false).await;
    set_up_recovery(&mut chrome, &apo, &rpo, false).await;
    let token = chrome.value("input[name=token]").await;
    let fragment = serde_urlencoded::to_string([("token", &token)]).unwrap();
    chrome.goto(&format!("{apo}{HOST_PAGE}#{fragment}")).await;

    // ready, binding, the save's result, the broken token's result.
    let start = Instant::now();
    let log = loop {
        let items = chrome
            .client
            .find_all(Locator::Css("#log li"))
            .await
            .unwrap();
        if items.len() >= 4 {
            let mut log = Vec::new();
            for item in items {
                let text = item.text().await.unwrap();
                log.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
            }
            break log;
        }
        assert!(
            start.elapsed() < WAIT,
            "the iframe answered {} messages: {}",
            items.len(),
            chrome.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    chrome.shot("ap-page-with-rp-iframe").await;
    let kind = "delegated-account-recovery-api-message";
    assert_eq!(log[0], json!({ kind: "ready" }));
    assert_eq!(
        log[1],
        json!({ kind: "binding", "binding": "", "in-reply-to": "b1" })
    );
    // The two providers are different sites (localhost and 127.0.0.1, as in production): the
    // frame carries no recovery provider session (SameSite=Lax), so no token is saved without
    // the user's interaction, and the API says so instead of hanging or saving blind. The
    // signed-in, same-site success path is covered by the unit tests in src/rp/iframe/tests.rs.
    assert_eq!(
        log[2],
        json!({ kind: "save-token-result", "result": "save-token-failure", "in-reply-to": "s1" })
    );
    assert_eq!(
        log[3],
        json!({ kind: "save-token-result", "result": "save-token-failure", "in-reply-to": "s2" })
    );
    chrome.goto(&format!("{rpo}/rp/tokens")).await;
    assert!(
        chrome
            .client
            .find_all(Locator::Css("input[name=token_id]"))
            .await
            .unwrap()
            .is_empty(),
        "{}",
        chrome.text().await
    );

    chrome.close().await;
    ap_running.shutdown(Duration::ZERO).await.unwrap();
    rp.running.shutdown(Duration::ZERO).await.unwrap();
}
