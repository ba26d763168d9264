//! The physical planner: a logical [`Plan`] onto streamcore operators. Append-only edges are
//! `Stream<Row>`, updating edges `Stream<Change<Row>>` ([`SqlStream`]), so the changelog mode
//! is carried by the types the engine already checks. Stateful operators get ids derived from
//! the plan ([`Plan::digest`]), so a restarted job finds its state.

use crate::aggregate::{RowAcc, RowAggregate};
use crate::catalog::TableDef;
use crate::connectors::{self, NexmarkKind, ScanCalc};
use crate::error::PlanError;
use crate::expr::{compare_truth, CmpOp, Expr};
use crate::join;
use crate::plan::{AggCall, JoinKind, JoinStrategy, Node, Plan, WindowKind};
use std::sync::Arc;
use std::time::Duration;
use streamcore::changelog::{Change, Keep};
use streamcore::join::{Either, JoinType, LateFrom, UniqueSides};
use streamcore::row::{Row, Scalar, Values};
use streamcore::window::{Window, Windows};
use streamcore::{Job, KeyedStream, OutputTag, Stream, Timestamp, WatermarkStrategy};

/// A planned edge: append-only rows, or a changelog of rows. A clone is a second handle on
/// the same stream (both consumers receive every record).
#[derive(Clone)]
pub enum SqlStream {
    /// Append-only.
    Append(Stream<Row>),
    /// Updating.
    Updating(Stream<Change<Row>>),
}

impl SqlStream {
    /// The stream as a changelog (appends become `+I`).
    pub fn into_changes(self) -> Stream<Change<Row>> {
        match self {
            SqlStream::Append(s) => s.map(Change::Insert),
            SqlStream::Updating(s) => s,
        }
    }
}

/// Plans into one job.
pub struct PhysicalPlanner<'j> {
    job: &'j mut Job,
    /// Ids given out so far, to make identical subtrees distinct (`#n`).
    ids: std::collections::HashMap<String, usize>,
    /// `table.exec.state.ttl`, if set.
    pub state_ttl: Option<Duration>,
    /// Group aggregates fold a group's changes within an input batch into one
    /// (`SET 'table.exec.mini-batch.enabled' = 'true'`, as Flink's mini-batch).
    pub mini_batch: bool,
    /// Late rows of window aggregates and the late-data tables they go to: the caller adds
    /// their sinks ([`PhysicalPlanner::take_late_rows`]).
    late_rows: Vec<(Arc<TableDef>, Stream<Row>)>,
    /// The scans planned so far: a second scan of a table with the same columns reads the
    /// first one's stream (one source, its rows fanned out), as Flink reuses sources.
    scans: std::collections::HashMap<ScanKey, Stream<Row>>,
    /// The sub-plans planned so far, by [`Plan::reuse_key`]: a second occurrence of a sub-plan
    /// reads the first one's stream, as Flink reuses sub-plans (q5's two identical window
    /// aggregates run once).
    sub_plans: std::collections::HashMap<String, SqlStream>,
    /// How many scans of each source (table, columns, Nexmark kind) the job's plans hold
    /// ([`PhysicalPlanner::survey`]): a scan takes the `Calc` above it into its reader only if
    /// no other scan would share that reader.
    scans_per_source: std::collections::HashMap<ScanKey, usize>,
    /// Per source (table, options, Nexmark kind — whatever the columns), how many scans read
    /// it ([`PhysicalPlanner::survey`]): the scans of a file, or of the generator's events of
    /// one kind, read more than once share one reader that shapes each scan's rows
    /// ([`PhysicalPlanner::fanned_scan`]; q7 reads the bids twice, once for their maximum
    /// price).
    sources: std::collections::HashMap<SourceKey, usize>,
    /// The sources read once for several scans ([`PhysicalPlanner::fanned_scan`]).
    fan_outs: std::collections::HashMap<SourceKey, FanOutSource>,
    /// The window aggregates and the Top-Ns that drop their row number (by
    /// [`Plan::reuse_key`]) whose last column — `window_time`, the row number's empty slot —
    /// no consumer reads ([`PhysicalPlanner::survey`]): their rows are built without it.
    last_column_unread: std::collections::HashSet<String>,
    /// How many consumers each join of the job's plans has (by [`Plan::reuse_key`],
    /// [`PhysicalPlanner::survey`]): a join read by one projection of its columns emits the
    /// projected rows itself.
    join_consumers: std::collections::HashMap<String, usize>,
    /// The updating operators (by [`Plan::reuse_key`]) that emit `+U` without `-U`: each
    /// feeds, through projections only, a sink that needs no `-U`
    /// ([`PhysicalPlanner::skip_update_before`]).
    without_update_before: std::collections::HashSet<String>,
}

/// A source read once for several scans: its scans (each shaped in the reader) and the
/// operator that hands each scan its rows (the first scan's through its output, the others'
/// through side outputs, whose tags it reads when the job starts).
struct FanOutSource {
    scans: connectors::FanOut,
    split: Stream<Row>,
    tags: Arc<std::sync::Mutex<Vec<OutputTag<Row>>>>,
}

/// What makes two scans the same source: the table (name and options), the columns read and
/// the Nexmark event kind.
type ScanKey = (
    String,
    std::collections::BTreeMap<String, String>,
    Vec<usize>,
    NexmarkKind,
);

/// What makes two scans read one source, whatever their columns: the table (name and options)
/// and the Nexmark event kind. (Scans of the generator's auctions and of its bids keep a
/// reader each, making only the events of their kind: one reader of every event for both ran
/// q20 15 % slower, and q3 — persons and auctions, 8 % of the events — five times slower.)
type SourceKey = (
    String,
    std::collections::BTreeMap<String, String>,
    NexmarkKind,
);

fn source_key(table: &TableDef, kind: NexmarkKind) -> SourceKey {
    (table.name.clone(), table.options.clone(), kind)
}

/// Whether scans of `table` share one reader ([`PhysicalPlanner::fanned_scan`]): files, whose
/// lines cost more to decode twice than once for several shapers, and the generator read
/// twice for events of one kind (q7's bids) — at parallelism 1 the scans' consumers then run
/// in the reader's task, a join of two scans included (`JobConfig::fuse_single_exchanges`):
/// q7 −16 % CPU (with a reader per scan, or a shared one whose consumers ran on threads of
/// their own, the rows one thread made were freed on others, which cost more than making each
/// event twice). A
/// Kafka table's readers keep their own offsets and group. Not a file whose bad lines are
/// skipped (`'json.ignore-parse-errors'`): a shared reader would skip a line bad in a column
/// one scan reads for every scan (a line rejected under the dead-letter policy goes there
/// once, with its reason, and reaches no scan: docs/sql.md says so).
fn shares_readers(table: &TableDef) -> bool {
    match table.options.get("connector").map(String::as_str) {
        Some("filesystem") => {
            !connectors::ignore_parse_errors(table)
                && matches!(
                    table.options.get("format").map(String::as_str),
                    Some("json" | "csv")
                )
        }
        Some("nexmark") => true,
        _ => false,
    }
}

/// The source a scan of `columns` of `table` reads, building rows of Nexmark events of `kind`.
fn scan_key(table: &TableDef, columns: &[usize], kind: NexmarkKind) -> ScanKey {
    (
        table.name.clone(),
        table.options.clone(),
        columns.to_vec(),
        kind,
    )
}

