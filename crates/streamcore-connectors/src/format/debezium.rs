//! [`DebeziumJson`]: Debezium's JSON change events decoded into a changelog of
//! [`Change<Row>`] (Flink's `debezium-json` format), for the JSON-lines file source
//! ([`crate::LineDecoder`]) and the Kafka source (`KafkaDecoder`, feature `kafka`).
//!
//! An event is `{"before": {…}, "after": {…}, "op": "c", …}`, or the same inside
//! `{"schema": {…}, "payload": {…}}` when the converter includes schemas (detected). `op`
//! `c` (create) and `r` (snapshot read) become `+I after`, `u` becomes `-U before` then
//! `+U after`, `d` becomes `-D before`; `t` (truncate) and `m` (message) events and tombstones
//! (an empty value) are skipped. Columns are read by name into the [`Schema`]'s types:
//! integers, floats, decimals as numbers or strings (`decimal.handling.mode` `double` or
//! `string`), strings, booleans, bytes as base64 (`binary.handling.mode=bytes`), timestamps as
//! epoch milliseconds or microseconds (by the column's precision) or ISO-8601 text, dates as
//! epoch days or ISO text. An update without `before` is refused: Debezium sends it only for
//! tables with `REPLICA IDENTITY FULL` (PostgreSQL) or full row images.
//!
//! Each event gives one or two changes, so a record of this format is a `Vec<Change<Row>>`;
//! flatten the stream with `.flat_map(|changes| changes)`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;
use streamcore::changelog::Change;
use streamcore::row::{DataType, Row, Scalar, Schema};
use streamcore::{Result, StreamError, Timestamp};

/// Decodes Debezium JSON change events into changes of rows of a [`Schema`]; see the
/// [module docs](self).
///
/// ```
/// use streamcore::changelog::Change;
/// use streamcore::row::{DataType, Field, Row, Scalar, Schema};
/// use streamcore_connectors::format::debezium::DebeziumJson;
/// let format = DebeziumJson::new(Schema::new(vec![
///     Field::new("id", DataType::BigInt),
///     Field::new("name", DataType::Varchar),
/// ]));
/// let mut out = Vec::new();
/// format
///     .decode_into(br#"{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"b"},"op":"u"}"#, &mut out)
///     .unwrap();
/// assert_eq!(out, vec![
///     Change::UpdateBefore(Row::new(vec![Scalar::Int(1), Scalar::str("a")])),
///     Change::UpdateAfter(Row::new(vec![Scalar::Int(1), Scalar::str("b")])),
/// ]);
/// ```
#[derive(Clone, Debug)]
pub struct DebeziumJson {
    schema: Schema,
    ignore_parse_errors: bool,
}

impl DebeziumJson {
    /// Events of rows of `schema`.
    pub fn new(schema: Schema) -> Self {
        DebeziumJson {
            schema,
            ignore_parse_errors: false,
        }
    }

    /// Reads Flink's format options (`debezium-json.ignore-parse-errors`;
    /// `debezium-json.schema-include` is accepted and not needed: the envelope is detected).
    pub fn from_options(schema: Schema, options: &BTreeMap<String, String>) -> Result<Self> {
        let mut f = DebeziumJson::new(schema);
        for (k, v) in options {
            let flag = || {
                v.parse::<bool>().map_err(|_| {
                    StreamError::Config(format!("debezium-json: `{k}` is `{v}`, not true or false"))
                })
            };
            match k.as_str() {
                "debezium-json.ignore-parse-errors" => f.ignore_parse_errors = flag()?,
                "debezium-json.schema-include" => {
                    flag()?;
                }
                "format" | "value.format" => {}
                other if other.starts_with("debezium-json.") => {
                    return Err(StreamError::Config(format!(
                        "debezium-json: unknown option `{other}`"
                    )))
                }
                _ => {}
            }
        }
        Ok(f)
    }

    /// Skips events that cannot be decoded instead of rejecting them.
    pub fn ignore_parse_errors(mut self) -> Self {
        self.ignore_parse_errors = true;
        self
    }

