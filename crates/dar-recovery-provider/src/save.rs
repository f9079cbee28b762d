//! The save-token endpoint (§3.1, recovery provider steps 2–15).
//!
//! Confirmation (`confirmation=required`) is a flag, not stored state: the first call returns
//! [`SaveOutcome::ConfirmationRequired`] without storing anything, the server shows the
//! interstitial carrying the same form, and calls [`RecoveryProvider::save`] again with
//! [`SaveOptions::confirmed`] set (every check runs again then), or
//! [`RecoveryProvider::decline_save`] when the user declines. Nothing a client holds can make
//! the provider store a token that fails the checks at the time it is stored.

use dar_core::{
    AccountProviderConfig, DecodeError, Options, Origin, RecoveryToken, SaveCheck, TokenId,
    TokenView, decode_base64,
};
use time::OffsetDateTime;

use crate::error::RecoveryProviderError;
use crate::model::{NewSavedToken, SaveForm, SaveTokenResult, UserId};
use crate::outbox::{OutboxMessage, StatusCallback, TokenStatus};
use crate::store::RecoveryProviderStore;
use crate::{ConfigSource, RecoveryProvider, ap_part};

/// Longest `nickname_hint` kept, in bytes (after trimming); a nickname the user types at the
/// confirmation is held to the same bound.
pub const MAX_NICKNAME_LEN: usize = 256;
/// Longest `login_hint` kept, in bytes.
const MAX_LOGIN_HINT_LEN: usize = 512;
/// Longest `login_hint_sha256` kept, in bytes (base64 of a 32-byte salt and a 32-byte hash is
/// 88).
const MAX_LOGIN_HINT_SHA256_LEN: usize = 128;

/// How to run a save.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaveOptions<'a> {
    /// The token binding the token must carry (§3.1 step 10). `None`: it must carry none.
    pub binding: Option<&'a [u8]>,
    /// The user confirmed at the interstitial that `confirmation=required` asks for.
    pub confirmed: bool,
}

/// Where to send the user after a save (§3.1 steps 14–15): `save-token-return` with `status`
/// and the unmodified `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRedirect {
    /// The account provider's `save-token-return` endpoint.
    pub url: dar_core::EndpointUrl,
    /// [`TokenStatus::SaveSuccess`] or [`TokenStatus::SaveFailure`].
    pub status: TokenStatus,
    /// The `state` parameter of the request, unmodified.
    pub state: Option<String>,
}

impl SaveRedirect {
    /// The URL to redirect to: `save-token-return?status=...&state=...` (form-encoded).
    pub fn location(&self) -> String {
        let mut url = self.url.as_string();
        url.push_str("?status=");
        url.push_str(self.status.as_str());
        if let Some(state) = &self.state {
            url.push_str("&state=");
            url.push_str(&form_urlencode(state));
        }
        url
    }
}

/// What a save-token request may show the user before storing anything (§3.1 `confirmation`,
/// `login_hint`, `nickname_hint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePreview {
    /// The account provider.
    pub issuer: Origin,
    /// The token id.
    pub token_id: TokenId,
    /// The options (status requested, low friction).
    pub options: Options,
    /// `nickname_hint`.
    pub nickname_hint: Option<String>,
    /// `login_hint`, to compare with the signed-in user ([`crate::match_login_hint`]).
    pub login_hint: Option<String>,
    /// `login_hint_sha256`, to compare with the signed-in user ([`crate::match_login_hint`]).
    pub login_hint_sha256: Option<String>,
}

/// The result of a save-token request whose account provider is known.
#[derive(Debug, Clone, PartialEq)]
pub enum SaveOutcome {
    /// The token is saved for the user: now, or (`newly_saved == false`) by an earlier identical
    /// request, which this one changed nothing about.
    Saved {
        /// The account provider.
        issuer: Origin,
        /// The token id.
        token_id: TokenId,
        /// Whether this request stored it.
        newly_saved: bool,
        /// `save-success`.
        redirect: SaveRedirect,
    },
    /// `confirmation=required` and not yet confirmed: nothing is stored. Show the interstitial
    /// and call again with [`SaveOptions::confirmed`] (or [`RecoveryProvider::decline_save`]).
    ConfirmationRequired(SavePreview),
    /// Refused: nothing is stored (a `save-failure` callback may be queued).
    Refused {
        /// Why.
        error: RecoveryProviderError,
        /// `save-failure`.
        redirect: SaveRedirect,
    },
}

