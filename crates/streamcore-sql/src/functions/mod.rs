//! Scalar functions: the built-ins ([`ScalarFunction`], resolved by name with their argument
//! and result types checked at planning) and user-defined functions ([`Udf`]) that a Rust
//! program registers under a name or a Java class name, so that Flink's `CREATE FUNCTION f AS
//! 'com.example.F'` resolves to them ([`FunctionRegistry`]).
//!
//! The Nexmark set and the functions that need the planner's help live here; Flink's other
//! string, numeric, time and JSON functions in [`strings`], [`math`], [`time`] and [`json`],
//! each with its names, argument checks and evaluation.

pub mod json;
pub mod math;
pub mod strings;
pub mod time;
pub mod unnest;

use crate::date_format::DatePattern;
use crate::error::PlanError;
use crate::expr::{EvalError, Expr};
use crate::types::SqlType;
use chrono::{DateTime, Datelike, Timelike};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use streamcore::row::{DataType, MapType, Scalar};

/// The body of a user-defined scalar function: the argument values in (borrowed: a column
/// passed as it is is not copied), the result out (an `Err` names what is wrong; it goes to
/// the job's error policy with the row).
pub type UdfBody = dyn Fn(&[&Scalar]) -> Result<Scalar, String> + Send + Sync;

/// A user-defined scalar function.
///
/// ```
/// use streamcore::row::{DataType, MapType, Scalar};
/// use streamcore_sql::functions::Udf;
/// let twice = Udf::new("twice", DataType::BigInt, |args| {
///     Ok(match args[0] { Scalar::Int(v) => Scalar::Int(v * 2), _ => Scalar::Null })
/// });
/// assert_eq!(twice.name(), "twice");
/// ```
#[derive(Clone)]
pub struct Udf {
    name: String,
    returns: DataType,
    body: Arc<UdfBody>,
}

impl Udf {
    /// A function `name` returning `returns`.
    pub fn new(
        name: &str,
        returns: DataType,
        body: impl Fn(&[&Scalar]) -> Result<Scalar, String> + Send + Sync + 'static,
    ) -> Self {
        Udf {
            name: name.to_string(),
            returns,
            body: Arc::new(body),
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Udf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body's address too: two functions of one name (two classes registered with
        // the same `Udf::new` name) are different functions to every comparison of plans.
        write!(
            f,
            "Udf({} -> {} at {:p})",
            self.name,
            self.returns,
            Arc::as_ptr(&self.body)
        )
    }
}

/// User-defined functions by implementing class (what `CREATE FUNCTION … AS 'class'` names)
/// and by name (usable without `CREATE FUNCTION`).
#[derive(Clone, Debug, Default)]
pub struct FunctionRegistry {
    by_class: HashMap<String, Udf>,
}

/// How often the first character of `c` occurs in `s` (0 for an empty `c`): Nexmark's
/// `CountChar`, as the typed q14 counts.
fn count_char(s: &str, c: &str) -> usize {
    c.chars()
        .next()
        .map_or(0, |c| streamcore_nexmark::queries::q14::count_char(s, c))
}

impl FunctionRegistry {
    /// The registry with the functions that ship with streamcore: Nexmark's `CountChar`
    /// (`com.github.nexmark.flink.udf.CountChar`: how often the character of its second
    /// argument occurs in its first).
    pub fn with_builtins() -> Self {
        let mut r = FunctionRegistry::default();
        r.register(
            "com.github.nexmark.flink.udf.CountChar",
            Udf::new("count_char", DataType::BigInt, |args| {
                Ok(match (args[0], args[1]) {
                    (Scalar::Str(s), Scalar::Str(c)) => Scalar::Int(count_char(s, c) as i64),
                    _ => Scalar::Null,
                })
            }),
        );
        r
    }

    /// Registers `udf` as the implementation of `class`.
    pub fn register(&mut self, class: &str, udf: Udf) {
        self.by_class.insert(class.to_string(), udf);
    }

    /// The function implementing `class`.
    pub fn by_class(&self, class: &str) -> Option<&Udf> {
        self.by_class.get(class)
    }

    /// The registered classes, for messages.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.by_class.keys().map(String::as_str)
    }
}