/// 64-bit FNV-1a: a stable hash (fixed forever, unlike seeded hashers) of a plan's digest.
pub fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl<'j> PhysicalPlanner<'j> {
    /// A planner adding to `job`.
    pub fn new(job: &'j mut Job) -> Self {
        PhysicalPlanner {
            job,
            ids: Default::default(),
            state_ttl: None,
            mini_batch: false,
            late_rows: Vec::new(),
            scans: Default::default(),
            sub_plans: Default::default(),
            scans_per_source: Default::default(),
            sources: Default::default(),
            fan_outs: Default::default(),
            last_column_unread: Default::default(),
            join_consumers: Default::default(),
            without_update_before: Default::default(),
        }
    }

    /// Shows the planner every plan of the job before any is built. A filter and projection
    /// right above a scan of a file or of the generator are then pushed into the scan's
    /// reader (one row built per record, none for a record filtered out) when no other scan
    /// of the job reads the same source (the same table, columns and Nexmark event kind), or
    /// in the reader that the scans of a file, or of one event kind of the generator, share
    /// (each scan shaped in it); without a survey they run as operators of their own.
    pub fn survey<'p>(&mut self, plans: impl IntoIterator<Item = &'p Plan>) {
        /// What the walk learns: scans per source, and per window aggregate (or Top-N
        /// dropping its row number) whether a consumer reads its last column.
        #[derive(Default)]
        struct Survey {
            seen: std::collections::HashSet<String>,
            scans: std::collections::HashMap<ScanKey, usize>,
            sources: std::collections::HashMap<SourceKey, usize>,
            last_column_read: std::collections::HashMap<String, bool>,
            join_consumers: std::collections::HashMap<String, usize>,
        }
        fn walk(plan: &Plan, survey: &mut Survey) {
            // A bare scan is counted wherever it is met; above a scan, a sub-plan met again
            // is reused, not built again, so its scans are read once. A filter right above a
            // scan of the generator picks the event kind the reader builds rows for.
            let mut count = |table: &TableDef, columns: &[usize], kind: NexmarkKind| {
                *survey
                    .scans
                    .entry(scan_key(table, columns, kind))
                    .or_default() += 1;
                *survey.sources.entry(source_key(table, kind)).or_default() += 1;
            };
            if let Node::Scan { table, columns } = &plan.node {
                count(table, columns, NexmarkKind::All);
                return;
            }
            if !survey.seen.insert(plan.reuse_key()) {
                return;
            }
            if let Node::Filter { input, predicate } = &plan.node {
                if let Node::Scan { table, columns } = &input.node {
                    let kind = nexmark_kind(input, predicate).unwrap_or(NexmarkKind::All);
                    count(table, columns, kind);
                    return;
                }
            }
            for input in plan.inputs() {
                if matches!(input.node, Node::Join { .. }) {
                    *survey.join_consumers.entry(input.reuse_key()).or_default() += 1;
                }
                if drops_last_column_if_unread(input) {
                    // Only a projection is known not to read a column it does not name.
                    let last = input.fields.len() - 1;
                    let reads = match &plan.node {
                        Node::Project { exprs, .. } => {
                            let mut cols = Vec::new();
                            exprs.iter().for_each(|e| e.columns(&mut cols));
                            cols.contains(&last)
                        }
                        _ => true,
                    };
                    *survey
                        .last_column_read
                        .entry(input.reuse_key())
                        .or_default() |= reads;
                }
                walk(input, survey);
            }
        }
        let mut survey = Survey::default();
        for plan in plans {
            if drops_last_column_if_unread(plan) {
                // A query's result: its sink reads every column.
                survey.last_column_read.insert(plan.reuse_key(), true);
            }
            if matches!(plan.node, Node::Join { .. }) {
                // A query's result: its sink is a consumer.
                *survey.join_consumers.entry(plan.reuse_key()).or_default() += 1;
            }
            walk(plan, &mut survey);
        }
        for (source, n) in survey.scans {
            *self.scans_per_source.entry(source).or_default() += n;
        }
        for (source, n) in survey.sources {
            *self.sources.entry(source).or_default() += n;
        }
        for (join, n) in survey.join_consumers {
            *self.join_consumers.entry(join).or_default() += n;
        }
        self.last_column_unread.extend(
            survey
                .last_column_read
                .into_iter()
                .filter(|(_, read)| !read)
                .map(|(key, _)| key),
        );
    }

    /// Whether `plan` is a window aggregate whose rows are built without `window_time`, or a
    /// Top-N whose rows are built without the row number's empty slot.
    fn drops_last_column(&self, plan: &Plan) -> bool {
        drops_last_column_if_unread(plan) && self.last_column_unread.contains(&plan.reuse_key())
    }

    /// The late rows planned so far, with the tables they go to (emptied; the caller gives
    /// each table one sink).
    pub fn take_late_rows(&mut self) -> Vec<(Arc<TableDef>, Stream<Row>)> {
        std::mem::take(&mut self.late_rows)
    }

    /// The late rows of `late`'s columns out of `rows`, to be written to its table.
    fn late_rows_to(&mut self, late: &crate::plan::LateData, rows: Stream<Row>) {
        let columns: Vec<usize> = late.columns.clone().collect();
        let rows = rows
            .map(move |r: Row| r.project(&columns))
            .name("Calc(late rows)");
        self.late_rows.push((late.table.clone(), rows));
    }

    /// The late rows an operator (`name`, whose output is `out`) sends to `tag`: to the
    /// late-data table, counted as redirected, or dropped as Flink drops them — counted in
    /// `late_records` either way.
    fn late_rows_of(
        &mut self,
        name: &str,
        out: &Stream<Row>,
        tag: &streamcore::OutputTag<Row>,
        table: Option<&crate::plan::LateData>,
    ) {
        let late = out.side_output(tag);
        match table {
            Some(table) => {
                let rows = late.apply(
                    &format!("{name}(late rows)"),
                    crate::window::CountLate { redirected: true },
                );
                self.late_rows_to(table, rows);
            }
            None => {
                let _ = late.apply(
                    &format!("{name}(late rows)"),
                    crate::window::CountLate { redirected: false },
                );
            }
        }
    }

    /// The job being built.
    pub fn job(&mut self) -> &mut Job {
        self.job
    }

    /// A stable id for a stateful operator of `plan`.
    pub fn uid(&mut self, prefix: &str, plan: &Plan) -> String {
        let base = format!("{prefix}:{:016x}", fnv1a(&plan.digest()));
        let n = self.ids.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}#{n}")
        }
    }

    /// Shows the planner each plan of the job with whether its sink needs `-U` (see
    /// [`crate::session::needs_update_before`]). The updating operator of a plan whose sink
    /// does not ([`Plan::update_source`]: a group aggregate, a ranked Top-N or a
    /// deduplication, under projections only) then emits `+U` alone, as Flink plans for such
    /// a sink — unless its sub-plan occurs again anywhere in the job (a reused stream may feed
    /// a consumer that needs `-U`).
    pub fn skip_update_before<'p>(&mut self, plans: impl IntoIterator<Item = (&'p Plan, bool)>) {
        fn count(plan: &Plan, counts: &mut std::collections::HashMap<String, usize>) {
            *counts.entry(plan.reuse_key()).or_default() += 1;
            for input in plan.inputs() {
                count(input, counts);
            }
        }
        let plans: Vec<(&Plan, bool)> = plans.into_iter().collect();
        let mut counts = std::collections::HashMap::new();
        for (plan, _) in &plans {
            count(plan, &mut counts);
        }
        for (plan, needs_update_before) in plans {
            let Some(source) = plan.update_source().filter(|_| !needs_update_before) else {
                continue;
            };
            let key = source.reuse_key();
            if counts.get(&key) == Some(&1) {
                self.without_update_before.insert(key);
            }
        }
    }

    /// Plans `plan`; a sub-plan planned before is not planned again, its stream is reused.
    pub fn build(&mut self, plan: &Plan) -> Result<SqlStream, PlanError> {
        let key = plan.reuse_key();
        if let Some(stream) = self.sub_plans.get(&key) {
            return Ok(stream.clone());
        }
        let update_before = !self.without_update_before.contains(&key);
        let stream = self.build_node(plan, update_before)?;
        self.sub_plans.insert(key, stream.clone());
        Ok(stream)
    }

    /// Plans one node (`update_before`: whether its updates carry `-U`).
    fn build_node(&mut self, plan: &Plan, update_before: bool) -> Result<SqlStream, PlanError> {
        match &plan.node {
            Node::Scan { table, columns } if plan.updating => {
                let uid = self.uid(&format!("src:{}", table.name), plan);
                if crate::kafka::is_changelog(table) {
                    crate::external::check_built(table)?;
                    #[cfg(feature = "kafka")]
                    return Ok(SqlStream::Updating(crate::kafka::changelog_scan(
                        self.job,
                        &table.name,
                        table,
                        columns,
                        &uid,
                    )?));
                }
                #[cfg(feature = "postgres")]
                {
                    let s = crate::external::cdc_stream(self.job, &table.name, table, columns)?;
                    Ok(SqlStream::Updating(s.uid(&uid)))
                }
                #[cfg(not(feature = "postgres"))]
                {
                    let _ = (uid, columns);
                    crate::external::check_built(table)?;
                    Err(PlanError::invalid(
                        "a changelog table needs the `postgres` feature",
                    ))
                }
            }
            Node::Scan { table, columns } => Ok(SqlStream::Append(self.scan(
                plan,
                table,
                columns,
                NexmarkKind::All,
            )?)),
            Node::Values { rows } => {
                let rows: Vec<Row> = rows.iter().map(|r| Row::new(r.clone())).collect();
                Ok(SqlStream::Append(self.job.from_vec("values", rows)))
            }
            Node::Filter { input, predicate } => {
                if let Some(s) = self.fused_scan(input, Some(predicate), None)? {
                    return Ok(SqlStream::Append(s));
                }
                let stream = match (&input.node, nexmark_kind(input, predicate)) {
                    (Node::Scan { table, columns }, Some(kind)) => {
                        SqlStream::Append(self.scan(input, table, columns, kind)?)
                    }
                    _ => self.build(input)?,
                };
                let p = predicate.compiled();
                Ok(match stream {
                    SqlStream::Append(s) => SqlStream::Append(
                        s.try_filter(move |r: &Row| p.test(&r.values))
                            .name("Calc(filter)"),
                    ),
                    SqlStream::Updating(s) => SqlStream::Updating(
                        s.try_filter(move |c: &Change<Row>| p.test(&c.row().values))
                            .name("Calc(filter)"),
                    ),
                })
            }
            Node::Project { input, exprs } => {
                let fused = match &input.node {
                    Node::Filter {
                        input: scan,
                        predicate,
                    } => self.fused_scan(scan, Some(predicate), Some(exprs))?,
                    _ => self.fused_scan(input, None, Some(exprs))?,
                };
                if let Some(s) = fused {
                    return Ok(SqlStream::Append(s));
                }
                if let Some(columns) = self.join_output(input, exprs) {
                    return self.join(input, Some(columns));
                }
                let stream = self.build(input)?;
                let width = input.fields.len() - usize::from(self.drops_last_column(input));
                if is_identity(exprs, width) {
                    return Ok(stream);
                }
                let names: Vec<&str> = plan.fields.iter().map(|f| f.name.as_str()).collect();
                let projector = Projector::new(exprs, &names);
                Ok(match stream {
                    SqlStream::Append(s) => SqlStream::Append(
                        s.process({
                            let mut p = projector;
                            move |row: Row, out| match p.project(row) {
                                Ok(r) => out.emit(r),
                                Err((row, e)) => out.reject(&row, e),
                            }
                        })
                        .name("Calc(project)"),
                    ),
                    SqlStream::Updating(s) => SqlStream::Updating(
                        s.process({
                            let mut p = projector;
                            move |c: Change<Row>, out| {
                                let kind = c.kind();
                                match p.project(c.into_row()) {
                                    Ok(r) => out.emit(Change::new(kind, r)),
                                    Err((row, e)) => out.reject(&Change::new(kind, row), e),
                                }
                            }
                        })
                        .name("Calc(project)"),
                    ),
                })
            }
            Node::WindowTvf {
                input,
                window,
                proctime,
            } => {
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "a window table function over an updating input",
                    ));
                };
                let window = *window;
                if *proctime {
                    // Each batch in the windows of the wall clock when it arrives.
                    return Ok(SqlStream::Append(s.apply(
                        "WindowTableFunction(proctime)",
                        crate::window::ProcTimeWindowTvf::new(window, assign_windows),
                    )));
                }
                Ok(SqlStream::Append(
                    s.flat_map(move |r: Row| assign_windows(window, r))
                        .name("WindowTableFunction"),
                ))
            }
            Node::WindowAggregate {
                input,
                window,
                keys,
                aggs,
                proctime,
                late,
                lateness,
                ..
            } => {
                // Without a late table (whose rows are the aggregate's input rows), a
                // projection of columns below is read through, not built.
                let (input, cols) = columns_through(input, late.is_none());
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "a window aggregate over an updating input",
                    ));
                };
                let late_tag = late
                    .as_ref()
                    .map(|_| streamcore::OutputTag::<Row>::new("late"));
                let proctime = *proctime;
                let uid = self.uid("window-agg", plan);
                let nkeys = *keys;
                let agg = RowAggregate::new(remap_args(aggs, &cols));
                let windows = match *window {
                    WindowKind::Tumble { size } => Windows::tumbling(ms(size)),
                    WindowKind::Hop { slide, size } => Windows::sliding(ms(size), ms(slide)),
                    WindowKind::Session { gap } => Windows::session(ms(gap)),
                    WindowKind::Cumulate { .. } => return Err(PlanError::invalid(
                        "a CUMULATE window aggregate is planned as tumbling windows of its step",
                    )),
                };
                let spec = WindowAggSpec {
                    windows,
                    proctime,
                    late_tag: late_tag.as_ref(),
                    agg,
                    uid: &uid,
                    window_time: !self.drops_last_column(plan),
                    lateness: *lateness,
                };
                let naggs = aggs.len();
                // One or two key columns are the key itself (no row allocated per record);
                // more are a row of them.
                let (results, late_rows) = if nkeys == 1 {
                    let k = cols[0];
                    window_aggregate(s, move |r: &Row| r.values[k].clone(), spec)
                } else if nkeys == 2 {
                    let (a, b) = (cols[0], cols[1]);
                    window_aggregate(
                        s,
                        move |r: &Row| (r.values[a].clone(), r.values[b].clone()),
                        spec,
                    )
                } else {
                    let key_cols: Vec<usize> = cols[..nkeys].to_vec();
                    window_aggregate(s, move |r: &Row| r.key(&key_cols), spec)
                };
                if let (Some(rows), Some(late)) = (late_rows, late) {
                    // The input row carried at the end of the late (pre-projected) row.
                    self.late_rows_to(late, rows);
                }
                let Some(lateness) = *lateness else {
                    return Ok(SqlStream::Append(results));
                };
                // A window re-fired by a late row updates its result: each group and window's
                // last result as a changelog (its key: the group keys and the window's bounds),
                // forgotten when the window can fire no more (its end plus the lateness).
                let mut key_columns: Vec<usize> = (0..nkeys).collect();
                key_columns.extend([nkeys + naggs, nkeys + naggs + 1]);
                Ok(SqlStream::Updating(
                    results
                        .key_by(move |r: &Row| r.key(&key_columns))
                        .deduplicate_last_until(ms(lateness))
                        .name("WindowAggregate(late firings)")
                        .uid(&format!("{uid}:late-firings")),
                ))
            }
            Node::Aggregate { input, keys, aggs } => {
                // A projection of columns below is read through, not built.
                let (input, cols) = columns_through(input, true);
                let stream = self.build(input)?;
                let spec = GroupAggSpec {
                    agg: RowAggregate::new(remap_args(aggs, &cols))
                        .with_key_columns(&cols[..*keys]),
                    ttl: self.state_ttl,
                    mini_batch: self.mini_batch,
                    update_before,
                    uid: self.uid("group-agg", plan),
                };
                // One or two key columns are the key itself (no row allocated per record).
                Ok(SqlStream::Updating(if *keys == 1 {
                    let k = cols[0];
                    group_aggregate(stream, move |r: &Row| r.values[k].clone(), spec)
                } else if *keys == 2 {
                    let (a, b) = (cols[0], cols[1]);
                    group_aggregate(
                        stream,
                        move |r: &Row| (r.values[a].clone(), r.values[b].clone()),
                        spec,
                    )
                } else {
                    let key_cols: Vec<usize> = cols[..*keys].to_vec();
                    group_aggregate(stream, move |r: &Row| r.key(&key_cols), spec)
                }))
            }
            Node::Join { .. } => self.join(plan, None),
            Node::Over {
                input,
                partition,
                frame,
                aggs,
                late: late_table,
            } => {
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "an OVER aggregation over an updating input (OVER takes append-only input, as in Flink)",
                    ));
                };
                let uid = self.uid("over", plan);
                let partition: Arc<[Expr]> = partition.clone().into();
                let late = streamcore::OutputTag::<Row>::new("late");
                let op = crate::over::OverAggregate::new(RowAggregate::new(aggs.clone()), *frame)
                    .late_output(late.clone());
                let out = s
                    .key_by(move |r: &Row| -> Row {
                        partition
                            .iter()
                            .map(|e| e.eval(&r.values).unwrap_or(Scalar::Null))
                            .collect()
                    })
                    .process(op)
                    .name("OverAggregate")
                    .uid(&uid);
                self.late_rows_of("OverAggregate", &out, &late, late_table.as_ref());
                Ok(SqlStream::Append(out))
            }
            Node::MatchRecognize { input, spec } => {
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "MATCH_RECOGNIZE over an updating input (it takes append-only input, as in Flink)",
                    ));
                };
                let uid = self.uid("match", plan);
                Ok(SqlStream::Append(crate::match_recognize::build(
                    s, spec, &uid,
                )))
            }
            Node::ExtremeRows {
                input,
                keys,
                value,
                max,
                window,
            } => {
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "a window's extreme rows over an updating input",
                    ));
                };
                let uid = self.uid("extreme", plan);
                let op = crate::extreme::ExtremeRows::new(keys, *value, *max, *window);
                // Keyed by the group keys: one or two are the key itself, more a row.
                let out = match keys.as_slice() {
                    [] => s.key_by(|_: &Row| Scalar::Null).process(op),
                    &[a] => s.key_by(move |r: &Row| r.values[a].clone()).process(op),
                    &[a, b] => s
                        .key_by(move |r: &Row| (r.values[a].clone(), r.values[b].clone()))
                        .process(op),
                    keys => {
                        let keys: Arc<[usize]> = keys.into();
                        s.key_by(move |r: &Row| r.key(&keys)).process(op)
                    }
                };
                Ok(SqlStream::Append(out.name("WindowExtremeRows").uid(&uid)))
            }
            Node::UpdatingOver {
                input,
                partition,
                order,
                rows,
                aggs,
            } => {
                let stream = self.build(input)?.into_changes();
                let uid = self.uid("over", plan);
                let partition: Arc<[Expr]> = partition.clone().into();
                let op = crate::over_updating::UpdatingOverAggregate::new(
                    RowAggregate::new(aggs.clone()),
                    order.clone(),
                    *rows,
                );
                Ok(SqlStream::Updating(
                    stream
                        .key_by(move |c: &Change<Row>| -> Row {
                            partition
                                .iter()
                                .map(|e| e.eval(&c.row().values).unwrap_or(Scalar::Null))
                                .collect()
                        })
                        .process(op)
                        .name("OverAggregate(updating)")
                        .uid(&uid),
                ))
            }
            Node::TemporalJoin {
                left,
                right,
                keys,
                residual,
                left_outer,
                late,
            } => {
                let SqlStream::Append(probes) = self.build(left)? else {
                    return Err(PlanError::invalid(
                        "an event-time temporal join of an updating input",
                    ));
                };
                let versions = self.build(right)?.into_changes();
                let uid = self.uid("temporal-join", plan);
                let (probe, columns): (Vec<Expr>, Vec<usize>) = keys.iter().cloned().unzip();
                let probe: Arc<[Expr]> = probe.into();
                let residual = residual.clone();
                let (left_outer, width) = (*left_outer, right.fields.len());
                let mut keyed = probes.connect(versions).key_by(
                    move |row: &Row| -> Row {
                        probe
                            .iter()
                            .map(|e| e.eval(&row.values).unwrap_or(Scalar::Null))
                            .collect()
                    },
                    move |c: &Change<Row>| c.row().key(&columns),
                );
                // Late probes go on to the late-data table (the table side is never late).
                let late_tag = late.as_ref().map(|_| OutputTag::new("late"));
                if let Some(tag) = &late_tag {
                    keyed = keyed.late_output_of(tag, LateFrom::Left);
                }
                let joined: Stream<Option<Row>> = keyed
                    .temporal_join(move |probe: &Row, version: Option<&Row>| {
                        let mut values: Vec<Scalar> = Vec::with_capacity(probe.len() + width);
                        values.extend(probe.values.iter().cloned());
                        match version {
                            Some(v) => values.extend(v.values.iter().cloned()),
                            None => values.extend((0..width).map(|_| Scalar::Null)),
                        }
                        let joined = Row {
                            values: values.into(),
                            time: probe.time,
                        };
                        // A NULL key matches nothing; the residual decides on the version.
                        let matched = version.is_some()
                            && residual
                                .as_ref()
                                .is_none_or(|r| r.test(&joined.values).unwrap_or(false));
                        if matched {
                            Some(joined)
                        } else if left_outer {
                            let mut values: Vec<Scalar> = probe.values.to_vec();
                            values.extend((0..width).map(|_| Scalar::Null));
                            Some(Row {
                                values: values.into(),
                                time: probe.time,
                            })
                        } else {
                            None
                        }
                    })
                    .name("TemporalJoin")
                    .uid(&uid);
                if let (Some(table), Some(tag)) = (late, &late_tag) {
                    let probes = joined
                        .side_output(tag)
                        .flat_map(|e: Either<Row, Change<Row>>| match e {
                            Either::Left(probe) => Some(probe),
                            Either::Right(_) => None,
                        })
                        .name("TemporalJoin(late rows)");
                    self.late_rows.push((table.clone(), probes));
                }
                Ok(SqlStream::Append(joined.flat_map(|r: Option<Row>| r)))
            }
            Node::LookupJoin {
                input,
                table,
                keys,
                residual,
                left_outer,
            } => {
                let stream = self.build(input)?;
                let rows = connectors::bounded_rows(table)?;
                let (probe, columns): (Vec<Expr>, Vec<usize>) = keys.iter().cloned().unzip();
                let mut index: std::collections::HashMap<Row, Vec<Row>> = Default::default();
                for r in rows {
                    let k = r.key(&columns);
                    if k.values.iter().any(Scalar::is_null) {
                        continue;
                    }
                    index
                        .entry(Row::new(k.values.to_vec()))
                        .or_default()
                        .push(r);
                }
                tracing::info!(
                    "lookup join: {} keys of table `{}` loaded",
                    index.len(),
                    table.name
                );
                let index = Arc::new(index);
                let probe: Arc<[Expr]> = probe.into();
                let residual = residual.clone();
                let (left_outer, width) = (*left_outer, table.columns.len());
                let lookup = move |row: &Row| -> Result<Vec<Row>, crate::expr::EvalError> {
                    let k: Row = probe
                        .iter()
                        .map(|e| e.eval(&row.values))
                        .collect::<Result<Row, _>>()?;
                    let mut out = Vec::new();
                    if let Some(matches) = index.get(&k) {
                        for m in matches {
                            let joined = concat(Some(row), 0, Some(m), 0);
                            let keep = match &residual {
                                Some(p) => p.test(&joined.values)?,
                                None => true,
                            };
                            if keep {
                                out.push(Row {
                                    time: row.time,
                                    ..joined
                                });
                            }
                        }
                    }
                    if out.is_empty() && left_outer {
                        out.push(concat(Some(row), 0, None, width));
                    }
                    Ok(out)
                };
                Ok(match stream {
                    SqlStream::Append(s) => SqlStream::Append(
                        s.try_map(lookup)
                            .flat_map(|v: Vec<Row>| v)
                            .name("LookupJoin"),
                    ),
                    SqlStream::Updating(s) => SqlStream::Updating(
                        s.try_map(move |c: &Change<Row>| {
                            let kind = c.kind();
                            Ok::<_, crate::expr::EvalError>(
                                lookup(c.row())?
                                    .into_iter()
                                    .map(|r| Change::new(kind, r))
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .flat_map(|v: Vec<Change<Row>>| v)
                        .name("LookupJoin"),
                    ),
                })
            }
            Node::Unnest {
                input,
                expr,
                outer,
                ordinality,
            } => {
                let width = plan.fields.len() - input.fields.len();
                let unnest = crate::functions::unnest::Unnest::new(
                    expr.compiled(),
                    width,
                    *outer,
                    *ordinality,
                );
                Ok(match self.build(input)? {
                    SqlStream::Append(s) => SqlStream::Append(
                        s.try_map(move |r: &Row| unnest.rows(r))
                            .name("Correlate(UNNEST)")
                            .flat_map(|rows: Vec<Row>| rows)
                            .name("Correlate(UNNEST)"),
                    ),
                    SqlStream::Updating(s) => SqlStream::Updating(
                        s.try_map(move |c: &Change<Row>| {
                            unnest.rows(c.row()).map(|rows| {
                                rows.into_iter()
                                    .map(|r| Change::new(c.kind(), r))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .name("Correlate(UNNEST)")
                        .flat_map(|changes: Vec<Change<Row>>| changes)
                        .name("Correlate(UNNEST)"),
                    ),
                })
            }
            Node::TemporalSort {
                input,
                order,
                late: late_table,
            } => {
                let SqlStream::Append(s) = self.build(input)? else {
                    return Err(PlanError::invalid(
                        "ORDER BY over an updating input (a temporal sort takes append-only input, as in Flink)",
                    ));
                };
                let uid = self.uid("sort", plan);
                let late = streamcore::OutputTag::<Row>::new("late");
                let op = crate::sort::TemporalSort::new(order.clone()).late_output(late.clone());
                // A sort is global: every row to one instance, as Flink's singleton sort.
                let out = s
                    .key_by(|_: &Row| Scalar::Null)
                    .process(op)
                    .name("TemporalSort")
                    .uid(&uid);
                self.late_rows_of("TemporalSort", &out, &late, late_table.as_ref());
                Ok(SqlStream::Append(out))
            }
            Node::Rank {
                input,
                partition,
                order,
                limit,
                number_selected,
            } => {
                let Some(n) = *limit else {
                    return Err(PlanError::unsupported(
                        "ROW_NUMBER() without a filter `rownum <= N` on it in the enclosing query (an unbounded Top-N)",
                    ));
                };
                let stream = self.build(input)?;
                let uid = self.uid("rank", plan);
                let keep_by_time =
                    plan.deduplication()
                        .map(|last| if last { Keep::Last } else { Keep::First });
                let spec = RankSpec {
                    n,
                    number_selected: *number_selected,
                    number_slot: !self.drops_last_column(plan),
                    keep_by_time,
                    update_before,
                    uid,
                };
                let eval = |e: &Expr, r: &Row| e.eval(&r.values).unwrap_or(Scalar::Null);
                let sort_value = move |(e, desc): &(Expr, bool), r: &Row| SortValue {
                    value: eval(e, r),
                    desc: *desc,
                };
                // One or two partition columns are the key itself, one sort column the sort
                // key itself (no row or vector built per record); more are a row or a vector
                // of them.
                let keys = partition.len();
                let one_sort = order.len() == 1;
                let partition: Arc<[Expr]> = partition.clone().into();
                let order: Arc<[(Expr, bool)]> = order.clone().into();
                let key_one = {
                    let p = partition.clone();
                    move |r: &Row| -> Scalar { eval(&p[0], r) }
                };
                let key_two = {
                    let p = partition.clone();
                    move |r: &Row| -> (Scalar, Scalar) { (eval(&p[0], r), eval(&p[1], r)) }
                };
                let key_many =
                    move |r: &Row| -> Row { partition.iter().map(|e| eval(e, r)).collect() };
                let sort_one = {
                    let o = order.clone();
                    move |r: &Row| -> SortValue { sort_value(&o[0], r) }
                };
                let sort_many = move |r: &Row| -> Vec<SortValue> {
                    order.iter().map(|o| sort_value(o, r)).collect()
                };
                let out = match (keys, one_sort) {
                    (1, true) => rank(stream, key_one, sort_one, spec),
                    (1, false) => rank(stream, key_one, sort_many, spec),
                    (2, true) => rank(stream, key_two, sort_one, spec),
                    (2, false) => rank(stream, key_two, sort_many, spec),
                    (_, true) => rank(stream, key_many, sort_one, spec),
                    (_, false) => rank(stream, key_many, sort_many, spec),
                };
                Ok(SqlStream::Updating(out))
            }
            Node::Union { inputs } => {
                let mut streams = Vec::new();
                for i in inputs {
                    streams.push(self.build(i)?);
                }
                let any_updating = streams.iter().any(|s| matches!(s, SqlStream::Updating(_)));
                let mut it = streams.into_iter();
                let first = it.next().expect("a union has inputs");
                if any_updating {
                    let mut acc = first.into_changes();
                    for s in it {
                        acc = acc.union(s.into_changes());
                    }
                    Ok(SqlStream::Updating(acc))
                } else {
                    let SqlStream::Append(mut acc) = first else {
                        unreachable!()
                    };
                    for s in it {
                        let SqlStream::Append(s) = s else {
                            unreachable!()
                        };
                        acc = acc.union(s);
                    }
                    Ok(SqlStream::Append(acc))
                }
            }
        }
    }

    /// The columns `exprs` picks of `plan`, if `plan` is an inner regular join whose
    /// condition beyond its keys cannot fail, read by this projection only, and `exprs` only picks
    /// columns: the join then emits the projected rows itself (one row built per match, not a
    /// joined row and then its projection; its state, of input rows, is the same).
    fn join_output(&self, plan: &Plan, exprs: &[Expr]) -> Option<Arc<[usize]>> {
        let Node::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on,
            strategy: strategy @ JoinStrategy::Regular,
            ..
        } = &plan.node
        else {
            return None;
        };
        let columns = exprs
            .iter()
            .map(Expr::as_column)
            .collect::<Option<Arc<[usize]>>>()?;
        let cond = join::split(on, left, right);
        let alone = self.join_consumers.get(&plan.reuse_key()) == Some(&1);
        // A condition that may fail is tested again on the joined rows (to report the error).
        let residual = join::residual_for(strategy, &cond, left, right);
        (alone && residual.iter().all(Expr::cannot_fail)).then_some(columns)
    }

    /// The join `plan`, emitting the columns `output` of its joined rows if given
    /// ([`PhysicalPlanner::join_output`]), else the joined rows.
    fn join(&mut self, plan: &Plan, output: Option<Arc<[usize]>>) -> Result<SqlStream, PlanError> {
        let Node::Join {
            left,
            right,
            kind,
            on,
            strategy,
            late,
        } = &plan.node
        else {
            unreachable!("a join plan")
        };
        // An interval join's late rows of an input go to its late-data table, which must take
        // the input's rows; so do an expiring regular join's (one that keeps every row has
        // none).
        let late = join::late_tables(*kind, strategy, on, left, right, late);
        if let Some(e) = late.invalid() {
            return Err(e.clone());
        }
        for (table, side, input) in [(&late.left, "left", left), (&late.right, "right", right)] {
            if let Some(table) = table {
                crate::binder::check_late_table(
                    table,
                    &format!("of the join's {side} input"),
                    &input.fields,
                )?;
            }
        }
        let kind = *kind;
        let cond = join::split(on, left, right);
        let residual = join::residual_for(strategy, &cond, left, right);
        // An inner regular join's rows go as the watermark passes their bounds, if any.
        let expiry = RowExpiry::new(
            join::expiry_bounds(kind, strategy, on, left, right),
            left.fields.len(),
        );
        let (SqlStream::Append(l), SqlStream::Append(r)) = (self.build(left)?, self.build(right)?)
        else {
            return Err(PlanError::unsupported(
                "a join of an updating input (the result of a GROUP BY, an outer join, a Top-N)",
            ));
        };
        if cond.keys.is_empty() {
            return Err(PlanError::unsupported(
                "a join without an equality between the two sides (a cross join)",
            ));
        }
        let uid = self.uid("join", plan);
        let (lk, rk): (Vec<Expr>, Vec<Expr>) = cond.keys.into_iter().unzip();
        let residual: Option<Arc<Expr>> = match residual.len() {
            0 => None,
            1 => Some(Arc::new(residual.into_iter().next().expect("one"))),
            _ => Some(Arc::new(Expr::And(residual))),
        };
        let unique = crate::join::unique_sides(kind, strategy, left, right, &lk, &rk);
        let spec = JoinSpec {
            unique,
            expiry,
            keys: (lk.as_slice().into(), rk.as_slice().into()),
            kind,
            strategy: *strategy,
            widths: (left.fields.len(), right.fields.len()),
            ttl: self.state_ttl,
            uid,
            residual: residual.clone(),
            output,
            late: match (&late.left, &late.right) {
                (None, None) => None,
                (Some(_), None) => Some(LateFrom::Left),
                (None, Some(_)) => Some(LateFrom::Right),
                (Some(_), Some(_)) => Some(LateFrom::Both),
            },
        };
        let value = |key: &Expr| {
            let key = key.clone();
            move |row: &Row| key.eval(&row.values).unwrap_or(Scalar::Null)
        };
        let joined = if let ([lk], [rk]) = (&lk[..], &rk[..]) {
            // One or two key columns: the state is keyed by the values themselves, no row
            // built per record.
            keyed_join(l, r, value(lk), value(rk), spec)
        } else if let ([l1, l2], [r1, r2]) = (&lk[..], &rk[..]) {
            let pair = |a, b| {
                let (a, b) = (value(a), value(b));
                move |row: &Row| (a(row), b(row))
            };
            keyed_join(l, r, pair(l1, l2), pair(r1, r2), spec)
        } else {
            let (lk, rk): (Arc<[Expr]>, Arc<[Expr]>) = (lk.into(), rk.into());
            let values = |keys: Arc<[Expr]>| {
                move |row: &Row| -> Row {
                    keys.iter()
                        .map(|e| e.eval(&row.values).unwrap_or(Scalar::Null))
                        .collect()
                }
            };
            keyed_join(l, r, values(lk), values(rk), spec)
        };
        let (joined, late_rows) = joined;
        if let Some(rows) = late_rows {
            for (table, left_side) in [(late.left, true), (late.right, false)] {
                let Some(table) = table else { continue };
                let side_rows = rows
                    .clone()
                    .flat_map(move |e: Either<Row, Row>| match e {
                        Either::Left(r) if left_side => Some(r),
                        Either::Right(r) if !left_side => Some(r),
                        _ => None,
                    })
                    .name(&format!(
                        "{}(late {} rows)",
                        match strategy {
                            JoinStrategy::Interval { .. } => "IntervalJoin",
                            JoinStrategy::Regular => "Join",
                        },
                        if left_side { "left" } else { "right" }
                    ));
                self.late_rows.push((table, side_rows));
            }
        }
        Ok(match (joined, residual) {
            // The pairs' test let through the rows whose test failed: reported here.
            (SqlStream::Append(rows), Some(p)) if !p.cannot_fail() => SqlStream::Append(
                rows.try_filter(move |r: &Row| p.test(&r.values))
                    .name("Calc(filter)"),
            ),
            (joined, _) => joined,
        })
    }

    fn scan(
        &mut self,
        plan: &Plan,
        table: &TableDef,
        columns: &[usize],
        kind: NexmarkKind,
    ) -> Result<Stream<Row>, PlanError> {
        let key = scan_key(table, columns, kind);
        if let Some(stream) = self.scans.get(&key) {
            return Ok(stream.clone());
        }
        let stream = if self.fans_out(table, kind) {
            self.fanned_scan(plan, table, columns, kind, &ScanCalc::default())?
        } else {
            self.new_scan(plan, table, columns, kind, &ScanCalc::default())?
        };
        self.scans.insert(key, stream.clone());
        Ok(stream)
    }

    /// `scan` with `filter` and `projection` (over its columns) pushed into its reader, if it
    /// can take them: an append-only scan of a file (JSON or CSV) or of the generator, whose
    /// source no other scan of the job reads ([`PhysicalPlanner::survey`]: a shared reader
    /// builds the same rows for all its consumers) or that shares a file's or the generator's
    /// reader ([`PhysicalPlanner::fanned_scan`]), where no computed column would be computed
    /// twice. Records the filter refuses are counted as filtered by the source and still move
    /// its watermark, as if the filter ran after it.
    fn fused_scan(
        &mut self,
        scan: &Plan,
        filter: Option<&Expr>,
        projection: Option<&[Expr]>,
    ) -> Result<Option<Stream<Row>>, PlanError> {
        let Node::Scan { table, columns } = &scan.node else {
            return Ok(None);
        };
        let kind = filter
            .and_then(|f| nexmark_kind(scan, f))
            .unwrap_or(NexmarkKind::All);
        let calc = || ScanCalc {
            filter: filter.cloned(),
            projection: projection.map(<[Expr]>::to_vec),
        };
        if self.fans_out(table, kind) {
            // Each scan of a shared reader is shaped in it, its filter and projection too.
            let fusable = !scan.updating
                && connectors::RowShaper::select(table, columns).can_fuse(filter, projection);
            return match fusable {
                true => self
                    .fanned_scan(scan, table, columns, kind, &calc())
                    .map(Some),
                false => Ok(None),
            };
        }
        let fusable = !scan.updating
            && self.scans_per_source.get(&scan_key(table, columns, kind)) == Some(&1)
            && match table.options.get("connector").map(String::as_str) {
                Some("nexmark") => true,
                Some("filesystem") => matches!(
                    table.options.get("format").map(String::as_str),
                    Some("json" | "csv")
                ),
                _ => false,
            }
            && connectors::RowShaper::select(table, columns).can_fuse(filter, projection);
        if !fusable {
            return Ok(None);
        }
        self.new_scan(scan, table, columns, kind, &calc()).map(Some)
    }

    /// Whether the scans of `table` (of Nexmark events of `kind`) share one reader that shapes
    /// each scan's rows ([`PhysicalPlanner::fanned_scan`]): a file, or the generator's events
    /// of one kind, read by more than one scan of the job ([`shares_readers`]).
    fn fans_out(&self, table: &TableDef, kind: NexmarkKind) -> bool {
        let read_twice = self
            .sources
            .get(&source_key(table, kind))
            .is_some_and(|&n| n > 1);
        read_twice && shares_readers(table)
    }

    /// A scan of `columns` of a source that several scans read ([`PhysicalPlanner::fans_out`]),
    /// with `calc` shaped in the reader: the source is made by the first such scan and read
    /// once; each line is decoded once, with the columns any scan reads, and each scan's row
    /// built from it directly with its own filter and projection (q4 reads auctions and bids
    /// from one file; q7 the bids twice: once whole, once for their maximum price).
    fn fanned_scan(
        &mut self,
        plan: &Plan,
        table: &TableDef,
        columns: &[usize],
        kind: NexmarkKind,
        calc: &ScanCalc,
    ) -> Result<Stream<Row>, PlanError> {
        let key = source_key(table, kind);
        if !self.fan_outs.contains_key(&key) {
            let name = table.name.to_string();
            let uid = self.uid(&format!("src:{}", table.name), plan);
            let scans = connectors::FanOut::default();
            let source = if table.connector()? == "nexmark" {
                connectors::nexmark_fan_out(self.job, &name, table, &scans, kind)?
            } else {
                connectors::filesystem_fan_out(self.job, &name, table, &scans)?
            };
            let source = with_table_watermarks(source.uid(&uid), table);
            let tags: Arc<std::sync::Mutex<Vec<OutputTag<Row>>>> = Default::default();
            let split = source
                .apply(
                    "FanOut",
                    FanOutSplit {
                        tags: tags.clone(),
                        side: None,
                    },
                )
                .name("FanOut");
            self.fan_outs
                .insert(key.clone(), FanOutSource { scans, split, tags });
        }
        let fan = &self.fan_outs[&key];
        Ok(match fan.scans.add(columns, calc, kind) {
            0 => fan.split.clone(),
            i => {
                let tag = OutputTag::new(&format!("{}#{i}", table.name));
                fan.tags.lock().expect("fan-out tags").push(tag.clone());
                fan.split.side_output(&tag)
            }
        })
    }

    fn new_scan(
        &mut self,
        plan: &Plan,
        table: &TableDef,
        columns: &[usize],
        kind: NexmarkKind,
        calc: &ScanCalc,
    ) -> Result<Stream<Row>, PlanError> {
        let name = table.name.to_string();
        let uid = self.uid(&format!("src:{}", table.name), plan);
        let connector = table.connector()?;
        let stream = match connector {
            "nexmark" => connectors::nexmark_stream(self.job, &name, table, columns, kind, calc)?,
            "filesystem" => connectors::filesystem_stream(self.job, &name, table, columns, calc)?,
            "datagen" => crate::datagen::datagen_stream(self.job, &name, table, columns)?,
            #[cfg(feature = "kafka")]
            "kafka" => crate::kafka::scan(self.job, &name, table, columns)?,
            "values" => {
                let rows = connectors::values_rows_of(table, columns)?;
                self.job.from_vec(&name, rows)
            }
            other => {
                if other == "kafka" {
                    crate::external::check_built(table)?;
                }
                return Err(PlanError::invalid(format!(
                    "table `{}`: connector '{other}' cannot be read{}",
                    table.name,
                    match other {
                        "print" | "blackhole" => " (it is a sink)",
                        _ => SOURCES,
                    }
                )));
            }
        };
        Ok(with_table_watermarks(stream.uid(&uid), table))
    }
}

/// `source` with the watermarks of `table`'s `WATERMARK` clause, if it has one.
fn with_table_watermarks<T: Clone + Send + 'static + streamcore::event_time::EventTime>(
    source: Stream<T>,
    table: &TableDef,
) -> Stream<T> {
    match table.watermark_delay_ms {
        Some(delay) => source.with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            Duration::from_millis(delay.max(0) as u64),
        )),
        None => source,
    }
}

