use serde_json::json;

use super::*;
use crate::testutil::{ap_key, rp_key};

fn ap_doc() -> Value {
    json!({
        "issuer": "https://ap.example.com",
        "tokensign-pubkeys-secp256r1": [ap_key().verifying_key().to_spki_base64()],
        "save-token-return": "https://ap.example.com/dar/save-token-return",
        "recover-account-return": "https://ap.example.com/dar/recover-account-return",
        "privacy-policy": "https://ap.example.com/privacy",
        "icon-152px": "https://static.example.com/icon.png",
    })
}

fn rp_doc() -> Value {
    json!({
        "issuer": "https://rp.example.net",
        "countersign-pubkeys-secp256r1": [rp_key().verifying_key().to_spki_base64()],
        "token-max-size": 8192,
        "save-token": "https://rp.example.net/dar/save-token",
        "save-token-async-api-iframe": "https://rp.example.net/dar/iframe",
        "recover-account": "https://rp.example.net/dar/recover-account",
        "privacy-policy": "https://rp.example.net/privacy",
        "icon-152px": "https://rp.example.net/icon.png",
    })
}

fn parse(v: &Value) -> Result<Configuration, Error> {
    Configuration::from_json(v.to_string().as_bytes(), false)
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn config_error(field: &'static str, reason: &'static str) -> Error {
    DecodeError::Config { field, reason }.into()
}

#[test]
fn parses_account_provider_document() {
    let c = parse(&ap_doc()).unwrap();
    let ap = c.account_provider().unwrap();
    assert_eq!(
        ap.recover_account_return.path(),
        "/dar/recover-account-return"
    );
    assert_eq!(ap.tokensign_keys.iter().count(), 1);
    assert!(c.recovery_provider().is_none());
}

#[test]
fn parses_recovery_provider_document() {
    let c = parse(&rp_doc()).unwrap();
    let rp = c.recovery_provider().unwrap();
    assert_eq!(rp.token_max_size, 8192);
    assert_eq!(
        rp.save_token.as_string(),
        "https://rp.example.net/dar/save-token"
    );
}

#[test]
fn parses_combined_document() {
    let mut doc = ap_doc();
    for (k, v) in rp_doc().as_object().unwrap() {
        if k != "issuer" {
            doc[k] = v.clone();
        }
    }
    let c = parse(&doc).unwrap();
    assert!(c.account_provider().is_some() && c.recovery_provider().is_some());
}

#[test]
fn publishing_and_reading_round_trips() {
    for doc in [ap_doc(), rp_doc()] {
        let c = parse(&doc).unwrap();
        assert_eq!(c.to_json(), doc);
    }
}

#[test]
fn ignores_unknown_keys() {
    assert!(parse(&with(ap_doc(), "x-extension", json!({"a": 1}))).is_ok());
}

#[test]
fn rejects_non_json_and_non_objects() {
    assert_eq!(
        Configuration::from_json(b"{", false).unwrap_err(),
        config_error("document", "not valid JSON")
    );
    assert_eq!(
        Configuration::from_json(b"[]", false).unwrap_err(),
        config_error("document", "not a JSON object")
    );
    let big = vec![b' '; MAX_DOCUMENT_LEN + 1];
    assert_eq!(
        Configuration::from_json(&big, false).unwrap_err(),
        config_error("document", "too large")
    );
}

#[test]
fn rejects_bad_issuer() {
    assert_eq!(
        parse(&with(ap_doc(), "issuer", json!("http://ap.example.com"))).unwrap_err(),
        config_error("issuer", "not an https origin")
    );
    assert_eq!(
        parse(&with(ap_doc(), "issuer", json!("https://AP.example.com/"))).unwrap_err(),
        config_error("issuer", "not in canonical serialized form")
    );
    let mut doc = ap_doc();
    doc.as_object_mut().unwrap().remove("issuer");
    assert_eq!(parse(&doc).unwrap_err(), config_error("issuer", "missing"));
    assert_eq!(
        parse(&with(ap_doc(), "issuer", json!(7))).unwrap_err(),
        config_error("issuer", "not a string")
    );
}

#[test]
fn rejects_bad_endpoint_urls() {
    let cases = [
        (
            "http://ap.example.com/r",
            "not an https URL with a valid host",
        ),
        (
            "https://ap.example.com/r?x=1",
            "query and fragment are not allowed",
        ),
        (
            "https://ap.example.com/r#f",
            "query and fragment are not allowed",
        ),
        (
            "https://u@ap.example.com/r",
            "not an https URL with a valid host",
        ),
        ("https:///r", "not an https URL with a valid host"),
        ("https://ap.example.com/a b", "invalid character"),
    ];
    for (url, reason) in cases {
        assert_eq!(
            parse(&with(ap_doc(), "recover-account-return", json!(url))).unwrap_err(),
            config_error("recover-account-return", reason),
            "{url}"
        );
    }
}

#[test]
fn allows_endpoints_on_another_origin() {
    let doc = with(
        ap_doc(),
        "save-token-return",
        json!("https://www.example.org/dar/return"),
    );
    assert!(parse(&doc).is_ok());
}

#[test]
fn rejects_missing_endpoints() {
    let mut doc = rp_doc();
    doc.as_object_mut().unwrap().remove("recover-account");
    assert_eq!(
        parse(&doc).unwrap_err(),
        config_error("recover-account", "missing")
    );
}

#[test]
fn rejects_bad_keys() {
    let field = "countersign-pubkeys-secp256r1";
    assert_eq!(
        parse(&with(rp_doc(), field, json!([]))).unwrap_err(),
        config_error(field, "must list 1 to 8 keys")
    );
    assert_eq!(
        parse(&with(rp_doc(), field, json!("x"))).unwrap_err(),
        config_error(field, "not an array")
    );
    assert_eq!(
        parse(&with(rp_doc(), field, json!([1]))).unwrap_err(),
        config_error(field, "not a string")
    );
    let nine = vec![rp_key().verifying_key().to_spki_base64(); 9];
    assert_eq!(
        parse(&with(rp_doc(), field, json!(nine))).unwrap_err(),
        config_error(field, "must list 1 to 8 keys")
    );
    let err = parse(&with(rp_doc(), field, json!(["AAAA"]))).unwrap_err();
    assert_eq!(err.code(), "key_malformed");
}

#[test]
fn rejects_bad_token_max_size() {
    for v in [json!(0), json!(-1), json!("8192"), json!(1.5)] {
        assert_eq!(
            parse(&with(rp_doc(), "token-max-size", v)).unwrap_err(),
            config_error("token-max-size", "not a positive integer")
        );
    }
    let c = parse(&with(rp_doc(), "token-max-size", json!(u64::MAX))).unwrap();
    assert_eq!(c.recovery_provider().unwrap().token_max_size, MAX_TOKEN_LEN);
}

#[test]
fn rejects_document_of_neither_role() {
    let doc = json!({"issuer": "https://ap.example.com"});
    assert_eq!(
        parse(&doc).unwrap_err(),
        config_error(
            "document",
            "neither tokensign-pubkeys-secp256r1 nor countersign-pubkeys-secp256r1"
        )
    );
}

#[test]
fn development_mode_allows_loopback_http_only() {
    let mut doc = ap_doc();
    doc["issuer"] = json!("http://localhost:8080");
    doc["save-token-return"] = json!("http://localhost:8080/r");
    doc["recover-account-return"] = json!("http://127.0.0.1:8080/r");
    for k in ["privacy-policy", "icon-152px"] {
        doc.as_object_mut().unwrap().remove(k);
    }
    assert!(Configuration::from_json(doc.to_string().as_bytes(), true).is_ok());
    assert!(Configuration::from_json(doc.to_string().as_bytes(), false).is_err());
    doc["save-token-return"] = json!("http://example.com/r");
    assert!(Configuration::from_json(doc.to_string().as_bytes(), true).is_err());
}

#[test]
fn https_issuer_cannot_point_at_http_loopback() {
    let doc = with(ap_doc(), "save-token-return", json!("http://localhost/r"));
    assert_eq!(
        Configuration::from_json(doc.to_string().as_bytes(), true).unwrap_err(),
        config_error("save-token-return", "must be https")
    );
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,200}") {
        fuzz_configuration(s.as_bytes());
    }
}

#[test]
fn iframe_api_is_optional() {
    let mut doc = rp_doc();
    doc.as_object_mut()
        .unwrap()
        .remove("save-token-async-api-iframe");
    let c = parse(&doc).unwrap();
    assert!(
        c.recovery_provider()
            .unwrap()
            .save_token_async_api_iframe
            .is_none()
    );
}
