use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::auth::tests::Browser;

const SAVE_RETURN: &str = "/dar/save-token-return";
const RECOVER_RETURN: &str = "/dar/recover-account-return";
const TOKEN_STATUS: &str = "/.well-known/delegated-account-recovery/token-status";

#[tokio::test]
async fn setup_lists_only_allowed_recovery_providers() {
    let (mut browser, _store) = Browser::signed_in("alice").await;
    let page = browser.get("/ap/recovery/setup").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"https://rp.example.net\""));
    let csrf = page.csrf();
    let page = browser
        .post(
            "/ap/recovery/setup",
            &[
                ("csrf_token", &csrf),
                ("recovery_provider", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("unknown_recovery_provider"),
        "{}",
        page.body
    );
    // Signed out: sent to sign in, coming back.
    let mut other = browser.other();
    let page = other.get("/ap/recovery/setup").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/signin?next=%2Fap%2Frecovery%2Fsetup")
    );
}

#[tokio::test]
async fn save_token_return_post_is_parked_for_the_signed_in_page() {
    let (mut browser, _store) = Browser::signed_in("bob").await;
    // The cross-site POST carries no cookie.
    let mut cross_site = browser.other();
    let page = cross_site
        .post(
            SAVE_RETURN,
            &[("state", "no-such-state"), ("status", "save-success")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let to = page.location.unwrap();
    assert!(to.starts_with("/ap/save-return?id="), "{to}");
    // The parked page needs sign-in, and does not consume the parked request before it.
    let page = cross_site.get(&to).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // Signed in: the state is checked by the role (unknown here), once.
    let page = browser.get(&to).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("state"), "{}", page.body);
    assert_eq!(browser.get(&to).await.status, StatusCode::NOT_FOUND);
    // A POST missing a field is refused before anything is parked.
    let page = cross_site.post(SAVE_RETURN, &[("state", "x")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn recover_account_return_refuses_get_bad_tokens_and_oversize_bodies() {
    let (mut browser, _store) = Browser::new().await;
    let page = browser
        .get(&format!("{RECOVER_RETURN}?countersigned-token=AAAA"))
        .await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.body.contains("POST only"), "{}", page.body);

    let page = browser
        .post(RECOVER_RETURN, &[("countersigned-token", "AAAA")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);

    let big = "A".repeat(super::RECOVER_ACCOUNT_RETURN_BODY_LIMIT + 1);
    let page = browser
        .post(RECOVER_RETURN, &[("countersigned-token", big.as_str())])
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn token_status_reaches_the_role() {
    let (mut browser, _store) = Browser::new().await;
    // An id never issued: 200, nothing learned, nothing changed.
    let id = "00112233445566778899aabbccddeeff";
    let page = browser
        .post(TOKEN_STATUS, &[("id", id), ("status", "deleted")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .send(
            Request::get(format!("{TOKEN_STATUS}?id={id}&status=deleted"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .post(TOKEN_STATUS, &[("id", id), ("status", "exploded")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = browser.post(TOKEN_STATUS, &[("status", "deleted")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = browser
        .send(
            Request::post(TOKEN_STATUS)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(vec![b'a'; 2048]))
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
}
