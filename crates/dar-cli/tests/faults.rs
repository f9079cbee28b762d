//! Crash safety of `dar serve`: both roles run as child processes of the built binary (from
//! configurations the demo helpers write), a scripted browser drives save-token, recovery and
//! the lockout recovery pages against them, and a seeded random delay later one or both are
//! killed with SIGKILL and restarted on the same port. After every kill the test opens each
//! database (SQLite files; also PostgreSQL schemas when `DAR_TEST_POSTGRES_URL` is set) with
//! `dar_store::Store` and checks that everything the browser saw
//! acknowledged is there and that nothing is half-done. Then timed unlocks are killed around
//! their completion: after the restart each completes exactly once.
//!
//! The seed is printed; `DAR_FAULT_SEED=<n>` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dar_account_provider::{AccountProviderStore as _, TokenState};
use dar_core::TokenId;
use dar_recovery_provider::{RecoveryProviderStore as _, UserId};
use dar_server::demo::{
    Browser, DeploymentSpec, Page, Role, StatusCode, between, free_port, start_deployment_on,
};
use dar_store::{RecoveryState, Store};

/// The timed unlock's waiting period in these deployments (seconds).
const WAITING_SECS: u64 = 3;

/// A small seeded generator (xorshift64*): the kill delays and targets replay from the seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("DAR_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).unwrap();
                u64::from_le_bytes(bytes)
            });
        println!("fault seed: {seed} (replay with DAR_FAULT_SEED={seed})");
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One `dar serve` child process.
struct Server {
    config: PathBuf,
    log: PathBuf,
    origin: String,
    child: Option<Child>,
}

impl Server {
    fn new(dir: &Path, role: Role, port: u16) -> Self {
        let dir = dir.join(role.dir_name());
        Self {
            config: dir.join("dar.toml"),
            log: dir.join("serve.log"),
            origin: format!("https://{}:{port}", role.host()),
            child: None,
        }
    }

    /// The database URL of its `dar.toml`.
    fn database(&self) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        between(&text, "database = \"", "\"").unwrap()
    }

    /// Starts the process and waits until it answers.
    async fn start(&mut self, browser: &mut Browser) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dar"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("{}/signin", self.origin);
        for _ in 0..300 {
            if browser.get(&url).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dar serve exited with {status}; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("dar serve did not answer; see {}", self.log.display());
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the browser saw acknowledged.
#[derive(Default, Debug)]
struct Ledger {
    /// Confirmations the recovery provider answered with save-success.
    rp_saves: usize,
    /// Tokens whose save-token-return the account provider confirmed.
    ap_saved: Vec<TokenId>,
    /// Tokens the recovery provider countersigned (its answer carried the countersigned token).
    rp_countersigned: Vec<TokenId>,
    /// Tokens whose countersigned token recover-account-return accepted.
    ap_recovered: Vec<TokenId>,
    /// Tokens whose evidence joined a lockout recovery (`/recovery/continue` answered).
    attached: Vec<TokenId>,
}

/// The answer, or `None` when a server went away: the request failed (this server was
/// killed), or the server answered 502 `configuration_unavailable` because it could not fetch
/// the configuration of its peer (the peer was killed). Either ends the browser's run; any
/// other answer is checked by the caller.
fn ok_or_stop(page: Result<Page, dar_server::demo::DemoError>) -> Option<Page> {
    let page = page.ok()?;
    if page.status == StatusCode::BAD_GATEWAY {
        let (code, message) = page.error().unwrap();
        assert_eq!(code, "configuration_unavailable", "{message}");
        return None;
    }
    Some(page)
}

/// One save and one recovery, recording each acknowledgement; `None` when a server went away.
async fn save_and_recover(
    b: &mut Browser,
    apo: &str,
    rpo: &str,
    ledger: &mut Ledger,
) -> Option<()> {
    let page = ok_or_stop(b.get(&format!("{apo}/ap/recovery/setup")).await)?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = ok_or_stop(
        b.post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("recovery_provider", rpo),
            ],
        )
        .await,
    )?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let save_url = page.form_action().unwrap();
    let (token, state) = (page.field("token").unwrap(), page.field("state").unwrap());
    let page = ok_or_stop(
        b.post_cross_site(apo, &save_url, &[("token", &token), ("state", &state)])
            .await,
    )?;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    let page = ok_or_stop(b.get(&confirm_url).await)?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = ok_or_stop(
        b.post(
            &confirm_url,
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("action", "save"),
            ],
        )
        .await,
    )?;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = page.location.unwrap();
    assert!(
        back.starts_with(&format!("{apo}/dar/save-token-return?status=save-success")),
        "{back}"
    );
    ledger.rp_saves += 1;
    let page = ok_or_stop(b.get(&back).await)?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let token_id =
        TokenId::from_hex(&between(&page.body, "Token id: <code>", "</code>").unwrap()).unwrap();
    ledger.ap_saved.push(token_id);

    let page = ok_or_stop(
        b.get(&format!("{rpo}/dar/recover-account?{}", issuer_query(apo)))
            .await,
    )?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = ok_or_stop(
        b.post(
            &format!("{rpo}/rp/recover"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("issuer", &page.field("issuer").unwrap()),
                ("token_id", &token_id.to_string()),
            ],
        )
        .await,
    )?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let return_url = page.form_action().unwrap();
    let countersigned = page.field("countersigned-token").unwrap();
    ledger.rp_countersigned.push(token_id);
    let page = ok_or_stop(
        b.post_cross_site(rpo, &return_url, &[("countersigned-token", &countersigned)])
            .await,
    )?;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let to = page.location.unwrap();
    assert!(to.starts_with("/recovery/continue?id="), "{to}");
    ledger.ap_recovered.push(token_id);
    let page = ok_or_stop(b.get(&format!("{apo}{to}")).await)?;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/recovery"));
    ledger.attached.push(token_id);
    Some(())
}

