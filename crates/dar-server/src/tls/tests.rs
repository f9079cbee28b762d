use super::*;
use crate::testutil::temp_dir;

fn names() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn read_all(ca: &LocalCa) -> Vec<Vec<u8>> {
    [
        ca.ca_cert_path(),
        ca.ca_key_path(),
        ca.cert_path(),
        ca.key_path(),
    ]
    .iter()
    .map(|p| std::fs::read(p).unwrap())
    .collect()
}

#[test]
fn generates_a_local_ca_then_reuses_it_byte_for_byte() {
    let dir = temp_dir("ca").join("tls");
    let first = ensure_local_ca(&dir, &names()).unwrap();
    assert!(first.generated());
    let bytes = read_all(&first);
    let second = ensure_local_ca(&dir, &names()).unwrap();
    assert!(!second.generated());
    assert_eq!(read_all(&second), bytes);
    assert!(server_config_from_pem_files(&second.cert_path(), &second.key_path()).is_ok());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
}

#[test]
fn regenerates_all_four_files_when_one_is_missing() {
    let dir = temp_dir("regen");
    let first = ensure_local_ca(&dir, &names()).unwrap();
    let before = read_all(&first);
    std::fs::remove_file(first.key_path()).unwrap();
    let second = ensure_local_ca(&dir, &names()).unwrap();
    assert!(second.generated());
    let after = read_all(&second);
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
    }
    assert!(server_config_from_pem_files(&second.cert_path(), &second.key_path()).is_ok());
}

#[cfg(unix)]
#[test]
fn private_keys_are_mode_0600_and_the_directory_0700() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir("modes").join("tls");
    let ca = ensure_local_ca(&dir, &names()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ca.key_path()), 0o600);
    assert_eq!(mode(&ca.ca_key_path()), 0o600);
    assert_eq!(mode(&ca.cert_path()), 0o644);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn refuses_a_bad_name() {
    let dir = temp_dir("badname");
    let bad = vec!["bücher.test".to_owned()];
    assert!(matches!(
        ensure_local_ca(&dir, &bad),
        Err(TlsError::Generate(_))
    ));
}

#[test]
fn reports_a_missing_certificate_file() {
    let dir = temp_dir("nocert");
    let e = server_config_from_pem_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }));
}

#[test]
fn reports_a_file_without_a_certificate() {
    let dir = temp_dir("empty");
    std::fs::write(dir.join("cert.pem"), "nothing here").unwrap();
    let e = server_config_from_pem_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }));
}

#[test]
fn a_bad_key_file_is_reported_without_its_contents() {
    let dir = temp_dir("badkey");
    let ca = ensure_local_ca(&dir.join("tls"), &names()).unwrap();
    std::fs::write(dir.join("key.pem"), "SUPERSECRET").unwrap();
    let e = server_config_from_pem_files(&ca.cert_path(), &dir.join("key.pem")).unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }));
    assert!(!e.to_string().contains("SUPERSECRET"));
}

#[test]
fn refuses_a_key_that_does_not_match_the_certificate() {
    let a = ensure_local_ca(&temp_dir("a"), &names()).unwrap();
    let b = ensure_local_ca(&temp_dir("b"), &names()).unwrap();
    let e = server_config_from_pem_files(&a.cert_path(), &b.key_path()).unwrap_err();
    assert!(matches!(e, TlsError::Rustls(_)), "{e:?}");
}

#[test]
fn server_config_offers_h2_and_http1() {
    let ca = ensure_local_ca(&temp_dir("alpn"), &names()).unwrap();
    let config = server_config_from_pem_files(&ca.cert_path(), &ca.key_path()).unwrap();
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
