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

// ---- HTML error pages ----------------------------------------------------------------------

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn accept(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn browsers_get_pages_programs_and_well_known_paths_get_json() {
    assert!(wants_html("/signin", &accept(BROWSER_ACCEPT)));
    assert!(wants_html(
        "/dar/recover-account-return",
        &accept("text/html")
    ));
    assert!(wants_html(
        "/x",
        &accept("application/json;q=0.5, text/html")
    ));
    assert!(!wants_html("/x", &accept("application/json")));
    assert!(!wants_html(
        "/x",
        &accept("application/json, text/html;q=0.5")
    ));
    assert!(!wants_html("/x", &accept("text/html;q=0")));
    assert!(!wants_html("/x", &accept("*/*")));
    assert!(!wants_html("/x", &HeaderMap::new()));
    assert!(!wants_html(
        "/.well-known/delegated-account-recovery/token-status",
        &accept(BROWSER_ACCEPT)
    ));
}

/// A probe application: the real [`negotiate_errors`] around routes that fail.
fn probe_app() -> axum::Router {
    axum::Router::new()
        .route(
            "/csrf",
            axum::routing::post(|| async { AppError::Csrf(CsrfError::TokenMissing) }),
        )
        .route(
            "/busy",
            axum::routing::get(|| async {
                AppError::RateLimited {
                    retry_after_secs: 7,
                }
            }),
        )
        .route(
            "/post-only",
            axum::routing::get(|| async {
                let error = AppError::WrongMethod {
                    message: "POST only",
                };
                ([(header::ALLOW, "POST")], error).into_response()
            }),
        )
        .route(
            "/.well-known/probe",
            axum::routing::get(|| async { AppError::NotFound }),
        )
        .route(
            "/form",
            axum::routing::post(|AppForm(_): AppForm<Probe>| async { "ok" }),
        )
        .layer(axum::middleware::from_fn(negotiate_errors))
}

fn browser_request(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, BROWSER_ACCEPT)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn page(response: Response) -> String {
    String::from_utf8(testutil::bytes(response).await).unwrap()
}

#[tokio::test]
async fn a_browser_gets_an_accessible_page_with_the_same_status() {
    let response = testutil::send(probe_app(), browser_request("POST", "/csrf", "")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()[header::VARY], "accept");
    let html = page(response).await;
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(
        html.contains("<title>403 Forbidden · dar</title>"),
        "{html}"
    );
    assert!(html.contains("<h1>Forbidden</h1>"), "{html}");
    assert!(
        html.contains("<p role=\"alert\"><strong>the form has no CSRF token</strong></p>"),
        "{html}"
    );
    assert!(html.contains("<code>csrf_token_missing</code>"), "{html}");
    assert!(html.contains("§6.5"), "{html}");
    assert!(html.contains("<a href=\"/\">"), "{html}");
}

#[tokio::test]
async fn a_program_keeps_json_with_the_same_facts() {
    let mut request = browser_request("POST", "/csrf", "");
    request
        .headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let response = testutil::send(probe_app(), request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[header::VARY], "accept");
    let body = testutil::json(response).await;
    assert_eq!(body["code"], "csrf_token_missing");
    assert_eq!(body["step"], "§6.5");
    assert_eq!(body["message"], "the form has no CSRF token");

    // A well-known path answers JSON even to a browser, and does not vary.
    let response = testutil::send(
        probe_app(),
        browser_request("GET", "/.well-known/probe", ""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get(header::VARY).is_none());
    assert_eq!(testutil::json(response).await["code"], "not_found");
}

#[tokio::test]
async fn the_page_keeps_retry_after_and_allow() {
    let response = testutil::send(probe_app(), browser_request("GET", "/busy", "")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    let html = page(response).await;
    assert!(html.contains("<h1>Too Many Requests</h1>"), "{html}");
    assert!(html.contains("retry after 7 s"), "{html}");

    let response = testutil::send(probe_app(), browser_request("GET", "/post-only", "")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST");
    assert!(page(response).await.contains("POST only"));
}

#[tokio::test]
async fn the_page_never_echoes_the_request() {
    let response = testutil::send(
        probe_app(),
        browser_request(
            "POST",
            "/form",
            "tokn=%3Cscript%3ESECRETVALUE%3C%2Fscript%3E",
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = page(response).await;
    assert!(html.contains("<code>bad_request</code>"), "{html}");
    assert!(!html.contains("SECRETVALUE"), "{html}");
    assert!(!html.contains("<script>"), "{html}");

    // The whole application: a path full of markup gets the 404 page, with the security
    // headers, and the path appears nowhere in it.
    let app = crate::app(testutil::state(&testutil::config()));
    let response = testutil::send(
        app,
        browser_request("GET", "/%3Cscript%3Ealert(1)%3C/script%3E", ""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    let html = page(response).await;
    assert!(html.contains("<h1>Not Found</h1>"), "{html}");
    assert!(!html.contains("script"), "{html}");
    assert!(!html.contains("alert(1)"), "{html}");
}

#[test]
fn the_page_escapes_every_value() {
    let report = ErrorReport {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        step: "request",
        message: "<b>&\"</b>".to_owned(),
    };
    let html = report.html().unwrap();
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("&#60;b&#62;&#38;&#34;"), "{html}");
}