/// Whether `plan`'s rows are built without their last column when no consumer reads it: a
/// window aggregate's `window_time`, and the row number of a Top-N that does not select it
/// (an empty slot kept only so that the rows have the plan's width).
fn drops_last_column_if_unread(plan: &Plan) -> bool {
    matches!(
        plan.node,
        Node::WindowAggregate { .. }
            | Node::Rank {
                number_selected: false,
                ..
            }
    )
}

/// The connectors a scan reads, for messages.
const SOURCES: &str =
    " (sources: nexmark, datagen, filesystem, values, kafka, upsert-kafka, postgres-cdc)";

fn ms(v: i64) -> Duration {
    Duration::from_millis(v as u64)
}

/// A group key of a window aggregate: one column's value, or a row of several.
trait GroupKey: streamcore::data::StateKey {
    /// Appends the key's values to an output row.
    fn push_values(&self, out: &mut Vec<Scalar>);
    /// How many values.
    fn width(&self) -> usize;
}

impl GroupKey for Scalar {
    fn push_values(&self, out: &mut Vec<Scalar>) {
        out.push(self.clone());
    }
    fn width(&self) -> usize {
        1
    }
}

impl GroupKey for (Scalar, Scalar) {
    fn push_values(&self, out: &mut Vec<Scalar>) {
        out.push(self.0.clone());
        out.push(self.1.clone());
    }
    fn width(&self) -> usize {
        2
    }
}

