//! The two verification pipelines of the draft, without the network, and countersigning.
//!
//! - [`RecoveryToken::verify_for_save`]: what a recovery provider checks before saving a token
//!   (§3.1, recovery provider steps 2–10). The caller fetched the issuer's configuration (steps
//!   5–6) and passes its issuer and keys.
//! - [`CountersignedToken::verify_return`]: what an account provider checks when a
//!   countersigned token comes back (§3.5 steps 1–8 and 11–12). The caller fetched the
//!   countersigner's configuration (step 10) and passes its issuer and keys; opening the data
//!   (step 13), the replay guard (step 9) and the record (step 16) belong to the role crate.
//! - [`RecoveryToken::verify_saved_signed_by`] (or [`RecoveryToken::verify_saved`] when the
//!   key was not recorded): the recovery provider's re-check of a saved token before it
//!   countersigns it (§3.4 step 4).
//! - [`countersign`]: what a recovery provider does at recovery time (§3.4 step 4, §4.2); it
//!   takes only a [`VerifiedRecoveryToken`].
//!
//! Each pipeline consumes the unverified token and returns a distinct verified type that
//! nothing else can build. Cheap comparisons run before signature checks, so a forged token
//! costs the verifier as little as possible.

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::{Error, Rejected};
use crate::freshness::Freshness;
use crate::issued_time;
use crate::keys::{KeyId, SigningKey, VerifyingKey, VerifyingKeys};
use crate::origin::Origin;
use crate::payload::Payload;
use crate::sealing::Sealer;
use crate::token::{
    CountersignedToken, EncodedToken, Internals, Options, RecoveryToken, TokenId, TokenType,
    TokenView, encode_internals_with, sign_internals,
};

/// What a recovery provider expects of a recovery token it is asked to save (§3.1).
#[derive(Debug, Clone, Copy)]
pub struct SaveCheck<'a> {
    /// The account provider whose configuration was fetched for the token's issuer (steps 5–6).
    pub issuer: &'a Origin,
    /// Its `tokensign-pubkeys-secp256r1` (step 7).
    pub issuer_keys: &'a VerifyingKeys,
    /// The origins this recovery provider is authoritative for (step 8).
    pub authoritative: &'a [Origin],
    /// Bounds on issued_time (step 9).
    pub freshness: Freshness,
    /// The binding the token must carry, if any (step 10). `None`: the token must carry none.
    pub binding: Option<&'a [u8]>,
}

/// What a recovery provider expects of a token it saved earlier and is about to countersign
/// (§3.4 steps 2–3): the issuer's current configuration and this provider's audiences.
/// Freshness and binding are not checked again: they held when the token was saved (§3.1 steps
/// 9–10), and a saved token is exercised months later.
#[derive(Debug, Clone, Copy)]
pub struct SavedCheck<'a> {
    /// The account provider whose configuration was fetched for the token's issuer.
    pub issuer: &'a Origin,
    /// Its current `tokensign-pubkeys-secp256r1`.
    pub issuer_keys: &'a VerifyingKeys,
    /// The origins this recovery provider is authoritative for.
    pub authoritative: &'a [Origin],
}

/// What an account provider expects of a countersigned token (§3.5).
#[derive(Debug, Clone, Copy)]
pub struct ReturnCheck<'a> {
    /// This account provider: the inner token's issuer and the outer token's audience.
    pub account_provider: &'a Origin,
    /// This provider's token signing keys, current and retired (step 5).
    pub own_keys: &'a VerifyingKeys,
    /// The recovery provider whose configuration was fetched for the outer issuer (step 11).
    pub recovery_provider: &'a Origin,
    /// Its current `countersign-pubkeys-secp256r1` (step 12).
    pub countersign_keys: &'a VerifyingKeys,
    /// Bounds on the countersigned token's issued_time (step 7).
    pub freshness: Freshness,
    /// The binding the countersigned token must carry, if any (step 8). `None`: it must carry
    /// none.
    pub binding: Option<&'a [u8]>,
}

/// A recovery token that passed the recovery provider's save checks (§3.1 steps 2–10) or the
/// re-check before countersigning (§3.4).
#[derive(Debug, Clone)]
pub struct VerifiedRecoveryToken<'a> {
    token: RecoveryToken<'a>,
    signer: VerifyingKey,
}

impl<'a> VerifiedRecoveryToken<'a> {
    /// The verified fields.
    pub fn view(&self) -> &TokenView<'a> {
        self.token.view()
    }

    /// The issuer's key that the token's signature verified with (§3.1 step 7): what a
    /// recovery provider records with a saved token (its [`VerifyingKey::key_id`]) for
    /// [`RecoveryToken::verify_saved_signed_by`].
    pub fn signer(&self) -> &VerifyingKey {
        &self.signer
    }
}

