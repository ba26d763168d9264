//! The logical plan: what a query computes, as a tree of [`Plan`] nodes whose output fields
//! and changelog mode are known — append-only, or updating (rows withdrawn and replaced) — so
//! that a sink that cannot take updates is refused before anything runs.

use crate::catalog::{PlanField, TableDef};
use crate::expr::Expr;
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write};
use std::sync::Arc;
use streamcore::row::{DataType, Scalar};

/// A node of the plan, with its output.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What the node does.
    pub node: Node,
    /// Its output columns.
    pub fields: Vec<PlanField>,
    /// Whether its output is updating (a changelog) rather than append-only.
    pub updating: bool,
    /// The output column holding the rowtime (event time), if one survives.
    pub rowtime: Option<usize>,
}

/// A window of a window table function or a legacy `GROUP BY TUMBLE(…)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// `TUMBLE(…, size)`.
    Tumble {
        /// Size in ms.
        size: i64,
    },
    /// `HOP(…, slide, size)`.
    Hop {
        /// Slide in ms.
        slide: i64,
        /// Size in ms.
        size: i64,
    },
    /// `SESSION(…, gap)`.
    Session {
        /// Gap in ms.
        gap: i64,
    },
    /// `CUMULATE(…, step, size)`.
    Cumulate {
        /// Step in ms.
        step: i64,
        /// Maximum size in ms.
        size: i64,
    },
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowKind::Tumble { size } => write!(f, "TUMBLE(size={size}ms)"),
            WindowKind::Hop { slide, size } => write!(f, "HOP(slide={slide}ms, size={size}ms)"),
            WindowKind::Session { gap } => write!(f, "SESSION(gap={gap}ms)"),
            WindowKind::Cumulate { step, size } => {
                write!(f, "CUMULATE(step={step}ms, size={size}ms)")
            }
        }
    }
}

/// The late-data table of a window aggregate, an OVER aggregation or a temporal sort: rows
/// that arrive behind the watermark (after all their windows closed) are written there
/// instead of being dropped; `columns` of the operator's input row make the late row (the
/// rows of the `FROM`, or of the sorted result).
#[derive(Clone, Debug)]
pub struct LateData {
    /// The table late rows are written to.
    pub table: Arc<TableDef>,
    /// The input columns that make a late row.
    pub columns: std::ops::Range<usize>,
}

/// The late-data tables of a join's inputs (`'late-data.table'` of the table each input
/// scans, through filters and projections): an interval join writes the rows of an input that
/// arrive behind the watermark to that input's table — the input's rows as the join receives
/// them, so an input with a late table is not pruned to the columns read above the join. A
/// regular join has late rows only if its rows expire: [`crate::join::late_tables`].
#[derive(Clone, Debug, Default)]
pub struct JoinLate {
    /// The left input's late table.
    pub left: Option<Arc<TableDef>>,
    /// The right input's late table.
    pub right: Option<Arc<TableDef>>,
    /// Why the left input's `'late-data.table'` names no table it can use (a view, an unknown
    /// name): an error for a join whose left rows can be late (an interval join, a regular
    /// join whose right rows expire), nothing otherwise.
    pub invalid_left: Option<crate::error::PlanError>,
    /// The same for the right input.
    pub invalid_right: Option<crate::error::PlanError>,
}

impl JoinLate {
    /// The first input's error ([`JoinLate::invalid_left`], then the right one), if any.
    pub fn invalid(&self) -> Option<&crate::error::PlanError> {
        self.invalid_left.as_ref().or(self.invalid_right.as_ref())
    }

