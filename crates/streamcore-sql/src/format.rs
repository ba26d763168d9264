//! Row formats of the `filesystem` and `values` connectors: JSON lines and CSV, decoded by the
//! table's schema (a JSON object's fields looked up by name — nested objects reach dotted
//! columns such as `bid.price`; unknown fields skipped without building values), and encoded
//! for sinks with exact decimals and Flink's timestamp text (`2026-12-05 14:00:00.000`).

use crate::expr::{parse_as, parse_timestamp_ms};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use streamcore::row::{DataType, Row, Scalar, Schema};
use streamcore_connectors::LineDecoder;

/// Decodes JSON objects into rows of a schema.
#[derive(Clone)]
pub struct JsonRowDecoder {
    inner: Arc<JsonLayout>,
    ignore_errors: bool,
}

/// The fields of one JSON object the schema reads: a column, or a nested object that leads to
/// columns (`bid` of `bid.price`). Looked up by the key as the parser hands it over, without
/// building a path string per field.
#[derive(Default)]
struct JsonNode {
    fields: HashMap<Box<str>, JsonEntry, foldhash::fast::FixedState>,
}

enum JsonEntry {
    Column(usize),
    Nested(JsonNode),
}

struct JsonLayout {
    root: JsonNode,
    /// Every column's name (nested: `outer.inner`), read or not.
    names: Vec<String>,
    types: Vec<DataType>,
}

impl JsonLayout {
    /// The layout that reads the columns for which `keep` holds.
    fn of(names: Vec<String>, types: Vec<DataType>, keep: impl Fn(usize) -> bool) -> Self {
        let mut root = JsonNode::default();
        for (i, name) in names.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            let mut node = &mut root;
            let mut parts = name.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    node.fields.insert(part.into(), JsonEntry::Column(i));
                    break;
                }
                let entry = node
                    .fields
                    .entry(part.into())
                    .or_insert_with(|| JsonEntry::Nested(JsonNode::default()));
                node = match entry {
                    JsonEntry::Nested(n) => n,
                    // A column named like the object that holds others: the column wins.
                    JsonEntry::Column(_) => break,
                };
            }
        }
        JsonLayout { root, names, types }
    }
}

impl JsonRowDecoder {
    /// A decoder for `schema`; with `ignore_errors`, a line that does not decode is skipped
    /// (Flink's `json.ignore-parse-errors`), otherwise it follows the job's error policy.
    pub fn new(schema: Schema, ignore_errors: bool) -> Self {
        let names = schema.fields.iter().map(|f| f.name.clone()).collect();
        let types = schema.fields.iter().map(|f| f.data_type).collect();
        JsonRowDecoder {
            inner: Arc::new(JsonLayout::of(names, types, |_| true)),
            ignore_errors,
        }
    }

    /// Decodes only the columns marked in `needed` (the others stay NULL, their JSON fields
    /// are skipped unparsed).
    pub fn only(self, needed: &[bool]) -> Self {
        let layout = JsonLayout::of(self.inner.names.clone(), self.inner.types.clone(), |i| {
            needed.get(i).copied().unwrap_or(true)
        });
        JsonRowDecoder {
            inner: Arc::new(layout),
            ignore_errors: self.ignore_errors,
        }
    }

    /// Decodes one JSON object.
    pub fn decode_row(&self, line: &str) -> Result<Row, String> {
        let mut values = vec![Scalar::Null; self.inner.types.len()];
        let mut de = serde_json::Deserializer::from_str(line);
        ObjectSeed {
            layout: &self.inner,
            node: &self.inner.root,
            values: &mut values,
        }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(Row::new(values))
    }
}

impl LineDecoder for JsonRowDecoder {
    type Out = Row;

    fn decode(&self, line: &str) -> Result<Option<Row>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        match self.decode_row(line) {
            Ok(r) => Ok(Some(r)),
            Err(_) if self.ignore_errors => Ok(None),
            Err(e) => Err(e),
        }
    }
}