/// A built-in or user-defined scalar function, resolved at planning.
#[derive(Clone, Debug)]
pub enum ScalarFunction {
    /// `UPPER(s)`
    Upper,
    /// `LOWER(s)`
    Lower,
    /// `CONCAT(s, …)` (NULL if any argument is NULL, as in Flink)
    Concat,
    /// `CHAR_LENGTH(s)`
    CharLength,
    /// `SUBSTRING(s FROM start [FOR len])` (1-based)
    Substring,
    /// `TRIM(s)`
    Trim,
    /// `SPLIT_INDEX(s, sep, i)` (0-based; NULL past the end)
    SplitIndex,
    /// `REGEXP_EXTRACT(s, regex[, group])`; the pattern compiled once when it is a literal
    RegexpExtract(Option<Arc<regex::Regex>>),
    /// Whether the compiled regex matches somewhere in the string (false for NULL): what
    /// `REGEXP_EXTRACT(s, p, g) IS NOT NULL` is when group `g` takes part in every match of `p`
    /// (`Expr::compiled` rewrites it so: no capture groups are computed to be thrown away).
    RegexpFound(Arc<regex::Regex>),
    /// `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm')` (a Java pattern, translated once)
    DateFormat(Arc<DatePattern>),
    /// `YEAR`, `MONTH`, `DAYOFMONTH`, `HOUR`, `MINUTE`, `SECOND` of a timestamp, and
    /// `EXTRACT(unit FROM ts)`
    Extract(TimeUnit),
    /// `ABS(n)`
    Abs,
    /// `COALESCE(a, b, …)`
    Coalesce,
    /// `NULLIF(a, b)`
    NullIf,
    /// `TO_TIMESTAMP(s)` (`yyyy-MM-dd HH:mm:ss[.SSS]`)
    ToTimestamp,
    /// `PROCTIME()`: the wall clock when the row is processed.
    Proctime,
    /// `m[key]`: the value of `key` in map `m` (NULL if it has none; Calcite's `ITEM`).
    Item,
    /// `CARDINALITY(m)`: the number of entries of a map or elements of an array.
    Cardinality,
    /// `a[i]` (`at`: the element at 1-based `i`, NULL out of range) and `ELEMENT(a)` (the one
    /// element of an array: NULL if empty, an error if it has more).
    Element {
        /// `a[i]`, not `ELEMENT(a)`.
        at: bool,
    },
    /// `ARRAY[e1, e2, …]`: an array of these elements, cast to its element type.
    ArrayOf(streamcore::row::ArrayType),
    /// `ARRAY_CONTAINS(a, v)`: whether `v` is an element of `a` (NULL elements included),
    /// both compared as their common type.
    ArrayContains(DataType),
    /// `ARRAY_JOIN(a, sep[, null_replacement])`: the strings of `a` joined by `sep`, NULL
    /// elements left out or replaced.
    ArrayJoin,
    /// `MAP[k1, v1, k2, v2, …]`: a map of these entries (of a key, the last is kept), keys
    /// and values cast to the map's types.
    MapOf(MapType),
    /// `TRY_CAST(e AS t)`: the cast, NULL where it fails.
    TryCast(DataType),
    /// A string function of [`strings`].
    Text(strings::StringFunction),
    /// A numeric or comparison function of [`math`].
    Math(math::MathFunction),
    /// A date and time function of [`time`].
    Time(time::TimeFunction),
    /// A JSON function of [`json`].
    Json(json::JsonFunction),
    /// A user-defined function.
    Udf(Udf),
}

/// A part of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// The year.
    Year,
    /// The month, 1–12.
    Month,
    /// The day of the month.
    Day,
    /// The hour, 0–23.
    Hour,
    /// The minute.
    Minute,
    /// The second.
    Second,
    /// The millisecond of the second.
    Millisecond,
    /// The quarter of the year, 1–4.
    Quarter,
    /// The ISO week of the year, 1–53.
    Week,
    /// The day of the week, 1 (Sunday) – 7 (Saturday), as Flink's `DAYOFWEEK`.
    DayOfWeek,
    /// The day of the year, 1–366.
    DayOfYear,
    /// Seconds since 1970-01-01 00:00:00 (`EXTRACT(EPOCH FROM ts)`).
    Epoch,
}

impl TimeUnit {
    /// The unit of a function or `EXTRACT` name.
    pub fn parse(name: &str) -> Option<TimeUnit> {
        Some(match name.to_ascii_uppercase().as_str() {
            "YEAR" => TimeUnit::Year,
            "MONTH" => TimeUnit::Month,
            "DAY" | "DAYOFMONTH" => TimeUnit::Day,
            "HOUR" => TimeUnit::Hour,
            "MINUTE" => TimeUnit::Minute,
            "SECOND" => TimeUnit::Second,
            "MILLISECOND" => TimeUnit::Millisecond,
            "QUARTER" => TimeUnit::Quarter,
            "WEEK" => TimeUnit::Week,
            "DOW" | "DAYOFWEEK" => TimeUnit::DayOfWeek,
            "DOY" | "DAYOFYEAR" => TimeUnit::DayOfYear,
            "EPOCH" => TimeUnit::Epoch,
            _ => return None,
        })
    }

    /// A unit shorter than a day (a date plus one is a time of day).
    pub fn is_sub_day(self) -> bool {
        matches!(
            self,
            TimeUnit::Hour | TimeUnit::Minute | TimeUnit::Second | TimeUnit::Millisecond
        )
    }

    /// The unit of `TIMESTAMPADD`, `TIMESTAMPDIFF`, `FLOOR(ts TO …)` and `CEIL(ts TO …)`: a
    /// length of time (`SECOND` … `YEAR`), not a field such as the day of the week.
    pub fn interval(name: &str) -> Option<TimeUnit> {
        match TimeUnit::parse(name)? {
            TimeUnit::DayOfWeek | TimeUnit::DayOfYear | TimeUnit::Epoch => None,
            u => Some(u),
        }
    }
}

/// How many arguments a function takes.
pub type Arity = std::ops::RangeInclusive<usize>;

