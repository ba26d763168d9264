//! The `datagen` connector: rows made up from the table's schema, with Flink's `datagen`
//! options (`rows-per-second`, `number-of-rows`, `fields.<column>.kind` = `random` or
//! `sequence`, `min`/`max`, `length`, `var-len`, `start`/`end`, `max-past`, `null-rate`), and
//! `'kind' = 'transactions'`: the design note's transaction events (`event_id`, `user_id`,
//! `amount`, `transaction_id`, `event_time`) from the library's transaction generator.
//!
//! Row `i` depends only on the options and `i` (random values are a hash of `seed`, the
//! column and `i`; Flink's have no seed): the same table gives the same rows at any
//! parallelism and after a restore — except random `TIMESTAMP`/`DATE` values, which are, as
//! in Flink, the wall-clock time minus a random part of `max-past`.

use crate::catalog::{ColumnSource, TableDef};
use crate::connectors::{MapSource, RowShaper};
use crate::error::PlanError;
use compact_str::{CompactString, ToCompactString};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use streamcore::row::{DataType, Row, Scalar};
use streamcore::source::Generator;
use streamcore::TaskContext;
use streamcore_connectors::{TransactionGenerator, TransactionGeneratorConfig};

/// Flink's default rate of a `datagen` table, in rows per second.
const DEFAULT_ROWS_PER_SECOND: f64 = 10_000.0;

/// Flink's default length of a random string.
const DEFAULT_STRING_LENGTH: usize = 100;

/// The columns a `'kind' = 'transactions'` table may have.
const TRANSACTION_COLUMNS: &[&str] = &[
    "event_id",
    "user_id",
    "amount",
    "transaction_id",
    "event_time",
];

/// How one physical column is made.
#[derive(Clone, Debug)]
enum FieldGen {
    /// Uniform in `[min, max]` (integers, doubles, decimals).
    RandomNumber {
        ty: DataType,
        min: f64,
        max: f64,
        null_rate: f64,
    },
    /// Random lowercase hexadecimal text (as Flink's) of `length` characters, or 1 to
    /// `length` with `var_len`.
    RandomString {
        length: usize,
        var_len: bool,
        bytes: bool,
        null_rate: f64,
    },
    /// `true` or `false`.
    RandomBool { null_rate: f64 },
    /// Now minus a random part of `max_past_ms`.
    RandomTime {
        ty: DataType,
        max_past_ms: i64,
        null_rate: f64,
    },
    /// `start + i`, ending the table after `end`.
    Sequence { ty: DataType, start: i64 },
}