    /// `, lateRowsTo=…` for `EXPLAIN` (nothing without a late table).
    fn explain(&self) -> String {
        match (&self.left, &self.right) {
            (None, None) => String::new(),
            (l, r) => format!(
                ", lateRowsTo=[{}, {}]",
                l.as_ref().map_or("-", |t| t.name.as_str()),
                r.as_ref().map_or("-", |t| t.name.as_str())
            ),
        }
    }
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `COUNT(*)` / `COUNT(x)` (non-null values).
    Count,
    /// `SUM(x)`.
    Sum,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `AVG(x)`.
    Avg,
    /// `VAR_POP(x)`: the population variance.
    VarPop,
    /// `VAR_SAMP(x)` / `VARIANCE(x)`: the sample variance (NULL for one row).
    VarSamp,
    /// `STDDEV_POP(x)`: the population standard deviation.
    StddevPop,
    /// `STDDEV_SAMP(x)` / `STDDEV(x)`: the sample standard deviation (NULL for one row).
    StddevSamp,
    /// `FIRST_VALUE(x)`: the first non-NULL value, in arrival order.
    FirstValue,
    /// `LAST_VALUE(x)`: the last non-NULL value, in arrival order.
    LastValue,
    /// `LISTAGG(x[, separator])`: the non-NULL strings in arrival order, joined by the
    /// separator (`,` by default).
    ListAgg,
}

impl AggFunc {
    /// Whether the result depends on the order the rows arrive in (kept as the list of the
    /// values under retraction).
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            AggFunc::FirstValue | AggFunc::LastValue | AggFunc::ListAgg
        )
    }

    /// One of the variance family (kept as a count, a sum and a sum of squares).
    pub fn is_variance(self) -> bool {
        matches!(
            self,
            AggFunc::VarPop | AggFunc::VarSamp | AggFunc::StddevPop | AggFunc::StddevSamp
        )
    }
}

/// One aggregate call over the columns of the aggregate's (pre-projected) input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// The argument column (`None` for `COUNT(*)`).
    pub arg: Option<usize>,
    /// `DISTINCT` was given.
    pub distinct: bool,
    /// The boolean column of `FILTER (WHERE …)`, if any.
    pub filter: Option<usize>,
    /// The result type.
    pub ty: DataType,
    /// `LISTAGG`'s separator (`None`: `,`).
    pub separator: Option<String>,
}

/// The kind of a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinKind {
    /// `[INNER] JOIN`.
    Inner,
    /// `LEFT [OUTER] JOIN`.
    Left,
    /// `RIGHT [OUTER] JOIN`.
    Right,
    /// `FULL [OUTER] JOIN`.
    Full,
}

/// How a join runs (see [`crate::join`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinStrategy {
    /// Every row of both sides kept; pairs by key.
    Regular,
    /// Pairs by key with `left.time - right.time` in `[lower, upper]` ms; state until the
    /// watermark passes.
    Interval {
        /// Lower bound, ms.
        lower: i64,
        /// Upper bound, ms.
        upper: i64,
    },
}

