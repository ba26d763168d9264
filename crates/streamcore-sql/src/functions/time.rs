//! Flink's date and time functions beyond the Nexmark set ([`TimeFunction`]): the current
//! time (`CURRENT_TIMESTAMP`, `NOW()`, `LOCALTIMESTAMP`, `CURRENT_DATE`), Unix seconds
//! (`UNIX_TIMESTAMP`, `FROM_UNIXTIME`), parsing (`TO_DATE`, `TO_TIMESTAMP(s, format)`),
//! arithmetic in calendar units (`TIMESTAMPADD`, `TIMESTAMPDIFF`) and rounding to a unit
//! (`FLOOR(ts TO HOUR)`, `CEIL(ts TO DAY)`).
//!
//! Timestamps are zone-less here and the session's time zone is UTC: `UNIX_TIMESTAMP('…')`
//! reads its text as UTC, `FROM_UNIXTIME` writes UTC. Formats are Java `SimpleDateFormat`
//! patterns (`yyyy-MM-dd HH:mm:ss`), read once at planning; they must be literals.

use super::{Arity, TimeUnit};
use crate::date_format::{java_to_chrono, DatePattern};
use crate::error::PlanError;
use crate::expr::{parse_timestamp_ms, EvalError, Expr};
use crate::types::SqlType;
use chrono::format::{Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime};
use std::sync::Arc;
use streamcore::row::{DataType, Scalar};

/// A date and time function of Flink's.
#[derive(Clone, Debug)]
pub enum TimeFunction {
    /// `CURRENT_TIMESTAMP`, `NOW()`, `LOCALTIMESTAMP`, `CURRENT_ROW_TIMESTAMP()`: the wall
    /// clock when the row is processed (not a time attribute: `PROCTIME()` is).
    Now,
    /// `CURRENT_DATE`: the date of the wall clock (UTC).
    CurrentDate,
    /// `UNIX_TIMESTAMP()`: the wall clock in seconds.
    UnixNow,
    /// `UNIX_TIMESTAMP(s[, format])`: the seconds of the text `s` (NULL if it does not parse).
    UnixTimestamp(Option<Arc<Format>>),
    /// `FROM_UNIXTIME(seconds[, format])`: the text of a time given in seconds (by default
    /// `yyyy-MM-dd HH:mm:ss`).
    FromUnixtime(Arc<DatePattern>),
    /// `TO_DATE(s[, format])`: the date of the text `s` (by default `yyyy-MM-dd`).
    ToDate(Option<Arc<Format>>),
    /// `TO_TIMESTAMP(s, format)` (the one-argument form is `ScalarFunction::ToTimestamp`).
    ToTimestamp(Arc<Format>),
    /// `TO_TIMESTAMP_LTZ(n[, precision])`: the instant `n` seconds (precision 0) or
    /// milliseconds (3, the default) after the epoch, as a UTC `TIMESTAMP(3)` (there is no
    /// `TIMESTAMP_LTZ`: the session's time zone is UTC).
    FromEpoch {
        /// `n` counts seconds, not milliseconds.
        seconds: bool,
    },
    /// `TIMESTAMPADD(unit, n, ts)`.
    Add(TimeUnit),
    /// `TIMESTAMPDIFF(unit, t1, t2)`: whole units from `t1` to `t2` (toward zero).
    Diff(TimeUnit),
    /// `FLOOR(ts TO unit)`.
    Floor(TimeUnit),
    /// `CEIL(ts TO unit)`.
    Ceil(TimeUnit),
}

/// A parsing format: chrono's form of a Java pattern.
#[derive(Debug)]
pub struct Format {
    chrono: String,
}

impl Format {
    fn new(java: &str) -> Format {
        Format {
            chrono: java_to_chrono(java),
        }
    }

