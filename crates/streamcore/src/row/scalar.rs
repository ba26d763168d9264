//! [`Scalar`]: one value of a [`super::Row`], `Eq + Hash + Ord`.

use crate::time::Timestamp;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A float that is `Eq + Hash + Ord`: `-0.0` is stored as `0.0` and every NaN as one NaN,
/// which orders after every number (as in Flink and PostgreSQL).
///
/// ```
/// use streamcore::row::F64;
/// assert_eq!(F64::new(-0.0), F64::new(0.0));
/// assert_eq!(F64::new(f64::NAN), F64::new(-f64::NAN));
/// assert!(F64::new(f64::INFINITY) < F64::new(f64::NAN));
/// ```
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(from = "f64", into = "f64")]
pub struct F64(f64);

impl F64 {
    /// `value`, normalized.
    #[inline]
    pub fn new(value: f64) -> Self {
        F64(if value == 0.0 {
            0.0
        } else if value.is_nan() {
            f64::NAN
        } else {
            value
        })
    }

    /// The float.
    #[inline]
    pub fn get(self) -> f64 {
        self.0
    }
}

impl From<f64> for F64 {
    fn from(v: f64) -> Self {
        F64::new(v)
    }
}

impl From<F64> for f64 {
    fn from(v: F64) -> Self {
        v.0
    }
}

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for F64 {}

impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        // Normalized: only positive NaN and positive zero exist, so the total order is SQL's.
        self.0.total_cmp(&other.0)
    }
}

impl Hash for F64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// One value of a row. Each variant is one SQL type ([`super::DataType`]); `Null` is the
/// missing value of any type.
///
/// Values of one type compare as that type does; values of different types compare by
/// variant (a planner compares values of one type only). Exact decimals are
/// [`rust_decimal::Decimal`] (28 significant digits; `1.0 == 1.00`).
///
/// The tag is a whole word (`repr(u64)`) and every payload starts at byte 8: a value made by
/// parts (its tag, then its payload) and moved at once is then read back at the widths it was
/// written at. With a one-byte tag and payloads at bytes 1 or 4, the compiler moved bytes 1–7
/// as two overlapping 4-byte halves through the stack, a failed store-to-load forward for every
/// value moved into a row (docs/benchmarks.md, eleventh round: q0 −26 %, q20 −44 % CPU).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u64)]
pub enum Scalar {
    /// SQL `NULL` (orders first).
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `BIGINT` (and the smaller integer types).
    Int(i64),
    /// `DOUBLE` (and `FLOAT`).
    Float(F64),
    /// `DECIMAL(p, s)`, exact.
    Decimal(Decimal),
    /// `VARCHAR`; up to 24 bytes inline.
    Str(CompactString),
    /// `BYTES` / `VARBINARY`.
    Bytes(Vec<u8>),
    /// `TIMESTAMP(3)`: milliseconds since the epoch.
    TimestampMs(i64),
    /// `TIMESTAMP(6)`: microseconds since the epoch.
    TimestampUs(i64),
    /// `DATE`: days since the epoch.
    Date(i32),
    /// `MAP<k, v>`: entries ordered by key, one per key (made by [`Scalar::map`]), so that
    /// equal maps are equal values. Shared (`Arc`): a copy of a row copies no entries, and
    /// dropping or cloning a value stays a shallow step the compiler inlines (a `Box` here
    /// made `Scalar`'s drop recursive, and every row's slower).
    Map(Arc<[(Scalar, Scalar)]>),
    /// `ARRAY<t>`: elements in order (shared, as a map's).
    Array(Arc<[Scalar]>),
}

