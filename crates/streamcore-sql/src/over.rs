//! OVER aggregations: `agg(x) OVER (PARTITION BY k ORDER BY rowtime ROWS|RANGE BETWEEN …
//! PRECEDING AND CURRENT ROW)`. Each input row is emitted once, in event-time order per
//! partition, with the aggregates over its frame: the `n` rows before it (`ROWS`), or the rows
//! of the last `interval` of event time (`RANGE`; rows of equal time are peers and share a
//! result), or everything before it (`UNBOUNDED PRECEDING`).
//!
//! Rows wait in keyed state until the watermark passes their time (a timer at the row's
//! time), so a partition's rows are aggregated in time order whatever order they came in.
//! Rows already behind the watermark when they arrive are late: dropped, as Flink drops them,
//! or sent to the late output ([`OverAggregate::late_output`]; the planner counts them in the
//! `late_records` metric).

use crate::aggregate::{RowAcc, RowAggregate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use streamcore::row::{Row, Scalar};
use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use streamcore::window::AggregateFunction;
use streamcore::{Output, Timestamp};

/// The frame of an OVER aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW` (`None`: `UNBOUNDED PRECEDING`).
    Rows(Option<u64>),
    /// `RANGE BETWEEN INTERVAL … PRECEDING AND CURRENT ROW`, in ms (`None`: unbounded).
    Range(Option<i64>),
}

/// The keyed operator of an OVER aggregation.
#[derive(Clone)]
pub struct OverAggregate {
    aggs: RowAggregate,
    frame: Frame,
    late: Option<streamcore::OutputTag<Row>>,
}

impl OverAggregate {
    /// The aggregation `aggs` over `frame`.
    pub fn new(aggs: RowAggregate, frame: Frame) -> Self {
        OverAggregate {
            aggs,
            frame,
            late: None,
        }
    }

    /// Sends late rows (behind the watermark when they arrive) to the side output `tag`.
    pub fn late_output(mut self, tag: streamcore::OutputTag<Row>) -> Self {
        self.late = Some(tag);
        self
    }
}

/// What a partition keeps.
#[derive(Default, Serialize, Deserialize)]
pub struct OverState {
    /// Rows waiting for the watermark, by event time, in arrival order.
    pending: BTreeMap<i64, Vec<Row>>,
    /// The rows of the current frame (bounded frames).
    frame: VecDeque<Row>,
    /// The running accumulator (unbounded frames).
    running: RowAcc,
}

impl OverAggregate {
    fn frame_result(&self, frame: &VecDeque<Row>) -> Row {
        let mut acc = self.aggs.create();
        for r in frame {
            self.aggs.add(&mut acc, r);
        }
        self.aggs.result(&acc)
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

impl KeyedProcessFunction<Row, Row> for OverAggregate {
    type State = OverState;
    type Out = Row;

    fn process(
        &mut self,
        row: Row,
        ctx: &mut KeyedContext<'_, Row, OverState>,
        out: &mut Output<Row>,
    ) {
        let t = row.time;
        if t <= ctx.watermark() && ctx.watermark() != Timestamp::MIN {
            match &self.late {
                Some(tag) => out.side(tag, row),
                None => tracing::debug!(
                    "OVER aggregation: a row at {t:?} behind the watermark is late and dropped"
                ),
            }
            return;
        }
        ctx.state().pending.entry(t.0).or_default().push(row);
        ctx.register_event_time_timer(t);
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, Row, OverState>,
        out: &mut Output<Row>,
    ) {
        let state = ctx.state();
        let due: Vec<(i64, Vec<Row>)> = {
            let later = state.pending.split_off(&(time.0 + 1));
            std::mem::replace(&mut state.pending, later)
                .into_iter()
                .collect()
        };
        for (t, rows) in due {
            match self.frame {
                Frame::Rows(n) => {
                    for row in rows {
                        let result = match n {
                            None => {
                                self.aggs.add(&mut state.running, &row);
                                self.aggs.result(&state.running)
                            }
                            Some(n) => {
                                state.frame.push_back(row.clone());
                                while state.frame.len() as u64 > n + 1 {
                                    state.frame.pop_front();
                                }
                                self.frame_result(&state.frame)
                            }
                        };
                        out.emit(with_results(&row, &result));
                    }
                }
                Frame::Range(range) => {
                    // Rows of one time are peers: each sees all of them.
                    let result = match range {
                        None => {
                            for r in &rows {
                                self.aggs.add(&mut state.running, r);
                            }
                            self.aggs.result(&state.running)
                        }
                        Some(ms) => {
                            state.frame.extend(rows.iter().cloned());
                            while state.frame.front().is_some_and(|r| r.time.0 < t - ms) {
                                state.frame.pop_front();
                            }
                            self.frame_result(&state.frame)
                        }
                    };
                    for row in &rows {
                        out.emit(with_results(row, &result));
                    }
                }
            }
        }
    }
}