impl<S: RecoveryProviderStore, C: ConfigSource> RecoveryProvider<S, C> {
    /// Handles a save-token request for the authenticated `user` (§3.1 steps 2–15).
    ///
    /// When the token asks for status callbacks (§3.6.1), `save-success` is queued in the same
    /// transaction as the save, and `save-failure` when an authentic token (its signature
    /// verifies with its issuer's keys) is refused; a forged token queues nothing.
    ///
    /// # Errors
    ///
    /// Only when there is no account provider to send the user back to, or the store fails:
    /// [`RecoveryProviderError::TokenTooLarge`], [`RecoveryProviderError::Protocol`] (the token
    /// does not decode, steps 2–4), [`RecoveryProviderError::Discovery`] (step 5),
    /// [`RecoveryProviderError::NotAnAccountProvider`], [`RecoveryProviderError::Store`]. Every
    /// other refusal is a [`SaveOutcome::Refused`] with its `save-failure` redirect.
    pub async fn save(
        &self,
        user: &UserId,
        form: &SaveForm,
        options: SaveOptions<'_>,
        now: OffsetDateTime,
    ) -> Result<SaveOutcome, RecoveryProviderError> {
        self.run_save(user, form, options, now, false).await
    }

    /// Handles the user declining at the confirmation interstitial: the checks run as for
    /// [`RecoveryProvider::save`], nothing is stored, and the answer is a
    /// [`SaveOutcome::Refused`] with [`RecoveryProviderError::Declined`] (or the check that
    /// failed) and its `save-failure` redirect.
    ///
    /// # Errors
    ///
    /// As [`RecoveryProvider::save`].
    pub async fn decline_save(
        &self,
        user: &UserId,
        form: &SaveForm,
        options: SaveOptions<'_>,
        now: OffsetDateTime,
    ) -> Result<SaveOutcome, RecoveryProviderError> {
        self.run_save(user, form, options, now, true).await
    }

    async fn run_save(
        &self,
        user: &UserId,
        form: &SaveForm,
        options: SaveOptions<'_>,
        now: OffsetDateTime,
        decline: bool,
    ) -> Result<SaveOutcome, RecoveryProviderError> {
        // §2 token-max-size: refuse oversized text before decoding it.
        let bytes = self.decode_text(&form.token)?;
        // §3.1 steps 2–4: parse; version 0; type 0.
        let token = RecoveryToken::decode(&bytes)?;
        let view = token.view().clone();
        let issuer =
            Origin::from_wire("issuer", view.issuer().as_bytes()).map_err(dar_core::Error::from)?;
        // §3.1 steps 5–6: the issuer's configuration, fetched for the token's issuer.
        let config = self.account_provider(&issuer).await?;
        let ap = ap_part(&config)?;
        let redirect = |status| SaveRedirect {
            url: ap.save_token_return.clone(),
            status,
            state: form.state.clone(),
        };

        let fields = match FormFields::parse(form) {
            Ok(f) => f,
            Err(e) => return self.refuse(&view, &issuer, ap, e, redirect, now).await,
        };
        // §3.1 steps 6–10 (issuer, signature, audience, freshness, binding).
        let check = SaveCheck {
            issuer: &issuer,
            issuer_keys: &ap.tokensign_keys,
            authoritative: &self.settings.authoritative,
            freshness: self.settings.freshness,
            binding: options.binding,
        };
        let signer = match token.verify_for_save(&check, now) {
            Ok(verified) => verified.signer().key_id(),
            Err(e) => {
                return self
                    .refuse(&view, &issuer, ap, e.into(), redirect, now)
                    .await;
            }
        };
        if decline {
            let e = RecoveryProviderError::Declined;
            return self.refuse(&view, &issuer, ap, e, redirect, now).await;
        }
        // §3.1 `confirmation`: an interstitial before anything is stored.
        if form.confirmation_required() && !options.confirmed {
            return Ok(SaveOutcome::ConfirmationRequired(SavePreview {
                issuer,
                token_id: view.token_id(),
                options: view.options(),
                nickname_hint: fields.nickname,
                login_hint: fields.login_hint,
                login_hint_sha256: fields.login_hint_sha256,
            }));
        }

        // §3.1 step 11 (and §3.1 `obsoletes`, step 13 save-success), in one transaction.
        let new = NewSavedToken {
            user: user.clone(),
            issuer: issuer.clone(),
            token_id: view.token_id(),
            options: view.options(),
            token: bytes.clone(),
            signer: Some(signer),
            nickname: fields.nickname,
            login_hint: fields.login_hint,
            login_hint_sha256: fields.login_hint_sha256,
            obsoletes: fields.obsoletes,
            saved_at: now,
        };
        let on_saved = status_message(&view, &issuer, TokenStatus::SaveSuccess);
        let error = match self.store.save_token(&new, on_saved.as_ref()).await? {
            result @ (SaveTokenResult::Saved | SaveTokenResult::AlreadySaved) => {
                return Ok(SaveOutcome::Saved {
                    issuer,
                    token_id: view.token_id(),
                    newly_saved: result == SaveTokenResult::Saved,
                    redirect: redirect(TokenStatus::SaveSuccess),
                });
            }
            // §6.8: a token already given to another account is not added to this one.
            SaveTokenResult::OwnedByAnotherUser => RecoveryProviderError::AlreadySavedByAnotherUser,
            SaveTokenResult::Removed => RecoveryProviderError::TokenRemoved,
        };
        self.refuse(&view, &issuer, ap, error, redirect, now).await
    }