impl GroupKey for Row {
    fn push_values(&self, out: &mut Vec<Scalar>) {
        out.extend(self.values.iter().cloned());
    }
    fn width(&self) -> usize {
        self.len()
    }
}

/// `keyed`, its updating operator emitting `-U` before `+U` only if `update_before`.
fn with_update_before<T, K, KF>(
    keyed: KeyedStream<T, K, KF>,
    update_before: bool,
) -> KeyedStream<T, K, KF>
where
    T: streamcore::Data,
    K: streamcore::data::Key,
    KF: Fn(&T) -> K + Clone + Send + 'static,
{
    match update_before {
        true => keyed,
        false => keyed.without_update_before(),
    }
}

/// What a Top-N (or deduplication) is, whatever its key and sort types.
struct RankSpec {
    n: usize,
    /// The row number is a column of the output.
    number_selected: bool,
    /// Not selected, the row number still has an empty slot (`NULL`) at the end of each row,
    /// unless no consumer reads that last column.
    number_slot: bool,
    /// `ORDER BY rowtime` with `n = 1`: a deduplication keeping the first or last row.
    keep_by_time: Option<Keep>,
    /// Updates carry `-U` (else `+U` alone: the sink needs none).
    update_before: bool,
    uid: String,
}

/// The Top-N of `input` per `key` in the order of `sort`: its changelog, each row with its
/// row number appended (NULL when not selected).
fn rank<K, S>(
    input: SqlStream,
    key: impl Fn(&Row) -> K + Clone + Send + 'static,
    sort: impl Fn(&Row) -> S + Clone + Send + 'static,
    spec: RankSpec,
) -> Stream<Change<Row>>
where
    K: streamcore::data::StateKey,
    S: Ord + streamcore::data::StateData,
{
    let with_number =
        |c: Change<(u64, Row)>| c.map(|(rank, row)| append_column(row, Scalar::Int(rank as i64)));
    // The empty slot of an unselected row number, if a consumer reads the rows whole; else
    // the changes go on as the operator emits them (no operator added).
    let slot = spec.number_slot;
    let without_number = move |s: Stream<Change<Row>>| match slot {
        true => s.map(|c: Change<Row>| c.map(|row| append_column(row, Scalar::Null))),
        false => s,
    };
    let (n, uid) = (spec.n, spec.uid.as_str());
    let update_before = spec.update_before;
    match (input, spec.number_selected, spec.keep_by_time) {
        (SqlStream::Append(s), false, Some(keep)) => without_number(
            with_update_before(s.key_by(key), update_before)
                .deduplicate_by_time(keep)
                .name("Deduplicate")
                .uid(uid),
        ),
        (SqlStream::Append(s), true, _) => with_update_before(s.key_by(key), update_before)
            .top_n_ranked(n, sort)
            .name("Rank")
            .uid(uid)
            .map(with_number),
        (SqlStream::Append(s), false, _) => {
            without_number(s.key_by(key).top_n(n, sort).name("Rank").uid(uid))
        }
        (SqlStream::Updating(s), true, _) => {
            with_update_before(s.key_by(move |c: &Change<Row>| key(c.row())), update_before)
                .top_n_ranked_changes(n, sort)
                .name("Rank")
                .uid(uid)
                .map(with_number)
        }
        (SqlStream::Updating(s), false, _) => without_number(
            s.key_by(move |c: &Change<Row>| key(c.row()))
                .top_n_changes(n, sort)
                .name("Rank")
                .uid(uid),
        ),
    }
}

