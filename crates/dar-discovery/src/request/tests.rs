use dar_core::Origin;

use super::{RequestPolicy, configuration_url};
use crate::DiscoveryError;

const STRICT: RequestPolicy = RequestPolicy {
    danger_allow_http_loopback: false,
    danger_allow_non_public_addresses: false,
};
const LOCAL: RequestPolicy = RequestPolicy {
    danger_allow_http_loopback: false,
    danger_allow_non_public_addresses: true,
};
const DEVELOPMENT: RequestPolicy = RequestPolicy {
    danger_allow_http_loopback: true,
    danger_allow_non_public_addresses: true,
};

fn url(origin: &str, policy: RequestPolicy) -> Result<String, DiscoveryError> {
    let origin = Origin::parse_development(origin).unwrap();
    configuration_url(&origin, policy).map(String::from)
}

#[test]
fn builds_the_well_known_url() {
    assert_eq!(
        url("https://rp.example.com", STRICT).unwrap(),
        "https://rp.example.com/.well-known/delegated-account-recovery/configuration"
    );
    assert_eq!(
        url("HTTPS://RP.Example.com:443/", STRICT).unwrap(),
        "https://rp.example.com/.well-known/delegated-account-recovery/configuration"
    );
    assert_eq!(
        url("https://rp.example.com:8443", STRICT).unwrap(),
        "https://rp.example.com:8443/.well-known/delegated-account-recovery/configuration"
    );
    assert_eq!(
        url("https://xn--bcher-kva.example", STRICT).unwrap(),
        "https://xn--bcher-kva.example/.well-known/delegated-account-recovery/configuration"
    );
}

#[test]
fn builds_urls_for_public_address_literals() {
    assert_eq!(
        url("https://8.8.8.8", STRICT).unwrap(),
        "https://8.8.8.8/.well-known/delegated-account-recovery/configuration"
    );
    assert_eq!(
        url("https://[2606:4700::1111]:8443", STRICT).unwrap(),
        "https://[2606:4700::1111]:8443/.well-known/delegated-account-recovery/configuration"
    );
}

#[test]
fn rejects_http_without_the_development_option() {
    for origin in [
        "http://localhost:8080",
        "http://127.0.0.1",
        "http://[::1]:3000",
    ] {
        assert_eq!(
            url(origin, STRICT),
            Err(DiscoveryError::InsecureScheme),
            "{origin}"
        );
        assert_eq!(
            url(origin, LOCAL),
            Err(DiscoveryError::InsecureScheme),
            "{origin}"
        );
    }
}

#[test]
fn accepts_http_loopback_with_the_development_option() {
    assert_eq!(
        url("http://localhost:8080", DEVELOPMENT).unwrap(),
        "http://localhost:8080/.well-known/delegated-account-recovery/configuration"
    );
    assert_eq!(
        url("http://127.0.0.1:8080", DEVELOPMENT).unwrap(),
        "http://127.0.0.1:8080/.well-known/delegated-account-recovery/configuration"
    );
}

#[test]
fn rejects_non_public_address_literals() {
    for origin in [
        "https://127.0.0.1",
        "https://10.0.0.1:8443",
        "https://169.254.169.254",
        "https://[::1]",
        "https://[fd00::1]",
        "https://[::ffff:127.0.0.1]",
        "https://0.0.0.0",
    ] {
        assert_eq!(
            url(origin, STRICT),
            Err(DiscoveryError::NonPublicAddress),
            "{origin}"
        );
        assert!(url(origin, LOCAL).is_ok(), "{origin}");
    }
}

#[test]
fn leaves_names_to_the_resolver() {
    // `localhost` is a name: the resolver checks what it resolves to.
    assert!(url("https://localhost:8443", STRICT).is_ok());
}

#[test]
fn checks_hosts_the_url_parser_reads_as_addresses() {
    // The origin keeps `0x7f` as a name, but a URL parser reads it as 0.0.0.127.
    assert_eq!(
        url("https://0x7f", STRICT),
        Err(DiscoveryError::NonPublicAddress)
    );
}
