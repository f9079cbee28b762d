//! Tests of the timed-unlock schedule with the default policy: 72 h, daily reminders, final
//! notice 6 h before.

use time::macros::datetime;

use super::*;

const START: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn h(hours: i64) -> OffsetDateTime {
    START + Duration::hours(hours)
}

fn schedule() -> Schedule {
    LockoutPolicy::default().schedule(START)
}

fn sent(last_hours: Option<i64>, final_sent: bool) -> NoticesSent {
    NoticesSent {
        last_notice_at: last_hours.map(h),
        final_notice_sent: final_sent,
    }
}

#[test]
fn default_schedule_times() {
    let s = schedule();
    assert_eq!(s.completes_at, h(72));
    assert_eq!(s.final_notice_at(), h(66));
    assert_eq!(s.notice_interval, Duration::hours(24));
}

/// (what was sent: last notice at hour, final sent; now at hour) → what is due.
#[test]
fn schedule_table() {
    let nothing = |hours| Due::Nothing { next_due: h(hours) };
    let table = [
        // At the start (the start notice just went out): the first reminder is next.
        (sent(Some(0), false), 0, nothing(24)),
        // Nothing recorded yet counts as the start.
        (sent(None, false), 0, nothing(24)),
        (sent(None, false), 24, Due::Reminder),
        (sent(Some(0), false), 23, nothing(24)),
        // Daily reminders on the grid from the start.
        (sent(Some(0), false), 24, Due::Reminder),
        (sent(Some(24), false), 24, nothing(48)),
        (sent(Some(24), false), 48, Due::Reminder),
        // A reminder sent late (hour 30) still leaves the next one at hour 48.
        (sent(Some(30), false), 31, nothing(48)),
        // No reminder at hour 72 (completion) nor inside the final window: the final notice
        // is next.
        (sent(Some(48), false), 50, nothing(66)),
        (sent(Some(48), false), 66, Due::FinalNotice),
        (sent(Some(48), false), 70, Due::FinalNotice),
        (sent(Some(48), true), 66, nothing(72)),
        (sent(Some(48), true), 71, nothing(72)),
        // Completion.
        (sent(Some(48), true), 72, Due::Complete),
        (sent(Some(48), true), 500, Due::Complete),
        // Restart after a gap: the single most important due action, once.
        (sent(Some(0), false), 47, Due::Reminder), // two reminders missed: one is due
        (sent(Some(47), false), 47, nothing(48)),  // then back on the grid
        (sent(Some(0), false), 67, Due::FinalNotice), // reminders missed, final window: final
        (sent(Some(0), false), 90, Due::Complete), // everything missed: complete
    ];
    let s = schedule();
    for (i, (notices, now, expected)) in table.into_iter().enumerate() {
        assert_eq!(s.due(&notices, h(now)), expected, "row {i}");
    }
}

#[test]
fn a_full_run_sends_each_notice_once() {
    // A worker polling every 10 minutes records what it sends.
    let s = schedule();
    let mut notices = sent(Some(0), false);
    let mut log = Vec::new();
    let mut now = START;
    while now <= h(80) {
        match s.due(&notices, now) {
            Due::Reminder => {
                notices.last_notice_at = Some(now);
                log.push(("reminder", now));
            }
            Due::FinalNotice => {
                notices.final_notice_sent = true;
                log.push(("final", now));
            }
            Due::Complete => {
                log.push(("complete", now));
                break;
            }
            Due::Nothing { next_due } => assert!(next_due > now),
        }
        now += Duration::minutes(10);
    }
    assert_eq!(
        log,
        [
            ("reminder", h(24)),
            ("reminder", h(48)),
            ("final", h(66)),
            ("complete", h(72)),
        ]
    );
}

#[test]
fn no_reminders_without_an_interval_and_short_waits() {
    let mut s = schedule();
    s.notice_interval = Duration::ZERO;
    assert_eq!(
        s.due(&sent(Some(0), false), h(30)),
        Due::Nothing { next_due: h(66) }
    );
    // A final window longer than the wait (an unvalidated policy): the final notice is due
    // at once, then completion.
    let mut short = schedule();
    short.final_notice_before = Duration::hours(100);
    assert_eq!(short.due(&sent(Some(0), false), h(0)), Due::FinalNotice);
    assert_eq!(
        short.due(&sent(Some(0), true), h(0)),
        Due::Nothing { next_due: h(72) }
    );
}
