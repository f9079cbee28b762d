//! Reading the CLI's inputs: tokens, keys, origins, times and hex.

use std::io::Read as _;
use std::path::Path;

use dar_core::{MAX_TOKEN_LEN, Origin, SigningKey, VerifyingKey, VerifyingKeys};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::output::Failure;

/// Largest key file or standard input read; a token's base64 text is at most ~437 KiB.
const MAX_INPUT: u64 = 1024 * 1024;

/// The token text: the argument itself, or standard input for `-` (one trailing newline
/// removed; anything else is the token's to be judged).
pub(crate) fn token_text(arg: &str) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_owned())
}

/// Token bytes from base64 text, bounded by the largest token the format allows.
pub(crate) fn token_bytes(text: &str) -> Result<Vec<u8>, dar_core::Error> {
    Ok(dar_core::decode_base64(text, MAX_TOKEN_LEN)?)
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

/// A public key: base64 SPKI, SPKI PEM, or a path to a file holding either.
pub(crate) fn public_key(arg: &str) -> Result<VerifyingKey, Failure> {
    if let Ok(key) = VerifyingKey::parse(arg) {
        return Ok(key);
    }
    let path = Path::new(arg);
    if !path.is_file() {
        return Err(Failure::usage(
            "a public key must be base64 SPKI, SPKI PEM, or a path to a file holding one",
        ));
    }
    let text = read_file(path)?;
    VerifyingKey::parse(text.trim()).map_err(|e| {
        Failure::usage(format!(
            "{}: not a P-256 public key ({})",
            path.display(),
            e.code()
        ))
    })
}

pub(crate) fn public_keys(args: &[String]) -> Result<VerifyingKeys, Failure> {
    let keys = args
        .iter()
        .map(|a| public_key(a))
        .collect::<Result<Vec<_>, _>>()?;
    VerifyingKeys::new(keys).ok_or_else(|| Failure::usage("at least one key is needed"))
}

/// A private key: PKCS#8 or SEC1 PEM, bare base64 SEC1 DER (the public SDKs' form), or a path
/// to a file holding one. Never echoed in errors.
pub(crate) fn private_key(arg: &str) -> Result<SigningKey, Failure> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        read_file(path)?
    } else {
        Zeroizing::new(arg.to_owned())
    };
    SigningKey::from_pem_or_base64(text.trim())
        .map_err(|e| Failure::usage(format!("not a P-256 private key ({})", e.code())))
}

pub(crate) fn origin(what: &str, arg: &str) -> Result<Origin, Failure> {
    Origin::parse(arg).map_err(|e| Failure::usage(format!("--{what}: {e}")))
}

pub(crate) fn now(arg: Option<&str>) -> Result<OffsetDateTime, Failure> {
    match arg {
        None => Ok(OffsetDateTime::now_utc()),
        Some(text) => dar_core::issued_time::parse(text.as_bytes())
            .map_err(|_| Failure::usage("--now must be an RFC 3339 date-time")),
    }
}

pub(crate) fn hex_arg(what: &str, arg: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(arg).map_err(|_| Failure::usage(format!("--{what} must be hex")))
}
