//! Tables' connectors (`'connector' = …`): the sources a scan reads and the sinks an `INSERT`
//! writes, each built from the table's options with Flink's option names, over the same
//! library sources and sinks a Rust program uses.
//!
//! | connector | source | sink |
//! |---|---|---|
//! | `nexmark` | the built-in Nexmark generator (`events.num`, `first-event.rate`, …) | |
//! | `filesystem` | JSON lines or CSV files (`path`: a file, a directory, a glob) | part files, exactly-once with checkpoints |
//! | `values` | rows written in the `data` option, as CSV lines | |
//! | `print` | | stdout, `+I[…]` / `-U[…]` lines as Flink prints them |
//! | `blackhole` | | discards (benchmarks) |
//!
//! A source produces rows of the table's columns: physical columns from the connector, then
//! computed columns evaluated over them, and the row's event time from the rowtime column, so
//! that watermarks are generated at the source per split.

use crate::catalog::{ColumnSource, TableDef};
use crate::error::PlanError;
use crate::expr::{parse_as, Expr};
use crate::format::{CsvRowDecoder, JsonRowDecoder, PhysicalDecoder};
use std::marker::PhantomData;
use std::sync::Arc;
use streamcore::changelog::{Change, RowKind};
use streamcore::message::CheckpointId;
use streamcore::row::{DataType, Row, Scalar};
use streamcore::sink::Committer;
use streamcore::{
    Data, Result as StreamResult, Sink, SinkWriter, Source, SourcePoll, SourceReader, TaskContext,
    TaskInfo, Timestamp,
};
use streamcore_nexmark::{
    Auction, AuctionFields, Bid, BidFields, GeneratorConfig, NexmarkEvent, NexmarkGenerator,
    NexmarkSource, PartOfAuction, PartOfBid, Person,
};

/// Turns a connector's physical values into the rows a scan emits: the selected columns of
/// the table (physical ones taken, computed ones evaluated over the physical values), with the
/// event time of the rowtime column (read even when the column itself is not selected).
/// A row is built in one allocation, its values written straight into it.
#[derive(Clone)]
pub struct RowShaper {
    /// Per emitted column: a physical index, or a computed expression over the physical row.
    columns: Arc<[Shape]>,
    /// How the rowtime is found, if the table has one.
    rowtime: Option<Shape>,
    /// Physical columns something needs (emitted, read by a computed column, or the rowtime).
    needed: Arc<[bool]>,
    /// The emitted column that is the rowtime, if it is emitted (its value is not computed
    /// twice).
    rowtime_output: Option<usize>,
    /// Per emitted column: true if it is a physical column that nothing else reads (no other
    /// emitted column, computed column, nor a rowtime that is not emitted: an emitted one is
    /// read from the row built), so [`RowShaper::shape_from`] may move it out of the physical
    /// row instead of copying it.
    movable: Arc<[bool]>,
    /// Per physical column: moved into the row and read by nothing before — not by the filter,
    /// nor by the rowtime of a record it refuses — so [`RowShaper::shape_taking`] fetches it
    /// from the record only for a row it builds.
    taken: Arc<[bool]>,
    /// A filter pushed into the scan, over the physical values: a record it refuses is not
    /// shaped ([`Shaped::Filtered`]).
    filter: Option<Expr>,
    /// The rowtime of a record the filter refuses, when `rowtime` was simplified by what the
    /// filter guarantees of the records it keeps (`event_type = 2` turns the Nexmark
    /// benchmark's `CASE` over `event_type` into `bid.dateTime`).
    filtered_rowtime: Option<Shape>,
    /// The filter and the columns share subexpressions ([`crate::cse`]): each record starts
    /// a new row of their values.
    shares: bool,
    /// Per physical column (metadata columns after the physical ones): its name, for the
    /// message of a record that fails ([`RowShaper::describe`]).
    names: Arc<[String]>,
}

/// Where a failed record's values are, for its message ([`RowShaper::describe`]).
#[derive(Clone, Copy)]
enum Read<'a> {
    /// All in the physical values: nothing moved yet, every needed column filled.
    Unmoved,
    /// In the physical values, but for the columns fetched from the record only for a row
    /// built ([`RowShaper::taken`]): not read yet.
    Fetching,
    /// The row was built: its movable columns are in it, the rest in the physical values.
    Built(&'a [Scalar]),
}

/// What [`RowShaper::shape_from`] makes of a record.
#[derive(Debug)]
pub enum Shaped {
    /// The row to emit.
    Row(Row),
    /// The filter pushed into the scan refused the record; its event time (for the
    /// watermark; `Timestamp::MIN` without a rowtime).
    Filtered(Timestamp),
}

