//! Recovery codes and email codes: making them, reading what the user typed, hashing and
//! checking.
//!
//! **Recovery codes** are shown once when the user sets up a second factor:
//! [`RECOVERY_CODE_COUNT`] codes of 80 bits each from the RNG passed in, written as four
//! groups of four lowercase base32 letters (`k3xq-7mvd-a2pz-ryh4`). Only argon2id hashes (PHC
//! strings, random salt) are stored: the codes live for years, so a stolen database must not
//! give them away cheaply. Regenerating replaces the whole set; each code is single-use (the
//! store marks it used).
//!
//! **Email codes** are [`EMAIL_CODE_DIGITS`] decimal digits, drawn uniformly, valid
//! [`EMAIL_CODE_LIFETIME`], bound to one recovery, at most [`EMAIL_CODE_MAX_ATTEMPTS`]
//! guesses each. They are stored as a SHA-256 hash over the recovery id and the code: the
//! short lifetime and the attempt limit are what protect them, so a fast hash is enough
//! there; the hash keeps the plaintext out of the database and binds it to its recovery.
//!
//! Typed codes are normalised first: case is ignored, and so are spaces and dashes; input
//! longer than [`MAX_CODE_INPUT_LEN`] bytes is refused before any hashing.
//!
//! ```
//! use dar_account_provider::lockout::codes::*;
//! # fn main() -> Result<(), dar_account_provider::AccountProviderError> {
//! let mut rng = getrandom::SysRng;
//! let codes = generate_recovery_codes(&mut rng)?;
//! assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
//! let hashes = codes.hashes(&mut rng)?; // store these; show the codes once
//! let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
//! // The user may type a code in capitals with spaces instead of dashes.
//! let typed = shown[3].to_uppercase().replace('-', " ");
//! assert!(verify_recovery_code(&typed, &hashes[3])?);
//! assert!(!verify_recovery_code(shown[3], &hashes[4])?);
//!
//! let email = generate_email_code(&mut rng)?;
//! let stored = email_code_hash("recovery-17", email.as_str());
//! assert!(email_code_matches(&stored, "recovery-17", email.as_str())?);
//! assert!(!email_code_matches(&stored, "recovery-18", email.as_str())?);
//! # Ok(()) }
//! ```

use core::fmt;

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::phc::PasswordHash;
use dar_core::Misuse;
use rand_core::TryCryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::Duration;
use zeroize::Zeroizing;

use crate::error::{AccountProviderError, StoreFailure};

/// How many recovery codes one set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code: 80 bits, above NIST's 64.
const RECOVERY_CODE_BYTES: usize = 10;
/// Base32 letters per recovery code (5 bits each).
const RECOVERY_CODE_CHARS: usize = RECOVERY_CODE_BYTES * 8 / 5;
/// Letters per dash-separated group when shown.
const GROUP: usize = 4;
/// The RFC 4648 base32 alphabet, lower case.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Salt bytes of an argon2id hash (the PHC recommendation).
const SALT_BYTES: usize = 16;
/// argon2id memory in KiB: OWASP's "46 MiB, 1 pass" option, as strong as its "19 MiB, 2
/// passes" one (argon2's default). Chosen for the larger block: above glibc's 32 MiB ceiling
/// for its adaptive mmap threshold, each run's memory is mapped and returned when the run
/// ends; 19 MiB blocks were kept by the allocator, and a server's memory grew by about 19 MiB
/// per password it had hashed (docs/load.md, "Memory").
const ARGON2_MEMORY_KIB: u32 = 47_104;
/// argon2id passes.
const ARGON2_PASSES: u32 = 1;

/// The argon2id instance dar hashes secrets with (passwords, recovery codes): argon2id v19,
/// 46 MiB, 1 pass, 1 lane. Verification reads the parameters from the stored PHC string, so
/// hashes made with other parameters (argon2's default, before this choice) still verify.
///
/// ```
/// let argon2 = dar_account_provider::lockout::argon2id();
/// assert_eq!(argon2.params().m_cost(), 47_104);
/// ```
pub fn argon2id() -> argon2::Argon2<'static> {
    // The constants are within argon2's bounds, so `Params::new` cannot refuse them; the
    // default is a sound fallback all the same.
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Digits of an email code: guessing one within [`EMAIL_CODE_MAX_ATTEMPTS`] tries succeeds
/// with probability 5 × 10⁻⁸.
pub const EMAIL_CODE_DIGITS: usize = 8;
const EMAIL_CODE_RANGE: u32 = 100_000_000;
/// How long an email code is valid (OWASP ASVS: at most 10 minutes for out-of-band codes).
pub const EMAIL_CODE_LIFETIME: Duration = Duration::minutes(10);
/// Wrong guesses allowed per email code; then it is void and a new one must be sent.
pub const EMAIL_CODE_MAX_ATTEMPTS: u32 = 5;
/// The longest typed code accepted, in bytes, before normalisation.
pub const MAX_CODE_INPUT_LEN: usize = 64;
/// Domain separation of email code hashes.
const EMAIL_CODE_LABEL: &[u8] = b"dar/ap/email-code/v1";

