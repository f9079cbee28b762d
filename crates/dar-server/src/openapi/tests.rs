use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::*;
use crate::state::AppState;
use crate::testutil;

type Operations = BTreeSet<(String, String)>;

/// The (method, path) pairs a document describes.
fn documented(doc: &Document) -> Operations {
    let mut ops = Operations::new();
    for (path, item) in &doc.paths.paths {
        if item.get.is_some() {
            ops.insert(("GET".to_owned(), path.clone()));
        }
        if item.post.is_some() {
            ops.insert(("POST".to_owned(), path.clone()));
        }
    }
    ops
}

/// The (method, path) pairs a router routes, read from its `Debug` output: axum has no API to
/// list routes, and its `Debug` shows each route's path and `Allow` header. axum is pinned to
/// one version; should the format change, the count assertions below fail loudly instead of
/// letting the comparison pass on nothing.
fn routed(router: &Router<AppState>) -> Operations {
    let text = format!("{router:?}");
    let main = text.split("fallback_router").next().unwrap();
    let (routes, node) = main.split_once("node: Node { paths: {").unwrap();
    let mut paths = HashMap::new();
    for entry in node.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once("): \"").unwrap();
        paths.insert(id.to_owned(), rest.split('"').next().unwrap().to_owned());
    }
    let mut ops = Operations::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once(')').unwrap();
        let allow = rest
            .split("allow_header: Bytes(b\"")
            .nth(1)
            .and_then(|a| a.split('"').next())
            .unwrap();
        for method in allow.split(',').filter(|m| *m != "HEAD") {
            ops.insert((method.to_owned(), paths[id].clone()));
        }
    }
    ops
}

#[test]
fn the_committed_document_is_current() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    let current = to_json(&openapi()).unwrap();
    assert!(
        committed == current,
        "docs/openapi.json is stale: regenerate it with \
         `cargo run -q -p dar-cli -- openapi > docs/openapi.json`"
    );
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    // Both roles at the default paths with the iframe API at the documented path: what
    // `openapi()` describes.
    let config = testutil::config();
    assert_eq!(
        config
            .recovery_provider
            .as_ref()
            .and_then(|rp| rp.save_token_async_api_iframe_path.as_deref()),
        Some(DOCUMENTED_IFRAME_PATH)
    );
    let state = testutil::state(&config);
    let pages = routed(&crate::pages(&state));
    let well_known = routed(&wellknown::routes());
    assert!(pages.len() > 40, "router listing unreadable: {pages:?}");
    assert_eq!(well_known.len(), 3, "{well_known:?}");
    let routes: Operations = pages.union(&well_known).cloned().collect();
    let doc = documented(&openapi());
    let undocumented: Vec<_> = routes.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

#[test]
fn every_operation_declares_what_the_layers_answer() {
    let doc = openapi();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [("GET", &item.get), ("POST", &item.post)] {
            let Some(op) = op else { continue };
            let statuses: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
            assert!(statuses.contains(&"429"), "{method} {path}: {statuses:?}");
            assert!(statuses.contains(&"503"), "{method} {path}: {statuses:?}");
            // No 5xx besides 503 and 502 (a peer's configuration could not be fetched).
            assert!(
                statuses
                    .iter()
                    .all(|s| !s.starts_with('5') || *s == "503" || *s == "502"),
                "{method} {path}: {statuses:?}"
            );
            if op.request_body.is_some() {
                for status in ["400", "413", "415"] {
                    assert!(statuses.contains(&status), "{method} {path}: {statuses:?}");
                }
            }
        }
    }
}

/// The `csrf_token` field as the document shows it in a POST's form schema.
fn csrf_required(doc: &Document, path: &str) -> bool {
    let op = doc.paths.paths[path].post.as_ref().unwrap();
    let Some(RefOr::T(body)) = &op.request_body else {
        panic!("{path}: no body");
    };
    let text = serde_json::to_string(&body.content[FORM]).unwrap();
    text.contains(r#""required":["csrf_token"]"#)
}

#[test]
fn forms_show_the_csrf_field_except_on_the_protocol_endpoints() {
    let doc = openapi();
    assert!(csrf_required(&doc, "/signup"));
    assert!(csrf_required(&doc, "/rp/iframe/save"));
    assert!(!csrf_required(&doc, crate::config::DEFAULT_SAVE_TOKEN));
    assert!(!csrf_required(&doc, dar_core::TOKEN_STATUS_PATH));
    let save_token = doc.paths.paths[crate::config::DEFAULT_SAVE_TOKEN]
        .post
        .as_ref()
        .unwrap();
    // The cross-site guard lets the protocol endpoints through.
    assert!(!save_token.responses.responses.contains_key("403"));
}

#[test]
fn the_document_follows_a_configuration() {
    let text = r#"listen = "127.0.0.1:0"
public_origin = "https://rp.test"
database = "sqlite::memory:"
privacy_policy = "/privacy"
icon_152px = "/icon.png"
[tls]
local_ca_dir = "tls"
[recovery_provider]
countersign_keys = ["rp.pem"]
save_token_path = "/x/save"
recover_account_path = "/dar/save-token"
"#;
    let config = Config::from_toml_str(text, Path::new("t.toml"), Path::new("/etc/dar")).unwrap();
    let doc = openapi_for(&config);
    let ops = documented(&doc);
    // Renamed, even onto another endpoint's default path.
    assert!(ops.contains(&("POST".to_owned(), "/x/save".to_owned())));
    let at_default = doc.paths.paths["/dar/save-token"].get.as_ref().unwrap();
    assert_eq!(at_default.operation_id.as_deref(), Some("recover_page"));
    // No account provider, no iframe API: their operations are gone; accounts stay.
    for gone in [
        "/dar/save-token-return",
        "/recovery",
        "/ap/recovery/lost",
        "/rp/iframe.js",
    ] {
        assert!(!doc.paths.paths.contains_key(gone), "{gone}");
    }
    assert!(!doc.paths.paths.contains_key(DOCUMENTED_IFRAME_PATH));
    assert!(doc.paths.paths.contains_key("/signin"));
    assert!(doc.paths.paths.contains_key(dar_core::TOKEN_STATUS_PATH));
}

/// Regression (schemathesis, `GET /account/factor/cancel` without `c`): a query the handler
/// cannot parse answered axum's plain-text 400, which quoted the input and had no `code`.
#[tokio::test]
async fn an_unparsable_query_is_an_app_error() {
    let config = testutil::config();
    let state = testutil::state(&config);
    for uri in ["/account/factor/cancel", "/signin?next=%2Fa&next=%2Fb"] {
        let app = crate::app_with(state.clone(), crate::pages(&state));
        let request = Request::get(uri)
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .unwrap();
        let response = testutil::send(app, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body = testutil::json(response).await;
        assert_eq!(body["code"], "bad_request", "{uri}");
        assert_eq!(
            body["message"], "the query is malformed or lacks a required field",
            "{uri}"
        );
    }
}
