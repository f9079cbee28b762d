//! Both roles end to end over real HTTPS on loopback: two started servers (an account provider
//! and a recovery provider) sharing a local CA, SQLite files in a temporary directory (and, when
//! `DAR_TEST_POSTGRES_URL` is set, PostgreSQL schemas too), and a browser without JavaScript
//! ([`dar_server::demo::Browser`]: reqwest with redirects off, cookies kept per origin by hand,
//! 303s followed by hand; cross-site POSTs carry no cookie, as with `SameSite=Lax`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, Pair};
use dar_server::demo::between;
use reqwest::StatusCode;

#[tokio::test]
async fn save_and_recover_across_two_deployments() {
    for backend in Backend::all() {
        save_and_recover(&backend).await;
    }
}

async fn save_and_recover(backend: &Backend) {
    let mut pair = Pair::start("web_save_and_recover", backend, "").await;
    let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
    let browser = &mut pair.browser;

    // §3.1 at the account provider: choose the recovery provider, get the token form.
    let page = browser
        .get(&format!("{apo}/ap/recovery/setup"))
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK);
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("recovery_provider", &rpo),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let save_url = page.form_action().unwrap();
    assert_eq!(save_url, format!("{rpo}/dar/save-token"));
    let (token, state) = (page.field("token").unwrap(), page.field("state").unwrap());

    // Negative: a tampered token is refused and nothing is saved.
    let mut tampered = token.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &tampered), ("state", "x")])
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let parked = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&parked).await.unwrap();
    assert!(
        page.status == StatusCode::SEE_OTHER || page.status.is_client_error(),
        "{} {}",
        page.status,
        page.body
    );
    if page.status == StatusCode::SEE_OTHER {
        assert!(page.location.unwrap().contains("status=save-failure"));
    }
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    assert!(
        tokens.body.contains("no saved recovery tokens"),
        "{}",
        tokens.body
    );

    // Negative: GET on save-token, and an oversize body.
    let page = browser.get(&save_url).await.unwrap();
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    let big = "A".repeat(3 * 8 * 1024);
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &big)])
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);

    // A login hint (§3.1) that names someone else: the confirmation warns (and the parked
    // request is left to expire).
    const WARNING: &str = "Check the account.";
    let page = browser
        .post_cross_site(
            &apo,
            &save_url,
            &[
                ("token", &token),
                ("state", &state),
                ("login_hint", "someone-else@example.org"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let hinted = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&hinted).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(WARNING), "{}", page.body);
    // One that names the account signed in here (rita) does not.
    let page = browser
        .post_cross_site(
            &apo,
            &save_url,
            &[("token", &token), ("state", &state), ("login_hint", "Rita")],
        )
        .await
        .unwrap();
    let hinted = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&hinted).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains(WARNING), "{}", page.body);

    // The real save: parked, confirmed at the recovery provider, back to the account provider.
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    let page = browser.get(&confirm_url).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&apo));
    assert!(!page.body.contains(WARNING), "{}", page.body);
    // Negative: the confirmation needs the CSRF token.
    let page2 = browser
        .post(&confirm_url, &[("action", "save")])
        .await
        .unwrap();
    assert_eq!(page2.status, StatusCode::FORBIDDEN);
    // The user names the token (§3.1.1 step 12); a nickname over the bound is refused and the
    // parked request stays for a second try.
    let csrf = page.field("csrf_token").unwrap();
    let too_long = "n".repeat(257);
    let refused = browser
        .post(
            &confirm_url,
            &[
                ("csrf_token", &csrf),
                ("action", "save"),
                ("nickname", &too_long),
            ],
        )
        .await
        .unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("the nickname is too long"),
        "{}",
        refused.body
    );
    let page = browser
        .post(
            &confirm_url,
            &[
                ("csrf_token", &csrf),
                ("action", "save"),
                ("nickname", " work laptop "),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = page.location.unwrap();
    assert!(back.starts_with(&format!("{apo}/dar/save-token-return?status=save-success")));
    let page = browser.get(&back).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("saved your recovery token"));
    // The state is single-use.
    assert_eq!(
        browser.get(&back).await.unwrap().status,
        StatusCode::BAD_REQUEST
    );
    let token_id = between(&page.body, "Token id: <code>", "</code>").unwrap();
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    assert!(tokens.body.contains(&apo), "{}", tokens.body);
    assert!(
        tokens
            .body
            .contains(r#"name="nickname" value="work laptop""#),
        "{}",
        tokens.body
    );

    // Negative: a token-status call from an address the recovery provider does not use is
    // refused, and changes nothing (the recovery below still succeeds).
    let status_url = format!("{apo}/.well-known/delegated-account-recovery/token-status");
    let page = browser
        .post_cross_site(
            &rpo,
            &status_url,
            &[("id", &token_id), ("status", "deleted")],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("forbidden_address"), "{}", page.body);

    // "I lost my second factor" at the account provider sends the browser to the recovery
    // provider's recover-account with the issuer hint (§3.4 step 1).
    let page = browser
        .get(&format!("{apo}/ap/recovery/lost"))
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/lost"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("recovery_provider", &rpo),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let recover_url = page.location.unwrap();
    let issuer = serde_urlencoded::to_string([("issuer", &apo)]).unwrap();
    assert_eq!(recover_url, format!("{rpo}/dar/recover-account?{issuer}"));

    // §3.4 at the recovery provider (signed in with both factors); §3.5 at the account
    // provider.
    let page = browser.get(&recover_url).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
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
    let return_url = page.form_action().unwrap();
    assert_eq!(return_url, format!("{apo}/dar/recover-account-return"));
    let countersigned = page.field("countersigned-token").unwrap();
    let page = browser
        .post_cross_site(
            &rpo,
            &return_url,
            &[("countersigned-token", &countersigned)],
        )
        .await
        .unwrap();
    // The evidence joins the browser's lockout recovery, whose policy decides: one delegated
    // token alone earns a timed unlock (spec/lockout-policy.md).
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let to = page.redirect("the lockout recovery").unwrap();
    assert!(to.starts_with("/recovery/continue?id="), "{to}");
    let page = browser.get(&format!("{apo}{to}")).await.unwrap();
    assert_eq!(page.redirect("the recovery page").unwrap(), "/recovery");
    let page = browser.get(&format!("{apo}/recovery")).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("timed unlock"), "{}", page.body);
    assert!(page.body.contains(&rpo));
    // The parked evidence is taken once.
    let page = browser.get(&format!("{apo}{to}")).await.unwrap();
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // Negative: a replayed countersigned token, and GET on recover-account-return.
    let page = browser
        .post_cross_site(
            &rpo,
            &return_url,
            &[("countersigned-token", &countersigned)],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("replayed"), "{}", page.body);
    let page = browser.get(&return_url).await.unwrap();
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.body.contains("POST only"));

    // Renaming the token needs the CSRF token and a nickname the save would take.
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    let rename = |csrf: Option<&str>, nickname: &str| {
        let mut fields = vec![
            ("issuer", tokens.field("issuer").unwrap()),
            ("token_id", tokens.field("token_id").unwrap()),
            ("nickname", nickname.to_owned()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf_token", csrf.to_owned()));
        }
        fields
    };
    let csrf = tokens.field("csrf_token").unwrap();
    let too_long = "x".repeat(257);
    for (fields, status) in [
        (rename(None, "phone"), StatusCode::FORBIDDEN),
        (rename(Some(&csrf), &too_long), StatusCode::BAD_REQUEST),
        (rename(Some(&csrf), "phone"), StatusCode::SEE_OTHER),
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = browser
            .post(&format!("{rpo}/rp/tokens/rename"), &fields)
            .await
            .unwrap();
        assert_eq!(page.status, status, "{}", page.body);
    }
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    assert!(
        tokens.body.contains(r#"name="nickname" value="phone""#),
        "{}",
        tokens.body
    );

    // Deleting the token at the recovery provider needs the CSRF token.
    let page = browser
        .post(
            &format!("{rpo}/rp/tokens/delete"),
            &[
                ("issuer", &tokens.field("issuer").unwrap()),
                ("token_id", &tokens.field("token_id").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = browser
        .post(
            &format!("{rpo}/rp/tokens/delete"),
            &[
                ("csrf_token", &tokens.field("csrf_token").unwrap()),
                ("issuer", &tokens.field("issuer").unwrap()),
                ("token_id", &tokens.field("token_id").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    assert!(tokens.body.contains("no saved recovery tokens"));

    pair.stop().await;
}

#[tokio::test]
async fn a_recovery_provider_declines_account_providers_it_does_not_allow() {
    let mut pair = Pair::start(
        "web_not_allowed",
        &Backend::Sqlite,
        "allowed_account_providers = [\"https://ap.example.com\"]\n",
    )
    .await;
    let (apo, rpo) = (pair.apo.clone(), pair.rpo.clone());
    let browser = &mut pair.browser;

    let page = browser
        .get(&format!("{apo}/ap/recovery/setup"))
        .await
        .unwrap();
    let page = browser
        .post(
            &format!("{apo}/ap/recovery/setup"),
            &[
                ("csrf_token", &page.field("csrf_token").unwrap()),
                ("recovery_provider", &rpo),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let save_url = page.form_action().unwrap();
    let (token, state) = (page.field("token").unwrap(), page.field("state").unwrap());
    let page = browser
        .post_cross_site(&apo, &save_url, &[("token", &token), ("state", &state)])
        .await
        .unwrap();
    let confirm_url = format!("{rpo}{}", page.location.unwrap());
    // No interstitial: declined at once, back to the account provider with save-failure.
    let page = browser.get(&confirm_url).await.unwrap();
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = page.location.unwrap();
    assert!(back.contains("status=save-failure"), "{back}");
    let page = browser.get(&back).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("did not save"));
    let tokens = browser.get(&format!("{rpo}/rp/tokens")).await.unwrap();
    assert!(tokens.body.contains("no saved recovery tokens"));

    pair.stop().await;
}
