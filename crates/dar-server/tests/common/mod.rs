//! The set-up `web.rs` and `negative.rs` share: an account provider and a recovery provider
//! started over real HTTPS on loopback with a shared local CA, on SQLite files or, when
//! `DAR_TEST_POSTGRES_URL` is set, also on PostgreSQL (one fresh schema per deployment), and a
//! browser signed up at both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dar_server::demo::{Browser, Deployment, DeploymentSpec, Role, free_port, start_deployment_on};

/// Where a test's deployments keep their state.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// A SQLite file in each deployment's directory.
    Sqlite,
    /// A fresh schema per deployment in the database at this URL.
    Postgres(String),
}

impl Backend {
    /// SQLite always; PostgreSQL too when `DAR_TEST_POSTGRES_URL` is set.
    pub(crate) fn all() -> Vec<Self> {
        let mut all = vec![Self::Sqlite];
        match std::env::var("DAR_TEST_POSTGRES_URL") {
            Ok(url) => all.push(Self::Postgres(url)),
            Err(_) => println!("DAR_TEST_POSTGRES_URL not set: PostgreSQL not tested"),
        }
        all
    }

    /// A short name for directories and schemas.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "pg",
        }
    }

    /// The database URL for the deployment named `name` (lower-case letters, digits and `_`):
    /// `None` for SQLite (the deployment's own file); for PostgreSQL the schema `t_<name>`,
    /// dropped and created afresh, selected with the connection's `search_path` option.
    async fn database(&self, name: &str) -> Option<String> {
        let Self::Postgres(url) = self else {
            return None;
        };
        assert!(
            name.len() <= 58
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "schema name {name}"
        );
        // The store helper drops and creates the schema (and migrates it); the server then
        // opens it by URL.
        let store = dar_store::testing::postgres(name).await.unwrap().unwrap();
        store.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(format!(
            "{url}{separator}options=-c%20search_path%3Dt_{name}"
        ))
    }
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-server-web")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts one deployment playing `role` on `port`, trusting the deployment on `peer_port`. An
/// account provider takes token-status calls for its peer only from 192.0.2.0/24 (so the
/// test's own calls are refused).
async fn start(
    dir: &Path,
    role: Role,
    port: u16,
    peer_port: u16,
    extra: &str,
    database: Option<&str>,
) -> Deployment {
    start_deployment_on(
        &DeploymentSpec {
            dir: dir.to_owned(),
            ca_dir: dir.join("tls"),
            role,
            port,
            peer_port,
            status_addresses: vec!["192.0.2.0/24".to_owned()],
            extra: extra.to_owned(),
        },
        database,
    )
    .await
    .unwrap()
}

/// Two deployments that trust each other, and a browser with an account at each (`alice` at
/// the account provider, `rita` at the recovery provider), signed in with both factors.
pub(crate) struct Pair {
    /// The account provider.
    pub(crate) ap: Deployment,
    /// The recovery provider.
    pub(crate) rp: Deployment,
    /// The account provider's origin.
    pub(crate) apo: String,
    /// The recovery provider's origin.
    pub(crate) rpo: String,
    /// The browser.
    pub(crate) browser: Browser,
}

impl Pair {
    /// Starts the pair for the test `name` on `backend`; `rp_extra` goes into the recovery
    /// provider's `[recovery_provider]` table.
    pub(crate) async fn start(name: &str, backend: &Backend, rp_extra: &str) -> Self {
        let name = format!("{name}_{}", backend.label());
        let dir = temp_dir(&name);
        let (ap_port, rp_port) = (free_port().unwrap(), free_port().unwrap());
        let ap_db = backend.database(&format!("{name}_ap")).await;
        let rp_db = backend.database(&format!("{name}_rp")).await;
        let ap = start(
            &dir,
            Role::AccountProvider,
            ap_port,
            rp_port,
            "",
            ap_db.as_deref(),
        )
        .await;
        let rp = start(
            &dir,
            Role::RecoveryProvider,
            rp_port,
            ap_port,
            rp_extra,
            rp_db.as_deref(),
        )
        .await;
        let ca = std::fs::read(dir.join("tls").join("ca.pem")).unwrap();
        let mut browser = Browser::new(&ca).unwrap();
        let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());
        browser.sign_up(&apo, "alice").await.unwrap();
        browser.sign_up(&rpo, "rita").await.unwrap();
        Self {
            ap,
            rp,
            apo,
            rpo,
            browser,
        }
    }

    /// Stops both servers at once.
    pub(crate) async fn stop(self) {
        self.ap.running.shutdown(Duration::ZERO).await.unwrap();
        self.rp.running.shutdown(Duration::ZERO).await.unwrap();
    }
}
