//! The account provider's keys: signing keys (one current, older ones still published) and
//! sealing keys (one current, older ones still opening).
//!
//! Rotation never invalidates a token already saved at a recovery provider (§6.8): a rotated
//! signing key stays published, so the inner signature of a token it signed still verifies
//! (§3.5 step 5), until it is retired explicitly; a rotated sealing key stays in the ring, so
//! the tokens it sealed still open (§3.5 step 13).

use dar_core::{
    AccountProviderConfig, Configuration, Layout, MAX_KEYS, Sealer, SealingKey, SigningKey,
    VerifyingKey, VerifyingKeys,
};

use crate::error::AccountProviderError;
use crate::settings::Settings;

/// Signing and sealing keys of one account provider.
///
/// ```
/// use dar_account_provider::KeyRing;
/// use dar_core::{SealingKey, SigningKey};
/// let signing = SigningKey::from_scalar_bytes(&[1; 32])?;
/// let mut ring = KeyRing::new(signing, SealingKey::new(1, [9; 32]))?;
/// let old = ring.signing_key().verifying_key();
/// ring.rotate_signing(SigningKey::from_scalar_bytes(&[2; 32])?)?;
/// // The old key still verifies tokens it signed, until retired.
/// assert!(ring.published_keys().contains(&old));
/// ring.retire_signing(&old)?;
/// assert!(!ring.published_keys().contains(&old));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct KeyRing {
    signing: SigningKey,
    /// Earlier signing keys, newest first, still published for verification.
    previous: Vec<VerifyingKey>,
    /// `signing`'s public key and `previous`, built when either changes: every recovery
    /// verifies against them (§3.5 step 5), so they are parsed and collected once.
    published: VerifyingKeys,
    sealing: Vec<SealingKey>,
    sealer: Sealer,
}

impl KeyRing {
    /// A ring with one signing key and one sealing key, sealing in [`Layout::DarV1`].
    ///
    /// # Errors
    ///
    /// None in practice; the `Result` carries [`dar_core::Sealer::new`]'s.
    pub fn new(signing: SigningKey, sealing: SealingKey) -> Result<Self, AccountProviderError> {
        let id = sealing.id();
        Self::from_parts(signing, Vec::new(), vec![sealing], id)
    }

    /// A ring loaded from storage: the current signing key, the earlier keys still published
    /// (newest first), every sealing key still needed to open tokens, and the id of the one
    /// that seals.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::TooManyPublishedKeys`] if more than [`MAX_KEYS`] keys would be
    /// published, and [`dar_core::Misuse::NoSealingKey`] /
    /// [`dar_core::Misuse::DuplicateSealingKey`] (as [`AccountProviderError::Protocol`]).
    pub fn from_parts(
        signing: SigningKey,
        previous: Vec<VerifyingKey>,
        sealing: Vec<SealingKey>,
        current_sealing_id: u32,
    ) -> Result<Self, AccountProviderError> {
        let current = signing.verifying_key();
        let mut unique: Vec<VerifyingKey> = Vec::new();
        for key in previous {
            if key != current && !unique.contains(&key) {
                unique.push(key);
            }
        }
        if unique.len() + 1 > MAX_KEYS {
            return Err(AccountProviderError::TooManyPublishedKeys);
        }
        let sealer = Sealer::new(sealing.clone(), current_sealing_id, Layout::DarV1)?;
        let published = publish(&signing, &unique);
        Ok(Self {
            signing,
            previous: unique,
            published,
            sealing,
            sealer,
        })
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Every published signing key, current first: what `tokensign-pubkeys-secp256r1` lists
    /// and what inner signatures are verified against (§2, §3.5 step 5).
    pub fn published_keys(&self) -> &VerifyingKeys {
        &self.published
    }

    /// Makes `new` the signing key; the old one stays published (§6.8).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::TooManyPublishedKeys`] if that would publish more than
    /// [`MAX_KEYS`] keys; nothing changes then.
    pub fn rotate_signing(&mut self, new: SigningKey) -> Result<(), AccountProviderError> {
        let old = self.signing.verifying_key();
        if new.verifying_key() == old {
            return Ok(());
        }
        let mut previous = vec![old];
        previous.extend(
            self.previous
                .iter()
                .filter(|k| **k != new.verifying_key())
                .cloned(),
        );
        if previous.len() + 1 > MAX_KEYS {
            return Err(AccountProviderError::TooManyPublishedKeys);
        }
        self.published = publish(&new, &previous);
        self.previous = previous;
        self.signing = new;
        Ok(())
    }

    /// Stops publishing an earlier signing key: tokens it signed no longer verify (§3.5 step
    /// 5). Returns whether the key was published.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::RetiringCurrentKey`] for the current key.
    pub fn retire_signing(&mut self, key: &VerifyingKey) -> Result<bool, AccountProviderError> {
        if *key == self.signing.verifying_key() {
            return Err(AccountProviderError::RetiringCurrentKey);
        }
        let before = self.previous.len();
        self.previous.retain(|k| k != key);
        self.published = publish(&self.signing, &self.previous);
        Ok(self.previous.len() != before)
    }

    /// Makes `new` the sealing key; the others keep opening the tokens they sealed (§6.8).
    ///
    /// # Errors
    ///
    /// [`dar_core::Misuse::DuplicateSealingKey`] if a key with `new`'s id is already in the
    /// ring; nothing changes then.
    pub fn rotate_sealing(&mut self, new: SealingKey) -> Result<(), AccountProviderError> {
        let id = new.id();
        let mut keys = self.sealing.clone();
        keys.push(new);
        let sealer = Sealer::new(keys.clone(), id, Layout::DarV1)?;
        self.sealing = keys;
        self.sealer = sealer;
        Ok(())
    }

    /// Removes a sealing key that is not current. Returns whether it was in the ring.
    ///
    /// # Security
    ///
    /// Every token sealed under it becomes unusable (§6.8 "tokens issued under those keys will
    /// be unusable"): remove a key only when those tokens have been revoked or re-issued.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::RetiringCurrentKey`] for the current sealing key.
    pub fn remove_sealing(&mut self, id: u32) -> Result<bool, AccountProviderError> {
        if id == self.sealer.current_key_id() {
            return Err(AccountProviderError::RetiringCurrentKey);
        }
        let before = self.sealing.len();
        let keys: Vec<SealingKey> = self
            .sealing
            .iter()
            .filter(|k| k.id() != id)
            .cloned()
            .collect();
        if keys.len() == before {
            return Ok(false);
        }
        self.sealer = Sealer::new(keys.clone(), self.sealer.current_key_id(), Layout::DarV1)?;
        self.sealing = keys;
        Ok(true)
    }

    /// The sealer: seals with the current sealing key, opens with any.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// This provider's configuration document (§2) for `settings`.
    pub fn configuration(&self, settings: &Settings) -> Configuration {
        Configuration::new(
            settings.origin.clone(),
            settings.privacy_policy.clone(),
            settings.icon_152px.clone(),
            Some(AccountProviderConfig {
                tokensign_keys: self.published.clone(),
                save_token_return: settings.save_token_return.clone(),
                recover_account_return: settings.recover_account_return.clone(),
            }),
            None,
        )
    }
}

/// The published list: `signing`'s public key first, then `previous`.
fn publish(signing: &SigningKey, previous: &[VerifyingKey]) -> VerifyingKeys {
    let current = signing.verifying_key();
    let keys = core::iter::once(current.clone()).chain(previous.iter().cloned());
    // Never empty: the current key is always there.
    VerifyingKeys::new(keys).unwrap_or_else(|| VerifyingKeys::from(current))
}

#[cfg(test)]
mod tests;
