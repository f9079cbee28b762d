use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// The account provider key of /work/shared/interop/fb-sdk-vectors.json (`keys.account_provider`),
// in every form that file gives it.
const AP_SCALAR_HEX: &str = "1ae50713e4f0595cecd767721ca2821902241a69447d940fcd69bfd4d737df33";
const AP_SDK_B64: &str = "MHcCAQEEIBrlBxPk8Flc7NdnchyighkCJBppRH2UD81pv9TXN98zoAoGCCqGSM49AwEHoUQDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";
const AP_PKCS8_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGuUHE+TwWVzs12dyHKKCGQIkGmlEfZQPzWm/1Nc33zOhRANCAARCKCE4Y7W5f5iShTqkeh3boRP2Mk7iEv9ZQ9o+7kCvg/O2j0iZ/6nPoy5BIkzph4kmI2KMDr2iIN5XTwsQtp5B";
const AP_SPKI_B64: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";
const AP_POINT_HEX: &str = "044228213863b5b97f9892853aa47a1ddba113f6324ee212ff5943da3eee40af83f3b68f4899ffa9cfa32e41224ce987892623628c0ebda220de574f0b10b69e41";
// `keys.recovery_provider` of the same file: a second, unrelated key.
const RP_SPKI_B64: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPYdrUPLiT97WIRM4FSfkpomhhb7V9YD8yfaRscBbnRDikMSb0fwy0MAnHcIsXsBMrX/qWzBc7260zA10jEznoA==";

// AlgorithmIdentifier DER for the SPKIs below.
const ALG_EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
const ALG_EC_SECP256K1: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x0a,
];
const ALG_EC_NO_PARAMS: &[u8] = &[
    0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
];
const ALG_EC_NULL_PARAMS: &[u8] = &[
    0x30, 0x0b, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x05, 0x00,
];
const ALG_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn ap_point() -> Result<Vec<u8>, hex::FromHexError> {
    hex::decode(AP_POINT_HEX)
}

/// SPKI DER from an AlgorithmIdentifier and the BIT STRING's content (unused-bits byte first).
/// Every test input is short, so all lengths use the short form.
fn spki(alg: &[u8], bit_string: &[u8]) -> Vec<u8> {
    let mut body = alg.to_vec();
    body.push(0x03);
    body.push(u8::try_from(bit_string.len()).unwrap_or(0x7f));
    body.extend_from_slice(bit_string);
    let mut der = vec![0x30, u8::try_from(body.len()).unwrap_or(0x7f)];
    der.extend_from_slice(&body);
    der
}

fn with_unused_bits_byte(point: &[u8]) -> Vec<u8> {
    let mut content = vec![0x00];
    content.extend_from_slice(point);
    content
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|line| core::str::from_utf8(line).ok())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn ap_key() -> Result<SigningKey, Error> {
    SigningKey::from_sdk_base64(AP_SDK_B64)
}

fn key_error(format: &'static str) -> Error {
    Error::Decode(DecodeError::Key { format })
}

#[test]
fn debug_redacts_signing_key() -> TestResult {
    let key = ap_key()?;
    let shown = format!("{key:?} {key:#?}");
    assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    assert!(!shown.contains("1ae5") && !shown.to_lowercase().contains("1ae5"));
    Ok(())
}