/// What a group aggregate is, whatever its key type.
struct GroupAggSpec {
    agg: RowAggregate,
    ttl: Option<Duration>,
    /// Fold a group's changes within a batch (`table.exec.mini-batch.enabled`).
    mini_batch: bool,
    /// Updates carry `-U` (else `+U` alone: the sink needs none).
    update_before: bool,
    uid: String,
}

impl GroupAggSpec {
    /// `keyed` with the aggregate's state TTL and mini-batch settings.
    fn configure<T, K, KF>(&self, keyed: KeyedStream<T, K, KF>) -> KeyedStream<T, K, KF>
    where
        T: streamcore::Data,
        K: streamcore::data::Key,
        KF: Fn(&T) -> K + Clone + Send + 'static,
    {
        let keyed = match self.ttl {
            Some(ttl) => keyed.state_ttl(ttl),
            None => keyed,
        };
        let keyed = with_update_before(keyed, self.update_before);
        if self.mini_batch {
            keyed.mini_batch()
        } else {
            keyed
        }
    }
}

/// A group aggregate of `input` keyed by `key`: the changelog of its rows (keys, then
/// aggregates).
fn group_aggregate<K: GroupKey>(
    input: SqlStream,
    key: impl Fn(&Row) -> K + Clone + Send + 'static,
    spec: GroupAggSpec,
) -> Stream<Change<Row>> {
    let width = spec.agg.width();
    // The aggregate's result is the output row, keys first (`RowAggregate::with_key_columns`);
    // an accumulator restored from a checkpoint of an earlier build, which kept no key, gets
    // its key from the state's.
    let finish = move |k: &K, v: Row| {
        if v.len() == width {
            return v;
        }
        let mut values: Vec<Scalar> = Vec::with_capacity(k.width() + v.len());
        k.push_values(&mut values);
        values.extend(v.values.iter().cloned());
        Row::new(values)
    };
    match input {
        SqlStream::Append(s) => spec
            .configure(s.key_by(key))
            .group_aggregate_with(spec.agg, finish)
            .name("GroupAggregate")
            .uid(&spec.uid),
        SqlStream::Updating(s) => spec
            .configure(s.key_by(move |c: &Change<Row>| key(c.row())))
            .group_aggregate_changes_with(spec.agg, finish)
            .name("GroupAggregate")
            .uid(&spec.uid),
    }
}

