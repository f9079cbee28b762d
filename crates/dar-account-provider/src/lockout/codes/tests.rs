//! Tests of recovery codes and email codes.

use std::collections::{BTreeSet, VecDeque};

use super::*;

/// An RNG that hands out scripted bytes (then zeros).
struct Scripted(VecDeque<u8>);

impl rand_core::TryRng for Scripted {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for d in dst {
            *d = self.0.pop_front().unwrap_or(0);
        }
        Ok(())
    }
}

impl TryCryptoRng for Scripted {}

#[derive(Debug)]
struct Broken;

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken")
    }
}

impl core::error::Error for Broken {}

impl rand_core::TryRng for Broken {
    type Error = Broken;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Err(Broken)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Err(Broken)
    }

    fn try_fill_bytes(&mut self, _dst: &mut [u8]) -> Result<(), Self::Error> {
        Err(Broken)
    }
}

impl TryCryptoRng for Broken {}

fn sys() -> getrandom::SysRng {
    getrandom::SysRng
}

#[test]
fn base32_matches_rfc_4648_in_lower_case() {
    // RFC 4648 §10 test vectors, lower-cased and unpadded.
    for (input, expected) in [
        ("", ""),
        ("f", "my"),
        ("fo", "mzxq"),
        ("foo", "mzxw6"),
        ("foob", "mzxw6yq"),
        ("fooba", "mzxw6ytb"),
        ("foobar", "mzxw6ytboi"),
    ] {
        assert_eq!(base32(input.as_bytes()).as_str(), expected, "{input:?}");
    }
}

#[test]
fn recovery_codes_have_the_shown_format() {
    let codes = generate_recovery_codes(&mut sys()).unwrap();
    assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
    assert!(!codes.is_empty());
    for code in &codes {
        let s = code.as_str();
        assert_eq!(s.len(), 19, "{s}");
        for (i, c) in s.chars().enumerate() {
            if i % 5 == 4 {
                assert_eq!(c, '-', "{s}");
            } else {
                assert!(c.is_ascii_lowercase() || ('2'..='7').contains(&c), "{s}");
            }
        }
    }
    // Known bytes give known codes: 80 bits, 5 per letter, no padding.
    let zeros = generate_recovery_codes(&mut Scripted(VecDeque::new())).unwrap();
    assert_eq!(zeros.iter().next().unwrap().as_str(), "aaaa-aaaa-aaaa-aaaa");
    let ones = generate_recovery_codes(&mut Scripted(vec![0xff; 10].into())).unwrap();
    assert_eq!(ones.iter().next().unwrap().as_str(), "7777-7777-7777-7777");
}

#[test]
fn recovery_codes_are_unique() {
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        for code in &generate_recovery_codes(&mut sys()).unwrap() {
            assert!(seen.insert(code.as_str().to_owned()));
        }
    }
    assert_eq!(seen.len(), 100 * RECOVERY_CODE_COUNT);
}

#[test]
fn plaintext_codes_never_show_in_debug() {
    let codes = generate_recovery_codes(&mut sys()).unwrap();
    let first = codes.iter().next().unwrap();
    let debug = format!("{codes:?} {first:?}");
    assert!(!debug.contains(first.as_str()), "{debug}");
    assert!(!debug.contains(&first.as_str()[..4]), "{debug}");
    assert_eq!(
        debug,
        "RecoveryCodes(10 codes, <redacted>) RecoveryCode(<redacted>)"
    );
    let email = generate_email_code(&mut sys()).unwrap();
    assert_eq!(format!("{email:?}"), "EmailCode(<redacted>)");
}

#[test]
fn recovery_code_input_is_normalised() {
    let canonical = "k3xq7mvda2pzryh4";
    for typed in [
        "k3xq-7mvd-a2pz-ryh4",
        "K3XQ-7MVD-A2PZ-RYH4",
        "k3xq 7mvd a2pz ryh4",
        "  k3xq7mvda2pzryh4\n",
        "k3-xq-7m-vd-a2-pz-ry-h4",
        "\tK3xq-7Mvd a2pz-ryH4 ",
    ] {
        assert_eq!(
            normalize_recovery_code(typed).unwrap().as_str(),
            canonical,
            "{typed:?}"
        );
    }
    for bad in [
        "",
        "k3xq-7mvd-a2pz-ryh",       // 15 letters
        "k3xq-7mvd-a2pz-ryh45",     // 17 letters
        "k3xq-7mvd-a2pz-ryh1",      // 1 is not base32
        "k3xq-7mvd-a2pz-ryh0",      // nor 0
        "k3xq_7mvd_a2pz_ryh4",      // underscores are not ignored
        "k3xq-7mvd-a2pz-ryh\u{e9}", // nor anything beyond ASCII
    ] {
        assert_eq!(
            normalize_recovery_code(bad).unwrap_err(),
            AccountProviderError::MalformedCode,
            "{bad:?}"
        );
    }
    // Length is bounded before anything else: 64 bytes pass, 65 do not, valid letters or not.
    let padded = format!("{canonical:<64}");
    assert_eq!(padded.len(), MAX_CODE_INPUT_LEN);
    assert_eq!(
        normalize_recovery_code(&padded).unwrap().as_str(),
        canonical
    );
    let over = format!("{canonical:<65}");
    assert_eq!(
        normalize_recovery_code(&over).unwrap_err(),
        AccountProviderError::MalformedCode
    );
    assert_eq!(
        verify_recovery_code(&"-".repeat(10_000), "not even a hash").unwrap_err(),
        AccountProviderError::MalformedCode
    );
}

