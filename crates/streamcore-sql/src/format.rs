//! Row formats of the `filesystem` and `values` connectors: JSON lines and CSV, decoded by the
//! table's schema (a JSON object's fields looked up by name — nested objects reach dotted
//! columns such as `bid.price`; unknown fields skipped without building values), and encoded
//! for sinks with exact decimals and Flink's timestamp text (`2026-12-05 14:00:00.000`).

use crate::expr::parse_as;
use crate::json_scan::JsonLayout;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::sync::Arc;
use streamcore::row::{DataType, Row, Scalar, Schema};

/// Decodes one line of a file or one message into a table's physical columns.
pub trait PhysicalDecoder: Clone + Send + 'static {
    /// The number of physical columns.
    fn width(&self) -> usize;

    /// Decodes `line` into `physical` (one value per physical column), or `Ok(false)` to skip
    /// it (a blank line; a bad one under `json.ignore-parse-errors`). Columns the line does not
    /// hold are left as they are: the caller starts from NULLs.
    fn decode_into(&mut self, line: &[u8], physical: &mut [Scalar]) -> Result<bool, String>;

    /// `line` as a row of the physical columns (`None`: skipped).
    fn decode_row(&mut self, line: &[u8]) -> Result<Option<Row>, String> {
        let mut values = vec![Scalar::Null; self.width()];
        Ok(self
            .decode_into(line, &mut values)?
            .then(|| Row::new(values)))
    }
}

/// Decodes JSON objects into rows of a schema, in one pass over the bytes that skips the
/// fields no column reads (the scanner of `json_scan.rs`).
#[derive(Clone)]
pub struct JsonRowDecoder {
    inner: Arc<JsonLayout>,
    ignore_errors: bool,
    /// Unescaped strings, reused from line to line.
    scratch: String,
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
            scratch: String::new(),
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
            ..self
        }
    }

    /// Decodes one JSON object into a row, for callers that share the decoder (`&self`).
    pub fn decode_shared(&self, line: &[u8]) -> Result<Option<Row>, String> {
        self.clone().decode_row(line)
    }
}

impl PhysicalDecoder for JsonRowDecoder {
    fn width(&self) -> usize {
        self.inner.types.len()
    }

    #[inline]
    fn decode_into(&mut self, line: &[u8], physical: &mut [Scalar]) -> Result<bool, String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        match self.inner.decode_into(line, physical, &mut self.scratch) {
            Ok(()) => Ok(true),
            Err(_) if self.ignore_errors => Ok(false),
            Err(e) => Err(e),
        }
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

    /// Decodes one CSV line into a row, for callers that share the decoder (`&self`).
    pub fn decode_shared(&self, line: &[u8]) -> Result<Option<Row>, String> {
        self.clone().decode_row(line)
    }
}

impl PhysicalDecoder for CsvRowDecoder {
    fn width(&self) -> usize {
        self.types.len()
    }

    fn decode_into(&mut self, line: &[u8], physical: &mut [Scalar]) -> Result<bool, String> {
        let line = streamcore_connectors::utf8_line(line)?;
        if line.trim().is_empty() {
            return Ok(false);
        }
        let fields = split_csv_line(line, self.delimiter);
        if fields.len() != self.types.len() {
            return Err(format!(
                "{} fields, the table has {} columns",
                fields.len(),
                self.types.len()
            ));
        }
        for (((f, t), name), slot) in fields
            .iter()
            .zip(self.types.iter())
            .zip(self.names.iter())
            .zip(physical.iter_mut())
        {
            *slot = if f.is_empty() {
                Scalar::Null
            } else if *t == DataType::Bytes {
                Scalar::Bytes(bytes_of_base64(f).map_err(|e| format!("field `{name}`: {e}"))?)
            } else {
                parse_as(f, *t)
                    .ok_or_else(|| format!("field `{name}`: expected {t}, got \"{f}\""))?
            };
        }
        Ok(true)
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
            // As Flink's JSON format writes bytes.
            Scalar::Bytes(b) => s.serialize_str(&BASE64.encode(b)),
            Scalar::Map(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries.iter() {
                    match k {
                        Scalar::Str(k) => m.serialize_entry(k.as_str(), &JsonScalar(v))?,
                        k => m.serialize_entry(&k.to_string(), &JsonScalar(v))?,
                    }
                }
                m.end()
            }
            Scalar::Array(elements) => {
                let mut seq = s.serialize_seq(Some(elements.len()))?;
                for e in elements.iter() {
                    seq.serialize_element(&JsonScalar(e))?;
                }
                seq.end()
            }
            other => s.serialize_str(&other.to_string()),
        }
    }
}

/// Refuses a MAP or ARRAY column in a CSV row: CSV has no form for one (nor has Flink's `csv`
/// format).
pub(crate) fn check_csv_columns<'f>(
    columns: impl IntoIterator<Item = (&'f str, DataType)>,
) -> Result<(), String> {
    match columns
        .into_iter()
        .find(|(_, t)| matches!(t, DataType::Map(_) | DataType::Array(_)))
    {
        Some((name, t)) => Err(format!(
            "column `{name}` is {t}: the csv format has no MAP or ARRAY columns (use json)"
        )),
        None => Ok(()),
    }
}

/// The bytes a base64 string holds (how JSON carries `BYTES`, as in Flink).
pub(crate) fn bytes_of_base64(text: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(text)
        .map_err(|e| format!("expected BYTES in base64, got \"{text}\" ({e})"))
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
                Scalar::Bytes(b) => seq.serialize_element(&BASE64.encode(b))?,
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
        let mut d = JsonRowDecoder::new(schema(), false);
        let row = d
            .decode_row(br#"{"event_type":2,"bid":{"price":7,"dateTime":"2026-12-05 14:00:00.001","x":[1]},"other":{"a":1}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(row.get(0), &Scalar::Int(2));
        assert_eq!(row.get(1), &Scalar::Int(7));
        assert_eq!(row.get(2).to_string(), "2026-12-05 14:00:00.001");
        assert_eq!(row.get(3), &Scalar::Null);
        let e = d.decode_row(br#"{"event_type":"x"}"#).unwrap_err();
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
        let mut d = CsvRowDecoder::new(schema(), b',');
        let row = d.decode_row(b",5,1970-01-01 00:00:01,x").unwrap().unwrap();
        assert_eq!(row.get(0), &Scalar::Null);
        assert_eq!(row.get(2), &Scalar::TimestampMs(1000));
        assert_eq!(
            d.decode_row(b"1,x,,").unwrap_err(),
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