    /// §2 token-max-size (on the text, before decoding) and base64 (§4.1).
    fn decode_text(&self, text: &str) -> Result<Vec<u8>, RecoveryProviderError> {
        let max = self.settings.token_max_size;
        let max_text = max.div_ceil(3).saturating_mul(4);
        if text.len() > max_text {
            return Err(RecoveryProviderError::TokenTooLarge {
                size: text.len() / 4 * 3,
                max,
            });
        }
        decode_base64(text, max).map_err(|e| match e {
            DecodeError::TooLarge { size, max } => {
                RecoveryProviderError::TokenTooLarge { size, max }
            }
            other => RecoveryProviderError::Protocol(other.into()),
        })
    }

    /// A refusal once the account provider is known: queue `save-failure` for an authentic
    /// token that asked for status (§3.1 step 13), and redirect with it (step 14).
    async fn refuse(
        &self,
        view: &TokenView<'_>,
        issuer: &Origin,
        ap: &AccountProviderConfig,
        error: RecoveryProviderError,
        redirect: impl Fn(TokenStatus) -> SaveRedirect,
        now: OffsetDateTime,
    ) -> Result<SaveOutcome, RecoveryProviderError> {
        // A forged token (one whose signature does not verify) gets no callback: its id and
        // options are the forger's.
        let authentic = view.options().status_requested()
            && ap
                .tokensign_keys
                .verify(view.signed_bytes(), view.signature());
        if authentic && let Some(message) = status_message(view, issuer, TokenStatus::SaveFailure) {
            self.store.queue(&message, now).await?;
        }
        Ok(SaveOutcome::Refused {
            error,
            redirect: redirect(TokenStatus::SaveFailure),
        })
    }
}

/// The status callback for `status`, when the token asked for callbacks (§3.6.1).
pub(crate) fn status_message(
    view: &TokenView<'_>,
    issuer: &Origin,
    status: TokenStatus,
) -> Option<OutboxMessage> {
    view.options().status_requested().then(|| {
        OutboxMessage::TokenStatus(StatusCallback {
            issuer: issuer.clone(),
            token_id: view.token_id(),
            status,
            countersigned_id: None,
        })
    })
}

/// The optional form fields, checked.
struct FormFields {
    nickname: Option<String>,
    login_hint: Option<String>,
    login_hint_sha256: Option<String>,
    obsoletes: Option<TokenId>,
}

/// A nickname the user typed for a token at the save confirmation (§3.1.1 step 12), held to
/// the bounds of `nickname_hint`: trimmed, `None` when empty.
///
/// ```
/// use dar_recovery_provider::{RecoveryProviderError, check_nickname};
///
/// assert_eq!(check_nickname(" work laptop "), Ok(Some("work laptop".to_owned())));
/// assert_eq!(check_nickname("  "), Ok(None));
/// assert_eq!(
///     check_nickname("a\u{1b}[31m"),
///     Err(RecoveryProviderError::InvalidFormField { field: "nickname" })
/// );
/// ```
///
/// # Errors
///
/// [`RecoveryProviderError::InvalidFormField`] (`nickname`) over [`MAX_NICKNAME_LEN`] bytes or
/// with a control character.
pub fn check_nickname(text: &str) -> Result<Option<String>, RecoveryProviderError> {
    bounded(Some(text), MAX_NICKNAME_LEN, "nickname")
}

/// An optional text field: trimmed, `None` when empty, refused over `max` bytes or with a
/// control character.
fn bounded(
    value: Option<&str>,
    max: usize,
    field: &'static str,
) -> Result<Option<String>, RecoveryProviderError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > max || v.chars().any(char::is_control) => {
            Err(RecoveryProviderError::InvalidFormField { field })
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

impl FormFields {
    fn parse(form: &SaveForm) -> Result<Self, RecoveryProviderError> {
        let obsoletes = match form.obsoletes.as_deref() {
            None | Some("") => None,
            Some(hex) => Some(
                TokenId::from_hex(hex)
                    .map_err(|_| RecoveryProviderError::InvalidFormField { field: "obsoletes" })?,
            ),
        };
        Ok(Self {
            nickname: bounded(
                form.nickname_hint.as_deref(),
                MAX_NICKNAME_LEN,
                "nickname_hint",
            )?,
            login_hint: bounded(form.login_hint.as_deref(), MAX_LOGIN_HINT_LEN, "login_hint")?,
            login_hint_sha256: bounded(
                form.login_hint_sha256.as_deref(),
                MAX_LOGIN_HINT_SHA256_LEN,
                "login_hint_sha256",
            )?,
            obsoletes,
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL, §5.2).
fn form_urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