/// `SUBSTRING(s FROM start [FOR len])` as Flink computes it (`substringSQL`): `start` counts
/// characters from 1, from the end when negative (`-2` is the last two), and 0 is the first
/// character; `len` characters from there (to the end without one), fewer at the end.
fn substring(s: &str, start: i64, len: Option<i64>) -> &str {
    // The whole string (a `CAST(… AS VARCHAR(n))` of a shorter one): no counting.
    if start == 1 && len.is_none_or(|len| len >= s.len() as i64) {
        return s;
    }
    let chars = s.chars().count() as i64;
    let from = match start {
        p if p > 0 => p - 1,
        p if p < 0 => chars + p,
        _ => 0,
    };
    if from < 0 || from >= chars {
        return "";
    }
    let to = match len {
        Some(len) if chars - from >= len => from + len,
        _ => chars,
    };
    let byte = |c: i64| s.char_indices().nth(c as usize).map_or(s.len(), |(b, _)| b);
    &s[byte(from)..byte(to)]
}

/// Part `index` (from 0) of `s` split by the whole separator `sep` (empty parts count, as
/// Flink's `SPLIT_INDEX`). A one-byte separator — `'/'`, `','` — is found by `memchr`, not
/// by the general substring searcher (a third of Nexmark q22's time went to setting it up).
fn split_index<'a>(s: &'a str, sep: &str, index: usize) -> Option<&'a str> {
    match sep.as_bytes() {
        // A one-byte UTF-8 string is ASCII: every position it is found at is a char boundary.
        &[byte] => {
            let mut start = 0;
            let mut ends = memchr::memchr_iter(byte, s.as_bytes());
            for _ in 0..index {
                start = ends.next()? + 1;
            }
            let end = ends.next().unwrap_or(s.len());
            Some(&s[start..end])
        }
        _ => s.split(sep).nth(index),
    }
}

/// Every built-in scalar function's name (aliases included), for `SHOW FUNCTIONS` and the
/// suggestions of an unknown function's error.
pub fn scalar_function_names() -> impl Iterator<Item = &'static str> {
    SCALAR_FUNCTIONS
        .iter()
        .chain(strings::NAMES)
        .chain(math::NAMES)
        .chain(time::NAMES)
        .chain(json::NAMES)
        .copied()
}

/// The names [`ScalarFunction::resolve`] matches itself (aliases included; the submodules
/// list theirs, [`scalar_function_names`] gives all); a test keeps the list whole.
pub const SCALAR_FUNCTIONS: &[&str] = &[
    "UPPER",
    "UCASE",
    "LOWER",
    "LCASE",
    "CONCAT",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "SUBSTRING",
    "SUBSTR",
    "TRIM",
    "SPLIT_INDEX",
    "REGEXP_EXTRACT",
    "DATE_FORMAT",
    "YEAR",
    "MONTH",
    "DAYOFMONTH",
    "QUARTER",
    "WEEK",
    "DAYOFWEEK",
    "DAYOFYEAR",
    "HOUR",
    "MINUTE",
    "SECOND",
    "ABS",
    "COALESCE",
    "IFNULL",
    "NULLIF",
    "TO_TIMESTAMP",
    "PROCTIME",
    "CARDINALITY",
    "MAP",
    "ARRAY",
    "ELEMENT",
    "ARRAY_CONTAINS",
    "ARRAY_JOIN",
];

impl ScalarFunction {
    /// The function's SQL name.
    pub fn name(&self) -> &str {
        match self {
            ScalarFunction::Upper => "UPPER",
            ScalarFunction::Lower => "LOWER",
            ScalarFunction::Concat => "CONCAT",
            ScalarFunction::CharLength => "CHAR_LENGTH",
            ScalarFunction::Substring => "SUBSTRING",
            ScalarFunction::Trim => "TRIM",
            ScalarFunction::SplitIndex => "SPLIT_INDEX",
            ScalarFunction::RegexpExtract(_) => "REGEXP_EXTRACT",
            ScalarFunction::RegexpFound(_) => "REGEXP_FOUND",
            ScalarFunction::DateFormat(_) => "DATE_FORMAT",
            ScalarFunction::Extract(_) => "EXTRACT",
            ScalarFunction::Abs => "ABS",
            ScalarFunction::Coalesce => "COALESCE",
            ScalarFunction::NullIf => "NULLIF",
            ScalarFunction::ToTimestamp => "TO_TIMESTAMP",
            ScalarFunction::Proctime => "PROCTIME",
            ScalarFunction::Item => "ITEM",
            ScalarFunction::Cardinality => "CARDINALITY",
            ScalarFunction::Element { at: true } => "ITEM",
            ScalarFunction::Element { at: false } => "ELEMENT",
            ScalarFunction::ArrayOf(_) => "ARRAY",
            ScalarFunction::ArrayContains(_) => "ARRAY_CONTAINS",
            ScalarFunction::ArrayJoin => "ARRAY_JOIN",
            ScalarFunction::MapOf(_) => "MAP",
            ScalarFunction::TryCast(_) => "TRY_CAST",
            ScalarFunction::Text(f) => f.name(),
            ScalarFunction::Math(f) => f.name(),
            ScalarFunction::Time(f) => f.name(),
            ScalarFunction::Json(f) => f.name(),
            ScalarFunction::Udf(u) => u.name(),
        }
    }

    /// Whether equal arguments always give equal results (constants may be folded).
    pub fn is_deterministic(&self) -> bool {
        match self {
            ScalarFunction::Proctime => false,
            ScalarFunction::Time(f) => f.is_deterministic(),
            ScalarFunction::Math(f) => f.is_deterministic(),
            _ => true,
        }
    }