#[test]
fn reads_every_private_key_form_as_the_same_key() -> TestResult {
    let scalar: [u8; 32] = hex::decode(AP_SCALAR_HEX)?
        .try_into()
        .map_err(|_| "scalar length")?;
    let expected = SigningKey::from_scalar_bytes(&scalar)?;
    let sec1_der = STANDARD.decode(AP_SDK_B64)?;
    let pkcs8_der = STANDARD.decode(AP_PKCS8_B64)?;
    let sec1_pem = pem("EC PRIVATE KEY", &sec1_der);
    let pkcs8_pem = pem("PRIVATE KEY", &pkcs8_der);

    let read = [
        SigningKey::from_sdk_base64(AP_SDK_B64)?,
        SigningKey::from_sec1_der(&sec1_der)?,
        SigningKey::from_sec1_pem(&sec1_pem)?,
        SigningKey::from_pkcs8_der(&pkcs8_der)?,
        SigningKey::from_pkcs8_pem(&pkcs8_pem)?,
        SigningKey::from_pem_or_base64(AP_SDK_B64)?,
        SigningKey::from_pem_or_base64(AP_PKCS8_B64)?,
        SigningKey::from_pem_or_base64(&sec1_pem)?,
        SigningKey::from_pem_or_base64(&pkcs8_pem)?,
        SigningKey::from_pem_or_base64(&format!("\n  {AP_SDK_B64}\r\n"))?,
    ];
    for (i, key) in read.iter().enumerate() {
        assert!(*key == expected, "form {i}");
    }
    assert_eq!(*expected.secret_bytes(), scalar);
    Ok(())
}

#[test]
fn writes_the_forms_the_sdk_vectors_hold() -> TestResult {
    let key = ap_key()?;
    assert_eq!(key.to_sdk_base64()?.as_str(), AP_SDK_B64);
    assert_eq!(*key.to_pkcs8_der()?, STANDARD.decode(AP_PKCS8_B64)?);
    let pem = key.to_pkcs8_pem()?;
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(SigningKey::from_pkcs8_pem(&pem)? == key);
    Ok(())
}

#[test]
fn derives_the_published_public_key() -> TestResult {
    let public = ap_key()?.verifying_key();
    assert_eq!(public.to_spki_base64(), AP_SPKI_B64);
    assert_eq!(public.to_uncompressed_point().to_vec(), ap_point()?);
    assert_eq!(public, VerifyingKey::from_spki_base64(AP_SPKI_B64)?);
    Ok(())
}

// The "parsed keys are reused": an account provider takes its verifying key on every
// recovery (§3.5 step 5), and each must share the aws-lc parse made when the key was built.
#[cfg(feature = "aws-lc")]
#[test]
fn the_verifying_key_shares_the_parse_made_with_the_signing_key() -> TestResult {
    let key = ap_key()?;
    let (first, second) = (key.verifying_key(), key.verifying_key());
    let (Some(first), Some(second)) = (&first.fast, &second.fast) else {
        return Err("aws-lc refused the key".into());
    };
    assert!(std::sync::Arc::ptr_eq(first, second));
    assert!(std::sync::Arc::ptr_eq(
        first,
        key.public.fast.as_ref().ok_or("no parse")?
    ));
    Ok(())
}

#[test]
fn spki_encoding_matches_the_pkcs8_crate() -> TestResult {
    use p256::pkcs8::EncodePublicKey as _;
    let public = ap_key()?.verifying_key();
    let theirs = public.as_p256().to_public_key_der()?;
    assert_eq!(public.to_spki_der(), theirs.as_bytes());
    Ok(())
}

#[test]
fn round_trips_public_key_through_every_form() -> TestResult {
    let public = VerifyingKey::from_spki_base64(AP_SPKI_B64)?;
    assert_eq!(VerifyingKey::from_spki_der(&public.to_spki_der())?, public);
    assert_eq!(VerifyingKey::from_spki_pem(&public.to_spki_pem())?, public);
    assert_eq!(VerifyingKey::parse(&public.to_spki_pem())?, public);
    assert_eq!(VerifyingKey::parse(&format!(" {AP_SPKI_B64}\n"))?, public);
    let pem = public.to_spki_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(pem.lines().all(|line| line.len() <= 64));
    Ok(())
}

#[test]
fn fingerprint_is_sixteen_hex_digits_of_the_spki_hash() -> TestResult {
    let public = VerifyingKey::from_spki_base64(AP_SPKI_B64)?;
    let digest = Sha256::digest(STANDARD.decode(AP_SPKI_B64)?);
    assert_eq!(
        public.fingerprint(),
        hex::encode(digest.get(..8).ok_or("short digest")?)
    );
    assert_eq!(
        format!("{public:?}"),
        format!("VerifyingKey({})", public.fingerprint())
    );
    Ok(())
}