/// What a window aggregate is, whatever its key type.
struct WindowAggSpec<'a> {
    windows: Windows,
    proctime: bool,
    late_tag: Option<&'a streamcore::OutputTag<Row>>,
    agg: RowAggregate,
    uid: &'a str,
    /// The rows end with `window_time` (false when no consumer reads it).
    window_time: bool,
    /// How long (ms) a fired window takes late rows, re-firing.
    lateness: Option<i64>,
}

/// A window aggregate of `rows` keyed by `key`: its rows (keys, aggregates, `window_start`,
/// `window_end`, `window_time` unless the spec drops it; the event time the window's last
/// millisecond) and, with a late tag, the late input rows.
fn window_aggregate<K: GroupKey>(
    rows: Stream<Row>,
    key: impl Fn(&Row) -> K + Clone + Send + 'static,
    spec: WindowAggSpec<'_>,
) -> (Stream<Row>, Option<Stream<Row>>) {
    let mut windowed = rows.key_by(key).window(spec.windows);
    if spec.proctime {
        windowed = windowed.processing_time();
    }
    if let Some(tag) = spec.late_tag {
        windowed = windowed.late_output(tag);
    }
    if let Some(lateness) = spec.lateness {
        windowed = windowed.allowed_lateness(ms(lateness));
    }
    // The row — keys, aggregates, bounds — is written from the accumulator into a reused
    // buffer and moved into its one allocation.
    let mut values: Vec<Scalar> = Vec::new();
    let window_time = spec.window_time;
    let rows = windowed
        .aggregate_with(
            spec.agg,
            move |key: &K, window: Window, agg: &RowAggregate, acc: &RowAcc| {
                let end = window.end.0;
                key.push_values(&mut values);
                agg.push_results(acc, &mut values);
                values.push(Scalar::TimestampMs(window.start.0));
                values.push(Scalar::TimestampMs(end));
                if window_time {
                    values.push(Scalar::TimestampMs(end - 1));
                }
                Row {
                    values: values.drain(..).collect(),
                    time: Timestamp(end - 1),
                }
            },
        )
        .name("WindowAggregate")
        .uid(spec.uid);
    let late = spec.late_tag.map(|tag| rows.side_output(tag));
    (rows, late)
}

/// A projection that only selects columns (`SELECT c, a`: reordered, dropped or repeated) of an
/// input other than a scan — a scan's reader builds its projection itself — as the input and
/// the selected columns: an aggregate above reads its key and argument columns through it
/// instead of a projected row being built per record.
fn selected_columns(input: &Plan) -> Option<(&Plan, Vec<usize>)> {
    let Node::Project {
        input: inner,
        exprs,
    } = &input.node
    else {
        return None;
    };
    let over_scan = match &inner.node {
        Node::Scan { .. } => true,
        Node::Filter { input, .. } => matches!(input.node, Node::Scan { .. }),
        _ => false,
    };
    if over_scan {
        return None;
    }
    let cols = exprs
        .iter()
        .map(Expr::as_column)
        .collect::<Option<Vec<usize>>>()?;
    Some((&**inner, cols))
}

/// The plan an aggregate over `input` reads, and where each of `input`'s columns is in it:
/// with `read_through`, through a projection that only selects columns
/// ([`selected_columns`]); otherwise `input` itself.
fn columns_through(input: &Plan, read_through: bool) -> (&Plan, Vec<usize>) {
    read_through
        .then(|| selected_columns(input))
        .flatten()
        .unwrap_or_else(|| (input, (0..input.fields.len()).collect()))
}

/// Aggregate calls over a projection's columns `cols`, made to read its input's columns.
fn remap_args(aggs: &[AggCall], cols: &[usize]) -> Vec<AggCall> {
    aggs.iter()
        .map(|a| AggCall {
            arg: a.arg.map(|c| cols[c]),
            filter: a.filter.map(|c| cols[c]),
            ..a.clone()
        })
        .collect()
}

fn is_identity(exprs: &[Expr], width: usize) -> bool {
    exprs.len() == width
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column(c) if *c == i))
}

/// `execution.runtime-mode = batch` over bounded input: an updating result reduced to its
/// final rows, emitted when the input ends, so that an append-only sink (CSV or JSON files)
/// receives the final table, as in Flink's batch mode.
pub fn final_table(changes: Stream<Change<Row>>) -> Stream<Row> {
    changes
        .key_by(|c: &Change<Row>| c.row().as_key())
        .final_rows()
        .name("FinalTable")
}

/// Computes a projection's row. Columns projected as they are, and read by no other
/// expression, are moved out of the input row when nothing else holds it (no string copied);
/// the others are evaluated over it. The output is built in one allocation from a reused
/// buffer.
#[derive(Clone)]
struct Projector {
    exprs: Arc<[Expr]>,
    /// The output columns' names, for the message of a value that fails.
    names: Arc<[String]>,
    /// Per output column: the input column moved into it, if it can be.
    moves: Arc<[Option<usize>]>,
    scratch: Vec<Scalar>,
}

impl Projector {
    fn new(exprs: &[Expr], names: &[&str]) -> Self {
        let mut reads = Vec::new();
        exprs.iter().for_each(|e| e.columns(&mut reads));
        let moves = exprs
            .iter()
            .map(|e| match e {
                Expr::Column(c) if reads.iter().filter(|&&r| r == *c).count() == 1 => Some(*c),
                _ => None,
            })
            .collect();
        Projector {
            exprs: exprs.iter().map(Expr::compiled).collect(),
            names: names.iter().map(|n| n.to_string()).collect(),
            moves,
            scratch: Vec::new(),
        }
    }

    #[inline]
    fn project(&mut self, mut row: Row) -> Result<Row, (Row, crate::expr::EvalError)> {
        self.scratch.clear();
        for (i, (e, m)) in self.exprs.iter().zip(self.moves.iter()).enumerate() {
            if m.is_some() {
                self.scratch.push(Scalar::Null);
            } else {
                match e.eval(&row.values) {
                    Ok(v) => self.scratch.push(v),
                    Err(err) => return Err((row, self.failed(i, err))),
                }
            }
        }
        match Arc::get_mut(&mut row.values) {
            Some(values) => {
                for (slot, m) in self.scratch.iter_mut().zip(self.moves.iter()) {
                    if let Some(c) = m {
                        *slot = std::mem::replace(&mut values[*c], Scalar::Null);
                    }
                }
            }
            None => {
                for (slot, m) in self.scratch.iter_mut().zip(self.moves.iter()) {
                    if let Some(c) = m {
                        *slot = row.values[*c].clone();
                    }
                }
            }
        }
        Ok(Row {
            values: self.scratch.drain(..).collect(),
            time: row.time,
        })
    }

    /// The error of output column `i` failing with `err`, naming the column.
    #[cold]
    #[inline(never)]
    fn failed(&self, i: usize, err: crate::expr::EvalError) -> crate::expr::EvalError {
        match self.names.get(i) {
            Some(name) => crate::expr::EvalError(format!("column `{name}`: {}", err.0)),
            None => err,
        }
    }
}

/// A value of a Top-N's sort key: descending keys order reversed (NULLs first ascending,
/// last descending, as in Flink).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SortValue {
    value: Scalar,
    desc: bool,
}

impl PartialOrd for SortValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let o = self.value.cmp(&other.value);
        if self.desc {
            o.reverse()
        } else {
            o
        }
    }
}

/// Splits a shared reader's records into its scans' rows: scan 0's to the main output, the
/// others' to their side outputs (tags registered as the scans are planned). A batch is read
/// in place: a record moved out of the batch and its rows out of the record were copies
/// read back at once, wider than written (a stalled load per row).
#[derive(Clone)]
struct FanOutSplit {
    tags: Arc<std::sync::Mutex<Vec<OutputTag<Row>>>>,
    /// The tags, read once the job runs (the scans register while it is planned).
    side: Option<Vec<OutputTag<Row>>>,
}

impl streamcore::operator::Operator for FanOutSplit {
    type In = connectors::FannedRows;
    type Out = Row;