    /// The rows' schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Decodes one event, appending its changes to `out` (none for a skipped event). The
    /// error names the field at fault.
    pub fn decode_into(
        &self,
        event: &[u8],
        out: &mut Vec<Change<Row>>,
    ) -> std::result::Result<(), String> {
        if event.iter().all(u8::is_ascii_whitespace) {
            return Ok(()); // a tombstone
        }
        let value: Value = serde_json::from_slice(event).map_err(|e| format!("not JSON: {e}"))?;
        let envelope = match &value {
            Value::Object(o) => match o.get("payload") {
                Some(Value::Object(p)) if o.contains_key("schema") => p,
                Some(Value::Null) if o.contains_key("schema") => return Ok(()),
                _ => o,
            },
            Value::Null => return Ok(()),
            _ => return Err("a Debezium event is a JSON object".into()),
        };
        let op = envelope
            .get("op")
            .and_then(Value::as_str)
            .ok_or("field `op`: missing (is this a Debezium event?)")?;
        let image = |name: &str| -> std::result::Result<Option<Row>, String> {
            match envelope.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(o)) => self
                    .row(o)
                    .map(Some)
                    .map_err(|e| format!("field `{name}`.{e}")),
                Some(_) => Err(format!("field `{name}`: not an object")),
            }
        };
        match op {
            "c" | "r" => out.push(Change::Insert(
                image("after")?.ok_or("field `after`: missing in a create event")?,
            )),
            "u" => {
                let before = image("before")?.ok_or(
                    "field `before`: missing in an update event (for PostgreSQL, set the table's REPLICA IDENTITY to FULL)",
                )?;
                let after = image("after")?.ok_or("field `after`: missing in an update event")?;
                out.push(Change::UpdateBefore(before));
                out.push(Change::UpdateAfter(after));
            }
            "d" => out.push(Change::Delete(
                image("before")?.ok_or(
                    "field `before`: missing in a delete event (for PostgreSQL, set the table's REPLICA IDENTITY to FULL)",
                )?,
            )),
            "t" | "m" => {}
            other => return Err(format!("field `op`: unknown operation `{other}`")),
        }
        Ok(())
    }

    fn row(&self, o: &Map<String, Value>) -> std::result::Result<Row, String> {
        self.schema
            .fields
            .iter()
            .map(|f| {
                let v = o.get(&f.name).unwrap_or(&Value::Null);
                let s = scalar(f.data_type, v).map_err(|e| format!("{}: {e}", f.name))?;
                if s.is_null() && !f.nullable {
                    return Err(format!("{}: NULL in a NOT NULL column", f.name));
                }
                Ok(s)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Row::new)
    }

    /// Decodes one event into its changes (`Ok(None)`: skipped).
    fn decode_record(&self, event: &[u8]) -> std::result::Result<Option<Vec<Change<Row>>>, String> {
        let mut out = Vec::with_capacity(2);
        match self.decode_into(event, &mut out) {
            Ok(()) if out.is_empty() => Ok(None),
            Ok(()) => Ok(Some(out)),
            Err(_) if self.ignore_parse_errors => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn scalar(t: DataType, v: &Value) -> std::result::Result<Scalar, String> {
    if v.is_null() {
        return Ok(Scalar::Null);
    }
    let bad = || format!("{v} is not a {t}");
    Ok(match t {
        DataType::Boolean => Scalar::Bool(v.as_bool().ok_or_else(bad)?),
        DataType::BigInt => Scalar::Int(match v {
            Value::String(s) => s.parse().map_err(|_| bad())?,
            _ => v.as_i64().ok_or_else(bad)?,
        }),
        DataType::Double => Scalar::float(match v {
            Value::String(s) => s.parse().map_err(|_| bad())?,
            _ => v.as_f64().ok_or_else(bad)?,
        }),
        DataType::Decimal { .. } => Scalar::Decimal(match v {
            Value::String(s) => rust_decimal_from_str(s).ok_or_else(|| {
                format!("{v} is not a decimal (Debezium's `precise` mode sends bytes: use decimal.handling.mode=string)")
            })?,
            Value::Number(n) => rust_decimal_from_str(&n.to_string()).ok_or_else(bad)?,
            _ => return Err(bad()),
        }),
        DataType::Varchar => match v {
            Value::String(s) => Scalar::str(s),
            other => Scalar::str(&other.to_string()),
        },
        DataType::Bytes => Scalar::Bytes(base64(v.as_str().ok_or_else(bad)?).ok_or_else(bad)?),
        DataType::TimestampMillis | DataType::TimestampMicros => {
            let micros = t == DataType::TimestampMicros;
            match v {
                Value::Number(_) => {
                    let n = v.as_i64().ok_or_else(bad)?;
                    if micros {
                        Scalar::TimestampUs(n)
                    } else {
                        Scalar::TimestampMs(n)
                    }
                }
                Value::String(s) => {
                    let ms = Timestamp::parse(s)?.0;
                    if micros {
                        Scalar::TimestampUs(ms * 1000 + sub_millis_micros(s))
                    } else {
                        Scalar::TimestampMs(ms)
                    }
                }
                _ => return Err(bad()),
            }
        }
        DataType::Date => match v {
            Value::Number(_) => Scalar::Date(v.as_i64().ok_or_else(bad)? as i32),
            Value::String(s) => Scalar::Date(Timestamp::parse(s)?.0.div_euclid(86_400_000) as i32),
            _ => return Err(bad()),
        },
        DataType::Map(m) => match v {
            Value::Object(entries) => Scalar::map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            scalar(m.key(), &Value::String(k.clone()))?,
                            scalar(m.value(), v)?,
                        ))
                    })
                    .collect::<std::result::Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        },
        DataType::Array(a) => match v {
            Value::Array(elements) => Scalar::Array(
                elements
                    .iter()
                    .map(|e| scalar(a.element(), e))
                    .collect::<std::result::Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        },
    })
}

