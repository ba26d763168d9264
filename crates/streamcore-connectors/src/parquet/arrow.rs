//! Rows to Arrow: the Arrow schema of a row [`Schema`] and the record batch of some of a
//! batch's rows, built column by column (one typed builder per column, no per-value dispatch
//! beyond the match on the column's type).

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
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
        DataType::Array(a) => ArrowType::List(Arc::new(ArrowField::new(
            "item",
            arrow_type(a.element()),
            true,
        ))),
        // Arrow's map: a list of `entries` structs of a key (never null) and a value.
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
    ($builder:expr, $values:expr, $field:expr, $pat:pat => $val:expr) => {{
        let mut b = $builder;
        for v in $values {
            match v {
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
    array_of(
        idx.iter().map(|&i| &rows[i as usize].values[col]),
        idx.len(),
        field,
    )
}

/// The array of the `n` `values` of a column of type `field`.
fn array_of<'v>(
    values: impl Iterator<Item = &'v Scalar>,
    n: usize,
    field: &Field,
) -> Result<ArrayRef, String> {
    Ok(match field.data_type {
        DataType::Boolean => {
            build!(BooleanBuilder::with_capacity(n), values, field, Scalar::Bool(v) => *v)
        }
        DataType::BigInt => {
            build!(Int64Builder::with_capacity(n), values, field, Scalar::Int(v) => *v)
        }
        DataType::Double => {
            build!(Float64Builder::with_capacity(n), values, field, Scalar::Float(v) => v.get())
        }
        DataType::Varchar => {
            build!(StringBuilder::with_capacity(n, n * 16), values, field, Scalar::Str(v) => v.as_str())
        }
        DataType::Bytes => {
            build!(BinaryBuilder::with_capacity(n, n * 16), values, field, Scalar::Bytes(v) => v)
        }
        DataType::TimestampMillis => {
            build!(TimestampMillisecondBuilder::with_capacity(n), values, field, Scalar::TimestampMs(v) => *v)
        }
        DataType::TimestampMicros => {
            build!(TimestampMicrosecondBuilder::with_capacity(n), values, field, Scalar::TimestampUs(v) => *v)
        }
        DataType::Date => {
            build!(Date32Builder::with_capacity(n), values, field, Scalar::Date(v) => *v)
        }
        DataType::Map(m) => {
            let (entries, offsets, valid) = flatten(values, n, field, |v| match v {
                Scalar::Map(entries) => Some(entries.iter()),
                _ => None,
            })?;
            let (keys, entry_values): (Vec<&Scalar>, Vec<&Scalar>) =
                entries.into_iter().map(|(k, v)| (k, v)).unzip();
            let in_map = |e: String| format!("column `{}`: {e}", field.name);
            let key = Field::new("key", m.key()).not_null();
            let value = Field::new("value", m.value());
            let key_array = array_of(keys.iter().copied(), keys.len(), &key).map_err(in_map)?;
            let value_array = array_of(entry_values.iter().copied(), entry_values.len(), &value)
                .map_err(in_map)?;
            let ArrowType::Map(entries_field, sorted) = arrow_type(field.data_type) else {
                unreachable!("a map's Arrow type is a map")
            };
            let ArrowType::Struct(entry_fields) = entries_field.data_type() else {
                unreachable!("a map's entries are a struct")
            };
            let entries =
                StructArray::try_new(entry_fields.clone(), vec![key_array, value_array], None)
                    .map_err(|e| in_map(e.to_string()))?;
            Arc::new(
                MapArray::try_new(
                    entries_field.clone(),
                    OffsetBuffer::new(offsets.into()),
                    entries,
                    Some(NullBuffer::from(valid)),
                    sorted,
                )
                .map_err(|e| in_map(e.to_string()))?,
            ) as ArrayRef
        }
        DataType::Array(a) => {
            let (elements, offsets, valid) = flatten(values, n, field, |v| match v {
                Scalar::Array(items) => Some(items.iter()),
                _ => None,
            })?;
            let in_array = |e: String| format!("column `{}`: {e}", field.name);
            let item = Field::new("item", a.element());
            let items =
                array_of(elements.iter().copied(), elements.len(), &item).map_err(in_array)?;
            let ArrowType::List(item_field) = arrow_type(field.data_type) else {
                unreachable!("an array's Arrow type is a list")
            };
            Arc::new(
                ListArray::try_new(
                    item_field,
                    OffsetBuffer::new(offsets.into()),
                    items,
                    Some(NullBuffer::from(valid)),
                )
                .map_err(|e| in_array(e.to_string()))?,
            ) as ArrayRef
        }
        DataType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(precision, scale as i8)
                .map_err(|e| format!("column `{}`: {e}", field.name))?;
            for v in values {
                match v {
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

/// Collections laid out as Arrow lists: their items one after the other, where each begins
/// (offsets), and which are not NULL.
type Flattened<T> = (Vec<T>, Vec<i32>, Vec<bool>);

/// The `n` collections `values` of a column (`field`) as Arrow lists lay them out;
/// `items_of` gives a value's items (`None`: not a collection of the column's kind, a misfit).
fn flatten<'v, T: 'v, I: Iterator<Item = T>>(
    values: impl Iterator<Item = &'v Scalar>,
    n: usize,
    field: &Field,
    items_of: impl Fn(&'v Scalar) -> Option<I>,
) -> Result<Flattened<T>, String> {
    let mut items = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    let mut valid = Vec::with_capacity(n);
    offsets.push(0i32);
    for v in values {
        match items_of(v) {
            Some(these) => {
                items.extend(these);
                valid.push(true);
            }
            None if v.is_null() && field.nullable => valid.push(false),
            None => return Err(misfit(field, v)),
        }
        offsets.push(
            i32::try_from(items.len())
                .map_err(|_| format!("column `{}`: too many items", field.name))?,
        );
    }
    Ok((items, offsets, valid))
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

    #[test]
    fn maps_become_map_arrays() {
        let tags = DataType::Map(
            streamcore::row::MapType::new(DataType::Varchar, DataType::BigInt).unwrap(),
        );
        let f = [Field::new("tags", tags)];
        let fields: Vec<&Field> = f.iter().collect();
        let schema = arrow_schema(&fields);
        let entry = |k: &str, v: Scalar| (Scalar::str(k), v);
        let rows = vec![
            Row::new(vec![Scalar::map(vec![
                entry("b", Scalar::Int(2)),
                entry("a", Scalar::Null),
            ])]),
            Row::new(vec![Scalar::Null]),
            Row::new(vec![Scalar::map(vec![])]),
            Row::new(vec![Scalar::map(vec![entry("c", Scalar::Int(3))])]),
        ];
        let b = record_batch(&schema, &rows, &[0, 1, 2, 3], &[0], &fields).unwrap();
        let maps = b.column(0).as_any().downcast_ref::<MapArray>().unwrap();
        assert_eq!(maps.len(), 4);
        assert!(maps.is_null(1) && !maps.is_null(2));
        assert_eq!(maps.value_offsets(), &[0, 2, 2, 2, 3]);
        let keys = maps
            .keys()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            [Some("a"), Some("b"), Some("c")]
        );
        let values = maps
            .values()
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(values.iter().collect::<Vec<_>>(), [None, Some(2), Some(3)]);
        // A NULL key has no place in Arrow's map: the row is refused naming the column.
        let bad = vec![Row::new(vec![Scalar::map(vec![(
            Scalar::Null,
            Scalar::Int(1),
        )])])];
        let e = record_batch(&schema, &bad, &[0], &[0], &fields).unwrap_err();
        assert_eq!(
            e,
            "column `tags`: column `key` is NOT NULL but a row has NULL"
        );
    }
}
