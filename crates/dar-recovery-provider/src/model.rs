//! The values the recovery provider role takes and returns.

use core::fmt;

use dar_core::{KeyId, Options, Origin, TokenId};
use time::OffsetDateTime;

/// The user of this recovery provider, as the embedding application authenticated them (§3.1
/// step 1, §3.4 step 1). Opaque to this crate: an account number, a UUID, ...
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Wraps the application's identifier of the signed-in user.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parameters of a save-token POST (§3.1), as the HTTP edge received them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaveForm {
    /// `token`: the recovery token, standard base64.
    pub token: String,
    /// `login_hint`: the account provider's idea of the user's contact point.
    pub login_hint: Option<String>,
    /// `login_hint_sha256`: base64 of a salt and a salted SHA-256 of the contact point.
    pub login_hint_sha256: Option<String>,
    /// `nickname_hint`: a suggested nickname for the account (§3.1 step 12).
    pub nickname_hint: Option<String>,
    /// `confirmation`: `required` asks for an interstitial before saving.
    pub confirmation: Option<String>,
    /// `obsoletes`: hex id of a token of the same issuer that this one replaces.
    pub obsoletes: Option<String>,
    /// `state`: passed back unmodified to `save-token-return` (§3.1 step 15).
    pub state: Option<String>,
}

impl SaveForm {
    /// A form with only a token.
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            ..Self::default()
        }
    }

    /// Whether the account provider asked for an interstitial (`confirmation=required`).
    pub fn confirmation_required(&self) -> bool {
        self.confirmation.as_deref() == Some("required")
    }
}

impl fmt::Debug for SaveForm {
    // The token is a credential and the hints are personal data: lengths and flags only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveForm")
            .field("token_len", &self.token.len())
            .field("login_hint", &self.login_hint.is_some())
            .field("login_hint_sha256", &self.login_hint_sha256.is_some())
            .field("nickname_hint", &self.nickname_hint.is_some())
            .field("confirmation", &self.confirmation)
            .field("obsoletes", &self.obsoletes)
            .field("state", &self.state.is_some())
            .finish()
    }
}

/// A saved token as listed to its owner: never the token bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedTokenSummary {
    /// The account provider that issued it.
    pub issuer: Origin,
    /// Its token id.
    pub token_id: TokenId,
    /// The nickname (from `nickname_hint`, §3.1 step 12).
    pub nickname: Option<String>,
    /// The token's options: status requested (§3.6.1), low friction (§6.4).
    pub options: Options,
    /// When it was saved (whole seconds).
    pub saved_at: OffsetDateTime,
}

/// A token to store, after the save checks (§3.1 step 11).
#[derive(Clone, PartialEq, Eq)]
pub struct NewSavedToken {
    /// The owner.
    pub user: UserId,
    /// The issuer (account provider).
    pub issuer: Origin,
    /// The token id.
    pub token_id: TokenId,
    /// The options byte.
    pub options: Options,
    /// The complete token bytes (needed to countersign it later). Never log them.
    pub token: Vec<u8>,
    /// The id of the issuer's key the token's signature verified with before it was saved
    /// ([`dar_core::VerifiedRecoveryToken::signer`]): before countersigning, the token is
    /// accepted while the issuer still publishes that key, without verifying it again
    /// ([`dar_core::RecoveryToken::verify_saved_signed_by`]). `None` for a token stored without
    /// it (saved before dar recorded it), which is verified again instead.
    pub signer: Option<KeyId>,
    /// The nickname.
    pub nickname: Option<String>,
    /// `login_hint`, as given.
    pub login_hint: Option<String>,
    /// `login_hint_sha256`, as given.
    pub login_hint_sha256: Option<String>,
    /// The id of the same user's token of the same issuer to mark obsolete, if any.
    pub obsoletes: Option<TokenId>,
    /// Now.
    pub saved_at: OffsetDateTime,
}

impl fmt::Debug for NewSavedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSavedToken")
            .field("user", &self.user)
            .field("issuer", &self.issuer)
            .field("token_id", &self.token_id)
            .field("options", &self.options)
            .field("token_len", &self.token.len())
            .field("signer", &self.signer)
            .field("obsoletes", &self.obsoletes)
            .field("saved_at", &self.saved_at)
            .finish_non_exhaustive()
    }
}

/// A saved token as countersigning needs it (§3.4 step 4).
#[derive(Clone, PartialEq, Eq)]
pub struct SavedTokenBytes {
    /// The complete token bytes. Never log them.
    pub token: Vec<u8>,
    /// The id of the key its signature verified with when it was saved, if that was recorded
    /// ([`NewSavedToken::signer`]).
    pub signer: Option<KeyId>,
}

impl fmt::Debug for SavedTokenBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedTokenBytes")
            .field("token_len", &self.token.len())
            .field("signer", &self.signer)
            .finish()
    }
}

/// What storing a token did. Uniqueness is per (issuer, token id) across all users, so only the
/// store can decide it atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveTokenResult {
    /// Stored now (and the obsoleted token, if any, removed; the outbox message written).
    Saved,
    /// The same user had already saved it and still holds it: nothing changed.
    AlreadySaved,
    /// Another user holds (or held) it: nothing changed.
    OwnedByAnotherUser,
    /// This user saved it before and removed it: nothing changed.
    Removed,
}

/// Why a saved token stopped being usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// The user deleted it.
    Deleted,
    /// A newer token of the same issuer named it in `obsoletes` (§3.1).
    Obsoleted,
    /// The user said it was saved without their consent (§3.6 token-repudiated).
    Repudiated,
}

impl RemovalReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Obsoleted => "obsoleted",
            Self::Repudiated => "repudiated",
        }
    }
}

/// The permanent record of one exercise of a saved token (§3.4, §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRecord {
    /// The user who exercised it.
    pub user: UserId,
    /// The recovery token's issuer.
    pub issuer: Origin,
    /// The recovery token's id.
    pub token_id: TokenId,
    /// The countersigned token's fresh id.
    pub countersigned_id: TokenId,
    /// Whether the countersigned token reported low friction (§6.4).
    pub low_friction: bool,
    /// Whether the recovery token asked for status callbacks (§3.6.1).
    pub status_requested: bool,
    /// When it was countersigned.
    pub recovered_at: OffsetDateTime,
    /// When the user repudiated it (§3.6 recovery-repudiated), if they did.
    pub repudiated_at: Option<OffsetDateTime>,
}