#[test]
fn recovery_code_hashes_verify_only_their_code() {
    let codes = generate_recovery_codes(&mut sys()).unwrap();
    let mut it = codes.iter();
    let (a, b) = (it.next().unwrap(), it.next().unwrap());
    let hash = hash_recovery_code(a, &mut sys()).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(a.as_str()));
    assert!(verify_recovery_code(a.as_str(), &hash).unwrap());
    assert!(verify_recovery_code(&a.as_str().to_uppercase().replace('-', ""), &hash).unwrap());
    assert!(!verify_recovery_code(b.as_str(), &hash).unwrap());
    // A fresh salt every time.
    let again = hash_recovery_code(a, &mut sys()).unwrap();
    assert_ne!(hash, again);
    assert!(verify_recovery_code(a.as_str(), &again).unwrap());
    // A stored value that is not a PHC string is corrupt data, not a wrong code.
    assert_eq!(
        verify_recovery_code(a.as_str(), "plaintext?").unwrap_err(),
        AccountProviderError::Store(StoreFailure::Corrupt("recovery code hash"))
    );
}

#[test]
fn matching_finds_the_code_among_the_unused_ones() {
    let codes = generate_recovery_codes(&mut sys()).unwrap();
    let shown: Vec<&str> = codes.iter().map(RecoveryCode::as_str).collect();
    // Three stored codes are enough to show the search.
    let unused: Vec<(i64, String)> = codes
        .iter()
        .take(3)
        .zip([11, 12, 13])
        .map(|(c, id)| (id, hash_recovery_code(c, &mut sys()).unwrap()))
        .collect();
    assert_eq!(match_recovery_code(shown[2], &unused).unwrap(), Some(13));
    assert_eq!(match_recovery_code(shown[0], &unused).unwrap(), Some(11));
    assert_eq!(match_recovery_code(shown[5], &unused).unwrap(), None);
    assert_eq!(
        match_recovery_code(shown[0], &[] as &[(i64, String)]).unwrap(),
        None
    );
    assert_eq!(
        match_recovery_code("nope", &unused).unwrap_err(),
        AccountProviderError::MalformedCode
    );
}

#[test]
fn a_failing_rng_is_an_error_not_a_weak_code() {
    let rng_error = AccountProviderError::from(Misuse::Rng);
    assert_eq!(generate_recovery_codes(&mut Broken).unwrap_err(), rng_error);
    assert_eq!(generate_email_code(&mut Broken).unwrap_err(), rng_error);
    let codes = generate_recovery_codes(&mut sys()).unwrap();
    assert_eq!(codes.hashes(&mut Broken).unwrap_err(), rng_error);
}

#[test]
fn email_codes_are_eight_digits_without_modulo_bias() {
    // The rejection zone: 4 200 000 000 = 42 × 10⁸; draws at or above it are redrawn.
    let le = |v: u32| v.to_le_bytes();
    let draw = |values: &[u32]| {
        let bytes: VecDeque<u8> = values.iter().flat_map(|v| le(*v)).collect();
        generate_email_code(&mut Scripted(bytes)).unwrap()
    };
    assert_eq!(draw(&[123]).as_str(), "00000123");
    assert_eq!(draw(&[4_199_999_999]).as_str(), "99999999");
    assert_eq!(draw(&[4_200_000_000, 7]).as_str(), "00000007");
    assert_eq!(
        draw(&[u32::MAX, 4_294_967_000, 100_000_005]).as_str(),
        "00000005"
    );
}

#[test]
fn email_codes_look_uniform() {
    // 20 000 draws: each leading digit about 2 000 times (standard deviation about 42), and
    // each last digit too; the bounds are seven deviations wide.
    let mut first = [0u32; 10];
    let mut last = [0u32; 10];
    for _ in 0..20_000 {
        let code = generate_email_code(&mut sys()).unwrap();
        let s = code.as_str().as_bytes();
        assert_eq!(s.len(), EMAIL_CODE_DIGITS);
        assert!(s.iter().all(u8::is_ascii_digit));
        first[usize::from(s[0] - b'0')] += 1;
        last[usize::from(s[7] - b'0')] += 1;
    }
    for counts in [first, last] {
        assert!(
            counts.iter().all(|c| (1_700..=2_300).contains(c)),
            "{counts:?}"
        );
    }
}

#[test]
fn email_code_hash_binds_the_recovery_and_checks_in_constant_time() {
    let code = generate_email_code(&mut sys()).unwrap();
    let stored = email_code_hash("recovery-1", code.as_str());
    assert_eq!(stored.len(), 64);
    assert!(
        stored
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert!(!stored.contains(code.as_str()));
    assert!(email_code_matches(&stored, "recovery-1", code.as_str()).unwrap());
    // Typed with a space or dashes in the middle.
    let (head, tail) = code.as_str().split_at(4);
    assert!(email_code_matches(&stored, "recovery-1", &format!(" {head} {tail} ")).unwrap());
    assert!(email_code_matches(&stored, "recovery-1", &format!("{head}-{tail}")).unwrap());
    // Another recovery's code, or another code.
    assert!(!email_code_matches(&stored, "recovery-2", code.as_str()).unwrap());
    let other = if code.as_str() == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    assert!(!email_code_matches(&stored, "recovery-1", other).unwrap());
    // Known answer: the hash input layout is fixed (label, 0, recovery, 0, code).
    assert_eq!(email_code_hash("r", "12345678"), {
        let mut h = Sha256::new();
        h.update(b"dar/ap/email-code/v1\x00r\x0012345678");
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    for bad in ["1234567", "123456789", "1234567a", "", &"1".repeat(65)] {
        assert_eq!(
            email_code_matches(&stored, "recovery-1", bad).unwrap_err(),
            AccountProviderError::MalformedCode,
            "{bad:?}"
        );
    }
}
