//! `dar demo`: the whole Delegated Account Recovery story on one machine.
//!
//! Sets up an account provider and a recovery provider on loopback over HTTPS (fresh keys, a
//! local CA, one SQLite file each, in a new directory), runs the recovery provider's outbox
//! worker, and drives a scripted browser without JavaScript through the story, printing each
//! step. Nothing secret is printed: no token, key, password or TOTP secret, only token ids.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dar_server::demo::{Demo, DemoError, Page, StatusCode, between};

use crate::cli::DemoArgs;
use crate::output::Failure;

/// How many steps the story has.
const STEPS: usize = 8;
/// The user of the story.
const USER: &str = "alice";

/// Runs `dar demo` (exit 0 only when every step succeeded).
pub(crate) fn run(args: &DemoArgs) -> Result<(), Failure> {
    let dir = prepare_dir(args.dir.as_deref()).map_err(Failure::usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    if args.serve {
        runtime.block_on(serve(&dir))
    } else {
        runtime.block_on(story(&dir))
    }
}

/// Creates `dir` (or a new temporary directory) and checks it is empty.
fn prepare_dir(dir: Option<&Path>) -> Result<PathBuf, String> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => {
            let mut suffix = [0u8; 6];
            getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
            std::env::temp_dir().join(format!("dar-demo-{}", hex::encode(suffix)))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if entries.next().is_some() {
        return Err(format!(
            "{} is not empty: give `dar demo` a new or empty directory",
            dir.display()
        ));
    }
    Ok(dir)
}

async fn set_up(dir: &Path) -> Result<Demo, Failure> {
    println!("dar demo: setting up in {}", dir.display());
    let started = Instant::now();
    match Demo::set_up(dir, "").await {
        Ok(demo) => {
            println!(
                "  account provider  {}  (keys, dar.toml, dar.db in {})",
                demo.ap.origin,
                demo.ap.dir.display()
            );
            println!(
                "  recovery provider {}  (keys, dar.toml, dar.db in {})",
                demo.rp.origin,
                demo.rp.dir.display()
            );
            println!(
                "  local CA          {}  (both serve certificates it signed)",
                demo.ca_file.display()
            );
            println!(
                "  mail              {}  (the recovery provider's notifications, as .eml files)",
                demo.mail_dir.display()
            );
            println!("  ready in {} ms", started.elapsed().as_millis());
            Ok(demo)
        }
        Err(e) => {
            println!("dar demo: set-up failed: {e}");
            Err(Failure::Invalid)
        }
    }
}

/// `dar demo --serve`: both deployments and the outbox worker until Ctrl-C.
async fn serve(dir: &Path) -> Result<(), Failure> {
    let demo = set_up(dir).await?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let worker = demo.spawn_outbox(Duration::from_secs(2), shutdown);
    println!();
    println!("Both deployments are running. In a browser that trusts the local CA certificate");
    println!("  {}", demo.ca_file.display());
    println!(
        "sign up at {0}/signup and at {1}/signup, set up recovery at {0}/ap/recovery/setup, \
         and use {0}/ap/recovery/lost when the second factor is gone.",
        demo.ap.origin, demo.rp.origin
    );
    println!("Press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping");
    let _ = stop.send(true);
    let _ = worker.await;
    demo.shut_down(Duration::from_secs(2)).await.map_err(|e| {
        println!("dar demo: {e}");
        Failure::Invalid
    })
}

/// Numbers, times and prints the steps.
struct Steps {
    done: usize,
}

impl Steps {
    /// Runs one step: prints its title, runs it, prints `ok` with the time taken and the
    /// details it returned, or `FAILED` with the reason.
    async fn run<F>(&mut self, title: &str, step: F) -> Result<(), Failure>
    where
        F: Future<Output = Result<Vec<String>, DemoError>>,
    {
        self.done += 1;
        print!("[{}/{STEPS}] {title} … ", self.done);
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        let result = step.await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(details) => {
                println!("ok ({ms} ms)");
                for line in details {
                    println!("      {line}");
                }
                Ok(())
            }
            Err(e) => {
                println!("FAILED ({ms} ms)");
                println!("      {e}");
                println!();
                println!("dar demo: step {}/{STEPS} failed: {title}: {e}", self.done);
                Err(Failure::Invalid)
            }
        }
    }
}

fn check(condition: bool, message: &str) -> Result<(), DemoError> {
    if condition {
        Ok(())
    } else {
        Err(DemoError::Unexpected(message.to_owned()))
    }
}

/// The `code` and `message` of an error answer (the HTML error page the browser gets).
fn error_code(page: &Page) -> (String, String) {
    page.error()
        .unwrap_or_else(|| ("?".to_owned(), "?".to_owned()))
}