/// What a `datagen` table makes.
#[derive(Clone, Debug)]
enum Kind {
    /// Each physical column by its own generator.
    Fields(Arc<[FieldGen]>),
    /// The design note's transactions; per physical column, which field it is.
    Transactions(TransactionGenerator, Arc<[TxField]>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxField {
    EventId,
    UserId,
    Amount,
    AmountDouble,
    TransactionId,
    EventTime,
}

/// A `datagen` table's options, read and checked.
#[derive(Clone, Debug)]
pub struct DatagenSpec {
    rows: Option<u64>,
    rows_per_second: Option<f64>,
    seed: u64,
    kind: Kind,
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit counter.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform double in `[0, 1)` from a hash.
#[inline]
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl DatagenSpec {
    /// Reads and checks the options of `table` (a `datagen` table).
    pub fn from_table(table: &TableDef) -> Result<Self, PlanError> {
        let name = &table.name;
        let bad = |key: &str, why: String| {
            PlanError::invalid(format!("`datagen` table `{name}`: option '{key}' {why}"))
        };
        let whole = |key: &str, v: &str| -> Result<u64, PlanError> {
            v.trim()
                .parse()
                .map_err(|_| bad(key, format!("must be a whole number, got '{v}'")))
        };
        let int = |key: &str, v: &str| -> Result<i64, PlanError> {
            v.trim()
                .parse()
                .map_err(|_| bad(key, format!("must be an integer, got '{v}'")))
        };
        let number = |key: &str, v: &str| -> Result<f64, PlanError> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(key, format!("must be a number, got '{v}'")))
        };
        let duration_ms = |key: &str, v: &str| -> Result<i64, PlanError> {
            crate::session::parse_duration(v)
                .map(|d| d.as_millis() as i64)
                .map_err(|e| {
                    bad(
                        key,
                        format!("must be a duration such as '10 s': {}", e.message()),
                    )
                })
        };
        let mut rows = None;
        let mut rows_per_second = Some(DEFAULT_ROWS_PER_SECOND);
        let mut seed = 0;
        let mut kind_name = "fields";
        let mut tx = TransactionGeneratorConfig {
            events: None,
            ..Default::default()
        };
        let mut tx_seeded = false;
        let mut field_options: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (key, value) in &table.options {
            match key.as_str() {
                // Options of every table (the planner reads them).
                "connector" | "late-data.table" | "allowed-lateness" => {}
                "number-of-rows" => rows = Some(whole(key, value)?),
                "rows-per-second" => {
                    let r = number(key, value)?;
                    rows_per_second = (r > 0.0).then_some(r);
                }
                "seed" => {
                    seed = whole(key, value)?;
                    tx_seeded = true;
                }
                "kind" => {
                    kind_name = match value.as_str() {
                        "fields" => "fields",
                        "transactions" => "transactions",
                        other => {
                            return Err(bad(
                                key,
                                format!("is 'fields' (the default) or 'transactions', got '{other}'"),
                            ))
                        }
                    }
                }
                "users" => tx.users = whole(key, value)?.max(1),
                "start-time" => {
                    tx.start_ms = match crate::expr::parse_timestamp_ms(value) {
                        Some(ms) => ms,
                        None => int(key, value)?,
                    }
                }
                "event-interval" => tx.interval_ms = duration_ms(key, value)?,
                "max-out-of-orderness" => tx.disorder_ms = duration_ms(key, value)?,
                k => match k
                    .strip_prefix("fields.")
                    .and_then(|rest| rest.rsplit_once('.'))
                {
                    Some((column, option)) => {
                        field_options.entry(column).or_default().insert(option, value);
                    }
                    None => {
                        return Err(PlanError::invalid(format!(
                            "`datagen` table `{name}`: unknown option '{k}'{} (options: number-of-rows, rows-per-second, seed, kind, fields.<column>.kind/min/max/length/var-len/start/end/max-past/null-rate; with 'kind' = 'transactions': users, start-time, event-interval, max-out-of-orderness)",
                            crate::error::did_you_mean(
                                k,
                                [
                                    "number-of-rows",
                                    "rows-per-second",
                                    "seed",
                                    "kind",
                                    "users",
                                    "start-time",
                                    "event-interval",
                                    "max-out-of-orderness",
                                ]
                                .into_iter()
                            )
                        )))
                    }
                },
            }
        }
        let physical: Vec<(&str, DataType)> = table
            .columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnSource::Physical(_)))
            .map(|c| (c.name.as_str(), c.data_type))
            .collect();
        for column in field_options.keys() {
            if !physical.iter().any(|(n, _)| n == column) {
                return Err(PlanError::invalid(format!(
                    "`datagen` table `{name}`: options name column `{column}`, which is not a physical column of the table{}",
                    crate::error::did_you_mean(column, physical.iter().map(|(n, _)| *n))
                )));
            }
        }
        let kind = if kind_name == "transactions" {
            if !field_options.is_empty() {
                return Err(PlanError::invalid(format!(
                    "`datagen` table `{name}`: 'fields.*' options do not apply with 'kind' = 'transactions'"
                )));
            }
            let fields = physical
                .iter()
                .map(|&(column, ty)| {
                    let field = match (column, ty) {
                        ("event_id", DataType::Varchar) => TxField::EventId,
                        ("user_id", DataType::Varchar) => TxField::UserId,
                        ("amount", DataType::BigInt) => TxField::Amount,
                        ("amount", DataType::Double) => TxField::AmountDouble,
                        ("transaction_id", DataType::Varchar) => TxField::TransactionId,
                        ("event_time", DataType::TimestampMillis) => TxField::EventTime,
                        (c, ty) if TRANSACTION_COLUMNS.contains(&c) => {
                            return Err(PlanError::invalid(format!(
                                "`datagen` table `{name}`: transaction column `{c}` cannot be {ty} (event_id, user_id and transaction_id are STRING, amount BIGINT or DOUBLE, event_time TIMESTAMP(3))"
                            )))
                        }
                        (c, _) => {
                            return Err(PlanError::invalid(format!(
                                "`datagen` table `{name}`: a transaction has no field `{c}`{} (fields: {})",
                                crate::error::did_you_mean(c, TRANSACTION_COLUMNS.iter().copied()),
                                TRANSACTION_COLUMNS.join(", ")
                            )))
                        }
                    };
                    Ok(field)
                })
                .collect::<Result<Vec<_>, PlanError>>()?;
            if tx_seeded {
                tx.seed = Some(seed);
            }
            Kind::Transactions(TransactionGenerator::new(tx), fields.into())
        } else {
            let mut generators = Vec::with_capacity(physical.len());
            let mut sequence_rows: Option<u64> = None;
            for &(column, ty) in &physical {
                let o = field_options.remove(column).unwrap_or_default();
                let key = |option: &str| format!("fields.{column}.{option}");
                let read = |option: &str| o.get(option).copied();
                let field_kind = read("kind").unwrap_or("random");
                let null_rate = match read("null-rate") {
                    Some(v) => {
                        let r = number(&key("null-rate"), v)?;
                        if !(0.0..=1.0).contains(&r) {
                            return Err(bad(
                                &key("null-rate"),
                                format!("must be between 0 and 1, got '{v}'"),
                            ));
                        }
                        r
                    }
                    None => 0.0,
                };
                if let DataType::Map(_) | DataType::Array(_) = ty {
                    return Err(PlanError::unsupported(format!(
                        "`datagen` table `{name}`: column `{column}` is {ty}: MAP and ARRAY columns are not generated"
                    )));
                }
                let allowed: &[&str] = match field_kind {
                    "sequence" => &["kind", "start", "end"],
                    "random" => match ty {
                        DataType::BigInt | DataType::Double | DataType::Decimal { .. } => {
                            &["kind", "min", "max", "null-rate"]
                        }
                        DataType::Varchar | DataType::Bytes => {
                            &["kind", "length", "var-len", "null-rate"]
                        }
                        DataType::Boolean => &["kind", "null-rate"],
                        DataType::TimestampMillis | DataType::TimestampMicros | DataType::Date => {
                            &["kind", "max-past", "null-rate"]
                        }
                        DataType::Map(_) | DataType::Array(_) => {
                            unreachable!("MAP and ARRAY columns are refused above")
                        }
                    },
                    other => {
                        return Err(bad(
                            &key("kind"),
                            format!("is 'random' or 'sequence', got '{other}'"),
                        ))
                    }
                };
                if let Some(extra) = o.keys().find(|k| !allowed.contains(k)) {
                    return Err(PlanError::invalid(format!(
                        "`datagen` table `{name}`: option '{}' does not apply to a {field_kind} {ty} column (its options: {})",
                        key(extra),
                        allowed.join(", ")
                    )));
                }
                generators.push(match field_kind {
                    "sequence" => {
                        if !matches!(
                            ty,
                            DataType::BigInt
                                | DataType::Double
                                | DataType::Decimal { .. }
                                | DataType::Varchar
                        ) {
                            return Err(bad(
                                &key("kind"),
                                format!("'sequence' is for numbers and strings, not {ty}"),
                            ));
                        }
                        let start_text = read("start").ok_or_else(|| {
                            bad(&key("start"), "is required for a sequence".into())
                        })?;
                        let end_text = read("end")
                            .ok_or_else(|| bad(&key("end"), "is required for a sequence".into()))?;
                        let start = int(&key("start"), start_text)?;
                        let end = int(&key("end"), end_text)?;
                        if end < start {
                            return Err(bad(
                                &key("end"),
                                format!("({end}) is before 'start' ({start})"),
                            ));
                        }
                        let n = (end - start) as u64 + 1;
                        sequence_rows = Some(sequence_rows.map_or(n, |m| m.min(n)));
                        FieldGen::Sequence { ty, start }
                    }
                    _ => match ty {
                        DataType::BigInt | DataType::Double | DataType::Decimal { .. } => {
                            let (default_min, default_max) = match ty {
                                DataType::BigInt => (i32::MIN as f64, i32::MAX as f64),
                                DataType::Decimal { precision, scale } => {
                                    let m = 10f64.powi((precision - scale) as i32) - 1.0;
                                    (-m, m)
                                }
                                _ => (0.0, 1.0),
                            };
                            let min = match read("min") {
                                Some(v) => number(&key("min"), v)?,
                                None => default_min,
                            };
                            let max = match read("max") {
                                Some(v) => number(&key("max"), v)?,
                                None => default_max,
                            };
                            if max < min {
                                return Err(bad(
                                    &key("max"),
                                    format!("({max}) is below 'min' ({min})"),
                                ));
                            }
                            FieldGen::RandomNumber {
                                ty,
                                min,
                                max,
                                null_rate,
                            }
                        }
                        DataType::Varchar | DataType::Bytes => FieldGen::RandomString {
                            length: match read("length") {
                                Some(v) => whole(&key("length"), v)?.max(1) as usize,
                                None => DEFAULT_STRING_LENGTH,
                            },
                            var_len: match read("var-len") {
                                Some("true") => true,
                                Some("false") | None => false,
                                Some(v) => {
                                    return Err(bad(
                                        &key("var-len"),
                                        format!("is true or false, got '{v}'"),
                                    ))
                                }
                            },
                            bytes: ty == DataType::Bytes,
                            null_rate,
                        },
                        DataType::Boolean => FieldGen::RandomBool { null_rate },
                        DataType::TimestampMillis | DataType::TimestampMicros | DataType::Date => {
                            FieldGen::RandomTime {
                                ty,
                                max_past_ms: match read("max-past") {
                                    Some(v) => duration_ms(&key("max-past"), v)?,
                                    None => 0,
                                },
                                null_rate,
                            }
                        }
                        DataType::Map(_) | DataType::Array(_) => {
                            unreachable!("MAP and ARRAY columns are refused above")
                        }
                    },
                });
            }
            if let Some(n) = sequence_rows {
                rows = Some(rows.map_or(n, |r| r.min(n)));
            }
            Kind::Fields(generators.into())
        };
        Ok(DatagenSpec {
            rows,
            rows_per_second,
            seed,
            kind,
        })
    }

    /// The physical values of row `i` (only the columns in `needed`; the others NULL).
    pub fn physical_row(&self, i: u64, needed: &[bool]) -> Row {
        match &self.kind {
            Kind::Fields(fields) => {
                let values = fields
                    .iter()
                    .enumerate()
                    .map(|(c, f)| {
                        if needed.get(c) == Some(&false) {
                            return Scalar::Null;
                        }
                        let h =
                            mix(self.seed ^ mix(i.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ c as u64));
                        field_value(f, i, h)
                    })
                    .collect();
                Row::new(values)
            }
            Kind::Transactions(generator, fields) => {
                let e = generator.event(i);
                let values = fields
                    .iter()
                    .map(|f| match f {
                        TxField::EventId => Scalar::Str(e.event_id.clone()),
                        TxField::UserId => e.get_str("user_id").map_or(Scalar::Null, Scalar::str),
                        TxField::Amount => e
                            .get_f64("amount")
                            .map_or(Scalar::Null, |a| Scalar::Int(a as i64)),
                        TxField::AmountDouble => {
                            e.get_f64("amount").map_or(Scalar::Null, Scalar::float)
                        }
                        TxField::TransactionId => e
                            .get_str("transaction_id")
                            .map_or(Scalar::Null, Scalar::str),
                        TxField::EventTime => Scalar::TimestampMs(e.timestamp.0),
                    })
                    .collect();
                Row::new(values)
            }
        }
    }

    /// How many rows the table has (`None`: unbounded).
    pub fn rows(&self) -> Option<u64> {
        self.rows
    }
}

