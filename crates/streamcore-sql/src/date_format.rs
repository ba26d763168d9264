//! `DATE_FORMAT`'s patterns: a Java `SimpleDateFormat` pattern (`yyyy-MM-dd HH:mm`) read once
//! at planning into [`DatePattern`], which formats a timestamp without parsing the pattern per
//! row.
//!
//! Patterns made of numeric fields (`yyyy`, `yy`, `M`, `MM`, `d`, `dd`, `H`, `HH`, `m`, `mm`,
//! `s`, `ss`, `S`…`SSS`) and literal text — the ones Nexmark and most jobs use — are written
//! digit by digit into the result (a civil date from the day number, no time-zone lookup: SQL
//! timestamps here are zone-less). Any other field (month and day names, `a`, `D`, `h`, more
//! than three `S`) formats through chrono with its items parsed once. Both give the same text:
//! a property test checks it.
//!
//! A numeric pattern's text changes only when its finest field does (`yyyy-MM-dd` once a day,
//! `HH:mm` once a minute), and a stream's timestamps mostly stay in one such unit from row to
//! row: each thread keeps the last text of a few patterns with the unit it was made for, and
//! a row in the same unit takes it instead of formatting again.

use chrono::format::{Item, StrftimeItems};
use chrono::DateTime;
use compact_str::CompactString;
use std::cell::RefCell;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// One element of a Java date pattern: a run of one pattern letter, or a literal character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// A pattern letter and how many times it repeats (`yyyy` is `('y', 4)`).
    Field(char, usize),
    /// Text written as is (quoted text, or a character that is not a pattern letter).
    Literal(char),
    /// A letter outside quotes that is not one of the fields read here (`w`, `u`, `z`…):
    /// a pattern letter to Java, refused by [`DatePattern::parse`].
    Letter(char),
}

/// The tokens of a Java `SimpleDateFormat` pattern; quoted text (`'T'`) is literal.
fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text up to the next quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(Token::Literal(chars[j]));
                j += 1;
            }
            i = j + 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            'y' | 'M' | 'd' | 'H' | 'h' | 'm' | 's' | 'S' | 'a' | 'E' | 'D' => {
                out.push(Token::Field(c, n))
            }
            other if other.is_ascii_alphabetic() => {
                out.extend(std::iter::repeat_n(Token::Letter(other), n))
            }
            other => out.extend(std::iter::repeat_n(Token::Literal(other), n)),
        }
        i += n;
    }
    out
}

/// Translates a Java `SimpleDateFormat` pattern (`yyyy-MM-dd HH:mm:ss.SSS`) into chrono's
/// `strftime` form. Quoted text (`'T'`) is kept literally.
///
/// ```
/// use streamcore_sql::date_format::java_to_chrono;
/// assert_eq!(java_to_chrono("yyyy-MM-dd'T'HH:mm"), "%Y-%m-%dT%H:%M");
/// ```
pub fn java_to_chrono(pattern: &str) -> String {
    let mut out = String::new();
    for token in tokens(pattern) {
        match token {
            Token::Field(c, n) => out.push_str(match (c, n) {
                ('y', 2) => "%y",
                ('y', _) => "%Y",
                ('M', 1) => "%-m",
                ('M', 2) => "%m",
                ('M', 3) => "%b",
                ('M', _) => "%B",
                ('d', 1) => "%-d",
                ('d', _) => "%d",
                ('H', 1) => "%-H",
                ('H', _) => "%H",
                ('h', 1) => "%-I",
                ('h', _) => "%I",
                ('m', 1) => "%-M",
                ('m', _) => "%M",
                ('s', 1) => "%-S",
                ('s', _) => "%S",
                ('S', 1..=3) => "%3f",
                ('S', _) => "%6f",
                ('a', _) => "%p",
                ('E', 1..=3) => "%a",
                ('E', _) => "%A",
                ('D', 1) => "%-j",
                _ => "%j", // 'DDD'
            }),
            Token::Literal('%') => out.push_str("%%"),
            Token::Literal(c) | Token::Letter(c) => out.push(c),
        }
    }
    out
}

