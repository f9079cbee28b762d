//! The plaintext an account provider seals into a token's opaque data (§4.1.2).
//!
//! The draft lets the account provider put whatever it needs in the opaque data (§4.1.2) and
//! read it back at recovery (§3.5 step 13). [`Payload`] is this project's choice: the account,
//! when the token was made, a 32-byte secret the provider keeps a hash of, and whether the
//! token recovers an account or a key (§5).
//!
//! The bytes are a version byte followed by a bincode 2 encoding with a fixed configuration
//! (big-endian, fixed-width integers). bincode stays inside this module and `spec/sealing.md`
//! spells the bytes out field by field, so the encoder can be replaced (RUSTSEC-2025-0141 marks
//! bincode unmaintained) without changing a single sealed byte:
//!
//! ```text
//! 0x01 | purpose u8 | created_at i64 BE | secret [32] | account_id_len u64 BE | account_id
//! ```

use core::fmt;

use bincode::config::{BigEndian, Configuration, Fixint, Limit};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{DecodeError, Error, Misuse};

/// The payload format version: the first byte of every encoded payload.
const VERSION: u8 = 0x01;
/// `purpose | created_at | secret | account_id length`: the bytes after the version byte that
/// do not depend on the account id.
const FIXED_FIELDS_LEN: usize = 1 + 8 + 32 + 8;

/// Fixed, never to change: any other configuration changes the sealed bytes. The limit caps
/// what a hostile length prefix can make bincode claim.
const CONFIG: Configuration<BigEndian, Fixint, Limit<{ Payload::MAX_ENCODED_LEN }>> =
    bincode::config::standard()
        .with_big_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ Payload::MAX_ENCODED_LEN }>();

/// What a recovery token recovers (§5: the protocol can also recover a cryptographic key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Restore control of an account (§3). Encoded as 0.
    AccountRecovery,
    /// Recover a key held for the account (§5). Encoded as 1.
    KeyRecovery,
}

impl Purpose {
    fn to_byte(self) -> u8 {
        match self {
            Self::AccountRecovery => 0,
            Self::KeyRecovery => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::AccountRecovery),
            1 => Some(Self::KeyRecovery),
            _ => None,
        }
    }
}

/// The account provider's sealed plaintext.
///
/// The secret and the account id are zeroized on drop and never printed by `Debug`; equality
/// compares the secret in constant time.
///
/// ```
/// use dar_core::{Payload, Purpose};
/// let payload = Payload {
///     account_id: "user-42".to_owned(),
///     created_at: 1_795_000_000,
///     secret: [9; 32],
///     purpose: Purpose::AccountRecovery,
/// };
/// let bytes = payload.to_bytes()?;
/// assert_eq!(bytes.len(), 50 + "user-42".len());
/// assert_eq!(Payload::from_bytes(&bytes)?, payload);
/// # Ok::<(), dar_core::Error>(())
/// ```
pub struct Payload {
    /// The account the token recovers, in the account provider's own terms.
    pub account_id: String,
    /// When the account provider made the token, in seconds since the Unix epoch.
    pub created_at: i64,
    /// A random secret; the account provider stores only a hash of it, so that a token
    /// presented at recovery can be matched to the one it issued.
    pub secret: [u8; 32],
    /// What the token recovers.
    pub purpose: Purpose,
}

impl Payload {
    /// The largest encoded payload [`Payload::from_bytes`] reads and [`Payload::to_bytes`]
    /// writes: 4,096 bytes, which leaves an account id of up to 4,046 bytes.
    pub const MAX_ENCODED_LEN: usize = 4096;

