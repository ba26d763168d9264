//! [`Schema`]: the names and types of a row's columns.

use super::{Row, Scalar};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The SQL type of a column (Flink's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// `BOOLEAN`.
    Boolean,
    /// `BIGINT` (also `INT`, `SMALLINT`, `TINYINT`).
    BigInt,
    /// `DOUBLE` (also `FLOAT`).
    Double,
    /// `DECIMAL(precision, scale)`.
    Decimal {
        /// Significant digits (at most 28 here).
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `VARCHAR` / `STRING`.
    Varchar,
    /// `BYTES` / `VARBINARY`.
    Bytes,
    /// `TIMESTAMP(3)`.
    TimestampMillis,
    /// `TIMESTAMP(6)`.
    TimestampMicros,
    /// `DATE`.
    Date,
    /// `MAP<key, value>`: entries of a key and a value type that are neither maps nor arrays.
    Map(MapType),
    /// `ARRAY<element>`: elements of a type that is neither a map nor an array.
    Array(ArrayType),
}

/// The element type of an `ARRAY` ([`DataType::Array`]).
///
/// ```
/// use streamcore::row::{ArrayType, DataType};
/// let tags = ArrayType::new(DataType::Varchar).unwrap();
/// assert_eq!(DataType::Array(tags).to_string(), "ARRAY<VARCHAR>");
/// assert!(ArrayType::new(DataType::Array(tags)).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArrayType {
    element: ElementType,
}

impl ArrayType {
    /// The array of `element`s; `None` if it is a map or an array (they do not nest here).
    pub const fn new(element: DataType) -> Option<ArrayType> {
        match ElementType::of(element) {
            Some(element) => Some(ArrayType { element }),
            None => None,
        }
    }

    /// The type of the elements.
    pub fn element(self) -> DataType {
        self.element.data_type()
    }
}

/// The key and value types of a `MAP` ([`DataType::Map`]).
///
/// ```
/// use streamcore::row::{DataType, MapType};
/// let headers = MapType::new(DataType::Varchar, DataType::Bytes).unwrap();
/// assert_eq!(DataType::Map(headers).to_string(), "MAP<VARCHAR, BYTES>");
/// assert!(MapType::new(DataType::Varchar, DataType::Map(headers)).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapType {
    key: ElementType,
    value: ElementType,
}

impl MapType {
    /// The map of `key` to `value`; `None` if either is a map (maps do not nest here).
    pub const fn new(key: DataType, value: DataType) -> Option<MapType> {
        match (ElementType::of(key), ElementType::of(value)) {
            (Some(key), Some(value)) => Some(MapType { key, value }),
            _ => None,
        }
    }

    /// The type of the keys.
    pub fn key(self) -> DataType {
        self.key.data_type()
    }

    /// The type of the values.
    pub fn value(self) -> DataType {
        self.value.data_type()
    }
}

/// A [`DataType`] other than a map or an array: what a map or an array holds (kept apart so
/// that `DataType` stays `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum ElementType {
    Boolean,
    BigInt,
    Double,
    Decimal { precision: u8, scale: u8 },
    Varchar,
    Bytes,
    TimestampMillis,
    TimestampMicros,
    Date,
}

impl ElementType {
    const fn of(t: DataType) -> Option<ElementType> {
        Some(match t {
            DataType::Boolean => ElementType::Boolean,
            DataType::BigInt => ElementType::BigInt,
            DataType::Double => ElementType::Double,
            DataType::Decimal { precision, scale } => ElementType::Decimal { precision, scale },
            DataType::Varchar => ElementType::Varchar,
            DataType::Bytes => ElementType::Bytes,
            DataType::TimestampMillis => ElementType::TimestampMillis,
            DataType::TimestampMicros => ElementType::TimestampMicros,
            DataType::Date => ElementType::Date,
            DataType::Map(_) | DataType::Array(_) => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            ElementType::Boolean => DataType::Boolean,
            ElementType::BigInt => DataType::BigInt,
            ElementType::Double => DataType::Double,
            ElementType::Decimal { precision, scale } => DataType::Decimal { precision, scale },
            ElementType::Varchar => DataType::Varchar,
            ElementType::Bytes => DataType::Bytes,
            ElementType::TimestampMillis => DataType::TimestampMillis,
            ElementType::TimestampMicros => DataType::TimestampMicros,
            ElementType::Date => DataType::Date,
        }
    }
}

impl DataType {
    /// Whether `value` is a value of this type (`NULL` is a value of every type).
    pub fn admits(self, value: &Scalar) -> bool {
        matches!(
            (self, value),
            (_, Scalar::Null)
                | (DataType::Boolean, Scalar::Bool(_))
                | (DataType::BigInt, Scalar::Int(_))
                | (DataType::Double, Scalar::Float(_))
                | (DataType::Decimal { .. }, Scalar::Decimal(_))
                | (DataType::Varchar, Scalar::Str(_))
                | (DataType::Bytes, Scalar::Bytes(_))
                | (DataType::TimestampMillis, Scalar::TimestampMs(_))
                | (DataType::TimestampMicros, Scalar::TimestampUs(_))
                | (DataType::Date, Scalar::Date(_))
        ) || match (self, value) {
            (DataType::Map(m), Scalar::Map(entries)) => entries
                .iter()
                .all(|(k, v)| m.key().admits(k) && m.value().admits(v)),
            (DataType::Array(a), Scalar::Array(elements)) => {
                elements.iter().all(|e| a.element().admits(e))
            }
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            DataType::Varchar => f.write_str("VARCHAR"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::TimestampMillis => f.write_str("TIMESTAMP(3)"),
            DataType::TimestampMicros => f.write_str("TIMESTAMP(6)"),
            DataType::Date => f.write_str("DATE"),
            DataType::Map(m) => write!(f, "MAP<{}, {}>", m.key(), m.value()),
            DataType::Array(a) => write!(f, "ARRAY<{}>", a.element()),
        }
    }
}

/// One column: its name, type and whether it may be null.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether it may hold `NULL`.
    pub nullable: bool,
}

impl Field {
    /// A nullable column.
    pub fn new(name: &str, data_type: DataType) -> Self {
        Field {
            name: name.to_string(),
            data_type,
            nullable: true,
        }
    }