fn issuer_query(apo: &str) -> String {
    format!("issuer={}", apo.replace(':', "%3A").replace('/', "%2F"))
}

/// Checks both databases against the ledger and for half-done state.
async fn check(ap: &Server, rp: &Server, ledger: &Ledger) {
    let store = Store::connect(&ap.database()).await.unwrap();
    let alice = store.account_by_username("alice").await.unwrap().unwrap();
    let account = alice.id.0.to_string();
    let tokens = store.tokens_for_account(&account).await.unwrap();
    let records = store.recoveries_for_account(&account).await.unwrap();
    for id in &ledger.ap_saved {
        let token = tokens.iter().find(|t| t.token_id == *id);
        assert!(
            token.is_some_and(|t| matches!(t.state, TokenState::Saved | TokenState::Used)),
            "acknowledged save of {id} lost: {token:?}"
        );
    }
    for id in &ledger.ap_recovered {
        let token = tokens.iter().find(|t| t.token_id == *id).unwrap();
        assert_eq!(
            token.state,
            TokenState::Used,
            "acknowledged recovery of {id}"
        );
    }
    // Nothing half-done: a token is used exactly when it has a recovery record, and every
    // record's countersigned id is in the replay guard (one transaction).
    for token in &tokens {
        let n = records
            .iter()
            .filter(|r| r.token_id == token.token_id)
            .count();
        let used = usize::from(token.state == TokenState::Used);
        assert_eq!(
            n, used,
            "token {} in {} with {n} records",
            token.token_id, token.state
        );
    }
    for record in &records {
        assert!(
            store.is_replayed(record.countersigned_id).await.unwrap(),
            "recovery of {} without its replay guard entry",
            record.token_id
        );
    }
    // Every attached evidence is in a lockout recovery, and every recovery the policy decided
    // on (any state but collecting) holds the evidence it was decided on.
    let recoveries = store.account_recoveries(alice.id, 1000).await.unwrap();
    let mut references = Vec::new();
    for r in &recoveries {
        let evidence = store.evidence(r.id).await.unwrap();
        if r.state != RecoveryState::Collecting {
            assert!(
                !evidence.is_empty(),
                "recovery {:?} in {:?} without evidence",
                r.id,
                r.state
            );
        }
        if r.state == RecoveryState::Pending {
            assert!(r.completes_at.is_some(), "pending without an end");
        }
        references.extend(evidence.into_iter().map(|e| e.reference));
    }
    for id in &ledger.attached {
        let id = id.to_string();
        assert!(
            references.iter().any(|r| r.contains(&id)),
            "acknowledged evidence of {id} lost"
        );
    }
    // A completed unlock happened once: one audit row per unlocked recovery.
    let unlocked = recoveries
        .iter()
        .filter(|r| r.state == RecoveryState::Unlocked)
        .count();
    let audit = store.audit_events(Some(alice.id), 10_000).await.unwrap();
    let unlock_rows = audit
        .iter()
        .filter(|a| a.event == "recovery.unlocked")
        .count();
    assert_eq!(
        unlock_rows, unlocked,
        "unlock audit rows vs unlocked recoveries"
    );
    store.close().await;

    let store = Store::connect(&rp.database()).await.unwrap();
    let alice = store.account_by_username("alice").await.unwrap().unwrap();
    let user = UserId::new(alice.id.to_string());
    let saved = store.list_tokens(&user).await.unwrap();
    assert!(
        saved.len() >= ledger.rp_saves,
        "{} saves acknowledged, {} stored",
        ledger.rp_saves,
        saved.len()
    );
    for id in &ledger.ap_saved {
        assert!(
            saved.iter().any(|t| t.token_id == *id),
            "token {id} acknowledged by both but not at the recovery provider"
        );
    }
    let exercised = store.list_recoveries(&user).await.unwrap();
    for id in &ledger.rp_countersigned {
        assert!(
            exercised.iter().any(|r| r.token_id == *id),
            "acknowledged countersignature of {id} not recorded"
        );
    }
    store.close().await;
}

