//! The one error type of the recovery provider role.

use dar_discovery::DiscoveryError;

/// Why a storage operation failed. The detail (which never holds a token) is logged by the store
/// implementation; the role only needs to know whether retrying later may help.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreFault {
    /// The database cannot be reached now; the request may be retried later.
    #[error("storage unavailable")]
    Unavailable,
    /// Any other storage failure.
    #[error("storage failure")]
    Failed,
}

/// Why a recovery provider operation was refused or failed.
///
/// Each variant names the draft step it enforces; [`RecoveryProviderError::code`] and
/// [`RecoveryProviderError::step`] give the stable strings an HTTP edge prints.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecoveryProviderError {
    /// The base64 `token` text is longer than this provider's `token-max-size` allows (§2
    /// token-max-size, §3.1 step 2). Checked before decoding.
    #[error("token of about {size} bytes exceeds this provider's maximum of {max}")]
    TokenTooLarge {
        /// The size the text could decode to.
        size: usize,
        /// This provider's maximum, in bytes.
        max: usize,
    },
    /// A form field is malformed or too long (§3.1 `obsoletes`, hints, `state`).
    #[error("form field {field} is invalid")]
    InvalidFormField {
        /// The field.
        field: &'static str,
    },
    /// The token does not decode or fails a protocol check (§3.1 steps 2–10, §3.4 step 4).
    #[error("{0}")]
    Protocol(dar_core::Error),
    /// The issuer's configuration could not be obtained (§3.1 step 5, §3.4 step 3).
    #[error("configuration: {0}")]
    Discovery(DiscoveryError),
    /// The issuer's configuration has no account provider part, so it has no keys to check the
    /// token with and nowhere to return the user (§3.1 steps 5–7, §2).
    #[error("the issuer is not an account provider")]
    NotAnAccountProvider,
    /// The token is already saved for another user of this provider: a leaked token re-added
    /// to a second account (§3.1 step 11, §6.8).
    #[error("this token is saved for another user")]
    AlreadySavedByAnotherUser,
    /// The user saved this token before and then deleted it, or it was obsoleted or
    /// repudiated; it is not saved again (§3.1 step 11).
    #[error("this token was removed and cannot be saved again")]
    TokenRemoved,
    /// The user declined to save the token at the confirmation interstitial (§3.1
    /// `confirmation`).
    #[error("the user declined to save the token")]
    Declined,
    /// No saved token of this user has this issuer and id (token management, §3.6). Another
    /// user's token gets the same answer.
    #[error("no such saved token")]
    UnknownToken,
    /// No saved token of this user matches the recovery hints (§3.4 step 2).
    #[error("no saved token matches")]
    NoMatchingToken,
    /// No recovery of this user has this countersigned token id (§3.6 recovery-repudiated).
    #[error("no such recovery")]
    UnknownRecovery,
    /// The store failed; nothing was changed.
    #[error("{0}")]
    Store(StoreFault),
}

impl RecoveryProviderError {
    /// The stable, machine-readable code (`already_saved_by_another_user`, ...). For
    /// [`RecoveryProviderError::Protocol`] it is dar-core's code.
    pub fn code(&self) -> &'static str {
        self.describe().0
    }

    /// The draft section and step this error enforces.
    pub fn step(&self) -> &'static str {
        self.describe().1
    }

    /// Whether the user, not the peer or this server, can act on it: a client fault that an
    /// HTTP edge answers with a 4xx status. Storage faults are the only server faults.
    pub fn is_client_fault(&self) -> bool {
        !matches!(self, Self::Store(_))
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Self::TokenTooLarge { .. } => ("token_too_large", "§2 token-max-size, §3.1 step 2"),
            Self::InvalidFormField { .. } => ("invalid_form_field", "§3.1 parameters"),
            Self::Protocol(e) => (e.code(), e.step()),
            Self::Discovery(e) => match e {
                DiscoveryError::NotFound => ("configuration_not_found", "§2, §3.1 step 5"),
                DiscoveryError::Invalid(_) => ("configuration_invalid", "§2, §3.1 step 5"),
                DiscoveryError::IssuerMismatch => ("configuration_issuer_mismatch", "§3.1 step 6"),
                _ => ("configuration_unavailable", "§2, §3.1 step 5"),
            },
            Self::NotAnAccountProvider => ("not_an_account_provider", "§2, §3.1 step 5"),
            Self::AlreadySavedByAnotherUser => {
                ("already_saved_by_another_user", "§3.1 step 11, §6.8")
            }
            Self::TokenRemoved => ("token_removed", "§3.1 step 11"),
            Self::Declined => ("declined", "§3.1 confirmation"),
            Self::UnknownToken => ("unknown_token", "§3.6"),
            Self::NoMatchingToken => ("no_matching_token", "§3.4 step 2"),
            Self::UnknownRecovery => ("unknown_recovery", "§3.6 recovery-repudiated"),
            Self::Store(StoreFault::Unavailable) => ("store_unavailable", "§3.1 step 11"),
            Self::Store(_) => ("store_failed", "§3.1 step 11"),
        }
    }
}

impl From<dar_core::Error> for RecoveryProviderError {
    fn from(e: dar_core::Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<DiscoveryError> for RecoveryProviderError {
    fn from(e: DiscoveryError) -> Self {
        Self::Discovery(e)
    }
}

impl From<StoreFault> for RecoveryProviderError {
    fn from(e: StoreFault) -> Self {
        Self::Store(e)
    }
}