    /// Resolves a built-in by name, checking its arguments; `None` if there is no built-in
    /// of that name. `args` are the bound arguments with their types; `literal` gives the
    /// constant value of an argument, if it is one.
    pub fn resolve(
        name: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(ScalarFunction, SqlType), PlanError>> {
        let upper = name.to_ascii_uppercase();
        let f = match upper.as_str() {
            "UPPER" | "UCASE" => (ScalarFunction::Upper, 1..=1, SqlType::VARCHAR),
            "LOWER" | "LCASE" => (ScalarFunction::Lower, 1..=1, SqlType::VARCHAR),
            "CONCAT" => (ScalarFunction::Concat, 1..=usize::MAX, SqlType::VARCHAR),
            "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
                (ScalarFunction::CharLength, 1..=1, SqlType::BIGINT)
            }
            "SUBSTRING" | "SUBSTR" => (ScalarFunction::Substring, 2..=3, SqlType::VARCHAR),
            "TRIM" => (ScalarFunction::Trim, 1..=1, SqlType::VARCHAR),
            "SPLIT_INDEX" => (ScalarFunction::SplitIndex, 3..=3, SqlType::VARCHAR),
            "REGEXP_EXTRACT" => {
                let compiled = match args.get(1) {
                    Some((Expr::Literal(Scalar::Str(p)), _)) => match regex::Regex::new(p) {
                        Ok(r) => Some(Arc::new(r)),
                        Err(e) => {
                            return Some(Err(PlanError::invalid(format!(
                                "REGEXP_EXTRACT: the pattern '{p}' is not a regular expression: {e}"
                            ))))
                        }
                    },
                    _ => None,
                };
                (
                    ScalarFunction::RegexpExtract(compiled),
                    2..=3,
                    SqlType::VARCHAR,
                )
            }
            "DATE_FORMAT" => {
                let pattern = match args.get(1) {
                    Some((Expr::Literal(Scalar::Str(p)), _)) => match DatePattern::parse(p) {
                        Ok(pattern) => pattern,
                        Err(e) => {
                            return Some(Err(PlanError::invalid(format!("DATE_FORMAT: {e}"))))
                        }
                    },
                    Some(_) => {
                        return Some(Err(PlanError::unsupported(
                            "DATE_FORMAT with a pattern that is not a literal",
                        )))
                    }
                    None => DatePattern::new(""),
                };
                (
                    ScalarFunction::DateFormat(Arc::new(pattern)),
                    2..=2,
                    SqlType::VARCHAR,
                )
            }
            "YEAR" | "MONTH" | "DAYOFMONTH" | "QUARTER" | "WEEK" | "DAYOFWEEK" | "DAYOFYEAR"
            | "HOUR" | "MINUTE" | "SECOND" => (
                ScalarFunction::Extract(TimeUnit::parse(&upper)?),
                1..=1,
                SqlType::BIGINT,
            ),
            "ABS" => (
                ScalarFunction::Abs,
                1..=1,
                args.first().map(|a| a.1).unwrap_or(SqlType::BIGINT),
            ),
            "COALESCE" | "IFNULL" => (
                ScalarFunction::Coalesce,
                1..=usize::MAX,
                args.iter()
                    .map(|a| a.1)
                    .find(|t| *t != SqlType::Null)
                    .unwrap_or(SqlType::Null),
            ),
            "NULLIF" => (
                ScalarFunction::NullIf,
                2..=2,
                args.first().map(|a| a.1).unwrap_or(SqlType::Null),
            ),
            "TO_TIMESTAMP" if args.len() == 2 => match time::TimeFunction::to_timestamp(args) {
                Ok(f) => (ScalarFunction::Time(f), 2..=2, SqlType::TIMESTAMP),
                Err(e) => return Some(Err(e)),
            },
            "TO_TIMESTAMP" => (ScalarFunction::ToTimestamp, 1..=2, SqlType::TIMESTAMP),
            "PROCTIME" => (ScalarFunction::Proctime, 0..=0, SqlType::TIMESTAMP),
            "CARDINALITY" => (ScalarFunction::Cardinality, 1..=1, SqlType::BIGINT),
            "ELEMENT" => (
                ScalarFunction::Element { at: false },
                1..=1,
                match args.first().map(|a| a.1) {
                    Some(SqlType::Data(DataType::Array(a))) => SqlType::Data(a.element()),
                    _ => SqlType::Null,
                },
            ),
            "ARRAY_CONTAINS" => {
                let common = match args {
                    [(_, SqlType::Data(DataType::Array(a))), (_, needle)] => {
                        crate::binder::common_type(SqlType::Data(a.element()), *needle)
                    }
                    _ => Some(SqlType::Null),
                };
                let Some(common) = common else {
                    return Some(Err(PlanError::invalid(format!(
                        "type mismatch: ARRAY_CONTAINS of {} and {}",
                        args[0].1, args[1].1
                    ))));
                };
                (
                    ScalarFunction::ArrayContains(common.data_type()),
                    2..=2,
                    SqlType::BOOLEAN,
                )
            }
            "ARRAY_JOIN" => (ScalarFunction::ArrayJoin, 2..=3, SqlType::VARCHAR),
            "ARRAY" => {
                let element = match args.iter().try_fold(SqlType::Null, |acc, a| {
                    crate::binder::common_type(acc, a.1).ok_or((acc, a.1))
                }) {
                    Ok(t) => t,
                    Err((a, b)) => {
                        return Some(Err(PlanError::invalid(format!(
                            "type mismatch: ARRAY[…] elements of {a} and {b}"
                        ))))
                    }
                };
                match streamcore::row::ArrayType::new(element.data_type()) {
                    Some(a) => (
                        ScalarFunction::ArrayOf(a),
                        0..=usize::MAX,
                        SqlType::Data(DataType::Array(a)),
                    ),
                    None => {
                        return Some(Err(PlanError::unsupported(
                            "ARRAY[…] of maps or arrays: they do not nest here",
                        )))
                    }
                }
            }
            "MAP" => match map_type_of_entries(args) {
                Ok(m) => (
                    ScalarFunction::MapOf(m),
                    2..=usize::MAX,
                    SqlType::Data(DataType::Map(m)),
                ),
                Err(e) => return Some(Err(e)),
            },
            _ => match Self::resolve_in_submodules(&upper, args)? {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            },
        };
        let (func, arity, returns) = f;
        if !arity.contains(&args.len()) {
            let want = if arity.end() == &usize::MAX {
                format!("at least {}", arity.start())
            } else if arity.start() == arity.end() {
                format!("{}", arity.start())
            } else {
                format!("{} to {}", arity.start(), arity.end())
            };
            return Some(Err(PlanError::invalid(format!(
                "{upper} takes {want} argument(s), got {}",
                args.len()
            ))));
        }
        if let Err(e) = check_arguments(&func, args) {
            return Some(Err(e));
        }
        Some(Ok((func, returns)))
    }

