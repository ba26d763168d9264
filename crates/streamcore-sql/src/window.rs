//! Processing-time parts of the SQL windows: the window table function over a `PROCTIME()`
//! column, which gives each row the window of the wall clock when its batch reaches the
//! operator (processing-time window aggregates run on the engine's window operators with
//! `WindowedStream::processing_time`); and [`CountLate`], which counts the late rows an
//! operator drops.

use crate::plan::WindowKind;
use streamcore::row::Row;
use streamcore::{Operator, Output, Result, TaskContext, Timestamp};

/// `TUMBLE`/`HOP(TABLE t, DESCRIPTOR(proc_time), …)` not followed by an aggregate: each row
/// with `window_start`, `window_end`, `window_time` of the windows containing the wall-clock
/// time at which its batch arrived (one clock reading per batch).
#[derive(Clone)]
pub struct ProcTimeWindowTvf {
    window: WindowKind,
    assign: fn(WindowKind, Row) -> Vec<Row>,
}

impl ProcTimeWindowTvf {
    /// The operator for `window`; `assign` appends a row's windows by its `time`.
    pub fn new(window: WindowKind, assign: fn(WindowKind, Row) -> Vec<Row>) -> Self {
        ProcTimeWindowTvf { window, assign }
    }
}

impl Operator for ProcTimeWindowTvf {
    type In = Row;
    type Out = Row;

    fn process_batch(
        &mut self,
        batch: Vec<Row>,
        _ctx: &mut TaskContext,
        out: &mut Output<Row>,
    ) -> Result<()> {
        let now = Timestamp::now();
        for mut row in batch {
            row.time = now;
            for w in (self.assign)(self.window, row) {
                out.emit(w);
            }
        }
        Ok(())
    }
}

/// Counts the rows it receives in the `late_records` metric and drops them: the late output
/// of an operator whose late rows are dropped (OVER aggregations), so that they are counted as
/// the window operators count theirs.
#[derive(Clone)]
pub struct CountLate;

impl Operator for CountLate {
    type In = Row;
    type Out = Row;

    fn process_batch(
        &mut self,
        batch: Vec<Row>,
        ctx: &mut TaskContext,
        _out: &mut Output<Row>,
    ) -> Result<()> {
        ctx.stats().late_records += batch.len() as u64;
        Ok(())
    }
}
