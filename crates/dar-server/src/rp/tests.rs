use axum::http::StatusCode;

use crate::auth::tests::Browser;

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