#[test]
fn rejects_spki_for_another_curve() -> TestResult {
    let der = spki(ALG_EC_SECP256K1, &with_unused_bits_byte(&ap_point()?));
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyAlgorithm.into())
    );
    Ok(())
}

#[test]
fn rejects_spki_for_another_algorithm() -> TestResult {
    let der = spki(ALG_RSA, &with_unused_bits_byte(&ap_point()?));
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyAlgorithm.into())
    );
    Ok(())
}

#[test]
fn rejects_spki_without_named_curve() -> TestResult {
    for alg in [ALG_EC_NO_PARAMS, ALG_EC_NULL_PARAMS] {
        let der = spki(alg, &with_unused_bits_byte(&ap_point()?));
        assert_eq!(
            VerifyingKey::from_spki_der(&der),
            Err(DecodeError::KeyAlgorithm.into())
        );
    }
    Ok(())
}

#[test]
fn rejects_compressed_point() -> TestResult {
    let point = ap_point()?;
    let mut compressed = point.get(..33).ok_or("short point")?.to_vec();
    // The y coordinate ends in 0x41: odd, so the compressed prefix is 0x03.
    compressed[0] = 0x03;
    let der = spki(ALG_EC_P256, &with_unused_bits_byte(&compressed));
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyPoint.into())
    );
    Ok(())
}

#[test]
fn rejects_hybrid_point() -> TestResult {
    let mut hybrid = ap_point()?;
    hybrid[0] = 0x07;
    let der = spki(ALG_EC_P256, &with_unused_bits_byte(&hybrid));
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyPoint.into())
    );
    Ok(())
}

#[test]
fn rejects_point_off_the_curve() -> TestResult {
    let mut point = ap_point()?;
    point[64] ^= 0x01;
    let der = spki(ALG_EC_P256, &with_unused_bits_byte(&point));
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyPoint.into())
    );
    Ok(())
}

#[test]
fn rejects_identity_point() {
    let der = spki(ALG_EC_P256, &[0x00, 0x00]);
    assert_eq!(
        VerifyingKey::from_spki_der(&der),
        Err(DecodeError::KeyPoint.into())
    );
}

#[test]
fn rejects_trailing_bytes_after_spki() -> TestResult {
    let mut der = STANDARD.decode(AP_SPKI_B64)?;
    der.push(0x00);
    assert_eq!(VerifyingKey::from_spki_der(&der), Err(key_error("SPKI")));
    Ok(())
}

#[test]
fn rejects_truncated_spki() -> TestResult {
    let der = STANDARD.decode(AP_SPKI_B64)?;
    for len in [0, 1, 2, 30, der.len() - 1] {
        let cut = der.get(..len).ok_or("cut")?;
        assert_eq!(
            VerifyingKey::from_spki_der(cut),
            Err(key_error("SPKI")),
            "len {len}"
        );
    }
    Ok(())
}

#[test]
fn rejects_bit_string_with_unused_bits() -> TestResult {
    let mut content = vec![0x01];
    content.extend_from_slice(&ap_point()?);
    let der = spki(ALG_EC_P256, &content);
    assert_eq!(VerifyingKey::from_spki_der(&der), Err(key_error("SPKI")));
    Ok(())
}

#[test]
fn rejects_spki_with_ber_long_length() -> TestResult {
    let der = STANDARD.decode(AP_SPKI_B64)?;
    let mut ber = vec![0x30, 0x81];
    ber.extend_from_slice(der.get(1..).ok_or("short")?);
    assert_eq!(VerifyingKey::from_spki_der(&ber), Err(key_error("SPKI")));
    Ok(())
}