/// A numeric field written digit by digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Year4,
    Year2,
    /// Month, day, hour, minute or second; `pad` writes two digits.
    Number {
        field: Field,
        pad: bool,
    },
    Millis,
    Literal(char),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// A `DATE_FORMAT` pattern read once.
///
/// ```
/// use streamcore_sql::date_format::DatePattern;
/// let day = DatePattern::new("yyyy-MM-dd");
/// // 2026-12-06 10:30:00.250 UTC
/// assert_eq!(day.format_millis(1_796_553_000_250).unwrap(), "2026-12-06");
/// let t = DatePattern::new("HH:mm:ss.SSS 'at' d/M/yy");
/// assert_eq!(t.format_millis(1_796_553_000_250).unwrap(), "10:30:00.250 at 6/12/26");
/// ```
#[derive(Clone)]
pub struct DatePattern {
    /// The Java pattern as written (for plans and messages).
    java: Box<str>,
    /// The pieces, when every field is numeric.
    pieces: Option<Box<[Piece]>>,
    /// chrono's items for the other patterns (and for years outside 0–9999).
    chrono: Box<[Item<'static>]>,
    /// The length in milliseconds of the pattern's finest field (a day for `yyyy-MM-dd`):
    /// timestamps in one such unit have one text. Numeric patterns only.
    unit_ms: Option<i64>,
    /// Names this pattern in the per-thread cache of recent texts (unique per pattern read).
    id: u64,
}

/// Per thread: recent texts, each with the pattern id and the unit (timestamp ÷ the pattern's
/// unit) it was made for; a pattern has one slot (its id modulo the slot count).
struct RecentTexts([(u64, i64, CompactString); RECENT_SLOTS]);

const RECENT_SLOTS: usize = 4;

thread_local! {
    static RECENT: RefCell<RecentTexts> = const {
        RefCell::new(RecentTexts(
            [const { (0, 0, CompactString::const_new("")) }; RECENT_SLOTS],
        ))
    };
}

/// Pattern ids; 0 marks an empty slot.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl fmt::Debug for DatePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatePattern({:?})", self.java)
    }
}