/// One recovery code in plaintext, as shown to the user (`xxxx-xxxx-xxxx-xxxx`). Zeroized on
/// drop; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);

impl RecoveryCode {
    /// The code as shown, with dashes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// A fresh set of recovery codes, to show once and then drop.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes(Vec<RecoveryCode>);

impl RecoveryCodes {
    /// The codes.
    pub fn iter(&self) -> core::slice::Iter<'_, RecoveryCode> {
        self.0.iter()
    }

    /// How many ([`RECOVERY_CODE_COUNT`]).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty (never, for a generated set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The argon2id hash of every code, in order: what the store keeps. CPU-heavy (one
    /// argon2id run per code): call it on a blocking thread.
    ///
    /// # Errors
    ///
    /// As [`hash_recovery_code`].
    pub fn hashes<R>(&self, rng: &mut R) -> Result<Vec<String>, AccountProviderError>
    where
        R: TryCryptoRng + ?Sized,
    {
        self.0.iter().map(|c| hash_recovery_code(c, rng)).collect()
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes, <redacted>)", self.0.len())
    }
}

impl<'a> IntoIterator for &'a RecoveryCodes {
    type Item = &'a RecoveryCode;
    type IntoIter = core::slice::Iter<'a, RecoveryCode>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Generates a set of [`RECOVERY_CODE_COUNT`] recovery codes from `rng` (the OS RNG in
/// production).
///
/// # Errors
///
/// [`AccountProviderError::Protocol`] (`Misuse::Rng`) if the RNG fails.
pub fn generate_recovery_codes<R>(rng: &mut R) -> Result<RecoveryCodes, AccountProviderError>
where
    R: TryCryptoRng + ?Sized,
{
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
        rng.try_fill_bytes(bytes.as_mut_slice())
            .map_err(|_| Misuse::Rng)?;
        let letters = base32(bytes.as_slice());
        let mut shown = Zeroizing::new(String::with_capacity(RECOVERY_CODE_CHARS + 3));
        for (i, c) in letters.chars().enumerate() {
            if i > 0 && i % GROUP == 0 {
                shown.push('-');
            }
            shown.push(c);
        }
        codes.push(RecoveryCode(shown));
    }
    Ok(RecoveryCodes(codes))
}

/// Lowercase, unpadded RFC 4648 base32 of `bytes`.
fn base32(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 8 / 5 + 1));
    let mut buffer: u16 = 0;
    let mut bits = 0u8;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[usize::from((buffer >> bits) & 0x1f)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32[usize::from((buffer << (5 - bits)) & 0x1f)],
        ));
    }
    out
}

/// The canonical form of a typed recovery code: its 16 base32 letters, lower case, without
/// spaces or dashes. This is what is hashed.
///
/// # Errors
///
/// [`AccountProviderError::MalformedCode`] if the input is longer than
/// [`MAX_CODE_INPUT_LEN`] bytes, holds a character outside the base32 alphabet (besides
/// spaces and dashes), or does not have exactly 16 letters.
pub fn normalize_recovery_code(input: &str) -> Result<Zeroizing<String>, AccountProviderError> {
    let letters = strip(input)?;
    if letters.len() != RECOVERY_CODE_CHARS || !letters.bytes().all(|b| BASE32.contains(&b)) {
        return Err(AccountProviderError::MalformedCode);
    }
    Ok(letters)
}

/// `input` lower-cased without ASCII whitespace and dashes, if it is short enough.
fn strip(input: &str) -> Result<Zeroizing<String>, AccountProviderError> {
    if input.len() > MAX_CODE_INPUT_LEN {
        return Err(AccountProviderError::MalformedCode);
    }
    let mut out = Zeroizing::new(String::with_capacity(input.len()));
    for c in input.chars() {
        if !(c.is_ascii_whitespace() || c == '-') {
            out.push(c.to_ascii_lowercase());
        }
    }
    Ok(out)
}

/// The argon2id hash (PHC string, [`argon2id`]'s parameters, 16-byte salt from `rng`) of `code`:
/// what the store keeps. CPU-heavy: call it on a blocking thread.
///
/// # Errors
///
/// [`AccountProviderError::Protocol`] (`Misuse::Rng`) if the RNG fails,
/// [`AccountProviderError::CodeHashing`] if argon2 fails.
pub fn hash_recovery_code<R>(
    code: &RecoveryCode,
    rng: &mut R,
) -> Result<String, AccountProviderError>
where
    R: TryCryptoRng + ?Sized,
{
    let canonical = normalize_recovery_code(code.as_str())?;
    let mut salt = [0u8; SALT_BYTES];
    rng.try_fill_bytes(&mut salt).map_err(|_| Misuse::Rng)?;
    argon2id()
        .hash_password_with_salt(canonical.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountProviderError::CodeHashing)
}