    /// The text `s` as milliseconds since the epoch: a date and time, or a date alone
    /// (midnight).
    fn parse(&self, s: &str) -> Option<i64> {
        let mut p = Parsed::new();
        chrono::format::parse(&mut p, s, StrftimeItems::new(&self.chrono)).ok()?;
        // Fields the pattern leaves out take their first value (`yyyy-MM-dd HH`: minute 0),
        // as Java's parser gives them; a field the text set keeps its value (the setter
        // refuses a different one).
        let _ = p.set_month(1);
        let _ = p.set_day(1);
        if p.hour_div_12().is_none() && p.hour_mod_12().is_none() {
            let _ = p.set_hour(0);
        }
        let _ = p.set_minute(0);
        let _ = p.set_second(0);
        let t = NaiveDateTime::new(p.to_naive_date().ok()?, p.to_naive_time().ok()?);
        Some(t.and_utc().timestamp_millis())
    }
}

/// The names [`TimeFunction::resolve`] takes (`TIMESTAMPADD` and `TIMESTAMPDIFF` are bound by
/// the binder, whose first argument is a unit, not an expression).
pub const NAMES: &[&str] = &[
    "CURRENT_TIMESTAMP",
    "NOW",
    "LOCALTIMESTAMP",
    "CURRENT_ROW_TIMESTAMP",
    "CURRENT_DATE",
    "UNIX_TIMESTAMP",
    "FROM_UNIXTIME",
    "TO_DATE",
    "TO_TIMESTAMP_LTZ",
    "TIMESTAMPADD",
    "TIMESTAMPDIFF",
];

/// The format of argument `at`: a literal (or absent: `None`).
fn literal_format(
    name: &str,
    args: &[(Expr, SqlType)],
    at: usize,
) -> Result<Option<String>, PlanError> {
    match args.get(at) {
        None => Ok(None),
        Some((Expr::Literal(Scalar::Str(p)), _)) => Ok(Some(p.to_string())),
        Some(_) => Err(PlanError::unsupported(format!(
            "{name} with a format that is not a literal"
        ))),
    }
}

