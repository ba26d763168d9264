//! [`Row`]: the relational record — values by position ([`Scalar`]), described by a
//! [`Schema`] — for the SQL layer and connectors that speak tables.
//!
//! Values are `Eq + Hash + Ord`, so a row or any of its columns can be a key, a sort key or a
//! set member; floats order totally (`-0.0` equals `0.0`, every NaN is one NaN, greater than
//! every number, as in Flink). Fixed-size values (integers, floats, decimals, timestamps,
//! dates, booleans) live inline in the row's one allocation; strings up to 24 bytes too.
//!
//! A row also carries its event time ([`Row::time`]), set from its time column
//! ([`Row::with_time_column`]) where rows are made: every event-time operator — windows,
//! interval and temporal joins, CEP, keyed timers — works on rows unchanged.
//!
//! Batches of rows stay `Vec<Row>` (rows, not columns): docs/decisions.md says why, with the
//! measurement.

mod scalar;
mod schema;

pub use scalar::{sql_string, Scalar, F64};
pub use schema::{ArrayType, DataType, Field, MapType, Schema};

use crate::event_time::EventTime;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A relational record: values by position, and the row's event time.
///
/// ```
/// use streamcore::row::{Row, Scalar};
/// use streamcore::Timestamp;
/// let bid = Row::new(vec![Scalar::Int(7), Scalar::str("EUR"), Scalar::TimestampMs(1_700_000_000_000)])
///     .with_time_column(2);
/// assert_eq!(bid.get(0), &Scalar::Int(7));
/// assert_eq!(bid.time, Timestamp(1_700_000_000_000));
/// assert_eq!(bid.key(&[1, 0]), Row::new(vec![Scalar::str("EUR"), Scalar::Int(7)]));
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// The values, by column position.
    pub values: Values,
    /// The row's event time (`Timestamp::MIN` when the row has none): not part of the row's
    /// identity — equality, hashing and order see the values only.
    #[serde(default = "no_time")]
    pub time: Timestamp,
}

/// A row's values: shared, immutable once made.
pub type Values = std::sync::Arc<[Scalar]>;

fn no_time() -> Timestamp {
    Timestamp::MIN
}

impl Row {
    /// A row of `values`, with no event time.
    pub fn new(values: Vec<Scalar>) -> Self {
        Row {
            values: Values::from(values),
            time: Timestamp::MIN,
        }
    }

    /// A row of the array `values`, with no event time, in one allocation (the values are
    /// moved, not cloned).
    ///
    /// ```
    /// use streamcore::row::{Row, Scalar};
    /// let key = Row::of([Scalar::Int(1), Scalar::str("EUR")]);
    /// assert_eq!(key.len(), 2);
    /// ```
    pub fn of<const N: usize>(values: [Scalar; N]) -> Self {
        Row {
            values: Values::from(values),
            time: Timestamp::MIN,
        }
    }

    /// Takes the event time from column `column` (a timestamp, a date or an integer of
    /// milliseconds); a null or non-time value leaves no time.
    pub fn with_time_column(mut self, column: usize) -> Self {
        self.time = self
            .values
            .get(column)
            .and_then(Scalar::as_timestamp)
            .unwrap_or(Timestamp::MIN);
        self
    }

    /// The value in column `i`.
    ///
    /// # Panics
    /// If the row has fewer columns: a row and its schema disagree, a planner bug.
    #[inline]
    pub fn get(&self, i: usize) -> &Scalar {
        &self.values[i]
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row of no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The columns `columns`, in that order, as a key: a new row **without the event time**.
    /// A key's identity is its values (equality and hashing ignore the time), and on the LSM
    /// state backend a key is stored by its serialized bytes, which must then be its values
    /// alone: key keyed streams of rows by `key` (or [`Row::as_key`]), not by [`Row::project`].
    pub fn key(&self, columns: &[usize]) -> Row {
        Row {
            values: columns.iter().map(|&c| self.values[c].clone()).collect(),
            time: Timestamp::MIN,
        }
    }

    /// The whole row as a key: its values (shared, not copied) without the event time.
    pub fn as_key(&self) -> Row {
        Row {
            values: self.values.clone(),
            time: Timestamp::MIN,
        }
    }

    /// The columns `columns`, in that order, as a new row that keeps the event time (a
    /// projection).
    pub fn project(&self, columns: &[usize]) -> Row {
        Row {
            values: columns.iter().map(|&c| self.values[c].clone()).collect(),
            time: self.time,
        }
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Eq for Row {}

impl Hash for Row {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state)
    }
}

impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Row {
    fn cmp(&self, other: &Self) -> Ordering {
        self.values.cmp(&other.values)
    }
}

impl EventTime for Row {
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.time
    }
}

impl FromIterator<Scalar> for Row {
    /// A row of the values, with no event time (one allocation for iterators of known length).
    fn from_iter<I: IntoIterator<Item = Scalar>>(values: I) -> Self {
        Row {
            values: values.into_iter().collect(),
            time: Timestamp::MIN,
        }
    }
}

impl From<Vec<Scalar>> for Row {
    fn from(values: Vec<Scalar>) -> Self {
        Row::new(values)
    }
}
