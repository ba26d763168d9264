//! Hive-style partition directories of rows, shared by the file sinks that partition their
//! output (Parquet, and the JSON and CSV part files of SQL's `PARTITIONED BY`): a row goes
//! under `col=value/…/` of its partition columns (values escaped for a path segment as Hive
//! does, `NULL` as the default partition name), then optionally a directory formatted from a
//! time column (`dt=%Y-%m-%d/hour=%H`). Partition columns are not repeated inside the files,
//! as Flink and Hive write them: [`PartitionSpec::data_columns`] are the ones that are.

use chrono::format::{Item, StrftimeItems};
use std::fmt::Write;
use streamcore::row::{DataType, Row, Scalar, Schema};

/// Where the rows of a partitioned sink go: its partition columns and time partition.
#[derive(Clone, Debug)]
pub struct PartitionSpec {
    /// Partition columns: index in the row, name.
    columns: Vec<(usize, String)>,
    /// The time partition: column, its name, the compiled pattern.
    time: Option<(usize, String, Vec<Item<'static>>)>,
    /// The directory name of a `NULL` value.
    default_name: String,
    /// The columns that are not partition columns, in order.
    data_columns: Vec<usize>,
}

/// Flink's and Hive's name of the partition of a `NULL` value.
pub const DEFAULT_PARTITION_NAME: &str = "__HIVE_DEFAULT_PARTITION__";

impl PartitionSpec {
    /// The partitions of rows of `schema` by the columns named `columns`, then by the time
    /// column and strftime pattern of `time`; `NULL` values go to `default_name`. Errors name
    /// what is wrong (an unknown or twice-named column, a time column that is no time, a bad
    /// pattern, no column left for the files).
    pub fn resolve(
        schema: &Schema,
        columns: &[String],
        time: Option<(&str, &str)>,
        default_name: &str,
    ) -> Result<Self, String> {
        let column = |name: &str, what: &str| {
            schema.index_of(name).ok_or_else(|| {
                let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
                format!(
                    "{what} `{name}` is not a column (the columns are: {})",
                    names.join(", ")
                )
            })
        };
        let mut partitions: Vec<(usize, String)> = Vec::new();
        for p in columns {
            let c = column(p, "partition column")?;
            if partitions.iter().any(|&(q, _)| q == c) {
                return Err(format!("partition column `{p}` is named twice"));
            }
            partitions.push((c, p.clone()));
        }
        let time = match time {
            None => None,
            Some((col, pattern)) => {
                let c = column(col, "time partition column")?;
                match schema.fields[c].data_type {
                    DataType::TimestampMillis
                    | DataType::TimestampMicros
                    | DataType::Date
                    | DataType::BigInt => {}
                    other => {
                        return Err(format!(
                            "time partition column `{col}` is {other}, not a timestamp or date"
                        ))
                    }
                }
                let items: Vec<Item<'static>> =
                    StrftimeItems::new(pattern).map(|i| i.to_owned()).collect();
                if pattern.is_empty() || items.iter().any(|i| matches!(i, Item::Error)) {
                    return Err(format!(
                        "time partition pattern `{pattern}` is not a strftime pattern (like dt=%Y-%m-%d/hour=%H)"
                    ));
                }
                Some((c, col.to_string(), items))
            }
        };
        let data_columns: Vec<usize> = (0..schema.fields.len())
            .filter(|c| !partitions.iter().any(|(p, _)| p == c))
            .collect();
        if data_columns.is_empty() {
            return Err("every column is a partition column: the files would have none".into());
        }
        Ok(PartitionSpec {
            columns: partitions,
            time,
            default_name: default_name.to_string(),
            data_columns,
        })
    }

    /// Whether rows are partitioned at all.
    pub fn is_partitioned(&self) -> bool {
        !self.columns.is_empty() || self.time.is_some()
    }

    /// The columns written into the files (every column but the partition columns).
    pub fn data_columns(&self) -> &[usize] {
        &self.data_columns
    }

