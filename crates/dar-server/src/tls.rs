//! TLS for the HTTPS listener: a rustls `ServerConfig` (TLS 1.2 and 1.3, aws-lc-rs) from PEM
//! files, or from a local CA generated once for development and tests.
//!
//! The local CA ([`ensure_local_ca`]) writes four files into its directory: `ca.pem` (the
//! certificate clients trust), `ca-key.pem`, `cert.pem` (the leaf, for `localhost`,
//! `127.0.0.1`, `::1` and the configured names) and `key.pem`. Private keys are written with
//! mode 0600 and the directory with 0700. Later starts reuse the files unchanged; if any of the
//! four is missing all are generated again, and the log says that the CA changed (clients must
//! trust the new `ca.pem`). To change the leaf's names, delete the directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::config::TlsSettings;

/// The CA certificate clients trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The server's certificate, signed by the CA.
pub const CERT_FILE: &str = "cert.pem";
/// The server's private key (mode 0600).
pub const KEY_FILE: &str = "key.pem";

/// The largest PEM file read.
const MAX_PEM_LEN: u64 = 1024 * 1024;
/// How long the generated certificates are valid: a local development CA, never a public one.
const LOCAL_VALIDITY_DAYS: i64 = 3650;

/// Why TLS cannot be set up. No variant holds key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no usable private key (its contents are not printed).
    #[error("{}: no PEM private key found (PKCS#8, SEC1 or PKCS#1)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory cannot be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen failed to generate the local CA or leaf.
    #[error("cannot generate the local certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key (for example, they do not match).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration for this certificate chain (leaf first) and key: TLS 1.3
/// and 1.2, aws-lc-rs, ALPN `h2` and `http/1.1`.
///
/// # Errors
///
/// [`TlsError::Rustls`] when rustls refuses the chain or key (e.g. they do not match).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration from PEM files: a certificate chain and its private key.
///
/// # Errors
///
/// [`TlsError::Read`], [`TlsError::NoCertificate`], [`TlsError::NoPrivateKey`], or
/// [`TlsError::Rustls`].
pub fn server_config_from_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = read_pem(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: cert.to_owned(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let key_pem = zeroize::Zeroizing::new(read_pem(key)?);
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoPrivateKey {
        path: key.to_owned(),
    })?;
    server_config(chain, key_der)
}

/// The server configuration the settings call for; a local CA is generated or reused first.
/// `names` are the leaf's names when a CA is generated.
///
/// # Errors
///
/// As [`ensure_local_ca`] and [`server_config_from_pem_files`].
pub fn server_config_for(
    settings: &TlsSettings,
    names: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    match settings {
        TlsSettings::Files { cert, key } => server_config_from_pem_files(cert, key),
        TlsSettings::LocalCa { dir, .. } => {
            let ca = ensure_local_ca(dir, names)?;
            server_config_from_pem_files(&ca.cert_path(), &ca.key_path())
        }
    }
}

pub(crate) fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_PEM_LEN {
        return Err(read_err(std::io::Error::other("larger than 1 MiB")));
    }
    std::fs::read(path).map_err(read_err)
}

/// The local CA's directory, after [`ensure_local_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCa {
    dir: PathBuf,
    generated: bool,
}

impl LocalCa {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this call generated the files (false: they were reused).
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// `ca.pem`: the certificate clients must trust.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// `ca-key.pem`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join(CA_KEY_FILE)
    }

    /// `cert.pem`: the server's leaf certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// `key.pem`: the server's private key.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
}

/// Makes sure `dir` holds a local CA and a leaf certificate for `names`: reuses the four files
/// when all exist, and otherwise generates all four again (logging that the CA changed when
/// some existed before).
///
/// # Errors
///
/// [`TlsError::Write`] when the directory or a file cannot be written, and
/// [`TlsError::Generate`] when a name is not valid in a certificate.
pub fn ensure_local_ca(dir: &Path, names: &[String]) -> Result<LocalCa, TlsError> {
    let files = [CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE];
    let present = files.iter().filter(|f| dir.join(f).is_file()).count();
    if present == files.len() {
        return Ok(LocalCa {
            dir: dir.to_owned(),
            generated: false,
        });
    }
    let generated = generate(names)?;
    create_private_dir(dir)?;
    // Write every file under a temporary name first, then rename: a crash leaves either the
    // old set or a missing file (which regenerates), never a CA that does not match its leaf.
    let contents: [(&str, &str, bool); 4] = [
        (CA_CERT_FILE, &generated.ca_cert, false),
        (CA_KEY_FILE, &generated.ca_key, true),
        (CERT_FILE, &generated.cert, false),
        (KEY_FILE, &generated.key, true),
    ];
    for (name, text, private) in contents {
        write_file(&dir.join(format!("{name}.tmp")), text.as_bytes(), private)?;
    }
    for (name, _, _) in contents {
        let to = dir.join(name);
        std::fs::rename(dir.join(format!("{name}.tmp")), &to)
            .map_err(|source| TlsError::Write { path: to, source })?;
    }
    if present > 0 {
        tracing::warn!(
            dir = %dir.display(),
            "local CA was incomplete and has been generated again: the CA changed, \
             clients must trust the new {CA_CERT_FILE}"
        );
    } else {
        tracing::info!(
            dir = %dir.display(),
            "generated a local CA; clients must trust {CA_CERT_FILE}"
        );
    }
    Ok(LocalCa {
        dir: dir.to_owned(),
        generated: true,
    })
}

struct Generated {
    ca_cert: String,
    ca_key: zeroize::Zeroizing<String>,
    cert: String,
    key: zeroize::Zeroizing<String>,
}

fn generate(names: &[String]) -> Result<Generated, TlsError> {
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::days(1);
    let not_after = now + Duration::days(LOCAL_VALIDITY_DAYS);

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dar local development CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut leaf_params = CertificateParams::new(names.to_vec())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "dar local server");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    Ok(Generated {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key_pem,
        cert: leaf.pem(),
        key: zeroize::Zeroizing::new(leaf_key.serialize_pem()),
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a file; a private one is created with mode 0600 (before any byte is written).
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(write_err)?;
    #[cfg(unix)]
    if private {
        // A stale temporary file keeps its old mode through `open`: set it explicitly.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
    }
    file.write_all(bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

#[cfg(test)]
mod tests;