impl TimeFunction {
    /// The function `upper` (a name in upper case), its arity and result type; `None` if it
    /// is not one of these.
    pub fn resolve(
        upper: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(TimeFunction, Arity, SqlType), PlanError>> {
        let format = |at| literal_format(upper, args, at);
        let f = match upper {
            "CURRENT_TIMESTAMP" | "NOW" | "LOCALTIMESTAMP" | "CURRENT_ROW_TIMESTAMP" => {
                Ok((TimeFunction::Now, 0..=0, SqlType::TIMESTAMP))
            }
            "CURRENT_DATE" => Ok((
                TimeFunction::CurrentDate,
                0..=0,
                SqlType::Data(DataType::Date),
            )),
            "UNIX_TIMESTAMP" if args.is_empty() => {
                Ok((TimeFunction::UnixNow, 0..=0, SqlType::BIGINT))
            }
            "UNIX_TIMESTAMP" => format(1).map(|f| {
                (
                    TimeFunction::UnixTimestamp(f.map(|f| Arc::new(Format::new(&f)))),
                    1..=2,
                    SqlType::BIGINT,
                )
            }),
            "FROM_UNIXTIME" => format(1).and_then(|f| {
                let pattern = f.as_deref().unwrap_or("yyyy-MM-dd HH:mm:ss");
                let pattern = DatePattern::parse(pattern)
                    .map_err(|e| PlanError::invalid(format!("FROM_UNIXTIME: {e}")))?;
                Ok((
                    TimeFunction::FromUnixtime(Arc::new(pattern)),
                    1..=2,
                    SqlType::VARCHAR,
                ))
            }),
            "TO_TIMESTAMP_LTZ" => match args.get(1).map(|a| &a.0) {
                None | Some(Expr::Literal(Scalar::Int(3))) => Ok(false),
                Some(Expr::Literal(Scalar::Int(0))) => Ok(true),
                Some(_) => Err(PlanError::unsupported(
                    "TO_TIMESTAMP_LTZ with a precision other than a literal 0 (seconds) or 3 (milliseconds)",
                )),
            }
            .map(|seconds| {
                (
                    TimeFunction::FromEpoch { seconds },
                    1..=2,
                    SqlType::TIMESTAMP,
                )
            }),
            "TO_DATE" => format(1).map(|f| {
                (
                    TimeFunction::ToDate(f.map(|f| Arc::new(Format::new(&f)))),
                    1..=2,
                    SqlType::Data(DataType::Date),
                )
            }),
            _ => return None,
        };
        Some(f)
    }

    /// `TO_TIMESTAMP(s, format)`.
    pub fn to_timestamp(args: &[(Expr, SqlType)]) -> Result<TimeFunction, PlanError> {
        let f = literal_format("TO_TIMESTAMP", args, 1)?.unwrap_or_default();
        Ok(TimeFunction::ToTimestamp(Arc::new(Format::new(&f))))
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        match self {
            TimeFunction::Now => "CURRENT_TIMESTAMP",
            TimeFunction::CurrentDate => "CURRENT_DATE",
            TimeFunction::UnixNow | TimeFunction::UnixTimestamp(_) => "UNIX_TIMESTAMP",
            TimeFunction::FromUnixtime(_) => "FROM_UNIXTIME",
            TimeFunction::ToDate(_) => "TO_DATE",
            TimeFunction::ToTimestamp(_) => "TO_TIMESTAMP",
            TimeFunction::FromEpoch { .. } => "TO_TIMESTAMP_LTZ",
            TimeFunction::Add(_) => "TIMESTAMPADD",
            TimeFunction::Diff(_) => "TIMESTAMPDIFF",
            TimeFunction::Floor(_) => "FLOOR",
            TimeFunction::Ceil(_) => "CEIL",
        }
    }

    /// Whether equal arguments always give equal results.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            TimeFunction::Now | TimeFunction::CurrentDate | TimeFunction::UnixNow
        )
    }

    /// Checks the argument types (`want` reports a mismatch of argument `i`).
    pub fn check(
        &self,
        args: &[(Expr, SqlType)],
        want: impl Fn(usize, bool, &str) -> Result<(), PlanError>,
    ) -> Result<(), PlanError> {
        let temporal = |i: usize| args[i].1.is_temporal() || args[i].1 == SqlType::Null;
        match self {
            TimeFunction::UnixTimestamp(_)
            | TimeFunction::ToDate(_)
            | TimeFunction::ToTimestamp(_) => {
                for (i, (_, t)) in args.iter().enumerate() {
                    want(i, t.is_string(), "a string")?;
                }
                Ok(())
            }
            TimeFunction::FromUnixtime(_) => {
                want(
                    0,
                    args[0].1 == SqlType::BIGINT || args[0].1 == SqlType::Null,
                    "an integer (seconds)",
                )?;
                match args.get(1) {
                    Some(a) => want(1, a.1.is_string(), "a string"),
                    None => Ok(()),
                }
            }
            TimeFunction::FromEpoch { .. } => want(0, args[0].1.is_numeric(), "a number"),
            TimeFunction::Add(_) => {
                want(
                    0,
                    args[0].1 == SqlType::BIGINT || args[0].1 == SqlType::Null,
                    "an integer",
                )?;
                want(1, temporal(1), "a timestamp or a date")
            }
            TimeFunction::Diff(_) => {
                want(0, temporal(0), "a timestamp or a date")?;
                want(1, temporal(1), "a timestamp or a date")
            }
            TimeFunction::Floor(_) | TimeFunction::Ceil(_) => {
                want(0, temporal(0), "a timestamp or a date")
            }
            TimeFunction::Now | TimeFunction::CurrentDate | TimeFunction::UnixNow => Ok(()),
        }
    }

    /// Calls the function on arguments evaluated from `row`.
    pub fn call(&self, args: &[Expr], row: &[Scalar]) -> Result<Scalar, EvalError> {
        use Scalar::{Int, Null, Str};
        let arg = |i: usize| args[i].eval_cow(row);
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        Ok(match self {
            TimeFunction::Now => Scalar::TimestampMs(now()),
            TimeFunction::CurrentDate => Scalar::Date(now().div_euclid(86_400_000) as i32),
            TimeFunction::UnixNow => Int(now().div_euclid(1000)),
            TimeFunction::UnixTimestamp(format) => match &*arg(0)? {
                Str(s) => match format {
                    Some(f) => f.parse(s),
                    None => parse_timestamp_ms(s),
                }
                .map_or(Null, |ms| Int(ms.div_euclid(1000))),
                _ => Null,
            },
            TimeFunction::FromUnixtime(pattern) => match &*arg(0)? {
                Int(seconds) => seconds
                    .checked_mul(1000)
                    .and_then(|ms| pattern.format_millis(ms))
                    .map_or(Null, Str),
                _ => Null,
            },
            TimeFunction::ToDate(format) => match &*arg(0)? {
                Str(s) => match format {
                    Some(f) => f.parse(s),
                    None => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc().timestamp_millis()),
                }
                .map_or(Null, |ms| Scalar::Date(ms.div_euclid(86_400_000) as i32)),
                _ => Null,
            },
            TimeFunction::FromEpoch { seconds } => {
                // As Flink's `toTimestampData`: a double keeps its milliseconds, cut toward
                // zero below them; a decimal is cut to whole seconds (precision 0) or
                // milliseconds (3); a time outside years 0–9999 is NULL.
                const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31 23:59:59.999
                const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01 00:00:00
                let scale: i64 = if *seconds { 1000 } else { 1 };
                let ms = match &*arg(0)? {
                    Int(n) => n.checked_mul(scale),
                    Scalar::Float(f) => Some((f.get() * scale as f64).trunc())
                        .filter(|v| v.is_finite() && v.abs() < 9.2e18)
                        .map(|v| v as i64),
                    Scalar::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_i64(&d.trunc())
                        .and_then(|n| n.checked_mul(scale)),
                    _ => None,
                };
                ms.filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
                    .map_or(Null, Scalar::TimestampMs)
            }
            TimeFunction::ToTimestamp(format) => match &*arg(0)? {
                Str(s) => format.parse(s).map_or(Null, Scalar::TimestampMs),
                _ => Null,
            },
            TimeFunction::Add(unit) => {
                let (n, t) = (arg(0)?, arg(1)?);
                match (&*n, millis_of(&t)) {
                    (&Int(n), Some(ms)) => match add(ms, *unit, n) {
                        // A date plus hours is a time of day (Calcite types it TIMESTAMP).
                        Some(ms) if unit.is_sub_day() && matches!(*t, Scalar::Date(_)) => {
                            Scalar::TimestampMs(ms)
                        }
                        Some(ms) => same_kind(&t, ms),
                        None => {
                            return Err(EvalError(format!(
                                "TIMESTAMPADD: {t} plus {n} {unit:?} is out of range"
                            )))
                        }
                    },
                    _ => Null,
                }
            }
            TimeFunction::Diff(unit) => match (millis_of(&*arg(0)?), millis_of(&*arg(1)?)) {
                (Some(a), Some(b)) => diff(a, b, *unit).map_or(Null, Int),
                _ => Null,
            },
            TimeFunction::Floor(unit) | TimeFunction::Ceil(unit) => {
                let t = arg(0)?;
                let Some(ms) = millis_of(&t) else {
                    return Ok(Null);
                };
                let ceil = matches!(self, TimeFunction::Ceil(_));
                match round_to(ms, *unit, ceil) {
                    Some(ms) => same_kind(&t, ms),
                    None => Null,
                }
            }
        })
    }
}

