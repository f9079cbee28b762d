use std::net::IpAddr;

use super::{AddressClass, classify, is_public};

fn class_of(text: &str) -> AddressClass {
    let ip: IpAddr = text.parse().unwrap();
    classify(ip)
}

#[test]
fn classifies_the_special_purpose_table() {
    use AddressClass::*;
    let table: &[(&str, AddressClass)] = &[
        // IPv4
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", ThisNetwork),
        ("0.255.255.255", ThisNetwork),
        ("1.1.1.1", Public),
        ("8.8.8.8", Public),
        ("9.255.255.255", Public),
        ("10.0.0.0", Private),
        ("10.255.255.255", Private),
        ("11.0.0.0", Public),
        ("100.63.255.255", Public),
        ("100.64.0.0", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("100.128.0.0", Public),
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("169.254.169.254", LinkLocal),
        ("169.253.0.1", Public),
        ("172.15.255.255", Public),
        ("172.16.0.0", Private),
        ("172.31.255.255", Private),
        ("172.32.0.0", Public),
        ("192.0.0.8", Reserved),
        ("192.0.2.1", Documentation),
        ("192.88.99.1", Reserved),
        ("192.167.255.255", Public),
        ("192.168.0.1", Private),
        ("192.169.0.0", Public),
        ("198.17.255.255", Public),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("198.20.0.0", Public),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("223.255.255.255", Public),
        ("224.0.0.1", Multicast),
        ("239.255.255.255", Multicast),
        ("240.0.0.1", Reserved),
        ("254.255.255.255", Reserved),
        ("255.255.255.255", Broadcast),
        // IPv6
        ("::", Unspecified),
        ("::1", Loopback),
        ("::2", Reserved),
        ("::127.0.0.1", Reserved),
        ("100::1", Reserved),
        ("2001::1", Reserved),
        ("2001:2::1", Benchmarking),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("2606:4700::1111", Public),
        ("2a00:1450:4001::1", Public),
        ("fc00::1", UniqueLocal),
        ("fd12:3456::1", UniqueLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", Private),
        ("ff02::1", Multicast),
        ("4000::1", Reserved),
        ("64:ff9b:1::1", Private),
    ];
    for (i, (text, want)) in table.iter().enumerate() {
        assert_eq!(class_of(text), *want, "case {i}: {text}");
        assert_eq!(
            is_public(text.parse().unwrap()),
            *want == Public,
            "case {i}: {text}"
        );
    }
}

#[test]
fn classifies_ipv4_mapped_by_the_embedded_address() {
    use AddressClass::*;
    let table: &[(&str, AddressClass)] = &[
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:10.1.2.3", Private),
        ("::ffff:172.16.0.1", Private),
        ("::ffff:192.168.1.1", Private),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:100.64.0.1", SharedAddressSpace),
        ("::ffff:0.0.0.0", Unspecified),
        ("::ffff:0.1.0.0", ThisNetwork),
        ("::ffff:224.0.0.1", Multicast),
        ("::ffff:240.0.0.1", Reserved),
        ("::ffff:255.255.255.255", Broadcast),
        ("::ffff:192.0.2.1", Documentation),
        ("::ffff:8.8.8.8", Public),
    ];
    for (i, (text, want)) in table.iter().enumerate() {
        assert_eq!(class_of(text), *want, "case {i}: {text}");
    }
}

#[test]
fn classifies_nat64_and_6to4_by_the_embedded_address() {
    assert_eq!(class_of("64:ff9b::7f00:1"), AddressClass::Loopback);
    assert_eq!(class_of("64:ff9b::a9fe:a9fe"), AddressClass::LinkLocal);
    assert_eq!(class_of("64:ff9b::808:808"), AddressClass::Public);
    assert_eq!(class_of("2002:7f00:1::1"), AddressClass::Loopback);
    assert_eq!(class_of("2002:c0a8:101::1"), AddressClass::Private);
    assert_eq!(class_of("2002:808:808::1"), AddressClass::Public);
}