/// Whether the typed `input` is the recovery code whose hash is `stored_hash`. The output
/// comparison is constant-time (argon2's). CPU-heavy: call it on a blocking thread.
///
/// # Errors
///
/// [`AccountProviderError::MalformedCode`] for input that cannot be a recovery code (see
/// [`normalize_recovery_code`]); [`AccountProviderError::Store`] (`Corrupt`) if
/// `stored_hash` is not an argon2 PHC string.
pub fn verify_recovery_code(input: &str, stored_hash: &str) -> Result<bool, AccountProviderError> {
    let canonical = normalize_recovery_code(input)?;
    verify_canonical(&canonical, stored_hash)
}

fn verify_canonical(canonical: &str, stored_hash: &str) -> Result<bool, AccountProviderError> {
    let parsed =
        PasswordHash::new(stored_hash).map_err(|_| StoreFailure::Corrupt("recovery code hash"))?;
    Ok(argon2id()
        .verify_password(canonical.as_bytes(), &parsed)
        .is_ok())
}

/// Which of the account's unused recovery codes (`(id, hash)` pairs, as the store lists
/// them) the typed `input` is, if any. The caller then marks that id used (compare-and-set:
/// exactly one concurrent use wins). Costs one argon2id run per code tried: call it on a
/// blocking thread, and throttle attempts per account.
///
/// # Errors
///
/// As [`verify_recovery_code`].
pub fn match_recovery_code<K: Clone>(
    input: &str,
    unused: &[(K, String)],
) -> Result<Option<K>, AccountProviderError> {
    let canonical = normalize_recovery_code(input)?;
    for (id, hash) in unused {
        if verify_canonical(&canonical, hash)? {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

/// An email code in plaintext (eight digits). Zeroized on drop; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode(Zeroizing<String>);

impl EmailCode {
    /// The digits, to put in the email.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailCode(<redacted>)")
    }
}

/// Generates an email code: [`EMAIL_CODE_DIGITS`] digits, uniform over all 10⁸ values (draws
/// that would bias the result are rejected and drawn again, never reduced modulo).
///
/// # Errors
///
/// [`AccountProviderError::Protocol`] (`Misuse::Rng`) if the RNG fails.
pub fn generate_email_code<R>(rng: &mut R) -> Result<EmailCode, AccountProviderError>
where
    R: TryCryptoRng + ?Sized,
{
    // The largest multiple of 10⁸ that fits in u32: values at or above it are redrawn
    // (probability about 2 %).
    const ZONE: u32 = (u32::MAX / EMAIL_CODE_RANGE) * EMAIL_CODE_RANGE;
    loop {
        let mut bytes = Zeroizing::new([0u8; 4]);
        rng.try_fill_bytes(bytes.as_mut_slice())
            .map_err(|_| Misuse::Rng)?;
        let value = Zeroizing::new(u32::from_le_bytes(*bytes));
        if *value < ZONE {
            return Ok(EmailCode(Zeroizing::new(format!(
                "{:0width$}",
                *value % EMAIL_CODE_RANGE,
                width = EMAIL_CODE_DIGITS
            ))));
        }
    }
}

/// The canonical form of a typed email code: its digits, without spaces or dashes.
///
/// # Errors
///
/// [`AccountProviderError::MalformedCode`] if the input is longer than
/// [`MAX_CODE_INPUT_LEN`] bytes, holds anything but digits, spaces and dashes, or does not
/// have exactly [`EMAIL_CODE_DIGITS`] digits.
pub fn normalize_email_code(input: &str) -> Result<Zeroizing<String>, AccountProviderError> {
    let digits = strip(input)?;
    if digits.len() != EMAIL_CODE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccountProviderError::MalformedCode);
    }
    Ok(digits)
}

/// The stored form of an email code for `recovery` (any stable identifier of the recovery it
/// was sent for): lowercase hex SHA-256 of a label, the recovery id and the code, each
/// separated by a zero byte. `code` is normalised first; a code that cannot be normalised
/// hashes as given, and then matches nothing a user can type.
pub fn email_code_hash(recovery: &str, code: &str) -> String {
    let canonical = normalize_email_code(code).unwrap_or_else(|_| Zeroizing::new(code.into()));
    let mut h = Sha256::new();
    h.update(EMAIL_CODE_LABEL);
    h.update([0]);
    h.update(recovery.as_bytes());
    h.update([0]);
    h.update(canonical.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    hex
}

/// Whether the typed `input` is the email code of `recovery` whose stored hash is
/// `stored_hash` (compared in constant time). Expiry, supersession and the attempt count are
/// the store's to check, atomically with this.
///
/// # Errors
///
/// [`AccountProviderError::MalformedCode`] for input that cannot be an email code (the
/// caller should count it as a wrong attempt all the same).
pub fn email_code_matches(
    stored_hash: &str,
    recovery: &str,
    input: &str,
) -> Result<bool, AccountProviderError> {
    let canonical = normalize_email_code(input)?;
    let computed = email_code_hash(recovery, &canonical);
    Ok(bool::from(
        computed.as_bytes().ct_eq(stored_hash.as_bytes()),
    ))
}

#[cfg(test)]
mod tests;