    fn process_batch(
        &mut self,
        mut batch: Vec<connectors::FannedRows>,
        _: &mut streamcore::TaskContext,
        out: &mut streamcore::Output<Row>,
    ) -> streamcore::Result<()> {
        let tags = &self.tags;
        let side = self
            .side
            .get_or_insert_with(|| tags.lock().expect("fan-out tags").clone());
        for fanned in &mut batch {
            for (scan, row) in fanned.0.drain(..) {
                match scan {
                    0 => out.emit(row),
                    i => match side.get(i as usize - 1) {
                        Some(tag) => out.side(tag, row),
                        None => panic!(
                            "a shared reader's scan {i} registered after the job started (a \
                             planner bug)"
                        ),
                    },
                }
            }
        }
        Ok(())
    }
}

fn append_column(row: Row, value: Scalar) -> Row {
    let mut values: Vec<Scalar> = Vec::with_capacity(row.len() + 1);
    values.extend(row.values.iter().cloned());
    values.push(value);
    Row {
        values: values.into(),
        time: row.time,
    }
}

/// The joined row: the left row's columns (NULLs for a missing left row of `nl` columns),
/// then the right's; the event time of the left row (else the right's).
/// A join's key: the key's values; or, for a row of an outer join whose key has a NULL (in
/// SQL a NULL key equals nothing), the whole row tagged with its side, which no row of the
/// other side has, so it stays unmatched.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum JoinKey<K> {
    Key(K),
    Unmatched { left: bool, row: Row },
}

/// Key values that may hold a SQL NULL.
trait NullableKey {
    fn has_null(&self) -> bool;
}

impl NullableKey for Scalar {
    fn has_null(&self) -> bool {
        self.is_null()
    }
}

impl NullableKey for (Scalar, Scalar) {
    fn has_null(&self) -> bool {
        self.0.is_null() || self.1.is_null()
    }
}

impl NullableKey for Row {
    fn has_null(&self) -> bool {
        self.values.iter().any(Scalar::is_null)
    }
}

/// What a join is, whatever its key type.
struct JoinSpec {
    kind: JoinKind,
    strategy: JoinStrategy,
    /// Columns of the left and right inputs.
    widths: (usize, usize),
    ttl: Option<Duration>,
    uid: String,
    /// The join's condition beyond the key equalities: tested on each pair before its row
    /// is built ([`PairTest`]; if it can fail, the caller's filter still runs on the rows
    /// that pass, and on those whose test failed with an error, which it then reports).
    residual: Option<Arc<Expr>>,
    /// For an inner regular join whose residual cannot fail: the columns of the joined row to
    /// emit (a projection fused in, [`PhysicalPlanner::join_output`]).
    output: Option<Arc<[usize]>>,
    /// For an interval join: the inputs whose late rows go on (to their late-data tables).
    late: Option<LateFrom>,
    /// For an inner regular join: when its rows can go ([`join::expiry_bounds`]).
    expiry: RowExpiry,
    /// For an inner regular join: the inputs whose join key contains a unique key
    /// ([`join::unique_sides`]).
    unique: UniqueSides,
    /// The key expressions over the left and the right rows (an inner join drops the rows
    /// with a NULL among them, read where they are, not made into a key).
    keys: (Arc<[Expr]>, Arc<[Expr]>),
}

/// The rows of an inner regular join drop as the watermark passes their bounds (see
/// [`join::RowBounds`]); a row behind the watermark of a side whose partners may have gone is
/// late. Without bounds, every row is kept.
#[derive(Clone, Default)]
struct RowExpiry {
    /// Over the left row: a left row matches right rows until the least of these (+ offset).
    left: Arc<[(Expr, i64)]>,
    /// Over the right row's own columns.
    right: Arc<[(Expr, i64)]>,
}

impl RowExpiry {
    fn new(bounds: join::RowBounds, left_width: usize) -> Self {
        let compiled = |e: &Expr, off: i64| (e.compiled(), off);
        RowExpiry {
            left: bounds
                .left
                .iter()
                .map(|(e, off)| compiled(e, *off))
                .collect(),
            right: bounds
                .right
                .iter()
                .map(|(e, off)| {
                    let own = crate::rules::map_columns(e, &|c| c - left_width);
                    compiled(&own, *off)
                })
                .collect(),
        }
    }

    /// The latest event time of the other side `row` can match under `bounds`: a NULL bound
    /// matches nothing; one that cannot be evaluated bounds nothing (the row is kept, and
    /// the condition after the join reports the error on the pairs it makes).
    fn until(bounds: &[(Expr, i64)], row: &Row) -> Option<Timestamp> {
        if bounds.is_empty() {
            return None;
        }
        let mut until = i64::MAX;
        for (e, offset) in bounds {
            // A column (the usual bound: `A.expires`) is read where it is.
            let value = match e {
                Expr::Column(c) => std::borrow::Cow::Borrowed(&row.values[*c]),
                e => match e.eval(&row.values) {
                    Ok(v) => std::borrow::Cow::Owned(v),
                    Err(_) => continue,
                },
            };
            match value.as_timestamp() {
                Some(t) => until = until.min(t.0.saturating_add(*offset)),
                None if value.is_null() => return Some(Timestamp::MIN),
                None => {}
            }
        }
        (until < i64::MAX).then_some(Timestamp(until))
    }
}

impl streamcore::join::JoinExpiry<Row, Row> for RowExpiry {
    fn left(&self, a: &Row) -> Option<Timestamp> {
        RowExpiry::until(&self.left, a)
    }
    fn right(&self, b: &Row) -> Option<Timestamp> {
        RowExpiry::until(&self.right, b)
    }
    fn left_late(&self, a: &Row, watermark: Timestamp) -> bool {
        !self.right.is_empty() && a.time < watermark
    }
    fn right_late(&self, b: &Row, watermark: Timestamp) -> bool {
        !self.left.is_empty() && b.time < watermark
    }
}

/// The join of `l` and `r` on `lkey = rkey`: appended rows (an inner join), or a changelog
/// (an outer join, whose unmatched rows are withdrawn once matched).
fn keyed_join<K, LK, RK>(
    l: Stream<Row>,
    r: Stream<Row>,
    lkey: LK,
    rkey: RK,
    spec: JoinSpec,
) -> (SqlStream, Option<Stream<Either<Row, Row>>>)
where
    K: NullableKey + streamcore::data::StateKey,
    LK: Fn(&Row) -> K + Clone + Send + 'static,
    RK: Fn(&Row) -> K + Clone + Send + 'static,
{
    let (nl, nr) = spec.widths;
    let inner =
        spec.kind == JoinKind::Inner || matches!(spec.strategy, JoinStrategy::Interval { .. });
    let (l, r) = if inner {
        // Rows whose key has a NULL join nothing (a key that fails to evaluate is NULL).
        let no_null = |keys: Arc<[Expr]>| {
            move |row: &Row| {
                keys.iter()
                    .all(|e| e.eval_cow(&row.values).is_ok_and(|v| !v.is_null()))
            }
        };
        let (lk, rk) = spec.keys.clone();
        (l.filter(no_null(lk)), r.filter(no_null(rk)))
    } else {
        (l, r)
    };
    fn tagged<K: NullableKey>(
        key: impl Fn(&Row) -> K + Clone,
        left: bool,
    ) -> impl Fn(&Row) -> JoinKey<K> + Clone {
        move |row: &Row| {
            let k = key(row);
            if k.has_null() {
                JoinKey::Unmatched {
                    left,
                    row: row.clone(),
                }
            } else {
                JoinKey::Key(k)
            }
        }
    }
    let mut keyed = l.connect(r).key_by(tagged(lkey, true), tagged(rkey, false));
    match spec.strategy {
        JoinStrategy::Interval { lower, upper } => {
            let tag = spec
                .late
                .map(|from| (OutputTag::<Either<Row, Row>>::new("late"), from));
            if let Some((tag, from)) = &tag {
                keyed = keyed.late_output_of(tag, *from);
            }
            let tag = tag.map(|(tag, _)| tag);
            let (joined, late) = match spec.residual {
                None => {
                    let joined = keyed
                        .interval_join(lower, upper, |a: &Row, b: &Row| {
                            concat(Some(a), 0, Some(b), 0)
                        })
                        .name("IntervalJoin")
                        .uid(&spec.uid);
                    let late = tag.map(|t| joined.side_output(&t));
                    (joined, late)
                }
                Some(residual) => {
                    let mut pair = PairTest::new(&residual, spec.widths, None);
                    let joined = keyed
                        .interval_join(lower, upper, move |a: &Row, b: &Row| pair.join(a, b))
                        .name("IntervalJoin")
                        .uid(&spec.uid);
                    let late = tag.map(|t| joined.side_output(&t));
                    let matched = joined
                        .flat_map(|row: Option<Row>| row)
                        .name("IntervalJoin(matched)");
                    (matched, late)
                }
            };
            (SqlStream::Append(joined), late)
        }
        JoinStrategy::Regular => {
            if let Some(ttl) = spec.ttl {
                keyed = keyed.state_ttl(ttl);
            }
            let join_type = match spec.kind {
                JoinKind::Inner => JoinType::Inner,
                JoinKind::Left => JoinType::Left,
                JoinKind::Right => JoinType::Right,
                JoinKind::Full => JoinType::Full,
            };
            if spec.kind == JoinKind::Inner {
                keyed = keyed.unique_keys(spec.unique.left, spec.unique.right);
                // An inner join only inserts; its rows go once the watermark passes their
                // bounds, if its condition has any (`spec.expiry`), and rows behind the
                // watermark then are late: to the late-data tables (`spec.late`), if any.
                let tag = spec
                    .late
                    .map(|from| (OutputTag::<Either<Row, Row>>::new("late"), from));
                if let Some((tag, from)) = &tag {
                    keyed = keyed.late_output_of(tag, *from);
                }
                fn late_of<T: streamcore::Data>(
                    joined: &Stream<T>,
                    tag: &Option<(OutputTag<Either<Row, Row>>, LateFrom)>,
                ) -> Option<Stream<Either<Row, Row>>> {
                    tag.as_ref().map(|(t, _)| joined.side_output(t))
                }
                if let Some(residual) = spec.residual {
                    // Only pairs passing the condition beyond the keys: tested before a row
                    // is built (the projection's columns only, if one is fused in).
                    let mut pair = PairTest::new(&residual, spec.widths, spec.output);
                    let joined = keyed
                        .inner_join_expiring(spec.expiry, move |a: &Row, b: &Row| pair.join(a, b))
                        .name("Join")
                        .uid(&spec.uid);
                    let late = late_of(&joined, &tag);
                    let matched = joined
                        .flat_map(|change: Change<Option<Row>>| change.into_row())
                        .name("Join(matched)");
                    return (SqlStream::Append(matched), late);
                }
                if let Some(columns) = spec.output {
                    // Only the projection's columns, picked from the pair.
                    let joined = keyed
                        .inner_join_expiring(spec.expiry, move |a: &Row, b: &Row| {
                            pick(a, b, &columns)
                        })
                        .name("Join")
                        .uid(&spec.uid);
                    let late = late_of(&joined, &tag);
                    return (SqlStream::Append(joined.map(Change::into_row)), late);
                }
                let joined = keyed
                    .inner_join_expiring(spec.expiry, move |a: &Row, b: &Row| {
                        concat(Some(a), nl, Some(b), nr)
                    })
                    .name("Join")
                    .uid(&spec.uid);
                let late = late_of(&joined, &tag);
                return (SqlStream::Append(joined.map(Change::into_row)), late);
            }
            // An outer join: unmatched rows padded with NULLs, withdrawn once matched.
            let changes = keyed
                .join(join_type, move |a: Option<&Row>, b: Option<&Row>| {
                    concat(a, nl, b, nr)
                })
                .name("Join")
                .uid(&spec.uid);
            (SqlStream::Updating(changes), None)
        }
    }
}