    /// The payload's bytes, ready to seal (format in the module docs and `spec/sealing.md`).
    ///
    /// # Errors
    ///
    /// [`Misuse::PayloadTooLarge`] if the encoding would exceed
    /// [`Payload::MAX_ENCODED_LEN`].
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut out = Zeroizing::new(vec![0; self.encoded_len()?]);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The length of [`Payload::to_bytes`]'s encoding.
    ///
    /// # Errors
    ///
    /// [`Misuse::PayloadTooLarge`] if it would exceed [`Payload::MAX_ENCODED_LEN`].
    pub fn encoded_len(&self) -> Result<usize, Error> {
        Ok(FIXED_FIELDS_LEN
            .checked_add(1)
            .and_then(|n| n.checked_add(self.account_id.len()))
            .filter(|&n| n <= Self::MAX_ENCODED_LEN)
            .ok_or(Misuse::PayloadTooLarge)?)
    }

    /// Writes [`Payload::to_bytes`]'s encoding into the front of `buf` (a stack buffer of
    /// [`Payload::MAX_ENCODED_LEN`] bytes always has room) and returns its length.
    ///
    /// # Errors
    ///
    /// [`Misuse::PayloadTooLarge`] if the encoding exceeds [`Payload::MAX_ENCODED_LEN`] or
    /// `buf`.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.encoded_len()?;
        let out = buf.get_mut(..len).ok_or(Misuse::PayloadTooLarge)?;
        let (version, body) = out.split_first_mut().ok_or(Misuse::PayloadTooLarge)?;
        *version = VERSION;
        let wire = WireRef {
            purpose: self.purpose.to_byte(),
            created_at: self.created_at,
            secret: &self.secret,
            account_id: &self.account_id,
        };
        // The length was computed from the same fields, so bincode fills `body` exactly; a
        // mismatch would mean the configuration changed, and must not produce bytes.
        let written =
            bincode::encode_into_slice(wire, body, CONFIG).map_err(|_| Misuse::PayloadTooLarge)?;
        if written != body.len() {
            return Err(Misuse::PayloadTooLarge.into());
        }
        Ok(len)
    }

    /// Reads a payload from the bytes [`Payload::to_bytes`] wrote.
    ///
    /// Allocates only the account id, whose length is bounded by the input's.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Payload`] if the input is longer than [`Payload::MAX_ENCODED_LEN`], has
    /// another version byte, ends early, names an unknown purpose, holds an account id that is
    /// not UTF-8, or has bytes after the account id (§3.5 step 13).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > Self::MAX_ENCODED_LEN {
            return Err(DecodeError::Payload.into());
        }
        let Some((&VERSION, body)) = bytes.split_first() else {
            return Err(DecodeError::Payload.into());
        };
        // Borrowing the account id from the input means a hostile length prefix cannot make
        // bincode allocate: it fails on the short slice instead.
        let (wire, read): (WireBorrowed<'_>, usize) =
            bincode::borrow_decode_from_slice(body, CONFIG).map_err(|_| DecodeError::Payload)?;
        if read != body.len() {
            return Err(DecodeError::Payload.into());
        }
        let purpose = Purpose::from_byte(wire.purpose).ok_or(DecodeError::Payload)?;
        Ok(Self {
            account_id: wire.account_id.to_owned(),
            created_at: wire.created_at,
            secret: wire.secret,
            purpose,
        })
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.account_id.zeroize();
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("account_id", &format_args!("[redacted]"))
            .field("created_at", &self.created_at)
            .field("secret", &format_args!("[redacted]"))
            .field("purpose", &self.purpose)
            .finish()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        let secret_eq: bool = self.secret.ct_eq(&other.secret).into();
        secret_eq
            & (self.account_id == other.account_id)
            & (self.created_at == other.created_at)
            & (self.purpose == other.purpose)
    }
}

impl Eq for Payload {}

/// The fields after the version byte, in wire order, borrowed from a [`Payload`].
#[derive(bincode::Encode)]
struct WireRef<'a> {
    purpose: u8,
    created_at: i64,
    secret: &'a [u8; 32],
    account_id: &'a str,
}

/// The fields after the version byte, in wire order, borrowed from the input.
#[derive(bincode::BorrowDecode)]
struct WireBorrowed<'a> {
    purpose: u8,
    created_at: i64,
    secret: [u8; 32],
    account_id: &'a str,
}

impl Drop for WireBorrowed<'_> {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

#[cfg(test)]
mod tests;