/// A timestamp's or a date's milliseconds since the epoch.
fn millis_of(v: &Scalar) -> Option<i64> {
    match v {
        Scalar::TimestampMs(_) | Scalar::TimestampUs(_) | Scalar::Date(_) => {
            v.as_timestamp().map(|t| t.0)
        }
        _ => None,
    }
}

/// `ms` as a value of the kind of `like` (a date stays a date).
fn same_kind(like: &Scalar, ms: i64) -> Scalar {
    match like {
        Scalar::Date(_) => Scalar::Date(ms.div_euclid(86_400_000) as i32),
        Scalar::TimestampUs(us) => Scalar::TimestampUs(ms * 1000 + us.rem_euclid(1000)),
        _ => Scalar::TimestampMs(ms),
    }
}

/// The length of a unit of fixed length, in milliseconds (`None` for months and years).
fn fixed_ms(unit: TimeUnit) -> Option<i64> {
    Some(match unit {
        TimeUnit::Millisecond => 1,
        TimeUnit::Second => 1000,
        TimeUnit::Minute => 60_000,
        TimeUnit::Hour => 3_600_000,
        TimeUnit::Day | TimeUnit::DayOfWeek | TimeUnit::DayOfYear => 86_400_000,
        TimeUnit::Week => 7 * 86_400_000,
        TimeUnit::Month | TimeUnit::Quarter | TimeUnit::Year | TimeUnit::Epoch => return None,
    })
}