#[test]
fn rejects_non_base64_and_wrong_pem_labels() -> TestResult {
    assert_eq!(VerifyingKey::parse("not base64!"), Err(key_error("base64")));
    assert_eq!(
        VerifyingKey::from_spki_base64("AAAA=A"),
        Err(key_error("base64"))
    );
    let der = STANDARD.decode(AP_SPKI_B64)?;
    assert_eq!(
        VerifyingKey::parse(&pem("EC PUBLIC KEY", &der)),
        Err(key_error("SPKI PEM"))
    );
    let sec1 = STANDARD.decode(AP_SDK_B64)?;
    assert_eq!(
        SigningKey::from_pkcs8_pem(&pem("EC PRIVATE KEY", &sec1)),
        Err(key_error("PKCS#8 PEM"))
    );
    assert_eq!(
        SigningKey::from_pem_or_base64(&pem("PUBLIC KEY", &der)),
        Err(key_error("PEM"))
    );
    assert_eq!(
        SigningKey::from_pem_or_base64(AP_SPKI_B64),
        Err(key_error("SEC1 or PKCS#8"))
    );
    Ok(())
}

#[test]
fn rejects_private_key_in_the_wrong_format() -> TestResult {
    let sec1 = STANDARD.decode(AP_SDK_B64)?;
    let pkcs8 = STANDARD.decode(AP_PKCS8_B64)?;
    assert_eq!(SigningKey::from_pkcs8_der(&sec1), Err(key_error("PKCS#8")));
    assert_eq!(SigningKey::from_sec1_der(&pkcs8), Err(key_error("SEC1")));
    assert_eq!(
        SigningKey::from_sdk_base64(AP_PKCS8_B64),
        Err(key_error("SEC1"))
    );
    let mut trailing = sec1.clone();
    trailing.push(0);
    assert_eq!(SigningKey::from_sec1_der(&trailing), Err(key_error("SEC1")));
    Ok(())
}

#[test]
fn rejects_sec1_key_whose_public_key_does_not_match() -> TestResult {
    let mut sec1 = STANDARD.decode(AP_SDK_B64)?;
    // The embedded public point is the last 65 bytes; corrupt its x coordinate.
    let at = sec1.len() - 40;
    sec1[at] ^= 0x01;
    assert_eq!(SigningKey::from_sec1_der(&sec1), Err(key_error("SEC1")));
    Ok(())
}

#[test]
fn rejects_out_of_range_scalars() -> TestResult {
    let n: [u8; 32] =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")?
            .try_into()
            .map_err(|_| "n length")?;
    assert_eq!(
        SigningKey::from_scalar_bytes(&[0; 32]),
        Err(key_error("scalar"))
    );
    assert_eq!(SigningKey::from_scalar_bytes(&n), Err(key_error("scalar")));
    assert_eq!(
        SigningKey::from_scalar_bytes(&[0xff; 32]),
        Err(key_error("scalar"))
    );
    Ok(())
}

#[test]
fn errors_never_echo_the_input() -> TestResult {
    let secret_looking = "MHcCAQEEIBrlBxPk8Flc7NdnchyighkCJBppRH2UD81pv9TXN98z";
    let errors = [
        SigningKey::from_sdk_base64(secret_looking).err(),
        SigningKey::from_pem_or_base64(secret_looking).err(),
        VerifyingKey::parse(secret_looking).err(),
    ];
    for error in errors {
        let error = error.ok_or("expected an error")?;
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("MHcC") && !shown.contains("rlBx"),
            "{shown}"
        );
    }
    Ok(())
}

#[derive(Debug)]
struct BrokenRngError;

impl fmt::Display for BrokenRngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken")
    }
}

impl core::error::Error for BrokenRngError {}

/// A random number generator that always fails.
struct BrokenRng;

impl rand_core::TryRng for BrokenRng {
    type Error = BrokenRngError;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Err(BrokenRngError)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Err(BrokenRngError)
    }

    fn try_fill_bytes(&mut self, _dst: &mut [u8]) -> Result<(), Self::Error> {
        Err(BrokenRngError)
    }
}

impl TryCryptoRng for BrokenRng {}

