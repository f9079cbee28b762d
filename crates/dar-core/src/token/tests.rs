use proptest::prelude::*;

use super::*;
use crate::testutil::*;

#[test]
fn decodes_what_it_encodes() {
    let token = recovery_token();
    let bytes = signed(&token, &ap_key());
    let view = TokenView::decode(&bytes).unwrap();
    assert_eq!(view.to_token().unwrap(), token);
    assert_eq!(view.issuer(), "https://ap.example.com");
    assert_eq!(view.issued_time_raw(), "2026-11-22T15:31:18Z");
    assert_eq!(view.len(), bytes.len());
}

#[test]
fn decodes_a_javascript_sdk_token() {
    let text = "AAAAAQIDBAUGBwgJCgsMDQ4PAAAWaHR0cHM6Ly9hcC5leGFtcGxlLmNvbQAWaHR0cHM6Ly9ycC5leGFtcGxlLm5ldAAYMjAyNi0xMS0yMlQxNTozMToxOC44OTdaAAAAADBFAiEAg5E4N96zm8UkCXA3771hB8t2BWs+48LmuyQHdw8VVbgCIGfeHfIGAby/Wu2l3Gy0LYmzY3pBXe0jyOlwYq2zmeZ8";
    let bytes = decode_base64(text, MAX_TOKEN_LEN).unwrap();
    let token = RecoveryToken::decode(&bytes).unwrap();
    let v = token.view();
    assert_eq!(v.token_id().to_string(), "000102030405060708090a0b0c0d0e0f");
    assert_eq!(v.issued_time_raw(), "2026-11-22T15:31:18.897Z");
    assert_eq!(v.audience(), "https://rp.example.net");
    assert!(v.data().is_empty() && v.binding().is_empty());
}

fn with_byte(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] = value;
    b
}

#[test]
fn rejects_unsupported_version() {
    let b = with_byte(&signed(&recovery_token(), &ap_key()), 0, 1);
    assert_eq!(
        TokenView::decode(&b).unwrap_err(),
        DecodeError::UnsupportedVersion(1)
    );
}

#[test]
fn rejects_unknown_type() {
    let b = with_byte(&signed(&recovery_token(), &ap_key()), 1, 2);
    assert_eq!(
        TokenView::decode(&b).unwrap_err(),
        DecodeError::UnknownType(2)
    );
}

#[test]
fn rejects_reserved_option_bits() {
    for bit in [0x04u8, 0x08, 0x10, 0x20, 0x40, 0x80] {
        let b = with_byte(&signed(&recovery_token(), &ap_key()), 18, bit | 0x01);
        assert_eq!(
            TokenView::decode(&b).unwrap_err(),
            DecodeError::ReservedOptions(bit)
        );
    }
}

#[test]
fn rejects_status_requested_on_countersigned() {
    let inner = signed(&recovery_token(), &ap_key());
    let outer = signed(&countersigned_over(inner), &rp_key());
    let b = with_byte(&outer, 18, 0x01);
    assert_eq!(
        TokenView::decode(&b).unwrap_err(),
        DecodeError::StatusRequestedOnCountersigned
    );
}

#[test]
fn rejects_wrong_type_for_each_pipeline() {
    let inner = signed(&recovery_token(), &ap_key());
    let outer = signed(&countersigned_over(inner.clone()), &rp_key());
    assert_eq!(
        RecoveryToken::decode(&outer).unwrap_err(),
        Error::Rejected(Rejected::WrongType {
            expected: 0,
            found: 1
        })
    );
    assert_eq!(
        CountersignedToken::decode(&inner).unwrap_err(),
        Error::Rejected(Rejected::WrongType {
            expected: 1,
            found: 0
        })
    );
}

#[test]
fn rejects_every_truncation() {
    let bytes = signed(&recovery_token(), &ap_key());
    for len in 0..bytes.len() {
        let err = TokenView::decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Truncated { .. } | DecodeError::SignatureEncoding
            ),
            "length {len}: {err:?}"
        );
    }
}

#[test]
fn rejects_length_pointing_past_the_end() {
    let bytes = signed(&recovery_token(), &ap_key());
    // issuer length at offset 19..21
    let mut b = bytes.clone();
    b[19] = 0xff;
    b[20] = 0xff;
    assert_eq!(
        TokenView::decode(&b).unwrap_err(),
        DecodeError::Truncated { field: "issuer" }
    );
}

#[test]
fn rejects_trailing_bytes_after_signature() {
    let mut b = signed(&recovery_token(), &ap_key());
    b.push(0);
    assert_eq!(
        TokenView::decode(&b).unwrap_err(),
        DecodeError::TrailingData
    );
}

