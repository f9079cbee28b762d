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
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year().clamp(0, 9999),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
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
