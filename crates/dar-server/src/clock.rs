//! Wall-clock time for the handlers, injected through [`AppState`](crate::AppState).
//!
//! Every decision a request makes about time (token freshness, session and code expiry,
//! parked-request lifetimes, timed unlocks) reads [`AppState::now`](crate::AppState::now),
//! never the system clock directly, so a test can put the whole application at any moment and
//! move it ([`ManualClock`]) without sleeping. [`serve`](crate::serve) uses [`SystemClock`].
//!
//! ```
//! use dar_server::clock::{Clock, ManualClock};
//! use time::{Duration, OffsetDateTime};
//!
//! let start = OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
//! let clock = ManualClock::new(start);
//! clock.advance(Duration::hours(72));
//! assert_eq!(clock.now(), start + Duration::hours(72));
//! # Ok::<(), time::error::ComponentRange>(())
//! ```

use std::fmt;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// A source of wall-clock time (UTC).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock: [`OffsetDateTime::now_utc`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until it is set or advanced: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `to` (backwards too: a test may model a clock step).
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }

    /// Moves the clock by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_follows_the_system_time() {
        let before = OffsetDateTime::now_utc();
        let read = SystemClock.now();
        assert!(read >= before && read <= OffsetDateTime::now_utc());
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), start + Duration::seconds(90));
        clock.set(start - Duration::hours(1));
        assert_eq!(clock.now(), start - Duration::hours(1));
        clock.advance(Duration::MAX);
        assert_eq!(
            clock.now(),
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX)
        );
    }
}
