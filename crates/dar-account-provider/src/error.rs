//! The one error type of the account provider role.

use dar_discovery::DiscoveryError;

/// Everything the account provider role refuses or fails at.
///
/// Each variant names the draft step (or, for lockout recovery, the rule of
/// spec/lockout-policy.md) it enforces; [`AccountProviderError::code`] gives a stable
/// snake-case string for logs and the HTTP edge. No message carries a token, a key, a state
/// value, a session id or a plaintext.
///
/// ```
/// use dar_account_provider::AccountProviderError;
/// assert_eq!(AccountProviderError::Replayed.code(), "replayed");
/// assert_eq!(AccountProviderError::Replayed.step(), "§3.5 step 9");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountProviderError {
    /// The recovery provider is not on this account provider's allow-list: tokens are issued
    /// to, status events accepted from, and countersigned tokens accepted from known recovery
    /// providers only (§3.1 AP step 2, §6.5 "block entirely the delegation of tokens to
    /// low-reputation Recovery Providers", §3.6.2).
    #[error("recovery provider is not known to this account provider")]
    UnknownRecoveryProvider,
    /// The recovery provider's configuration document has no recovery provider part (§3.1 AP
    /// step 4, §3.5 step 10: the necessary configuration cannot be obtained).
    #[error("the configuration document is not a recovery provider's")]
    NotARecoveryProvider,
    /// The recovery provider's configuration could not be obtained or did not name the origin
    /// asked for (§3.1 AP steps 3–4, §3.5 steps 10–11).
    #[error("discovery: {0}")]
    Discovery(DiscoveryError),
    /// A token did not decode, verify, seal or open (dar-core; §3.5 steps 1–8, 11–13, §4).
    #[error("protocol: {0}")]
    Protocol(dar_core::Error),
    /// No token record has this token id (§3.5 step 14; revocation and `obsoletes`).
    #[error("no such recovery token")]
    UnknownToken,
    /// The sealed payload does not match the token record: its secret's hash differs, so the
    /// token is not the one this provider issued under that id (§3.5 step 14).
    #[error("the token's sealed payload does not match the issued token")]
    PayloadMismatch,
    /// The token record belongs to another account than the one named (in the sealed payload,
    /// or by the signed-in user) (§3.5 step 14).
    #[error("the token belongs to another account")]
    NotOwnedByAccount,
    /// The token was issued for another recovery provider than the one presenting it, or than
    /// the one a replacement is issued for (§3.5 step 6, §3.1 `obsoletes`).
    #[error("the token was issued for another recovery provider")]
    WrongRecoveryProvider,
    /// The token was revoked: by the user, by a replacement, or by a repudiation (§3.5 step
    /// 14, §3.6.1 `token-repudiated`/`recovery-repudiated`, §6.3.2).
    #[error("the token has been revoked")]
    TokenRevoked,
    /// The recovery provider reported that it did not save the token, or deleted it (§3.2
    /// `save-failure`, §3.6.1 `save-failure`/`deleted`).
    #[error("the recovery provider does not hold this token")]
    TokenNotHeld,
    /// The recovery token was already used for a recovery (§3.5 step 9: a token recovers
    /// once).
    #[error("the token has already been used")]
    TokenAlreadyUsed,
    /// This countersigned token id was already presented (§3.5 step 9, replay guard).
    #[error("the countersigned token was already presented")]
    Replayed,
    /// The save-token-return `state` is unknown, expired, already used, or belongs to another
    /// session (§3.2, §6.5). Which of these is never said.
    #[error("the state does not match a pending save for this session")]
    StateMismatch,
    /// A save-token-return or token-status request is malformed: an unknown `status`, or an
    /// `id`/`countersigned_id` that is not 32 hex digits (§3.2, §3.6.1).
    #[error("malformed status request")]
    MalformedStatus,
    /// Too many token-status events from this recovery provider in the current window
    /// (§3.6.2 denial of service).
    #[error("too many status events from this recovery provider")]
    RateLimited,
    /// A token-status request came from an address outside the recovery provider's configured
    /// ranges (§3.6.2 "only accept requests from known IP ranges").
    #[error("status events are not accepted from this address")]
    ForbiddenAddress,
    /// Publishing one more signing key would exceed the most a configuration document may list
    /// (§2, [`dar_core::MAX_KEYS`]): retire an old one first.
    #[error("too many published signing keys")]
    TooManyPublishedKeys,
    /// The current signing key cannot be retired: rotate to a new one first (§6.8).
    #[error("the current signing key cannot be retired")]
    RetiringCurrentKey,
    /// An address range is not `address/prefix` with a valid prefix length (§3.6.2 settings).
    #[error("invalid address range")]
    InvalidAddressRange,
    /// The lockout-recovery policy is unusable: a rule could unlock on weak evidence, could
    /// never be reached in order, or a duration is out of range (spec/lockout-policy.md,
    /// "Validation").
    #[error("invalid lockout policy: {0}")]
    InvalidLockoutPolicy(PolicyViolation),
    /// A recovery code or an email code as typed is not of the right form: too long, a
    /// character outside its alphabet, or the wrong number of characters
    /// (spec/lockout-policy.md, "Recovery codes", "Email codes"). Checked before any hash is
    /// computed, so that long input costs nothing.
    #[error("malformed code")]
    MalformedCode,
    /// Hashing a recovery code with argon2id failed (spec/lockout-policy.md, "Recovery
    /// codes"); nothing was stored.
    #[error("recovery code hashing failed")]
    CodeHashing,
    /// Storage failed; nothing was decided.
    #[error("storage: {0}")]
    Store(StoreFailure),
}