/// `text` as a SQL string literal: quoted, inner quotes doubled.
///
/// ```
/// assert_eq!(streamcore::row::sql_string("it's"), "'it''s'");
/// ```
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Scalar {
    /// A string value.
    pub fn str(s: &str) -> Self {
        Scalar::Str(CompactString::from(s))
    }

    /// The value as a SQL literal where that differs from its text: a string quoted, inner
    /// quotes doubled ([`sql_string`]); any other value as it displays.
    pub fn to_literal(&self) -> String {
        match self {
            Scalar::Str(s) => sql_string(s),
            other => other.to_string(),
        }
    }

    /// A float value (normalized: see [`F64`]).
    pub fn float(v: f64) -> Self {
        Scalar::Float(F64::new(v))
    }

    /// A map of `entries`: ordered by key; of entries with one key, the last is kept (as a
    /// Kafka record's headers are read in Flink).
    ///
    /// ```
    /// use streamcore::row::Scalar;
    /// let m = Scalar::map(vec![(Scalar::str("b"), Scalar::Int(1)), (Scalar::str("a"), Scalar::Int(2)), (Scalar::str("b"), Scalar::Int(3))]);
    /// assert_eq!(m.to_string(), "{a=2, b=3}");
    /// ```
    pub fn map(mut entries: Vec<(Scalar, Scalar)>) -> Self {
        // A stable sort keeps entries of one key in their order: the last of each run wins.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Scalar, Scalar)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        Scalar::Map(out.into())
    }

    /// The value of `key` in this map (`None` if it has no such key or is not a map).
    pub fn map_get(&self, key: &Scalar) -> Option<&Scalar> {
        match self {
            Scalar::Map(entries) => entries
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| &entries[i].1),
            _ => None,
        }
    }

    /// True for `Null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// The integer, if this is one.
    #[inline]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The number as a float: integers, floats and decimals.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(v) => Some(*v as f64),
            Scalar::Float(v) => Some(v.get()),
            Scalar::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_f64(d),
            _ => None,
        }
    }

    /// The string, if this is one.
    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an event time: timestamps, dates (midnight UTC) and integers
    /// (milliseconds).
    pub fn as_timestamp(&self) -> Option<Timestamp> {
        match self {
            Scalar::TimestampMs(ms) | Scalar::Int(ms) => Some(Timestamp(*ms)),
            Scalar::TimestampUs(us) => Some(Timestamp(us.div_euclid(1000))),
            Scalar::Date(d) => Some(Timestamp(*d as i64 * 86_400_000)),
            _ => None,
        }
    }

    /// The name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Null => "NULL",
            Scalar::Bool(_) => "BOOLEAN",
            Scalar::Int(_) => "BIGINT",
            Scalar::Float(_) => "DOUBLE",
            Scalar::Decimal(_) => "DECIMAL",
            Scalar::Str(_) => "VARCHAR",
            Scalar::Bytes(_) => "BYTES",
            Scalar::TimestampMs(_) => "TIMESTAMP(3)",
            Scalar::TimestampUs(_) => "TIMESTAMP(6)",
            Scalar::Date(_) => "DATE",
            Scalar::Map(_) => "MAP",
            Scalar::Array(_) => "ARRAY",
        }
    }
}

/// `x` as Java's `Double.toString` writes it, so as Flink prints and casts a `DOUBLE`: the
/// shortest digits that read back as `x`, in plain notation with at least one decimal
/// (`500.0`, `0.25`) from 10⁻³ up to 10⁷, otherwise in scientific notation (`1.0E10`,
/// `1.5E-4`); `NaN`, `Infinity`, `-Infinity`.
fn write_double(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("NaN");
    }
    if x.is_infinite() {
        return f.write_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    }
    /// A few bytes on the stack: the text of one double (at most 24 characters), no heap.
    struct Text {
        bytes: [u8; 40],
        len: usize,
    }
    impl fmt::Write for Text {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut text = Text {
        bytes: [0; 40],
        len: 0,
    };
    let a = x.abs();
    let plain = a == 0.0 || (1e-3..1e7).contains(&a);
    if plain {
        fmt::Write::write_fmt(&mut text, format_args!("{x}"))?;
    } else {
        // Rust's `{:e}` has the same shortest digits: `1.5e20`, `1e-4`.
        fmt::Write::write_fmt(&mut text, format_args!("{x:e}"))?;
    }
    let text = std::str::from_utf8(&text.bytes[..text.len]).map_err(|_| fmt::Error)?;
    if plain {
        f.write_str(text)?;
        if !text.contains('.') {
            f.write_str(".0")?;
        }
        return Ok(());
    }
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    f.write_str(mantissa)?;
    if !mantissa.contains('.') {
        f.write_str(".0")?;
    }
    write!(f, "E{exponent}")
}

impl fmt::Display for Scalar {
    /// SQL's text form: `NULL`, `true`, `42`, `1.5`, `12.30`, the string itself, hex bytes,
    /// `2023-11-14 22:13:20.123`, `2023-11-14`, `{key=value, …}` and `[a, b, …]` (as Flink prints a map and an array).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("NULL"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write_double(f, v.get()),
            Scalar::Decimal(d) => write!(f, "{d}"),
            Scalar::Str(s) => f.write_str(s),
            Scalar::Bytes(b) => {
                f.write_str("x'")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))?;
                f.write_str("'")
            }
            Scalar::TimestampMs(ms) => match chrono::DateTime::from_timestamp_millis(*ms) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.3f")),
                None => write!(f, "{ms}"),
            },
            Scalar::TimestampUs(us) => match chrono::DateTime::from_timestamp_micros(*us) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
                None => write!(f, "{us}"),
            },
            Scalar::Date(d) => match chrono::DateTime::from_timestamp(*d as i64 * 86_400, 0) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d")),
                None => write!(f, "{d}"),
            },
            Scalar::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Scalar::Array(elements) => {
                f.write_str("[")?;
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::float(v)
    }
}

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::str(v)
    }
}

impl From<Decimal> for Scalar {
    fn from(v: Decimal) -> Self {
        Scalar::Decimal(v)
    }
}

