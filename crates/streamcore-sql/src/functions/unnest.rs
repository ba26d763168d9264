//! `UNNEST`, SQL's table function over a collection ([`Unnest`]): a row once per element of
//! an array, or per entry of a map, with the element's columns appended.

use crate::expr::{EvalError, Expr};
use streamcore::row::{Row, Scalar};

/// The rows an input row becomes: `Node::Unnest` at run time.
#[derive(Clone, Debug)]
pub struct Unnest {
    /// The array or map, over the input row.
    expr: Expr,
    /// The columns appended: 1 for an array, 2 for a map, one more `WITH ORDINALITY`.
    width: usize,
    /// `LEFT JOIN … ON TRUE`: an empty or NULL collection keeps its row, with NULLs.
    outer: bool,
    /// `WITH ORDINALITY`: the 1-based position as the last column.
    ordinality: bool,
}

impl Unnest {
    /// Unnests `expr`, appending `width` columns.
    pub fn new(expr: Expr, width: usize, outer: bool, ordinality: bool) -> Self {
        Unnest {
            expr,
            width,
            outer,
            ordinality,
        }
    }

    /// The rows of `row`: its values then each element's (a map's key and value), its
    /// position `WITH ORDINALITY`; its event time kept.
    pub fn rows(&self, row: &Row) -> Result<Vec<Row>, EvalError> {
        let collection = self.expr.eval_cow(&row.values)?;
        let with = |element: &[Scalar], position: usize| {
            let mut values = Vec::with_capacity(row.len() + self.width);
            values.extend(row.values.iter().cloned());
            values.extend(element.iter().cloned());
            if self.ordinality {
                values.push(Scalar::Int(position as i64));
            }
            Row {
                values: values.into(),
                time: row.time,
            }
        };
        let mut out = match &*collection {
            Scalar::Array(elements) => elements
                .iter()
                .enumerate()
                .map(|(i, e)| with(std::slice::from_ref(e), i + 1))
                .collect(),
            Scalar::Map(entries) => entries
                .iter()
                .enumerate()
                .map(|(i, (k, v))| with(&[k.clone(), v.clone()], i + 1))
                .collect(),
            _ => Vec::new(),
        };
        if out.is_empty() && self.outer {
            let mut values = Vec::with_capacity(row.len() + self.width);
            values.extend(row.values.iter().cloned());
            values.resize(row.len() + self.width, Scalar::Null);
            out.push(Row {
                values: values.into(),
                time: row.time,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_maps_become_rows() {
        let row = Row::of([
            Scalar::Int(7),
            Scalar::Array(vec![Scalar::str("a"), Scalar::Null].into()),
            Scalar::map(vec![(Scalar::str("k"), Scalar::Int(1))]),
            Scalar::Array(Vec::new().into()),
        ]);
        let texts = |rows: Vec<Row>| {
            rows.iter()
                .map(|r| {
                    r.values
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
        };
        let u = Unnest::new(Expr::Column(1), 2, false, true);
        assert_eq!(
            texts(u.rows(&row).unwrap()),
            ["7 [a, NULL] {k=1} [] a 1", "7 [a, NULL] {k=1} [] NULL 2"]
        );
        let u = Unnest::new(Expr::Column(2), 2, false, false);
        assert_eq!(texts(u.rows(&row).unwrap()), ["7 [a, NULL] {k=1} [] k 1"]);
        let empty = Unnest::new(Expr::Column(3), 1, false, false);
        assert!(empty.rows(&row).unwrap().is_empty());
        let outer = Unnest::new(Expr::Column(3), 1, true, false);
        assert_eq!(
            texts(outer.rows(&row).unwrap()),
            ["7 [a, NULL] {k=1} [] NULL"]
        );
    }
}