/// `dar demo`: the story.
async fn story(dir: &Path) -> Result<(), Failure> {
    let demo = set_up(dir).await?;
    println!();
    let result = chapters(&demo).await;
    let _ = demo.shut_down(Duration::ZERO).await;
    result?;
    println!();
    println!(
        "Every step succeeded: alice recovered the evidence she needs, and the replay was refused."
    );
    println!(
        "Next: the account provider's lockout-recovery POLICY — what this evidence unlocks \
         (an immediate or a timed unlock, resetting the second factor) — is the next issue and \
         not part of this demo yet: today the account provider records the evidence and \
         unlocks nothing."
    );
    println!("Everything the demo wrote is in {}", dir.display());
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn chapters(demo: &Demo) -> Result<(), Failure> {
    let (apo, rpo) = (demo.ap.origin.clone(), demo.rp.origin.clone());
    let mut browser = demo.browser().map_err(|e| {
        println!("dar demo: {e}");
        Failure::Invalid
    })?;
    let b = &mut browser;
    let mut steps = Steps { done: 0 };

    steps
        .run(
            &format!(
                "{USER} signs up at the account provider {apo} with a password and an \
                 authenticator app (TOTP)"
            ),
            async {
                b.sign_up(&apo, USER).await?;
                Ok(vec![
                    "password stored as an argon2 hash; TOTP enrolled with a code from the app; \
                     signed in with both factors"
                        .to_owned(),
                ])
            },
        )
        .await?;

    steps
        .run(
            &format!("{USER} signs up at the recovery provider {rpo} with a password and TOTP"),
            async {
                b.sign_up(&rpo, USER).await?;
                Ok(vec!["signed in with both factors".to_owned()])
            },
        )
        .await?;

    let mut token_id = String::new();
    steps
        .run(
            &format!("{USER} sets up account recovery at the account provider, choosing {rpo}"),
            async {
                let page = b.get(&format!("{apo}/ap/recovery/setup")).await?;
                page.expect(StatusCode::OK, "the set-up page")?;
                let page = b
                    .post(
                        &format!("{apo}/ap/recovery/setup"),
                        &[
                            ("csrf_token", &page.field("csrf_token")?),
                            ("recovery_provider", &rpo),
                        ],
                    )
                    .await?;
                page.expect(StatusCode::OK, "issuing the token")?;
                let save_url = page.form_action()?;
                check(
                    save_url == format!("{rpo}/dar/save-token"),
                    "the token form does not post to the recovery provider's save-token",
                )?;
                let (token, state) = (page.field("token")?, page.field("state")?);
                let page = b
                    .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
                    .await?;
                page.expect(StatusCode::SEE_OTHER, "save-token")?;
                let confirm_url = format!("{rpo}{}", page.redirect("the confirmation")?);
                let page = b.get(&confirm_url).await?;
                page.expect(StatusCode::OK, "the confirmation page")?;
                check(page.body.contains(&apo), "the confirmation does not name the AP")?;
                let page = b
                    .post(
                        &confirm_url,
                        &[("csrf_token", &page.field("csrf_token")?), ("action", "save")],
                    )
                    .await?;
                page.expect(StatusCode::SEE_OTHER, "confirming the save")?;
                let back = page.redirect("save-token-return")?;
                check(
                    back.starts_with(&format!("{apo}/dar/save-token-return?status=save-success")),
                    "the recovery provider did not return save-success",
                )?;
                let page = b.get(&back).await?;
                page.expect(StatusCode::OK, "save-token-return")?;
                check(
                    page.body.contains("saved your recovery token"),
                    "save-token-return does not confirm the save",
                )?;
                token_id = between(&page.body, "Token id: <code>", "</code>")?;
                let tokens = b.get(&format!("{rpo}/rp/tokens")).await?;
                check(
                    tokens.body.contains(&apo),
                    "the recovery provider does not list the saved token",
                )?;
                Ok(vec![
                    format!("the account provider issued recovery token {token_id} (signed, payload sealed)"),
                    format!("the browser POSTed it cross-site to {save_url}"),
                    format!("{USER} confirmed at the recovery provider, which saved it"),
                    "save-token-return at the account provider: status=save-success, state checked and used up".to_owned(),
                ])
            },
        )
        .await?;

    steps
        .run(
            "the recovery provider's outbox worker calls the account provider back (token-status)",
            async {
                let report = demo.deliver_outbox().await?;
                check(
                    report.delivered >= 1 && report.retrying == 0 && report.given_up == 0,
                    &format!(
                        "the status callback was not delivered ({} delivered, {} retrying, {} given up)",
                        report.delivered, report.retrying, report.given_up
                    ),
                )?;
                let summary = demo.ap_token(&token_id).await?;
                check(summary.state == "saved", "the account provider does not hold the token as saved")?;
                let mut lines = vec![
                    format!(
                        "POST {apo}/.well-known/delegated-account-recovery/token-status \
                         (id={token_id}, status=save-success) over the local CA: delivered"
                    ),
                    format!(
                        "the account provider answered 2xx and holds token {token_id} as: {} \
                         (save-token-return had already recorded it; the callback confirms it, \
                         idempotently)",
                        summary.state
                    ),
                ];
                let mut audit = String::from("its audit trail: ");
                let _ = write!(audit, "{}", summary.audit.join(", "));
                lines.push(audit);
                Ok(lines)
            },
        )
        .await?;

    let mut recover_url = String::new();
    steps
        .run(
            &format!(
                "{USER} loses her second factor and chooses \"I lost my second factor\" at the \
                 account provider"
            ),
            async {
                let page = b.get(&format!("{apo}/ap/recovery/lost")).await?;
                page.expect(StatusCode::OK, "the lost-factor page")?;
                let page = b
                    .post(
                        &format!("{apo}/ap/recovery/lost"),
                        &[
                            ("csrf_token", &page.field("csrf_token")?),
                            ("recovery_provider", &rpo),
                        ],
                    )
                    .await?;
                page.expect(StatusCode::SEE_OTHER, "choosing the recovery provider")?;
                recover_url = page.redirect("recover-account")?;
                check(
                    recover_url.starts_with(&format!("{rpo}/dar/recover-account?issuer=")),
                    "not sent to the recovery provider's recover-account",
                )?;
                Ok(vec![format!(
                    "sent to {rpo}/dar/recover-account with the issuer hint"
                )])
            },
        )
        .await?;

    let mut countersigned = String::new();
    let mut return_url = String::new();
    steps
        .run(
            &format!(
                "{USER} recovers through the recovery provider, signed in there with both factors"
            ),
            async {
                let page = b.get(&recover_url).await?;
                page.expect(StatusCode::OK, "recover-account")?;
                let page = b
                    .post(
                        &format!("{rpo}/rp/recover"),
                        &[
                            ("csrf_token", &page.field("csrf_token")?),
                            ("issuer", &page.field("issuer")?),
                            ("token_id", &page.field("token_id")?),
                        ],
                    )
                    .await?;
                page.expect(StatusCode::OK, "countersigning")?;
                return_url = page.form_action()?;
                check(
                    return_url == format!("{apo}/dar/recover-account-return"),
                    "the countersigned token does not go to the AP's recover-account-return",
                )?;
                countersigned = page.field("countersigned-token")?;
                let report = demo.deliver_outbox().await?;
                check(
                    report.delivered >= 1 && report.retrying == 0 && report.given_up == 0,
                    "the notification was not delivered",
                )?;
                let mails = eml_files(&demo.mail_dir);
                let mail = mails
                    .last()
                    .ok_or_else(|| DemoError::Unexpected("no .eml file was written".to_owned()))?;
                Ok(vec![
                    format!("the recovery provider countersigned token {token_id}"),
                    format!(
                        "its outbox worker told {USER} out of band: {}",
                        mail.display()
                    ),
                ])
            },
        )
        .await?;

    steps
        .run(
            "the account provider checks the countersigned token and shows the evidence",
            async {
                let page = b
                    .post_cross_site(&rpo, &return_url, &[("countersigned-token", &countersigned)])
                    .await?;
                page.expect(StatusCode::OK, "recover-account-return")?;
                check(
                    page.body.contains("nothing has been unlocked") && page.body.contains(&rpo),
                    "the evidence page is not the expected one",
                )?;
                let cs_id = between(&page.body, "<dt>Countersigned token id</dt><dd><code>", "</code>")?;
                let age = between(&page.body, "<dt>Token age</dt><dd>", "</dd>")?;
                let summary = demo.ap_token(&token_id).await?;
                Ok(vec![
                    "checked: the account provider's signature over the token and the recovery \
                     provider's countersignature (its key from its published configuration), \
                     freshness, the replay guard, the sealed payload against the issued token"
                        .to_owned(),
                    format!("evidence: recovery provider {rpo}, token {token_id}, countersigned token {cs_id}, token age {age}"),
                    format!("the account provider now holds token {token_id} as: {}", summary.state),
                ])
            },
        )
        .await?;

    steps
        .run(
            "a replay of the same countersigned token is refused",
            async {
                let page = b
                    .post_cross_site(
                        &rpo,
                        &return_url,
                        &[("countersigned-token", &countersigned)],
                    )
                    .await?;
                page.expect(StatusCode::BAD_REQUEST, "the replay")?;
                let (code, message) = error_code(&page);
                check(
                    code.contains("replay"),
                    &format!("refused, but with code {code}"),
                )?;
                Ok(vec![format!("{} {code}: {message}", page.status.as_u16())])
            },
        )
        .await?;
    Ok(())
}

/// The `.eml` files in `dir`, sorted.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
