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
use time::OffsetDateTime;

use crate::cli::DemoArgs;
use crate::output::Failure;

/// How many steps the story has.
const STEPS: usize = 10;
/// The user of the story.
const USER: &str = "alice";

/// Runs `dar demo` (exit 0 only when every step succeeded).
pub(crate) fn run(args: &DemoArgs) -> Result<(), Failure> {
    let dir = prepare_dir(args.dir.as_deref(), "dar-demo", "dar demo").map_err(Failure::usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    if args.serve {
        runtime.block_on(serve(&dir))
    } else {
        runtime.block_on(story(&dir, args.cancel))
    }
}

/// Creates `dir` (or a new temporary directory named `<prefix>-<random>`) and checks it is
/// empty; `command` names the command in the error.
pub(crate) fn prepare_dir(
    dir: Option<&Path>,
    prefix: &str,
    command: &str,
) -> Result<PathBuf, String> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => {
            let mut suffix = [0u8; 6];
            getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
            std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(suffix)))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if entries.next().is_some() {
        return Err(format!(
            "{} is not empty: give `{command}` a new or empty directory",
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
                "  mail              {}  (both providers' notices and codes, as .eml files)",
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
    let worker = demo.spawn_outbox(Duration::from_secs(2), shutdown.clone());
    let lockout = demo.spawn_lockout(Duration::from_secs(1), shutdown);
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
    let _ = lockout.await;
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
async fn story(dir: &Path, cancel: bool) -> Result<(), Failure> {
    let demo = set_up(dir).await?;
    println!();
    let result = chapters(&demo, cancel).await;
    let _ = demo.shut_down(Duration::ZERO).await;
    result?;
    println!();
    if cancel {
        println!(
            "Every step succeeded: alice recovered her account at once with a recovery token \
             plus an email code, the replay was refused, and her second recovery, a timed \
             unlock, was cancelled through the link in the notice."
        );
    } else {
        println!(
            "Every step succeeded: alice recovered her account at once with a recovery token \
             plus an email code, the replay was refused, and her second recovery completed as \
             a timed unlock. Run `dar demo --cancel` to see the owner cancel a timed unlock."
        );
    }
    println!("Everything the demo wrote is in {}", dir.display());
    Ok(())
}

/// The account provider's session survived? `false` once it was revoked (the account page
/// then sends the browser to sign in).
async fn signed_in(b: &mut dar_server::demo::Browser, apo: &str) -> Result<bool, DemoError> {
    let page = b.get(&format!("{apo}/account")).await?;
    Ok(page.status == StatusCode::OK)
}

/// Follows `recover-account-return`'s answer to the lockout recovery page.
async fn to_recovery_page(
    b: &mut dar_server::demo::Browser,
    apo: &str,
    page: &Page,
) -> Result<Page, DemoError> {
    page.expect(StatusCode::SEE_OTHER, "recover-account-return")?;
    let to = page.redirect("the lockout recovery")?;
    check(
        to.starts_with("/recovery/continue?id="),
        "the evidence did not go to the lockout recovery",
    )?;
    let page = b.get(&format!("{apo}{to}")).await?;
    page.expect(StatusCode::SEE_OTHER, "attaching the evidence")?;
    let page = b.get(&format!("{apo}/recovery")).await?;
    page.expect(StatusCode::OK, "the recovery page")?;
    Ok(page)
}

/// The decision paragraph of the recovery page, as text.
fn decision(page: &Page) -> Result<String, DemoError> {
    Ok(dar_server::demo::unescape(&between(
        &page.body,
        "<p id=\"decision\">",
        "</p>",
    )?))
}

/// The whole save-token round trip (§3.1, §3.2); returns the token id and what was done.
async fn save_token(
    b: &mut dar_server::demo::Browser,
    apo: &str,
    rpo: &str,
) -> Result<(String, Vec<String>), DemoError> {
    let page = b.get(&format!("{apo}/ap/recovery/setup")).await?;
    page.expect(StatusCode::OK, "the set-up page")?;
    let page = b
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token")?),
                ("recovery_provider", rpo),
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
        .post_cross_site(apo, &save_url, &[("token", &token), ("state", &state)])
        .await?;
    page.expect(StatusCode::SEE_OTHER, "save-token")?;
    let confirm_url = format!("{rpo}{}", page.redirect("the confirmation")?);
    let page = b.get(&confirm_url).await?;
    page.expect(StatusCode::OK, "the confirmation page")?;
    check(
        page.body.contains(apo),
        "the confirmation does not name the AP",
    )?;
    let page = b
        .post(
            &confirm_url,
            &[
                ("csrf_token", &page.field("csrf_token")?),
                ("action", "save"),
            ],
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
    let token_id = between(&page.body, "Token id: <code>", "</code>")?;
    let tokens = b.get(&format!("{rpo}/rp/tokens")).await?;
    check(
        tokens.body.contains(apo),
        "the recovery provider does not list the saved token",
    )?;
    Ok((
        token_id.clone(),
        vec![
            format!("the account provider issued recovery token {token_id} (signed, payload sealed)"),
            format!("the browser POSTed it cross-site to {save_url}"),
            format!("{USER} confirmed at the recovery provider, which saved it"),
            "save-token-return at the account provider: status=save-success, state checked and used up".to_owned(),
        ],
    ))
}

/// "I lost my second factor" → the recovery provider countersigns → the countersigned token
/// and where it goes.
async fn countersign(
    b: &mut dar_server::demo::Browser,
    apo: &str,
    rpo: &str,
    token_id: &str,
) -> Result<(String, String), DemoError> {
    let page = b.get(&format!("{apo}/ap/recovery/lost")).await?;
    page.expect(StatusCode::OK, "the lost-factor page")?;
    let page = b
        .post(
            &format!("{apo}/ap/recovery/lost"),
            &[
                ("csrf_token", &page.field("csrf_token")?),
                ("recovery_provider", rpo),
            ],
        )
        .await?;
    page.expect(StatusCode::SEE_OTHER, "choosing the recovery provider")?;
    let recover_url = page.redirect("recover-account")?;
    check(
        recover_url.starts_with(&format!("{rpo}/dar/recover-account?issuer=")),
        "not sent to the recovery provider's recover-account",
    )?;
    let page = b.get(&recover_url).await?;
    page.expect(StatusCode::OK, "recover-account")?;
    check(
        page.body
            .contains(&format!("name=\"token_id\" value=\"{token_id}\"")),
        "the recovery provider does not offer the newest token",
    )?;
    let page = b
        .post(
            &format!("{rpo}/rp/recover"),
            &[
                ("csrf_token", &page.field("csrf_token")?),
                ("issuer", &page.field("issuer")?),
                ("token_id", token_id),
            ],
        )
        .await?;
    page.expect(StatusCode::OK, "countersigning")?;
    let return_url = page.form_action()?;
    check(
        return_url == format!("{apo}/dar/recover-account-return"),
        "the countersigned token does not go to the AP's recover-account-return",
    )?;
    Ok((return_url, page.field("countersigned-token")?))
}

/// Posts a form of the recovery page.
async fn recovery_form(
    b: &mut dar_server::demo::Browser,
    apo: &str,
    page: &Page,
    action: &str,
    fields: &[(&str, &str)],
) -> Result<Page, DemoError> {
    let csrf = page.field("csrf_token")?;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(&format!("{apo}{action}"), &all).await
}

#[allow(clippy::too_many_lines)]
async fn chapters(demo: &Demo, cancel: bool) -> Result<(), Failure> {
    let (apo, rpo) = (demo.ap.origin.clone(), demo.rp.origin.clone());
    let mut browser = demo.browser().map_err(|e| {
        println!("dar demo: {e}");
        Failure::Invalid
    })?;
    let b = &mut browser;
    let mut steps = Steps { done: 0 };
    let address = format!("{USER}@example.com");

    steps
        .run(
            &format!(
                "{USER} signs up at the account provider {apo} with a password, an \
                 authenticator app (TOTP) and an email address"
            ),
            async {
                b.sign_up(&apo, USER).await?;
                demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
                let mail = demo
                    .newest_mail(&address, "/account/email/verify?id=")
                    .ok_or_else(|| DemoError::Unexpected("no verification mail was written".to_owned()))?;
                let id = between(&mail, "/account/email/verify?id=", "\r\n")?;
                let page = b.get(&format!("{apo}/account/email/verify?id={id}")).await?;
                page.expect(StatusCode::OK, "the address confirmation page")?;
                let page = b
                    .post(
                        &format!("{apo}/account/email/verify"),
                        &[("csrf_token", &page.field("csrf_token")?), ("id", &id)],
                    )
                    .await?;
                check(
                    page.status.is_success() || page.status == StatusCode::SEE_OTHER,
                    &format!("confirming the address answered {}", page.status),
                )?;
                Ok(vec![
                    "password stored as an argon2 hash; TOTP enrolled with a code from the app; \
                     signed in with both factors"
                        .to_owned(),
                    format!(
                        "{address} confirmed through the link mailed to it: security notices go there"
                    ),
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
                let (id, lines) = save_token(b, &apo, &rpo).await?;
                token_id = id;
                Ok(lines)
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

    let mut countersigned = String::new();
    let mut return_url = String::new();
    steps
        .run(
            &format!(
                "{USER} loses her second factor, chooses \"I lost my second factor\", and \
                 recovers through the recovery provider (signed in there with both factors)"
            ),
            async {
                (return_url, countersigned) = countersign(b, &apo, &rpo, &token_id).await?;
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
                    format!("sent to {rpo}/dar/recover-account with the issuer hint"),
                    format!("the recovery provider countersigned token {token_id}"),
                    format!(
                        "its outbox worker told {USER} out of band: {}",
                        mail.display()
                    ),
                ])
            },
        )
        .await?;

    let mut recovery = None;
    steps
        .run(
            "the account provider checks the countersigned token, and its lockout-recovery \
             policy decides",
            async {
                let page = b
                    .post_cross_site(
                        &rpo,
                        &return_url,
                        &[("countersigned-token", &countersigned)],
                    )
                    .await?;
                let page = to_recovery_page(b, &apo, &page).await?;
                check(page.body.contains(&rpo), "the evidence is not listed")?;
                let decided = decision(&page)?;
                check(
                    decided.contains("timed unlock"),
                    &format!("expected a timed unlock, the policy said: {decided}"),
                )?;
                let summary = demo.ap_token(&token_id).await?;
                recovery = Some(page);
                Ok(vec![
                    "checked: the account provider's signature over the token and the recovery \
                     provider's countersignature (its key from its published configuration), \
                     freshness, the replay guard, the sealed payload against the issued token"
                        .to_owned(),
                    format!(
                        "the account provider now holds token {token_id} as: {}",
                        summary.state
                    ),
                    format!("evidence: a recovery token countersigned by {rpo}"),
                    format!("the policy: {decided}"),
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

    steps
        .run(
            &format!(
                "{USER} adds a code mailed to {address}: the policy unlocks at once, resetting \
                 her second factor and signing out every session"
            ),
            async {
                let page = recovery
                    .take()
                    .ok_or_else(|| DemoError::Unexpected("no recovery page".to_owned()))?;
                let email_id = between(&page.body, "name=\"email\" value=\"", "\"")?;
                let page = recovery_form(
                    b,
                    &apo,
                    &page,
                    "/recovery/email/send",
                    &[("email", &email_id)],
                )
                .await?;
                page.expect(StatusCode::OK, "sending the email code")?;
                demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
                let mail = demo
                    .newest_mail(&address, "Your code to recover your account is: ")
                    .ok_or_else(|| DemoError::Unexpected("no email code was mailed".to_owned()))?;
                let code = zeroize::Zeroizing::new(between(
                    &mail,
                    "Your code to recover your account is: ",
                    "\r\n",
                )?);
                let page =
                    recovery_form(b, &apo, &page, "/recovery/email/check", &[("value", &code)])
                        .await?;
                page.expect(StatusCode::OK, "checking the email code")?;
                let decided = decision(&page)?;
                check(
                    decided.contains("unlock your account now"),
                    &format!("expected an unlock, the policy said: {decided}"),
                )?;
                let was_signed_in = signed_in(b, &rpo).await?;
                let page = recovery_form(b, &apo, &page, "/recovery/finish", &[]).await?;
                page.expect(StatusCode::OK, "unlocking")?;
                check(
                    page.body.contains("Your account is unlocked"),
                    "the account was not unlocked",
                )?;
                check(
                    !signed_in(b, &apo).await?,
                    "the account provider's session survived the unlock",
                )?;
                demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
                let notice = demo
                    .newest_mail(&address, "Your account was recovered")
                    .is_some();
                check(notice, "no notice of the unlock was mailed")?;
                check(was_signed_in, "the recovery provider's session was lost")?;
                Ok(vec![
                    format!("the policy: {decided}"),
                    "one transaction: the TOTP secret removed, every session of the account \
                     revoked, the recovery marked unlocked, notices queued, the audit written"
                        .to_owned(),
                    format!("notice mailed to {address}; {USER} is NOT signed in automatically"),
                ])
            },
        )
        .await?;

    steps
        .run(
            &format!(
                "{USER} signs in with her password, must set up a new second factor, and saves a \
                 new recovery token"
            ),
            async {
                let page = b.get(&format!("{apo}/signin")).await?;
                let page = b
                    .post(
                        &format!("{apo}/signin"),
                        &[
                            ("csrf_token", &page.field("csrf_token")?),
                            ("username", USER),
                            ("password", dar_server::demo::PASSWORD),
                        ],
                    )
                    .await?;
                page.expect(StatusCode::SEE_OTHER, "signing in")?;
                let to = page.redirect("enrolment")?;
                check(
                    to.starts_with("/account/totp"),
                    "sign-in did not ask for a new second factor",
                )?;
                b.enrol_totp(&apo).await?;
                let (id, _) = save_token(b, &apo, &rpo).await?;
                token_id = id;
                Ok(vec![
                    "password accepted; the old authenticator no longer exists, so she enrolled \
                     a new one, which came with a new set of recovery codes, before reaching her \
                     account"
                        .to_owned(),
                    format!("new recovery token {token_id} saved at {rpo}"),
                ])
            },
        )
        .await?;

    let title = if cancel {
        format!(
            "{USER}'s second factor is lost again: a timed unlock starts, and the link in its \
             notice cancels it"
        )
    } else {
        format!(
            "{USER}'s second factor is lost again: a timed unlock starts and completes after \
             its waiting period"
        )
    };
    steps
        .run(&title, async {
            let (return_url, countersigned) = countersign(b, &apo, &rpo, &token_id).await?;
            let page = b
                .post_cross_site(&rpo, &return_url, &[("countersigned-token", &countersigned)])
                .await?;
            let page = to_recovery_page(b, &apo, &page).await?;
            let decided = decision(&page)?;
            let page = recovery_form(b, &apo, &page, "/recovery/finish", &[]).await?;
            page.expect(StatusCode::OK, "starting the waiting period")?;
            let completes = between(&page.body, "<strong id=\"completes-at\">", "</strong>")?;
            let started = Instant::now();
            demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
            let mut lines = vec![
                format!("the policy: {decided}"),
                format!("waiting period (demo length) ends at {completes}; every address told, with a cancel link"),
            ];
            if cancel {
                let mail = demo
                    .newest_mail(&address, "/recovery/cancel?c=")
                    .ok_or_else(|| DemoError::Unexpected("no notice with a cancel link".to_owned()))?;
                let secret = between(&mail, "/recovery/cancel?c=", "\r\n")?;
                let page = b.get(&format!("{apo}/recovery/cancel?c={secret}")).await?;
                page.expect(StatusCode::OK, "the cancel page")?;
                let csrf = page.field("csrf_token")?;
                let cancel_url = format!("{apo}/recovery/cancel");
                let page = b
                    .post(&cancel_url, &[("csrf_token", &csrf), ("c", &secret)])
                    .await?;
                page.expect(StatusCode::OK, "cancelling")?;
                check(page.body.contains("Recovery cancelled"), "not cancelled")?;
                let again = b
                    .post(&cancel_url, &[("csrf_token", &csrf), ("c", &secret)])
                    .await?;
                again.expect(StatusCode::GONE, "the used cancel link")?;
                lines.push("the owner opened the link and confirmed: cancelled; nothing about the account changed".to_owned());
                lines.push(format!("the same link again: {} (single use)", again.status.as_u16()));
            } else {
                print!("\n      waiting ");
                let mut unlocked = false;
                let mut notices = 0;
                while started.elapsed() < Duration::from_secs(30) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    print!(".");
                    let _ = std::io::stdout().flush();
                    let report = demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
                    notices += report.notices;
                    if report.unlocked > 0 {
                        unlocked = true;
                        break;
                    }
                }
                println!(" {} s", started.elapsed().as_secs());
                check(unlocked, "the timed unlock did not complete")?;
                demo.deliver_lockout(OffsetDateTime::now_utc()).await?;
                let page = b.get(&format!("{apo}/recovery")).await?;
                check(
                    page.body.contains("Your account is unlocked"),
                    "the recovery page does not show the unlock",
                )?;
                lines.push(format!(
                    "{notices} reminder/final notices mailed while waiting; the worker completed the unlock when the period ended"
                ));
                lines.push("second factor reset and sessions revoked again; she would sign in and enrol as before".to_owned());
            }
            Ok(lines)
        })
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