/// Why a lockout-recovery policy was refused by
/// [`LockoutPolicy::validate`](crate::lockout::LockoutPolicy::validate). Each variant names
/// the rule it enforces; the reasons are in spec/lockout-policy.md, "Validation".
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// There are no rules: recovery would always be refused, without even a staff review.
    #[error("no rules")]
    NoRules,
    /// A rule has an empty name: staff and the audit log identify rules by name.
    #[error("a rule has no name")]
    UnnamedRule,
    /// Two rules share a name, so the recorded rule would be ambiguous.
    #[error("duplicate rule name {0:?}")]
    DuplicateRuleName(String),
    /// A rule requires no evidence at all: it would grant its outcome to anyone.
    #[error("rule {0:?} requires no evidence")]
    RuleWithoutRequirement(String),
    /// A rule requires trusted contacts and nothing else: social recovery is a fraud target
    /// and never suffices alone.
    #[error("rule {0:?} requires only trusted contacts")]
    TrustedContactsAlone(String),
    /// A rule using trusted contacts unlocks at once: such a rule must be `timed` or `review`
    /// so that the owner can object.
    #[error("rule {0:?} uses trusted contacts and unlocks at once")]
    TrustedContactsUnlock(String),
    /// A rule requires more recovery providers than [`crate::lockout::policy::MAX_DELEGATED_TOKENS`].
    #[error("rule {0:?} requires too many recovery providers")]
    TooManyDelegatedTokens(String),
    /// A rule comes after a rule with a worse outcome: rules must go unlock, then timed, then
    /// review, so that adding evidence never makes the decision worse.
    #[error("rule {rule:?} grants more than the earlier rule {after:?}")]
    RulesOutOfOrder {
        /// The later rule, with the better outcome.
        rule: String,
        /// The earlier rule, with the worse outcome.
        after: String,
    },
    /// A rule is `timed` but the waiting period is zero: that would be an `unlock` without
    /// the owner's chance to cancel.
    #[error("timed rules need a waiting period")]
    ZeroWaitingPeriod,
    /// A rule is `timed` but reminders have a zero interval.
    #[error("timed rules need a notice interval")]
    ZeroNoticeInterval,
    /// The final notice would be due at or before the start of the waiting period.
    #[error("the final notice must fall inside the waiting period")]
    FinalNoticeNotInsideWaitingPeriod,
    /// The maximum token age is zero: no recovery token would ever count.
    #[error("the maximum token age must not be zero")]
    ZeroMaxTokenAge,
    /// Zero trusted contacts required: an approval by nobody would count.
    #[error("at least one trusted contact must be required")]
    ZeroTrustedContactsRequired,
    /// A duration exceeds [`crate::lockout::policy::MAX_DURATION_SECS`] (10 years).
    #[error("{field} is too long")]
    DurationTooLong {
        /// The configuration key.
        field: &'static str,
    },
}