/// The joined row of `a` and `b`, `NULL`s (`nl` or `nr` of them) for a missing side; one
/// allocation (the values cloned straight into the row's array).
fn concat(a: Option<&Row>, nl: usize, b: Option<&Row>, nr: usize) -> Row {
    let nulls = |n| std::iter::repeat_n(Scalar::Null, n);
    let values: Values = match (a, b) {
        (Some(a), Some(b)) => a.values.iter().chain(b.values.iter()).cloned().collect(),
        (Some(a), None) => a.values.iter().cloned().chain(nulls(nr)).collect(),
        (None, Some(b)) => nulls(nl).chain(b.values.iter().cloned()).collect(),
        (None, None) => nulls(nl + nr).collect(),
    };
    Row {
        values,
        time: a.or(b).map_or(Timestamp::MIN, |r| r.time),
    }
}

/// The columns `columns` of the joined row of `a` and `b`, in one allocation; the event time
/// of `a`.
fn pick(a: &Row, b: &Row, columns: &[usize]) -> Row {
    let n = a.len();
    Row {
        values: columns
            .iter()
            .map(|&c| match c < n {
                true => a.values[c].clone(),
                false => b.values[c - n].clone(),
            })
            .collect(),
        time: a.time,
    }
}

/// A join's condition beyond its keys, tested on a pair before its row is built: its
/// conjuncts over one side's columns on that side's row as it is, comparisons of a column of
/// each side on the two values where they are, the others on a reused buffer holding clones
/// of just the columns they read. It is split so only when no conjunct can fail; else the
/// whole condition is one part, tested in the order written (on its side's row if it reads
/// one side, in place if it is one comparison across, else on the buffer). The row — the
/// joined row, or the columns of it a projection fused into the join reads (`output`) — is
/// built only if the pair may pass (or the test failed with an error, which the filter after the join then
/// reports with the row; a condition that cannot fail has no such filter, and only such a
/// condition is tested in a join with a fused projection).
#[derive(Clone)]
struct PairTest {
    /// Over the left row.
    left: Option<Arc<Expr>>,
    /// Over the right row (its own columns).
    right: Option<Arc<Expr>>,
    /// Comparisons of a left column with a right column (`left op right`, the right column
    /// numbered in the right row): read where they are, nothing cloned.
    across: Arc<[(CmpOp, usize, usize)]>,
    /// The rest, over the buffer of the joined row's columns `.1`, in that order.
    both: Option<(Arc<Expr>, Arc<[usize]>)>,
    buffer: Vec<Scalar>,
    widths: (usize, usize),
    output: Option<Arc<[usize]>>,
}

impl PairTest {
    /// The test of `residual` (over the joined row of inputs `widths` wide), building the
    /// columns `output` of the passing pairs' joined rows (all, if `None`).
    fn new(residual: &Expr, widths: (usize, usize), output: Option<Arc<[usize]>>) -> Self {
        let n = widths.0;
        // Tested apart and out of order only if no part can fail: a part that can is tested
        // as written, after the parts before it (an error it raises is reported, not skipped
        // because a later part was false).
        let conjuncts = match residual {
            Expr::And(v) if residual.cannot_fail() => v.clone(),
            e => vec![e.clone()],
        };
        let (mut left, mut right, mut both) = (Vec::new(), Vec::new(), Vec::new());
        let mut across = Vec::new();
        for c in conjuncts {
            let mut cols = Vec::new();
            c.columns(&mut cols);
            if let Expr::Cmp(op, a, b) = &c {
                match (a.as_ref(), b.as_ref()) {
                    (Expr::Column(a), Expr::Column(b)) if *a < n && *b >= n => {
                        across.push((*op, *a, *b - n));
                        continue;
                    }
                    (Expr::Column(a), Expr::Column(b)) if *b < n && *a >= n => {
                        across.push((op.flipped(), *b, *a - n));
                        continue;
                    }
                    _ => {}
                }
            }
            if cols.iter().all(|&x| x < n) {
                left.push(c);
            } else if cols.iter().all(|&x| x >= n) {
                right.push(crate::rules::map_columns(&c, &|x| x - n));
            } else {
                both.push(c);
            }
        }
        let all = |mut v: Vec<Expr>| match v.len() {
            0 => None,
            1 => Some(Arc::new(v.pop().expect("one").compiled())),
            _ => Some(Arc::new(Expr::And(v).compiled())),
        };
        let mut read = Vec::new();
        both.iter().for_each(|c| c.columns(&mut read));
        read.sort_unstable();
        read.dedup();
        let both = all(both
            .iter()
            .map(|c| crate::rules::map_columns(c, &|x| read.binary_search(&x).expect("read")))
            .collect());
        PairTest {
            left: all(left),
            right: all(right),
            across: across.into(),
            both: both.map(|e| (e, read.into())),
            buffer: Vec::new(),
            widths,
            output,
        }
    }

    /// Whether `a` and `b` may pass: no part of the test is false.
    #[inline]
    fn passes(&mut self, a: &Row, b: &Row) -> bool {
        let fails = |e: &Option<Arc<Expr>>, row: &[Scalar]| {
            e.as_ref().is_some_and(|e| matches!(e.test(row), Ok(false)))
        };
        if fails(&self.left, &a.values) || fails(&self.right, &b.values) {
            return false;
        }
        for &(op, l, r) in self.across.iter() {
            if compare_truth(op, &a.values[l], &b.values[r]) != Some(true) {
                return false;
            }
        }
        if let Some((e, read)) = &self.both {
            let n = self.widths.0;
            self.buffer.clear();
            self.buffer.extend(read.iter().map(|&c| match c < n {
                true => a.values[c].clone(),
                false => b.values[c - n].clone(),
            }));
            if matches!(e.test(&self.buffer), Ok(false)) {
                return false;
            }
        }
        true
    }

    /// The row of `a` and `b` (see [`PairTest`]), if the pair may pass the condition.
    fn join(&mut self, a: &Row, b: &Row) -> Option<Row> {
        if !self.passes(a, b) {
            return None;
        }
        Some(match &self.output {
            Some(columns) => pick(a, b, columns),
            None => {
                // Cloned into the buffer and moved into the row: an exact-size chain of the
                // two rows' values collected straight into the row took twice as long.
                self.buffer.clear();
                self.buffer
                    .extend(a.values.iter().chain(b.values.iter()).cloned());
                Row {
                    values: self.buffer.drain(..).collect(),
                    time: a.time,
                }
            }
        })
    }
}

/// The event kind a filter right above a `nexmark` scan selects (`event_type = k`).
fn nexmark_kind(input: &Plan, predicate: &Expr) -> Option<NexmarkKind> {
    let Node::Scan { table, columns } = &input.node else {
        return None;
    };
    if table.options.get("connector").map(String::as_str) != Some("nexmark") {
        return None;
    }
    let event_type = columns
        .iter()
        .position(|&c| table.columns[c].name == "event_type")?;
    let conjuncts: &[Expr] = match predicate {
        Expr::And(v) => v,
        p => std::slice::from_ref(p),
    };
    let k = conjuncts.iter().find_map(|p| match p {
        Expr::Cmp(CmpOp::Eq, l, r) => match (l.as_ref(), r.as_ref()) {
            (Expr::Column(c), Expr::Literal(Scalar::Int(k)))
            | (Expr::Literal(Scalar::Int(k)), Expr::Column(c))
                if *c == event_type =>
            {
                Some(*k)
            }
            _ => None,
        },
        _ => None,
    })?;
    Some(match k {
        0 => NexmarkKind::Person,
        1 => NexmarkKind::Auction,
        2 => NexmarkKind::Bid,
        _ => return None,
    })
}

/// The rows of `row` with its windows' `window_start`, `window_end`, `window_time` appended.
fn assign_windows(window: WindowKind, row: Row) -> Vec<Row> {
    let t = row.time.0;
    let with = |start: i64, end: i64| {
        let mut values: Vec<Scalar> = row.values.iter().cloned().collect();
        values.push(Scalar::TimestampMs(start));
        values.push(Scalar::TimestampMs(end));
        values.push(Scalar::TimestampMs(end - 1));
        Row {
            values: values.into(),
            time: Timestamp(end - 1),
        }
    };
    match window {
        WindowKind::Tumble { size } => {
            let start = t - t.rem_euclid(size);
            vec![with(start, start + size)]
        }
        WindowKind::Hop { slide, size } => {
            let last = t - t.rem_euclid(slide);
            let mut out = Vec::new();
            let mut start = last;
            while start > t - size {
                out.push(with(start, start + size));
                start -= slide;
            }
            out.reverse();
            out
        }
        WindowKind::Cumulate { step, size } => {
            let start = t - t.rem_euclid(size);
            let first_end = t - t.rem_euclid(step) + step;
            let mut out = Vec::new();
            let mut end = first_end;
            while end <= start + size {
                out.push(with(start, end));
                end += step;
            }
            out
        }
        WindowKind::Session { .. } => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_a_row() {
        let row = Row::of([Scalar::Int(1)]);
        let row = Row {
            time: Timestamp(12_500),
            ..row
        };
        let hop = assign_windows(
            WindowKind::Hop {
                slide: 2_000,
                size: 10_000,
            },
            row.clone(),
        );
        let starts: Vec<String> = hop.iter().map(|r| r.get(1).to_string()).collect();
        assert_eq!(starts.len(), 5);
        assert_eq!(hop[0].get(1), &Scalar::TimestampMs(4_000));
        assert_eq!(hop[4].get(1), &Scalar::TimestampMs(12_000));
        let cum = assign_windows(
            WindowKind::Cumulate {
                step: 5_000,
                size: 20_000,
            },
            row,
        );
        let ends: Vec<&Scalar> = cum.iter().map(|r| r.get(2)).collect();
        assert_eq!(
            ends,
            vec![&Scalar::TimestampMs(15_000), &Scalar::TimestampMs(20_000)]
        );
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