    /// A function of [`strings`], [`math`] or [`time`].
    fn resolve_in_submodules(
        upper: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(ScalarFunction, Arity, SqlType), PlanError>> {
        if let Some(r) = strings::StringFunction::resolve(upper, args) {
            return Some(r.map(|(f, a, t)| (ScalarFunction::Text(f), a, t)));
        }
        if let Some(r) = math::MathFunction::resolve(upper, args) {
            return Some(r.map(|(f, a, t)| (ScalarFunction::Math(f), a, t)));
        }
        if let Some(r) = time::TimeFunction::resolve(upper, args) {
            return Some(r.map(|(f, a, t)| (ScalarFunction::Time(f), a, t)));
        }
        json::JsonFunction::resolve(upper, args)
            .map(|r| r.map(|(f, a, t)| (ScalarFunction::Json(f), a, t)))
    }

    /// Calls the function on arguments evaluated from `row`.
    pub fn call(&self, args: &[Expr], row: &[Scalar]) -> Result<Scalar, EvalError> {
        use Scalar::*;
        let arg = |i: usize| args[i].eval_cow(row);
        Ok(match self {
            // ASCII strings are case-mapped in place of a copy (no intermediate `String`).
            ScalarFunction::Upper => match &*arg(0)? {
                Str(s) if s.is_ascii() => {
                    let mut s = s.clone();
                    s.as_mut_str().make_ascii_uppercase();
                    Str(s)
                }
                Str(s) => Scalar::str(&s.to_uppercase()),
                _ => Null,
            },
            ScalarFunction::Lower => match &*arg(0)? {
                Str(s) if s.is_ascii() => {
                    let mut s = s.clone();
                    s.as_mut_str().make_ascii_lowercase();
                    Str(s)
                }
                Str(s) => Scalar::str(&s.to_lowercase()),
                _ => Null,
            },
            ScalarFunction::Concat => {
                let mut out = compact_str::CompactString::default();
                for a in args {
                    match &*a.eval_cow(row)? {
                        Null => return Ok(Null),
                        Str(s) => out.push_str(s),
                        v => out.push_str(&v.to_string()),
                    }
                }
                Str(out)
            }
            ScalarFunction::CharLength => match &*arg(0)? {
                Str(s) => Int(s.chars().count() as i64),
                _ => Null,
            },
            ScalarFunction::Substring => {
                let (s, start) = (arg(0)?, arg(1)?);
                let len = if args.len() > 2 { Some(arg(2)?) } else { None };
                match (&*s, &*start, len.as_deref()) {
                    (Str(s), &Int(start), None) => Scalar::str(substring(s, start, None)),
                    (Str(s), &Int(start), Some(&Int(len))) if len >= 0 => {
                        Scalar::str(substring(s, start, Some(len)))
                    }
                    // A negative length is NULL, as in Flink.
                    _ => Null,
                }
            }
            // Spaces only, as Flink's `TRIM` (not tabs or line breaks).
            ScalarFunction::Trim => match &*arg(0)? {
                Str(s) => Scalar::str(s.trim_matches(' ')),
                _ => Null,
            },
            ScalarFunction::SplitIndex => match (&*arg(0)?, &*arg(1)?, &*arg(2)?) {
                (Str(s), Str(sep), &Int(i)) if i >= 0 && !sep.is_empty() => {
                    match split_index(s, sep, i as usize) {
                        Some(part) => Scalar::str(part),
                        None => Null,
                    }
                }
                _ => Null,
            },
            ScalarFunction::RegexpExtract(compiled) => {
                let s = arg(0)?;
                let group = if args.len() > 2 {
                    arg(2)?.into_owned()
                } else {
                    Int(0)
                };
                let Str(s) = &*s else { return Ok(Null) };
                let Int(group) = group else { return Ok(Null) };
                let owned;
                let re = match compiled {
                    Some(re) => re.as_ref(),
                    None => match &*arg(1)? {
                        Str(p) => {
                            owned = regex::Regex::new(p).map_err(|e| {
                                EvalError(format!("REGEXP_EXTRACT: bad pattern '{p}': {e}"))
                            })?;
                            &owned
                        }
                        _ => return Ok(Null),
                    },
                };
                match re.captures(s).and_then(|c| c.get(group as usize)) {
                    Some(m) => Scalar::str(m.as_str()),
                    None => Null,
                }
            }
            ScalarFunction::RegexpFound(re) => match &*arg(0)? {
                Str(s) => Bool(re.is_match(s)),
                _ => Bool(false),
            },
            ScalarFunction::DateFormat(pattern) => match &*arg(0)? {
                &TimestampMs(ms) => pattern.format_millis(ms).map_or(Null, Str),
                Str(s) => crate::expr::parse_timestamp_ms(s)
                    .and_then(|ms| pattern.format_millis(ms))
                    .map_or(Null, Str),
                _ => Null,
            },
            ScalarFunction::Extract(unit) => {
                let v = arg(0)?;
                let ms = match &*v {
                    TimestampMs(_) | TimestampUs(_) | Date(_) => v.as_timestamp().map(|t| t.0),
                    Str(s) => crate::expr::parse_timestamp_ms(s),
                    _ => None,
                };
                match ms.and_then(DateTime::from_timestamp_millis) {
                    Some(t) => Int(match unit {
                        TimeUnit::Year => t.year() as i64,
                        TimeUnit::Quarter => t.month0() as i64 / 3 + 1,
                        TimeUnit::Month => t.month() as i64,
                        TimeUnit::Week => t.iso_week().week() as i64,
                        TimeUnit::Day => t.day() as i64,
                        TimeUnit::DayOfWeek => t.weekday().number_from_sunday() as i64,
                        TimeUnit::DayOfYear => t.ordinal() as i64,
                        TimeUnit::Hour => t.hour() as i64,
                        TimeUnit::Minute => t.minute() as i64,
                        TimeUnit::Second => t.second() as i64,
                        TimeUnit::Millisecond => t.timestamp_subsec_millis() as i64,
                        // Truncated toward zero, as Flink's `utcTs / 1000`.
                        TimeUnit::Epoch => t.timestamp_millis() / 1000,
                    }),
                    None => Null,
                }
            }
            ScalarFunction::Abs => match &*arg(0)? {
                &Int(v) => Int(v.wrapping_abs()),
                Float(v) => Scalar::float(v.get().abs()),
                Decimal(d) => Decimal(d.abs()),
                _ => Null,
            },
            ScalarFunction::Coalesce => {
                for a in args {
                    let v = a.eval(row)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Null
            }
            ScalarFunction::NullIf => {
                let (a, b) = (arg(0)?, arg(1)?);
                if a == b {
                    Null
                } else {
                    a.into_owned()
                }
            }
            ScalarFunction::ToTimestamp => match &*arg(0)? {
                Str(s) => match crate::expr::parse_timestamp_ms(s) {
                    Some(ms) => TimestampMs(ms),
                    None => Null,
                },
                _ => Null,
            },
            ScalarFunction::Proctime => TimestampMs(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            ),
            // A NULL key finds nothing, as in Flink (even an entry whose key is NULL).
            ScalarFunction::Item => match &*arg(1)? {
                Null => Null,
                key => arg(0)?.map_get(key).cloned().unwrap_or(Null),
            },
            ScalarFunction::Cardinality => match &*arg(0)? {
                Map(entries) => Int(entries.len() as i64),
                Array(elements) => Int(elements.len() as i64),
                _ => Null,
            },
            ScalarFunction::Element { at: true } => match (&*arg(0)?, &*arg(1)?) {
                (Array(elements), &Int(i)) if i >= 1 => {
                    elements.get(i as usize - 1).cloned().unwrap_or(Null)
                }
                _ => Null,
            },
            ScalarFunction::Element { at: false } => match &*arg(0)? {
                Array(elements) => match &elements[..] {
                    [] => Null,
                    [one] => one.clone(),
                    more => {
                        return Err(EvalError(format!(
                            "ELEMENT: the array has {} elements, not one",
                            more.len()
                        )))
                    }
                },
                _ => Null,
            },
            ScalarFunction::ArrayOf(a) => Array(
                args.iter()
                    .map(|e| crate::expr::cast(e.eval(row)?, a.element()))
                    .collect::<Result<_, EvalError>>()?,
            ),
            ScalarFunction::ArrayContains(common) => match &*arg(0)? {
                Array(elements) => {
                    let to = |v: Scalar| crate::expr::cast(v, *common);
                    let needle = to(arg(1)?.into_owned())?;
                    let mut found = false;
                    for e in elements.iter() {
                        if to(e.clone())? == needle {
                            found = true;
                            break;
                        }
                    }
                    Bool(found)
                }
                _ => Null,
            },
            ScalarFunction::ArrayJoin => {
                let (array, sep) = (arg(0)?, arg(1)?);
                let replacement = if args.len() > 2 { Some(arg(2)?) } else { None };
                match (&*array, &*sep, replacement.as_deref()) {
                    (Array(elements), Str(sep), None | Some(Str(_))) => {
                        let mut out = compact_str::CompactString::default();
                        let mut first = true;
                        for e in elements.iter() {
                            let text = match (e, replacement.as_deref()) {
                                (Str(s), _) => s.as_str(),
                                (Null, Some(Str(r))) => r.as_str(),
                                _ => continue,
                            };
                            if !first {
                                out.push_str(sep);
                            }
                            out.push_str(text);
                            first = false;
                        }
                        Str(out)
                    }
                    _ => Null,
                }
            }
            ScalarFunction::TryCast(to) => {
                crate::expr::cast(arg(0)?.into_owned(), *to).unwrap_or(Null)
            }
            ScalarFunction::Text(f) => f.call(args, row)?,
            ScalarFunction::Math(f) => f.call(args, row)?,
            ScalarFunction::Time(f) => f.call(args, row)?,
            ScalarFunction::Json(f) => f.call(args, row)?,
            ScalarFunction::MapOf(m) => Scalar::map(
                args.chunks(2)
                    .map(|kv| {
                        let key = crate::expr::cast(kv[0].eval(row)?, m.key())?;
                        let value = crate::expr::cast(kv[1].eval(row)?, m.value())?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, EvalError>>()?,
            ),
            ScalarFunction::Udf(udf) => {
                // Columns and constants borrowed, not copied; no allocation up to 4 arguments.
                let mut values: smallvec::SmallVec<[std::borrow::Cow<Scalar>; 4]> =
                    smallvec::SmallVec::new();
                for a in args {
                    values.push(a.eval_cow(row)?);
                }
                let refs: smallvec::SmallVec<[&Scalar; 4]> = values.iter().map(|v| &**v).collect();
                (udf.body)(&refs).map_err(|e| EvalError(format!("{}: {e}", udf.name)))?
            }
        })
    }
}

/// Calls the built-in `name` on constant `args` (typed by their values: a decimal as
/// `DECIMAL(28, its scale)`, NULL untyped), checking its arity and argument types — the
/// function modules' tests go through it.
#[cfg(test)]
pub(crate) fn call_with(name: &str, args: &[Scalar]) -> Scalar {
    let bound: Vec<(Expr, SqlType)> = args
        .iter()
        .map(|a| {
            let t = match a {
                Scalar::Int(_) => SqlType::BIGINT,
                Scalar::Float(_) => SqlType::DOUBLE,
                Scalar::Decimal(d) => SqlType::Data(DataType::Decimal {
                    precision: 28,
                    scale: d.scale() as u8,
                }),
                Scalar::Bool(_) => SqlType::BOOLEAN,
                Scalar::Bytes(_) => SqlType::Data(DataType::Bytes),
                Scalar::Null => SqlType::Null,
                _ => SqlType::VARCHAR,
            };
            (Expr::Literal(a.clone()), t)
        })
        .collect();
    let (f, _) = ScalarFunction::resolve(name, &bound)
        .unwrap_or_else(|| panic!("no function {name}"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let exprs: Vec<Expr> = bound.into_iter().map(|a| a.0).collect();
    f.call(&exprs, &[])
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The result type of a user-defined function.
pub fn udf_type(udf: &Udf) -> SqlType {
    SqlType::Data(udf.returns)
}

/// Checks the types of a call's arguments, naming the argument and the type it must be.
pub(crate) fn check_arguments(
    func: &ScalarFunction,
    args: &[(Expr, SqlType)],
) -> Result<(), PlanError> {
    let want = |i: usize, ok: bool, what: &str| -> Result<(), PlanError> {
        if ok {
            Ok(())
        } else {
            Err(PlanError::invalid(format!(
                "type mismatch: argument {} of {} must be {what}, got {}",
                i + 1,
                func.name(),
                args[i].1
            )))
        }
    };
    match func {
        ScalarFunction::Upper
        | ScalarFunction::Lower
        | ScalarFunction::CharLength
        | ScalarFunction::Trim
        | ScalarFunction::ToTimestamp => want(0, args[0].1.is_string(), "a string"),
        ScalarFunction::Substring => {
            want(0, args[0].1.is_string(), "a string")?;
            want(1, args[1].1 == SqlType::BIGINT, "an integer")
        }
        ScalarFunction::SplitIndex => {
            want(0, args[0].1.is_string(), "a string")?;
            want(1, args[1].1.is_string(), "a string")?;
            want(2, args[2].1 == SqlType::BIGINT, "an integer")
        }
        ScalarFunction::RegexpExtract(_) => {
            want(0, args[0].1.is_string(), "a string")?;
            want(1, args[1].1.is_string(), "a string")
        }
        ScalarFunction::DateFormat(_) | ScalarFunction::Extract(_) => want(
            0,
            args[0].1.is_temporal() || args[0].1.is_string(),
            "a timestamp",
        ),
        ScalarFunction::Abs => want(0, args[0].1.is_numeric(), "a number"),
        ScalarFunction::Cardinality => want(0, args[0].1.is_collection(), "a MAP or an ARRAY"),
        ScalarFunction::Element { at: false } | ScalarFunction::ArrayContains(_) => {
            want(0, args[0].1.is_array(), "an ARRAY")
        }
        ScalarFunction::ArrayJoin => {
            let strings = matches!(
                args[0].1,
                SqlType::Data(DataType::Array(a)) if a.element() == DataType::Varchar
            );
            want(0, strings, "an ARRAY<STRING>")?;
            want(1, args[1].1.is_string(), "a string")?;
            match args.get(2) {
                Some(a) => want(2, a.1.is_string(), "a string"),
                None => Ok(()),
            }
        }
        ScalarFunction::Text(f) => f.check(args, want),
        ScalarFunction::Math(f) => f.check(args, want),
        ScalarFunction::Time(f) => f.check(args, want),
        ScalarFunction::Json(f) => f.check(args, want),
        ScalarFunction::MapOf(_) if args.len() % 2 == 1 => Err(PlanError::invalid(format!(
            "MAP[…] takes keys and values in pairs, got {} arguments",
            args.len()
        ))),
        _ => Ok(()),
    }
}

/// The type of `MAP[k1, v1, …]`: the common type of the keys and that of the values.
fn map_type_of_entries(args: &[(Expr, SqlType)]) -> Result<MapType, PlanError> {
    fn common(mut of: impl Iterator<Item = SqlType>, what: &str) -> Result<SqlType, PlanError> {
        of.try_fold(SqlType::Null, |acc, t| {
            crate::binder::common_type(acc, t).ok_or_else(|| {
                PlanError::invalid(format!("type mismatch: MAP[…] {what} of {acc} and {t}"))
            })
        })
    }
    let key = common(args.iter().step_by(2).map(|a| a.1), "keys")?;
    let value = common(args.iter().skip(1).step_by(2).map(|a| a.1), "values")?;
    MapType::new(key.data_type(), value.data_type())
        .ok_or_else(|| PlanError::unsupported("MAP[…] of maps: maps do not nest here"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-byte separator's `memchr` path splits as the general searcher does, over
        /// strings with multi-byte characters and empty parts.
        #[test]
        fn split_index_by_one_byte_is_the_general_split(
            s in "[a/é,]{0,12}",
            sep in "[/,é]",
            index in 0usize..8,
        ) {
            prop_assert_eq!(split_index(&s, &sep, index), s.split(sep.as_str()).nth(index));
        }
    }

    /// `SCALAR_FUNCTIONS` is what `resolve` takes: every listed name resolves, and every name
    /// `resolve` matches on (read from this file's source) is listed.
    #[test]
    fn the_list_of_scalar_functions_is_whole() {
        for name in SCALAR_FUNCTIONS {
            assert!(ScalarFunction::resolve(name, &[]).is_some(), "{name}");
        }
        let source = include_str!("mod.rs");
        let start = source.find("    pub fn resolve(").unwrap();
        let end = start + source[start..].find("_ => return None").unwrap();
        for quoted in source[start..end].split('"').skip(1).step_by(2) {
            if !quoted.is_empty() && quoted.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                assert!(
                    SCALAR_FUNCTIONS.contains(&quoted),
                    "{quoted} is not in SCALAR_FUNCTIONS"
                );
            }
        }
    }

    #[test]
    fn string_functions() {
        let lit = |s: &str| Expr::Literal(Scalar::str(s));
        let split = ScalarFunction::SplitIndex;
        assert_eq!(
            split
                .call(
                    &[lit("a,b,c"), lit(","), Expr::Literal(Scalar::Int(1))],
                    &[]
                )
                .unwrap(),
            Scalar::str("b")
        );
        assert_eq!(
            split
                .call(
                    &[lit("a,b,c"), lit(","), Expr::Literal(Scalar::Int(5))],
                    &[]
                )
                .unwrap(),
            Scalar::Null
        );
        let sub = ScalarFunction::Substring;
        assert_eq!(
            sub.call(
                &[
                    lit("streamcore"),
                    Expr::Literal(Scalar::Int(7)),
                    Expr::Literal(Scalar::Int(4))
                ],
                &[]
            )
            .unwrap(),
            Scalar::str("core")
        );
        let (re, _) = ScalarFunction::resolve(
            "REGEXP_EXTRACT",
            &[
                (lit("x"), SqlType::VARCHAR),
                (lit("(&|^)channel_id=([^&]*)"), SqlType::VARCHAR),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            re.call(
                &[
                    lit("https://x.com/item?a=1&channel_id=99"),
                    lit(""),
                    Expr::Literal(Scalar::Int(2))
                ],
                &[]
            )
            .unwrap(),
            Scalar::str("99")
        );
    }

    #[test]
    fn count_char_udf() {
        let r = FunctionRegistry::with_builtins();
        let f = r
            .by_class("com.github.nexmark.flink.udf.CountChar")
            .unwrap();
        assert_eq!(
            (f.body)(&[&Scalar::str("abcabc"), &Scalar::str("c")]).unwrap(),
            Scalar::Int(2)
        );
        for (s, c, n) in [
            ("", "c", 0),
            ("ccc", "", 0),
            ("écœc", "c", 2),
            ("écœc", "é", 1),
            ("aœbœ", "œx", 2),
        ] {
            assert_eq!(
                (f.body)(&[&Scalar::str(s), &Scalar::str(c)]).unwrap(),
                Scalar::Int(n),
                "{s} {c}"
            );
        }
    }

    #[test]
    fn wrong_argument_types_are_named() {
        let e =
            ScalarFunction::resolve("UPPER", &[(Expr::Literal(Scalar::Int(1)), SqlType::BIGINT)])
                .unwrap()
                .unwrap_err();
        assert_eq!(
            e.message(),
            "type mismatch: argument 1 of UPPER must be a string, got BIGINT"
        );
    }
}
