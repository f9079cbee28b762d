use std::sync::Arc;
use std::time::{Duration, Instant};

use dar_core::{Configuration, Origin};

use super::{ConfigCache, freshness_lifetime};

const CAP: Duration = Duration::from_secs(300);
const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";

fn lifetime(header: &str) -> Option<Duration> {
    freshness_lifetime([header.as_bytes()], None, CAP)
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

fn config(issuer: &str) -> Arc<Configuration> {
    let doc = format!(
        r#"{{"issuer": "{issuer}", "tokensign-pubkeys-secp256r1": ["{KEY}"],
            "save-token-return": "{issuer}/r", "recover-account-return": "{issuer}/a"}}"#
    );
    Arc::new(Configuration::from_json(doc.as_bytes(), false).unwrap())
}

#[test]
fn reads_max_age() {
    assert_eq!(lifetime("max-age=60"), secs(60));
    assert_eq!(lifetime("public, max-age=60"), secs(60));
    assert_eq!(lifetime("MAX-AGE=60"), secs(60));
    assert_eq!(lifetime("  max-age = 60  "), secs(60));
    assert_eq!(lifetime("max-age=\"60\""), secs(60));
    assert_eq!(lifetime("max-age=060"), secs(60));
    assert_eq!(lifetime("private, max-age=1, must-revalidate"), secs(1));
    assert_eq!(lifetime("s-maxage=10, max-age=20"), secs(20));
    assert_eq!(lifetime("foo=\"a, no-store\", max-age=20"), secs(20));
    assert_eq!(lifetime(",,max-age=20,,"), secs(20));
}

#[test]
fn caps_max_age() {
    assert_eq!(lifetime("max-age=300"), secs(300));
    assert_eq!(lifetime("max-age=301"), secs(300));
    assert_eq!(lifetime("max-age=31536000"), secs(300));
    assert_eq!(lifetime("max-age=99999999999999999999999999"), secs(300));
    assert_eq!(
        freshness_lifetime([b"max-age=60".as_slice()], None, Duration::from_secs(5)),
        secs(5)
    );
    assert_eq!(
        freshness_lifetime([b"max-age=60".as_slice()], None, Duration::ZERO),
        None
    );
}

#[test]
fn does_not_store_no_store_no_cache_or_absent() {
    for header in [
        "",
        "no-store",
        "no-cache",
        "NO-STORE",
        "max-age=60, no-store",
        "no-cache, max-age=60",
        "no-cache=\"set-cookie\", max-age=60",
        "public",
        "private",
        "s-maxage=60",
        "must-revalidate",
    ] {
        assert_eq!(lifetime(header), None, "{header:?}");
    }
    assert_eq!(freshness_lifetime(std::iter::empty(), None, CAP), None);
}

#[test]
fn does_not_store_weird_values() {
    for header in [
        "max-age",
        "max-age=",
        "max-age=-1",
        "max-age=+5",
        "max-age=1.5",
        "max-age=0x10",
        "max-age=10s",
        "max-age=1 0",
        "max-age=\"60",
        "max-age=\"6\"0\"",
        "max-age=0",
        "max-age=60, max-age=60",
        "max-age=60, max-age=10",
        "foo=\"unterminated, max-age=60",
        "max-age=60\u{7f}",
        "max-age=60, é",
    ] {
        assert_eq!(lifetime(header), None, "{header:?}");
    }
    assert_eq!(
        freshness_lifetime([b"max-age=60\xff".as_slice()], None, CAP),
        None
    );
}

#[test]
fn combines_header_lines() {
    let lines = [b"public".as_slice(), b"max-age=60".as_slice()];
    assert_eq!(freshness_lifetime(lines, None, CAP), secs(60));
    let lines = [b"max-age=60".as_slice(), b"no-store".as_slice()];
    assert_eq!(freshness_lifetime(lines, None, CAP), None);
    let lines = [b"max-age=60".as_slice(), b"max-age=60".as_slice()];
    assert_eq!(freshness_lifetime(lines, None, CAP), None);
}