/// One value of `field` for row `i`, `h` being the row's and column's hash.
fn field_value(field: &FieldGen, i: u64, h: u64) -> Scalar {
    let is_null = |rate: f64| rate > 0.0 && unit(mix(h ^ 0x6e75_6c6c)) < rate;
    match field {
        FieldGen::Sequence { ty, start } => {
            let v = start.wrapping_add(i as i64);
            match ty {
                DataType::Double => Scalar::float(v as f64),
                DataType::Decimal { .. } => Scalar::Decimal(Decimal::from(v)),
                DataType::Varchar => Scalar::Str(v.to_compact_string()),
                _ => Scalar::Int(v),
            }
        }
        FieldGen::RandomNumber {
            ty,
            min,
            max,
            null_rate,
        } => {
            if is_null(*null_rate) {
                return Scalar::Null;
            }
            match ty {
                DataType::BigInt => {
                    let (lo, hi) = (*min as i64, *max as i64);
                    let span = (hi as i128 - lo as i128 + 1) as u128;
                    Scalar::Int((lo as i128 + (h as u128 % span) as i128) as i64)
                }
                DataType::Decimal { scale, .. } => {
                    let x = min + unit(h) * (max - min);
                    let d = Decimal::from_f64_retain(x)
                        .unwrap_or_default()
                        .round_dp_with_strategy(
                            *scale as u32,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        );
                    Scalar::Decimal(d)
                }
                _ => Scalar::float(min + unit(h) * (max - min)),
            }
        }
        FieldGen::RandomString {
            length,
            var_len,
            bytes,
            null_rate,
        } => {
            if is_null(*null_rate) {
                return Scalar::Null;
            }
            let n = if *var_len {
                1 + (h % *length as u64) as usize
            } else {
                *length
            };
            if *bytes {
                let mut out = Vec::with_capacity(n);
                let mut x = h;
                for _ in 0..n {
                    x = mix(x);
                    out.push(x as u8);
                }
                Scalar::Bytes(out)
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut s = CompactString::with_capacity(n);
                let mut x = h;
                for k in 0..n {
                    if k % 16 == 0 {
                        x = mix(x ^ k as u64);
                    }
                    s.push(HEX[((x >> ((k % 16) * 4)) & 0xf) as usize] as char);
                }
                Scalar::Str(s)
            }
        }
        FieldGen::RandomBool { null_rate } => {
            if is_null(*null_rate) {
                Scalar::Null
            } else {
                Scalar::Bool(h & 1 == 1)
            }
        }
        FieldGen::RandomTime {
            ty,
            max_past_ms,
            null_rate,
        } => {
            if is_null(*null_rate) {
                return Scalar::Null;
            }
            let past = if *max_past_ms > 0 {
                (h % (*max_past_ms as u64 + 1)) as i64
            } else {
                0
            };
            let ms = now_ms() - past;
            match ty {
                DataType::TimestampMicros => Scalar::TimestampUs(ms * 1000),
                DataType::Date => Scalar::Date(ms.div_euclid(86_400_000) as i32),
                _ => Scalar::TimestampMs(ms),
            }
        }
    }
}

