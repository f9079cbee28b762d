use time::macros::datetime;

use super::*;

#[test]
fn accepts_the_peers_forms() {
    assert_eq!(
        parse(b"2026-11-22T17:25:22Z"),
        Ok(datetime!(2026-11-22 17:25:22 UTC))
    );
    assert_eq!(
        parse(b"2026-11-22T15:31:18.897Z"),
        Ok(datetime!(2026-11-22 15:31:18.897 UTC))
    );
}

#[test]
fn accepts_lower_case_t_and_z() {
    assert_eq!(
        parse(b"2026-11-22t17:25:22z"),
        Ok(datetime!(2026-11-22 17:25:22 UTC))
    );
}

#[test]
fn normalizes_offsets_to_utc() {
    assert_eq!(
        parse(b"2026-11-22T18:25:22+01:00"),
        Ok(datetime!(2026-11-22 17:25:22 UTC))
    );
    assert_eq!(
        parse(b"2026-11-22T12:25:22.5-05:00"),
        Ok(datetime!(2026-11-22 17:25:22.5 UTC))
    );
    assert_eq!(
        parse(b"2026-11-22T17:25:22-00:00"),
        Ok(datetime!(2026-11-22 17:25:22 UTC))
    );
}

#[test]
fn accepts_nine_fraction_digits() {
    assert_eq!(
        parse(b"2026-11-22T17:25:22.123456789Z"),
        Ok(datetime!(2026-11-22 17:25:22.123456789 UTC))
    );
}

#[test]
fn rejects_everything_else() {
    for bad in [
        &b""[..],
        b"not a timestamp",
        b"2026-11-22T17:25:22",
        b"2026-11-22 17:25:22Z",
        b"2026-11-22T17:25:22Zgarbage",
        b"2026-13-45T17:25:22Z",
        b"2026-11-21T39:25:22Z",
        b"2026-02-30T00:00:00Z",
        b"2026-11-22T17:25:60Z",
        b"2026-11-22T17:25:22.Z",
        b"2026-11-22T17:25:22.1234567890Z",
        b"2026-11-22T17:25:22+24:00",
        b"2026-11-22T17:25:22+0100",
        b"+2026-11-22T17:25:22Z",
        b"2026-11-22T17:25:22\xffZ",
        b"20261122T172522Z",
    ] {
        assert_eq!(
            parse(bad),
            Err(DecodeError::IssuedTime),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn formats_whole_seconds_in_utc() {
    let t = datetime!(2026-11-22 16:31:18.897 +01:00);
    assert_eq!(format(t), "2026-11-22T15:31:18Z");
}

proptest::proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn format_then_parse_is_identity(secs in 0i64..253_402_300_799) {
        let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
        proptest::prop_assert_eq!(parse(format(t).as_bytes()), Ok(t));
    }
}
