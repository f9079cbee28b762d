//! The timed-unlock schedule: what a pending timed unlock owes the owner at a given moment.
//!
//! A timed unlock starts with a notice to every verified address (the caller sends it when it
//! creates the recovery), reminds the owner every [`Schedule::notice_interval`] on a grid
//! counted from the start, sends one final notice [`Schedule::final_notice_before`] the end
//! (no reminder inside that final window), and completes at [`Schedule::completes_at`].
//! [`Schedule::due`] is pure: the state lives in storage (`last_notice_at`,
//! `final_notice_sent`), so a worker that restarts, or was down for days, just asks again and
//! gets the single most important action now due. A cancel, or a sign-in with the existing
//! second factor, ends the recovery; the schedule is then no longer consulted.
//!
//! ```
//! use dar_account_provider::lockout::{Due, LockoutPolicy, NoticesSent};
//! use time::{Duration, macros::datetime};
//! let start = datetime!(2026-12-01 09:00 UTC);
//! let schedule = LockoutPolicy::default().schedule(start);
//! let sent = NoticesSent { last_notice_at: Some(start), final_notice_sent: false };
//! // One hour in: the next thing due is the first daily reminder.
//! assert_eq!(
//!     schedule.due(&sent, start + Duration::hours(1)),
//!     Due::Nothing { next_due: start + Duration::hours(24) }
//! );
//! assert_eq!(schedule.due(&sent, start + Duration::hours(24)), Due::Reminder);
//! // The worker was down for the last day: completing wins over the notices it missed.
//! assert_eq!(schedule.due(&sent, start + Duration::hours(80)), Due::Complete);
//! ```

use time::{Duration, OffsetDateTime};

use super::policy::LockoutPolicy;

/// The times of one timed unlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When the timed unlock started (the start notice went out).
    pub started_at: OffsetDateTime,
    /// When it completes, unless cancelled first.
    pub completes_at: OffsetDateTime,
    /// How often to remind the owner; zero or less: no reminders.
    pub notice_interval: Duration,
    /// How long before completion the final notice is due.
    pub final_notice_before: Duration,
}

/// What was sent already (as stored with the recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticesSent {
    /// When the last notice (start or reminder) went out; `None` counts as the start.
    pub last_notice_at: Option<OffsetDateTime>,
    /// Whether the final notice went out.
    pub final_notice_sent: bool,
}

/// The most important action due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The waiting period is over: unlock (and send the completion notices).
    Complete,
    /// Send the final notice ("completes in 6 hours"), then record `final_notice_sent`.
    FinalNotice,
    /// Send a reminder, then record `last_notice_at = now`.
    Reminder,
    /// Nothing is due before `next_due`.
    Nothing {
        /// When to ask again.
        next_due: OffsetDateTime,
    },
}

impl LockoutPolicy {
    /// The schedule of a timed unlock starting at `started_at` under this policy.
    pub fn schedule(&self, started_at: OffsetDateTime) -> Schedule {
        Schedule {
            started_at,
            completes_at: started_at.saturating_add(self.waiting_period()),
            notice_interval: self.notice_interval(),
            final_notice_before: self.final_notice_before(),
        }
    }
}

impl Schedule {
    /// When the final notice is due.
    pub fn final_notice_at(&self) -> OffsetDateTime {
        self.completes_at.saturating_sub(self.final_notice_before)
    }

    /// The first reminder time on the grid `started_at + k × notice_interval` (k ≥ 1) after
    /// `last`, or `None` when there are no reminders.
    fn next_reminder(&self, last: OffsetDateTime) -> Option<OffsetDateTime> {
        let interval = self.notice_interval.whole_seconds();
        if interval <= 0 {
            return None;
        }
        let elapsed = (last - self.started_at).whole_seconds().max(0);
        let k = (elapsed / interval).saturating_add(1);
        Some(
            self.started_at
                .saturating_add(Duration::seconds(k.saturating_mul(interval))),
        )
    }

    /// What is due at `now`, given what was `sent`: completion first, then the final notice,
    /// then a reminder. However many reminders were missed (a worker down for days), at most
    /// one is due, and none inside the final window.
    pub fn due(&self, sent: &NoticesSent, now: OffsetDateTime) -> Due {
        if now >= self.completes_at {
            return Due::Complete;
        }
        let final_at = self.final_notice_at();
        if !sent.final_notice_sent {
            if now >= final_at {
                return Due::FinalNotice;
            }
        } else {
            // After the final notice only completion remains.
            return Due::Nothing {
                next_due: self.completes_at,
            };
        }
        let last = sent.last_notice_at.unwrap_or(self.started_at);
        match self.next_reminder(last) {
            Some(at) if at < final_at => {
                if now >= at {
                    Due::Reminder
                } else {
                    Due::Nothing { next_due: at }
                }
            }
            _ => Due::Nothing { next_due: final_at },
        }
    }
}

#[cfg(test)]
mod tests;