    /// The same column, `NOT NULL`.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// The columns of a stream of rows, in position order.
///
/// ```
/// use streamcore::row::{DataType, Field, Row, Scalar, Schema};
/// let schema = Schema::new(vec![
///     Field::new("auction", DataType::BigInt).not_null(),
///     Field::new("price", DataType::BigInt),
/// ]);
/// assert_eq!(schema.index_of("price"), Some(1));
/// assert!(schema.check(&Row::new(vec![Scalar::Int(1), Scalar::Null])).is_ok());
/// let err = schema.check(&Row::new(vec![Scalar::Null, Scalar::Int(2)])).unwrap_err();
/// assert_eq!(err, "column `auction` is NOT NULL but the row has NULL");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// The columns.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of `fields`.
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }

    /// The position of the column `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Checks that `row` fits: as many values as columns, each of its column's type, no
    /// `NULL` in a `NOT NULL` column. The message names the column.
    pub fn check(&self, row: &Row) -> Result<(), String> {
        if row.len() != self.fields.len() {
            return Err(format!(
                "the row has {} values, the schema {} columns",
                row.len(),
                self.fields.len()
            ));
        }
        for (field, value) in self.fields.iter().zip(row.values.iter()) {
            if value.is_null() && !field.nullable {
                return Err(format!(
                    "column `{}` is NOT NULL but the row has NULL",
                    field.name
                ));
            }
            if !field.data_type.admits(value) {
                return Err(format!(
                    "column `{}` is {} but the row has a {} ({value})",
                    field.name,
                    field.data_type,
                    value.type_name()
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", field.name, field.data_type)?;
            if !field.nullable {
                f.write_str(" NOT NULL")?;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_type_admits_maps_of_its_key_and_value_types() {
        let t = DataType::Map(MapType::new(DataType::Varchar, DataType::BigInt).unwrap());
        let map = |v: Scalar| Scalar::map(vec![(Scalar::str("k"), v)]);
        assert!(t.admits(&map(Scalar::Int(1))));
        assert!(t.admits(&map(Scalar::Null)));
        assert!(t.admits(&Scalar::Null));
        assert!(!t.admits(&map(Scalar::str("x"))));
        assert!(!t.admits(&Scalar::Int(1)));
        assert!(!DataType::BigInt.admits(&map(Scalar::Int(1))));
        // Every type but a map is an element type, and comes back as itself.
        for d in [
            DataType::Boolean,
            DataType::BigInt,
            DataType::Double,
            DataType::Decimal {
                precision: 10,
                scale: 2,
            },
            DataType::Varchar,
            DataType::Bytes,
            DataType::TimestampMillis,
            DataType::TimestampMicros,
            DataType::Date,
        ] {
            let m = MapType::new(d, d).unwrap();
            assert_eq!((m.key(), m.value()), (d, d));
        }
        assert!(MapType::new(t, DataType::BigInt).is_none());
        let a = DataType::Array(ArrayType::new(DataType::BigInt).unwrap());
        assert!(a.admits(&Scalar::Array(vec![Scalar::Int(1), Scalar::Null].into())));
        assert!(!a.admits(&Scalar::Array(vec![Scalar::str("x")].into())));
        assert!(MapType::new(DataType::Varchar, a).is_none());
        assert!(ArrayType::new(t).is_none());
        assert_eq!(t.to_string(), "MAP<VARCHAR, BIGINT>");
    }
}
