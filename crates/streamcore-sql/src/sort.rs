//! `ORDER BY rowtime [, …]` without `LIMIT` on a stream — Flink's temporal sort: the rows come
//! out in event-time order, each once the watermark has passed its time (no row of that time
//! or earlier can still come), rows of one time ordered by the other `ORDER BY` keys and then
//! by arrival.
//!
//! The whole stream is one group, as in Flink (a sort is global: the planner keys every row
//! to one instance). Rows wait in keyed state with a timer at their time; a row already behind
//! the watermark when it arrives is late: dropped, as Flink drops it, and counted in the
//! `late_records` metric ([`TemporalSort::late_output`]).

use crate::expr::Expr;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use streamcore::row::{Row, Scalar};
use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use streamcore::{Output, OutputTag, Timestamp};

/// The keyed operator of a temporal sort (one key: the whole stream).
#[derive(Clone)]
pub struct TemporalSort {
    /// The keys after the time: expressions over the row, `true` for descending.
    then_by: Arc<[(Expr, bool)]>,
    late: Option<OutputTag<Row>>,
}

impl TemporalSort {
    /// A sort by event time, then by `then_by`.
    pub fn new(then_by: Vec<(Expr, bool)>) -> Self {
        TemporalSort {
            then_by: then_by.into(),
            late: None,
        }
    }

    /// Sends late rows (behind the watermark when they arrive) to the side output `tag`.
    pub fn late_output(mut self, tag: OutputTag<Row>) -> Self {
        self.late = Some(tag);
        self
    }

    /// Orders `rows` (of one time) by the keys after the time; equal rows keep their arrival
    /// order. NULLs come first ascending and last descending, as in Flink.
    fn order(&self, rows: &mut [Row]) {
        if self.then_by.is_empty() {
            return;
        }
        let key = |r: &Row| -> Vec<Scalar> {
            self.then_by
                .iter()
                .map(|(e, _)| e.eval(&r.values).unwrap_or(Scalar::Null))
                .collect()
        };
        let mut keyed: Vec<(Vec<Scalar>, Row)> = rows.iter().map(|r| (key(r), r.clone())).collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, y), (_, desc)) in a.iter().zip(b).zip(self.then_by.iter()) {
                let o = x.cmp(y);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        for (slot, (_, row)) in rows.iter_mut().zip(keyed) {
            *slot = row;
        }
    }
}

/// Rows waiting for the watermark, by event time, in arrival order.
#[derive(Default, Serialize, Deserialize)]
pub struct SortState {
    pending: BTreeMap<i64, Vec<Row>>,
}

impl KeyedProcessFunction<Scalar, Row> for TemporalSort {
    type State = SortState;
    type Out = Row;

    fn process(
        &mut self,
        row: Row,
        ctx: &mut KeyedContext<'_, Scalar, SortState>,
        out: &mut Output<Row>,
    ) {
        let t = row.time;
        if t <= ctx.watermark() && ctx.watermark() != Timestamp::MIN {
            match &self.late {
                Some(tag) => out.side(tag, row),
                None => tracing::debug!("ORDER BY: a row at {t:?} behind the watermark is dropped"),
            }
            return;
        }
        let pending = &mut ctx.state().pending;
        let first_of_its_time = !pending.contains_key(&t.0);
        pending.entry(t.0).or_default().push(row);
        if first_of_its_time {
            ctx.register_event_time_timer(t);
        }
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, Scalar, SortState>,
        out: &mut Output<Row>,
    ) {
        let state = ctx.state();
        let later = state.pending.split_off(&(time.0 + 1));
        let due = std::mem::replace(&mut state.pending, later);
        for (_, mut rows) in due {
            self.order(&mut rows);
            for row in rows {
                out.emit(row);
            }
        }
        if ctx.state().pending.is_empty() {
            ctx.clear_state();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_time_by_the_other_keys_then_by_arrival() {
        // Rows (price, name): by price descending; equal prices in arrival order.
        let sort = TemporalSort::new(vec![(Expr::Column(0), true)]);
        let row = |price: i64, name: &str| Row::of([Scalar::Int(price), Scalar::str(name)]);
        let mut rows = vec![
            row(1, "a"),
            row(3, "b"),
            row(1, "c"),
            row(3, "d"),
            row(2, "e"),
        ];
        sort.order(&mut rows);
        let names: Vec<String> = rows.iter().map(|r| r.values[1].to_string()).collect();
        assert_eq!(names, ["b", "d", "e", "a", "c"]);
    }
}