struct ObjectSeed<'a> {
    layout: &'a JsonLayout,
    node: &'a JsonNode,
    values: &'a mut Vec<Scalar>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.node.fields.get(key.as_ref()) {
                Some(&JsonEntry::Column(i)) => {
                    let ty = self.layout.types[i];
                    let v = map.next_value_seed(ValueSeed { ty }).map_err(|e| {
                        de::Error::custom(format!("field `{}`: {e}", self.layout.names[i]))
                    })?;
                    self.values[i] = v;
                }
                Some(JsonEntry::Nested(node)) => map.next_value_seed(NestedSeed {
                    layout: self.layout,
                    node,
                    values: self.values,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct NestedSeed<'a> {
    layout: &'a JsonLayout,
    node: &'a JsonNode,
    values: &'a mut Vec<Scalar>,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        ObjectSeed {
            layout: self.layout,
            node: self.node,
            values: self.values,
        }
        .visit_map(map)
    }
}

struct ValueSeed {
    ty: DataType,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Scalar;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of type {}", self.ty)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        match self.ty {
            DataType::Boolean => Ok(Scalar::Bool(v)),
            DataType::Varchar => Ok(Scalar::str(if v { "true" } else { "false" })),
            t => Err(E::custom(format!("expected {t}, got a boolean"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        match self.ty {
            DataType::BigInt => Ok(Scalar::Int(v)),
            DataType::Double => Ok(Scalar::float(v as f64)),
            DataType::Decimal { scale, .. } => {
                let mut d = Decimal::from(v);
                d.rescale(scale as u32);
                Ok(Scalar::Decimal(d))
            }
            DataType::TimestampMillis => Ok(Scalar::TimestampMs(v)),
            DataType::TimestampMicros => Ok(Scalar::TimestampUs(v)),
            DataType::Varchar => Ok(Scalar::str(&v.to_string())),
            t => Err(E::custom(format!("expected {t}, got a number"))),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::custom(format!("{v} is out of the BIGINT range"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        match self.ty {
            DataType::Double => Ok(Scalar::float(v)),
            DataType::Decimal { scale, .. } => {
                let mut d = Decimal::from_f64(v)
                    .ok_or_else(|| E::custom(format!("{v} is not a decimal")))?;
                d = d.round_dp(scale as u32);
                d.rescale(scale as u32);
                Ok(Scalar::Decimal(d))
            }
            DataType::Varchar => Ok(Scalar::str(&v.to_string())),
            t => Err(E::custom(format!("expected {t}, got the number {v}"))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        match self.ty {
            DataType::Varchar => Ok(Scalar::str(v)),
            DataType::TimestampMillis => parse_timestamp_ms(v)
                .map(Scalar::TimestampMs)
                .ok_or_else(|| E::custom(format!("expected a timestamp, got \"{v}\""))),
            t => parse_as(v, t).ok_or_else(|| E::custom(format!("expected {t}, got \"{v}\""))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Scalar, A::Error> {
        Err(de::Error::custom(format!(
            "expected {}, got an object",
            self.ty
        )))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<Scalar, A::Error> {
        Err(de::Error::custom(format!(
            "expected {}, got an array",
            self.ty
        )))
    }
}

/// Decodes CSV lines (no header) into rows of a schema; empty fields are NULL.
#[derive(Clone)]
pub struct CsvRowDecoder {
    types: Arc<[DataType]>,
    names: Arc<[String]>,
    delimiter: u8,
}

impl CsvRowDecoder {
    /// A decoder for `schema` with field delimiter `delimiter`.
    pub fn new(schema: Schema, delimiter: u8) -> Self {
        CsvRowDecoder {
            types: schema.fields.iter().map(|f| f.data_type).collect(),
            names: schema.fields.iter().map(|f| f.name.clone()).collect(),
            delimiter,
        }
    }
}

impl LineDecoder for CsvRowDecoder {
    type Out = Row;

    fn decode(&self, line: &str) -> Result<Option<Row>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let fields = split_csv_line(line, self.delimiter);
        if fields.len() != self.types.len() {
            return Err(format!(
                "{} fields, the table has {} columns",
                fields.len(),
                self.types.len()
            ));
        }
        let values = fields
            .iter()
            .zip(self.types.iter())
            .zip(self.names.iter())
            .map(|((f, t), name)| {
                if f.is_empty() {
                    Ok(Scalar::Null)
                } else {
                    parse_as(f, *t)
                        .ok_or_else(|| format!("field `{name}`: expected {t}, got \"{f}\""))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Row::new(values)))
    }
}

/// Splits one CSV line, with `"…"` quoting (`""` inside quotes is a quote).
pub fn split_csv_line(line: &str, delimiter: u8) -> Vec<String> {
    let delimiter = delimiter as char;
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() {
            quoted = true;
        } else if c == delimiter {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur.trim_end_matches('\r').to_string());
    out
}

/// A row with its column names, serialized as a JSON object (exact decimals, Flink's
/// timestamp text).
#[derive(Clone, Debug)]
pub struct JsonRow {
    /// The column names.
    pub names: Arc<[String]>,
    /// The row.
    pub row: Row,
}

pub(crate) struct JsonScalar<'a>(pub(crate) &'a Scalar);

impl Serialize for JsonScalar<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Scalar::Null => s.serialize_unit(),
            Scalar::Bool(b) => s.serialize_bool(*b),
            Scalar::Int(v) => s.serialize_i64(*v),
            Scalar::Float(v) => s.serialize_f64(v.get()),
            Scalar::Decimal(d) => serde_json::value::RawValue::from_string(d.to_string())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            Scalar::Str(v) => s.serialize_str(v),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl Serialize for JsonRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.names.len()))?;
        for (n, v) in self.names.iter().zip(self.row.values.iter()) {
            m.serialize_entry(n, &JsonScalar(v))?;
        }
        m.end()
    }
}

/// A row serialized as a CSV record (text of each value; NULL as an empty field).
#[derive(Clone, Debug)]
pub struct CsvRow(pub Row);

impl Serialize for CsvRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0.values.iter() {
            match v {
                Scalar::Null => seq.serialize_element("")?,
                Scalar::Int(i) => seq.serialize_element(i)?,
                Scalar::Str(t) => seq.serialize_element(t.as_str())?,
                other => seq.serialize_element(&other.to_string())?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("event_type", DataType::BigInt),
            Field::new("bid.price", DataType::BigInt),
            Field::new("bid.dateTime", DataType::TimestampMillis),
            Field::new("name", DataType::Varchar),
        ])
    }

    #[test]
    fn json_by_schema_with_nested_objects() {
        let d = JsonRowDecoder::new(schema(), false);
        let row = d
            .decode_row(r#"{"event_type":2,"bid":{"price":7,"dateTime":"2026-12-05 14:00:00.001","x":[1]},"other":{"a":1}}"#)
            .unwrap();
        assert_eq!(row.get(0), &Scalar::Int(2));
        assert_eq!(row.get(1), &Scalar::Int(7));
        assert_eq!(row.get(2).to_string(), "2026-12-05 14:00:00.001");
        assert_eq!(row.get(3), &Scalar::Null);
        let e = d.decode_row(r#"{"event_type":"x"}"#).unwrap_err();
        assert!(
            e.starts_with("field `event_type`: expected BIGINT, got \"x\""),
            "{e}"
        );
    }

    #[test]
    fn csv_lines() {
        assert_eq!(
            split_csv_line(r#"a,"b,c",,"d""e""#, b','),
            vec!["a", "b,c", "", "d\"e"]
        );
        let d = CsvRowDecoder::new(schema(), b',');
        let row = d.decode(",5,1970-01-01 00:00:01,x").unwrap().unwrap();
        assert_eq!(row.get(0), &Scalar::Null);
        assert_eq!(row.get(2), &Scalar::TimestampMs(1000));
        assert_eq!(
            d.decode("1,x,,").unwrap_err(),
            "field `bid.price`: expected BIGINT, got \"x\""
        );
    }

    #[test]
    fn json_rows_keep_decimals_exact() {
        let row = JsonRow {
            names: vec!["p".to_string(), "t".to_string()].into(),
            row: Row::new(vec![
                Scalar::Decimal("908.000".parse().unwrap()),
                Scalar::TimestampMs(0),
            ]),
        };
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"p":908.000,"t":"1970-01-01 00:00:00.000"}"#
        );
    }
}