/// Writes both configurations (keys, `dar.toml`, local CA) with the demo helpers, then stops
/// the in-process servers so that `dar serve` can take the ports.
async fn write_configs(dir: &Path, ap_port: u16, rp_port: u16, databases: [Option<String>; 2]) {
    let [ap_db, rp_db] = databases;
    let lockout = format!(
        "status_requested = true\n[account_provider.lockout]\nwaiting_period_secs = \
         {WAITING_SECS}\nnotice_interval_secs = 2\nfinal_notice_before_secs = 1\n\
         [account_provider.mail]\ndir = \"../mail\"\nsite_name = \"fault ap\"\n\
         interval_secs = 1\nlease_secs = 2\n"
    );
    let ap = start_deployment_on(
        &DeploymentSpec {
            dir: dir.to_owned(),
            ca_dir: dir.join("tls"),
            role: Role::AccountProvider,
            port: ap_port,
            peer_port: rp_port,
            status_addresses: vec!["127.0.0.1/32".into(), "::1/128".into()],
            extra: lockout,
        },
        ap_db.as_deref(),
    )
    .await
    .unwrap();
    let rp = start_deployment_on(
        &DeploymentSpec {
            dir: dir.to_owned(),
            ca_dir: dir.join("tls"),
            role: Role::RecoveryProvider,
            port: rp_port,
            peer_port: ap_port,
            status_addresses: Vec::new(),
            extra: "[recovery_provider.outbox]\nmail_dir = \"../mail\"\n\
                recipient_domain = \"localhost\"\nsite_name = \"fault rp\"\n"
                .to_owned(),
        },
        rp_db.as_deref(),
    )
    .await
    .unwrap();
    ap.running.shutdown(Duration::ZERO).await.unwrap();
    rp.running.shutdown(Duration::ZERO).await.unwrap();
    ap.state.store().unwrap().close().await;
    rp.state.store().unwrap().close().await;
    // One browser drives everything from one address: lift the per-client rate limit.
    for role in [Role::AccountProvider, Role::RecoveryProvider] {
        let file = dir.join(role.dir_name()).join("dar.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("\n[limits]\nrequests_per_second = 10000\nburst = 10000\n");
        std::fs::write(&file, text).unwrap();
    }
}

fn eml_with(dir: &Path, marker: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.contains(marker))
        .collect()
}

