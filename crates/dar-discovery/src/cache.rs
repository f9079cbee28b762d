//! The configuration cache: how long a document may be reused, and the per-origin store.
//!
//! §2: "cache lifetimes should be kept reasonably short to enable timely responses to events such
//! as key compromise". A document is reused only while the origin's `Cache-Control: max-age`
//! (less its `Age`) allows and never longer than the configured cap; `no-store`, `no-cache`, no
//! `max-age`, or any header this parser is unsure about means it is not stored at all. Time comes
//! from a [`MonotonicClock`] so tests never sleep and wall-clock jumps cannot extend a lifetime.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dar_core::{Configuration, Origin};

/// A source of monotonic time for cache lifetimes.
pub trait MonotonicClock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real clock: [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl MonotonicClock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How long a response may be reused, from its `Cache-Control` header lines and its `Age`
/// header, capped at `cap`. `None` means "do not store".
///
/// Conservative on every doubt: `no-store` or `no-cache` (with or without arguments), no
/// `max-age`, a repeated `max-age`, a `max-age` or `Age` that is not a non-negative integer, a
/// header that is not visible ASCII, or a zero lifetime all give `None`. `private`, `public`,
/// `s-maxage` and unknown directives are ignored. A `max-age` too large to represent saturates
/// and is then capped.
pub(crate) fn freshness_lifetime<'a>(
    cache_control: impl IntoIterator<Item = &'a [u8]>,
    age: Option<&[u8]>,
    cap: Duration,
) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for line in cache_control {
        let line = core::str::from_utf8(line).ok()?;
        for directive in split_directives(line)? {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return None;
            }
            if name.eq_ignore_ascii_case("max-age") {
                if max_age.is_some() {
                    // RFC 9111 §4.2.1: conflicting values; treat the response as stale.
                    return None;
                }
                max_age = Some(delta_seconds(value?)?);
            }
        }
    }
    let age = match age {
        None => 0,
        Some(bytes) => delta_seconds(core::str::from_utf8(bytes).ok()?.trim())?,
    };
    let seconds = max_age?.saturating_sub(age);
    let lifetime = Duration::from_secs(seconds).min(cap);
    (!lifetime.is_zero()).then_some(lifetime)
}

/// Splits a header value at commas outside quoted strings. `None` for an unterminated quote or a
/// character outside visible ASCII, space and tab.
fn split_directives(line: &str) -> Option<Vec<&str>> {
    if !line
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
    {
        return None;
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in line.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(line.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(line.get(start..)?);
    Some(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

/// A token, or a quoted string without escapes (all a delta-seconds value can be).
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|inner| !inner.contains('"')),
        None => Some(value),
    }
}

/// RFC 9111 §1.2.2 delta-seconds: one or more digits; values too large saturate.
fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// One cached document and the instant it stops being usable.
#[derive(Debug)]
struct Entry {
    config: Arc<Configuration>,
    expires: Instant,
}

/// Documents by origin. Only complete, validated documents enter it; an entry is served only
/// strictly before its expiry and is dropped when found expired.
pub(crate) struct ConfigCache {
    entries: Mutex<HashMap<Origin, Entry>>,
    max_entries: usize,
}

impl ConfigCache {
    /// An empty cache holding at most `max_entries` origins.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Origin, Entry>> {
        // The map is consistent after every operation (no code in the critical sections can
        // panic half-way), so a poisoned lock still guards a usable map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The document for `origin` if it is still within its lifetime at `now`. An expired entry
    /// is removed, so a later failure leaves nothing behind.
    pub(crate) fn get(&self, origin: &Origin, now: Instant) -> Option<Arc<Configuration>> {
        let mut entries = self.lock();
        match entries.get(origin) {
            Some(entry) if now < entry.expires => Some(Arc::clone(&entry.config)),
            Some(_) => {
                entries.remove(origin);
                None
            }
            None => None,
        }
    }

    /// Stores a validated document fetched at `fetched_at` for `lifetime`; `None` (do not
    /// store) removes any previous entry for the origin instead.
    pub(crate) fn put(
        &self,
        origin: &Origin,
        config: &Arc<Configuration>,
        lifetime: Option<Duration>,
        fetched_at: Instant,
    ) {
        let mut entries = self.lock();
        let expires = lifetime.and_then(|l| fetched_at.checked_add(l));
        let Some(expires) = expires.filter(|_| self.max_entries > 0) else {
            entries.remove(origin);
            return;
        };
        if !entries.contains_key(origin) && entries.len() >= self.max_entries {
            entries.retain(|_, e| fetched_at < e.expires);
            if entries.len() >= self.max_entries {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(o, _)| o.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(
            origin.clone(),
            Entry {
                config: Arc::clone(config),
                expires,
            },
        );
    }

    /// How many entries are held, expired or not.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigCache")
            .field("entries", &self.lock().len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

#[cfg(test)]
mod tests;
