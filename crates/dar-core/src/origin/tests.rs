use super::*;

fn wire(s: &str) -> Result<Origin, DecodeError> {
    Origin::from_wire("issuer", s.as_bytes())
}

#[test]
fn normalizes_case_default_port_trailing_slash_and_dot() {
    for input in [
        "https://example.com",
        "HTTPS://EXAMPLE.com",
        "https://example.com:443",
        "https://example.com/",
        "https://example.com.",
        "https://Example.Com.:443/",
    ] {
        assert_eq!(
            Origin::parse(input).map(|o| o.to_string()),
            Ok("https://example.com".into())
        );
    }
}

#[test]
fn keeps_non_default_port() {
    let o = Origin::parse("https://ap.example.com:8443").unwrap();
    assert_eq!(o.as_str(), "https://ap.example.com:8443");
    assert_eq!(o.authority(), "ap.example.com:8443");
}

#[test]
fn converts_unicode_hosts_to_a_labels() {
    let o = Origin::parse("https://Bücher.example").unwrap();
    assert_eq!(o.as_str(), "https://xn--bcher-kva.example");
}

#[test]
fn accepts_ip_literals_in_canonical_form() {
    assert_eq!(
        Origin::parse("https://1.2.3.4").unwrap().as_str(),
        "https://1.2.3.4"
    );
    assert_eq!(
        Origin::parse("https://[0:0::1]:8443").unwrap().as_str(),
        "https://[::1]:8443"
    );
}

#[test]
fn rejects_what_is_not_an_origin() {
    let cases = [
        ("", OriginError::Empty),
        ("example.com", OriginError::Scheme),
        ("ftp://example.com", OriginError::Scheme),
        ("http://example.com", OriginError::InsecureScheme),
        ("https://u@example.com", OriginError::Userinfo),
        ("https://example.com/x", OriginError::PathQueryFragment),
        ("https://example.com?", OriginError::PathQueryFragment),
        ("https://example.com#", OriginError::PathQueryFragment),
        ("https://example.com\n", OriginError::Character),
        ("https://exa mple.com", OriginError::Character),
        ("https://example.com:", OriginError::Port),
        ("https://example.com:0", OriginError::Port),
        ("https://example.com:99999999", OriginError::Port),
        ("https://example.com:８０", OriginError::Port),
        ("https://exa_mple.com", OriginError::Host),
        ("https://-rp-.example.net", OriginError::Host),
        ("https://", OriginError::Host),
        ("https://1.2.3.04", OriginError::Host),
        ("https://[::1", OriginError::Host),
    ];
    for (input, want) in cases {
        assert_eq!(Origin::parse(input), Err(want), "{input:?}");
    }
    assert_eq!(Origin::parse(&"a".repeat(2000)), Err(OriginError::TooLong));
}

#[test]
fn allows_http_only_for_loopback_in_development() {
    for ok in [
        "http://localhost:8080",
        "http://127.0.0.1:3000",
        "http://[::1]",
        "http://a.localhost",
    ] {
        let o = Origin::parse_development(ok).unwrap();
        assert!(o.is_loopback() && !o.is_https(), "{ok}");
        assert_eq!(Origin::parse(ok), Err(OriginError::InsecureScheme));
    }
    assert_eq!(
        Origin::parse_development("http://example.com"),
        Err(OriginError::InsecureScheme)
    );
    assert_eq!(
        Origin::parse_development("http://localhost:80")
            .unwrap()
            .as_str(),
        "http://localhost"
    );
}

#[test]
fn wire_accepts_canonical_origins() {
    for s in [
        "https://ap.example.com",
        "https://ap.example.com:8443",
        "https://xn--bcher-kva.example",
        "https://localhost",
        "https://127.0.0.1:8443",
        "https://[::1]",
        "https://a--b.example.com",
    ] {
        assert_eq!(wire(s).map(|o| o.to_string()), Ok(s.to_string()), "{s}");
    }
}

#[test]
fn wire_rejects_non_canonical_forms() {
    for s in [
        "https://AP.example.com",
        "HTTPS://ap.example.com",
        "https://ap.example.com:443",
        "https://ap.example.com/",
        "https://ap.example.com.",
        "https://ap.example.com:08443",
        "https://[0::1]",
    ] {
        assert_eq!(
            wire(s),
            Err(DecodeError::NonCanonicalOrigin { field: "issuer" }),
            "{s}"
        );
    }
}

#[test]
fn wire_rejects_non_ascii_and_invalid_bytes() {
    let e = DecodeError::Origin {
        field: "issuer",
        reason: OriginError::Character,
    };
    assert_eq!(wire("https://bücher.example"), Err(e.clone()));
    assert_eq!(
        Origin::from_wire("issuer", b"\xe8ttps://rp.example.net"),
        Err(e)
    );
    assert_eq!(
        wire("https://rp.example.net:99999999"),
        Err(DecodeError::Origin {
            field: "issuer",
            reason: OriginError::Port
        })
    );
}

#[test]
fn fast_path_agrees_with_full_parser() {
    for s in [
        "https://a.b",
        "https://x-y.z:1",
        "https://a.b:65535",
        "https://a.b:65536",
        "https://a.1",
    ] {
        let fast = canonical_fast_path(s);
        let full = parse_normalizing(s).map(|o| o.serialized == s);
        if let Some(fast) = fast {
            assert_eq!(fast.is_ok(), full == Ok(true), "{s}");
        }
    }
}
