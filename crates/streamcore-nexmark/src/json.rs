//! JSON lines in the Flink benchmark's nested layout, for other engines to read (and back).
//!
//! One event per line:
//! `{"event_type":2,"person":null,"auction":null,"bid":{"auction":1000,…,"dateTime":"2015-07-15 00:00:00.000","extra":"…"}}`
//! — `event_type` 0/1/2 and the three nullable objects of reference/queries.md §0, fields camelCase in
//! DDL order, `dateTime`/`expires` as `YYYY-MM-DD HH:MM:SS.fff` in UTC (Flink's SQL timestamp
//! text, which its JSON format reads into `TIMESTAMP(3)`).
//!
//! Writing is by hand into a byte buffer: integers with `itoa`, strings copied (escaped only
//! when they need it), and the date formatted by hand (days → civil date, Howard Hinnant's
//! algorithm) with a cache of the last timestamp — at benchmark rates thousands of events
//! share a millisecond, and date formatting was 64% of bid generation time in RisingWave
//! (reference/pitfalls.md #11).
//!
//! Parsing accepts fields in any order, whitespace, `null` for absent objects, unknown fields
//! (skipped), bids without `channel`/`url` (Beam's layout; read as empty), `dateTime` as text
//! (with `' '` or `'T'`, 0–9 fractional digits, optional `Z`) or as epoch milliseconds, and
//! reports errors as [`DecodeError`]s naming the field (`bid.price`).

use crate::generator::NexmarkGenerator;
use crate::model::{Auction, Bid, EventKind, NexmarkEvent, Person};
use compact_str::CompactString;
use std::borrow::Cow;
use std::io::{self, Write};
use streamcore::decode::DecodeError;
use streamcore::Timestamp;

/// Length of `YYYY-MM-DD HH:MM:SS.fff`.
pub const DATE_TIME_LEN: usize = 23;

const MS_PER_DAY: i64 = 86_400_000;

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (month <= 2) as i64, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[inline]
fn two(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

/// `ms` as `YYYY-MM-DD HH:MM:SS.fff` when its year is in `0..=9999`.
#[inline]
fn date_time_bytes(ms: i64) -> Option<[u8; DATE_TIME_LEN]> {
    let days = ms.div_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut b = *b"0000-00-00 00:00:00.000";
    let y = year as u32;
    two(&mut b, 0, y / 100);
    two(&mut b, 2, y % 100);
    two(&mut b, 5, month);
    two(&mut b, 8, day);
    let t = ms.rem_euclid(MS_PER_DAY) as u32;
    let (secs, milli) = (t / 1000, t % 1000);
    two(&mut b, 11, secs / 3600);
    two(&mut b, 14, secs / 60 % 60);
    two(&mut b, 17, secs % 60);
    b[20] = b'0' + (milli / 100) as u8;
    two(&mut b, 21, milli % 100);
    Some(b)
}

/// Appends `ms` (UTC) as `YYYY-MM-DD HH:MM:SS.fff`. Years outside `0..=9999` are written
/// with as many digits as they need and a leading `-` when negative.
pub fn write_date_time(ms: i64, out: &mut Vec<u8>) {
    if let Some(b) = date_time_bytes(ms) {
        out.extend_from_slice(&b);
        return;
    }
    let (year, ..) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    if year < 0 {
        out.push(b'-');
    }
    let digits = year.unsigned_abs().to_string();
    for _ in digits.len()..4 {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
    // The Gregorian calendar repeats every 400 years (146,097 days): the same instant
    // shifted into 1970..2370 has the same month, day and time.
    let shifted = ms.rem_euclid(146_097 * MS_PER_DAY);
    let b = date_time_bytes(shifted).expect("a year in 1970..2370");
    out.extend_from_slice(&b[4..]);
}

/// `ms` (UTC) as `YYYY-MM-DD HH:MM:SS.fff`.
///
/// ```
/// use streamcore_nexmark::json::format_date_time;
/// assert_eq!(format_date_time(0), "1970-01-01 00:00:00.000");
/// assert_eq!(format_date_time(1_700_000_000_123), "2023-11-14 22:13:20.123");
/// assert_eq!(format_date_time(-1), "1969-12-31 23:59:59.999");
/// ```
pub fn format_date_time(ms: i64) -> String {
    let mut out = Vec::with_capacity(DATE_TIME_LEN);
    write_date_time(ms, &mut out);
    String::from_utf8(out).expect("ASCII")
}

fn digits(b: &[u8], at: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *at;
    let mut v: i64 = 0;
    while *at < b.len() && b[*at].is_ascii_digit() && *at - start < max {
        v = v * 10 + (b[*at] - b'0') as i64;
        *at += 1;
    }
    (*at - start >= min).then_some(v)
}

fn expect_byte(b: &[u8], at: &mut usize, c: u8) -> Option<()> {
    (b.get(*at) == Some(&c)).then(|| *at += 1)
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff…]` (UTC; `T` instead of the space, 0–9 fractional
/// digits — truncated to milliseconds — and a trailing `Z` are accepted) into milliseconds
/// since the epoch. `None` if malformed or out of range.
///
/// ```
/// use streamcore_nexmark::json::parse_date_time;
/// assert_eq!(parse_date_time("2023-11-14 22:13:20.123"), Some(1_700_000_000_123));
/// assert_eq!(parse_date_time("1970-01-01T00:00:01Z"), Some(1000));
/// assert_eq!(parse_date_time("1970-02-30 00:00:00"), None);
/// ```
pub fn parse_date_time(text: &str) -> Option<i64> {
    parse_date_time_bytes(text.as_bytes())
}

/// [`parse_date_time`] of the text's bytes (a JSON scanner's raw string: no UTF-8 check
/// needed, anything but ASCII digits and separators is refused).
pub fn parse_date_time_bytes(b: &[u8]) -> Option<i64> {
    if let Some(ms) = b.try_into().ok().and_then(parse_canonical_date_time) {
        return Some(ms);
    }
    parse_any_date_time(b)
}

/// `YYYY-MM-DD HH:MM:SS.fff` exactly (`T` instead of the space too): the form Flink and the
/// generator write, parsed without a loop — its 17 digits checked together. `None` for
/// anything else, which [`parse_date_time_bytes`] then parses the general way.
///
/// ```
/// use streamcore_nexmark::json::parse_canonical_date_time;
/// assert_eq!(parse_canonical_date_time(b"2023-11-14 22:13:20.123"), Some(1_700_000_000_123));
/// assert_eq!(parse_canonical_date_time(b"2023-11-14 22:13:20,123"), None);
/// ```
#[inline]
pub fn parse_canonical_date_time(b: &[u8; 23]) -> Option<i64> {
    const DIGITS: [usize; 17] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    let d = |i: usize| b[i].wrapping_sub(b'0');
    let separators = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.';
    if !separators || DIGITS.iter().fold(0, |bad, &i| bad | u8::from(d(i) > 9)) != 0 {
        return None;
    }
    let two = |i: usize| d(i) as u32 * 10 + d(i + 1) as u32;
    let year = (two(0) * 100 + two(2)) as i64;
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11) as i64, two(14) as i64, two(17) as i64);
    let milli = (two(20) * 10 + d(22) as u32) as i64;
    if !valid_date(year, month, day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * MS_PER_DAY
            + ((hour * 60 + minute) * 60 + second) * 1000
            + milli,
    )
}