/// A countersigned token that passed the account provider's checks (§3.5 steps 1–8, 11–12).
#[derive(Debug, Clone)]
pub struct VerifiedCountersignedToken<'a>(CountersignedToken<'a>);

impl<'a> VerifiedCountersignedToken<'a> {
    /// The countersigned token's fields (issuer: the recovery provider).
    pub fn outer(&self) -> &TokenView<'a> {
        self.0.outer()
    }

    /// The account provider's own recovery token inside.
    pub fn inner(&self) -> &TokenView<'a> {
        self.0.inner().view()
    }

    /// Whether the recovery provider reports low friction (§6.4): its re-authentication of the
    /// user was weaker than it would require for a recovery.
    pub fn low_friction(&self) -> bool {
        self.outer().options().low_friction()
    }

    /// Opens and decodes the account provider's sealed payload in the inner token (§3.5 step
    /// 13). Only a verified token gets here, so the sealed data is this provider's own.
    ///
    /// # Errors
    ///
    /// The [`Sealer::open`] errors (`SealOpenFailed`, `UnknownSealingKey`, ...) and
    /// [`crate::DecodeError::Payload`].
    pub fn open_payload(&self, sealer: &Sealer) -> Result<Payload, Error> {
        let inner = self.inner();
        sealer.open_payload(inner.data(), &inner.seal_context())
    }
}

impl<'a> RecoveryToken<'a> {
    /// The recovery provider's save checks (§3.1 steps 2–10).
    ///
    /// ```
    /// use dar_core::*;
    /// use time::{Duration, macros::datetime};
    /// let ap_key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
    /// let ap = Origin::parse("https://ap.example.com")?;
    /// let rp = Origin::parse("https://rp.example.net")?;
    /// let issued = datetime!(2026-11-22 15:31:18 UTC);
    /// let token = Token::recovery(TokenId::new([1; 16]), Options::NONE, ap.clone(), rp.clone(),
    ///     issued, vec![]).sign(&ap_key, MAX_TOKEN_LEN)?;
    /// let keys = VerifyingKeys::from(ap_key.verifying_key());
    /// let check = SaveCheck { issuer: &ap, issuer_keys: &keys, authoritative: &[rp],
    ///     freshness: Freshness::DEFAULT, binding: None };
    /// let verified = RecoveryToken::decode(token.as_bytes())?
    ///     .verify_for_save(&check, issued + Duration::seconds(5))?;
    /// assert_eq!(verified.view().token_id(), TokenId::new([1; 16]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The [`Rejected`] reason of the first check that fails: [`Rejected::IssuerMismatch`],
    /// [`Rejected::AudienceNotAuthoritative`], [`Rejected::IssuedInFuture`],
    /// [`Rejected::Stale`], [`Rejected::BindingMismatch`], [`Rejected::BindingUnexpected`],
    /// [`Rejected::SignatureInvalid`].
    pub fn verify_for_save(
        self,
        check: &SaveCheck<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedRecoveryToken<'a>, Error> {
        let view = self.view();
        check_issuer_and_audience(view, check.issuer, check.authoritative)?;
        // §3.1 step 9.
        check.freshness.check(view.issued_at(), now)?;
        // §3.1 step 10.
        check_binding(view.binding(), check.binding)?;
        let signer = check_signature(view, check.issuer_keys)?;
        Ok(VerifiedRecoveryToken {
            token: self,
            signer,
        })
    }