/// Why storage failed, without any backend type or secret in it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    /// The database cannot be reached now; the request may be retried later.
    #[error("storage unavailable")]
    Unavailable,
    /// Any other storage error; the detail is for logs (it holds no token or secret).
    #[error("storage error: {0}")]
    Backend(String),
    /// Stored data cannot be read back (a value outside its domain).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
}

impl AccountProviderError {
    /// The stable, machine-readable code (`replayed`, `token_revoked`, ...). Protocol and
    /// discovery errors give the inner error's code.
    pub fn code(&self) -> &'static str {
        self.describe().0
    }

    /// The draft section and step this error enforces (`lockout policy`, `lockout codes` for
    /// the lockout-recovery rules, `storage` for storage failures).
    pub fn step(&self) -> &'static str {
        self.describe().1
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Self::UnknownRecoveryProvider => ("unknown_recovery_provider", "§3.1 step 2, §6.5"),
            Self::NotARecoveryProvider => ("not_a_recovery_provider", "§3.1 step 4, §3.5 step 10"),
            Self::Discovery(e) => match e {
                DiscoveryError::IssuerMismatch => {
                    ("config_issuer_mismatch", "§3.1 step 5, §3.5 step 11")
                }
                DiscoveryError::Invalid(_) => ("config_invalid", "§2 configuration"),
                _ => ("config_unavailable", "§3.1 step 4, §3.5 step 10"),
            },
            Self::Protocol(e) => (e.code(), e.step()),
            Self::UnknownToken => ("unknown_token", "§3.5 step 14"),
            Self::PayloadMismatch => ("payload_mismatch", "§3.5 step 14"),
            Self::NotOwnedByAccount => ("not_owned_by_account", "§3.5 step 14"),
            Self::WrongRecoveryProvider => ("wrong_recovery_provider", "§3.5 step 6"),
            Self::TokenRevoked => ("token_revoked", "§3.5 step 14, §3.6.1"),
            Self::TokenNotHeld => ("token_not_held", "§3.2, §3.6.1"),
            Self::TokenAlreadyUsed => ("token_already_used", "§3.5 step 9"),
            Self::Replayed => ("replayed", "§3.5 step 9"),
            Self::StateMismatch => ("state_mismatch", "§3.2, §6.5"),
            Self::MalformedStatus => ("malformed_status", "§3.2, §3.6.1"),
            Self::RateLimited => ("rate_limited", "§3.6.2"),
            Self::ForbiddenAddress => ("forbidden_address", "§3.6.2"),
            Self::TooManyPublishedKeys => ("too_many_published_keys", "§2 public keys"),
            Self::RetiringCurrentKey => ("retiring_current_key", "§6.8"),
            Self::InvalidAddressRange => ("invalid_address_range", "§3.6.2"),
            Self::InvalidLockoutPolicy(_) => ("invalid_lockout_policy", "lockout policy"),
            Self::MalformedCode => ("malformed_code", "lockout codes"),
            Self::CodeHashing => ("code_hashing", "lockout codes"),
            Self::Store(StoreFailure::Unavailable) => ("store_unavailable", "storage"),
            Self::Store(_) => ("store_error", "storage"),
        }
    }
}

impl From<dar_core::Error> for AccountProviderError {
    fn from(e: dar_core::Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<dar_core::Misuse> for AccountProviderError {
    fn from(e: dar_core::Misuse) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<dar_core::DecodeError> for AccountProviderError {
    fn from(e: dar_core::DecodeError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<DiscoveryError> for AccountProviderError {
    fn from(e: DiscoveryError) -> Self {
        Self::Discovery(e)
    }
}

impl From<StoreFailure> for AccountProviderError {
    fn from(e: StoreFailure) -> Self {
        Self::Store(e)
    }
}

#[cfg(test)]
mod tests;
