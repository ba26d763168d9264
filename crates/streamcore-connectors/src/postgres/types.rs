//! PostgreSQL column types and [`Scalar`] values: which row types fit which column types
//! ([`PgType::admits`]), the binary encoding of a whole column of a batch as one array
//! parameter ([`ColumnArray`], for `unnest($1::int8[], …)` statements), and the text form
//! of values that logical decoding (pgoutput) sends ([`PgType::decode_text`]).

use bytes::{BufMut, BytesMut};
use postgres::types::{IsNull, Kind, ToSql, Type};
use rust_decimal::Decimal;
use std::str::FromStr;
use streamcore::row::{DataType, Scalar};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The column types the connector reads and writes (by their `pg_type.typname`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgType {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric`.
    Numeric,
    /// `text`, `varchar`, `char(n)`, `name`.
    Text,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `bytea`.
    Bytea,
    /// `timestamp without time zone`.
    Timestamp,
    /// `timestamp with time zone`.
    Timestamptz,
    /// `date`.
    Date,
    /// `uuid`.
    Uuid,
}

impl PgType {
    /// The type of `typname`, if the connector supports it.
    pub fn from_name(typname: &str) -> Option<Self> {
        Some(match typname {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => PgType::Numeric,
            "text" | "varchar" | "bpchar" | "name" => PgType::Text,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "bytea" => PgType::Bytea,
            "timestamp" => PgType::Timestamp,
            "timestamptz" => PgType::Timestamptz,
            "date" => PgType::Date,
            "uuid" => PgType::Uuid,
            _ => return None,
        })
    }

    /// Whether values of the row type `t` can be written to a column of this type.
    pub fn admits(self, t: DataType) -> bool {
        use PgType::*;
        match t {
            DataType::Boolean => self == Bool,
            DataType::BigInt => matches!(self, Int2 | Int4 | Int8 | Numeric),
            DataType::Double => matches!(self, Float4 | Float8 | Numeric),
            DataType::Decimal { .. } => self == Numeric,
            DataType::Varchar => matches!(self, Text | Json | Jsonb | Uuid),
            DataType::Bytes => self == Bytea,
            DataType::TimestampMillis | DataType::TimestampMicros => {
                matches!(self, Timestamp | Timestamptz)
            }
            DataType::Date => self == Date,
            // A map is a JSON object, an array a JSON array.
            DataType::Map(_) | DataType::Array(_) => matches!(self, Json | Jsonb),
        }
    }

    /// The row type a column of this type reads as (`numeric(p, s)`: `typmod` gives `p, s`;
    /// an unconstrained `numeric` reads as `DECIMAL(28, 10)`, values keeping their own scale).
    pub fn data_type(self, typmod: i32) -> DataType {
        use PgType::*;
        match self {
            Bool => DataType::Boolean,
            Int2 | Int4 | Int8 => DataType::BigInt,
            Float4 | Float8 => DataType::Double,
            Numeric => {
                let (precision, scale) = if typmod >= 4 {
                    let m = typmod - 4;
                    (((m >> 16) & 0xffff) as u8, (m & 0xffff) as u8)
                } else {
                    (28, 10)
                };
                DataType::Decimal {
                    precision: precision.min(28),
                    scale,
                }
            }
            Text | Json | Jsonb | Uuid => DataType::Varchar,
            Bytea => DataType::Bytes,
            Timestamp | Timestamptz => DataType::TimestampMicros,
            Date => DataType::Date,
        }
    }

    /// Appends the binary form of `value` (not null) to `out`.
    fn encode(self, value: &Scalar, out: &mut BytesMut) -> Result<(), String> {
        use PgType::*;
        let mismatch = || {
            Err(format!(
                "a {} value cannot be written to a {self:?} column",
                value.type_name()
            ))
        };
        match (self, value) {
            (Bool, Scalar::Bool(b)) => out.put_u8(*b as u8),
            (Int2, Scalar::Int(v)) => out.put_i16(
                i16::try_from(*v).map_err(|_| format!("{v} is out of range for smallint"))?,
            ),
            (Int4, Scalar::Int(v)) => out.put_i32(
                i32::try_from(*v).map_err(|_| format!("{v} is out of range for integer"))?,
            ),
            (Int8, Scalar::Int(v)) => out.put_i64(*v),
            (Float4, Scalar::Float(v)) => out.put_f32(v.get() as f32),
            (Float4, Scalar::Int(v)) => out.put_f32(*v as f32),
            (Float8, Scalar::Float(v)) => out.put_f64(v.get()),
            (Float8, Scalar::Int(v)) => out.put_f64(*v as f64),
            (Numeric, Scalar::Decimal(d)) => numeric(d, out)?,
            (Numeric, Scalar::Int(v)) => numeric(&Decimal::from(*v), out)?,
            (Numeric, Scalar::Float(v)) => numeric(
                &Decimal::try_from(v.get())
                    .map_err(|e| format!("{} is not a numeric: {e}", v.get()))?,
                out,
            )?,
            (Text | Json, Scalar::Str(s)) => out.put_slice(s.as_bytes()),
            (Jsonb, Scalar::Str(s)) => {
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            (Json | Jsonb, Scalar::Map(_) | Scalar::Array(_)) => {
                let mut text = String::new();
                crate::template::write_json_value(value, &mut text);
                if self == Jsonb {
                    out.put_u8(1);
                }
                out.put_slice(text.as_bytes());
            }
            (Uuid, Scalar::Str(s)) => out.put_slice(&parse_uuid(s)?),
            (Bytea, Scalar::Bytes(b)) => out.put_slice(b),
            (Timestamp | Timestamptz, Scalar::TimestampMs(ms)) => {
                out.put_i64(ms.saturating_mul(1000) - PG_EPOCH_US)
            }
            (Timestamp | Timestamptz, Scalar::TimestampUs(us)) => out.put_i64(us - PG_EPOCH_US),
            (Date, Scalar::Date(d)) => out.put_i32(d - PG_EPOCH_DAYS),
            _ => return mismatch(),
        }
        Ok(())
    }

    /// Reads the text form of a value of this type (what pgoutput and `COPY … TEXT` send).
    pub fn decode_text(self, text: &str) -> Result<Scalar, String> {
        use PgType::*;
        let bad = |e: &dyn std::fmt::Display| format!("`{text}` is not a {self:?}: {e}");
        Ok(match self {
            Bool => Scalar::Bool(matches!(text, "t" | "true")),
            Int2 | Int4 | Int8 => Scalar::Int(text.parse().map_err(|e| bad(&e))?),
            Float4 | Float8 => Scalar::float(match text {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => text.parse().map_err(|e| bad(&e))?,
            }),
            Numeric => Scalar::Decimal(Decimal::from_str(text).map_err(|e| bad(&e))?),
            Text | Json | Jsonb | Uuid => Scalar::str(text),
            Bytea => Scalar::Bytes(parse_bytea(text).map_err(|e| bad(&e))?),
            Timestamp | Timestamptz => {
                Scalar::TimestampUs(parse_timestamp_us(text).map_err(|e| bad(&e))?)
            }
            Date => Scalar::Date(parse_date(text).map_err(|e| bad(&e))?),
        })
    }
}

fn numeric(d: &Decimal, out: &mut BytesMut) -> Result<(), String> {
    d.to_sql(&Type::NUMERIC, out)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    let mut out = [0u8; 16];
    if hex.len() != 32 {
        return Err(format!("`{s}` is not a uuid"));
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| format!("`{s}` is not a uuid"))?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| format!("`{s}` is not a uuid"))?;
    }
    Ok(out)
}

fn parse_bytea(text: &str) -> Result<Vec<u8>, String> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or("expected the hex form \\x…")?;
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_date(text: &str) -> Result<i32, String> {
    let mut parts = text.splitn(3, '-');
    let mut next = || -> Result<i64, String> {
        parts
            .next()
            .ok_or("expected YYYY-MM-DD")?
            .parse::<i64>()
            .map_err(|e| e.to_string())
    };
    let (y, m, d) = (next()?, next()?, next()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err("expected YYYY-MM-DD".into());
    }
    Ok(days_from_civil(y, m, d) as i32)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]` → microseconds since the Unix epoch (a zone
/// offset, as `timestamptz` has, is applied; without one the time is taken as UTC).
fn parse_timestamp_us(text: &str) -> Result<i64, String> {
    let (date, rest) = text
        .split_once([' ', 'T'])
        .ok_or("expected a date and a time")?;
    let days = parse_date(date)? as i64;
    let zone_at = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let mut hms = time.splitn(3, ':');
    let h: i64 = hms.next().unwrap_or("").parse().map_err(|_| "bad hour")?;
    let m: i64 = hms.next().unwrap_or("").parse().map_err(|_| "bad minute")?;
    let sec = hms.next().unwrap_or("0");
    let (s, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let s: i64 = s.parse().map_err(|_| "bad second")?;
    let mut micros: i64 = 0;
    for (i, c) in frac.bytes().take(6).enumerate() {
        if !c.is_ascii_digit() {
            return Err("bad fraction".into());
        }
        micros += (c - b'0') as i64 * 10i64.pow(5 - i as u32);
    }
    let mut offset_s = 0;
    if let Some(sign) = zone.chars().next().filter(|c| *c != 'Z') {
        let z = &zone[1..];
        let mut it = z.split(':');
        let zh: i64 = it.next().unwrap_or("0").parse().map_err(|_| "bad zone")?;
        let zm: i64 = it.next().unwrap_or("0").parse().map_err(|_| "bad zone")?;
        offset_s = (zh * 3600 + zm * 60) * if sign == '-' { -1 } else { 1 };
    }
    Ok(((days * 86_400 + h * 3600 + m * 60 + s - offset_s) * 1_000_000) + micros)
}

/// One column of a batch as a PostgreSQL array parameter, in binary form: the statements
/// take a whole batch as one array per column (`unnest($1::int8[], $2::text[], …)`), so a
/// batch is one round trip and one statement execution whatever its size.
#[derive(Debug)]
pub struct ColumnArray {
    ty: PgType,
    elem_oid: u32,
    len: i32,
    has_null: bool,
    data: BytesMut,
}

impl ColumnArray {
    /// An empty column of type `ty` (element type oid `elem_oid`).
    pub fn new(ty: PgType, elem_oid: u32) -> Self {
        ColumnArray {
            ty,
            elem_oid,
            len: 0,
            has_null: false,
            data: BytesMut::new(),
        }
    }

    /// Empties the column, keeping its buffer.
    pub fn clear(&mut self) {
        self.len = 0;
        self.has_null = false;
        self.data.clear();
    }

    /// The encoded size so far.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Where the column ends now: [`ColumnArray::truncate`] goes back there.
    pub fn mark(&self) -> (i32, bool, usize) {
        (self.len, self.has_null, self.data.len())
    }

    /// Goes back to a [`ColumnArray::mark`] (drops a row that failed in a later column).
    pub fn truncate(&mut self, mark: (i32, bool, usize)) {
        self.len = mark.0;
        self.has_null = mark.1;
        self.data.truncate(mark.2);
    }

    /// Appends one value; an error says why it does not fit (the row is then dropped).
    pub fn push(&mut self, value: &Scalar) -> Result<(), String> {
        if value.is_null() {
            self.has_null = true;
            self.data.put_i32(-1);
        } else {
            let at = self.data.len();
            self.data.put_i32(0);
            self.ty.encode(value, &mut self.data)?;
            let n = (self.data.len() - at - 4) as i32;
            self.data[at..at + 4].copy_from_slice(&n.to_be_bytes());
        }
        self.len += 1;
        Ok(())
    }
}

impl ToSql for ColumnArray {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i32(1); // dimensions
        out.put_i32(self.has_null as i32);
        out.put_u32(self.elem_oid);
        out.put_i32(self.len);
        out.put_i32(1); // lower bound
        out.put_slice(&self.data);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Array(_))
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_decode() {
        assert_eq!(
            PgType::Timestamp.decode_text("2023-11-14 22:13:20.123456"),
            Ok(Scalar::TimestampUs(1_700_000_000_123_456))
        );
        assert_eq!(
            PgType::Timestamptz.decode_text("2023-11-14 23:13:20.5+01"),
            Ok(Scalar::TimestampUs(1_700_000_000_500_000))
        );
        assert_eq!(PgType::Date.decode_text("1970-01-02"), Ok(Scalar::Date(1)));
        assert_eq!(
            PgType::Date.decode_text("2000-01-01"),
            Ok(Scalar::Date(10_957))
        );
        assert_eq!(
            PgType::Bytea.decode_text("\\x00ff"),
            Ok(Scalar::Bytes(vec![0, 255]))
        );
        assert!(PgType::Int8.decode_text("x").is_err());
    }

    #[test]
    fn numeric_typmod_gives_precision_and_scale() {
        let typmod = ((10 << 16) | 2) + 4;
        assert_eq!(
            PgType::Numeric.data_type(typmod),
            DataType::Decimal {
                precision: 10,
                scale: 2
            }
        );
    }

    #[test]
    fn out_of_range_values_are_refused_and_the_row_dropped() {
        let mut c = ColumnArray::new(PgType::Int2, 21);
        c.push(&Scalar::Int(7)).unwrap();
        let mark = c.mark();
        assert!(c
            .push(&Scalar::Int(70_000))
            .unwrap_err()
            .contains("out of range"));
        c.truncate(mark);
        assert_eq!(c.len, 1);
        assert_eq!(c.bytes(), 4 + 2);
    }
}