    /// Re-checks a token this recovery provider saved earlier, before countersigning it (§3.4
    /// step 4): issuer, audience and signature against the issuer's current keys. For a token
    /// stored without the id of the key it verified with; with it,
    /// [`RecoveryToken::verify_saved_signed_by`] does without the verification.
    ///
    /// # Errors
    ///
    /// [`Rejected::IssuerMismatch`], [`Rejected::AudienceNotAuthoritative`] or
    /// [`Rejected::SignatureInvalid`].
    pub fn verify_saved(self, check: &SavedCheck<'_>) -> Result<VerifiedRecoveryToken<'a>, Error> {
        let view = self.view();
        check_issuer_and_audience(view, check.issuer, check.authoritative)?;
        let signer = check_signature(view, check.issuer_keys)?;
        Ok(VerifiedRecoveryToken {
            token: self,
            signer,
        })
    }

    /// Re-checks a token this recovery provider saved earlier, before countersigning it (§3.4
    /// step 4), by the key it recorded when it saved it: issuer and audience as
    /// [`RecoveryToken::verify_saved`], and `signer`, the [`KeyId`] of the key the signature
    /// verified with then ([`VerifiedRecoveryToken::signer`]), must still be one of the
    /// issuer's current keys.
    ///
    /// The signature is not verified again. It was, with that key, before the token was stored
    /// (§3.1 step 7), and the account provider verifies it once more when the countersigned
    /// token comes back (§3.5 step 5), so a changed stored token is refused there whatever this
    /// check does. What the re-check is for, a token whose key the issuer has retired refused
    /// here with a clear error instead of after the user was sent on (§6.8), needs only the
    /// key's id; the countersignature then costs one signature, not a verification and a
    /// signature. Use [`RecoveryToken::verify_saved`] for a token stored without its key's id.
    ///
    /// ```
    /// use dar_core::*;
    /// use time::{Duration, macros::datetime};
    /// let ap_key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
    /// let ap = Origin::parse("https://ap.example.com")?;
    /// let rp = Origin::parse("https://rp.example.net")?;
    /// let issued = datetime!(2026-11-22 15:31:18 UTC);
    /// let token = Token::recovery(TokenId::new([1; 16]), Options::NONE, ap.clone(), rp.clone(),
    ///     issued, vec![]).sign(&ap_key, MAX_TOKEN_LEN)?;
    /// let keys = VerifyingKeys::from(ap_key.verifying_key());
    /// let save = SaveCheck { issuer: &ap, issuer_keys: &keys, authoritative: &[rp.clone()],
    ///     freshness: Freshness::DEFAULT, binding: None };
    /// let signer = RecoveryToken::decode(token.as_bytes())?
    ///     .verify_for_save(&save, issued + Duration::seconds(5))?
    ///     .signer()
    ///     .key_id();
    /// // Months later, the issuer's configuration fetched again:
    /// let saved = SavedCheck { issuer: &ap, issuer_keys: &keys, authoritative: &[rp] };
    /// let verified = RecoveryToken::decode(token.as_bytes())?
    ///     .verify_saved_signed_by(&saved, &signer)?;
    /// assert_eq!(verified.signer().key_id(), signer);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Rejected::IssuerMismatch`], [`Rejected::AudienceNotAuthoritative`] or
    /// [`Rejected::SignerNotPublished`].
    pub fn verify_saved_signed_by(
        self,
        check: &SavedCheck<'_>,
        signer: &KeyId,
    ) -> Result<VerifiedRecoveryToken<'a>, Error> {
        check_issuer_and_audience(self.view(), check.issuer, check.authoritative)?;
        let signer = check
            .issuer_keys
            .find(signer)
            .ok_or(Rejected::SignerNotPublished)?
            .clone();
        Ok(VerifiedRecoveryToken {
            token: self,
            signer,
        })
    }
}

impl<'a> CountersignedToken<'a> {
    /// The account provider's checks of a countersigned token (§3.5 steps 1–8, 11–12; steps
    /// 1–4 ran in [`CountersignedToken::decode`]).
    ///
    /// # Errors
    ///
    /// The [`Rejected`] reason of the first check that fails:
    /// [`Rejected::AudienceNotThisProvider`], [`Rejected::InnerIssuerNotThisProvider`],
    /// [`Rejected::CountersignerNotInnerAudience`], [`Rejected::CountersignerMismatch`],
    /// [`Rejected::IssuedInFuture`], [`Rejected::Stale`], [`Rejected::BindingMismatch`],
    /// [`Rejected::BindingUnexpected`], [`Rejected::InnerSignatureInvalid`],
    /// [`Rejected::CountersignatureInvalid`].
    pub fn verify_return(
        self,
        check: &ReturnCheck<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedCountersignedToken<'a>, Error> {
        let outer = self.outer();
        let inner = self.inner().view();
        let this = check.account_provider.as_str();
        // §4.2.1 audience: the countersigned token is addressed to this account provider.
        if outer.audience() != this {
            return Err(Rejected::AudienceNotThisProvider.into());
        }
        // §3.5 step 5 checks the inner token with this provider's keys: it must be its own.
        if inner.issuer() != this {
            return Err(Rejected::InnerIssuerNotThisProvider.into());
        }
        // §3.5 step 6: only the recovery provider the token was given to may countersign it.
        if outer.issuer() != inner.audience() {
            return Err(Rejected::CountersignerNotInnerAudience.into());
        }
        // §3.5 step 11: the configuration fetched for the countersigner names it.
        if outer.issuer() != check.recovery_provider.as_str() {
            return Err(Rejected::CountersignerMismatch.into());
        }
        // §3.5 step 7.
        check.freshness.check(outer.issued_at(), now)?;
        // §3.5 step 8: the outer binding; the inner one was for the save step.
        check_binding(outer.binding(), check.binding)?;
        // §3.5 step 5.
        if !check
            .own_keys
            .verify(inner.signed_bytes(), inner.signature())
        {
            return Err(Rejected::InnerSignatureInvalid.into());
        }
        // §3.5 step 12.
        if !check
            .countersign_keys
            .verify(outer.signed_bytes(), outer.signature())
        {
            return Err(Rejected::CountersignatureInvalid.into());
        }
        Ok(VerifiedCountersignedToken(self))
    }
}