impl Shaped {
    /// The row to emit, or `None` once a filtered record is reported to `ctx` (counted as
    /// filtered, its event time moving the watermark).
    #[inline]
    pub fn emit_in(self, ctx: &mut TaskContext) -> Option<Row> {
        match self {
            Shaped::Row(row) => Some(row),
            Shaped::Filtered(time) => {
                ctx.filtered_at_source(time);
                None
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Shape {
    Physical(usize),
    Computed(Expr),
}

impl Shape {
    /// The shape knowing that physical column `column` is `value` (a computed column is
    /// simplified; a physical one is left as it is).
    fn with_constant(&self, column: usize, value: &Scalar) -> Shape {
        match self {
            Shape::Computed(e) => {
                match crate::cse::unwrap_trivial(&crate::rules::with_constant(e, column, value)) {
                    Expr::Column(c) => Shape::Physical(c),
                    e => Shape::Computed(e),
                }
            }
            s => s.clone(),
        }
    }

    #[inline]
    fn value(&self, physical: &[Scalar]) -> std::result::Result<Scalar, String> {
        match self {
            Shape::Physical(i) => Ok(physical[*i].clone()),
            Shape::Computed(e) => e.eval(physical).map_err(|e| e.0),
        }
    }
}

impl RowShaper {
    /// The shaper of every column of `table`.
    pub fn new(table: &TableDef) -> Self {
        let all: Vec<usize> = (0..table.columns.len()).collect();
        RowShaper::select(table, &all)
    }

    /// The shaper of the columns `columns` (indices into the table's columns) of `table`.
    /// Metadata columns (Kafka's) come after the physical values, in declaration order.
    pub fn select(table: &TableDef, columns: &[usize]) -> Self {
        let physical = table.physical().count();
        let metadata = |c: usize| {
            table.columns[..c]
                .iter()
                .filter(|c| matches!(c.kind, ColumnSource::Metadata { .. }))
                .count()
        };
        let shape = |c: usize| match &table.columns[c].kind {
            ColumnSource::Physical(i) => Shape::Physical(*i),
            ColumnSource::Computed(e) => Shape::Computed(e.clone()),
            ColumnSource::Metadata { .. } => Shape::Physical(physical + metadata(c)),
        };
        let mut needed = vec![false; physical + metadata(table.columns.len())];
        let mut mark = |s: &Shape| match s {
            Shape::Physical(i) => needed[*i] = true,
            Shape::Computed(e) => {
                let mut cols = Vec::new();
                e.columns(&mut cols);
                cols.into_iter().for_each(|c| needed[c] = true);
            }
        };
        let shapes: Vec<Shape> = columns.iter().map(|&c| shape(c)).collect();
        shapes.iter().for_each(&mut mark);
        let rowtime = table.rowtime.map(shape);
        if let Some(r) = &rowtime {
            mark(r);
        }
        let rowtime_output = table
            .rowtime
            .and_then(|r| columns.iter().position(|&c| c == r));
        // An emitted rowtime is read from the row built, not from the physical values.
        let movable = movable(
            &shapes,
            rowtime.as_ref().filter(|_| rowtime_output.is_none()),
        );
        let mut names = vec![String::new(); needed.len()];
        let mut metadata_seen = 0;
        for c in &table.columns {
            match c.kind {
                ColumnSource::Physical(i) => names[i] = c.name.clone(),
                ColumnSource::Metadata { .. } => {
                    names[physical + metadata_seen] = c.name.clone();
                    metadata_seen += 1;
                }
                ColumnSource::Computed(_) => {}
            }
        }
        let mut shaper = RowShaper {
            names: names.into(),
            columns: shapes.into(),
            rowtime,
            taken: vec![false; needed.len()].into(),
            needed: needed.into(),
            rowtime_output,
            movable,
            filter: None,
            filtered_rowtime: None,
            shares: false,
        };
        shaper.taken = shaper.compute_taken();
        shaper
    }

    /// The shaper with a filter and a projection over its emitted columns pushed into it
    /// (the planner's `Calc` right above the scan): records `filter` refuses are dropped
    /// before any row is built, and the row built is the projection's. Computed columns are
    /// inlined into the expressions that read them; the caller checks that none is read
    /// twice ([`RowShaper::can_fuse`]).
    pub fn with_calc(mut self, filter: Option<&Expr>, projection: Option<&[Expr]>) -> Self {
        let inner = self.shape_exprs();
        if let Some(f) = filter {
            self.filter = Some(crate::rules::substitute(f, &inner).folded());
        }
        if let Some(p) = projection {
            self.columns = p
                .iter()
                .map(|e| match crate::rules::substitute(e, &inner) {
                    Expr::Column(i) => Shape::Physical(i),
                    e => Shape::Computed(e),
                })
                .collect();
        }
        // A kept record satisfies each `column = constant` of the filter: its computed
        // columns and rowtime are simplified with it; a refused one keeps the full rowtime.
        let facts = self.filter.as_ref().map(equalities).unwrap_or_default();
        if !facts.is_empty() {
            self.filtered_rowtime = self.rowtime.clone();
            for (column, value) in &facts {
                self.fold_kept(*column, value);
            }
        }
        // What the filter and the columns compute alike is computed once per record.
        let mut computed: Vec<&mut Expr> = self.filter.iter_mut().collect();
        let mut columns = self.columns.to_vec();
        computed.extend(columns.iter_mut().filter_map(|s| match s {
            Shape::Computed(e) => Some(e),
            Shape::Physical(_) => None,
        }));
        crate::cse::share_common(&mut computed);
        self.columns = columns.into();
        // Rewritten for evaluation last, after the rules above.
        self.filter = self.filter.as_ref().map(Expr::compiled);
        self.columns = self
            .columns
            .iter()
            .map(|shape| match shape {
                Shape::Computed(e) => Shape::Computed(e.compiled()),
                Shape::Physical(i) => Shape::Physical(*i),
            })
            .collect();
        self.recompute();
        self
    }

    /// Whether a filter and projection over the emitted columns can be pushed into the
    /// shaper without computing anything twice: each computed column is read at most once —
    /// by the projection, as simplified for the records the filter keeps (their `column =
    /// constant` facts: the generator's `dateTime`, a `CASE` on the event type, is one field of
    /// a bid, however often q14 reads it).
    pub fn can_fuse(&self, filter: Option<&Expr>, projection: Option<&[Expr]>) -> bool {
        let inner = self.shape_exprs();
        let facts = filter
            .map(|f| equalities(&crate::rules::substitute(f, &inner)))
            .unwrap_or_default();
        let kept: Vec<Expr> = inner
            .iter()
            .map(|e| {
                facts.iter().fold(e.clone(), |e, (column, value)| {
                    crate::rules::with_constant(&e, *column, value)
                })
            })
            .collect();
        let (mut by_filter, mut by_projection) = (Vec::new(), Vec::new());
        filter.into_iter().for_each(|f| f.columns(&mut by_filter));
        projection
            .into_iter()
            .flatten()
            .for_each(|e| e.columns(&mut by_projection));
        let computed = |e: &Expr| !matches!(e, Expr::Column(_) | Expr::Literal(_));
        (0..inner.len()).all(|i| {
            let evaluations = usize::from(computed(&inner[i]))
                * by_filter.iter().filter(|&&r| r == i).count()
                + usize::from(computed(&kept[i]))
                    * by_projection.iter().filter(|&&r| r == i).count();
            evaluations <= 1
        })
    }

    /// The emitted columns as expressions over the physical values.
    fn shape_exprs(&self) -> Vec<Expr> {
        self.columns
            .iter()
            .map(|s| match s {
                Shape::Physical(i) => Expr::Column(*i),
                Shape::Computed(e) => e.clone(),
            })
            .collect()
    }

    /// Re-derives what depends on the columns, the filter and the rowtime: the physical
    /// columns needed, which emitted column is the rowtime, which columns may be moved.
    fn recompute(&mut self) {
        let mut needed = vec![false; self.needed.len()];
        let mut reads = Vec::new();
        for s in self
            .columns
            .iter()
            .chain(self.rowtime.as_ref())
            .chain(self.filtered_rowtime.as_ref())
        {
            match s {
                Shape::Physical(i) => reads.push(*i),
                Shape::Computed(e) => e.columns(&mut reads),
            }
        }
        if let Some(f) = &self.filter {
            f.columns(&mut reads);
        }
        for i in reads {
            needed[i] = true;
        }
        self.needed = needed.into();
        // Compared as computed: a column's shared subexpressions are the rowtime's too.
        let computed = |s: &Shape| match s {
            Shape::Computed(e) => format!("{:?}", Shape::Computed(crate::cse::unshared(e))),
            s => format!("{s:?}"),
        };
        self.rowtime_output = self.rowtime.as_ref().and_then(|r| {
            let r = computed(r);
            self.columns.iter().position(|c| computed(c) == r)
        });
        self.shares = self.filter.iter().any(crate::cse::has_shared)
            || self.columns.iter().any(|s| match s {
                Shape::Computed(e) => crate::cse::has_shared(e),
                Shape::Physical(_) => false,
            });
        let rowtime_read = self
            .rowtime
            .as_ref()
            .filter(|_| self.rowtime_output.is_none());
        self.movable = movable(&self.columns, rowtime_read);
        self.taken = self.compute_taken();
    }

    /// Which physical columns are moved into the row and read by nothing before it is built.
    fn compute_taken(&self) -> Arc<[bool]> {
        let mut taken = vec![false; self.needed.len()];
        for (s, &m) in self.columns.iter().zip(self.movable.iter()) {
            if let (Shape::Physical(i), true) = (s, m) {
                taken[*i] = true;
            }
        }
        let mut read_before = Vec::new();
        if let Some(f) = &self.filter {
            f.columns(&mut read_before);
        }
        // The rowtime of a refused record is read from its physical values.
        let refused_rowtime = match self.filter {
            Some(_) => self.filtered_rowtime.as_ref().or(self.rowtime.as_ref()),
            None => None,
        };
        match refused_rowtime {
            Some(Shape::Physical(i)) => read_before.push(*i),
            Some(Shape::Computed(e)) => e.columns(&mut read_before),
            None => {}
        }
        for i in read_before {
            taken[i] = false;
        }
        taken.into()
    }

    /// The shaper with physical column `column` known to be `value` in every row (the
    /// `event_type` of a nexmark scan of one kind): computed columns are simplified once —
    /// the Flink benchmark's `CASE WHEN event_type = 0 THEN person.dateTime … END` becomes
    /// `bid.dateTime`.
    pub fn with_constant(mut self, column: usize, value: &Scalar) -> Self {
        self.fold_kept(column, value);
        self.filtered_rowtime = self
            .filtered_rowtime
            .as_ref()
            .map(|s| s.with_constant(column, value));
        self.filter = self
            .filter
            .as_ref()
            .map(|f| {
                crate::cse::unwrap_trivial(&crate::rules::with_constant(f, column, value)).folded()
            })
            .filter(|f| !matches!(f, Expr::Literal(Scalar::Bool(true))));
        self.recompute();
        self
    }

    /// Simplifies the emitted columns and the rowtime of kept records knowing that physical
    /// column `column` is `value`.
    fn fold_kept(&mut self, column: usize, value: &Scalar) {
        self.columns = self
            .columns
            .iter()
            .map(|s| s.with_constant(column, value))
            .collect();
        self.rowtime = self
            .rowtime
            .as_ref()
            .map(|s| s.with_constant(column, value));
    }

    /// Which physical columns the shaper reads (the others may stay NULL).
    pub fn needed(&self) -> &[bool] {
        &self.needed
    }

    /// Which physical columns [`RowShaper::shape_taking`] fetches itself (a reader fills the
    /// others that are [`RowShaper::needed`]).
    pub fn taken(&self) -> &[bool] {
        &self.taken
    }

    /// The emitted row of the physical values `physical`, moving out of it the physical
    /// columns nothing else reads (their slots are left NULL: the caller refills the buffer
    /// for the next record).
    #[inline]
    pub fn shape_from(&mut self, physical: &mut [Scalar]) -> std::result::Result<Shaped, String> {
        self.shape_moving(physical, moved_out, Read::Unmoved, |shaped| shaped)
    }

    /// As [`RowShaper::shape_from`], copying the physical values instead of moving them: for
    /// a buffer that other shapers read after this one ([`FanOutShapers`]).
    #[inline]
    pub fn shape_copying(
        &mut self,
        physical: &mut [Scalar],
    ) -> std::result::Result<Shaped, String> {
        self.shape_moving(physical, copied, Read::Unmoved, |shaped| shaped)
    }

    /// As [`RowShaper::shape_from`], with the [`RowShaper::taken`] columns fetched by `take`
    /// (physical index → value) while the row is built, and only for a row built: their
    /// values go straight from the record into the row, not through the physical buffer (a
    /// value stored into the buffer and read back at once stalled the copy). The buffer holds
    /// the other needed columns.
    #[inline]
    pub fn shape_taking(
        &mut self,
        physical: &mut [Scalar],
        take: impl FnMut(usize) -> Scalar,
    ) -> std::result::Result<Shaped, String> {
        self.shape_taking_with(physical, take, |shaped| shaped)
    }

    /// As [`RowShaper::shape_taking`], the row pushed onto `out` (a filtered record reported
    /// to `ctx`): built where it is stored ([`MapSource`]).
    #[inline]
    pub fn shape_taking_into(
        &mut self,
        physical: &mut [Scalar],
        take: impl FnMut(usize) -> Scalar,
        out: &mut Vec<Row>,
        ctx: &mut TaskContext,
    ) -> std::result::Result<(), String> {
        self.shape_taking_with(physical, take, |shaped| match shaped {
            Shaped::Row(row) => out.push(row),
            Shaped::Filtered(time) => ctx.filtered_at_source(time),
        })
    }

    /// What `done` makes of [`RowShaper::shape_taking`]'s result.
    #[inline]
    fn shape_taking_with<R>(
        &mut self,
        physical: &mut [Scalar],
        mut take: impl FnMut(usize) -> Scalar,
        done: impl FnOnce(Shaped) -> R,
    ) -> std::result::Result<R, String> {
        let taken = &self.taken;
        self.shape_moving(
            physical,
            |physical, i| {
                if taken[i] {
                    take(i)
                } else {
                    moved_out(physical, i)
                }
            },
            Read::Fetching,
            done,
        )
    }

    /// What `done` makes of the emitted row (or the filtered record), each movable column's
    /// value made by `moved` (the physical values and the column's index). A row `done`
    /// stores is built where it is stored, not returned and copied. `before` says where a
    /// record failing before its row is built has its values: all in `physical`, or all but
    /// the [`RowShaper::taken`] columns when `moved` fetches those from the record.
    #[inline]
    fn shape_moving<R>(
        &self,
        physical: &mut [Scalar],
        mut moved: impl FnMut(&mut [Scalar], usize) -> Scalar,
        before: Read<'_>,
        done: impl FnOnce(Shaped) -> R,
    ) -> std::result::Result<R, String> {
        if self.shares {
            crate::cse::next_row();
        }
        let unmoved = |e: String| self.failed(e, physical, before);
        if let Some(f) = &self.filter {
            if !f.test(physical).map_err(|e| unmoved(e.0))? {
                let time = match self.filtered_rowtime.as_ref().or(self.rowtime.as_ref()) {
                    Some(s) => s.value(physical).and_then(|v| rowtime_of(&v)),
                    None => Ok(Timestamp::MIN),
                };
                return Ok(done(Shaped::Filtered(time.map_err(unmoved)?)));
            }
        }
        // A rowtime that is not emitted is read before anything moves.
        let time = match (&self.rowtime, self.rowtime_output) {
            (Some(s), None) => Some(
                s.value(physical)
                    .and_then(|v| rowtime_of(&v))
                    .map_err(unmoved)?,
            ),
            _ => None,
        };
        // A moved column is read by nothing else, so the order of the moves does not matter.
        let mut failed = None;
        let values: Arc<[Scalar]> = self
            .columns
            .iter()
            .zip(self.movable.iter())
            .map(|(s, &m)| match s {
                Shape::Physical(i) if m => moved(physical, *i),
                s => value_or_first_error(s.value(physical), &mut failed),
            })
            .collect();
        if let Some(e) = failed {
            return Err(self.failed(e, physical, Read::Built(&values)));
        }
        let time = match (time, self.rowtime_output) {
            (Some(t), _) => t,
            (None, Some(i)) => rowtime_of(&values[i])
                .map_err(|e| self.failed(e, physical, Read::Built(&values)))?,
            (None, None) => Timestamp::MIN,
        };
        Ok(done(Shaped::Row(Row { values, time })))
    }

    /// The message of a record that failed with `reason`: the reason, then the record's
    /// values this scan reads, by column name (`division by zero in row {bid.auction=1000,
    /// bid.price=5}`), found where `read` says.
    #[cold]
    #[inline(never)]
    fn failed(&self, reason: String, physical: &[Scalar], read: Read<'_>) -> String {
        format!("{reason} in {}", self.describe(physical, read))
    }

    /// The values of a record this scan reads, by column name ([`RowShaper::failed`]).
    fn describe(&self, physical: &[Scalar], read: Read<'_>) -> String {
        const MAX_CHARS: usize = 60;
        let mut parts = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            if !self.needed[i] {
                continue;
            }
            let moved_to = self
                .columns
                .iter()
                .zip(self.movable.iter())
                .position(|(s, &m)| m && matches!(s, Shape::Physical(p) if *p == i));
            let value = match (read, moved_to) {
                (Read::Built(row), Some(j)) => &row[j],
                // Fetched from the record only for a row built: not read yet.
                (Read::Fetching, _) if self.taken[i] => continue,
                _ => match physical.get(i) {
                    Some(v) => v,
                    None => continue,
                },
            };
            let text = match value {
                Scalar::Str(s) if s.chars().count() > MAX_CHARS => {
                    let cut: String = s.chars().take(MAX_CHARS).collect();
                    streamcore::row::sql_string(&format!("{cut}…"))
                }
                other => other.to_literal(),
            };
            parts.push(format!("{name}={text}"));
        }
        format!("row {{{}}}", parts.join(", "))
    }

    /// The emitted row of the physical values `physical`. Only for a shaper without a pushed
    /// filter (the planner pushes filters into file and generator scans, which use
    /// [`RowShaper::shape_from`]).
    #[inline]
    pub fn shape(&mut self, physical: &[Scalar]) -> std::result::Result<Row, String> {
        debug_assert!(
            self.filter.is_none(),
            "RowShaper::shape ignores a pushed filter: use shape_from"
        );
        if self.shares {
            crate::cse::next_row();
        }
        let mut failed = None;
        let values: Arc<[Scalar]> = self
            .columns
            .iter()
            .map(|s| value_or_first_error(s.value(physical), &mut failed))
            .collect();
        // Nothing was moved: the values are all in `physical`.
        if let Some(e) = failed {
            return Err(self.failed(e, physical, Read::Unmoved));
        }
        let time = match (&self.rowtime, self.rowtime_output) {
            (Some(_), Some(i)) => rowtime_of(&values[i]),
            (Some(s), None) => s.value(physical).and_then(|v| rowtime_of(&v)),
            (None, _) => Ok(Timestamp::MIN),
        };
        let time = time.map_err(|e| self.failed(e, physical, Read::Unmoved))?;
        Ok(Row { values, time })
    }
}

/// A row's value, or NULL with the error kept in `failed` (the first one): rows are collected
/// straight into their allocation (one, for an iterator of known length) from plain values —
/// an iterator of `Result`s there cost a row about 40 % more (its values were copied through
/// the stack in pieces).
#[inline]
fn value_or_first_error(
    value: std::result::Result<Scalar, String>,
    failed: &mut Option<String>,
) -> Scalar {
    value.unwrap_or_else(|e| {
        failed.get_or_insert(e);
        Scalar::Null
    })
}

/// The `column = constant` conjuncts of a filter over physical columns (integers, strings and
/// booleans: constants whose equality is identity).
fn equalities(filter: &Expr) -> Vec<(usize, Scalar)> {
    let conjuncts = match filter {
        Expr::And(v) => v.as_slice(),
        f => std::slice::from_ref(f),
    };
    conjuncts
        .iter()
        .filter_map(|c| match c {
            Expr::Cmp(crate::expr::CmpOp::Eq, l, r) => match (l.as_ref(), r.as_ref()) {
                (Expr::Column(c), Expr::Literal(v)) | (Expr::Literal(v), Expr::Column(c))
                    if matches!(v, Scalar::Int(_) | Scalar::Str(_) | Scalar::Bool(_)) =>
                {
                    Some((*c, v.clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Which emitted columns are physical columns read by nothing else (see `RowShaper::movable`).
fn movable(shapes: &[Shape], rowtime: Option<&Shape>) -> Arc<[bool]> {
    let mut reads: Vec<usize> = Vec::new();
    for s in shapes.iter().chain(rowtime) {
        match s {
            Shape::Physical(i) => reads.push(*i),
            Shape::Computed(e) => e.columns(&mut reads),
        }
    }
    shapes
        .iter()
        .map(|s| matches!(s, Shape::Physical(i) if reads.iter().filter(|&&r| r == *i).count() == 1))
        .collect()
}

/// Physical column `i`'s value moved out of the buffer (its slot left NULL).
#[inline]
fn moved_out(physical: &mut [Scalar], i: usize) -> Scalar {
    std::mem::replace(&mut physical[i], Scalar::Null)
}

/// Physical column `i`'s value copied (the buffer is read by other shapers after this one).
#[inline]
fn copied(physical: &mut [Scalar], i: usize) -> Scalar {
    physical[i].clone()
}

fn rowtime_of(v: &Scalar) -> std::result::Result<Timestamp, String> {
    match v {
        Scalar::Null => Err("the rowtime column is NULL".into()),
        v => Ok(v.as_timestamp().unwrap_or(Timestamp::MIN)),
    }
}

/// A source of `X` records turned into rows by `convert` inside the reader (so watermarks are
/// generated from the rows' event times at the source). `convert` pushes the record's rows
/// (if any) onto the batch itself — a row built where it is stored, not returned and copied
/// (a row returned through the layers of `Result` and `Option` was written in parts and read
/// back whole, stalling the processor once per row). A record `convert` refuses (`Err`: it
/// pushed nothing for it) goes through the job's error policy, named by the source's origin
/// ([`MapSource::origin`]) or else its reader's split; one it filters out it reports to the task's context itself
/// ([`RowShaper::shape_taking_into`], [`Shaped::emit_in`]).
pub struct MapSource<S, X, F> {
    inner: S,
    convert: F,
    origin: Arc<str>,
    /// Whether the split is named after the origin too (a Kafka partition).
    split_too: bool,
    _x: PhantomData<fn() -> X>,
}

impl<S, X, F> MapSource<S, X, F> {
    /// `inner`, each record converted by `convert` onto the batch.
    pub fn new(inner: S, convert: F) -> Self {
        MapSource {
            inner,
            convert,
            origin: Arc::from(""),
            split_too: false,
            _x: PhantomData,
        }
    }

    /// Names where a record that fails to convert was read (`` table `bids` (nexmark) ``), in
    /// its error and dead letter; else the reader's split is named.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Arc::from(origin.into());
        self
    }

    /// As [`MapSource::origin`], the reader's split named after it (`` table `t` (kafka),
    /// split 3 ``): for a source whose splits mean something to a user.
    pub fn origin_and_split(mut self, origin: impl Into<String>) -> Self {
        self.split_too = true;
        self.origin(origin)
    }
}

/// A reader of [`MapSource`].
pub struct MapReader<R, X, F> {
    inner: R,
    convert: F,
    buffer: Vec<X>,
    origin: Arc<str>,
    split_too: bool,
}

impl<S, X, O, F> Source<O> for MapSource<S, X, F>
where
    X: Data,
    O: Data,
    S: Source<X>,
    F: FnMut(X, &mut TaskContext, &mut Vec<O>) -> std::result::Result<(), String>
        + Clone
        + Send
        + 'static,
{
    type Reader = MapReader<S::Reader, X, F>;

    fn parallelism(&self, job_parallelism: usize) -> usize {
        self.inner.parallelism(job_parallelism)
    }

    fn create_readers(&mut self, parallelism: usize) -> StreamResult<Vec<Self::Reader>> {
        Ok(self
            .inner
            .create_readers(parallelism)?
            .into_iter()
            .map(|inner| MapReader {
                inner,
                convert: self.convert.clone(),
                buffer: Vec::new(),
                origin: self.origin.clone(),
                split_too: self.split_too,
            })
            .collect())
    }

    fn supports_checkpoints(&self) -> bool {
        self.inner.supports_checkpoints()
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> StreamResult<Vec<Self::Reader>> {
        Ok(self
            .inner
            .restore_readers(parallelism, positions)?
            .into_iter()
            .map(|inner| MapReader {
                inner,
                convert: self.convert.clone(),
                buffer: Vec::new(),
                origin: self.origin.clone(),
                split_too: self.split_too,
            })
            .collect())
    }

    fn committer(&mut self) -> StreamResult<Option<Box<dyn Committer>>> {
        self.inner.committer()
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        self.inner.connector_metrics()
    }
}

impl<R, X, O, F> SourceReader<O> for MapReader<R, X, F>
where
    X: Data,
    O: Data,
    R: SourceReader<X>,
    F: FnMut(X, &mut TaskContext, &mut Vec<O>) -> std::result::Result<(), String>
        + Clone
        + Send
        + 'static,
{
    fn poll_batch(
        &mut self,
        out: &mut Vec<O>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> StreamResult<SourcePoll> {
        self.buffer.clear();
        let poll = self.inner.poll_batch(&mut self.buffer, max, ctx)?;
        out.reserve(self.buffer.len());
        for x in self.buffer.drain(..) {
            if let Err(reason) = (self.convert)(x, ctx, out) {
                let origin = match (&*self.origin, self.split_too) {
                    ("", _) => format!("split {}", self.inner.split_id()),
                    (origin, true) => format!("{origin}, split {}", self.inner.split_id()),
                    (origin, false) => origin.to_string(),
                };
                ctx.reject_input(origin, "", reason)?
            }
        }
        Ok(poll)
    }

    fn split_id(&self) -> u64 {
        self.inner.split_id()
    }

    fn initial_splits(&self) -> Vec<u64> {
        self.inner.initial_splits()
    }

    fn snapshot_position(&mut self) -> StreamResult<Vec<u8>> {
        self.inner.snapshot_position()
    }

    fn pre_commit(&mut self) -> StreamResult<Vec<Vec<u8>>> {
        self.inner.pre_commit()
    }
}

/// Options of the `nexmark` connector, onto the generator's configuration.
pub fn nexmark_config(table: &TableDef) -> Result<GeneratorConfig, PlanError> {
    let mut config = GeneratorConfig::default();
    let num = |key: &str, v: &str| -> Result<u64, PlanError> {
        v.trim().parse().map_err(|_| {
            PlanError::invalid(format!(
                "`nexmark` table `{}`: option '{key}' must be a whole number, got '{v}'",
                table.name
            ))
        })
    };
    for (key, value) in &table.options {
        match key.as_str() {
            // Options of every table (the planner reads them).
            "connector" | "late-data.table" | "allowed-lateness" => {}
            "events.num" => {
                let n = num(key, value)?;
                config.events = if n == 0 { None } else { Some(n) };
            }
            "first-event.rate" | "next-event.rate" => config.first_event_rate = num(key, value)?,
            "rate-limited" => config.rate_limited = value == "true",
            "person.proportion" => config.person_proportion = num(key, value)?,
            "auction.proportion" => config.auction_proportion = num(key, value)?,
            "bid.proportion" => config.bid_proportion = num(key, value)?,
            "seed" => config.seed = num(key, value)?,
            "base-time" => config.base_time_ms = num(key, value)? as i64,
            "out-of-order-group-size" => config.out_of_order_group_size = num(key, value)?,
            "kind" => {
                if !["person", "auction", "bid"].contains(&value.as_str()) {
                    return Err(PlanError::invalid(format!(
                        "`nexmark` table `{}`: option 'kind' is person, auction or bid, got '{value}'",
                        table.name
                    )));
                }
            }
            other => {
                return Err(PlanError::invalid(format!(
                    "`nexmark` table `{}`: unknown option '{other}' (options: kind, events.num, first-event.rate, next-event.rate, rate-limited, person.proportion, auction.proportion, bid.proportion, seed, base-time, out-of-order-group-size, late-data.table, allowed-lateness)",
                    table.name
                )))
            }
        }
    }
    Ok(config)
}

/// One field of a Nexmark event as a physical column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NexmarkField {
    /// `event_type`: 0 person, 1 auction, 2 bid.
    EventType,
    /// A person's field.
    Person(u8),
    /// An auction's field.
    Auction(u8),
    /// A bid's field.
    Bid(u8),
}

const PERSON: [&str; 8] = [
    "id",
    "name",
    "emailAddress",
    "creditCard",
    "city",
    "state",
    "dateTime",
    "extra",
];
const AUCTION: [&str; 10] = [
    "id",
    "itemName",
    "description",
    "initialBid",
    "reserve",
    "dateTime",
    "expires",
    "seller",
    "category",
    "extra",
];
const BID: [&str; 7] = [
    "auction", "bidder", "price", "channel", "url", "dateTime", "extra",
];

impl NexmarkField {
    /// The field of a column name (`event_type`, `person.id`, `bid.dateTime`, …).
    pub fn parse(name: &str) -> Option<NexmarkField> {
        if name == "event_type" {
            return Some(NexmarkField::EventType);
        }
        let (record, field) = name.split_once('.')?;
        let find = |fields: &[&str]| fields.iter().position(|f| *f == field).map(|i| i as u8);
        match record {
            "person" => find(&PERSON).map(NexmarkField::Person),
            "auction" => find(&AUCTION).map(NexmarkField::Auction),
            "bid" => find(&BID).map(NexmarkField::Bid),
            _ => None,
        }
    }

    fn of_person(self, p: &mut Person) -> Scalar {
        match self {
            NexmarkField::EventType => Scalar::Int(0),
            NexmarkField::Person(i) => match i {
                0 => Scalar::Int(p.id),
                1 => Scalar::Str(std::mem::take(&mut p.name)),
                2 => Scalar::Str(std::mem::take(&mut p.email_address)),
                3 => Scalar::Str(std::mem::take(&mut p.credit_card)),
                4 => Scalar::Str(std::mem::take(&mut p.city)),
                5 => Scalar::Str(std::mem::take(&mut p.state)),
                6 => Scalar::TimestampMs(p.date_time.0),
                _ => Scalar::Str(std::mem::take(&mut p.extra)),
            },
            _ => Scalar::Null,
        }
    }

    fn of_auction(self, a: &mut Auction) -> Scalar {
        match self {
            NexmarkField::EventType => Scalar::Int(1),
            NexmarkField::Auction(i) => match i {
                0 => Scalar::Int(a.id),
                1 => Scalar::Str(std::mem::take(&mut a.item_name)),
                2 => Scalar::Str(std::mem::take(&mut a.description)),
                3 => Scalar::Int(a.initial_bid),
                4 => Scalar::Int(a.reserve),
                5 => Scalar::TimestampMs(a.date_time.0),
                6 => Scalar::TimestampMs(a.expires.0),
                7 => Scalar::Int(a.seller),
                8 => Scalar::Int(a.category),
                _ => Scalar::Str(std::mem::take(&mut a.extra)),
            },
            _ => Scalar::Null,
        }
    }

    fn of_bid(self, b: &mut Bid) -> Scalar {
        match self {
            NexmarkField::EventType => Scalar::Int(2),
            NexmarkField::Bid(i) => match i {
                0 => Scalar::Int(b.auction),
                1 => Scalar::Int(b.bidder),
                2 => Scalar::Int(b.price),
                3 => Scalar::Str(std::mem::take(&mut b.channel)),
                4 => Scalar::Str(std::mem::take(&mut b.url)),
                5 => Scalar::TimestampMs(b.date_time.0),
                _ => Scalar::Str(std::mem::take(&mut b.extra)),
            },
            _ => Scalar::Null,
        }
    }

    /// The column type of the field.
    pub fn data_type(self) -> DataType {
        match self {
            NexmarkField::EventType => DataType::BigInt,
            NexmarkField::Person(i) => match i {
                0 => DataType::BigInt,
                6 => DataType::TimestampMillis,
                _ => DataType::Varchar,
            },
            NexmarkField::Auction(i) => match i {
                0 | 3 | 4 | 7 | 8 => DataType::BigInt,
                5 | 6 => DataType::TimestampMillis,
                _ => DataType::Varchar,
            },
            NexmarkField::Bid(i) => match i {
                0..=2 => DataType::BigInt,
                5 => DataType::TimestampMillis,
                _ => DataType::Varchar,
            },
        }
    }
}

/// The physical columns of a `nexmark` table as event fields, checked against their types.
pub fn nexmark_fields(table: &TableDef) -> Result<Arc<[NexmarkField]>, PlanError> {
    let kind = table.options.get("kind");
    table
        .physical()
        .map(|c| {
            let parsed = match kind {
                Some(k) => NexmarkField::parse(&format!("{k}.{}", c.name)),
                None => NexmarkField::parse(&c.name),
            };
            let f = parsed.ok_or_else(|| {
                PlanError::invalid(match kind.map(String::as_str) {
                    Some(k) => format!(
                        "`nexmark` table `{}` of kind '{k}': no field `{}` (fields: {})",
                        table.name,
                        c.name,
                        match k {
                            "person" => PERSON.join(", "),
                            "auction" => AUCTION.join(", "),
                            _ => BID.join(", "),
                        }
                    ),
                    None => format!(
                        "`nexmark` table `{}`: no event field `{}` (fields: event_type, person ROW<{}>, auction ROW<{}>, bid ROW<{}>; or set 'kind' to person, auction or bid and name that record's fields)",
                        table.name,
                        c.name,
                        PERSON.join(", "),
                        AUCTION.join(", "),
                        BID.join(", ")
                    ),
                })
            })?;
            if f.data_type() != c.data_type {
                return Err(PlanError::invalid(format!(
                    "`nexmark` table `{}`: column `{}` is {} but the generator makes {}",
                    table.name,
                    c.name,
                    c.data_type,
                    f.data_type()
                )));
            }
            Ok(f)
        })
        .collect()
}

/// Which events a scan of a `nexmark` table needs (a filter `event_type = k` right above it
/// lets the generator make only that kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NexmarkKind {
    /// Every event.
    All,
    /// Persons only.
    Person,
    /// Auctions only.
    Auction,
    /// Bids only.
    Bid,
}

/// Adds to `$job` the generator of `$config` making the records of `$kind` (bids and auctions
/// up to the fields `$parts`, a [`Parts`]), each converted by the converter
/// `$convert::<T>($args…)` makes for that record type `T` (`?` on a bad configuration, naming
/// the table `$table`).
macro_rules! generator_source {
    ($job:expr, $name:expr, $table:expr, $config:expr, $kind:expr, $parts:expr,
     $convert:ident($($arg:expr),*)) => {{
        let parts: Parts = $parts;
        let bad = |e: streamcore_nexmark::ConfigError| {
            PlanError::invalid(format!("`nexmark` table `{}`: {e}", $table.name))
        };
        // The source of record type `$t`, its rows made by `$convert::<$t>`.
        macro_rules! of {
            ($t:ty) => {
                $job.source(
                    $name,
                    MapSource::new(
                        NexmarkSource::<$t>::from_generator(
                            NexmarkGenerator::new($config)
                                .map_err(bad)?
                                .making_bids_up_to(parts.bids)
                                .making_auctions_up_to(parts.auctions),
                        ),
                        $convert::<$t>($($arg),*),
                    )
                    .origin(format!("table `{}` (nexmark)", $table.name)),
                )
            };
        }
        match $kind {
            NexmarkKind::Bid if parts.bids != BidFields::All => of!(PartOfBid),
            NexmarkKind::Auction if parts.auctions != AuctionFields::All => of!(PartOfAuction),
            NexmarkKind::Bid => of!(Bid),
            NexmarkKind::Auction => of!(Auction),
            NexmarkKind::Person => of!(Person),
            NexmarkKind::All => of!(NexmarkEvent),
        }
    }};
}

/// Adds a `nexmark` scan to `job`.
pub fn nexmark_stream(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    columns: &[usize],
    kind: NexmarkKind,
    calc: &ScanCalc,
) -> Result<streamcore::Stream<Row>, PlanError> {
    let config = nexmark_config(table)?;
    let fields = nexmark_fields(table)?;
    let kind = nexmark_kind(table, kind);
    let shaper = RowShaper::select(table, columns).with_calc(calc.filter(), calc.projection());
    let shaper = with_event_type(shaper, &fields, kind);
    fn rows<T: GeneratedRecord>(
        fields: Arc<[NexmarkField]>,
        mut shaper: RowShaper,
    ) -> impl FnMut(T, &mut TaskContext, &mut Vec<Row>) -> std::result::Result<(), String>
           + Clone
           + Send
           + 'static {
        // Only the fields something reads are taken from the event, moved out of it (each
        // physical column is a distinct field, so none is taken twice); the physical row is
        // a buffer reused for every event.
        // (Only those listed: a pass over every field of the table, most of them not
        // prefilled, cost q0 12 % of its instructions.)
        let prefilled: Vec<(usize, NexmarkField)> = fields
            .iter()
            .zip(shaper.needed().iter().zip(shaper.taken()))
            .enumerate()
            .filter(|(_, (_, (&needed, &taken)))| needed && !taken)
            .map(|(i, (f, _))| (i, *f))
            .collect();
        let mut physical: Vec<Scalar> = vec![Scalar::Null; fields.len()];
        move |mut e: T, ctx: &mut TaskContext, out: &mut Vec<Row>| {
            for &(i, f) in &prefilled {
                put(&mut physical[i], e.take(f));
            }
            shaper.shape_taking_into(&mut physical, |i| e.take(fields[i]), out, ctx)
        }
    }
    // A scan of bids or auctions has the generator stop after the last field it reads.
    let parts = parts_read(&fields, shaper.needed());
    Ok(generator_source!(
        job,
        name,
        table,
        config,
        kind,
        parts,
        rows(fields, shaper)
    ))
}

/// How much of each bid and auction the generator makes for a reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Parts {
    bids: BidFields,
    auctions: AuctionFields,
}

/// How much of a bid and of an auction a reader of the columns `needed` (of the table's
/// `fields`) needs made: up to the last of them in the generator's order ([`BidFields`],
/// [`AuctionFields`]; a reader of persons' fields reads every event: whole bids and auctions).
fn parts_read(fields: &[NexmarkField], needed: &[bool]) -> Parts {
    let read = || {
        fields
            .iter()
            .zip(needed)
            .filter(|(_, &n)| n)
            .map(|(f, _)| *f)
    };
    let persons = read().any(|f| matches!(f, NexmarkField::Person(_)));
    let bids = read()
        .map(|field| match field {
            NexmarkField::Bid(0) => BidFields::Auction,
            NexmarkField::Bid(1) => BidFields::Bidder,
            NexmarkField::Bid(2) => BidFields::Price,
            NexmarkField::Bid(3 | 4) => BidFields::ChannelAndUrl,
            NexmarkField::Bid(6) => BidFields::All,
            _ => BidFields::DateTime,
        })
        .max()
        .unwrap_or(BidFields::DateTime);
    let auctions = read()
        .map(|field| match field {
            NexmarkField::Auction(7) => AuctionFields::Seller,
            NexmarkField::Auction(8) => AuctionFields::Category,
            NexmarkField::Auction(3) => AuctionFields::InitialBid,
            NexmarkField::Auction(6) => AuctionFields::Expires,
            NexmarkField::Auction(1 | 2 | 4 | 9) => AuctionFields::All,
            _ => AuctionFields::IdAndDateTime,
        })
        .max()
        .unwrap_or(AuctionFields::IdAndDateTime);
    match persons {
        true => Parts::default(),
        false => Parts { bids, auctions },
    }
}

/// Stores `value` into `slot` as its variant and then its payload, each written where it goes
/// (the variant from a constant, and not at all when the slot holds one of its kind — the same
/// field of the record before): a whole value made apart and copied in, read back as wider
/// words than it was written, stalled the processor once per field and record.
#[inline(always)]
fn put(slot: &mut Scalar, value: Scalar) {
    match value {
        Scalar::Int(v) => {
            if !matches!(slot, Scalar::Int(_)) {
                *slot = const { Scalar::Int(0) };
            }
            if let Scalar::Int(x) = slot {
                *x = v;
            }
        }
        Scalar::TimestampMs(v) => {
            if !matches!(slot, Scalar::TimestampMs(_)) {
                *slot = const { Scalar::TimestampMs(0) };
            }
            if let Scalar::TimestampMs(x) = slot {
                *x = v;
            }
        }
        Scalar::Str(v) => {
            if !matches!(slot, Scalar::Str(_)) {
                *slot = const { Scalar::Str(compact_str::CompactString::const_new("")) };
            }
            if let Scalar::Str(x) = slot {
                *x = v;
            }
        }
        value => *slot = value,
    }
}

/// A record the generator makes, as a scan reads it: its kind, and its fields by
/// [`NexmarkField`], each moved out (statically dispatched: the field moves inline).
trait GeneratedRecord: streamcore_nexmark::NexmarkRecord {
    fn kind(&self) -> NexmarkKind;
    fn take(&mut self, field: NexmarkField) -> Scalar;
}

/// [`GeneratedRecord`] for the record of one kind, whose fields `NexmarkField::$of` takes (of
/// the record itself, or with `.0` of the record a part-made newtype wraps).
macro_rules! one_kind {
    ($record:ty, $kind:ident, $of:ident $(, .$inner:tt)?) => {
        impl GeneratedRecord for $record {
            fn kind(&self) -> NexmarkKind {
                NexmarkKind::$kind
            }
            #[inline(always)]
            fn take(&mut self, field: NexmarkField) -> Scalar {
                field.$of(&mut (*self)$(.$inner)?)
            }
        }
    };
}

one_kind!(Bid, Bid, of_bid);
one_kind!(PartOfBid, Bid, of_bid, .0);
one_kind!(Auction, Auction, of_auction);
one_kind!(PartOfAuction, Auction, of_auction, .0);
one_kind!(Person, Person, of_person);

impl GeneratedRecord for NexmarkEvent {
    fn kind(&self) -> NexmarkKind {
        match self {
            NexmarkEvent::Person(_) => NexmarkKind::Person,
            NexmarkEvent::Auction(_) => NexmarkKind::Auction,
            NexmarkEvent::Bid(_) => NexmarkKind::Bid,
        }
    }
    #[inline(always)]
    fn take(&mut self, field: NexmarkField) -> Scalar {
        match self {
            NexmarkEvent::Person(p) => field.of_person(p),
            NexmarkEvent::Auction(a) => field.of_auction(a),
            NexmarkEvent::Bid(b) => field.of_bid(b),
        }
    }
}

/// The kind of events a scan of `table` reads: the table's `kind` option, or `kind` (what the
/// planner found the scan's filter on `event_type` asks for).
fn nexmark_kind(table: &TableDef, kind: NexmarkKind) -> NexmarkKind {
    match table.options.get("kind").map(String::as_str) {
        Some("person") => NexmarkKind::Person,
        Some("auction") => NexmarkKind::Auction,
        Some("bid") => NexmarkKind::Bid,
        _ => kind,
    }
}

/// Reading one kind, `event_type` is a constant: folded into `shaper`'s computed columns.
fn with_event_type(shaper: RowShaper, fields: &[NexmarkField], kind: NexmarkKind) -> RowShaper {
    let event_type = fields.iter().position(|f| *f == NexmarkField::EventType);
    match (event_type, kind) {
        (Some(c), NexmarkKind::Person) => shaper.with_constant(c, &Scalar::Int(0)),
        (Some(c), NexmarkKind::Auction) => shaper.with_constant(c, &Scalar::Int(1)),
        (Some(c), NexmarkKind::Bid) => shaper.with_constant(c, &Scalar::Int(2)),
        _ => shaper,
    }
}

/// Adds a `nexmark` source generated once for all the scans of `scans`, making the events of
/// `kind` (the kind every scan reads, or all of them): each event's fields that a scan of its
/// kind reads are moved into a buffer of physical values, and each such scan's row is built
/// from it with its own filter and projection ([`FanOutShapers`]), `event_type` folded in.
pub fn nexmark_fan_out(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    scans: &FanOut,
    kind: NexmarkKind,
) -> Result<streamcore::Stream<FannedRows>, PlanError> {
    let config = nexmark_config(table)?;
    let fields = nexmark_fields(table)?;
    let kind = nexmark_kind(table, kind);
    /// The shapers of the scans that read events of `kind` (or of every kind), with
    /// `event_type` folded into them, and the fields they read.
    fn of_kind(
        table: &TableDef,
        fields: &[NexmarkField],
        scans: &FanOut,
        kind: NexmarkKind,
    ) -> (FanOutShapers, Vec<(usize, NexmarkField)>) {
        let shapers = scans.shapers_of(table, |scan_kind, shaper| {
            let reads = scan_kind == kind || scan_kind == NexmarkKind::All;
            reads.then(|| with_event_type(shaper, fields, kind))
        });
        // The fields read, by physical index (only those: see `nexmark_stream`).
        let fill = fields
            .iter()
            .zip(&shapers.needed)
            .enumerate()
            .filter(|(_, (_, &needed))| needed)
            .map(|(i, (f, _))| (i, *f))
            .collect();
        (shapers, fill)
    }
    // The shapers are made when the first event is shaped: the scans register while the
    // job is planned, after this source is added. Per kind of event (person, auction, bid):
    // the shapers of the scans that read it, and the fields they read.
    type Ready = [(FanOutShapers, Vec<(usize, NexmarkField)>); 3];
    fn fanned<T: GeneratedRecord>(
        table: Arc<TableDef>,
        fields: Arc<[NexmarkField]>,
        scans: FanOut,
    ) -> impl FnMut(T, &mut TaskContext, &mut Vec<FannedRows>) -> std::result::Result<(), String>
           + Clone
           + Send
           + 'static {
        let mut ready: Option<Ready> = None;
        let mut physical = vec![Scalar::Null; fields.len()];
        move |mut e: T, ctx: &mut TaskContext, out: &mut Vec<FannedRows>| {
            let per_kind = ready.get_or_insert_with(|| {
                [NexmarkKind::Person, NexmarkKind::Auction, NexmarkKind::Bid]
                    .map(|kind| of_kind(&table, &fields, &scans, kind))
            });
            let (shapers, fill) = &mut per_kind[match e.kind() {
                NexmarkKind::Person => 0,
                NexmarkKind::Auction => 1,
                _ => 2,
            }];
            for &(i, f) in fill.iter() {
                put(&mut physical[i], e.take(f));
            }
            shapers.shape_into(&mut physical, ctx, out)
        }
    }
    let scans = scans.clone();
    let shared = Arc::new(table.clone());
    // The scans register after the source is made: the events are made whole.
    Ok(generator_source!(
        job,
        name,
        table,
        config,
        kind,
        Parts::default(),
        fanned(shared, fields, scans)
    ))
}

/// Adds a `filesystem` source (JSON lines or CSV) read once for all the scans of `scans`.
pub fn filesystem_fan_out(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    scans: &FanOut,
) -> Result<streamcore::Stream<FannedRows>, PlanError> {
    let path = filesystem_path(table)?;
    let schema = table.physical_schema();
    fn source<D: PhysicalDecoder>(
        path: String,
        table: &TableDef,
        scans: &FanOut,
        decoder: D,
    ) -> streamcore_connectors::JsonLinesSource<FannedRows, FanOutLines<D>> {
        streamcore_connectors::JsonLinesSource::<FannedRows>::typed(path)
            .with_decoder(FanOutLines::new(table, scans.clone(), decoder))
    }
    Ok(match table.required("format")? {
        "json" => {
            let decoder = JsonRowDecoder::new(schema, ignore_parse_errors(table));
            job.source(name, source(path, table, scans, decoder))
        }
        "csv" => {
            let decoder = CsvRowDecoder::new(schema, csv_delimiter(table)?);
            job.source(name, source(path, table, scans, decoder))
        }
        other => return Err(unknown_format(table, other)),
    })
}

/// Adds a `filesystem` scan (JSON lines or CSV) to `job`.
pub fn filesystem_stream(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    columns: &[usize],
    calc: &ScanCalc,
) -> Result<streamcore::Stream<Row>, PlanError> {
    let path = filesystem_path(table)?;
    let format = table.required("format")?;
    let shaper = RowShaper::select(table, columns).with_calc(calc.filter(), calc.projection());
    let schema = table.physical_schema();
    let needed: Vec<bool> = shaper.needed().to_vec();
    match format {
        "json" => {
            // Fields no column needs are skipped while parsing, not decoded.
            let decoder = JsonRowDecoder::new(schema, ignore_parse_errors(table)).only(&needed);
            let source = streamcore_connectors::JsonLinesSource::<Row>::typed(path)
                .with_decoder(ShapedLines::new(decoder, shaper));
            Ok(job.source(name, source))
        }
        "csv" => {
            let decoder = CsvRowDecoder::new(schema, csv_delimiter(table)?);
            let source = streamcore_connectors::JsonLinesSource::<Row>::typed(path)
                .with_decoder(ShapedLines::new(decoder, shaper));
            Ok(job.source(name, source))
        }
        other => Err(unknown_format(table, other)),
    }
}

/// The rows one record (a line, an event) gives the scans that share its reader
/// ([`FanOut`]): per scan that keeps the record, the scan's number and its row.
#[derive(Clone, Debug, Default)]
pub struct FannedRows(pub smallvec::SmallVec<[(u32, Row); 2]>);

impl streamcore::event_time::EventTime for FannedRows {
    /// The record's event time (its rows' time: they come from one record of one table).
    #[inline]
    fn event_time(&self) -> Timestamp {
        self.0.first().map_or(Timestamp::MIN, |(_, row)| row.time)
    }
}

/// The scans of one source that share its reader, each with the filter and projection fused
/// into it, numbered as the planner asks for them. Filled while planning and read when the
/// readers are made, after planning: one record is read (decoded, generated) once, and each
/// scan's row is built from it directly — no row of all the scans' columns, no copy of the
/// record per scan.
#[derive(Clone, Default)]
pub struct FanOut(Arc<std::sync::Mutex<Vec<FanOutScan>>>);

/// A scan of a shared reader: its columns, what is fused into it, and the kind of Nexmark
/// events it reads (`All` for a file's).
type FanOutScan = (Vec<usize>, ScanCalc, NexmarkKind);

impl FanOut {
    /// Adds a scan of `columns` (of Nexmark events of `kind`) with `calc` fused into it; its
    /// number.
    pub fn add(&self, columns: &[usize], calc: &ScanCalc, kind: NexmarkKind) -> u32 {
        let mut scans = self.0.lock().expect("fan-out scans");
        scans.push((columns.to_vec(), calc.clone(), kind));
        (scans.len() - 1) as u32
    }

    /// The scans' shapers over `table`'s physical columns.
    fn shapers(&self, table: &TableDef) -> FanOutShapers {
        self.shapers_of(table, |_, shaper| Some(shaper))
    }

    /// The shapers over `table`'s physical columns of the scans `pick` keeps, given each
    /// scan's event kind (and adjusts).
    fn shapers_of(
        &self,
        table: &TableDef,
        pick: impl Fn(NexmarkKind, RowShaper) -> Option<RowShaper>,
    ) -> FanOutShapers {
        let scans = self.0.lock().expect("fan-out scans");
        // What every shaper of the table reads from: its physical columns, metadata included.
        let width = RowShaper::select(table, &[]).needed().len();
        FanOutShapers::new(
            (0..)
                .zip(scans.iter())
                .filter_map(|(n, (columns, calc, kind))| {
                    let shaper = RowShaper::select(table, columns)
                        .with_calc(calc.filter(), calc.projection());
                    Some((n, pick(*kind, shaper)?))
                })
                .collect(),
            width,
        )
    }
}

/// The shapers of the scans sharing a reader, applied in turn to one record's physical values.
/// The one that moves the most columns out of the record goes last and moves them; the
/// others copy what they read.
#[derive(Clone)]
pub struct FanOutShapers {
    /// Each scan's number and shaper, in the order they are applied.
    shapers: Vec<(u32, RowShaper)>,
    /// The physical columns any scan needs.
    needed: Vec<bool>,
}

impl FanOutShapers {
    /// The shapers of the scans numbered as given, over `width` physical columns.
    fn new(mut shapers: Vec<(u32, RowShaper)>, width: usize) -> Self {
        shapers.sort_by_key(|(_, s)| s.taken().iter().filter(|&&t| t).count());
        let needed = (0..width)
            .map(|i| shapers.iter().any(|(_, s)| s.needed()[i]))
            .collect();
        FanOutShapers { shapers, needed }
    }

    /// Each scan's row of the record in `physical` (the last shaper moves the values the
    /// others copied); a record no scan keeps is reported to `ctx` as filtered (`None`): the
    /// source counts records, each read once, as read and emitted or filtered, and the
    /// record's event time still moves the watermark. A scan that fails on the record fails
    /// it for all of them — as a line that does not decode — and the job's error policy takes
    /// it once.
    #[inline]
    fn shape(
        &mut self,
        physical: &mut [Scalar],
        ctx: Option<&mut TaskContext>,
    ) -> std::result::Result<Option<FannedRows>, String> {
        self.shape_with(physical, ctx, |rows| rows)
    }

    /// As [`FanOutShapers::shape`], the rows pushed onto `out` (built where they are stored,
    /// as [`MapSource`] asks: a batch of rows returned and copied twice stalled twice).
    #[inline]
    fn shape_into(
        &mut self,
        physical: &mut [Scalar],
        ctx: &mut TaskContext,
        out: &mut Vec<FannedRows>,
    ) -> std::result::Result<(), String> {
        self.shape_with(physical, Some(ctx), |rows| out.push(rows))
            .map(|_| ())
    }

    /// What `done` makes of the record's rows, if a scan keeps it (see
    /// [`FanOutShapers::shape`]).
    #[inline]
    fn shape_with<R>(
        &mut self,
        physical: &mut [Scalar],
        ctx: Option<&mut TaskContext>,
        done: impl FnOnce(FannedRows) -> R,
    ) -> std::result::Result<Option<R>, String> {
        let mut rows = smallvec::SmallVec::new();
        let mut filtered = Timestamp::MIN;
        let mut keep = |scan: u32, shaped: Shaped| match shaped {
            Shaped::Row(row) => rows.push((scan, row)),
            Shaped::Filtered(time) => filtered = filtered.max(time),
        };
        let at = self.shapers.len().saturating_sub(1);
        let (others, last) = self.shapers.split_at_mut(at);
        // Each row pushed by `keep` as the shaper builds it (not returned and copied).
        for (scan, shaper) in others.iter_mut() {
            shaper.shape_moving(physical, copied, Read::Unmoved, |shaped| {
                keep(*scan, shaped)
            })?;
        }
        if let Some((scan, shaper)) = last.first_mut() {
            shaper.shape_moving(physical, moved_out, Read::Unmoved, |shaped| {
                keep(*scan, shaped)
            })?;
        }
        if rows.is_empty() {
            if let Some(ctx) = ctx {
                ctx.filtered_at_source(filtered);
            }
            return Ok(None);
        }
        Ok(Some(done(FannedRows(rows))))
    }
}

/// A file's lines decoded once into a table's physical columns and shaped into the rows of
/// every scan that shares the reader ([`FanOut`]); the shapers are made from the fan-out's
/// scans when the first line is read (the readers are made after planning).
#[derive(Clone)]
pub struct FanOutLines<D> {
    table: Arc<TableDef>,
    scans: FanOut,
    decoder: D,
    /// What the first line makes: the shapers and the lines' physical values.
    ready: Option<(FanOutShapers, PhysicalLines<D>)>,
}

impl<D: PhysicalDecoder> FanOutLines<D> {
    /// Lines of `table` decoded by `decoder` (restricted to what the scans need when the
    /// first line is read) for the scans of `scans`.
    pub fn new(table: &TableDef, scans: FanOut, decoder: D) -> Self {
        FanOutLines {
            table: Arc::new(table.clone()),
            scans,
            decoder,
            ready: None,
        }
    }
}

impl<D: PhysicalDecoder> streamcore_connectors::LineDecoder for FanOutLines<D> {
    type Out = FannedRows;

    fn decode(&mut self, line: &[u8]) -> std::result::Result<Option<FannedRows>, String> {
        self.shaped(line, None)
    }

    #[inline]
    fn decode_in(
        &mut self,
        line: &[u8],
        ctx: &mut TaskContext,
    ) -> std::result::Result<Option<FannedRows>, String> {
        self.shaped(line, Some(ctx))
    }
}

impl<D: PhysicalDecoder> FanOutLines<D> {
    /// The rows of `line` for the scans that keep it; a line none keeps is reported to `ctx`
    /// as filtered (with its event time), if there is one.
    #[inline]
    fn shaped(
        &mut self,
        line: &[u8],
        ctx: Option<&mut TaskContext>,
    ) -> std::result::Result<Option<FannedRows>, String> {
        if self.ready.is_none() {
            let shapers = self.scans.shapers(&self.table);
            let decoder = self.decoder.only_needed(&shapers.needed);
            let lines = PhysicalLines::new(decoder, &shapers.needed);
            self.ready = Some((shapers, lines));
        }
        let (shapers, lines) = self.ready.as_mut().expect("made above");
        match lines.decode(line)? {
            Some(physical) => shapers.shape(physical, ctx),
            None => Ok(None),
        }
    }
}

/// Lines decoded into a table's physical columns, in a buffer reused from line to line.
#[derive(Clone)]
struct PhysicalLines<D> {
    decoder: D,
    physical: Vec<Scalar>,
    /// The physical columns the decoder writes (reset to NULL before each line).
    written: Arc<[usize]>,
}

impl<D: PhysicalDecoder> PhysicalLines<D> {
    /// Lines decoded by `decoder`, which writes the columns marked in `needed`.
    fn new(decoder: D, needed: &[bool]) -> Self {
        PhysicalLines {
            physical: vec![Scalar::Null; decoder.width()],
            written: (0..needed.len()).filter(|&i| needed[i]).collect(),
            decoder,
        }
    }

    /// The physical values of `line` (`None`: a bad line skipped by the format's option).
    #[inline]
    fn decode(&mut self, line: &[u8]) -> std::result::Result<Option<&mut [Scalar]>, String> {
        for &i in self.written.iter() {
            self.physical[i] = Scalar::Null;
        }
        Ok(self
            .decoder
            .decode_into(line, &mut self.physical)?
            .then_some(self.physical.as_mut_slice()))
    }
}

/// A file's lines decoded into a table's physical columns (a buffer reused from line to line)
/// and shaped into the rows the scan emits: one row built per line, its values moved out of
/// the buffer where nothing else reads them.
#[derive(Clone)]
pub struct ShapedLines<D> {
    lines: PhysicalLines<D>,
    shaper: RowShaper,
}

impl<D: PhysicalDecoder> ShapedLines<D> {
    /// Lines decoded by `decoder`, shaped by `shaper`.
    pub fn new(decoder: D, shaper: RowShaper) -> Self {
        ShapedLines {
            lines: PhysicalLines::new(decoder, shaper.needed()),
            shaper,
        }
    }
}

impl<D: PhysicalDecoder> streamcore_connectors::LineDecoder for ShapedLines<D> {
    type Out = Row;

    /// A line the scan's filter refuses is `None`, reported nowhere: the reader calls
    /// `decode_in`, which reports it.
    #[inline]
    fn decode(&mut self, line: &[u8]) -> std::result::Result<Option<Row>, String> {
        Ok(match self.shaped(line)? {
            Some(Shaped::Row(row)) => Some(row),
            _ => None,
        })
    }

    #[inline]
    fn decode_in(
        &mut self,
        line: &[u8],
        ctx: &mut TaskContext,
    ) -> std::result::Result<Option<Row>, String> {
        Ok(self.shaped(line)?.and_then(|s| s.emit_in(ctx)))
    }
}

impl<D: PhysicalDecoder> ShapedLines<D> {
    /// The line decoded and shaped (`None`: a bad line skipped by the format's option).
    #[inline]
    fn shaped(&mut self, line: &[u8]) -> std::result::Result<Option<Shaped>, String> {
        match self.lines.decode(line)? {
            Some(physical) => self.shaper.shape_from(physical).map(Some),
            None => Ok(None),
        }
    }
}

/// A filter and a projection the planner pushed into a scan (the `Calc` right above it),
/// over the scan's columns; see [`RowShaper::with_calc`].
#[derive(Clone, Debug, Default)]
pub struct ScanCalc {
    /// Rows this refuses are dropped in the reader, counted as filtered.
    pub filter: Option<Expr>,
    /// The row built is this projection's.
    pub projection: Option<Vec<Expr>>,
}

impl ScanCalc {
    fn filter(&self) -> Option<&Expr> {
        self.filter.as_ref()
    }

    fn projection(&self) -> Option<&[Expr]> {
        self.projection.as_deref()
    }
}

/// Whether the table skips the lines it cannot decode (`'json.ignore-parse-errors'`).
pub(crate) fn ignore_parse_errors(table: &TableDef) -> bool {
    table
        .options
        .get("json.ignore-parse-errors")
        .is_some_and(|v| v == "true")
}

/// The field delimiter of a `csv` table — after checking that its columns can be CSV fields
/// (every path that reads or writes a table as CSV asks for it).
pub(crate) fn csv_delimiter(table: &TableDef) -> Result<u8, PlanError> {
    crate::format::check_csv_columns(table.physical().map(|c| (c.name.as_str(), c.data_type)))
        .map_err(
            |e| match table.options.get("connector").map(String::as_str) {
                // A `values` table's rows are CSV text, but it has no format option to change.
                Some("values") => PlanError::invalid(format!(
                    "`values` table `{}`: {}",
                    table.name,
                    e.replace("the csv format has", "its rows (CSV text) have")
                        .replace(" (use json)", "")
                )),
                _ => PlanError::invalid(format!("table `{}`: {e}", table.name)),
            },
        )?;
    match table.options.get("csv.field-delimiter").map(String::as_str) {
        None => Ok(b','),
        Some("\\t") => Ok(b'\t'),
        Some(d) if d.len() == 1 => Ok(d.as_bytes()[0]),
        Some(d) => Err(PlanError::invalid(format!(
            "table `{}`: 'csv.field-delimiter' must be one character, got '{d}'",
            table.name
        ))),
    }
}

pub(crate) fn unknown_format(table: &TableDef, format: &str) -> PlanError {
    PlanError::invalid(format!(
        "table `{}`: unknown format '{format}' (formats: json, csv; parquet for sinks)",
        table.name
    ))
}

/// The path of a `filesystem` table, without a `file://` scheme.
pub fn filesystem_path(table: &TableDef) -> Result<String, PlanError> {
    let path = table.required("path")?;
    Ok(path.strip_prefix("file://").unwrap_or(path).to_string())
}

/// Decodes one line of a file into a row (`None`: a blank line).
type LineDecode = dyn FnMut(&str) -> std::result::Result<Option<Row>, String>;

/// Every row of a bounded table (`values`, or `filesystem` files read now), for a lookup join.
pub fn bounded_rows(table: &TableDef) -> Result<Vec<Row>, PlanError> {
    match table.connector()? {
        "values" => values_rows(table),
        "filesystem" => {
            let path = filesystem_path(table)?;
            let mut shaper = RowShaper::new(table);
            let schema = table.physical_schema();
            let mut decode: Box<LineDecode> = match table.required("format")? {
                "json" => {
                    let mut d = JsonRowDecoder::new(schema, ignore_parse_errors(table));
                    Box::new(move |l| d.decode_row(l.as_bytes()))
                }
                "csv" => {
                    let mut d = CsvRowDecoder::new(schema, csv_delimiter(table)?);
                    Box::new(move |l| d.decode_row(l.as_bytes()))
                }
                other => return Err(unknown_format(table, other)),
            };
            let p = std::path::Path::new(&path);
            let mut files: Vec<std::path::PathBuf> = if p.is_dir() {
                std::fs::read_dir(p)
                    .map_err(|e| {
                        PlanError::invalid(format!("table `{}`: reading {path}: {e}", table.name))
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && !f
                                .file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
                    })
                    .collect()
            } else {
                vec![p.to_path_buf()]
            };
            files.sort();
            let mut rows = Vec::new();
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| {
                    PlanError::invalid(format!(
                        "table `{}`: reading {}: {e}",
                        table.name,
                        f.display()
                    ))
                })?;
                for (n, line) in text.lines().enumerate() {
                    let row = decode(line).map_err(|e| {
                        PlanError::invalid(format!(
                            "table `{}`: {} line {}: {e}",
                            table.name,
                            f.display(),
                            n + 1
                        ))
                    })?;
                    if let Some(row) = row {
                        rows.push(shaper.shape(&row.values).map_err(|e| {
                            PlanError::invalid(format!(
                                "table `{}`: {} line {}: {e}",
                                table.name,
                                f.display(),
                                n + 1
                            ))
                        })?);
                    }
                }
            }
            Ok(rows)
        }
        other => Err(PlanError::unsupported(format!(
            "reading a `{other}` table whole (lookup tables: filesystem, values)"
        ))),
    }
}

/// The rows of a `values` table: its `data` option, one CSV line per row, in the types of the
/// physical columns (timestamps as `2026-12-05 14:00:00.000`, empty fields as NULL).
pub fn values_rows(table: &TableDef) -> Result<Vec<Row>, PlanError> {
    let all: Vec<usize> = (0..table.columns.len()).collect();
    values_rows_of(table, &all)
}

/// The rows of a `values` table, with the columns `columns` only.
pub fn values_rows_of(table: &TableDef, columns: &[usize]) -> Result<Vec<Row>, PlanError> {
    let data = table.required("data")?;
    let types: Vec<DataType> = table.physical().map(|c| c.data_type).collect();
    let mut shaper = RowShaper::select(table, columns);
    let delimiter = csv_delimiter(table)?;
    let mut rows = Vec::new();
    for (n, line) in data.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields = crate::format::split_csv_line(line, delimiter);
        if fields.len() != types.len() {
            return Err(PlanError::invalid(format!(
                "`values` table `{}`: row {} has {} fields, the table {} physical columns",
                table.name,
                n + 1,
                fields.len(),
                types.len()
            )));
        }
        let values = fields
            .iter()
            .zip(&types)
            .map(|(f, t)| {
                if f.is_empty() || f.eq_ignore_ascii_case("null") {
                    Ok(Scalar::Null)
                } else {
                    parse_as(f, *t).ok_or_else(|| {
                        PlanError::invalid(format!(
                            "`values` table `{}`: row {}: `{f}` is not a {t}",
                            table.name,
                            n + 1
                        ))
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(shaper.shape(&values).map_err(|e| {
            PlanError::invalid(format!(
                "`values` table `{}`: row {}: {e}",
                table.name,
                n + 1
            ))
        })?);
    }
    Ok(rows)
}

/// A record a print sink can show: a row (`+I`) or a change.
pub trait PrintRow: Data {
    /// The row kind and the row.
    fn parts(&self) -> (RowKind, &Row);
}

impl PrintRow for Row {
    fn parts(&self) -> (RowKind, &Row) {
        (RowKind::Insert, self)
    }
}

impl PrintRow for Change<Row> {
    fn parts(&self) -> (RowKind, &Row) {
        (self.kind(), self.row())
    }
}

/// Flink's `print` connector: each row as `+I[a, b]` (or `-U`, `+U`, `-D`) on stdout, after
/// `identifier> ` when `print-identifier` is set.
pub struct PrintSink<T> {
    prefix: Arc<str>,
    _t: PhantomData<fn(T)>,
}

impl<T> PrintSink<T> {
    /// A print sink with an optional identifier.
    pub fn new(identifier: Option<&str>) -> Self {
        PrintSink {
            prefix: identifier
                .map(|i| format!("{i}> "))
                .unwrap_or_default()
                .into(),
            _t: PhantomData,
        }
    }
}

/// Formats a row as Flink prints it: `+I[1, abc, 2026-12-05 14:00:00.000]`.
pub fn print_row(kind: RowKind, row: &Row) -> String {
    let mut s = String::with_capacity(16 + row.len() * 8);
    s.push_str(kind.short());
    s.push('[');
    for (i, v) in row.values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        match v {
            Scalar::Null => s.push_str("NULL"),
            v => {
                use std::fmt::Write;
                let _ = write!(s, "{v}");
            }
        }
    }
    s.push(']');
    s
}

/// A writer of [`PrintSink`].
pub struct PrintWriter<T> {
    prefix: Arc<str>,
    _t: PhantomData<fn(T)>,
}

impl<T: PrintRow> Sink<T> for PrintSink<T> {
    type Writer = PrintWriter<T>;

    fn create_writer(&mut self, _task: &TaskInfo) -> StreamResult<Self::Writer> {
        Ok(PrintWriter {
            prefix: self.prefix.clone(),
            _t: PhantomData,
        })
    }

    fn accepts_updates(&self) -> bool {
        true
    }
}

impl<T: PrintRow> SinkWriter<T> for PrintWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> StreamResult<()> {
        use std::io::Write;
        let mut text = String::new();
        for r in &batch {
            let (kind, row) = r.parts();
            text.push_str(&self.prefix);
            text.push_str(&print_row(kind, row));
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()) {
            // A closed pipe (`| head`) ends the output, not the job with an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| streamcore::StreamError::io("writing to stdout", e)),
        }
    }
}

/// Flink's `blackhole` connector: takes everything (appends and updates) and drops it.
pub struct BlackholeSink<T>(PhantomData<fn(T)>);

impl<T> Default for BlackholeSink<T> {
    fn default() -> Self {
        BlackholeSink(PhantomData)
    }
}

/// A writer of [`BlackholeSink`].
pub struct BlackholeWriter;

impl<T: Data> Sink<T> for BlackholeSink<T> {
    type Writer = BlackholeWriter;

    fn create_writer(&mut self, _task: &TaskInfo) -> StreamResult<Self::Writer> {
        Ok(BlackholeWriter)
    }

    fn accepts_updates(&self) -> bool {
        true
    }
}

impl<T: Data> SinkWriter<T> for BlackholeWriter {
    fn write_batch(&mut self, batch: Vec<T>) -> StreamResult<()> {
        drop(batch);
        Ok(())
    }

    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> StreamResult<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
}

/// The connectors a table may name, for messages.
pub const CONNECTORS: &[&str] = &[
    "nexmark",
    "datagen",
    "filesystem",
    "values",
    "print",
    "blackhole",
    "jdbc",
    "postgres-cdc",
    "redis",
    "webhook",
    "kafka",
    "upsert-kafka",
];

/// The partitioned `filesystem` sink of a JSON or CSV table with `PARTITIONED BY (…)`: rows
/// under `col=value/…/` directories of the table's `path` (Hive's escaping, `NULL` as
/// `partition.default-name`, default `__HIVE_DEFAULT_PARTITION__`), the partition columns not
/// repeated in the files (as Flink writes them), exactly-once with checkpoints. `stream` has
/// the table's physical columns.
pub fn partitioned_file_sink(
    table: &TableDef,
    stream: streamcore::Stream<Row>,
    name: &str,
) -> Result<(), PlanError> {
    use streamcore_connectors::file::partitioned::PartitionedFileSink;
    use streamcore_connectors::partition::{PartitionSpec, DEFAULT_PARTITION_NAME};
    let schema = table.physical_schema();
    let columns: Vec<String> = table
        .partitioned_by
        .iter()
        .map(|&c| table.columns[c].name.clone())
        .collect();
    let default_name = table
        .options
        .get("partition.default-name")
        .map(String::as_str)
        .unwrap_or(DEFAULT_PARTITION_NAME);
    let spec = PartitionSpec::resolve(&schema, &columns, None, default_name)
        .map_err(|e| PlanError::invalid(format!("filesystem table `{}`: {e}", table.name)))?;
    let path = filesystem_path(table)?;
    let names: Arc<[String]> = schema.fields.iter().map(|f| f.name.clone()).collect();
    match table.required("format")? {
        "json" => stream.sink_named(
            name,
            PartitionedFileSink::new(
                path,
                spec,
                JsonEncoder {
                    names: names.into(),
                },
            ),
        ),
        "csv" => {
            let delimiter = csv_delimiter(table)?;
            stream.sink_named(
                name,
                PartitionedFileSink::new(path, spec, CsvEncoder { delimiter }),
            )
        }
        other => return Err(unknown_format(table, other)),
    }
    Ok(())
}

/// Rows as JSON objects, one a line (the unpartitioned JSON sink's encoding: exact decimals,
/// Flink's timestamp text).
#[derive(Clone)]
struct JsonEncoder {
    /// Every column's name (indexed as the row).
    names: crate::format::JsonNames,
}

impl streamcore_connectors::file::partitioned::RowEncoder for JsonEncoder {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn encode(&mut self, row: &Row, columns: &[usize], out: &mut Vec<u8>) -> StreamResult<()> {
        let object = crate::format::JsonObject {
            entries: columns.iter().map(|&c| (self.names.get(c), &row.values[c])),
            nested: self.names.nested(),
        };
        serde_json::to_writer(&mut *out, &object)
            .map_err(|e| streamcore::StreamError::Internal(format!("encoding JSON: {e}")))?;
        out.push(b'\n');
        Ok(())
    }
}

/// Rows as CSV records (the unpartitioned CSV sink's text of each value, `NULL` empty),
/// fields quoted only when they hold the delimiter, a quote or a line break.
#[derive(Clone)]
struct CsvEncoder {
    delimiter: u8,
}

impl streamcore_connectors::file::partitioned::RowEncoder for CsvEncoder {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn encode(&mut self, row: &Row, columns: &[usize], out: &mut Vec<u8>) -> StreamResult<()> {
        for (i, &c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            crate::format::write_csv_field(&row.values[c], self.delimiter, out);
        }
        out.push(b'\n');
        Ok(())
    }
}

/// The JSON-file table `name` with `columns`, as a session creates it (the tests' tables).
#[cfg(test)]
fn created_table(name: &str, columns: &str) -> Arc<TableDef> {
    let mut session = crate::session::Session::new();
    session
        .execute_script(&format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'filesystem', 'path' = '/x', \
             'format' = 'json');"
        ))
        .unwrap();
    session.catalog.table(name).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::CmpOp;
    use crate::session::Session;

    #[test]
    fn a_scan_has_bids_and_auctions_made_up_to_the_last_field_it_reads() {
        let fields = [
            NexmarkField::EventType,
            NexmarkField::Bid(0),
            NexmarkField::Bid(2),
            NexmarkField::Bid(5),
            NexmarkField::Bid(6),
            NexmarkField::Bid(4),
            NexmarkField::Bid(1),
            NexmarkField::Auction(0),
            NexmarkField::Auction(7),
            NexmarkField::Auction(6),
            NexmarkField::Auction(2),
            NexmarkField::Person(0),
        ];
        let read = |cols: &[usize]| {
            let needed: Vec<bool> = (0..fields.len()).map(|i| cols.contains(&i)).collect();
            parts_read(&fields, &needed)
        };
        let bids = |cols: &[usize]| read(cols).bids;
        let auctions = |cols: &[usize]| read(cols).auctions;
        assert_eq!(bids(&[0, 3]), BidFields::DateTime);
        assert_eq!(bids(&[0, 1, 3]), BidFields::Auction);
        assert_eq!(bids(&[1, 6]), BidFields::Bidder);
        assert_eq!(bids(&[1, 2]), BidFields::Price);
        assert_eq!(bids(&[5]), BidFields::ChannelAndUrl);
        assert_eq!(bids(&[1, 4]), BidFields::All);
        assert_eq!(bids(&[]), BidFields::DateTime);
        assert_eq!(auctions(&[0, 7]), AuctionFields::IdAndDateTime);
        assert_eq!(auctions(&[7, 8]), AuctionFields::Seller);
        assert_eq!(auctions(&[7, 9]), AuctionFields::Expires);
        assert_eq!(auctions(&[9, 10]), AuctionFields::All);
        // A person's field: every event is read, made whole.
        assert_eq!(read(&[1, 7, 11]), Parts::default());
    }

    /// `t (k BIGINT, v VARCHAR, ts TIMESTAMP(3), w AS UPPER(v), WATERMARK FOR ts …)`.
    fn table() -> Arc<TableDef> {
        created_table(
            "t",
            "k BIGINT, v VARCHAR, ts TIMESTAMP(3), w AS UPPER(v), WATERMARK FOR ts AS ts",
        )
    }

    fn physical(k: i64, v: &str, ts: i64) -> Vec<Scalar> {
        vec![
            Scalar::Int(k),
            Scalar::Str(v.into()),
            Scalar::TimestampMs(ts),
        ]
    }

    fn col(i: usize) -> Expr {
        Expr::Column(i)
    }

    /// `column <op> value`.
    fn col_cmp(op: CmpOp, column: usize, value: i64) -> Expr {
        Expr::Cmp(
            op,
            Box::new(col(column)),
            Box::new(Expr::Literal(Scalar::Int(value))),
        )
    }

    fn filtered_at(shaped: Shaped) -> Timestamp {
        match shaped {
            Shaped::Filtered(t) => t,
            Shaped::Row(r) => panic!("kept {r:?}"),
        }
    }

    fn row_of(shaped: Shaped) -> Row {
        match shaped {
            Shaped::Row(row) => row,
            Shaped::Filtered(t) => panic!("filtered at {t:?}"),
        }
    }

    #[test]
    fn a_pushed_filter_drops_records_with_their_event_time() {
        // Scan of k, ts, w; filter k > 1 (over the scan's columns: k is column 0).
        let filter = col_cmp(CmpOp::Gt, 0, 1);
        let mut shaper = RowShaper::select(&table(), &[0, 2, 3]).with_calc(Some(&filter), None);
        assert_eq!(
            filtered_at(shaper.shape_from(&mut physical(1, "a", 7_000)).unwrap()),
            Timestamp(7_000)
        );
        let row = row_of(shaper.shape_from(&mut physical(2, "b", 8_000)).unwrap());
        assert_eq!(
            row.values.to_vec(),
            vec![
                Scalar::Int(2),
                Scalar::TimestampMs(8_000),
                Scalar::Str("B".into())
            ]
        );
        assert_eq!(row.time, Timestamp(8_000));
    }

    #[test]
    fn taken_columns_are_fetched_only_for_rows_built_and_rows_equal_shape_froms() {
        // Scan of k, v, ts; filter k > 1; projection (v, k, ts). v is moved and read by
        // nothing before: taken. k is read by the filter, ts by the rowtime as well: filled.
        let filter = col_cmp(CmpOp::Gt, 0, 1);
        let mut shaper = RowShaper::select(&table(), &[0, 1, 2])
            .with_calc(Some(&filter), Some(&[col(1), col(0), col(2)]));
        assert_eq!(shaper.needed(), &[true, true, true]);
        assert_eq!(shaper.taken(), &[false, true, false]);
        for (k, v, ts) in [(1, "a", 1_000), (2, "b", 2_000), (3, "c", 3_000)] {
            let mut fetched = Vec::new();
            let mut prefilled = physical(k, "(not filled)", ts);
            let taking = shaper.shape_taking(&mut prefilled, |i| {
                fetched.push(i);
                physical(k, v, ts)[i].clone()
            });
            let from = shaper.shape_from(&mut physical(k, v, ts));
            match (taking.unwrap(), from.unwrap()) {
                (Shaped::Row(a), Shaped::Row(b)) => {
                    assert_eq!((a.values.to_vec(), a.time), (b.values.to_vec(), b.time));
                    assert_eq!(fetched, vec![1], "only v, once");
                }
                (Shaped::Filtered(a), Shaped::Filtered(b)) => {
                    assert_eq!(a, b);
                    assert!(fetched.is_empty(), "nothing fetched for a filtered record");
                }
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn a_pushed_projection_builds_the_projected_row_with_computed_columns_inlined() {
        // Scan of k, v, ts, w; projection (w, k > 1, ts): the computed w is evaluated over
        // the physical values, v is not needed by anything but w.
        let projection = [col(3), col_cmp(CmpOp::Gt, 0, 1), col(2)];
        let shaper = RowShaper::select(&table(), &[0, 1, 2, 3]);
        assert!(shaper.can_fuse(None, Some(&projection)));
        let mut shaper = shaper.with_calc(None, Some(&projection));
        assert_eq!(shaper.needed(), &[true, true, true]);
        let row = row_of(shaper.shape_from(&mut physical(4, "x", 9_000)).unwrap());
        assert_eq!(
            row.values.to_vec(),
            vec![
                Scalar::Str("X".into()),
                Scalar::Bool(true),
                Scalar::TimestampMs(9_000)
            ]
        );
        assert_eq!(row.time, Timestamp(9_000));
        // The computed w read twice would be computed twice: not pushed.
        assert!(!RowShaper::select(&table(), &[3]).can_fuse(Some(&col(0)), Some(&[col(0)])));
    }

    #[test]
    fn a_column_that_fails_to_evaluate_fails_the_row_and_the_next_row_is_whole() {
        // Projection (v, 10 / (k - 1), ts): k = 1 divides by zero; the string moved into the
        // row being built is dropped with it, and the next record is shaped from scratch.
        let divide = Expr::Arith(
            crate::types::ArithOp::Div,
            Box::new(Expr::Literal(Scalar::Int(10))),
            Box::new(Expr::Arith(
                crate::types::ArithOp::Sub,
                Box::new(col(0)),
                Box::new(Expr::Literal(Scalar::Int(1))),
                crate::types::SqlType::Data(DataType::BigInt),
            )),
            crate::types::SqlType::Data(DataType::BigInt),
        );
        let projection = [col(1), divide, col(2)];
        let mut shaper = RowShaper::select(&table(), &[0, 1, 2]).with_calc(None, Some(&projection));
        let err = shaper.shape_from(&mut physical(1, "a", 1_000)).unwrap_err();
        assert!(err.contains("division by zero"), "{err}");
        let row = row_of(shaper.shape_from(&mut physical(3, "b", 2_000)).unwrap());
        assert_eq!(
            row.values.to_vec(),
            vec![
                Scalar::Str("b".into()),
                Scalar::Int(5),
                Scalar::TimestampMs(2_000)
            ]
        );
        assert_eq!(row.time, Timestamp(2_000));
    }

    #[test]
    fn kept_records_are_shaped_knowing_the_filters_equalities_refused_ones_are_not() {
        // The Nexmark benchmark's shape: the rowtime is a CASE over the event type.
        let mut session = Session::new();
        session
            .execute_script(
                "CREATE TABLE e (k BIGINT, a TIMESTAMP(3), b TIMESTAMP(3), \
                 ts AS CASE WHEN k = 0 THEN a ELSE b END, WATERMARK FOR ts AS ts) \
                 WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'json');",
            )
            .unwrap();
        let table = session.catalog.table("e").unwrap();
        let filter = col_cmp(CmpOp::Eq, 0, 2);
        // Scan of k, ts; filter k = 2, projection (ts).
        let mut shaper =
            RowShaper::select(&table, &[0, 3]).with_calc(Some(&filter), Some(&[col(1)]));
        assert!(
            !format!("{:?}{:?}", shaper.columns, shaper.rowtime).contains("Case"),
            "kept rows read b directly: {:?}",
            shaper.columns
        );
        let record = |k: i64| {
            vec![
                Scalar::Int(k),
                Scalar::TimestampMs(10),
                Scalar::TimestampMs(20),
            ]
        };
        let row = row_of(shaper.shape_from(&mut record(2)).unwrap());
        assert_eq!(row.values.to_vec(), vec![Scalar::TimestampMs(20)]);
        assert_eq!(row.time, Timestamp(20));
        // A refused record's event time is the full CASE's: `a` for k = 0.
        assert_eq!(
            filtered_at(shaper.shape_from(&mut record(0)).unwrap()),
            Timestamp(10)
        );
    }

    #[test]
    fn a_computed_column_the_filter_makes_a_field_may_be_read_twice() {
        // ts = CASE WHEN k = 0 THEN a ELSE b END: for the records `k = 2` keeps it is b, so
        // a projection reading it twice (q14's HOUR(dateTime) four times) computes nothing
        // twice and is pushed; without that filter, or with the filter reading ts twice (the
        // filter sees the whole CASE), it is not.
        let mut session = Session::new();
        session
            .execute_script(
                "CREATE TABLE e (k BIGINT, a TIMESTAMP(3), b TIMESTAMP(3), \
                 ts AS CASE WHEN k = 0 THEN a ELSE b END) \
                 WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'json');",
            )
            .unwrap();
        let table = session.catalog.table("e").unwrap();
        let shaper = RowShaper::select(&table, &[0, 3]);
        let k_is_2 = col_cmp(CmpOp::Eq, 0, 2);
        let twice = [col(1), col(1)];
        assert!(shaper.can_fuse(Some(&k_is_2), Some(&twice)));
        assert!(!shaper.can_fuse(None, Some(&twice)));
        let ts_set = || Expr::IsNull(Box::new(col(1)), true);
        let once = Expr::And(vec![k_is_2.clone(), ts_set()]);
        assert!(shaper.can_fuse(Some(&once), Some(&twice)));
        let twice_in_filter = Expr::And(vec![k_is_2.clone(), ts_set(), ts_set()]);
        assert!(!shaper.can_fuse(Some(&twice_in_filter), Some(&[col(0)])));
        let mut shaper = shaper.with_calc(Some(&k_is_2), Some(&twice));
        let record = vec![
            Scalar::Int(2),
            Scalar::TimestampMs(10),
            Scalar::TimestampMs(20),
        ];
        let row = row_of(shaper.shape_from(&mut record.clone()).unwrap());
        assert_eq!(
            row.values.to_vec(),
            vec![Scalar::TimestampMs(20), Scalar::TimestampMs(20)]
        );
    }

    #[test]
    fn a_pushed_filter_on_a_column_known_constant_is_folded_away() {
        let filter = col_cmp(CmpOp::Eq, 0, 2);
        let mut shaper = RowShaper::select(&table(), &[0, 2])
            .with_calc(Some(&filter), Some(&[col(1)]))
            .with_constant(0, &Scalar::Int(2));
        assert!(shaper.filter.is_none());
        // The filter no longer reads k: it need not be read at all.
        assert_eq!(shaper.needed(), &[false, false, true]);
        let row = row_of(shaper.shape_from(&mut physical(2, "a", 1)).unwrap());
        assert_eq!(row.values.to_vec(), vec![Scalar::TimestampMs(1)]);
    }
}

/// `shape_taking` against `shape_from` over random scans: selected columns (repeated, computed,
/// the rowtime), pushed filters (with `column = constant` conjuncts, so kept records are
/// shaped by what the filter guarantees and refused ones by `filtered_rowtime`), projections,
/// an `event_type`-like constant and NULL rowtimes.
#[cfg(test)]
mod shape_taking_tests {
    use super::*;
    use crate::expr::CmpOp;
    use proptest::prelude::*;

    /// `e, a, s, t1, t2` physical; `w = UPPER(s)`, `x = a + 1`, `rt` a `CASE` over `e` (the
    /// rowtime, as the Nexmark tables' `dateTime`).
    fn table() -> Arc<TableDef> {
        created_table(
            "u",
            "e BIGINT, a BIGINT, s VARCHAR, t1 TIMESTAMP(3), t2 TIMESTAMP(3), \
             w AS UPPER(s), x AS a + 1, \
             rt AS CASE WHEN e = 0 THEN t1 WHEN e = 1 THEN t2 ELSE t1 END, \
             WATERMARK FOR rt AS rt",
        )
    }

    fn int(v: i64) -> Box<Expr> {
        Box::new(Expr::Literal(Scalar::Int(v)))
    }

    /// A predicate of kind `kind` over emitted column `j`.
    fn predicate(kind: u8, j: usize, v: i64) -> Expr {
        let c = || Box::new(Expr::Column(j));
        match kind % 4 {
            0 => Expr::Cmp(CmpOp::Eq, c(), int(v)),
            1 => Expr::Cmp(CmpOp::Gt, c(), int(v)),
            2 => Expr::IsNull(c(), true),
            _ => Expr::And(vec![
                Expr::Cmp(CmpOp::Eq, c(), int(v)),
                Expr::IsNull(c(), true),
            ]),
        }
    }

    type Record = (i64, i64, Option<i64>, Option<i64>);
    /// A predicate's kind, column and value, and maybe a `column = value` conjunct.
    type Filter = (u8, usize, i64, Option<(usize, i64)>);

    fn check(
        columns: Vec<usize>,
        filter: Option<Filter>,
        projection: Option<Vec<(bool, usize)>>,
        constant: Option<(usize, i64)>,
        records: Vec<Record>,
    ) -> Result<(), TestCaseError> {
        let n = columns.len();
        let filter = filter.map(|(kind, j, v, and)| {
            let f = predicate(kind, j % n, v);
            match and {
                Some((j2, v2)) => Expr::And(vec![
                    f,
                    Expr::Cmp(CmpOp::Eq, Box::new(Expr::Column(j2 % n)), int(v2)),
                ]),
                None => f,
            }
        });
        let projection: Option<Vec<Expr>> = projection.map(|p| {
            p.into_iter()
                .map(|(plain, j)| match plain {
                    true => Expr::Column(j % n),
                    false => Expr::IsNull(Box::new(Expr::Column(j % n)), false),
                })
                .collect()
        });
        let base = RowShaper::select(&table(), &columns);
        if !base.can_fuse(filter.as_ref(), projection.as_deref()) {
            return Ok(());
        }
        let mut shaper = base.with_calc(filter.as_ref(), projection.as_deref());
        if let Some((c, v)) = constant {
            shaper = shaper.with_constant(c, &Scalar::Int(v));
        }
        let (taken, needed) = (shaper.taken().to_vec(), shaper.needed().to_vec());
        for (e, a, t1, t2) in records {
            let mut full = vec![
                Scalar::Int(e),
                Scalar::Int(a),
                Scalar::Str(format!("s{a}").into()),
                t1.map_or(Scalar::Null, Scalar::TimestampMs),
                t2.map_or(Scalar::Null, Scalar::TimestampMs),
            ];
            if let Some((c, v)) = constant {
                full[c] = Scalar::Int(v); // the constant holds in every record
            }
            let mut prefilled: Vec<Scalar> = full
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if needed[i] && !taken[i] {
                        v.clone()
                    } else {
                        Scalar::Null
                    }
                })
                .collect();
            let mut fetched = Vec::new();
            let taking = shaper.shape_taking(&mut prefilled, |i| {
                fetched.push(i);
                full[i].clone()
            });
            let from = shaper.shape_from(&mut full.clone());
            let text = |r: &std::result::Result<Shaped, String>| match r {
                Ok(Shaped::Row(r)) => format!("row {:?} at {:?}", r.values, r.time),
                Ok(Shaped::Filtered(t)) => format!("filtered at {t:?}"),
                // The reason; the values named after it differ: a record failing before its
                // row is built has not had its late-fetched columns read.
                Err(e) => format!("error {}", e.split(" in row {").next().unwrap_or(e)),
            };
            prop_assert_eq!(
                text(&taking),
                text(&from),
                "columns {:?}, taken {:?}",
                &columns,
                &taken
            );
            match taking {
                Ok(Shaped::Row(_)) => {
                    fetched.sort();
                    let want: Vec<usize> = (0..taken.len()).filter(|&i| taken[i]).collect();
                    prop_assert_eq!(fetched, want, "each taken column fetched once");
                }
                Ok(Shaped::Filtered(_)) => {
                    prop_assert!(
                        fetched.is_empty(),
                        "fetched {:?} for a dropped record",
                        fetched
                    )
                }
                // A row that fails (a NULL rowtime) may have fetched some of its values.
                Err(_) => {}
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn shape_taking_equals_shape_from(
            columns in proptest::collection::vec(0usize..8, 1..7),
            filter in proptest::option::of((0u8..4, 0usize..8, 0i64..3, proptest::option::of((0usize..8, 0i64..3)))),
            projection in proptest::option::of(proptest::collection::vec((any::<bool>(), 0usize..8), 1..6)),
            constant in proptest::option::of((0usize..2, 0i64..3)),
            records in proptest::collection::vec(
                (0i64..3, 0i64..3, proptest::option::weighted(0.9, 0i64..10), proptest::option::weighted(0.9, 0i64..10)),
                1..6,
            ),
        ) {
            check(columns, filter, projection, constant, records)?;
        }
    }
}
