//! Rows to Arrow: the Arrow schema of a row [`Schema`] and the record batch of some of a
//! batch's rows, built column by column (one typed builder per column, no per-value dispatch
//! beyond the match on the column's type).

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema, TimeUnit};
use std::sync::Arc;
use streamcore::row::{DataType, Field, Row, Scalar};

/// The Arrow type of a column type.
pub(crate) fn arrow_type(t: DataType) -> ArrowType {
    match t {
        DataType::Boolean => ArrowType::Boolean,
        DataType::BigInt => ArrowType::Int64,
        DataType::Double => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(precision, scale as i8),
        DataType::Varchar => ArrowType::Utf8,
        DataType::Bytes => ArrowType::Binary,
        DataType::TimestampMillis => ArrowType::Timestamp(TimeUnit::Millisecond, None),
        DataType::TimestampMicros => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Date => ArrowType::Date32,
        // Refused before a schema is made (`ParquetSink::plan`); the entries' type is Arrow's.
        DataType::Map(m) => ArrowType::Map(
            Arc::new(ArrowField::new(
                "entries",
                ArrowType::Struct(
                    vec![
                        ArrowField::new("key", arrow_type(m.key()), false),
                        ArrowField::new("value", arrow_type(m.value()), true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        ),
    }
}

/// The Arrow schema of `fields`.
pub(crate) fn arrow_schema(fields: &[&Field]) -> Arc<ArrowSchema> {
    Arc::new(ArrowSchema::new(
        fields
            .iter()
            .map(|f| ArrowField::new(&f.name, arrow_type(f.data_type), f.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// Why a value does not fit its column.
fn misfit(field: &Field, v: &Scalar) -> String {
    if v.is_null() {
        format!("column `{}` is NOT NULL but a row has NULL", field.name)
    } else {
        format!(
            "column `{}` is {} but a row has {} `{v}`",
            field.name,
            field.data_type,
            v.type_name()
        )
    }
}

macro_rules! build {
    ($builder:expr, $rows:expr, $idx:expr, $col:expr, $field:expr, $pat:pat => $val:expr) => {{
        let mut b = $builder;
        for &i in $idx {
            match &$rows[i as usize].values[$col] {
                $pat => b.append_value($val),
                Scalar::Null if $field.nullable => b.append_null(),
                other => return Err(misfit($field, other)),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

/// The array of column `col` (of type `field`) over `rows[idx]`.
fn column(rows: &[Row], idx: &[u32], col: usize, field: &Field) -> Result<ArrayRef, String> {
    let n = idx.len();
    Ok(match field.data_type {
        DataType::Boolean => {
            build!(BooleanBuilder::with_capacity(n), rows, idx, col, field, Scalar::Bool(v) => *v)
        }
        DataType::BigInt => {
            build!(Int64Builder::with_capacity(n), rows, idx, col, field, Scalar::Int(v) => *v)
        }
        DataType::Double => {
            build!(Float64Builder::with_capacity(n), rows, idx, col, field, Scalar::Float(v) => v.get())
        }
        DataType::Varchar => {
            build!(StringBuilder::with_capacity(n, n * 16), rows, idx, col, field, Scalar::Str(v) => v.as_str())
        }
        DataType::Bytes => {
            build!(BinaryBuilder::with_capacity(n, n * 16), rows, idx, col, field, Scalar::Bytes(v) => v)
        }
        DataType::TimestampMillis => {
            build!(TimestampMillisecondBuilder::with_capacity(n), rows, idx, col, field, Scalar::TimestampMs(v) => *v)
        }
        DataType::TimestampMicros => {
            build!(TimestampMicrosecondBuilder::with_capacity(n), rows, idx, col, field, Scalar::TimestampUs(v) => *v)
        }
        DataType::Date => {
            build!(Date32Builder::with_capacity(n), rows, idx, col, field, Scalar::Date(v) => *v)
        }
        DataType::Map(_) => {
            return Err(format!(
                "column `{}` is {}: MAP columns are not written to Parquet yet",
                field.name, field.data_type
            ))
        }
        DataType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(precision, scale as i8)
                .map_err(|e| format!("column `{}`: {e}", field.name))?;
            for &i in idx {
                match &rows[i as usize].values[col] {
                    Scalar::Decimal(d) => {
                        let mut d = *d;
                        d.rescale(scale as u32);
                        if d.scale() != scale as u32 {
                            return Err(format!(
                                "column `{}` is {}: `{d}` does not fit",
                                field.name, field.data_type
                            ));
                        }
                        b.append_value(d.mantissa());
                    }
                    Scalar::Null if field.nullable => b.append_null(),
                    other => return Err(misfit(field, other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }
    })
}

/// The record batch of `rows[idx]`, columns `columns` (positions in the row) described by
/// `fields`, under `schema`.
pub(crate) fn record_batch(
    schema: &Arc<ArrowSchema>,
    rows: &[Row],
    idx: &[u32],
    columns: &[usize],
    fields: &[&Field],
) -> Result<RecordBatch, String> {
    let mut arrays = Vec::with_capacity(columns.len());
    for (&col, field) in columns.iter().zip(fields) {
        if let Some(&bad) = idx.iter().find(|&&i| rows[i as usize].values.len() <= col) {
            return Err(format!(
                "a row has {} values, the schema {} columns",
                rows[bad as usize].values.len(),
                fields.len()
            ));
        }
        arrays.push(column(rows, idx, col, field)?);
    }
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn rows_become_typed_columns_and_misfits_are_named() {
        let f = [
            Field::new("id", DataType::BigInt).not_null(),
            Field::new(
                "price",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            Field::new("name", DataType::Varchar),
        ];
        let fields: Vec<&Field> = f.iter().collect();
        let schema = arrow_schema(&fields);
        let rows = vec![
            Row::new(vec![
                Scalar::Int(1),
                Scalar::Decimal("1.5".parse().unwrap()),
                Scalar::str("a"),
            ]),
            Row::new(vec![Scalar::Int(2), Scalar::Null, Scalar::Null]),
        ];
        let b = record_batch(&schema, &rows, &[1, 0], &[0, 1, 2], &fields).unwrap();
        assert_eq!(b.num_rows(), 2);
        let prices = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .unwrap();
        assert!(prices.is_null(0));
        assert_eq!(prices.value(1), 150);
        let bad = vec![Row::new(vec![Scalar::Null, Scalar::Null, Scalar::Int(3)])];
        let e = record_batch(&schema, &bad, &[0], &[0, 1, 2], &fields).unwrap_err();
        assert_eq!(e, "column `id` is NOT NULL but a row has NULL");
        let e = record_batch(&schema, &bad, &[0], &[2], &fields[2..]).unwrap_err();
        assert_eq!(e, "column `name` is VARCHAR but a row has BIGINT `3`");
    }
}