impl DatePattern {
    /// Reads the Java pattern `java`.
    pub fn new(java: &str) -> DatePattern {
        let pieces: Option<Vec<Piece>> = tokens(java)
            .into_iter()
            .map(|token| {
                let number = |field, n: usize| Piece::Number { field, pad: n > 1 };
                Some(match token {
                    Token::Literal(c) | Token::Letter(c) => Piece::Literal(c),
                    Token::Field('y', 2) => Piece::Year2,
                    Token::Field('y', _) => Piece::Year4,
                    Token::Field('M', n @ 1..=2) => number(Field::Month, n),
                    Token::Field('d', n) => number(Field::Day, n),
                    Token::Field('H', n) => number(Field::Hour, n),
                    Token::Field('m', n) => number(Field::Minute, n),
                    Token::Field('s', n) => number(Field::Second, n),
                    Token::Field('S', 1..=3) => Piece::Millis,
                    Token::Field(..) => return None,
                })
            })
            .collect();
        let chrono = StrftimeItems::new(&java_to_chrono(java))
            .parse_to_owned()
            .unwrap_or_default()
            .into_boxed_slice();
        let unit_ms = pieces.as_ref().map(|pieces| {
            pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Year4 | Piece::Year2 => 86_400_000,
                    Piece::Number { field, .. } => match field {
                        Field::Month | Field::Day => 86_400_000,
                        Field::Hour => 3_600_000,
                        Field::Minute => 60_000,
                        Field::Second => 1000,
                    },
                    Piece::Millis => 1,
                    Piece::Literal(_) => 86_400_000,
                })
                .min()
                .unwrap_or(86_400_000)
        });
        DatePattern {
            java: java.into(),
            pieces: pieces.map(Vec::into_boxed_slice),
            chrono,
            unit_ms,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Reads the Java pattern `java` as [`DatePattern::new`] does, refusing what it would not
    /// write as Flink (Java's `DateTimeFormatter`) does: a letter it does not know (`w`, `u`,
    /// `z`…: quote literal text, `'T'`), a fraction of other than three or six digits (`S`:
    /// Java writes tenths), `DD` or more than three `D`, and five `M` or `E` (narrow names).
    ///
    /// ```
    /// use streamcore_sql::date_format::DatePattern;
    /// assert!(DatePattern::parse("yyyy-MM-dd'T'HH:mm:ss.SSS").is_ok());
    /// assert!(DatePattern::parse("yyyy-ww").is_err());
    /// ```
    pub fn parse(java: &str) -> Result<DatePattern, String> {
        for token in tokens(java) {
            match token {
                Token::Letter(c) => {
                    return Err(format!(
                        "the pattern letter `{c}` of '{java}' is not supported (y, M, d, H, h, m, s, S, a, E and D are; quote literal text: 'T')"
                    ))
                }
                Token::Field('S', n) if n != 3 && n != 6 => {
                    return Err(format!(
                        "`{}` in '{java}' is not supported (SSS: milliseconds, SSSSSS: microseconds)",
                        "S".repeat(n)
                    ))
                }
                Token::Field('D', n) if n == 2 || n > 3 => {
                    return Err(format!(
                        "`{}` in '{java}' is not supported (D or DDD: the day of the year)",
                        "D".repeat(n)
                    ))
                }
                Token::Field(c @ ('M' | 'E'), n) if n >= 5 => {
                    return Err(format!(
                        "`{}` in '{java}' (a narrow name) is not supported",
                        c.to_string().repeat(n)
                    ))
                }
                _ => {}
            }
        }
        Ok(DatePattern::new(java))
    }

    /// The Java pattern as written.
    pub fn java(&self) -> &str {
        &self.java
    }

    /// The timestamp `ms` (milliseconds since the epoch) as this pattern writes it; `None`
    /// outside chrono's range of dates.
    pub fn format_millis(&self, ms: i64) -> Option<CompactString> {
        let Some(unit_ms) = self.unit_ms else {
            return self.format_uncached(ms);
        };
        let unit = ms.div_euclid(unit_ms);
        let slot = (self.id % RECENT_SLOTS as u64) as usize;
        let recent = RECENT.with_borrow(|r| {
            let (id, u, text) = &r.0[slot];
            (*id == self.id && *u == unit).then(|| text.clone())
        });
        if recent.is_some() {
            return recent;
        }
        let text = self.format_uncached(ms)?;
        RECENT.with_borrow_mut(|r| r.0[slot] = (self.id, unit, text.clone()));
        Some(text)
    }

    /// [`DatePattern::format_millis`] without the per-thread cache.
    fn format_uncached(&self, ms: i64) -> Option<CompactString> {
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        if let Some(pieces) = &self.pieces {
            let (year, month, day) = civil_from_days(days);
            if (0..=9999).contains(&year) {
                let (second, millis) = (in_day / 1000, in_day % 1000);
                let mut out = CompactString::default();
                for piece in pieces.iter() {
                    match *piece {
                        Piece::Literal(c) => out.push(c),
                        Piece::Year4 => push_digits(&mut out, year as u32, 4),
                        Piece::Year2 => push_digits(&mut out, year as u32 % 100, 2),
                        Piece::Millis => push_digits(&mut out, millis as u32, 3),
                        Piece::Number { field, pad } => {
                            let v = match field {
                                Field::Month => month,
                                Field::Day => day,
                                Field::Hour => (second / 3600) as u32,
                                Field::Minute => (second / 60 % 60) as u32,
                                Field::Second => (second % 60) as u32,
                            };
                            push_digits(&mut out, v, if pad || v >= 10 { 2 } else { 1 });
                        }
                    }
                }
                return Some(out);
            }
        }
        let t = DateTime::from_timestamp_millis(ms)?;
        let mut out = CompactString::default();
        write!(out, "{}", t.format_with_items(self.chrono.iter())).ok()?;
        Some(out)
    }
}