/// Adds a `datagen` scan of `table` to `job`, emitting the columns `columns`.
pub fn datagen_stream(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    columns: &[usize],
) -> Result<streamcore::Stream<Row>, PlanError> {
    let spec = Arc::new(DatagenSpec::from_table(table)?);
    let mut shaper = RowShaper::select(table, columns);
    let needed: Arc<[bool]> = shaper.needed().into();
    let rows = spec.rows;
    let rate = spec.rows_per_second;
    let mut source = Generator::new(move |i| spec.physical_row(i, &needed));
    if let Some(n) = rows {
        source = source.bounded(n);
    }
    if let Some(r) = rate {
        source = source.rate(r);
    }
    let shape = move |r: Row, _: &mut TaskContext, out: &mut Vec<Row>| {
        out.push(shaper.shape(&r.values)?);
        Ok(())
    };
    let origin = format!("table `{}` (datagen)", table.name);
    Ok(job.source(name, MapSource::new(source, shape).origin(origin)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableColumn;

    fn table(columns: &[(&str, DataType)], options: &[(&str, &str)]) -> TableDef {
        TableDef {
            name: "t".into(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, (n, ty))| TableColumn {
                    name: n.to_string(),
                    data_type: *ty,
                    kind: ColumnSource::Physical(i),
                    not_null: false,
                })
                .collect(),
            rowtime: None,
            watermark_delay_ms: None,
            primary_key: vec![],
            partitioned_by: vec![],
            options: std::iter::once(("connector", "datagen"))
                .chain(options.iter().copied())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn sequences_bound_the_table_and_random_values_stay_in_range() {
        let t = table(
            &[
                ("id", DataType::BigInt),
                ("score", DataType::BigInt),
                ("name", DataType::Varchar),
                ("ratio", DataType::Double),
            ],
            &[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "10"),
                ("fields.id.end", "19"),
                ("fields.score.min", "-5"),
                ("fields.score.max", "5"),
                ("fields.name.length", "8"),
                ("fields.ratio.null-rate", "0.5"),
            ],
        );
        let spec = DatagenSpec::from_table(&t).unwrap();
        assert_eq!(spec.rows(), Some(10));
        let all = [true; 4];
        let mut nulls = 0;
        for i in 0..10 {
            let r = spec.physical_row(i, &all);
            assert_eq!(r.get(0), &Scalar::Int(10 + i as i64));
            let s = r.get(1).as_i64().unwrap();
            assert!((-5..=5).contains(&s), "{s}");
            match r.get(2) {
                Scalar::Str(s) => {
                    assert_eq!(s.len(), 8);
                    assert!(s.chars().all(|c| c.is_ascii_hexdigit()), "{s}")
                }
                other => panic!("{other:?}"),
            }
            nulls += r.get(3).is_null() as usize;
            // The same row again: a function of the options and i only.
            assert_eq!(spec.physical_row(i, &all).values, r.values);
        }
        assert!(nulls > 0 && nulls < 10, "{nulls} nulls of 10");
    }

    #[test]
    fn transactions_are_the_design_notes_events() {
        let t = table(
            &[
                ("user_id", DataType::Varchar),
                ("amount", DataType::Double),
                ("event_time", DataType::TimestampMillis),
            ],
            &[("kind", "transactions"), ("number-of-rows", "20")],
        );
        let spec = DatagenSpec::from_table(&t).unwrap();
        let r = spec.physical_row(3, &[true; 3]);
        assert_eq!(r.get(0), &Scalar::str("user_3"));
        assert_eq!(r.get(1), &Scalar::float(125.0));
        assert_eq!(r.get(2), &Scalar::TimestampMs(1_700_000_000_000 + 150));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |columns: &[(&str, DataType)], options: &[(&str, &str)]| {
            DatagenSpec::from_table(&table(columns, options))
                .unwrap_err()
                .message()
        };
        let e = err(&[("a", DataType::BigInt)], &[("rows-per-secnd", "5")]);
        assert!(
            e.contains("unknown option 'rows-per-secnd'") && e.contains("rows-per-second"),
            "{e}"
        );
        let e = err(&[("a", DataType::BigInt)], &[("fields.b.min", "5")]);
        assert!(e.contains("column `b`"), "{e}");
        let e = err(&[("a", DataType::BigInt)], &[("fields.a.kind", "sequence")]);
        assert!(e.contains("'fields.a.start' is required"), "{e}");
        let e = err(&[("a", DataType::Varchar)], &[("fields.a.min", "1")]);
        assert!(
            e.contains("does not apply to a random VARCHAR column"),
            "{e}"
        );
        let e = err(
            &[("amount", DataType::Varchar)],
            &[("kind", "transactions")],
        );
        assert!(e.contains("cannot be VARCHAR"), "{e}");
        let e = err(&[("user", DataType::Varchar)], &[("kind", "transactions")]);
        assert!(
            e.contains("no field `user`") && e.contains("user_id"),
            "{e}"
        );
    }
}
