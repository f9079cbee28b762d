//! Shared test fixtures: a configuration, in-memory keys, an application to drive with
//! `oneshot`, and temporary directories.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use dar_core::{Layout, Sealer, SealingKey, SigningKey};
use tower::ServiceExt as _;

use crate::config::Config;
use crate::state::{AccountProviderSlot, AppState, RecoveryProviderSlot, Roles};

pub(crate) const ORIGIN: &str = "https://dar.test";

/// A configuration with both roles; `extra` is appended (new tables only, or top-level keys
/// when `top` is given).
pub(crate) fn config_with(top: &str, extra: &str) -> Config {
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_origin = "{ORIGIN}"
database = "sqlite::memory:"
privacy_policy = "/privacy"
icon_152px = "/icon.png"
{top}
[tls]
local_ca_dir = "tls"

[account_provider]
signing_keys = ["ap.pem"]
sealing_keys = [{{ id = 1, file = "seal.hex" }}]
allowed_recovery_providers = ["https://rp.example.net"]

[recovery_provider]
countersign_keys = ["rp.pem"]
save_token_async_api_iframe_path = "/dar/save-token-iframe"
{extra}
"#
    );
    match Config::from_toml_str(&text, Path::new("test.toml"), Path::new("/etc/dar")) {
        Ok(config) => config,
        Err(e) => panic!("test configuration: {e}"),
    }
}

pub(crate) fn config() -> Config {
    config_with("", "")
}

/// Roles with fixed in-memory keys for the configuration's settings.
pub(crate) fn roles(config: &Config) -> Roles {
    Roles {
        account_provider: config
            .account_provider
            .clone()
            .map(|settings| AccountProviderSlot {
                settings,
                signing_keys: vec![SigningKey::from_scalar_bytes(&[7; 32]).unwrap()],
                sealer: Sealer::new(vec![SealingKey::new(1, [9; 32])], 1, Layout::DarV1).unwrap(),
                sealing_keys: vec![SealingKey::new(1, [9; 32])],
            }),
        recovery_provider: config
            .recovery_provider
            .clone()
            .map(|settings| RecoveryProviderSlot {
                settings,
                countersign_keys: vec![SigningKey::from_scalar_bytes(&[8; 32]).unwrap()],
            }),
    }
}

pub(crate) fn state(config: &Config) -> AppState {
    AppState::new(
        config,
        roles(config),
        axum_extra::extract::cookie::Key::from(&[3; 64]),
    )
    .unwrap()
}

pub(crate) const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    40000,
);

/// Sends one request through an application, as if from [`PEER`].
pub(crate) async fn send(app: Router, mut request: Request<Body>) -> Response<Body> {
    request.extensions_mut().insert(ConnectInfo(PEER));
    app.oneshot(request).await.unwrap()
}

/// The body as JSON.
pub(crate) async fn json(response: Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The body as bytes.
pub(crate) async fn bytes(response: Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec()
}

/// A fresh empty directory for one test (names are unique per test, so reruns reuse them
/// instead of piling up).
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("dar-server-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// The system clock in Unix seconds: the time of the states these tests build, which keep the
/// default [`SystemClock`](crate::clock::SystemClock).
pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