/// A month of `1..=12` and a day that month of that year has.
fn valid_date(year: i64, month: u32, day: u32) -> bool {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    (1..=12).contains(&month) && day >= 1 && day <= month_days[month as usize - 1]
}

/// [`parse_date_time_bytes`] of any accepted form.
fn parse_any_date_time(b: &[u8]) -> Option<i64> {
    let mut at = 0;
    let negative = match b.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let year = digits(b, &mut at, 4, 12)?;
    let year = if negative { -year } else { year };
    expect_byte(b, &mut at, b'-')?;
    let month = digits(b, &mut at, 2, 2)? as u32;
    expect_byte(b, &mut at, b'-')?;
    let day = digits(b, &mut at, 2, 2)? as u32;
    match b.get(at) {
        Some(b' ' | b'T') => at += 1,
        _ => return None,
    }
    let hour = digits(b, &mut at, 2, 2)?;
    expect_byte(b, &mut at, b':')?;
    let minute = digits(b, &mut at, 2, 2)?;
    expect_byte(b, &mut at, b':')?;
    let second = digits(b, &mut at, 2, 2)?;
    let mut milli = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let fraction = digits(b, &mut at, 1, 9)?;
        let n = at - start;
        milli = if n >= 3 {
            fraction / 10i64.pow(n as u32 - 3)
        } else {
            fraction * 10i64.pow(3 - n as u32)
        };
    }
    if b.get(at) == Some(&b'Z') {
        at += 1;
    }
    if at != b.len() || !valid_date(year, month, day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let ms = days_from_civil(year, month, day) as i128 * MS_PER_DAY as i128
        + ((hour * 60 + minute) * 60 + second) as i128 * 1000
        + milli as i128;
    i64::try_from(ms).ok()
}

/// Serde support for timestamps as `YYYY-MM-DD HH:MM:SS.fff` text (reading also accepts what
/// [`parse_date_time`] accepts, and integer epoch milliseconds).
pub mod serde_date_time {
    use super::{format_date_time, parse_date_time};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;
    use streamcore::Timestamp;

