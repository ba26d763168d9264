//! OVER aggregations over an updating input — which Flink refuses (FLINK-19059), and Nexmark
//! q6 needs: `AVG(price) OVER (PARTITION BY seller ORDER BY dateTime ROWS BETWEEN 10 PRECEDING
//! AND CURRENT ROW)` over the changing set of winning bids.
//!
//! The semantics is the relational one: the result is the table of every *current* input row
//! with the aggregates over its frame — itself and the `n` rows before it in its partition's
//! order (`ROWS BETWEEN n PRECEDING AND CURRENT ROW`), or every row before it (`UNBOUNDED
//! PRECEDING`). Rows equal in the `ORDER BY` are ordered by their whole row, so that frames
//! are deterministic (SQL leaves such ties unspecified).
//!
//! A partition keeps its current rows in order. A row added or withdrawn changes the frames
//! of the row itself and of the `n` rows after it (every row after it when unbounded): the
//! operator computes those rows' results before and after the change and emits the
//! difference — `+I` for the new row, `-D` for the withdrawn one, `-U`/`+U` for the rows whose
//! aggregates changed, nothing for those whose did not. Each change costs `O(n²)` aggregate
//! steps for a bounded frame (`n` rows, each over a frame of `n + 1`), `O(partition)` for an
//! unbounded one. The rows are kept for as long as they are current, as any OVER aggregation
//! over an updating input must.

use crate::aggregate::RowAggregate;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use streamcore::changelog::Change;
use streamcore::row::{Row, Scalar};
use streamcore::state::{KeyedContext, KeyedProcessFunction};
use streamcore::window::AggregateFunction;
use streamcore::Output;

use crate::expr::Expr;

