use axum::http::{Method, Request};
use dar_core::{CONFIGURATION_PATH, TOKEN_STATUS_PATH};

use super::*;
use crate::testutil::{self, send};

#[tokio::test]
async fn plain_http_answers_401_with_an_empty_body_everywhere() {
    for (method, path) in [
        (Method::GET, CONFIGURATION_PATH),
        (Method::GET, TOKEN_STATUS_PATH),
        (Method::POST, TOKEN_STATUS_PATH),
        (Method::POST, "/dar/save-token"),
        (Method::GET, "/dar/recover-account"),
        (Method::POST, "/dar/recover-account-return"),
        (Method::GET, "/"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Body::from("token=abc"))
            .unwrap();
        let response = send(http_app(), req).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert!(response.headers().get(header::LOCATION).is_none());
        assert!(
            testutil::bytes(response).await.is_empty(),
            "{method} {path}"
        );
    }
}

#[cfg(unix)]
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    use rustix::process::{Resource, getrlimit};
    let soft = raise_open_files_limit();
    let after = getrlimit(Resource::Nofile);
    assert_eq!(after.current, soft);
    let wanted = after.maximum.unwrap_or(MAX_OPEN_FILES).min(MAX_OPEN_FILES);
    // Raised to the hard limit (capped), or already above the cap.
    assert!(
        soft.is_none_or(|soft| soft >= wanted),
        "{soft:?} < {wanted}"
    );
}
