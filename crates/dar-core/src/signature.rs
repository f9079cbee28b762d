//! PLACEHOLDER (replaced by the real module).
#![allow(missing_docs, unreachable_pub)]
use crate::error::{DecodeError, Error};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature(p256::ecdsa::Signature);
impl Signature {
    pub fn from_der(b: &[u8]) -> Result<Self, Error> {
        if let Some(&l) = b.get(1) {
            if l < 0x80 && b.len() > usize::from(l) + 2 {
                return Err(DecodeError::TrailingData.into());
            }
        }
        p256::ecdsa::Signature::from_der(b)
            .map(Self)
            .map_err(|_| DecodeError::SignatureEncoding.into())
    }
    pub fn to_der(&self) -> Vec<u8> {
        self.0.to_der().as_bytes().to_vec()
    }
    pub(crate) fn inner(&self) -> &p256::ecdsa::Signature {
        &self.0
    }
}
