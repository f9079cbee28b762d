use dar_core::{DecodeError, Origin};

use super::{BodyBuffer, check_content_type, check_declared_length, check_document, check_status};
use crate::DiscoveryError;

const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";

fn document(issuer: &str) -> String {
    format!(
        r#"{{"issuer": "{issuer}",
            "tokensign-pubkeys-secp256r1": ["{KEY}"],
            "save-token-return": "{issuer}/dar/save-return",
            "recover-account-return": "{issuer}/dar/recover-return"}}"#
    )
}

#[test]
fn accepts_only_200() {
    assert_eq!(check_status(200), Ok(()));
    for status in [
        201, 203, 204, 206, 400, 401, 403, 410, 429, 500, 502, 503, 304, 100,
    ] {
        assert_eq!(check_status(status), Err(DiscoveryError::Status(status)));
    }
}

#[test]
fn rejects_redirects_as_redirects() {
    for status in [300, 301, 302, 303, 305, 307, 308] {
        assert_eq!(
            check_status(status),
            Err(DiscoveryError::Redirected { status })
        );
    }
}

#[test]
fn maps_404_to_not_found() {
    assert_eq!(check_status(404), Err(DiscoveryError::NotFound));
}

#[test]
fn accepts_application_json_with_parameters() {
    for value in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        " application/json ; charset=\"utf-8\"",
    ] {
        assert_eq!(check_content_type([value.as_bytes()]), Ok(()), "{value:?}");
    }
}

#[test]
fn rejects_other_content_types() {
    for value in [
        "",
        "text/html",
        "text/plain; charset=utf-8",
        "application/javascript",
        "application/jsonp",
        "application/json-seq",
        "application/ld+json",
        "application/problem+json",
        "application/x-json",
        "application/ json",
        "application/json,text/html",
        "json",
        "*/*",
    ] {
        assert_eq!(
            check_content_type([value.as_bytes()]),
            Err(DiscoveryError::NotJson),
            "{value:?}"
        );
    }
    assert_eq!(
        check_content_type([b"application/json\xff".as_slice()]),
        Err(DiscoveryError::NotJson)
    );
}

#[test]
fn rejects_missing_or_repeated_content_type() {
    assert_eq!(
        check_content_type(std::iter::empty()),
        Err(DiscoveryError::NotJson)
    );
    assert_eq!(
        check_content_type([
            b"application/json".as_slice(),
            b"application/json".as_slice()
        ]),
        Err(DiscoveryError::NotJson)
    );
}

#[test]
fn rejects_declared_length_over_the_cap() {
    assert_eq!(check_declared_length(None, 10), Ok(()));
    assert_eq!(check_declared_length(Some(10), 10), Ok(()));
    assert_eq!(
        check_declared_length(Some(11), 10),
        Err(DiscoveryError::TooLarge)
    );
    assert_eq!(
        check_declared_length(Some(u64::MAX), 65_536),
        Err(DiscoveryError::TooLarge)
    );
}

#[test]
fn body_buffer_stops_at_the_cap() {
    let mut body = BodyBuffer::new(10);
    assert_eq!(body.push(b"12345"), Ok(()));
    assert_eq!(body.push(b""), Ok(()));
    assert_eq!(body.push(b"67890"), Ok(()));
    assert_eq!(body.push(b"x"), Err(DiscoveryError::TooLarge));
    assert_eq!(body.into_bytes(), b"1234567890");

    let mut body = BodyBuffer::new(4);
    assert_eq!(body.push(b"12345"), Err(DiscoveryError::TooLarge));
    assert!(body.into_bytes().is_empty());
}

#[test]
fn accepts_a_document_for_the_origin_asked_for() {
    let origin = Origin::parse("https://ap.example.com").unwrap();
    let config = check_document(
        document("https://ap.example.com").as_bytes(),
        &origin,
        false,
    )
    .unwrap();
    assert_eq!(config.issuer(), &origin);
}

#[test]
fn rejects_another_issuer() {
    let origin = Origin::parse("https://ap.example.com").unwrap();
    for issuer in [
        "https://evil.example.com",
        "https://ap.example.com:8443",
        "https://sub.ap.example.com",
    ] {
        assert_eq!(
            check_document(document(issuer).as_bytes(), &origin, false).unwrap_err(),
            DiscoveryError::IssuerMismatch,
            "{issuer}"
        );
    }
}

#[test]
fn rejects_a_non_canonical_issuer_as_invalid() {
    let origin = Origin::parse("https://ap.example.com").unwrap();
    let err = check_document(
        document("https://AP.example.com").as_bytes(),
        &origin,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, DiscoveryError::Invalid(_)), "{err:?}");
}

#[test]
fn rejects_invalid_json() {
    let origin = Origin::parse("https://ap.example.com").unwrap();
    assert_eq!(
        check_document(b"{\"issuer\":", &origin, false).unwrap_err(),
        DiscoveryError::Invalid(
            DecodeError::Config {
                field: "document",
                reason: "not valid JSON"
            }
            .into()
        )
    );
}

#[test]
fn http_issuer_needs_the_development_option() {
    let origin = Origin::parse_development("http://localhost:8080").unwrap();
    let doc = document("http://localhost:8080");
    assert!(matches!(
        check_document(doc.as_bytes(), &origin, false),
        Err(DiscoveryError::Invalid(_))
    ));
    assert!(check_document(doc.as_bytes(), &origin, true).is_ok());
}
