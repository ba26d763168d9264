//! Processing-time parts of the SQL windows: the window table function over a `PROCTIME()`
//! column, which gives each row the window of the wall clock when its batch reaches the
//! operator (processing-time window aggregates run on the engine's window operators with
//! `WindowedStream::processing_time`); and [`CountLate`], which counts the late rows an
//! operator drops or sends to a late-data table.

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

/// Counts the rows it receives in the `late_records` metric and drops them, or (redirected)
/// counts them in `late_redirected` too and passes them on to a late-data table: the late
/// output of an OVER aggregation or a temporal sort, counted as the window operators count
/// theirs.
#[derive(Clone)]
pub struct CountLate {
    /// The rows go on to a late-data table (counted in `late_redirected` too, and passed
    /// through) rather than being dropped.
    pub redirected: bool,
}

impl Operator for CountLate {
    type In = Row;
    type Out = Row;

    fn process_batch(
        &mut self,
        batch: Vec<Row>,
        ctx: &mut TaskContext,
        out: &mut Output<Row>,
    ) -> Result<()> {
        let stats = ctx.stats();
        stats.late_records += batch.len() as u64;
        if self.redirected {
            stats.late_redirected += batch.len() as u64;
            for row in batch {
                out.emit(row);
            }
        }
        Ok(())
    }
}
