//! Row formats of the `filesystem` and `values` connectors: JSON lines and CSV, decoded by the
//! table's schema (a JSON object's fields looked up by name — nested objects reach dotted
//! columns such as `bid.price`; unknown fields skipped without building values), and encoded
//! for sinks with exact decimals and Flink's timestamp text (`2026-12-05 14:00:00.000`).

use crate::error::PlanError;
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

    /// The decoder of only the columns marked in `needed`, if it can skip the others (the
    /// others stay NULL); by default it decodes every column anyway.
    fn only_needed(&self, needed: &[bool]) -> Self {
        let _ = needed;
        self.clone()
    }

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

    fn only_needed(&self, needed: &[bool]) -> Self {
        self.clone().only(needed)
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
    pub names: JsonNames,
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
                        // Flink's default (`json.map-null-key.mode` = FAIL): the record fails.
                        Scalar::Null => {
                            return Err(serde::ser::Error::custom(
                                "a map has a NULL key: JSON object keys are strings",
                            ))
                        }
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

/// Appends `v` as one CSV field: its text (`BYTES` in base64, as the `csv` format reads them;
/// NULL as nothing), quoted when it holds the delimiter, a quote or a line break.
pub(crate) fn write_csv_field(v: &Scalar, delimiter: u8, out: &mut Vec<u8>) {
    use std::borrow::Cow;
    let text = match v {
        Scalar::Null => return,
        Scalar::Str(s) => Cow::Borrowed(s.as_str()),
        Scalar::Int(i) => {
            out.extend_from_slice(itoa_text(*i).as_bytes());
            return;
        }
        Scalar::Bytes(b) => Cow::Owned(BASE64.encode(b)),
        other => Cow::Owned(other.to_string()),
    };
    if text
        .bytes()
        .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r')
    {
        out.push(b'"');
        for b in text.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// An integer's decimal text without a `fmt` call.
fn itoa_text(i: i64) -> compact_str::CompactString {
    compact_str::ToCompactString::to_compact_string(&i)
}

/// Refuses a MAP column whose keys are not strings in a table with the `json` format (its
/// `format`, `value.format` or `key.format`): JSON object keys are strings — Flink's `json`
/// format refuses them too.
pub(crate) fn check_json_map_keys(table: &crate::catalog::TableDef) -> Result<(), PlanError> {
    let json = ["format", "value.format", "key.format"]
        .iter()
        .any(|k| table.options.get(*k).is_some_and(|f| f == "json"));
    if !json {
        return Ok(());
    }
    match table.physical().find(|c| {
        matches!(c.data_type, DataType::Map(m) if m.key() != DataType::Varchar)
    }) {
        Some(c) => Err(PlanError::unsupported(format!(
            "table `{}`: column `{}` is {}: the json format takes maps with STRING keys only (JSON object keys are strings)",
            table.name, c.name, c.data_type
        ))),
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
        JsonObject {
            entries: self
                .names
                .names
                .iter()
                .map(String::as_str)
                .zip(self.row.values.iter()),
            nested: self.names.nested,
        }
        .serialize(s)
    }
}

/// The column names of a writer's JSON objects, and whether any of them nests (a dotted
/// `r.y`: field `y` of the `ROW` column `r`) — found once when the writer is made, not per row.
#[derive(Clone, Debug)]
pub struct JsonNames {
    names: Arc<[String]>,
    nested: bool,
}

impl JsonNames {
    /// The name of column `i`.
    pub(crate) fn get(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The names in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.names.iter().map(String::as_str)
    }

    /// Whether a name nests.
    pub(crate) fn nested(&self) -> bool {
        self.nested
    }
}

impl From<Arc<[String]>> for JsonNames {
    fn from(names: Arc<[String]>) -> Self {
        let nested = names.iter().any(|n| n.contains('.'));
        JsonNames { names, nested }
    }
}

impl From<Vec<String>> for JsonNames {
    fn from(names: Vec<String>) -> Self {
        Arc::<[String]>::from(names).into()
    }
}

/// Named values as one JSON object. With `nested` (some name is dotted, [`JsonNames`]), a
/// dotted name (`r.y`: field `y` of the `ROW` column `r`) nests — `{"r": {"y": …}}` — as the
/// `json` format reads it back (and as Flink writes a row); consecutive fields of one row
/// share its object.
pub(crate) struct JsonObject<'a, I>
where
    I: Iterator<Item = (&'a str, &'a Scalar)> + Clone,
{
    pub(crate) entries: I,
    pub(crate) nested: bool,
}

impl<'a, I> Serialize for JsonObject<'a, I>
where
    I: Iterator<Item = (&'a str, &'a Scalar)> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.nested {
            let mut m = s.serialize_map(None)?;
            for (name, v) in self.entries.clone() {
                m.serialize_entry(name, &JsonScalar(v))?;
            }
            return m.end();
        }
        let entries: Vec<(&str, &Scalar)> = self.entries.clone().collect();
        Nested(&entries).serialize(s)
    }
}

/// Entries whose names are paths below one object (`y` and `z.w` of `r.y`, `r.z.w`).
struct Nested<'e, 'a>(&'e [(&'a str, &'a Scalar)]);

impl Serialize for Nested<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut rest = self.0;
        while let Some(&(name, v)) = rest.first() {
            match name.split_once('.') {
                None => {
                    m.serialize_entry(name, &JsonScalar(v))?;
                    rest = &rest[1..];
                }
                Some((head, _)) => {
                    // The run of entries under `head.`, their names relative to it.
                    let run = rest
                        .iter()
                        .take_while(|(n, _)| n.split_once('.').is_some_and(|(h, _)| h == head))
                        .count();
                    let inner: Vec<(&str, &Scalar)> = rest[..run]
                        .iter()
                        .map(|&(n, v)| (n.split_once('.').expect("dotted").1, v))
                        .collect();
                    m.serialize_entry(head, &Nested(&inner))?;
                    rest = &rest[run..];
                }
            }
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