#[test]
fn rejects_missing_signature() {
    let token = recovery_token();
    let internals = token.encode_internals().unwrap();
    assert_eq!(
        TokenView::decode(&internals).unwrap_err(),
        DecodeError::Truncated { field: "signature" }
    );
}

fn token_with_issuer_bytes(issuer: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&[0x11; 16]);
    b.push(0);
    b.extend_from_slice(&u16::try_from(issuer.len()).unwrap().to_be_bytes());
    b.extend_from_slice(issuer);
    b
}

#[test]
fn rejects_non_canonical_issuer() {
    for issuer in [
        &b"https://AP.example.com"[..],
        b"https://ap.example.com/",
        b"https://ap.example.com:443",
    ] {
        assert_eq!(
            TokenView::decode(&token_with_issuer_bytes(issuer)).unwrap_err(),
            DecodeError::NonCanonicalOrigin { field: "issuer" }
        );
    }
}

#[test]
fn rejects_issuer_that_is_not_an_origin() {
    let err =
        TokenView::decode(&token_with_issuer_bytes(b"\xe8ttps://ap.example.com")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Origin {
            field: "issuer",
            reason: crate::OriginError::Character
        }
    );
    let err = TokenView::decode(&token_with_issuer_bytes(b"http://ap.example.com")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Origin {
            field: "issuer",
            reason: crate::OriginError::InsecureScheme
        }
    );
}

#[test]
fn rejects_invalid_issued_time() {
    let mut token = recovery_token();
    token.issued_time = IssuedTime {
        raw: "yesterday-ish".into(),
        at: ISSUED,
    };
    let b = signed(&token, &ap_key());
    assert_eq!(TokenView::decode(&b).unwrap_err(), DecodeError::IssuedTime);
}

#[test]
fn rejects_inner_garbage() {
    let outer = signed(&countersigned_over(b"garbage".to_vec()), &rp_key());
    let err = CountersignedToken::decode(&outer).unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::InnerToken(_))),
        "{err:?}"
    );
    assert_eq!(err.code(), "inner_token_malformed");
}

#[test]
fn rejects_countersigned_inside_countersigned() {
    let inner = signed(&recovery_token(), &ap_key());
    let middle = signed(&countersigned_over(inner), &rp_key());
    let outer = signed(&countersigned_over(middle), &rp_key());
    assert_eq!(
        CountersignedToken::decode(&outer).unwrap_err(),
        Error::Decode(DecodeError::InnerToken(Box::new(DecodeError::UnknownType(
            1
        ))))
    );
}

#[test]
fn encodes_largest_fields() {
    let mut token = recovery_token();
    token.data = vec![0xab; 65_535];
    token.binding = vec![0xcd; 65_535];
    let bytes = signed(&token, &ap_key());
    assert_eq!(
        TokenView::decode(&bytes).unwrap().to_token().unwrap(),
        token
    );
}

#[test]
fn refuses_field_of_65536_bytes() {
    let mut token = recovery_token();
    token.data = vec![0; 65_536];
    assert_eq!(
        token.encode_internals().unwrap_err(),
        Misuse::FieldTooLong {
            field: "data",
            len: 65_536
        }
    );
    token.data.clear();
    token.binding = vec![0; 70_000];
    assert_eq!(
        token.sign(&ap_key(), MAX_TOKEN_LEN).unwrap_err(),
        Error::Misuse(Misuse::FieldTooLong {
            field: "binding",
            len: 70_000
        })
    );
}

#[test]
fn refuses_token_over_callers_maximum() {
    let token = recovery_token();
    let err = token.sign(&ap_key(), 100).unwrap_err();
    assert!(
        matches!(err, Error::Misuse(Misuse::TokenTooLarge { max: 100, .. })),
        "{err:?}"
    );
}

#[test]
fn refuses_to_encode_status_requested_on_countersigned() {
    let mut token = countersigned_over(vec![]);
    token.options = Options::STATUS_REQUESTED;
    assert_eq!(
        token.encode_internals().unwrap_err(),
        Misuse::InvalidOptions(1)
    );
}