/// Confirms alice's address through the link the lockout worker mails.
async fn verify_email(b: &mut Browser, apo: &str, mail: &Path) {
    let mut link = None;
    for _ in 0..100 {
        if let Some(text) = eml_with(mail, "/account/email/verify?id=").pop() {
            link = Some(between(&text, "/account/email/verify?id=", "\r\n").unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = link.expect("no verification mail");
    let page = b
        .get(&format!("{apo}/account/email/verify?id={id}"))
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = b
        .post(
            &format!("{apo}/account/email/verify"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("id", &id),
            ],
        )
        .await
        .unwrap();
    assert!(
        page.status.is_success() || page.status == StatusCode::SEE_OTHER,
        "{}",
        page.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_sqlite_loses_nothing_acknowledged_and_leaves_nothing_half_done() {
    sigkill_rounds("sqlite", [None, None], 12, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_postgres_loses_nothing_acknowledged_and_leaves_nothing_half_done() {
    let Ok(url) = std::env::var("DAR_TEST_POSTGRES_URL") else {
        println!("DAR_TEST_POSTGRES_URL not set: SIGKILL on PostgreSQL not tested");
        return;
    };
    let mut databases = [None, None];
    for (database, name) in databases
        .iter_mut()
        .zip(["faults_kill_ap", "faults_kill_rp"])
    {
        // A fresh schema per deployment, selected with the connection's search_path.
        let store = dar_store::testing::postgres(name).await.unwrap().unwrap();
        store.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        *database = Some(format!(
            "{url}{separator}options=-c%20search_path%3Dt_{name}"
        ));
    }
    sigkill_rounds("pg", databases, 6, 2).await;
}

/// `rounds` kills during save and recover, then `unlock_rounds` kills around the completion of
/// a timed unlock, on `databases` (account provider, recovery provider; `None`: SQLite files).
#[allow(clippy::too_many_lines)]
async fn sigkill_rounds(
    name: &str,
    databases: [Option<String>; 2],
    rounds: usize,
    unlock_rounds: usize,
) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-cli-faults")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::seeded();
    let (ap_port, rp_port) = (free_port().unwrap(), free_port().unwrap());
    write_configs(&dir, ap_port, rp_port, databases).await;
    let ca = std::fs::read(dir.join("tls").join("ca.pem")).unwrap();
    let mail = dir.join("mail");
    let mut b = Browser::new(&ca).unwrap();
    let mut ap = Server::new(&dir, Role::AccountProvider, ap_port);
    let mut rp = Server::new(&dir, Role::RecoveryProvider, rp_port);
    ap.start(&mut b).await;
    rp.start(&mut b).await;
    let (apo, rpo) = (ap.origin.clone(), rp.origin.clone());
    b.sign_up(&apo, "alice").await.unwrap();
    b.sign_up(&rpo, "alice").await.unwrap();
    verify_email(&mut b, &apo, &mail).await;

    let mut ledger = Ledger::default();
    for round in 0..rounds {
        let delay = Duration::from_millis(50 + rng.below(1500));
        let target = rng.below(3);
        let names =
            ["account provider", "recovery provider", "both"][usize::try_from(target).unwrap()];
        println!("round {round}: SIGKILL {names} after {delay:?}");
        let run = async {
            loop {
                if save_and_recover(&mut b, &apo, &rpo, &mut ledger)
                    .await
                    .is_none()
                {
                    break;
                }
            }
        };
        let kill = async {
            tokio::time::sleep(delay).await;
            if target != 1 {
                ap.kill();
            }
            if target != 0 {
                rp.kill();
            }
        };
        // The browser runs until a request meets a killed server.
        tokio::join!(run, kill);
        // Whatever is still running is stopped too, so the databases are read at rest.
        ap.kill();
        rp.kill();
        check(&ap, &rp, &ledger).await;
        ap.start(&mut b).await;
        rp.start(&mut b).await;
    }
    println!(
        "acknowledged: {} saves at the recovery provider, {} at the account provider, {} \
         countersignatures, {} recoveries, {} evidences attached",
        ledger.rp_saves,
        ledger.ap_saved.len(),
        ledger.rp_countersigned.len(),
        ledger.ap_recovered.len(),
        ledger.attached.len()
    );
    assert!(
        !ledger.attached.is_empty(),
        "no round got through a recovery"
    );

    // Timed unlocks: finish the collecting recovery (a delegated token earns a timed unlock),
    // kill the account provider around the end of the waiting period, restart, and see it
    // complete exactly once.
    let store_url = ap.database();
    for round in 0..unlock_rounds {
        // Both servers are up: the whole round trip goes through.
        save_and_recover(&mut b, &apo, &rpo, &mut ledger)
            .await
            .expect("a server went away");
        let page = b.get(&format!("{apo}/recovery")).await.unwrap();
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = b
            .post(
                &format!("{apo}/recovery/finish"),
                &[("csrf_token", &page.field("csrf_token").unwrap())],
            )
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("completes-at"), "{}", page.body);
        let mails_before = eml_with(&mail, "Your account was recovered").len();
        let delay = Duration::from_millis(WAITING_SECS * 1000 - 1000 + rng.below(2500));
        println!("unlock round {round}: SIGKILL account provider after {delay:?}");
        tokio::time::sleep(delay).await;
        ap.kill();
        check(&ap, &rp, &ledger).await;
        ap.start(&mut b).await;
        let store = Store::connect(&store_url).await.unwrap();
        let alice = store.account_by_username("alice").await.unwrap().unwrap();
        let mut done = false;
        for _ in 0..200 {
            let recoveries = store.account_recoveries(alice.id, 1000).await.unwrap();
            if recoveries.iter().all(|r| r.state != RecoveryState::Pending)
                && eml_with(&mail, "Your account was recovered").len() > mails_before
            {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(done, "the timed unlock did not complete after the restart");
        let alice = store.account_by_username("alice").await.unwrap().unwrap();
        assert!(
            alice.totp_secret.is_none(),
            "the second factor survived the unlock"
        );
        // Exactly once: one audit row per unlocked recovery (checked below), one more unlocked
        // recovery per round, and one notice mail per unlock (to the one verified address).
        // Mail files are named after their outbox row, so a delivery repeated after the kill
        // rewrites the same file: one more file is one more row queued.
        let recoveries = store.account_recoveries(alice.id, 1000).await.unwrap();
        let unlocked = recoveries
            .iter()
            .filter(|r| r.state == RecoveryState::Unlocked)
            .count();
        assert_eq!(unlocked, round + 1);
        store.close().await;
        check(&ap, &rp, &ledger).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            eml_with(&mail, "Your account was recovered").len(),
            mails_before + 1,
            "the unlock notice was not mailed exactly once"
        );
        // Every session was revoked: sign in again and enrol a new second factor.
        let page = b.get(&format!("{apo}/account")).await.unwrap();
        assert_ne!(page.status, StatusCode::OK, "a session survived the unlock");
        let page = b.get(&format!("{apo}/signin")).await.unwrap();
        let page = b
            .post(
                &format!("{apo}/signin"),
                &[
                    ("csrf_token", &page.field("csrf_token").unwrap()),
                    ("username", "alice"),
                    ("password", dar_server::demo::PASSWORD),
                ],
            )
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        b.enrol_totp(&apo).await.unwrap();
    }
    ap.kill();
    rp.kill();
    check(&ap, &rp, &ledger).await;
}
