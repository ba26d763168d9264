//! SQL types as the planner sees them: [`SqlType`] (a column type, an interval, or the type of
//! a bare `NULL`), and the mapping from sqlparser's type names (Flink's spelling) onto
//! [`streamcore::row::DataType`].

use crate::error::PlanError;
use sqlparser::ast::{DataType as AstType, ExactNumberInfo, TimezoneInfo};
use std::fmt;
use streamcore::row::{ArrayType, DataType, MapType};

/// The type of an expression during planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// A value of a column type.
    Data(DataType),
    /// `INTERVAL …`: a duration in milliseconds at run time, or months for a year-month
    /// interval.
    Interval(IntervalKind),
    /// The type of a bare `NULL` literal: it takes the type its context needs.
    Null,
}

/// The two families of `INTERVAL`, as SQL (and Flink) tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntervalKind {
    /// A day-time interval (`INTERVAL '4' SECOND`, `'2' DAY`, `'1 02:30' DAY TO MINUTE`): a
    /// fixed length, milliseconds at run time.
    DayTime,
    /// A year-month interval (`INTERVAL '1' MONTH`, `'1-6' YEAR TO MONTH`): no fixed length,
    /// added in calendar months (the day kept, clamped to the month's last). Months at run
    /// time.
    YearMonth,
}

impl SqlType {
    /// `BOOLEAN`.
    pub const BOOLEAN: SqlType = SqlType::Data(DataType::Boolean);
    /// `BIGINT`.
    pub const BIGINT: SqlType = SqlType::Data(DataType::BigInt);
    /// `DOUBLE`.
    pub const DOUBLE: SqlType = SqlType::Data(DataType::Double);
    /// `VARCHAR`.
    pub const VARCHAR: SqlType = SqlType::Data(DataType::Varchar);
    /// `TIMESTAMP(3)`.
    pub const TIMESTAMP: SqlType = SqlType::Data(DataType::TimestampMillis);

    /// The column type a value of this type is stored as (`INTERVAL` as milliseconds or
    /// months in a `BIGINT`; a bare `NULL` as `VARCHAR`, as Flink prints it).
    pub fn data_type(self) -> DataType {
        match self {
            SqlType::Data(d) => d,
            SqlType::Interval(_) => DataType::BigInt,
            SqlType::Null => DataType::Varchar,
        }
    }

    /// Integers, doubles and decimals.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            SqlType::Data(DataType::BigInt | DataType::Double | DataType::Decimal { .. })
                | SqlType::Null
        )
    }

    /// Timestamps and dates.
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            SqlType::Data(DataType::TimestampMillis | DataType::TimestampMicros | DataType::Date)
        )
    }

    /// `MAP<k, v>`.
    pub fn is_map(self) -> bool {
        matches!(self, SqlType::Data(DataType::Map(_)))
    }

    /// `ARRAY<t>`.
    pub fn is_array(self) -> bool {
        matches!(self, SqlType::Data(DataType::Array(_)))
    }

    /// A map or an array: compared with `=` and `<>` only, no order.
    pub fn is_collection(self) -> bool {
        self.is_map() || self.is_array()
    }

    /// Any `INTERVAL`.
    pub fn is_interval(self) -> bool {
        matches!(self, SqlType::Interval(_))
    }

    /// `VARCHAR` (or a bare `NULL`).
    pub fn is_string(self) -> bool {
        matches!(self, SqlType::Data(DataType::Varchar) | SqlType::Null)
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Data(d) => write!(f, "{d}"),
            SqlType::Interval(IntervalKind::YearMonth) => f.write_str("INTERVAL YEAR TO MONTH"),
            SqlType::Interval(IntervalKind::DayTime) => f.write_str("INTERVAL DAY TO SECOND"),
            SqlType::Null => f.write_str("NULL"),
        }
    }
}

/// The result type of arithmetic on two numbers, by Flink's rules: integers stay integers,
/// a double makes a double, otherwise a decimal whose scale is what the operation needs.
pub fn numeric_result(op: ArithOp, l: SqlType, r: SqlType) -> SqlType {
    use DataType::*;
    let (l, r) = (l.data_type(), r.data_type());
    match (l, r) {
        (Double, _) | (_, Double) => SqlType::DOUBLE,
        (BigInt, BigInt) => SqlType::BIGINT,
        _ => {
            let (p1, s1) = decimal_parts(l);
            let (p2, s2) = decimal_parts(r);
            let (p, s) = match op {
                ArithOp::Mul => (p1 + p2, s1 + s2),
                ArithOp::Add | ArithOp::Sub => {
                    let s = s1.max(s2);
                    ((p1 - s1).max(p2 - s2) + s + 1, s)
                }
                ArithOp::Div => {
                    let s = 6.max(s1 + p2 + 1);
                    (p1 - s1 + s2 + s, s)
                }
                ArithOp::Mod => {
                    let s = s1.max(s2);
                    ((p1 - s1).min(p2 - s2) + s, s)
                }
            };
            let p = p.min(38);
            SqlType::Data(Decimal {
                precision: p as u8,
                scale: s.min(p) as u8,
            })
        }
    }
}

