//! Outcomes of timed operations and their summary: counts, errors by kind, throughput and
//! latency percentiles (nearest rank over a sorted `Vec`: exact, and a run holds at most a
//! few hundred thousand samples).

use std::collections::BTreeMap;
use std::time::Duration;

/// How one timed operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The answer the scenario expects.
    Ok,
    /// Another answer or a failure, by kind (`HTTP 503`, `connect`, ...).
    Error(String),
}

/// What one scenario measured.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    /// Latencies of the operations that succeeded.
    ok: Vec<Duration>,
    /// Failed operations by kind.
    errors: BTreeMap<String, usize>,
}

impl Samples {
    /// Records one operation.
    pub(crate) fn record(&mut self, latency: Duration, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok.push(latency),
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// Adds another worker's samples.
    pub(crate) fn merge(&mut self, other: Self) {
        self.ok.extend(other.ok);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// How many operations succeeded.
    pub(crate) fn ok_count(&self) -> usize {
        self.ok.len()
    }

    /// How many failed.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// Failures by kind, as `kind xN` joined with commas; `-` when there is none.
    pub(crate) fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".to_owned();
        }
        self.errors
            .iter()
            .map(|(kind, n)| format!("{kind} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The latency summary of the successful operations.
    pub(crate) fn latencies(&self) -> Latencies {
        let mut sorted = self.ok.clone();
        sorted.sort_unstable();
        Latencies {
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
        }
    }
}

/// Latency percentiles; `None` when nothing succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Latencies {
    pub(crate) p50: Option<Duration>,
    pub(crate) p90: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) max: Option<Duration>,
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of `sorted` (ascending): the smallest
/// value with at least p% of the values at or below it. `None` for an empty slice.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    // rank = ceil(p/100 * n), computed in integers to avoid float rounding at exact ranks.
    let per_mille = (p * 10.0).round();
    let mut rank = n;
    for candidate in 1..=n {
        if (candidate as f64) * 1000.0 >= per_mille * (n as f64) {
            rank = candidate;
            break;
        }
    }
    sorted.get(rank - 1).copied()
}

/// Milliseconds with two decimals, or `-`.
pub(crate) fn millis(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2}", d.as_secs_f64() * 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(ms(50)));
        assert_eq!(percentile(&sorted, 90.0), Some(ms(90)));
        assert_eq!(percentile(&sorted, 99.0), Some(ms(99)));
        assert_eq!(percentile(&sorted, 99.9), Some(ms(100)));
        assert_eq!(percentile(&sorted, 100.0), Some(ms(100)));
    }

    #[test]
    fn percentiles_of_small_samples_round_the_rank_up() {
        let sorted = [ms(10), ms(20), ms(30)];
        // ceil(0.5 * 3) = 2, ceil(0.99 * 3) = 3.
        assert_eq!(percentile(&sorted, 50.0), Some(ms(20)));
        assert_eq!(percentile(&sorted, 99.0), Some(ms(30)));
        assert_eq!(percentile(&[ms(7)], 50.0), Some(ms(7)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
    }

    #[test]
    fn no_percentile_of_nothing_or_out_of_range() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[ms(1)], 0.0), None);
        assert_eq!(percentile(&[ms(1)], 100.5), None);
        assert_eq!(percentile(&[ms(1)], f64::NAN), None);
    }

    #[test]
    fn samples_count_errors_by_kind_and_time_only_successes() {
        let mut a = Samples::default();
        a.record(ms(3), Outcome::Ok);
        a.record(ms(1), Outcome::Ok);
        a.record(ms(900), Outcome::Error("HTTP 503".into()));
        let mut b = Samples::default();
        b.record(ms(2), Outcome::Ok);
        b.record(ms(5), Outcome::Error("HTTP 503".into()));
        b.record(ms(5), Outcome::Error("connect".into()));
        a.merge(b);
        assert_eq!(a.ok_count(), 3);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors_text(), "HTTP 503 x2, connect x1");
        let l = a.latencies();
        assert_eq!((l.p50, l.max), (Some(ms(2)), Some(ms(3))));
        assert_eq!(Samples::default().errors_text(), "-");
        assert_eq!(millis(Some(Duration::from_micros(1234))), "1.23");
        assert_eq!(millis(None), "-");
    }
}