    /// Appends the partition directory of `row` to `out`, each level ending with `/`
    /// (nothing when not partitioned: the base directory). An error when the time
    /// partition's column holds something other than a time.
    pub fn path_of(&self, row: &Row, out: &mut String) -> Result<(), String> {
        for (c, name) in &self.columns {
            escape_partition_value(name, out);
            out.push('=');
            match &row.values[*c] {
                Scalar::Null => out.push_str(&self.default_name),
                Scalar::Str(s) => escape_partition_value(s, out),
                Scalar::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
                other => escape_partition_value(&other.to_string(), out),
            }
            out.push('/');
        }
        if let Some((c, name, items)) = &self.time {
            let v = &row.values[*c];
            match v
                .as_timestamp()
                .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
            {
                Some(t) => {
                    let _ = write!(out, "{}", t.format_with_items(items.iter()));
                    out.push('/');
                }
                None if v.is_null() => {
                    out.push_str(&self.default_name);
                    out.push('/');
                }
                None => {
                    return Err(format!(
                        "time partition column `{name}` holds `{v}`, not a time"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Appends `value` escaped for a path segment as Hive does (`%XX` for `/ = % : # ? \` and
/// friends, control characters and DEL).
pub fn escape_partition_value(value: &str, out: &mut String) {
    for c in value.chars() {
        if (c as u32) < 0x20
            || c == '\u{7f}'
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            )
        {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// The value of a partition directory name's value part, unescaped (`12%3A05` → `12:05`).
pub fn unescape_partition_value(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::Field;
    use streamcore::Timestamp;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::BigInt),
            Field::new("dt", DataType::Varchar),
            Field::new("hm", DataType::Varchar),
            Field::new("ts", DataType::TimestampMillis),
        ])
    }

    fn row(dt: Scalar, hm: &str) -> Row {
        Row::new(vec![
            Scalar::Int(1),
            dt,
            Scalar::Str(hm.into()),
            Scalar::TimestampMs(Timestamp(0).0),
        ])
    }

    #[test]
    fn directories_of_columns_escaped_and_null() {
        let spec = PartitionSpec::resolve(
            &schema(),
            &["dt".into(), "hm".into()],
            None,
            DEFAULT_PARTITION_NAME,
        )
        .unwrap();
        assert_eq!(spec.data_columns(), &[0, 3]);
        let mut p = String::new();
        spec.path_of(&row(Scalar::Str("2015-07-15".into()), "12:05"), &mut p)
            .unwrap();
        assert_eq!(p, "dt=2015-07-15/hm=12%3A05/");
        assert_eq!(unescape_partition_value("12%3A05"), "12:05");
        p.clear();
        spec.path_of(&row(Scalar::Null, "a/b"), &mut p).unwrap();
        assert_eq!(p, "dt=__HIVE_DEFAULT_PARTITION__/hm=a%2Fb/");
    }

    #[test]
    fn time_partitions_and_errors() {
        let spec = PartitionSpec::resolve(
            &schema(),
            &[],
            Some(("ts", "dt=%Y-%m-%d/hour=%H")),
            DEFAULT_PARTITION_NAME,
        )
        .unwrap();
        let mut p = String::new();
        spec.path_of(&row(Scalar::Null, "x"), &mut p).unwrap();
        assert_eq!(p, "dt=1970-01-01/hour=00/");
        let err = |cols: &[&str], time| {
            let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            PartitionSpec::resolve(&schema(), &cols, time, "x").unwrap_err()
        };
        assert!(err(&["nope"], None).contains("partition column `nope` is not a column"));
        assert!(err(&["dt", "dt"], None).contains("named twice"));
        assert!(err(&[], Some(("dt", "%Y"))).contains("not a timestamp or date"));
        assert!(err(&["id", "dt", "hm", "ts"], None).contains("every column"));
    }
}