/// `d` at `scale` digits after the point, rounded half away from zero (Flink's `HALF_UP`,
/// for every cast, division and average into a `DECIMAL`).
///
/// ```
/// use streamcore_sql::types::to_scale;
/// let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
/// assert_eq!(to_scale(d("0.0005"), 3).to_string(), "0.001");
/// assert_eq!(to_scale(d("-2.5"), 0).to_string(), "-3");
/// assert_eq!(to_scale(d("1.5"), 2).to_string(), "1.50");
/// ```
pub fn to_scale(mut d: rust_decimal::Decimal, scale: u32) -> rust_decimal::Decimal {
    d = d.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    d.rescale(scale);
    d
}

/// Precision and scale of a numeric type (`BIGINT` is `DECIMAL(19, 0)`).
fn decimal_parts(d: DataType) -> (u32, u32) {
    match d {
        DataType::Decimal { precision, scale } => (precision as u32, scale as u32),
        _ => (19, 0),
    }
}

/// The arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%` / `MOD`
    Mod,
}

impl ArithOp {
    /// The operator as written: `+`, `-`, `*`, `/`, `%`.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

/// Maps a declared type (Flink's names) onto a column type.
pub fn from_ast(ty: &AstType) -> Result<DataType, PlanError> {
    Ok(match ty {
        AstType::Boolean | AstType::Bool => DataType::Boolean,
        AstType::TinyInt(_)
        | AstType::SmallInt(_)
        | AstType::Int(_)
        | AstType::Integer(_)
        | AstType::BigInt(_) => DataType::BigInt,
        AstType::Float(_)
        | AstType::Real
        | AstType::Double(_)
        | AstType::DoublePrecision
        | AstType::Float64 => DataType::Double,
        AstType::Decimal(info) | AstType::Numeric(info) | AstType::Dec(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
            };
            if p > 28 {
                return Err(PlanError::unsupported(format!(
                    "DECIMAL({p}, {s}): exact decimals have at most 28 digits here"
                )));
            }
            DataType::Decimal {
                precision: p as u8,
                scale: s as u8,
            }
        }
        AstType::Varchar(_)
        | AstType::Char(_)
        | AstType::Character(_)
        | AstType::CharVarying(_)
        | AstType::CharacterVarying(_)
        | AstType::String(_)
        | AstType::Text => DataType::Varchar,
        AstType::Bytes(_) | AstType::Varbinary(_) | AstType::Binary(_) | AstType::Bytea => {
            DataType::Bytes
        }
        AstType::Timestamp(precision, tz) => {
            if !matches!(tz, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) {
                return Err(PlanError::unsupported(format!(
                    "`{ty}`: time zones (TIMESTAMP_LTZ) are not supported yet; use TIMESTAMP(3)"
                )));
            }
            match precision {
                None | Some(0..=3) => DataType::TimestampMillis,
                Some(4..=6) => DataType::TimestampMicros,
                Some(p) => {
                    return Err(PlanError::unsupported(format!(
                        "TIMESTAMP({p}): at most microseconds (6)"
                    )))
                }
            }
        }
        AstType::Datetime(_) => DataType::TimestampMillis,
        AstType::Date => DataType::Date,
        AstType::Array(
            sqlparser::ast::ArrayElemTypeDef::AngleBracket(element)
            | sqlparser::ast::ArrayElemTypeDef::SquareBracket(element, _)
            | sqlparser::ast::ArrayElemTypeDef::Parenthesis(element)
            | sqlparser::ast::ArrayElemTypeDef::Qualified(element, _),
        ) => {
            let e = from_ast(element)?;
            ArrayType::new(e).map(DataType::Array).ok_or_else(|| {
                PlanError::unsupported(format!(
                    "`{ty}`: an array's elements are not maps or arrays here"
                ))
            })?
        }
        AstType::Map(key, value, _) => {
            let (k, v) = (from_ast(key)?, from_ast(value)?);
            MapType::new(k, v).ok_or_else(|| {
                PlanError::unsupported(format!(
                    "`{ty}`: a MAP's keys and values are not maps or arrays here"
                ))
            })
            .map(DataType::Map)?
        }
        other => {
            return Err(PlanError::unsupported(format!(
                "the type `{other}` is not supported (supported: BOOLEAN, TINYINT…BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), VARCHAR/STRING, BYTES, TIMESTAMP(3|6), DATE, MAP<k, v>, ARRAY<t>)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_decimal_rules() {
        let price = SqlType::BIGINT;
        let rate = SqlType::Data(DataType::Decimal {
            precision: 4,
            scale: 3,
        });
        // Nexmark q1: 0.908 * price is DECIMAL(23, 3) in Flink.
        assert_eq!(
            numeric_result(ArithOp::Mul, rate, price),
            SqlType::Data(DataType::Decimal {
                precision: 23,
                scale: 3
            })
        );
        assert_eq!(numeric_result(ArithOp::Add, price, price), SqlType::BIGINT);
        assert_eq!(
            numeric_result(ArithOp::Div, SqlType::DOUBLE, price),
            SqlType::DOUBLE
        );
    }
}