/// Appends `v` as `width` decimal digits (zero-padded; `v` < 10^width).
#[inline]
fn push_digits(out: &mut CompactString, v: u32, width: u32) {
    let mut buf = [b'0'; 4];
    let mut v = v;
    for slot in buf[..width as usize].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // ASCII digits.
    out.push_str(std::str::from_utf8(&buf[..width as usize]).unwrap_or_default());
}

/// The proleptic Gregorian `(year, month, day)` of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_chrono(java: &str, ms: i64) -> String {
        DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format(&java_to_chrono(java))
            .to_string()
    }

    const PATTERNS: [&str; 8] = [
        "yyyy-MM-dd",
        "HH:mm",
        "yyyy-MM-dd'T'HH:mm:ss.SSS",
        "d/M/yy H:m:s.S",
        "yyyyMMddHH",
        "'day' dd 'of' MMM yyyy, EEE",
        "hh:mm a",
        "D",
    ];

    #[test]
    fn java_patterns() {
        assert_eq!(java_to_chrono("yyyy-MM-dd"), "%Y-%m-%d");
        assert_eq!(java_to_chrono("HH:mm"), "%H:%M");
        assert_eq!(
            java_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(java_to_chrono("100%"), "100%%");
    }

    #[test]
    fn numeric_patterns_take_the_fast_path() {
        assert!(DatePattern::new("yyyy-MM-dd HH:mm:ss.SSS").pieces.is_some());
        assert!(DatePattern::new("MMM yyyy").pieces.is_none());
        assert!(DatePattern::new("hh:mm a").pieces.is_none());
    }

    #[test]
    fn edges_of_days_years_and_the_epoch() {
        for ms in [
            0,
            -1,
            86_399_999,
            951_782_400_000,   // 2000-02-29
            4_107_542_399_999, // 2100-02-28 23:59:59.999
            -62_135_596_800_000,
            253_402_300_799_999, // 9999-12-31 23:59:59.999
            253_402_300_800_000, // 10000-01-01: chrono's form
        ] {
            for java in PATTERNS {
                assert_eq!(
                    DatePattern::new(java).format_millis(ms).unwrap(),
                    by_chrono(java, ms),
                    "{java} at {ms}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn same_text_as_chrono(ms in -62_000_000_000_000i64..260_000_000_000_000, p in 0..PATTERNS.len()) {
            let java = PATTERNS[p];
            prop_assert_eq!(DatePattern::new(java).format_millis(ms).unwrap(), by_chrono(java, ms));
        }

        /// Texts kept from earlier rows are what formatting gives: for timestamps close
        /// together (mostly in one unit), of several patterns at once on one thread (more
        /// patterns than cache slots, so that they evict each other).
        #[test]
        fn recent_texts_are_the_formatted_ones(
            start in -62_000_000_000_000i64..260_000_000_000_000,
            steps in proptest::collection::vec((0..PATTERNS.len() + 2, -90_000i64..90_000), 1..40),
        ) {
            let mut patterns: Vec<DatePattern> = PATTERNS.iter().map(|p| DatePattern::new(p)).collect();
            patterns.push(DatePattern::new("yyyy-MM-dd"));
            patterns.push(DatePattern::new("HH:mm"));
            let mut ms = start;
            for (p, step) in steps {
                ms += step;
                let pattern = &patterns[p];
                prop_assert_eq!(pattern.format_millis(ms), pattern.format_uncached(ms), "{:?} {}", pattern, ms);
            }
        }
    }
}
