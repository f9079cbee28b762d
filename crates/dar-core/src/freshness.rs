//! Freshness of issued_time (§3.1 step 9, §3.5 step 7, §6.7).
//!
//! A verifier is always given `now` by its caller: dar-core has no clock. The policy bounds how
//! far issued_time may be in the future (clock skew between servers) and how old it may be (a
//! token is sent within moments of being issued, §6.7).

use time::{Duration, OffsetDateTime};

use crate::error::{Misuse, Rejected};

/// How far from `now` an issued_time may be.
///
/// ```
/// use dar_core::Freshness;
/// use time::{Duration, macros::datetime};
/// let policy = Freshness::symmetric(Duration::minutes(5))?;
/// let now = datetime!(2026-11-22 15:31:35 UTC);
/// assert!(policy.check(datetime!(2026-11-22 15:31:19 UTC), now).is_ok());
/// assert!(policy.check(datetime!(2026-11-22 15:40:00 UTC), now).is_err());
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    max_future: Duration,
    max_age: Duration,
}

impl Freshness {
    /// The library default: up to 5 minutes in the future (server clock skew) and up to 1 hour
    /// old (a token is delivered through one browser redirect after it is issued; an hour leaves
    /// room for a person reading a confirmation page).
    pub const DEFAULT: Self = Self {
        max_future: Duration::minutes(5),
        max_age: Duration::hours(1),
    };

    /// A policy with separate bounds into the future and into the past.
    ///
    /// # Errors
    ///
    /// [`Misuse::NegativeWindow`] if either bound is negative.
    pub fn new(max_future: Duration, max_age: Duration) -> Result<Self, Misuse> {
        if max_future.is_negative() || max_age.is_negative() {
            return Err(Misuse::NegativeWindow);
        }
        Ok(Self {
            max_future,
            max_age,
        })
    }

    /// The same bound in both directions (the CLI's `--skew`).
    ///
    /// # Errors
    ///
    /// [`Misuse::NegativeWindow`] if `skew` is negative.
    pub fn symmetric(skew: Duration) -> Result<Self, Misuse> {
        Self::new(skew, skew)
    }

    /// How far in the future issued_time may be.
    pub fn max_future(&self) -> Duration {
        self.max_future
    }

    /// How old issued_time may be.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Checks `issued` against `now`.
    ///
    /// # Errors
    ///
    /// [`Rejected::IssuedInFuture`] or [`Rejected::Stale`].
    pub fn check(&self, issued: OffsetDateTime, now: OffsetDateTime) -> Result<(), Rejected> {
        // OffsetDateTime spans ±9999 years, so the difference always fits a Duration.
        let age = now - issued;
        if -age > self.max_future {
            return Err(Rejected::IssuedInFuture);
        }
        if age > self.max_age {
            return Err(Rejected::Stale);
        }
        Ok(())
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:35 UTC);

    #[test]
    fn accepts_within_both_bounds() {
        let p = Freshness::new(Duration::minutes(1), Duration::hours(1)).unwrap();
        assert_eq!(p.check(NOW, NOW), Ok(()));
        assert_eq!(p.check(NOW + Duration::minutes(1), NOW), Ok(()));
        assert_eq!(p.check(NOW - Duration::hours(1), NOW), Ok(()));
    }

    #[test]
    fn rejects_issued_in_future() {
        let p = Freshness::new(Duration::minutes(1), Duration::hours(1)).unwrap();
        let t = NOW + Duration::minutes(1) + Duration::nanoseconds(1);
        assert_eq!(p.check(t, NOW), Err(Rejected::IssuedInFuture));
    }

    #[test]
    fn rejects_stale() {
        let p = Freshness::new(Duration::minutes(1), Duration::hours(1)).unwrap();
        let t = NOW - Duration::hours(1) - Duration::seconds(1);
        assert_eq!(p.check(t, NOW), Err(Rejected::Stale));
        assert_eq!(
            p.check(datetime!(2000-01-01 0:00 UTC), NOW),
            Err(Rejected::Stale)
        );
    }

    #[test]
    fn zero_skew_accepts_only_now() {
        let p = Freshness::symmetric(Duration::ZERO).unwrap();
        assert_eq!(p.check(NOW, NOW), Ok(()));
        assert_eq!(
            p.check(NOW - Duration::seconds(16), NOW),
            Err(Rejected::Stale)
        );
    }

    #[test]
    fn huge_windows_do_not_overflow() {
        let p = Freshness::symmetric(Duration::seconds(3_000_000)).unwrap();
        assert_eq!(p.check(NOW - Duration::seconds(16), NOW), Ok(()));
        let max = Freshness::symmetric(Duration::MAX).unwrap();
        assert_eq!(
            max.check(
                datetime!(-9999-01-01 0:00 UTC),
                datetime!(9999-12-31 0:00 UTC)
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_negative_windows() {
        assert_eq!(
            Freshness::symmetric(Duration::seconds(-1)),
            Err(Misuse::NegativeWindow)
        );
    }
}
