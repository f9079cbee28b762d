//! Address ranges.

use super::*;

#[test]
fn parses_and_matches_ranges() {
    let v6: IpRange = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
    assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    assert!(!v6.contains("192.0.2.1".parse().unwrap()));
    let host: IpRange = "198.51.100.7".parse().unwrap();
    assert!(host.contains("198.51.100.7".parse().unwrap()));
    assert!(!host.contains("198.51.100.8".parse().unwrap()));
    let all: IpRange = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("203.0.113.9".parse().unwrap()));
}

#[test]
fn rejects_bad_ranges() {
    for bad in [
        "192.0.2.0/33",
        "::/129",
        "example.com/8",
        "192.0.2.0/",
        "1.2.3.4/-1",
    ] {
        assert_eq!(
            bad.parse::<IpRange>(),
            Err(AccountProviderError::InvalidAddressRange),
            "{bad}"
        );
    }
}
