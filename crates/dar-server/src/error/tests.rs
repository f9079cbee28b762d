use axum::body::Body;
use axum::http::Request;
use serde::Deserialize;

use super::*;
use crate::testutil;

async fn body_of(error: AppError) -> (StatusCode, serde_json::Value) {
    let response = error.into_response();
    (response.status(), testutil::json(response).await)
}

#[tokio::test]
async fn client_fault_is_json_with_code_step_and_message() {
    let (status, body) = body_of(AppError::Csrf(CsrfError::TokenMissing)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "csrf_token_missing");
    assert_eq!(body["step"], "§6.5");
    assert_eq!(body["message"], "the form has no CSRF token");
}

#[tokio::test]
async fn protocol_error_carries_core_code_and_step() {
    let core = dar_core::Error::from(dar_core::DecodeError::Config {
        field: "issuer",
        reason: "missing",
    });
    let (code, step) = (core.code(), core.step());
    let (status, body) = body_of(AppError::from(core)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], code);
    assert_eq!(body["step"], step);
}

#[tokio::test]
async fn internal_fault_has_a_generic_body() {
    let error = AppError::internal("database", "password authentication failed for s3cr3t");
    let (status, body) = body_of(error).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "internal");
    assert_eq!(body["message"], "internal server error");
    assert!(!body.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn rate_limited_sets_retry_after() {
    let response = AppError::RateLimited {
        retry_after_secs: 7,
    }
    .into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "7");
}

#[test]
fn every_variant_has_one_status() {
    let cases = [
        (AppError::BadRequest { message: "x" }, 400),
        (AppError::UnsupportedMediaType, 415),
        (AppError::PayloadTooLarge, 413),
        (AppError::NotFound, 404),
        (AppError::MethodNotAllowed, 405),
        (AppError::Csrf(CsrfError::CrossSite), 403),
        (AppError::Csrf(CsrfError::SessionMissing), 403),
        (AppError::Csrf(CsrfError::TokenMismatch), 403),
        (
            AppError::RateLimited {
                retry_after_secs: 1,
            },
            429,
        ),
        (AppError::Timeout, 503),
        (AppError::NotConfigured { what: "x" }, 503),
        (AppError::internal("x", "y"), 500),
    ];
    let mut codes = std::collections::BTreeSet::new();
    for (error, status) in cases {
        assert_eq!(error.status().as_u16(), status, "{error}");
        assert!(
            codes.insert(error.code()),
            "duplicate code {}",
            error.code()
        );
    }
}

#[test]
fn internal_debug_hides_the_source() {
    let error = AppError::internal("db", "s3cr3t");
    assert!(!format!("{error:?}").contains("s3cr3t"));
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[allow(dead_code)]
    token: String,
}

fn form_request(content_type: &str, body: &str) -> Request<Body> {
    Request::post("/")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn app_form_parses_a_good_body() {
    let req = form_request("application/x-www-form-urlencoded", "token=abc");
    assert!(AppForm::<Probe>::from_request(req, &()).await.is_ok());
}

#[tokio::test]
async fn app_form_maps_wrong_media_type_to_415() {
    let req = form_request("text/plain", "token=abc");
    let e = AppForm::<Probe>::from_request(req, &()).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn app_form_maps_missing_field_to_400_without_quoting_input() {
    let req = form_request("application/x-www-form-urlencoded", "tokn=SECRETVALUE");
    let e = AppForm::<Probe>::from_request(req, &()).await.unwrap_err();
    assert_eq!(e.code(), "bad_request");
    assert!(!e.message().contains("SECRETVALUE"));
}

#[tokio::test]
async fn app_form_maps_oversize_body_to_413() {
    let req = form_request("application/x-www-form-urlencoded", &"a".repeat(4096));
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::post(|AppForm(_): AppForm<Probe>| async { "ok" }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(1024));
    let response = testutil::send(app, req).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(testutil::json(response).await["code"], "payload_too_large");
}

#[tokio::test]
async fn app_json_maps_bad_json_to_400() {
    let req = form_request("application/json", "{\"token\": 5}");
    let e = AppJson::<Probe>::from_request(req, &()).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    let req = form_request("text/plain", "{}");
    let e = AppJson::<Probe>::from_request(req, &()).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = form_request("application/json", "{\"token\": \"t\"}");
    assert!(AppJson::<Probe>::from_request(req, &()).await.is_ok());
}
