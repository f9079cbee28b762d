//! The issued_time field: an RFC 3339 `date-time` (§4.1.1).
//!
//! The public peers emit `2026-11-22T17:25:22Z` (Ruby, Java) and `2026-11-22T15:31:18.897Z`
//! (JavaScript). dar accepts exactly RFC 3339 §5.6 `date-time`: fractional seconds (1 to 9
//! digits), lower-case `t` and `z`, and numeric offsets, which are normalized to UTC. It refuses
//! everything else: missing zone, out-of-range fields (month 13, hour 39), leap second 60 (the
//! instant is ambiguous for freshness), more than 9 fraction digits and trailing text. dar emits
//! whole seconds in UTC with an upper-case `Z`.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::DecodeError;

/// Parses an RFC 3339 `date-time` into a UTC instant.
///
/// ```
/// use dar_core::issued_time;
/// let t = issued_time::parse(b"2026-11-22T16:31:18.897+01:00")?;
/// assert_eq!(issued_time::format(t), "2026-11-22T15:31:18Z");
/// # Ok::<(), dar_core::DecodeError>(())
/// ```
///
/// # Errors
///
/// [`DecodeError::IssuedTime`] for anything that is not an RFC 3339 `date-time`.
pub fn parse(bytes: &[u8]) -> Result<OffsetDateTime, DecodeError> {
    parse_inner(bytes).ok_or(DecodeError::IssuedTime)
}

/// Formats an instant as dar emits it: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`.
///
/// Years outside 0000–9999 cannot be written in RFC 3339; they are clamped into that range,
/// which no clock dar is given reaches.
pub fn format(t: OffsetDateTime) -> String {
    Emitted::new(t).as_str().to_owned()
}

/// The issued_time dar emits for an instant, formatted on the stack: signing a token writes
/// it straight into the token's buffer, with no allocation of its own.
#[derive(Clone, Copy)]
pub(crate) struct Emitted([u8; EMITTED_LEN]);

/// `YYYY-MM-DDTHH:MM:SSZ`.
const EMITTED_LEN: usize = 20;

impl Emitted {
    pub(crate) fn new(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        let mut out = *b"0000-00-00T00:00:00Z";
        // Every field is clamped into its digit count, so each digit is 0–9.
        let year = u32::try_from(t.year().clamp(0, 9999)).unwrap_or(0);
        let fields: [(usize, u32, usize); 6] = [
            (0, year, 4),
            (5, u32::from(u8::from(t.month())), 2),
            (8, u32::from(t.day()), 2),
            (11, u32::from(t.hour()), 2),
            (14, u32::from(t.minute()), 2),
            (17, u32::from(t.second()), 2),
        ];
        for (at, mut value, width) in fields {
            for slot in out[at..at + width].iter_mut().rev() {
                *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
                value /= 10;
            }
        }
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Digits and the ASCII separators above only.
        core::str::from_utf8(&self.0).unwrap_or("0000-00-00T00:00:00Z")
    }
}

fn parse_inner(b: &[u8]) -> Option<OffsetDateTime> {
    let mut r = Reader { b, pos: 0 };
    let year = r.digits(4)?;
    r.expect(b'-')?;
    let month = r.digits(2)?;
    r.expect(b'-')?;
    let day = r.digits(2)?;
    match r.next()? {
        b'T' | b't' => {}
        _ => return None,
    }
    let hour = r.digits(2)?;
    r.expect(b':')?;
    let minute = r.digits(2)?;
    r.expect(b':')?;
    let second = r.digits(2)?;
    let mut nanos = 0u32;
    if r.peek() == Some(b'.') {
        r.pos += 1;
        let start = r.pos;
        let mut scale = 100_000_000u32;
        while let Some(d) = r.peek().filter(u8::is_ascii_digit) {
            r.pos += 1;
            if r.pos - start > 9 {
                return None;
            }
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
        if r.pos == start {
            return None;
        }
    }
    let offset_seconds: i32 = match r.next()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let oh = r.digits(2)?;
            r.expect(b':')?;
            let om = r.digits(2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let s = i32::from(oh) * 3600 + i32::from(om) * 60;
            if sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    if r.pos != b.len() {
        return None;
    }
    let date = Date::from_calendar_date(
        i32::from(year),
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_seconds).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn digits(&mut self, n: usize) -> Option<u16> {
        let mut v = 0u16;
        for _ in 0..n {
            let c = self.next().filter(u8::is_ascii_digit)?;
            v = v * 10 + u16::from(c - b'0');
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests;
