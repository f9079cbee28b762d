//! Comparing a save's `login_hint` and `login_hint_sha256` (§3.1) with the signed-in user's
//! contact points, so that the confirmation page can warn when a token looks meant for another
//! account than the one signed in (§6.3.1.1: a user fixed into an attacker's session, or simply
//! signed in to their other account).
//!
//! The draft leaves canonicalization open and warns that hashed hints may miss legitimate
//! matches. dar compares trimmed, ASCII-lower-cased text: a `login_hint` equal to a contact
//! point in that form matches, and a `login_hint_sha256` matches when SHA-256 of its salt and
//! a contact point (as given, or lower-cased) is its digest. A mismatch is a warning for the
//! user, never a refusal: the hints are the account provider's guess, not a rule.

use dar_core::decode_base64;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The length of `login_hint_sha256`'s salt and of its digest, in bytes (§3.1: a 256-bit salt,
/// then SHA-256).
const PART_LEN: usize = 32;

/// What a save's login hints say about the signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginHintMatch {
    /// No hint to compare: none given, or a `login_hint_sha256` that is not base64 of 64
    /// bytes (it names nobody).
    NoHint,
    /// A hint names one of the user's contact points.
    Matches,
    /// The hints name none of the user's contact points.
    Differs,
}

/// Compares the hints with `contact_points` (the signed-in user's username, mail addresses,
/// ...).
///
/// ```
/// use dar_recovery_provider::{LoginHintMatch, match_login_hint};
///
/// let me = ["rita", "Rita@Example.com"];
/// assert_eq!(match_login_hint(Some("rita@example.com"), None, &me), LoginHintMatch::Matches);
/// assert_eq!(match_login_hint(Some("sam@example.com"), None, &me), LoginHintMatch::Differs);
/// assert_eq!(match_login_hint(None, None, &me), LoginHintMatch::NoHint);
/// ```
pub fn match_login_hint(
    login_hint: Option<&str>,
    login_hint_sha256: Option<&str>,
    contact_points: &[&str],
) -> LoginHintMatch {
    let hashed = login_hint_sha256.and_then(salted_digest);
    if login_hint.is_none() && hashed.is_none() {
        return LoginHintMatch::NoHint;
    }
    let plain_matches = login_hint.is_some_and(|hint| {
        let hint = canonical(hint);
        contact_points.iter().any(|point| canonical(point) == hint)
    });
    let hashed_matches = hashed.is_some_and(|(salt, digest)| {
        contact_points.iter().any(|point| {
            [point.trim().to_owned(), canonical(point)]
                .iter()
                .any(|form| bool::from(salted_sha256(&salt, form).ct_eq(&digest)))
        })
    });
    if plain_matches || hashed_matches {
        LoginHintMatch::Matches
    } else {
        LoginHintMatch::Differs
    }
}

fn canonical(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

/// The salt and digest of a `login_hint_sha256`, if it is base64 of exactly 64 bytes.
fn salted_digest(text: &str) -> Option<([u8; PART_LEN], [u8; PART_LEN])> {
    let bytes = decode_base64(text.trim(), 2 * PART_LEN).ok()?;
    let (salt, digest) = bytes.split_at_checked(PART_LEN)?;
    Some((salt.try_into().ok()?, digest.try_into().ok()?))
}

fn salted_sha256(salt: &[u8; PART_LEN], point: &str) -> [u8; PART_LEN] {
    Sha256::new()
        .chain_update(salt)
        .chain_update(point.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `login_hint_sha256` as `salt`, then the digest made with `digest_salt`.
    fn hashed_with(salt: [u8; 32], digest_salt: [u8; 32], point: &str) -> String {
        use base64::Engine as _;
        let mut bytes = salt.to_vec();
        bytes.extend_from_slice(&salted_sha256(&digest_salt, point));
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn hashed(salt: [u8; 32], point: &str) -> String {
        hashed_with(salt, salt, point)
    }

    const ME: [&str; 2] = ["rita", "rita@example.com"];

    #[test]
    fn a_plain_hint_matches_a_contact_point_in_any_case_and_spacing() {
        for hint in ["rita@example.com", " RITA@Example.COM ", "rita"] {
            assert_eq!(
                match_login_hint(Some(hint), None, &ME),
                LoginHintMatch::Matches,
                "{hint}"
            );
        }
        assert_eq!(
            match_login_hint(Some("sam@example.com"), None, &ME),
            LoginHintMatch::Differs
        );
    }

    #[test]
    fn a_hashed_hint_matches_the_salted_digest_of_a_contact_point() {
        let hint = hashed([7; 32], "rita@example.com");
        assert_eq!(
            match_login_hint(None, Some(&hint), &ME),
            LoginHintMatch::Matches
        );
        // Hashed by the account provider as the user typed it: matched through the
        // lower-cased form of the contact point as given here too.
        let mixed = ["Rita@Example.com"];
        assert_eq!(
            match_login_hint(None, Some(&hint), &mixed),
            LoginHintMatch::Matches
        );
        let other = hashed([7; 32], "sam@example.com");
        assert_eq!(
            match_login_hint(None, Some(&other), &ME),
            LoginHintMatch::Differs
        );
        // The digest must be made with the salt the value carries.
        let swapped = hashed_with([8; 32], [7; 32], "rita@example.com");
        assert_eq!(
            match_login_hint(None, Some(&swapped), &ME),
            LoginHintMatch::Differs
        );
    }

    #[test]
    fn a_malformed_hashed_hint_says_nothing_and_either_hint_can_match() {
        for bad in ["", "not base64!", "AAAA", &hashed([1; 32], "rita")[..80]] {
            assert_eq!(
                match_login_hint(None, Some(bad), &ME),
                LoginHintMatch::NoHint,
                "{bad:?}"
            );
        }
        assert_eq!(
            match_login_hint(Some("sam"), Some("AAAA"), &ME),
            LoginHintMatch::Differs
        );
        let hashed_me = hashed([2; 32], "rita");
        assert_eq!(
            match_login_hint(Some("sam"), Some(&hashed_me), &ME),
            LoginHintMatch::Matches
        );
        assert_eq!(match_login_hint(None, None, &ME), LoginHintMatch::NoHint);
        assert_eq!(
            match_login_hint(Some("rita"), None, &[]),
            LoginHintMatch::Differs
        );
    }
}