impl<T: Into<Scalar>> From<Option<T>> for Scalar {
    fn from(v: Option<T>) -> Self {
        v.map_or(Scalar::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::hash_map::DefaultHasher;
    use std::str::FromStr;

    fn hash_of<T: Hash>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn doubles_print_as_java_prints_them() {
        let cases = [
            (500.0, "500.0"),
            (0.25, "0.25"),
            (-1.5, "-1.5"),
            (0.0, "0.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (9_999_999.5, "9999999.5"),
            (1e7, "1.0E7"),
            (12_345_678.0, "1.2345678E7"),
            (1.5e20, "1.5E20"),
            (-2.5e-7, "-2.5E-7"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, text) in cases {
            assert_eq!(Scalar::float(x).to_string(), text, "{x:?}");
        }
    }

    #[test]
    fn fixed_size_values_need_no_heap() {
        assert!(
            std::mem::size_of::<Scalar>() <= 32,
            "{}",
            std::mem::size_of::<Scalar>()
        );
        // `Option<Scalar>` (an iterator's item) uses the tag's spare values: no extra word.
        assert_eq!(
            std::mem::size_of::<Option<Scalar>>(),
            std::mem::size_of::<Scalar>()
        );
        // A short string stays inline.
        let s = Scalar::str("a short string, 24 bytes");
        let Scalar::Str(c) = &s else { unreachable!() };
        assert!(!c.is_heap_allocated());
    }

    #[test]
    fn decimals_equal_by_value_and_hash_alike() {
        let a = Scalar::Decimal(Decimal::from_str("1.50").unwrap());
        let b = Scalar::Decimal(Decimal::from_str("1.5").unwrap());
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert!(Scalar::Decimal(Decimal::from_str("1.49").unwrap()) < b);
        assert_eq!(a.to_string(), "1.50");
    }

    #[test]
    fn null_orders_first_and_displays_as_sql() {
        assert!(Scalar::Null < Scalar::Int(i64::MIN));
        assert_eq!(
            Scalar::TimestampMs(1_700_000_000_123).to_string(),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(Scalar::Date(19_675).to_string(), "2023-11-14");
        assert_eq!(Scalar::Bytes(vec![0xca, 0xfe]).to_string(), "x'cafe'");
    }

    #[test]
    fn maps_are_ordered_by_key_one_entry_a_key() {
        let m = Scalar::map(vec![
            (Scalar::str("b"), Scalar::Int(1)),
            (Scalar::Null, Scalar::Int(0)),
            (Scalar::str("a"), Scalar::Int(2)),
            (Scalar::str("b"), Scalar::Int(3)),
        ]);
        assert_eq!(m.to_string(), "{NULL=0, a=2, b=3}");
        assert_eq!(m.map_get(&Scalar::str("b")), Some(&Scalar::Int(3)));
        assert_eq!(m.map_get(&Scalar::Null), Some(&Scalar::Int(0)));
        assert_eq!(m.map_get(&Scalar::str("c")), None);
        assert_eq!(Scalar::Int(1).map_get(&Scalar::Int(1)), None);
        assert_eq!(m.type_name(), "MAP");
        // Equal entries in any order are one value, with one hash.
        let again = Scalar::map(vec![
            (Scalar::str("a"), Scalar::Int(2)),
            (Scalar::str("b"), Scalar::Int(3)),
            (Scalar::Null, Scalar::Int(0)),
        ]);
        assert_eq!(m, again);
        assert_eq!(hash_of(&m), hash_of(&again));
        assert_eq!(Scalar::map(Vec::new()).to_string(), "{}");
    }

    proptest! {
        /// A map keeps the last value given for each key, whatever the order of the entries.
        #[test]
        fn a_map_is_the_last_value_of_each_key(
            entries in prop::collection::vec((0i64..6, any::<i64>()), 0..12),
        ) {
            let m = Scalar::map(
                entries.iter().map(|&(k, v)| (Scalar::Int(k), Scalar::Int(v))).collect(),
            );
            let mut want = std::collections::BTreeMap::new();
            for &(k, v) in &entries {
                want.insert(k, v);
            }
            let Scalar::Map(got) = &m else { unreachable!() };
            prop_assert_eq!(got.len(), want.len());
            for (k, v) in &want {
                prop_assert_eq!(m.map_get(&Scalar::Int(*k)), Some(&Scalar::Int(*v)));
            }
        }

        #[test]
        fn float_order_is_total_and_consistent_with_eq_and_hash(a in any::<f64>(), b in any::<f64>()) {
            let (x, y) = (F64::new(a), F64::new(b));
            prop_assert_eq!(x == y, x.cmp(&y) == Ordering::Equal);
            if x == y {
                prop_assert_eq!(hash_of(&x), hash_of(&y));
            }
            if !a.is_nan() && !b.is_nan() {
                prop_assert_eq!(x.cmp(&y), a.partial_cmp(&b).unwrap());
            }
        }
    }
}
