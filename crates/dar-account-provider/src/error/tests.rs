//! Error codes and steps.

use super::*;

#[test]
fn codes_are_snake_case_and_steps_cite_the_draft_or_storage() {
    let all = [
        AccountProviderError::UnknownRecoveryProvider,
        AccountProviderError::NotARecoveryProvider,
        AccountProviderError::Discovery(DiscoveryError::NotFound),
        AccountProviderError::Protocol(dar_core::Rejected::Stale.into()),
        AccountProviderError::UnknownToken,
        AccountProviderError::PayloadMismatch,
        AccountProviderError::NotOwnedByAccount,
        AccountProviderError::WrongRecoveryProvider,
        AccountProviderError::TokenRevoked,
        AccountProviderError::TokenNotHeld,
        AccountProviderError::TokenAlreadyUsed,
        AccountProviderError::Replayed,
        AccountProviderError::StateMismatch,
        AccountProviderError::MalformedStatus,
        AccountProviderError::RateLimited,
        AccountProviderError::ForbiddenAddress,
        AccountProviderError::TooManyPublishedKeys,
        AccountProviderError::RetiringCurrentKey,
        AccountProviderError::InvalidAddressRange,
        AccountProviderError::InvalidLockoutPolicy(PolicyViolation::NoRules),
        AccountProviderError::MalformedCode,
        AccountProviderError::CodeHashing,
        AccountProviderError::Store(StoreFailure::Unavailable),
    ];
    for e in all {
        let snake = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        assert!(e.code().chars().all(snake), "{e:?}");
        assert!(
            e.step().starts_with('§') || e.step() == "storage" || e.step().starts_with("lockout"),
            "{e:?}"
        );
    }
}