#[test]
fn base64_accepts_padded_and_unpadded_standard_only() {
    assert_eq!(decode_base64("+/8=", 8).unwrap(), vec![0xfb, 0xff]);
    assert_eq!(decode_base64("+/8", 8).unwrap(), vec![0xfb, 0xff]);
    assert_eq!(decode_base64("AA==", 8).unwrap(), vec![0]);
    for bad in [
        "-_8=", "+/8=\n", "+/ 8=", "+/9=", "+/8==", "====", "AA=", "AA=A",
    ] {
        assert_eq!(
            decode_base64(bad, 8).unwrap_err(),
            DecodeError::Base64,
            "{bad:?}"
        );
    }
}

#[test]
fn base64_refuses_oversize_before_decoding() {
    let text = "A".repeat(4000);
    assert!(matches!(
        decode_base64(&text, 100),
        Err(DecodeError::TooLarge { max: 100, .. })
    ));
}

#[test]
fn token_id_parses_hex_only() {
    let expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    for good in [
        "000102030405060708090A0B0C0D0E0F",
        "000102030405060708090a0b0c0d0e0f",
    ] {
        assert_eq!(TokenId::from_hex(good).unwrap().as_bytes(), &expected);
    }
    for bad in [
        "",
        "00",
        "000102030405060708090a0b0c0d0e0g",
        // 32 bytes, but one digit is a two-byte character.
        "000102030405060708090a0b0c0d0e\u{e9}",
        "+00102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0f00",
    ] {
        assert_eq!(
            TokenId::from_hex(bad),
            Err(DecodeError::Truncated { field: "token_id" })
        );
    }
}

#[test]
fn debug_never_prints_data_or_token_bytes() {
    let mut token = recovery_token();
    token.data = b"SECRET-PAYLOAD".to_vec();
    let encoded = token.sign(&ap_key(), MAX_TOKEN_LEN).unwrap();
    let view = TokenView::decode(encoded.as_bytes()).unwrap();
    assert!(!format!("{view:?}").contains("SECRET"));
    assert!(!format!("{encoded:?}").contains(&encoded.to_base64()[..8]));
}

fn arb_origin() -> impl Strategy<Value = Origin> {
    (
        "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,10}){1,3}",
        proptest::option::of(1u16..),
    )
        .prop_map(|(host, port)| {
            let text = match port {
                Some(p) => format!("https://{host}:{p}"),
                None => format!("https://{host}"),
            };
            Origin::parse(&text).unwrap()
        })
}

prop_compose! {
    fn arb_token()(
        countersigned in any::<bool>(),
        id in any::<[u8; 16]>(),
        low in any::<bool>(),
        status in any::<bool>(),
        issuer in arb_origin(),
        audience in arb_origin(),
        secs in 0i64..253_402_300_799,
        data in proptest::collection::vec(any::<u8>(), 0..300),
        binding in proptest::collection::vec(any::<u8>(), 0..40),
    ) -> Token {
        let mut options = if low { Options::LOW_FRICTION } else { Options::NONE };
        if status && !countersigned {
            options = options | Options::STATUS_REQUESTED;
        }
        Token {
            token_type: if countersigned { TokenType::Countersigned } else { TokenType::Recovery },
            token_id: TokenId::new(id),
            options,
            issuer,
            audience,
            issued_time: IssuedTime::from_instant(OffsetDateTime::from_unix_timestamp(secs).unwrap()),
            data,
            binding,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decode_of_encode_is_identity(token in arb_token()) {
        let bytes = signed(&token, &ap_key());
        let view = TokenView::decode(&bytes).unwrap();
        prop_assert_eq!(view.to_token().unwrap(), token);
        // Re-encoding an accepted token gives the same bytes.
        let again = view.to_token().unwrap().encode_internals().unwrap();
        prop_assert_eq!(&again[..], view.signed_bytes());
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = TokenView::decode(&bytes);
        let _ = CountersignedToken::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_mutated_tokens(at in 0usize..120, value in any::<u8>()) {
        let bytes = signed(&recovery_token(), &ap_key());
        let at = at % bytes.len();
        let _ = TokenView::decode(&with_byte(&bytes, at, value));
    }
}

#[test]
fn token_id_generate_draws_128_bits_from_the_rng() {
    let a = TokenId::generate(&mut getrandom::SysRng).unwrap();
    let b = TokenId::generate(&mut getrandom::SysRng).unwrap();
    assert_ne!(a, b);
}

#[test]
fn token_id_generate_reports_a_failing_rng() {
    struct Broken;
    impl rand_core::TryRng for Broken {
        type Error = fmt::Error;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Err(fmt::Error)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Err(fmt::Error)
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
            Err(fmt::Error)
        }
    }
    impl rand_core::TryCryptoRng for Broken {}
    assert_eq!(TokenId::generate(&mut Broken), Err(Misuse::Rng));
}