/// The months of a calendar unit.
fn months_of(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Quarter => 3,
        TimeUnit::Year => 12,
        _ => 1,
    }
}

/// `ms` plus `n` units (months keep their day, clamped to the month's last, as Java's
/// `plusMonths`).
fn add(ms: i64, unit: TimeUnit, n: i64) -> Option<i64> {
    if let Some(len) = fixed_ms(unit) {
        return ms.checked_add(n.checked_mul(len)?);
    }
    let t = DateTime::from_timestamp_millis(ms)?.naive_utc();
    let months = n.checked_mul(months_of(unit))?;
    let moved = if months >= 0 {
        t.checked_add_months(Months::new(u32::try_from(months).ok()?))?
    } else {
        t.checked_sub_months(Months::new(u32::try_from(-months).ok()?))?
    };
    Some(moved.and_utc().timestamp_millis())
}

/// Whole units from `a` to `b`, toward zero.
fn diff(a: i64, b: i64, unit: TimeUnit) -> Option<i64> {
    if let Some(len) = fixed_ms(unit) {
        return Some((b - a) / len);
    }
    let (ta, tb) = (
        DateTime::from_timestamp_millis(a)?.naive_utc(),
        DateTime::from_timestamp_millis(b)?.naive_utc(),
    );
    let mut months =
        (tb.year() as i64 * 12 + tb.month0() as i64) - (ta.year() as i64 * 12 + ta.month0() as i64);
    // A month counts once adding it (the day clamped to the month's last, as Flink's
    // `subtractMonths`) reaches `b`: January 31 to February 28 is a month.
    if months > 0 && add(a, TimeUnit::Month, months)? > b {
        months -= 1;
    } else if months < 0 && add(a, TimeUnit::Month, months)? < b {
        months += 1;
    }
    Some(months / months_of(unit))
}