fn rust_decimal_from_str(s: &str) -> Option<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_str(s)
        .or_else(|_| rust_decimal::Decimal::from_scientific(s))
        .ok()
}

/// The 4th to 6th digits of a fraction of a second (`.123456` → 456).
fn sub_millis_micros(s: &str) -> i64 {
    let Some((_, frac)) = s.split_once('.') else {
        return 0;
    };
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .skip(3)
        .take(3)
        .collect();
    format!("{digits:0<3}").parse().unwrap_or(0)
}

/// Standard base64 (with or without padding).
fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl crate::LineDecoder for DebeziumJson {
    type Out = Vec<Change<Row>>;

    fn decode(&mut self, line: &[u8]) -> std::result::Result<Option<Self::Out>, String> {
        self.decode_record(line)
    }
}

#[cfg(feature = "kafka")]
impl crate::kafka::KafkaDecoder for DebeziumJson {
    type Out = Vec<Change<Row>>;

    fn decode(
        &self,
        record: &crate::kafka::KafkaRecord<'_>,
    ) -> std::result::Result<Option<Self::Out>, String> {
        match record.payload {
            None => Ok(None),
            Some(p) => self.decode_record(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::Field;

    fn format() -> DebeziumJson {
        DebeziumJson::new(Schema::new(vec![
            Field::new("id", DataType::BigInt).not_null(),
            Field::new(
                "price",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            Field::new("at", DataType::TimestampMicros),
            Field::new("day", DataType::Date),
            Field::new("raw", DataType::Bytes),
            Field::new("ok", DataType::Boolean),
        ]))
    }

    fn decode(event: &str) -> std::result::Result<Vec<Change<Row>>, String> {
        let mut out = Vec::new();
        format()
            .decode_into(event.as_bytes(), &mut out)
            .map(|()| out)
    }

    #[test]
    fn every_operation_and_type() {
        let row = Row::new(vec![
            Scalar::Int(1),
            Scalar::Decimal(rust_decimal::Decimal::new(1250, 2)),
            Scalar::TimestampUs(1_700_000_000_123_456),
            Scalar::Date(19_675),
            Scalar::Bytes(vec![0, 1, 2, 255]),
            Scalar::Bool(true),
        ]);
        let image = r#"{"id":1,"price":"12.50","at":1700000000123456,"day":19675,"raw":"AAEC/w==","ok":true}"#;
        let iso = r#"{"id":1,"price":12.50,"at":"2023-11-14T22:13:20.123456Z","day":"2023-11-14","raw":"AAEC/w","ok":true}"#;
        assert_eq!(
            decode(&format!(r#"{{"before":null,"after":{image},"op":"c"}}"#)),
            Ok(vec![Change::Insert(row.clone())])
        );
        assert_eq!(
            decode(&format!(r#"{{"before":null,"after":{iso},"op":"r"}}"#)),
            Ok(vec![Change::Insert(row.clone())])
        );
        assert_eq!(
            decode(&format!(
                r#"{{"schema":{{}},"payload":{{"before":{image},"after":{image},"op":"u"}}}}"#
            )),
            Ok(vec![
                Change::UpdateBefore(row.clone()),
                Change::UpdateAfter(row.clone())
            ])
        );
        assert_eq!(
            decode(&format!(r#"{{"before":{image},"after":null,"op":"d"}}"#)),
            Ok(vec![Change::Delete(row)])
        );
        assert_eq!(decode(r#"{"op":"t"}"#), Ok(vec![]));
        assert_eq!(decode(""), Ok(vec![]));
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode(r#"{"before":null,"after":{"id":1},"op":"u"}"#).unwrap_err();
        assert!(e.contains("REPLICA IDENTITY"), "{e}");
        let e = decode(r#"{"before":null,"after":{"id":"x"},"op":"c"}"#).unwrap_err();
        assert!(e.starts_with("field `after`.id:"), "{e}");
        let e = decode(r#"{"before":null,"after":{"price":1},"op":"c"}"#).unwrap_err();
        assert!(e.contains("id: NULL in a NOT NULL column"), "{e}");
        let e = decode(r#"{"after":{"id":1},"op":"x"}"#).unwrap_err();
        assert!(e.contains("unknown operation"), "{e}");
        let mut f = format().ignore_parse_errors();
        assert_eq!(crate::LineDecoder::decode(&mut f, b"{not json"), Ok(None));
    }
}