/// How a recovery provider countersigns (§3.4 step 4, §4.2).
#[derive(Debug)]
pub struct Countersign<'a> {
    /// This recovery provider's current countersigning key.
    pub key: &'a SigningKey,
    /// A fresh id for the countersigned token.
    pub token_id: TokenId,
    /// Now: the countersigned token's issued_time (emitted in whole seconds).
    pub issued: OffsetDateTime,
    /// The binding obtained for the account provider's session, or empty.
    pub binding: Vec<u8>,
    /// Report low friction (§6.4). Set it when the recovery token asked for it, or when this
    /// provider could only re-authenticate the user weakly.
    pub low_friction: bool,
    /// The largest token to produce (the account provider's limit, if known).
    pub max_size: usize,
}

/// Countersigns a verified recovery token (§3.4 step 4, §4.2.1).
///
/// The countersigned token's issuer is the recovery token's audience (the origin the token was
/// saved for, which §3.5 step 6 checks), its audience the recovery token's issuer, and its data
/// the complete recovery token. The draft's §4.2.1 prose swaps issuer and audience; §3.5 step 6
/// and both public SDKs use this order (see spec/README.md).
///
/// # Errors
///
/// [`crate::Misuse::FieldTooLong`] when the recovery token is 65,536 bytes or more, and
/// [`crate::Misuse::TokenTooLarge`] above `params.max_size`.
pub fn countersign(
    token: &VerifiedRecoveryToken<'_>,
    params: Countersign<'_>,
) -> Result<EncodedToken, Error> {
    let view = token.view();
    let options = if params.low_friction {
        Options::LOW_FRICTION
    } else {
        Options::NONE
    };
    let issued = issued_time::Emitted::new(params.issued);
    // The origins come from a decoded token, which holds canonical origins only; §3.4: the
    // outer token goes from the recovery provider (the inner audience) back to the issuer.
    let fields = Internals {
        token_type: TokenType::Countersigned,
        token_id: &params.token_id,
        options,
        issuer: view.audience(),
        audience: view.issuer(),
        issued_time: issued.as_str(),
        binding: &params.binding,
    };
    // The inner token, signature included, is the outer token's data, copied straight into
    // the one buffer the countersigned token is built in.
    let inner = [view.signed_bytes(), view.signature_bytes()];
    let bytes = encode_internals_with(&fields, inner[0].len() + inner[1].len(), |out| {
        inner.iter().for_each(|part| out.extend_from_slice(part));
        Ok::<(), Error>(())
    })?;
    sign_internals(bytes, params.key, params.max_size)
}

/// §3.1 steps 6 and 8: the configuration fetched for the token's issuer names that issuer, and
/// the token is addressed to an origin this recovery provider answers for.
fn check_issuer_and_audience(
    view: &TokenView<'_>,
    issuer: &Origin,
    authoritative: &[Origin],
) -> Result<(), Rejected> {
    if view.issuer() != issuer.as_str() {
        return Err(Rejected::IssuerMismatch);
    }
    if !authoritative.iter().any(|o| o.as_str() == view.audience()) {
        return Err(Rejected::AudienceNotAuthoritative);
    }
    Ok(())
}

/// §3.1 step 7: signed by one of the issuer's published keys, which one.
fn check_signature(view: &TokenView<'_>, keys: &VerifyingKeys) -> Result<VerifyingKey, Rejected> {
    keys.verifier_of(view.signed_bytes(), view.signature())
        .cloned()
        .ok_or(Rejected::SignatureInvalid)
}

/// §3.1 step 10, §3.5 step 8.
fn check_binding(actual: &[u8], expected: Option<&[u8]>) -> Result<(), Rejected> {
    match expected {
        None if actual.is_empty() => Ok(()),
        None => Err(Rejected::BindingUnexpected),
        Some(want) if bool::from(actual.ct_eq(want)) => Ok(()),
        Some(_) => Err(Rejected::BindingMismatch),
    }
}

#[cfg(test)]
mod tests;