/// A row's place in its partition: its `ORDER BY` values (each with `true` for descending),
/// then the whole row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    order: Vec<(bool, Scalar)>,
    row: Row,
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        for ((desc, a), (_, b)) in self.order.iter().zip(&other.order) {
            let o = if *desc { b.cmp(a) } else { a.cmp(b) };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.row.cmp(&other.row)
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A partition's current rows, in order, each with how many times it is there.
pub type Partition = BTreeMap<Place, u32>;

/// The keyed operator (keyed by the partition columns) of an OVER aggregation over an
/// updating input.
#[derive(Clone)]
pub struct UpdatingOverAggregate {
    aggs: RowAggregate,
    order: Arc<[(Expr, bool)]>,
    /// `n` of `ROWS BETWEEN n PRECEDING`; `None`: unbounded.
    rows: Option<u64>,
}

impl UpdatingOverAggregate {
    /// The aggregation `aggs` over frames of `rows` preceding rows (`None`: all) in `order`.
    pub fn new(aggs: RowAggregate, order: Vec<(Expr, bool)>, rows: Option<u64>) -> Self {
        UpdatingOverAggregate {
            aggs,
            order: order.into(),
            rows,
        }
    }

    fn place(&self, row: Row) -> Result<Place, (Row, String)> {
        let order = self
            .order
            .iter()
            .map(|(e, desc)| e.eval(&row.values).map(|v| (*desc, v)))
            .collect::<Result<Vec<_>, _>>();
        match order {
            Ok(order) => Ok(Place { order, row }),
            Err(e) => Err((row, e.to_string())),
        }
    }

    /// The results of the rows whose frames contain `at`'s rows: `at`'s copies and the `n`
    /// rows after them (all rows after them when unbounded), each with its frame's
    /// aggregates appended.
    fn affected(&self, partition: &Partition, at: &Place) -> Vec<Row> {
        fn expand<'a>((p, n): (&'a Place, &'a u32)) -> std::iter::RepeatN<&'a Row> {
            std::iter::repeat_n(&p.row, *n as usize)
        }
        // The frame of the first affected row starts up to `n` rows before `at`.
        let before: Vec<&Row> = match self.rows {
            Some(n) => {
                let mut v: Vec<&Row> = partition
                    .range(..at)
                    .rev()
                    .flat_map(expand)
                    .take(n as usize)
                    .collect();
                v.reverse();
                v
            }
            None => partition.range(..at).flat_map(expand).collect(),
        };
        let copies = partition.get(at).copied().unwrap_or(0) as usize;
        let after = partition.range((Excluded(at), Unbounded)).flat_map(expand);
        let following: Vec<&Row> = std::iter::repeat_n(&at.row, copies)
            .chain(match self.rows {
                Some(n) => Box::new(after.take(n as usize)) as Box<dyn Iterator<Item = &Row>>,
                None => Box::new(after),
            })
            .collect();
        let mut out = Vec::with_capacity(following.len());
        match self.rows {
            None => {
                let mut acc = self.aggs.create();
                for r in &before {
                    self.aggs.add(&mut acc, r);
                }
                for r in following {
                    self.aggs.add(&mut acc, r);
                    out.push(with_results(r, &self.aggs.result(&acc)));
                }
            }
            Some(n) => {
                let mut frame: VecDeque<&Row> = before.into_iter().collect();
                for r in following {
                    frame.push_back(r);
                    while frame.len() as u64 > n + 1 {
                        frame.pop_front();
                    }
                    let mut acc = self.aggs.create();
                    for f in &frame {
                        self.aggs.add(&mut acc, f);
                    }
                    out.push(with_results(r, &self.aggs.result(&acc)));
                }
            }
        }
        out
    }
}

fn with_results(row: &Row, results: &Row) -> Row {
    let mut values: Vec<Scalar> = Vec::with_capacity(row.len() + results.len());
    values.extend(row.values.iter().cloned());
    values.extend(results.values.iter().cloned());
    Row {
        values: values.into(),
        time: row.time,
    }
}

/// Emits the difference between two multisets of result rows (each an input row of `width`
/// columns, then its aggregates): a result of the same input row before and after as a
/// `-U`/`+U` pair, so that an update names one row (an upsert sink may drop the `-U`); the
/// rest as `-D` and `+I`.
fn emit_difference(old: Vec<Row>, new: Vec<Row>, width: usize, out: &mut Output<Change<Row>>) {
    let mut count: HashMap<Row, i64> = HashMap::with_capacity(old.len() + new.len());
    for r in old {
        *count.entry(r).or_default() -= 1;
    }
    for r in new {
        *count.entry(r).or_default() += 1;
    }
    let mut gone = Vec::new();
    let mut came: HashMap<Row, Vec<Row>> = HashMap::new();
    for (row, n) in count {
        match n.cmp(&0) {
            Ordering::Less => gone.extend(std::iter::repeat_n(row, (-n) as usize)),
            Ordering::Greater => {
                let input = row.key(&(0..width).collect::<Vec<_>>());
                came.entry(input)
                    .or_default()
                    .extend(std::iter::repeat_n(row, n as usize));
            }
            Ordering::Equal => {}
        }
    }
    // Deterministic output order.
    gone.sort();
    for g in gone {
        let input = g.key(&(0..width).collect::<Vec<_>>());
        match came.get_mut(&input).and_then(Vec::pop) {
            Some(c) => {
                out.emit(Change::UpdateBefore(g));
                out.emit(Change::UpdateAfter(c));
            }
            None => out.emit(Change::Delete(g)),
        }
    }
    let mut rest: Vec<Row> = came.into_values().flatten().collect();
    rest.sort();
    for c in rest {
        out.emit(Change::Insert(c));
    }
}

impl KeyedProcessFunction<Row, Change<Row>> for UpdatingOverAggregate {
    type State = Partition;
    type Out = Change<Row>;

    fn process(
        &mut self,
        change: Change<Row>,
        ctx: &mut KeyedContext<'_, Row, Partition>,
        out: &mut Output<Change<Row>>,
    ) {
        let add = change.is_addition();
        let row = change.into_row();
        let place = match self.place(row) {
            Ok(p) => p,
            Err((row, e)) => {
                out.reject(&row, format!("OVER aggregation: evaluating ORDER BY: {e}"));
                return;
            }
        };
        let partition = ctx.state();
        if !add && !partition.contains_key(&place) {
            // A withdrawal of a row that is not there: the input's changelog is broken.
            tracing::warn!(
                "OVER aggregation: a withdrawn row was never added: {:?}",
                place.row
            );
            return;
        }
        let width = place.row.len();
        let old = self.affected(partition, &place);
        if add {
            *partition.entry(place.clone()).or_default() += 1;
        } else if let Some(n) = partition.get_mut(&place) {
            *n -= 1;
            if *n == 0 {
                partition.remove(&place);
            }
        }
        let new = self.affected(partition, &place);
        if partition.is_empty() {
            ctx.clear_state();
        }
        emit_difference(old, new, width, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AggCall, AggFunc};
    use streamcore::changelog::apply_to;
    use streamcore::row::DataType;

    /// Rows `(k, t, v)`, `AVG(v)` and `COUNT(*)` over `ROWS n PRECEDING` by `t`, partitioned
    /// by `k`: the table after each change equals the one computed from scratch.
    #[test]
    fn the_result_table_follows_the_current_rows() {
        let aggs = RowAggregate::new(vec![
            AggCall {
                func: AggFunc::Avg,
                separator: None,
                arg: Some(2),
                distinct: false,
                filter: None,
                ty: DataType::BigInt,
            },
            AggCall {
                func: AggFunc::Count,
                separator: None,
                arg: None,
                distinct: false,
                filter: None,
                ty: DataType::BigInt,
            },
        ]);
        for rows in [Some(2), None] {
            let op = UpdatingOverAggregate::new(aggs.clone(), vec![(Expr::Column(1), false)], rows);
            let row = |k: i64, t: i64, v: i64| {
                Row::new(vec![Scalar::Int(k), Scalar::Int(t), Scalar::Int(v)])
            };
            let changes = vec![
                Change::Insert(row(1, 10, 100)),
                Change::Insert(row(1, 30, 300)),
                Change::Insert(row(1, 20, 200)),
                Change::Insert(row(2, 5, 7)),
                Change::Insert(row(1, 40, 400)),
                Change::Delete(row(1, 20, 200)),
                Change::Insert(row(1, 20, 200)),
                Change::Insert(row(1, 20, 200)),
                Change::Delete(row(1, 10, 100)),
                Change::Delete(row(2, 5, 7)),
            ];
            let mut job = streamcore::Job::new("over");
            let got = job
                .from_vec("changes", changes.clone())
                .key_by(|c: &Change<Row>| c.row().key(&[0]))
                .process(op)
                .collect();
            job.run(streamcore::JobConfig::default().parallelism(1))
                .unwrap();
            let got = apply_to(got.take());
            // From scratch: the current rows, each with its frame.
            let current = apply_to(changes);
            let mut want = Vec::new();
            for r in &current {
                let mut part: Vec<&Row> = current
                    .iter()
                    .filter(|x| x.values[0] == r.values[0])
                    .collect();
                part.sort();
                let at = part.iter().position(|x| *x == r).unwrap();
                // Equal rows: each copy has its own place.
                let copies = want
                    .iter()
                    .filter(|w: &&Row| w.values[..3] == r.values[..])
                    .count();
                let at = at + copies;
                let from = rows.map_or(0, |n| at.saturating_sub(n as usize));
                let frame = &part[from..=at];
                let sum: i64 = frame.iter().map(|x| x.values[2].as_i64().unwrap()).sum();
                let n = frame.len() as i64;
                want.push(Row::new(vec![
                    r.values[0].clone(),
                    r.values[1].clone(),
                    r.values[2].clone(),
                    Scalar::Int(sum / n),
                    Scalar::Int(n),
                ]));
            }
            let (mut got, mut want) = (got, want);
            got.sort();
            want.sort();
            assert_eq!(got, want, "frame {rows:?}");
        }
    }
}