/// `ms` rounded down (or up, `ceil`) to a whole `unit` (weeks start on Sunday, as Flink's).
fn round_to(ms: i64, unit: TimeUnit, ceil: bool) -> Option<i64> {
    let floor = match unit {
        TimeUnit::Week => {
            // 1970-01-01 was a Thursday: weeks start on the Sunday three days later.
            let shift = 3 * 86_400_000;
            (ms - shift).div_euclid(7 * 86_400_000) * 7 * 86_400_000 + shift
        }
        u => match fixed_ms(u) {
            Some(len) => ms.div_euclid(len) * len,
            None => {
                let t = DateTime::from_timestamp_millis(ms)?.naive_utc();
                let month0 = t.month0() - t.month0() % months_of(u).min(12) as u32;
                let month0 = if u == TimeUnit::Year { 0 } else { month0 };
                NaiveDate::from_ymd_opt(t.year(), month0 + 1, 1)?
                    .and_hms_opt(0, 0, 0)?
                    .and_utc()
                    .timestamp_millis()
            }
        },
    };
    if !ceil || floor == ms {
        return Some(floor);
    }
    add(floor, unit, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        parse_timestamp_ms(s).unwrap()
    }

    fn text(ms: i64) -> String {
        Scalar::TimestampMs(ms).to_string()
    }

    #[test]
    fn calendar_arithmetic() {
        let t = ms("2026-01-31 10:00:00");
        let add = |u, n| text(add(t, u, n).unwrap());
        assert_eq!(add(TimeUnit::Month, 1), "2026-02-28 10:00:00.000");
        assert_eq!(add(TimeUnit::Year, -1), "2025-01-31 10:00:00.000");
        assert_eq!(add(TimeUnit::Hour, 20), "2026-02-01 06:00:00.000");
        assert_eq!(add(TimeUnit::Quarter, 1), "2026-04-30 10:00:00.000");
        let d = |a: &str, b: &str, u| diff(ms(a), ms(b), u).unwrap();
        // As Flink: a month counts once adding it (clamped to the month's end) reaches b.
        let cases = [
            (
                "2026-01-31 10:00:00",
                "2026-02-28 10:00:00",
                TimeUnit::Month,
                1,
            ),
            (
                "2026-01-31 10:00:00",
                "2026-02-28 09:59:59",
                TimeUnit::Month,
                0,
            ),
            (
                "2026-01-15 00:00:00",
                "2026-03-15 00:00:00",
                TimeUnit::Month,
                2,
            ),
            (
                "2026-03-15 00:00:00",
                "2026-01-15 00:00:01",
                TimeUnit::Month,
                -1,
            ),
            (
                "2020-02-29 00:00:00",
                "2021-02-28 00:00:00",
                TimeUnit::Year,
                1,
            ),
            (
                "2024-02-29 00:00:00",
                "2026-02-28 00:00:00",
                TimeUnit::Year,
                2,
            ),
            (
                "2026-01-01 00:00:00",
                "2026-01-02 23:59:59",
                TimeUnit::Day,
                1,
            ),
            (
                "2026-01-02 00:00:00",
                "2026-01-01 00:00:01",
                TimeUnit::Day,
                0,
            ),
            (
                "2026-01-01 00:00:00",
                "2026-01-01 02:30:00",
                TimeUnit::Minute,
                150,
            ),
        ];
        for (a, b, u, want) in cases {
            assert_eq!(d(a, b, u), want, "{a} to {b} in {u:?}");
        }
    }

    #[test]
    fn floor_and_ceil_to_a_unit() {
        let r = |s: &str, u, ceil| text(round_to(ms(s), u, ceil).unwrap());
        let cases = [
            (
                "2026-12-06 10:37:12.5",
                TimeUnit::Hour,
                false,
                "2026-12-06 10:00:00.000",
            ),
            (
                "2026-12-06 10:37:12.5",
                TimeUnit::Hour,
                true,
                "2026-12-06 11:00:00.000",
            ),
            (
                "2026-12-06 10:00:00",
                TimeUnit::Hour,
                true,
                "2026-12-06 10:00:00.000",
            ),
            (
                "2026-12-06 10:37:12",
                TimeUnit::Day,
                true,
                "2026-12-07 00:00:00.000",
            ),
            (
                "2026-12-06 10:37:12",
                TimeUnit::Month,
                false,
                "2026-12-01 00:00:00.000",
            ),
            (
                "2026-11-06 10:37:12",
                TimeUnit::Quarter,
                false,
                "2026-10-01 00:00:00.000",
            ),
            (
                "2026-11-06 10:37:12",
                TimeUnit::Year,
                true,
                "2027-01-01 00:00:00.000",
            ),
            // 2026-12-06 is a Sunday: its week (Flink's, from Sunday) begins that day.
            (
                "2026-12-06 10:37:12",
                TimeUnit::Week,
                false,
                "2026-12-06 00:00:00.000",
            ),
            (
                "2026-12-05 10:37:12",
                TimeUnit::Week,
                false,
                "2026-11-29 00:00:00.000",
            ),
            (
                "2026-12-05 10:37:12",
                TimeUnit::Week,
                true,
                "2026-12-06 00:00:00.000",
            ),
            (
                "1969-12-31 10:00:00",
                TimeUnit::Day,
                false,
                "1969-12-31 00:00:00.000",
            ),
        ];
        for (t, u, ceil, want) in cases {
            assert_eq!(r(t, u, ceil), want, "{t} {u:?} ceil={ceil}");
        }
    }

    #[test]
    fn formats_parse_java_patterns() {
        let parse = |pattern: &str, s: &str| Format::new(pattern).parse(s).map(text);
        let at = |s: &str| Some(s.to_string());
        assert_eq!(
            parse("dd/MM/yyyy HH:mm", "06/12/2026 10:37"),
            at("2026-12-06 10:37:00.000")
        );
        assert_eq!(parse("yyyyMMdd", "20261206"), at("2026-12-06 00:00:00.000"));
        // Fields the pattern leaves out take their first value.
        assert_eq!(
            parse("yyyy-MM-dd HH", "2026-01-01 10"),
            at("2026-01-01 10:00:00.000")
        );
        assert_eq!(parse("yyyy-MM", "2026-03"), at("2026-03-01 00:00:00.000"));
        assert_eq!(parse("dd/MM/yyyy HH:mm", "2026-12-06"), None);
    }
}
