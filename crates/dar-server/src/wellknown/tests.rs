use axum::body::Body;
use axum::http::{Request, StatusCode};
use dar_core::Configuration;

use super::*;
use crate::testutil::{self, config, get, send, state};

#[tokio::test]
async fn serves_the_configuration_document() {
    let response = send(crate::app(state(&config())), get(CONFIGURATION_PATH)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        CONFIGURATION_CACHE_CONTROL
    );
    let body = testutil::bytes(response).await;
    let doc = Configuration::from_json(&body, false).unwrap();
    // One document for both roles (§2).
    assert!(doc.account_provider().is_some() && doc.recovery_provider().is_some());
    assert_eq!(
        doc.recovery_provider()
            .unwrap()
            .save_token_async_api_iframe
            .as_ref()
            .unwrap()
            .as_string(),
        "https://dar.test/dar/save-token-iframe"
    );
}

#[tokio::test]
async fn answers_head_for_the_configuration() {
    let req = Request::head(CONFIGURATION_PATH)
        .body(Body::empty())
        .unwrap();
    let response = send(crate::app(state(&config())), req).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_status_is_a_503_placeholder_on_an_account_provider() {
    for method in ["GET", "POST"] {
        let req = Request::builder()
            .method(method)
            .uri(TOKEN_STATUS_PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("id=00&status=deleted"))
            .unwrap();
        let response = send(crate::app(state(&config())), req).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method}"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(testutil::json(response).await["code"], "not_configured");
    }
}

#[tokio::test]
async fn token_status_is_404_without_the_account_provider_role() {
    let c = config();
    let mut rp_only = c.clone();
    rp_only.account_provider = None;
    let response = send(crate::app(state(&rp_only)), get(TOKEN_STATUS_PATH)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_status_body_is_capped_at_1_kib() {
    let req = Request::post(TOKEN_STATUS_PATH)
        .header(header::CONTENT_LENGTH, 2048)
        .body(Body::from(vec![b'a'; 2048]))
        .unwrap();
    // Far below the global 64 KiB: the route's own limit refuses it, before any handler.
    let response = send(crate::app(state(&config())), req).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