#[test]
fn reports_rng_failure_as_misuse() {
    assert_eq!(
        SigningKey::generate(&mut BrokenRng).err(),
        Some(Misuse::Rng.into())
    );
}

#[test]
fn generates_distinct_working_keys() -> TestResult {
    let mut rng = getrandom::SysRng;
    let a = SigningKey::generate(&mut rng)?;
    let b = SigningKey::generate(&mut rng)?;
    assert!(a != b);
    assert_ne!(a.verifying_key(), b.verifying_key());
    let again = SigningKey::from_pkcs8_der(&a.to_pkcs8_der()?)?;
    assert!(again == a);
    Ok(())
}

#[test]
fn key_set_is_ordered_unique_and_never_empty() -> TestResult {
    let ap = VerifyingKey::from_spki_base64(AP_SPKI_B64)?;
    let rp = VerifyingKey::from_spki_base64(RP_SPKI_B64)?;
    assert_eq!(VerifyingKeys::new(Vec::new()), None);
    let keys = VerifyingKeys::new([rp.clone(), ap.clone(), rp.clone()]).ok_or("empty")?;
    assert_eq!(keys.as_slice(), [rp.clone(), ap.clone()].as_slice());
    assert!(keys.contains(&ap));
    assert_eq!(keys.iter().count(), 2);
    assert_eq!(VerifyingKeys::from(ap.clone()).as_slice(), [ap].as_slice());
    Ok(())
}

#[test]
fn key_set_accepts_a_signature_by_any_of_its_keys() -> TestResult {
    let ap = ap_key()?;
    let other = SigningKey::from_scalar_bytes(&[7; 32])?;
    let stranger = SigningKey::from_scalar_bytes(&[9; 32])?;
    let keys = VerifyingKeys::new([other.verifying_key(), ap.verifying_key()]).ok_or("empty")?;
    let msg = b"token internals";
    assert!(keys.verify(msg, &ap.sign(msg)?));
    assert!(keys.verify(msg, &other.sign(msg)?));
    assert!(!keys.verify(msg, &stranger.sign(msg)?));
    assert!(!keys.verify(b"other internals", &ap.sign(msg)?));
    Ok(())
}

#[test]
fn key_set_names_the_key_that_verified_and_finds_keys_by_id() -> TestResult {
    let ap = ap_key()?;
    let other = SigningKey::from_scalar_bytes(&[7; 32])?;
    let stranger = SigningKey::from_scalar_bytes(&[9; 32])?;
    let keys = VerifyingKeys::new([other.verifying_key(), ap.verifying_key()]).ok_or("empty")?;
    let msg = b"token internals";
    assert_eq!(
        keys.verifier_of(msg, &ap.sign(msg)?),
        Some(&ap.verifying_key())
    );
    assert_eq!(keys.verifier_of(msg, &stranger.sign(msg)?), None);
    let ap_id = ap.verifying_key().key_id();
    assert_eq!(keys.find(&ap_id), Some(&ap.verifying_key()));
    assert_eq!(keys.find(&stranger.verifying_key().key_id()), None);
    Ok(())
}

#[test]
fn key_id_is_the_spki_hash_and_reads_back_from_its_text() -> TestResult {
    let public = VerifyingKey::from_spki_base64(AP_SPKI_B64)?;
    let id = public.key_id();
    let digest: [u8; 32] = Sha256::digest(STANDARD.decode(AP_SPKI_B64)?).into();
    assert_eq!(id.as_bytes(), &digest);
    assert_eq!(id.to_string(), hex::encode(digest));
    assert_eq!(format!("{id:?}"), format!("KeyId({})", hex::encode(digest)));
    assert_eq!(id.to_string().parse::<KeyId>()?, id);
    assert_eq!(id.to_string().to_uppercase().parse::<KeyId>()?, id);
    for bad in ["", "00", &"g".repeat(64), &"0".repeat(66)] {
        assert_eq!(bad.parse::<KeyId>(), Err(key_error("key id")), "{bad:?}");
    }
    Ok(())
}
