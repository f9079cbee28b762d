//! Which IP addresses a configuration fetch may connect to.
//!
//! The origin to fetch from often comes from hostile input (a token's issuer, §3.1 step 5), so a
//! fetch could be aimed at the fetching server's own network: its loopback interface, a cloud
//! metadata service on a link-local address, an admin panel on a private range. That is
//! server-side request forgery, which §1.8 names. The HTTP client therefore checks every
//! address a name resolves to (the resolved address, not the name: a public name may resolve
//! to `127.0.0.1`) and connects only to [`AddressClass::Public`] ones.
//!
//! The table follows the IANA special-purpose address registries (RFC 6890 and successors).
//! Anything not known to be globally routable unicast is refused: for IPv6, everything outside
//! `2000::/3`.
//!
//! ```
//! use std::net::IpAddr;
//! use dar_discovery::address::{classify, is_public, AddressClass};
//!
//! let metadata: IpAddr = "169.254.169.254".parse()?;
//! assert_eq!(classify(metadata), AddressClass::LinkLocal);
//! let mapped: IpAddr = "::ffff:10.0.0.1".parse()?;
//! assert_eq!(classify(mapped), AddressClass::Private);
//! assert!(is_public("93.184.215.14".parse()?));
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP is, for the purpose of deciding whether to connect to it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable unicast: the only class a fetch connects to by default.
    Public,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// "This network", `0.0.0.0/8` (other than `0.0.0.0`).
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`; deprecated IPv6 site-local
    /// `fec0::/10`; NAT64 local-use `64:ff9b:1::/48`.
    Private,
    /// Carrier-grade NAT shared address space, `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// IPv6 unique local addresses, `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Network benchmarking, `198.18.0.0/15`.
    Benchmarking,
    /// Reserved or special-purpose ranges that are not globally routable unicast:
    /// `240.0.0.0/4`, `192.0.0.0/24`, `192.88.99.0/24`, `100::/64`, `2001::/23`, the rest of
    /// `::/8`, and every IPv6 address outside `2000::/3`.
    Reserved,
}

/// Classifies an address. IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) IPv6 addresses are classified by the IPv4 address they embed.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a fetch may connect to `ip` without the caller allowing non-public addresses.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip) == AddressClass::Public
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    let bits = u32::from(ip);
    let within = |net: u32, len: u32| prefix_match_v4(bits, net, len);
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if a == 0 {
        AddressClass::ThisNetwork
    } else if a == 127 {
        AddressClass::Loopback
    } else if a == 10 || within(0xac10_0000, 12) || (a == 192 && b == 168) {
        AddressClass::Private
    } else if within(0x6440_0000, 10) {
        AddressClass::SharedAddressSpace
    } else if a == 169 && b == 254 {
        AddressClass::LinkLocal
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        AddressClass::Documentation
    } else if within(0xc612_0000, 15) {
        AddressClass::Benchmarking
    } else if (a == 192 && b == 0 && c == 0) || (a == 192 && b == 88 && c == 99) {
        AddressClass::Reserved
    } else if (224..=239).contains(&a) {
        AddressClass::Multicast
    } else if a >= 240 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let bits = u128::from(ip);
    let within = |net: u128, len: u32| prefix_match_v6(bits, net, len);
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // NAT64 well-known prefix: the packet goes to the embedded IPv4 address.
    if within(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        return classify_v4(embedded_v4(bits, 0));
    }
    // 6to4: the embedded IPv4 address (bits 16..48) is the relay the packet goes through.
    if within(0x2002_0000_0000_0000_0000_0000_0000_0000, 16) {
        return classify_v4(embedded_v4(bits, 80));
    }
    if within(0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48) {
        AddressClass::Private
    } else if within(0xfc00_0000_0000_0000_0000_0000_0000_0000, 7) {
        AddressClass::UniqueLocal
    } else if within(0xfe80_0000_0000_0000_0000_0000_0000_0000, 10) {
        AddressClass::LinkLocal
    } else if within(0xfec0_0000_0000_0000_0000_0000_0000_0000, 10) {
        AddressClass::Private
    } else if within(0xff00_0000_0000_0000_0000_0000_0000_0000, 8) {
        AddressClass::Multicast
    } else if within(0x2001_0db8_0000_0000_0000_0000_0000_0000, 32)
        || within(0x3fff_0000_0000_0000_0000_0000_0000_0000, 20)
    {
        AddressClass::Documentation
    } else if within(0x2001_0002_0000_0000_0000_0000_0000_0000, 48) {
        AddressClass::Benchmarking
    } else if within(0x2001_0000_0000_0000_0000_0000_0000_0000, 23) {
        AddressClass::Reserved
    } else if within(0x2000_0000_0000_0000_0000_0000_0000_0000, 3) {
        AddressClass::Public
    } else {
        // `::/8` (IPv4-compatible and other reserved forms), `100::/64` discard-only, and the
        // unassigned rest of the IPv6 space.
        AddressClass::Reserved
    }
}

/// Whether the top `len` bits of `bits` equal those of `net` (`len` ≤ 32).
fn prefix_match_v4(bits: u32, net: u32, len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    bits & mask == net & mask
}

/// Whether the top `len` bits of `bits` equal those of `net` (`len` ≤ 128).
fn prefix_match_v6(bits: u128, net: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    bits & mask == net & mask
}

/// The IPv4 address held in the 32 bits of `bits` that start `shift` bits from the right.
fn embedded_v4(bits: u128, shift: u32) -> Ipv4Addr {
    let low = (bits >> shift) & u128::from(u32::MAX);
    // The mask above keeps 32 bits, so the conversion cannot fail.
    Ipv4Addr::from(u32::try_from(low).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
