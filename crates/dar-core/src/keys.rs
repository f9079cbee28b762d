//! PLACEHOLDER (replaced by the real module).
#![allow(missing_docs, unreachable_pub, clippy::missing_errors_doc)]
use crate::error::{DecodeError, Error};
use crate::signature::Signature;
use p256::ecdsa::signature::{Signer, Verifier};
pub struct SigningKey(p256::ecdsa::SigningKey);
impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}
impl SigningKey {
    pub fn from_scalar_bytes(b: &[u8; 32]) -> Result<Self, Error> {
        p256::ecdsa::SigningKey::from_slice(b)
            .map(Self)
            .map_err(|_| DecodeError::Key { format: "scalar" }.into())
    }
    pub fn sign(&self, msg: &[u8]) -> Result<Signature, Error> {
        let s: p256::ecdsa::Signature = self.0.sign(msg);
        Signature::from_der(s.to_der().as_bytes())
    }
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey(p256::ecdsa::VerifyingKey);
#[derive(Clone, Debug)]
pub struct VerifyingKeys(Vec<VerifyingKey>);
impl VerifyingKeys {
    pub fn new(k: Vec<VerifyingKey>) -> Self {
        Self(k)
    }
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> bool {
        self.0.iter().any(|k| k.0.verify(msg, sig.inner()).is_ok())
    }
}
