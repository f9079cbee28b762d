use std::sync::Arc;

use axum::http::StatusCode;
use time::{Duration, OffsetDateTime};

use crate::auth::tests::{Browser, PASSWORD, code_at_time};
use crate::auth::with_next;
use crate::clock::ManualClock;

const SAVE_TOKEN: &str = "/dar/save-token";
const RECOVER: &str = "/dar/recover-account";

#[tokio::test]
async fn save_token_is_post_only_and_parks_the_form() {
    let (mut browser, _store) = Browser::signed_in("rita").await;
    let page = browser.get(SAVE_TOKEN).await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.body.contains("POST only"));
    let mut cross_site = browser.other();
    let page = cross_site.post(SAVE_TOKEN, &[("state", "s")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = cross_site
        .post(SAVE_TOKEN, &[("token", "AAAA"), ("state", "s")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let to = page.location.unwrap();
    assert!(to.starts_with("/rp/save?id="), "{to}");
    // Signed out: to sign-in, coming back; the parked form waits.
    let page = cross_site.get(&to).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location
            .unwrap()
            .starts_with("/signin?next=%2Frp%2Fsave%3Fid%3D")
    );
    // A token that does not decode: refused, and the parked form is gone.
    let page = browser.get(&to).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert_eq!(browser.get(&to).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        browser.get("/rp/save?id=unknown").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn recover_account_post_continues_as_a_same_origin_get() {
    let (mut browser, _store) = Browser::signed_in("sam").await;
    let mut cross_site = browser.other();
    let page = cross_site
        .post(RECOVER, &[("issuer", "https://ap.example.com")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let to = page.location.unwrap();
    assert_eq!(to, format!("{RECOVER}?issuer=https%3A%2F%2Fap.example.com"));
    let page = browser.get(&to).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("no saved recovery token"));
    let page = browser.get(&format!("{RECOVER}?issuer=nonsense")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn exercising_a_token_needs_a_recent_sign_in() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let (mut browser, _store, _state) = Browser::with_clock(clock.clone()).await;
    let secret = browser.sign_up("rosa", PASSWORD).await;
    let hinted = format!("{RECOVER}?issuer=https%3A%2F%2Fap.example.com");
    assert_eq!(browser.get(&hinted).await.status, StatusCode::OK);

    // Ten minutes (the default) after signing in the page is still open; a second later both
    // the page and the countersigning POST send the user through sign-in, coming back to the
    // page (the POST cannot be replayed). The POST names a token the user does not hold: it
    // would be 404, so the sign-in check runs before anything else is looked at.
    clock.advance(Duration::minutes(10));
    assert_eq!(browser.get(&hinted).await.status, StatusCode::OK);
    clock.advance(Duration::seconds(1));
    let page = browser.get(&hinted).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location, Some(with_next("/signin", &hinted)));
    let id = "ab".repeat(16);
    let page = countersign(&mut browser, &id).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let back = format!("{hinted}&id={id}");
    assert_eq!(page.location, Some(with_next("/signin", &back)));

    // Signing in again (both factors) opens them again.
    let page = browser
        .sign_in_with_code("rosa", &code_at_time(&secret, browser.now()))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(browser.get(&hinted).await.status, StatusCode::OK);
    let page = countersign(&mut browser, &id).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
}

/// The countersign button of the recover-account page, for the token `id` of ap.example.com.
async fn countersign(browser: &mut Browser, id: &str) -> crate::auth::tests::Page {
    let csrf = browser.get("/account").await.csrf();
    browser
        .post(
            "/rp/recover",
            &[
                ("csrf_token", &csrf),
                ("issuer", "https://ap.example.com"),
                ("token_id", id),
            ],
        )
        .await
}