#[test]
fn subtracts_age() {
    let cc = [b"max-age=60".as_slice()];
    assert_eq!(freshness_lifetime(cc, Some(b"10"), CAP), secs(50));
    assert_eq!(freshness_lifetime(cc, Some(b"60"), CAP), None);
    assert_eq!(freshness_lifetime(cc, Some(b"600"), CAP), None);
    assert_eq!(freshness_lifetime(cc, Some(b"-1"), CAP), None);
    assert_eq!(freshness_lifetime(cc, Some(b"x"), CAP), None);
    let long = [b"max-age=1000".as_slice()];
    assert_eq!(freshness_lifetime(long, Some(b"100"), CAP), secs(300));
}

#[test]
fn serves_an_entry_only_within_its_lifetime() {
    let cache = ConfigCache::new(8);
    let origin = Origin::parse("https://ap.example.com").unwrap();
    let t0 = Instant::now();
    cache.put(&origin, &config("https://ap.example.com"), secs(60), t0);
    assert!(cache.get(&origin, t0).is_some());
    assert!(cache.get(&origin, t0 + Duration::from_secs(59)).is_some());
    assert!(cache.get(&origin, t0 + Duration::from_secs(60)).is_none());
    assert_eq!(cache.len(), 0, "an expired entry is dropped when found");
    // It stays gone even when asked about an earlier time.
    assert!(cache.get(&origin, t0).is_none());
}

#[test]
fn keys_entries_by_origin() {
    let cache = ConfigCache::new(8);
    let a = Origin::parse("https://a.example.com").unwrap();
    let b = Origin::parse("https://b.example.com").unwrap();
    let t0 = Instant::now();
    cache.put(&a, &config("https://a.example.com"), secs(60), t0);
    assert!(cache.get(&b, t0).is_none());
    assert_eq!(cache.get(&a, t0).unwrap().issuer(), &a);
}

#[test]
fn not_storing_removes_a_previous_entry() {
    let cache = ConfigCache::new(8);
    let origin = Origin::parse("https://ap.example.com").unwrap();
    let t0 = Instant::now();
    cache.put(&origin, &config("https://ap.example.com"), secs(60), t0);
    cache.put(&origin, &config("https://ap.example.com"), None, t0);
    assert_eq!(cache.len(), 0);
    assert!(cache.get(&origin, t0).is_none());
}

#[test]
fn bounds_the_number_of_entries() {
    let cache = ConfigCache::new(2);
    let t0 = Instant::now();
    let names = [
        "https://a.example",
        "https://b.example",
        "https://c.example",
    ];
    let origins: Vec<Origin> = names.iter().map(|n| Origin::parse(n).unwrap()).collect();
    cache.put(&origins[0], &config(names[0]), secs(10), t0);
    cache.put(&origins[1], &config(names[1]), secs(20), t0);
    cache.put(&origins[2], &config(names[2]), secs(30), t0);
    assert_eq!(cache.len(), 2);
    // The entry closest to expiry made room.
    assert!(cache.get(&origins[0], t0).is_none());
    assert!(cache.get(&origins[1], t0).is_some());
    assert!(cache.get(&origins[2], t0).is_some());

    let none = ConfigCache::new(0);
    none.put(&origins[0], &config(names[0]), secs(10), t0);
    assert_eq!(none.len(), 0);
}

#[test]
fn expired_entries_make_room_first() {
    let cache = ConfigCache::new(2);
    let t0 = Instant::now();
    let names = [
        "https://a.example",
        "https://b.example",
        "https://c.example",
    ];
    let origins: Vec<Origin> = names.iter().map(|n| Origin::parse(n).unwrap()).collect();
    cache.put(&origins[0], &config(names[0]), secs(50), t0);
    cache.put(&origins[1], &config(names[1]), secs(5), t0);
    let later = t0 + Duration::from_secs(10);
    cache.put(&origins[2], &config(names[2]), secs(30), later);
    assert!(cache.get(&origins[0], later).is_some());
    assert!(cache.get(&origins[2], later).is_some());
}