/// What a plan node does.
#[derive(Clone, Debug)]
pub enum Node {
    /// Reads a table.
    Scan {
        /// The table.
        table: Arc<TableDef>,
        /// The table's columns it emits, in order (all of them, until the rewrites prune
        /// the ones nothing reads).
        columns: Vec<usize>,
    },
    /// Literal rows (`VALUES`).
    Values {
        /// The rows.
        rows: Vec<Vec<Scalar>>,
    },
    /// Keeps the rows the predicate accepts.
    Filter {
        /// The input.
        input: Box<Plan>,
        /// The predicate over the input's columns.
        predicate: Expr,
    },
    /// Computes the output columns.
    Project {
        /// The input.
        input: Box<Plan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
    },
    /// A window table function not followed by a window aggregate: each row gets its
    /// window's `window_start`, `window_end` and `window_time` (tumbling windows only).
    WindowTvf {
        /// The input.
        input: Box<Plan>,
        /// The window.
        window: WindowKind,
        /// Windows of processing time (`DESCRIPTOR` of a `PROCTIME()` column): a row's
        /// window is the one of the wall clock when it reaches the operator.
        proctime: bool,
    },
    /// A window aggregate: output `keys…, aggregates…, window_start, window_end,
    /// window_time`, once per window when the watermark passes its end (append-only).
    WindowAggregate {
        /// The input: group keys first, then the aggregates' arguments.
        input: Box<Plan>,
        /// The window.
        window: WindowKind,
        /// The number of leading key columns.
        keys: usize,
        /// The aggregate calls.
        aggs: Vec<AggCall>,
        /// The window is the one of the input's rows, grouped by its `window_start` and
        /// `window_end` among the keys (an aggregate over a window aggregate's result).
        upstream: bool,
        /// Windows of processing time (over a `PROCTIME()` column): rows fall in the windows
        /// of the wall clock when they reach the operator, which fire as the clock passes
        /// their end (all at the end of a bounded input). The result has no rowtime.
        proctime: bool,
        /// Where rows arriving after their windows closed go (the scanned table's
        /// `'late-data.table'` option), if anywhere.
        late: Option<LateData>,
        /// How long (ms) a fired window still takes late rows, each re-firing it as an update
        /// of its result (the scanned table's `'allowed-lateness'`, or `SET
        /// 'table.exec.emit.allow-lateness'`); then the result is updating and has no rowtime.
        lateness: Option<i64>,
    },
    /// A group aggregate: output `keys…, aggregates…`, updated as rows arrive (updating).
    Aggregate {
        /// The input: group keys first, then the aggregates' arguments.
        input: Box<Plan>,
        /// The number of leading key columns.
        keys: usize,
        /// The aggregate calls.
        aggs: Vec<AggCall>,
    },
    /// A join: output the left columns, then the right columns.
    Join {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// Inner or outer.
        kind: JoinKind,
        /// The condition over the joined row.
        on: Expr,
        /// How it runs.
        strategy: JoinStrategy,
        /// Where an interval join's late rows of each input go, if anywhere.
        late: JoinLate,
    },
    /// `ORDER BY rowtime [, …]` without `LIMIT` over an append-only input (Flink's temporal
    /// sort): rows emitted in event-time order once the watermark passes their time, rows of
    /// one time by the other keys. Output: the input's columns. Append-only.
    TemporalSort {
        /// The input.
        input: Box<Plan>,
        /// The order after the time attribute: expressions over the input, `true` for
        /// descending.
        order: Vec<(Expr, bool)>,
        /// Where late rows go (`'late-data.table'` of the scanned table), if anywhere.
        late: Option<LateData>,
    },
    /// `CROSS JOIN UNNEST(e)` (or `LEFT JOIN UNNEST(e) ON TRUE`, `outer`): each input row once
    /// per element of the array `e` (or entry of the map `e`). Output: the input's columns,
    /// then the element (a map's key and value), then its 1-based position `WITH ORDINALITY`.
    /// An empty or NULL collection gives no row, or one with NULLs when `outer`. Keeps the
    /// input's changelog mode and rowtime.
    Unnest {
        /// The input.
        input: Box<Plan>,
        /// The array or map, over the input's columns.
        expr: Expr,
        /// `LEFT JOIN … ON TRUE`: a row whose collection is empty or NULL stays, with NULLs.
        outer: bool,
        /// `WITH ORDINALITY`: the element's position as a last column.
        ordinality: bool,
    },
    /// `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` with a filter `rownum <= limit` on it:
    /// the first `limit` rows per partition (Top-N; deduplication when `limit` is 1).
    /// Output: the input's columns, then the row number. Updating.
    Rank {
        /// The input.
        input: Box<Plan>,
        /// The partition keys over the input.
        partition: Vec<Expr>,
        /// The order: expressions over the input, and `true` for descending.
        order: Vec<(Expr, bool)>,
        /// How many rows per partition (from the filter on the row number).
        limit: Option<usize>,
        /// Whether the row number is read downstream (a ranked Top-N, updated when ranks
        /// shift) or not (only the set of rows).
        number_selected: bool,
    },
    /// A lookup join (`JOIN t FOR SYSTEM_TIME AS OF <processing time>`): each input row
    /// looks up the rows of a bounded table, loaded once when the job starts. Output: the
    /// input's columns, then the table's.
    LookupJoin {
        /// The probing input.
        input: Box<Plan>,
        /// The looked-up table.
        table: Arc<TableDef>,
        /// Equalities: an expression over the input row, and a table column.
        keys: Vec<(Expr, usize)>,
        /// Other conditions over the joined row.
        residual: Option<Expr>,
        /// `true` for `LEFT JOIN` (input rows without a match kept, padded with NULLs).
        left_outer: bool,
    },
    /// OVER aggregations: each row with the aggregates over its frame (see [`crate::over`]).
    /// Output: the input's columns, then one per aggregate. Append-only.
    Over {
        /// The input: its columns, then the aggregates' arguments.
        input: Box<Plan>,
        /// The partition keys over the input.
        partition: Vec<Expr>,
        /// The frame.
        frame: crate::over::Frame,
        /// The aggregate calls.
        aggs: Vec<AggCall>,
        /// Where late rows go (`'late-data.table'` of the scanned table), if anywhere.
        late: Option<LateData>,
    },
    /// OVER aggregations over an updating input (`ROWS` frames, any order): the table of
    /// every current input row with the aggregates over its frame, updated as rows are added
    /// and withdrawn (see [`crate::over_updating`]). Output: the input's columns, then one per
    /// aggregate. Updating.
    UpdatingOver {
        /// The input: its columns, then the aggregates' arguments.
        input: Box<Plan>,
        /// The partition keys over the input.
        partition: Vec<Expr>,
        /// The order: expressions over the input, and `true` for descending (ties: the
        /// whole row decides, so that frames are deterministic).
        order: Vec<(Expr, bool)>,
        /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW` (`None`: `UNBOUNDED PRECEDING`).
        rows: Option<u64>,
        /// The aggregate calls.
        aggs: Vec<AggCall>,
    },
    /// `MATCH_RECOGNIZE` (see [`crate::match_recognize`]): one row per match, the partition
    /// columns then the measures. Append-only.
    MatchRecognize {
        /// The input.
        input: Box<Plan>,
        /// The partition, pattern, conditions and measures.
        spec: Arc<crate::match_recognize::MatchRecognize>,
    },
    /// The rows of each window holding its extreme: a join of a windowed stream with its own
    /// per-window `MAX`/`MIN`, rewritten ([`crate::extreme`]). Output: the input's columns,
    /// then for tumbling windows the window end. Append-only.
    ExtremeRows {
        /// The input.
        input: Box<Plan>,
        /// The input columns that key the windows (the group keys of the aggregate).
        keys: Vec<usize>,
        /// The column compared with the extreme.
        value: usize,
        /// `MAX` (else `MIN`).
        max: bool,
        /// How a row's window is found.
        window: crate::extreme::ExtremeWindow,
    },
    /// An event-time temporal join (`JOIN t FOR SYSTEM_TIME AS OF probe.rowtime`): each probe
    /// row joins the version of a versioned table (a `PRIMARY KEY` and a `WATERMARK`; each
    /// change, or each row of an append-only table, is its key's version from its rowtime on)
    /// current at the probe's rowtime, once the watermark passes the probe. Output: the
    /// probe's columns, then the table's. Append-only.
    TemporalJoin {
        /// The probe side (append-only, with a rowtime).
        left: Box<Plan>,
        /// The versioned table's scan.
        right: Box<Plan>,
        /// Equalities on the table's primary key: an expression over the probe row, and the
        /// table column.
        keys: Vec<(Expr, usize)>,
        /// Other conditions over the joined row.
        residual: Option<Expr>,
        /// `true` for `LEFT JOIN` (probes without a matching version kept, padded with NULLs).
        left_outer: bool,
        /// Where probes that arrive behind the watermark go (`'late-data.table'` of the probe
        /// side's table), if anywhere: the probe rows.
        late: Option<Arc<TableDef>>,
    },
    /// `UNION ALL` of inputs with the same columns.
    Union {
        /// The inputs.
        inputs: Vec<Plan>,
    },
}

impl Plan {
    /// The node's inputs.
    pub fn inputs(&self) -> Vec<&Plan> {
        match &self.node {
            Node::Scan { .. } | Node::Values { .. } => vec![],
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Rank { input, .. }
            | Node::TemporalSort { input, .. }
            | Node::Unnest { input, .. }
            | Node::LookupJoin { input, .. }
            | Node::Over { input, .. }
            | Node::UpdatingOver { input, .. }
            | Node::MatchRecognize { input, .. }
            | Node::ExtremeRows { input, .. } => vec![input],
            Node::Union { inputs } => inputs.iter().collect(),
            Node::Join { left, right, .. } | Node::TemporalJoin { left, right, .. } => {
                vec![left, right]
            }
        }
    }

    /// The node's name in `EXPLAIN`.
    pub fn kind(&self) -> &'static str {
        match &self.node {
            Node::Scan { .. } => "TableSourceScan",
            Node::Values { .. } => "Values",
            Node::Filter { .. } => "Calc(filter)",
            Node::Project { .. } => "Calc(project)",
            Node::WindowTvf { .. } => "WindowTableFunction",
            Node::WindowAggregate { .. } => "WindowAggregate",
            Node::Aggregate { .. } => "GroupAggregate",
            Node::Union { .. } => "Union",
            Node::Rank { .. } => "Rank",
            Node::TemporalSort { .. } => "TemporalSort",
            Node::Unnest { .. } => "Correlate(UNNEST)",
            Node::LookupJoin { .. } => "LookupJoin",
            Node::TemporalJoin { .. } => "TemporalJoin",
            Node::Over { .. } => "OverAggregate",
            Node::UpdatingOver { .. } => "OverAggregate(updating)",
            Node::MatchRecognize { .. } => "Match",
            Node::ExtremeRows { .. } => "WindowExtremeRows",
            Node::Join {
                strategy: JoinStrategy::Regular,
                ..
            } => "Join",
            Node::Join { .. } => "IntervalJoin",
        }
    }

    /// A canonical one-line text of this node and everything upstream of it: the input of
    /// the stable operator ids (changes when what feeds the operator changes).
    pub fn digest(&self) -> String {
        let mut s = String::new();
        self.write_digest(&mut s);
        s
    }

    fn write_digest(&self, s: &mut String) {
        let _ = write!(s, "{}[{}](", self.kind(), self.detail());
        for (i, input) in self.inputs().into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            input.write_digest(s);
        }
        s.push(')');
    }

    /// What `EXPLAIN` says about the node itself.
    pub fn detail(&self) -> String {
        let names = |fields: &[PlanField]| {
            fields
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.node {
            Node::Scan { table, .. } => format!(
                "table={}, connector={}, fields=[{}]",
                table.name,
                table
                    .options
                    .get("connector")
                    .map(String::as_str)
                    .unwrap_or("?"),
                names(&self.fields)
            ),
            Node::Values { rows } => format!("rows={}", rows.len()),
            Node::Filter { predicate, .. } => format!("where={predicate}"),
            Node::Project { exprs, .. } => exprs
                .iter()
                .zip(&self.fields)
                .map(|(e, f)| match e {
                    Expr::Column(_) => format!("{e} AS {}", f.name),
                    _ => format!("{e} AS {}", f.name),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Node::WindowTvf {
                window, proctime, ..
            } => format!(
                "window={window}{}",
                if *proctime { ", time=proctime" } else { "" }
            ),
            Node::WindowAggregate {
                window,
                keys,
                aggs,
                proctime,
                late,
                lateness,
                ..
            } => format!(
                "window={window}{}{}{}, groupBy=[{}], select=[{}]",
                if *proctime { ", time=proctime" } else { "" },
                lateness
                    .map(|l| format!(", allowedLateness={l}ms"))
                    .unwrap_or_default(),
                late.as_ref()
                    .map(|l| format!(", lateRowsTo={}", l.table.name))
                    .unwrap_or_default(),
                names(&self.fields[..*keys]),
                agg_list(aggs)
            ),
            Node::Aggregate { keys, aggs, .. } => format!(
                "groupBy=[{}], select=[{}]",
                names(&self.fields[..*keys]),
                agg_list(aggs)
            ),
            Node::Union { inputs } => format!("inputs={}", inputs.len()),
            Node::MatchRecognize { spec, .. } => spec.to_string(),
            Node::ExtremeRows {
                keys,
                value,
                max,
                window,
                ..
            } => {
                let keys = keys.iter().map(|c| format!("${c}")).collect::<Vec<_>>();
                let window = match window {
                    crate::extreme::ExtremeWindow::Upstream => "upstream".to_string(),
                    crate::extreme::ExtremeWindow::Tumble { size, boundary } => format!(
                        "TUMBLE(size={size}ms), matchesEnd={boundary}, appends=[window_end]"
                    ),
                };
                format!(
                    "partitionBy=[{}], keep={}(${value}) with ties, window={window}",
                    keys.join(", "),
                    if *max { "MAX" } else { "MIN" }
                )
            }
            Node::Over {
                partition,
                frame,
                aggs,
                late,
                ..
            } => format!(
                "partitionBy=[{}], orderBy=[rowtime], frame={frame:?}, select=[{}]{}",
                expr_list(partition),
                agg_list(aggs),
                late.as_ref()
                    .map(|l| format!(", lateRowsTo={}", l.table.name))
                    .unwrap_or_default()
            ),
            Node::UpdatingOver {
                partition,
                order,
                rows,
                aggs,
                ..
            } => format!(
                "partitionBy=[{}], orderBy=[{}], frame=ROWS {} PRECEDING, select=[{}]",
                expr_list(partition),
                order_list(order),
                rows.map_or("UNBOUNDED".to_string(), |n| n.to_string()),
                agg_list(aggs)
            ),
            Node::TemporalJoin {
                right,
                keys,
                residual,
                left_outer,
                late,
                ..
            } => format!(
                "joinType={}, asOf=rowtime, on=[{}]{}{}",
                if *left_outer { "Left" } else { "Inner" },
                keys.iter()
                    .map(|(e, c)| format!("{e} = {}", right.fields[*c].name))
                    .collect::<Vec<_>>()
                    .join(", "),
                residual
                    .as_ref()
                    .map(|r| format!(", where={r}"))
                    .unwrap_or_default(),
                late.as_ref()
                    .map(|t| format!(", lateRowsTo={}", t.name))
                    .unwrap_or_default()
            ),
            Node::LookupJoin {
                table,
                keys,
                residual,
                left_outer,
                ..
            } => format!(
                "table={}, joinType={}, on=[{}]{}",
                table.name,
                if *left_outer { "Left" } else { "Inner" },
                keys.iter()
                    .map(|(e, c)| format!("{e} = {}", table.columns[*c].name))
                    .collect::<Vec<_>>()
                    .join(", "),
                residual
                    .as_ref()
                    .map(|r| format!(", where={r}"))
                    .unwrap_or_default()
            ),
            Node::Unnest {
                expr,
                outer,
                ordinality,
                ..
            } => format!(
                "unnest={expr}{}{}",
                if *outer { ", outer" } else { "" },
                if *ordinality { ", withOrdinality" } else { "" }
            ),
            Node::TemporalSort { input, order, late } => {
                let time = input.rowtime.map_or("?".to_string(), |c| format!("${c}"));
                let then = if order.is_empty() {
                    String::new()
                } else {
                    format!(", {}", order_list(order))
                };
                let late = late
                    .as_ref()
                    .map(|l| format!(", lateRowsTo={}", l.table.name))
                    .unwrap_or_default();
                format!("orderBy=[{time} ASC{then}]{late}")
            }
            Node::Rank {
                partition,
                order,
                limit,
                number_selected,
                ..
            } => format!(
                "partitionBy=[{}], orderBy=[{}], rankRange=[1, {}], rowNumber={}",
                expr_list(partition),
                order_list(order),
                limit.map_or("?".to_string(), |l| l.to_string()),
                if *number_selected {
                    "selected"
                } else {
                    "dropped"
                }
            ),
            Node::Join {
                left,
                right,
                kind,
                on,
                strategy,
                late,
            } => match strategy {
                JoinStrategy::Regular => {
                    let bounds = crate::join::expiry_bounds(*kind, strategy, on, left, right);
                    let unique = crate::join::explain_unique(*kind, strategy, on, left, right);
                    if bounds.is_empty() {
                        format!("joinType={kind:?}, where={on}{unique}")
                    } else {
                        let late = crate::join::late_tables(*kind, strategy, on, left, right, late);
                        format!(
                            "joinType={kind:?}, where={on}, stateExpiry=[{}]{}{unique}",
                            bounds.explain(),
                            late.explain()
                        )
                    }
                }
                JoinStrategy::Interval { lower, upper } => format!(
                    "joinType={kind:?}, where={on}, leftTime-rightTime in [{lower}, {upper}] ms{}",
                    late.explain()
                ),
            },
        }
    }

    /// What makes two sub-plans one: their whole description (every node, expression, type
    /// and table option). The physical planner builds a sub-plan met a second time once and
    /// fans its stream out, as Flink reuses sub-plans; `EXPLAIN` marks such sub-plans.
    pub fn reuse_key(&self) -> String {
        format!("{self:?}")
    }

    /// The plan as an indented tree, with each node's changelog mode (`[I]` append-only,
    /// `[I,UB,UA,D]` updating), as `EXPLAIN CHANGELOG_MODE` prints it. A sub-plan that occurs
    /// twice is printed once with `reuse_id=[n]`, and `Reused(reference_id=[n])` where it
    /// occurs again, as Flink prints its reused sub-plans: it runs once, its rows go to both.
    ///
    /// ```text
    /// IntervalJoin(…), changelogMode=[I]
    ///   WindowAggregate(…), changelogMode=[I], reuse_id=[1]
    ///     …
    ///   Calc(project)(…), changelogMode=[I]
    ///     Reused(reference_id=[1])
    /// ```
    pub fn explain(&self) -> String {
        self.explain_for_sink(true)
    }

    /// [`Plan::explain`] of a plan whose sink needs `-U` or not: when it does not, the
    /// updating operator under projections ([`Plan::update_source`]) and the projections over
    /// it show `changelogMode=[I,UA,D]`, as the physical planner builds them.
    pub fn explain_for_sink(&self, needs_update_before: bool) -> String {
        let mut seen = HashSet::new();
        let mut reused = HashSet::new();
        self.find_reused(&mut seen, &mut reused);
        let mut out = String::new();
        let upsert = !needs_update_before && self.update_source().is_some();
        self.explain_into(&mut out, 0, &reused, &mut HashMap::new(), upsert);
        out
    }

    /// The operator whose updates reach this plan's output through projections only, when it
    /// can emit `+U` without the `-U` before it (for a sink that needs none): a group
    /// aggregate (each `+U` replaces its group's row), a deduplication (its key's row), a
    /// Top-N that selects its row number (its key and rank's row). A Top-N without row
    /// numbers emits no `-U` anyway (`+I` and `-D`); a filter in between needs the `-U` (a
    /// row that stops passing must be withdrawn), and so does a projection that can fail (a
    /// row whose new value fails goes to the dead letters, and the old one must still be
    /// withdrawn), as do other updating operators.
    pub fn update_source(&self) -> Option<&Plan> {
        match &self.node {
            Node::Project { input, .. } if self.passes_updates_on() => input.update_source(),
            Node::Aggregate { .. } => Some(self),
            Node::Rank {
                number_selected, ..
            } if *number_selected || self.deduplication().is_some() => Some(self),
            _ => None,
        }
    }

    /// The output columns that key the updates of [`Plan::update_source`] — each `+U` replaces
    /// the last row with the same values there: a group aggregate's group keys, a
    /// deduplication's partition columns, a ranked Top-N's partition columns and row number —
    /// when projections pass them on as they are (and the partition is of plain columns).
    pub fn upsert_key(&self) -> Option<Vec<usize>> {
        match &self.node {
            Node::Project { input, exprs } => input
                .upsert_key()?
                .into_iter()
                .map(|k| {
                    exprs
                        .iter()
                        .position(|e| matches!(e, Expr::Column(c) if *c == k))
                })
                .collect(),
            Node::Aggregate { keys, .. } => Some((0..*keys).collect()),
            Node::Rank {
                input,
                partition,
                number_selected,
                ..
            } => {
                let mut key: Vec<usize> = partition
                    .iter()
                    .map(|e| match e {
                        Expr::Column(c) => Some(*c),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                match (*number_selected, self.deduplication()) {
                    // The row number follows the input's columns.
                    (true, _) => key.push(input.fields.len()),
                    (false, Some(_)) => {}
                    (false, None) => return None,
                }
                Some(key)
            }
            _ => None,
        }
    }

    /// Whether this node hands its input's updates on as they are, each to be replaced by the
    /// next of its key: a projection that cannot fail (one that can drops the rows whose new
    /// value fails, and the old ones must then still be withdrawn).
    fn passes_updates_on(&self) -> bool {
        matches!(&self.node, Node::Project { exprs, .. } if exprs.iter().all(Expr::cannot_fail))
    }

    /// A Top-1 ordered by its input's time attribute alone, which is a deduplication: keeping
    /// the last row (`Some(true)`, descending) or the first (`Some(false)`).
    pub fn deduplication(&self) -> Option<bool> {
        match &self.node {
            Node::Rank {
                input,
                order,
                limit: Some(1),
                ..
            } => match order.as_slice() {
                [(Expr::Column(c), desc)] if Some(*c) == input.rowtime => Some(*desc),
                _ => None,
            },
            _ => None,
        }
    }

    /// Collects into `reused` the sub-plans met again, in the order the physical planner walks
    /// the plan; what lies under a reused sub-plan is not walked again (it is not built again).
    fn find_reused(&self, seen: &mut HashSet<String>, reused: &mut HashSet<String>) {
        let key = self.reuse_key();
        if !seen.insert(key.clone()) {
            reused.insert(key);
            return;
        }
        for input in self.inputs() {
            input.find_reused(seen, reused);
        }
    }

    fn explain_into(
        &self,
        out: &mut String,
        depth: usize,
        reused: &HashSet<String>,
        reuse_ids: &mut HashMap<String, usize>,
        upsert: bool,
    ) {
        let indent = "  ".repeat(depth);
        let mut reuse_id = String::new();
        if !reused.is_empty() {
            let key = self.reuse_key();
            if let Some(id) = reuse_ids.get(&key) {
                let _ = writeln!(out, "{indent}Reused(reference_id=[{id}])");
                return;
            }
            if reused.contains(&key) {
                let id = reuse_ids.len() + 1;
                reuse_ids.insert(key, id);
                reuse_id = format!(", reuse_id=[{id}]");
            }
        }
        let _ = writeln!(
            out,
            "{indent}{}({}), changelogMode=[{}]{reuse_id}",
            self.kind(),
            self.detail(),
            match (self.updating, upsert) {
                (false, _) => "I",
                (true, false) => "I,UB,UA,D",
                (true, true) => "I,UA,D",
            }
        );
        // Only what `Plan::update_source` walks through passes on its consumer's "no `-U`".
        let upsert = upsert && self.passes_updates_on();
        for input in self.inputs() {
            input.explain_into(out, depth + 1, reused, reuse_ids, upsert);
        }
    }
}

/// Expressions as `a, b` (EXPLAIN's partition lists).
fn expr_list(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sort keys as `a DESC, b ASC` (EXPLAIN's orderBy lists).
fn order_list(order: &[(Expr, bool)]) -> String {
    order
        .iter()
        .map(|(e, desc)| format!("{e} {}", if *desc { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn agg_list(aggs: &[AggCall]) -> String {
    aggs.iter()
        .map(|a| {
            let f = format!("{:?}", a.func).to_uppercase();
            let arg = match a.arg {
                Some(c) => format!("{}${c}", if a.distinct { "DISTINCT " } else { "" }),
                None => "*".into(),
            };
            match a.filter {
                Some(c) => format!("{f}({arg}) FILTER ${c}"),
                None => format!("{f}({arg})"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