    /// Writes `t` as text.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_date_time(t.0))
    }

    /// Reads text or epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp `YYYY-MM-DD HH:MM:SS.fff` or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                parse_date_time(v)
                    .map(Timestamp)
                    .ok_or_else(|| E::custom(format!("invalid timestamp `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

// ------------------------------------------------------------------------------------------
// Writing

/// Writes events as JSON, caching the formatted timestamps.
///
/// ```
/// use streamcore_nexmark::{json::JsonWriter, GeneratorConfig, NexmarkGenerator};
/// let g = NexmarkGenerator::new(GeneratorConfig::default()).unwrap();
/// let mut w = JsonWriter::new();
/// let mut line = Vec::new();
/// w.write_event(&g.event(0), &mut line);
/// let text = String::from_utf8(line).unwrap();
/// assert!(text.starts_with(r#"{"event_type":0,"person":{"id":1000,"name":"#));
/// assert!(text.ends_with(r#""auction":null,"bid":null}"#));
/// ```
#[derive(Clone, Debug, Default)]
pub struct JsonWriter {
    /// Last formatted `dateTime` and `expires` (index 1), with their millisecond values.
    cache: [Option<(i64, [u8; DATE_TIME_LEN])>; 2],
}

impl JsonWriter {
    /// A writer with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `event` as one JSON object (no newline).
    pub fn write_event(&mut self, event: &NexmarkEvent, out: &mut Vec<u8>) {
        match event {
            NexmarkEvent::Person(p) => {
                out.extend_from_slice(br#"{"event_type":0,"person":{"id":"#);
                write_int(out, p.id);
                out.extend_from_slice(br#","name":"#);
                write_str(out, &p.name);
                out.extend_from_slice(br#","emailAddress":"#);
                write_str(out, &p.email_address);
                out.extend_from_slice(br#","creditCard":"#);
                write_str(out, &p.credit_card);
                out.extend_from_slice(br#","city":"#);
                write_str(out, &p.city);
                out.extend_from_slice(br#","state":"#);
                write_str(out, &p.state);
                out.extend_from_slice(br#","dateTime":"#);
                self.write_ts(0, p.date_time, out);
                out.extend_from_slice(br#","extra":"#);
                write_str(out, &p.extra);
                out.extend_from_slice(br#"},"auction":null,"bid":null}"#);
            }
            NexmarkEvent::Auction(a) => {
                out.extend_from_slice(br#"{"event_type":1,"person":null,"auction":{"id":"#);
                write_int(out, a.id);
                out.extend_from_slice(br#","itemName":"#);
                write_str(out, &a.item_name);
                out.extend_from_slice(br#","description":"#);
                write_str(out, &a.description);
                out.extend_from_slice(br#","initialBid":"#);
                write_int(out, a.initial_bid);
                out.extend_from_slice(br#","reserve":"#);
                write_int(out, a.reserve);
                out.extend_from_slice(br#","dateTime":"#);
                self.write_ts(0, a.date_time, out);
                out.extend_from_slice(br#","expires":"#);
                self.write_ts(1, a.expires, out);
                out.extend_from_slice(br#","seller":"#);
                write_int(out, a.seller);
                out.extend_from_slice(br#","category":"#);
                write_int(out, a.category);
                out.extend_from_slice(br#","extra":"#);
                write_str(out, &a.extra);
                out.extend_from_slice(br#"},"bid":null}"#);
            }
            NexmarkEvent::Bid(b) => {
                out.extend_from_slice(
                    br#"{"event_type":2,"person":null,"auction":null,"bid":{"auction":"#,
                );
                write_int(out, b.auction);
                out.extend_from_slice(br#","bidder":"#);
                write_int(out, b.bidder);
                out.extend_from_slice(br#","price":"#);
                write_int(out, b.price);
                out.extend_from_slice(br#","channel":"#);
                write_str(out, &b.channel);
                out.extend_from_slice(br#","url":"#);
                write_str(out, &b.url);
                out.extend_from_slice(br#","dateTime":"#);
                self.write_ts(0, b.date_time, out);
                out.extend_from_slice(br#","extra":"#);
                write_str(out, &b.extra);
                out.extend_from_slice(b"}}");
            }
        }
    }

    /// Appends `event` as one JSON line (with `\n`).
    pub fn write_line(&mut self, event: &NexmarkEvent, out: &mut Vec<u8>) {
        self.write_event(event, out);
        out.push(b'\n');
    }

    #[inline]
    fn write_ts(&mut self, slot: usize, t: Timestamp, out: &mut Vec<u8>) {
        out.push(b'"');
        match &self.cache[slot] {
            Some((ms, text)) if *ms == t.0 => out.extend_from_slice(text),
            _ => match date_time_bytes(t.0) {
                Some(text) => {
                    out.extend_from_slice(&text);
                    self.cache[slot] = Some((t.0, text));
                }
                None => write_date_time(t.0, out),
            },
        }
        out.push(b'"');
    }
}

#[inline]
fn write_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends `s` as a JSON string.
#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// Whether any byte is a control character, `"` or `\`; eight bytes at a time (SWAR: a
/// byte below `n` ≤ 128 makes `(x - n·0x01…) & !x` set its high bit; the test is exact for
/// "any byte").
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        if has_special(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Whether any of the eight bytes of `x` is a control character, `"` or `\` (exact for
/// "any byte"; see [`needs_escape`]).
#[inline]
fn has_special(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = x ^ (LO * b'"' as u64);
    let backslash = x ^ (LO * b'\\' as u64);
    let hits = (x.wrapping_sub(LO * 0x20) & !x)
        | (quote.wrapping_sub(LO) & !quote)
        | (backslash.wrapping_sub(LO) & !backslash);
    hits & HI != 0
}

#[cold]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

/// `event` as a JSON object (no newline).
pub fn to_json(event: &NexmarkEvent) -> String {
    let mut out = Vec::with_capacity(256);
    JsonWriter::new().write_event(event, &mut out);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Writes event numbers `numbers` of `generator` to `w` as JSON lines, buffered; returns how
/// many were written.
pub fn write_json_lines<W: Write>(
    generator: &NexmarkGenerator,
    numbers: impl IntoIterator<Item = u64>,
    mut w: W,
) -> io::Result<u64> {
    const FLUSH_AT: usize = 1 << 16;
    let mut writer = JsonWriter::new();
    let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
    let mut count = 0;
    for n in numbers {
        writer.write_line(&generator.event(n), &mut buf);
        count += 1;
        if buf.len() >= FLUSH_AT {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    w.flush()?;
    Ok(count)
}

// ------------------------------------------------------------------------------------------
// Parsing

/// Parses one event in the nested layout (a line without its newline).
///
/// ```
/// use streamcore_nexmark::json::parse_event;
/// let e = parse_event(r#"{"bid": {"price": 5, "auction": 1000, "bidder": 1001,
///     "dateTime": "2015-07-15 00:00:00.000", "extra": "", "channel": "Apple", "url": ""},
///     "event_type": 2}"#).unwrap();
/// assert_eq!(e.as_bid().unwrap().price, 5);
/// let err = parse_event(r#"{"event_type":2,"bid":{"price":"high"}}"#).unwrap_err();
/// assert_eq!(err.field, "bid.price");
/// ```
pub fn parse_event(text: &str) -> Result<NexmarkEvent, DecodeError> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        at: 0,
    };
    let event = p.event()?;
    p.ws();
    if p.at != p.b.len() {
        return Err(p.error("", "trailing characters after the event"));
    }
    Ok(event)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    at: usize,
}

/// Which object a field belongs to, for error paths.
#[derive(Clone, Copy)]
enum Obj {
    Top,
    Person,
    Auction,
    Bid,
}

impl Obj {
    fn path(self, field: &str) -> String {
        match self {
            Obj::Top => field.to_string(),
            Obj::Person => format!("person.{field}"),
            Obj::Auction => format!("auction.{field}"),
            Obj::Bid => format!("bid.{field}"),
        }
    }
}

fn missing(obj: Obj, field: &str) -> DecodeError {
    DecodeError {
        field: obj.path(field),
        reason: format!("missing field `{field}`"),
    }
}

impl<'a> Parser<'a> {
    fn error(&self, field: &str, what: &str) -> DecodeError {
        let found = match self.b.get(self.at) {
            None => "end of input".to_string(),
            Some(_) => {
                let rest = &self.text[self.at..];
                let end = rest.char_indices().nth(12).map_or(rest.len(), |(i, _)| i);
                format!("`{}`", &rest[..end])
            }
        };
        DecodeError {
            field: field.to_string(),
            reason: format!("{what} at byte {}, found {found}", self.at),
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.at).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Iterates the members of an object: calls `member(self, key)` positioned at each value;
    /// it returns `false` to have the value skipped.
    fn object(
        &mut self,
        obj: Obj,
        mut member: impl FnMut(&mut Self, &str) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        let name = match obj {
            Obj::Top => "",
            Obj::Person => "person",
            Obj::Auction => "auction",
            Obj::Bid => "bid",
        };
        if !self.eat(b'{') {
            return Err(self.error(name, "expected an object"));
        }
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error(name, "expected a field name"));
            }
            let key = self.string_raw().map_err(|why| self.error(name, why))?;
            if !self.eat(b':') {
                return Err(self.error(&obj.path(&key), "expected `:`"));
            }
            self.ws();
            if !member(self, &key)? {
                self.skip_value()
                    .map_err(|why| self.error(&obj.path(&key), why))?;
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(());
            }
            return Err(self.error(name, "expected `,` or `}`"));
        }
    }

    fn event(&mut self) -> Result<NexmarkEvent, DecodeError> {
        let mut event_type = None;
        let mut person = None;
        let mut auction = None;
        let mut bid = None;
        self.object(Obj::Top, |p, key| {
            match key {
                "event_type" => event_type = Some(p.int(Obj::Top, "event_type")?),
                "person" => person = p.nullable(Self::person)?,
                "auction" => auction = p.nullable(Self::auction)?,
                "bid" => bid = p.nullable(Self::bid)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let t = event_type.ok_or_else(|| missing(Obj::Top, "event_type"))?;
        let kind = EventKind::from_event_type(t).ok_or_else(|| DecodeError {
            field: "event_type".into(),
            reason: format!("{t} is not 0 (person), 1 (auction) or 2 (bid)"),
        })?;
        let extra = |field: &str, present: bool| match present {
            true => Err(DecodeError {
                field: field.into(),
                reason: format!("must be null when event_type is {t}"),
            }),
            false => Ok(()),
        };
        let absent = |field: &str| DecodeError {
            field: field.into(),
            reason: format!("missing or null, but event_type is {t}"),
        };
        match kind {
            EventKind::Person => {
                extra("auction", auction.is_some())?;
                extra("bid", bid.is_some())?;
                person
                    .map(NexmarkEvent::Person)
                    .ok_or_else(|| absent("person"))
            }
            EventKind::Auction => {
                extra("person", person.is_some())?;
                extra("bid", bid.is_some())?;
                auction
                    .map(NexmarkEvent::Auction)
                    .ok_or_else(|| absent("auction"))
            }
            EventKind::Bid => {
                extra("person", person.is_some())?;
                extra("auction", auction.is_some())?;
                bid.map(NexmarkEvent::Bid).ok_or_else(|| absent("bid"))
            }
        }
    }

    fn nullable<T>(
        &mut self,
        parse: fn(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.b[self.at..].starts_with(b"null") {
            self.at += 4;
            Ok(None)
        } else {
            parse(self).map(Some)
        }
    }

    fn person(&mut self) -> Result<Person, DecodeError> {
        let o = Obj::Person;
        let (mut id, mut name, mut email, mut card, mut city, mut state, mut dt, mut extra) =
            (None, None, None, None, None, None, None, None);
        self.object(o, |p, key| {
            match key {
                "id" => id = Some(p.int(o, key)?),
                "name" => name = Some(p.string(o, key)?),
                "emailAddress" => email = Some(p.string(o, key)?),
                "creditCard" => card = Some(p.string(o, key)?),
                "city" => city = Some(p.string(o, key)?),
                "state" => state = Some(p.string(o, key)?),
                "dateTime" => dt = Some(p.timestamp(o, key)?),
                "extra" => extra = Some(p.string(o, key)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Person {
            id: id.ok_or_else(|| missing(o, "id"))?,
            name: name.ok_or_else(|| missing(o, "name"))?,
            email_address: email.ok_or_else(|| missing(o, "emailAddress"))?,
            credit_card: card.ok_or_else(|| missing(o, "creditCard"))?,
            city: city.ok_or_else(|| missing(o, "city"))?,
            state: state.ok_or_else(|| missing(o, "state"))?,
            date_time: dt.ok_or_else(|| missing(o, "dateTime"))?,
            extra: extra.ok_or_else(|| missing(o, "extra"))?,
        })
    }

    fn auction(&mut self) -> Result<Auction, DecodeError> {
        let o = Obj::Auction;
        let (mut id, mut item, mut desc, mut initial, mut reserve) = (None, None, None, None, None);
        let (mut dt, mut expires, mut seller, mut category, mut extra) =
            (None, None, None, None, None);
        self.object(o, |p, key| {
            match key {
                "id" => id = Some(p.int(o, key)?),
                "itemName" => item = Some(p.string(o, key)?),
                "description" => desc = Some(p.string(o, key)?),
                "initialBid" => initial = Some(p.int(o, key)?),
                "reserve" => reserve = Some(p.int(o, key)?),
                "dateTime" => dt = Some(p.timestamp(o, key)?),
                "expires" => expires = Some(p.timestamp(o, key)?),
                "seller" => seller = Some(p.int(o, key)?),
                "category" => category = Some(p.int(o, key)?),
                "extra" => extra = Some(p.string(o, key)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Auction {
            id: id.ok_or_else(|| missing(o, "id"))?,
            item_name: item.ok_or_else(|| missing(o, "itemName"))?,
            description: desc.ok_or_else(|| missing(o, "description"))?,
            initial_bid: initial.ok_or_else(|| missing(o, "initialBid"))?,
            reserve: reserve.ok_or_else(|| missing(o, "reserve"))?,
            date_time: dt.ok_or_else(|| missing(o, "dateTime"))?,
            expires: expires.ok_or_else(|| missing(o, "expires"))?,
            seller: seller.ok_or_else(|| missing(o, "seller"))?,
            category: category.ok_or_else(|| missing(o, "category"))?,
            extra: extra.ok_or_else(|| missing(o, "extra"))?,
        })
    }

    fn bid(&mut self) -> Result<Bid, DecodeError> {
        let o = Obj::Bid;
        let (mut auction, mut bidder, mut price, mut channel, mut url, mut dt, mut extra) =
            (None, None, None, None, None, None, None);
        self.object(o, |p, key| {
            match key {
                "auction" => auction = Some(p.int(o, key)?),
                "bidder" => bidder = Some(p.int(o, key)?),
                "price" => price = Some(p.int(o, key)?),
                "channel" => channel = Some(p.string(o, key)?),
                "url" => url = Some(p.string(o, key)?),
                "dateTime" => dt = Some(p.timestamp(o, key)?),
                "extra" => extra = Some(p.string(o, key)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Bid {
            auction: auction.ok_or_else(|| missing(o, "auction"))?,
            bidder: bidder.ok_or_else(|| missing(o, "bidder"))?,
            price: price.ok_or_else(|| missing(o, "price"))?,
            channel: channel.unwrap_or_default(),
            url: url.unwrap_or_default(),
            date_time: dt.ok_or_else(|| missing(o, "dateTime"))?,
            extra: extra.ok_or_else(|| missing(o, "extra"))?,
        })
    }

    /// An integer field.
    fn int(&mut self, obj: Obj, field: &str) -> Result<i64, DecodeError> {
        self.int_raw()
            .ok_or_else(|| self.error(&obj.path(field), "expected an integer"))
    }

    fn int_raw(&mut self) -> Option<i64> {
        let start = self.at;
        let negative = self.b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let digits_start = self.at;
        let mut v: i64 = 0;
        while let Some(&c) = self.b.get(self.at) {
            if !c.is_ascii_digit() {
                break;
            }
            let d = (c - b'0') as i64;
            v = match v.checked_mul(10).and_then(|v| {
                if negative {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            }) {
                Some(v) => v,
                None => {
                    self.at = start;
                    return None;
                }
            };
            self.at += 1;
        }
        if self.at == digits_start || matches!(self.b.get(self.at), Some(b'.' | b'e' | b'E')) {
            self.at = start;
            return None;
        }
        Some(v)
    }

    /// A string field.
    fn string(&mut self, obj: Obj, field: &str) -> Result<CompactString, DecodeError> {
        if self.b.get(self.at) != Some(&b'"') {
            return Err(self.error(&obj.path(field), "expected a string"));
        }
        match self.string_raw() {
            Ok(s) => Ok(CompactString::from(s)),
            Err(why) => Err(self.error(&obj.path(field), why)),
        }
    }

    /// A timestamp field: text or epoch milliseconds.
    fn timestamp(&mut self, obj: Obj, field: &str) -> Result<Timestamp, DecodeError> {
        match self.b.get(self.at) {
            Some(b'"') => {
                let start = self.at;
                let text = self
                    .string_raw()
                    .map_err(|why| self.error(&obj.path(field), why))?;
                parse_date_time(&text).map(Timestamp).ok_or_else(|| {
                    self.at = start;
                    self.error(
                        &obj.path(field),
                        "expected a timestamp `YYYY-MM-DD HH:MM:SS.fff`",
                    )
                })
            }
            _ => self.int_raw().map(Timestamp).ok_or_else(|| {
                self.error(
                    &obj.path(field),
                    "expected a timestamp `YYYY-MM-DD HH:MM:SS.fff` or epoch milliseconds",
                )
            }),
        }
    }

    /// A string at `self.at` (which is `"`), unescaped; borrowed when it has no escapes.
    fn string_raw(&mut self) -> Result<Cow<'a, str>, &'static str> {
        let start = self.at + 1;
        let mut i = start;
        // Eight bytes at a time while none of them ends the string or needs a closer look.
        while let Some(chunk) = self.b.get(i..i + 8) {
            if has_special(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) {
                break;
            }
            i += 8;
        }
        loop {
            match self.b.get(i) {
                None => return Err("unterminated string"),
                Some(b'"') => {
                    self.at = i + 1;
                    return Ok(Cow::Borrowed(&self.text[start..i]));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => {
                    self.at = i;
                    return Err("control character in string");
                }
                Some(_) => i += 1,
            }
        }
        // Escapes: decode from here on.
        let mut s = String::from(&self.text[start..i]);
        loop {
            match self.b.get(i) {
                None => return Err("unterminated string"),
                Some(b'"') => {
                    self.at = i + 1;
                    return Ok(Cow::Owned(s));
                }
                Some(b'\\') => {
                    let c = match self.b.get(i + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4(i + 2).ok_or("invalid \\u escape")?;
                            i += 6;
                            let c = if (0xd800..0xdc00).contains(&hi) {
                                let lo = match (self.b.get(i), self.b.get(i + 1)) {
                                    (Some(b'\\'), Some(b'u')) => self.hex4(i + 2),
                                    _ => None,
                                }
                                .filter(|lo| (0xdc00..0xe000).contains(lo))
                                .ok_or("unpaired surrogate in \\u escape")?;
                                i += 6;
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            s.push(char::from_u32(c).ok_or("unpaired surrogate in \\u escape")?);
                            continue;
                        }
                        _ => {
                            self.at = i;
                            return Err("invalid escape");
                        }
                    };
                    s.push(c);
                    i += 2;
                }
                Some(&c) if c < 0x20 => {
                    self.at = i;
                    return Err("control character in string");
                }
                Some(_) => {
                    // Copy the run up to the next quote or backslash (whole UTF-8 sequences).
                    let run_end = self.b[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .map_or(self.b.len(), |p| i + p);
                    s.push_str(&self.text[i..run_end]);
                    i = run_end;
                }
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.b.get(at..at + 4)?;
        let mut v = 0;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }

    /// Skips any JSON value (of an unknown field).
    fn skip_value(&mut self) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'"') => self.string_raw().map(drop),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.b.get(self.at) {
                        None => return Err("unterminated object or array"),
                        Some(b'"') => {
                            self.string_raw()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                    }
                    self.at += 1;
                }
            }
            Some(b't' | b'f' | b'n') => {
                for lit in [&b"true"[..], b"false", b"null"] {
                    if self.b[self.at..].starts_with(lit) {
                        self.at += lit.len();
                        return Ok(());
                    }
                }
                Err("expected a value")
            }
            Some(b'-' | b'0'..=b'9') => {
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.b.get(self.at)
                {
                    self.at += 1;
                }
                Ok(())
            }
            _ => Err("expected a value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GeneratorConfig;

    #[test]
    fn escape_detection_is_exact() {
        let plain = "https://www.nexmark.com/ab_c/d/e/item.htm?query=1&channel_id=-5 é😀~\u{7f}";
        assert!(!needs_escape(plain.as_bytes()));
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..plain.len() {
                if !plain.is_char_boundary(at) {
                    continue;
                }
                let mut s = plain.to_string();
                s.insert(at, special);
                assert!(needs_escape(s.as_bytes()), "{s:?}");
            }
        }
        for b in 0u8..=127 {
            let s = [b'a', b'b', b'c', b'd', b'e', b'f', b'g', b];
            assert_eq!(needs_escape(&s), b < 0x20 || b == b'"' || b == b'\\', "{b}");
        }
    }

    #[test]
    fn known_instants() {
        for (ms, text) in [
            (0, "1970-01-01 00:00:00.000"),
            (1_700_000_000_123, "2023-11-14 22:13:20.123"),
            (1_436_918_400_000, "2015-07-15 00:00:00.000"),
            (951_782_400_000, "2000-02-29 00:00:00.000"),
            (-1, "1969-12-31 23:59:59.999"),
            (-62_135_596_800_000, "0001-01-01 00:00:00.000"),
            (253_402_300_799_999, "9999-12-31 23:59:59.999"),
            (253_402_300_800_000, "10000-01-01 00:00:00.000"),
            (-62_167_219_200_001, "-0001-12-31 23:59:59.999"),
        ] {
            assert_eq!(format_date_time(ms), text, "{ms}");
            assert_eq!(parse_date_time(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn date_time_parsing_variants() {
        assert_eq!(
            parse_date_time("2023-11-14 22:13:20"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_date_time("2023-11-14 22:13:20.1"),
            Some(1_700_000_000_100)
        );
        assert_eq!(
            parse_date_time("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2023-11-14 24:00:00",
            "2023-11-14 22:13:20.",
            "2023-11-14 22:13:20.123 ",
            "23-11-14 22:13:20",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_date_time("2024-02-29 00:00:00"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        for ms in [i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1] {
            let text = format_date_time(ms);
            assert_eq!(parse_date_time(&text), Some(ms), "{text}");
        }
    }

    #[test]
    fn writer_matches_serde_json() {
        let g = NexmarkGenerator::new(GeneratorConfig::default()).unwrap();
        let mut w = JsonWriter::new();
        for n in 0..2000 {
            let e = g.event(n);
            let mut ours = Vec::new();
            w.write_event(&e, &mut ours);
            let ours = String::from_utf8(ours).unwrap();
            assert_eq!(ours, serde_json::to_string(&e).unwrap());
            assert_eq!(parse_event(&ours).unwrap(), e);
        }
    }

    #[test]
    fn escapes_round_trip() {
        let e = NexmarkEvent::Bid(Bid {
            auction: -1,
            bidder: i64::MAX,
            price: i64::MIN,
            channel: "a\"b\\c\nd\u{1}é😀".into(),
            url: "/".into(),
            date_time: Timestamp(5),
            extra: "".into(),
        });
        let text = to_json(&e);
        assert!(text.contains(r#""a\"b\\c\nd\u0001é😀""#), "{text}");
        assert_eq!(parse_event(&text).unwrap(), e);
        assert_eq!(serde_json::from_str::<NexmarkEvent>(&text).unwrap(), e);
        let escaped = text
            .replace("é😀", r"\u00e9\ud83d\ude00")
            .replace("\"/\"", r#""\/""#);
        assert_eq!(parse_event(&escaped).unwrap(), e);
    }

    #[test]
    fn any_field_order_nulls_unknown_fields_and_whitespace() {
        let text = r#" { "extra_top": [1, {"x": "}"}], "bid" : { "extra":"x", "dateTime": 1000,
            "price":7 ,"bidder":2,"auction":1, "unknown": null}, "person": null,
            "event_type": 2 } "#;
        let e = parse_event(text).unwrap();
        assert_eq!(
            e,
            NexmarkEvent::Bid(Bid {
                auction: 1,
                bidder: 2,
                price: 7,
                channel: "".into(),
                url: "".into(),
                date_time: Timestamp(1000),
                extra: "x".into(),
            })
        );
    }

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| parse_event(text).unwrap_err().field;
        assert_eq!(field(r#"{"bid":null}"#), "event_type");
        assert_eq!(field(r#"{"event_type":7}"#), "event_type");
        assert_eq!(field(r#"{"event_type":2,"bid":null}"#), "bid");
        assert_eq!(
            field(r#"{"event_type":2,"bid":{"auction":1.5}}"#),
            "bid.auction"
        );
        assert_eq!(
            field(r#"{"event_type":0,"person":{"id":1,"name":2}}"#),
            "person.name"
        );
        assert_eq!(
            field(r#"{"event_type":1,"auction":{"expires":"tomorrow"}}"#),
            "auction.expires"
        );
        assert_eq!(field(r#"{"event_type":1,"auction":{}}"#), "auction.id");
        let err = parse_event(r#"{"event_type":2,"bid":{"auction":1}}"#).unwrap_err();
        assert_eq!(err.field, "bid.bidder");
        assert_eq!(
            err.to_string(),
            "field `bid.bidder`: missing field `bidder`"
        );
        assert_eq!(
            field(r#"{"event_type":2,"person":{},"bid":{}}"#),
            "person.id"
        );
        assert_eq!(field(r#"{"event_type":2"#), "");
        assert_eq!(field(r#"not json"#), "");
        let err = parse_event(r#"{"event_type":2,"bid":{"price":"x"}}"#).unwrap_err();
        assert!(err.reason.contains("expected an integer"), "{err}");
    }

    #[test]
    fn json_lines_writer_writes_one_line_per_event() {
        let g = NexmarkGenerator::new(GeneratorConfig::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(write_json_lines(&g, 0..3000, &mut out).unwrap(), 3000);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3000);
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(parse_event(line).unwrap(), g.event(n as u64));
        }
    }

    proptest::proptest! {
        /// The canonical form's parser agrees with the general one: on every timestamp the
        /// generator's format writes (years 0–9999), and on strings of that shape with any
        /// digits and separators (invalid months, days and times, wrong separators).
        #[test]
        fn canonical_date_times_parse_as_any_other(
            ms in 0i64..253_402_300_800_000,
            shape in proptest::collection::vec(
                proptest::prop_oneof![8 => proptest::char::range('0', '9'), 1 => proptest::sample::select(vec!['-', ':', ' ', 'T', '.', 'x'])],
                23..=23,
            ),
        ) {
            let text = format_date_time(ms);
            let bytes: &[u8; 23] = text.as_bytes().try_into().unwrap();
            proptest::prop_assert_eq!(parse_canonical_date_time(bytes), Some(ms));
            proptest::prop_assert_eq!(parse_any_date_time(bytes), Some(ms));
            let mut shaped: Vec<u8> = shape.iter().map(|&c| c as u8).collect();
            // Mostly the right separators, so that dates and times are what varies.
            for (at, sep) in [(4, b'-'), (7, b'-'), (13, b':'), (16, b':'), (19, b'.')] {
                if shaped[at] != b'x' {
                    shaped[at] = sep;
                }
            }
            let shaped: &[u8; 23] = shaped.as_slice().try_into().unwrap();
            proptest::prop_assert_eq!(parse_canonical_date_time(shaped), parse_any_date_time(shaped));
        }
    }
}
