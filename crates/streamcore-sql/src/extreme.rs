//! A join of a windowed stream with its own per-window `MAX` (or `MIN`), computed without
//! the join: the rows of each window that hold the window's extreme.
//!
//! Nexmark q5 ("the auctions with the most bids of each window") and q7 ("the highest bids of
//! each window") are written this way, and so is any "rows that reach their group's maximum"
//! query in SQL without window functions:
//!
//! ```sql
//! -- q5 (form A): grouped by the window columns of a window aggregate's result
//! SELECT a.* FROM counts a JOIN (
//!   SELECT MAX(num) AS maxn, starttime, endtime FROM counts GROUP BY starttime, endtime) m
//! ON a.starttime = m.starttime AND a.endtime = m.endtime AND a.num >= m.maxn
//! -- q7 (form B): a tumbling window of the stream itself, matched by time
//! SELECT b.* FROM bid b JOIN (
//!   SELECT MAX(price) AS maxprice, window_end AS t
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end) m
//! ON b.price = m.maxprice AND b.dateTime BETWEEN m.t - INTERVAL '10' SECOND AND m.t
//! ```
//!
//! Run as written, the join keeps every row of the stream in its state until the window's
//! extreme comes round to meet it, keyed by the compared value (all bids of ten seconds for
//! q7). [`join_with_own_extreme`] recognizes the pattern — both sides read the same sub-plan,
//! the right one through one `MAX`/`MIN` window aggregate, the condition equates every group
//! key, compares the value with the extreme (`=`, or `>=` for `MAX` / `<=` for `MIN`: no row
//! passes the extreme) and, in form B, bounds the left row's time by its window — and plans
//! [`ExtremeRows`] instead: per window it keeps only the rows equal to the best value seen
//! so far, and emits them when the window closes. This is the "aggregate subquery to window
//! function" rewrite of batch optimizers (Bellamkonda et al., *Enhanced Subquery
//! Optimizations in Oracle*, VLDB 2009), with the window function's result filtered at once.
//!
//! The result is the join's: the same rows, each with the right side's columns (the group
//! keys, the extreme — the row's own value — and in form B the window end, appended by the
//! operator). In form B with `BETWEEN … AND window_end` (both ends inclusive), a row at
//! exactly a window's end also meets the window before, whose extreme it did not count
//! toward (its own window's start is that end): it is kept for that window too, while it
//! can still equal that window's final extreme. Rows come out when the join's would: when
//! the window's aggregate fires (a row at the window's end arriving later, at once). Late
//! rows are treated as both sides of the join treat them: a row behind the watermark is not
//! kept (the join drops it, counted in `late_records`) but counts toward its window's
//! extreme while the window is open (the window aggregate counts it). A row with a NULL value
//! or group key meets no window (an inner join's `NULL = x` is unknown).
//!
//! The operator is keyed by the aggregate's group keys; without any (q7), one instance holds
//! every window at any parallelism, as the window's `MAX` itself does (the join it replaces
//! spread the stream's rows by the compared value).

use crate::expr::{CmpOp, Expr};
use crate::plan::{AggFunc, JoinKind, Node, Plan, WindowKind};
use crate::types::ArithOp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use streamcore::row::{Row, Scalar};
use streamcore::state::{KeyedContext, KeyedProcessFunction, TimeDomain};
use streamcore::{Output, Timestamp};

/// How the operator finds a row's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtremeWindow {
    /// Form A: the rows of a group (a key) are the results of one upstream window, all of
    /// one time; the group closes when the watermark reaches it.
    Upstream,
    /// Form B: tumbling windows of `size` ms over the rows' time (aligned to the epoch);
    /// `boundary`: a row at exactly a window's end is matched against that window too.
    Tumble {
        /// The window size, ms.
        size: i64,
        /// A row at a window's end also meets that window.
        boundary: bool,
    },
}

/// The keyed operator: per window, the rows holding the extreme of column `value`.
///
/// Timing follows the join it replaces. The window's extreme is known when its aggregate
/// fires (the watermark reaching the window's last millisecond, `end - 1`): the rows holding
/// it are emitted then, before that watermark goes on. A row at exactly `end`, which `<=
/// window_end` matches with the window too, can still come until the watermark reaches `end`:
/// the window's extreme is kept until then, and such a row equal to it is emitted at once.
/// As the join, a row behind the watermark when it arrives is not kept (counted in
/// `late_records`); as the window aggregate, it still counts toward its window's extreme
/// while the window is open. A row with a NULL value or group key meets no window.
#[derive(Clone, Debug)]
pub struct ExtremeRows {
    keys: std::sync::Arc<[usize]>,
    value: usize,
    max: bool,
    window: ExtremeWindow,
}

impl ExtremeRows {
    /// The rows with the greatest (`max`) or least non-NULL `value` of their window, keyed by
    /// the columns `keys`.
    pub fn new(keys: &[usize], value: usize, max: bool, window: ExtremeWindow) -> Self {
        ExtremeRows {
            keys: keys.into(),
            value,
            max,
            window,
        }
    }

    /// `Greater` when `v` beats `best`.
    #[inline]
    fn rank(&self, v: &Scalar, best: &Scalar) -> Ordering {
        let o = v.cmp(best);
        if self.max {
            o
        } else {
            o.reverse()
        }
    }

    /// Counts `v` toward `group`'s extreme; `true` if `v` holds it (ties included).
    #[inline]
    fn count(&self, group: &mut Group, v: &Scalar) -> bool {
        match group.best.as_ref().map(|b| self.rank(v, b)) {
            Some(Ordering::Less) => false,
            Some(Ordering::Equal) => true,
            _ => {
                group.rows.clear();
                group
                    .boundary
                    .retain(|r| self.rank(&r.values[self.value], v) != Ordering::Less);
                group.best = Some(v.clone());
                true
            }
        }
    }

    /// Counts `row`'s value toward `group`'s extreme and keeps `row` if it holds it.
    #[inline]
    fn offer(&self, group: &mut Group, row: Row) {
        if self.count(group, &row.values[self.value]) {
            group.rows.push(row);
        }
    }

    /// `row`, at the end of `group`'s window, meets it without counting toward it: kept while
    /// it may still equal the final extreme, or emitted at once once the window has fired.
    fn offer_boundary(&self, group: &mut Group, row: Row, out: &mut Output<Row>) {
        let v = &row.values[self.value];
        let rank = group.best.as_ref().map(|b| self.rank(v, b));
        if group.fired {
            if rank == Some(Ordering::Equal) {
                out.emit(self.output(row, group.end));
            }
        } else if rank != Some(Ordering::Less) {
            group.boundary.push(row);
        }
    }

    /// The output row of `row` for a window ending at `end`: form B appends the end.
    fn output(&self, row: Row, end: i64) -> Row {
        match self.window {
            ExtremeWindow::Upstream => row,
            ExtremeWindow::Tumble { .. } => {
                let mut values = row.values.to_vec();
                values.push(Scalar::TimestampMs(end));
                Row {
                    values: values.into(),
                    time: row.time,
                }
            }
        }
    }

    /// When the window ending at `end` (form A: of rows at time `end`) fires, and when its
    /// extreme is forgotten.
    fn times(&self, end: i64) -> (i64, i64) {
        match self.window {
            ExtremeWindow::Upstream => (end, end),
            ExtremeWindow::Tumble { boundary, .. } => {
                (end - 1, if boundary { end } else { end - 1 })
            }
        }
    }
}

/// The open windows of a key, by their end (form A: their rows' time).
#[derive(Default, Serialize, Deserialize)]
pub struct ExtremeState {
    windows: BTreeMap<i64, Group>,
}

/// The window ending at `end`, made if new (its timers registered). In-order rows meet the
/// last window: it is looked at first.
#[inline]
fn window<'s, K: streamcore::Key>(
    op: &ExtremeRows,
    ctx: &'s mut KeyedContext<'_, K, ExtremeState>,
    end: i64,
) -> &'s mut Group {
    let windows = &ctx.state().windows;
    let last = windows.last_key_value().is_some_and(|(&e, _)| e == end);
    if !last && !windows.contains_key(&end) {
        let (fire, forget) = op.times(end);
        ctx.register_event_time_timer(Timestamp(fire));
        if forget != fire {
            ctx.register_event_time_timer(Timestamp(forget));
        }
        let group = Group {
            end,
            ..Group::default()
        };
        return ctx.state().windows.entry(end).or_insert(group);
    }
    let windows = &mut ctx.state().windows;
    if last {
        return windows.last_entry().expect("a last window").into_mut();
    }
    windows.get_mut(&end).expect("a window present")
}

/// One window: its extreme so far, the rows holding it, and (form B) the rows at its end.
#[derive(Default, Serialize, Deserialize)]
struct Group {
    /// The window's end (form A: the rows' time).
    end: i64,
    best: Option<Scalar>,
    rows: Vec<Row>,
    /// Rows at the window's end, not counted toward it: those not below `best`.
    boundary: Vec<Row>,
    /// Its rows were emitted (form B with rows at its end: it is kept until the watermark
    /// reaches its end).
    fired: bool,
}

impl<K: streamcore::Key> KeyedProcessFunction<K, Row> for ExtremeRows {
    type State = ExtremeState;
    type Out = Row;

    fn process(
        &mut self,
        row: Row,
        ctx: &mut KeyedContext<'_, K, ExtremeState>,
        out: &mut Output<Row>,
    ) {
        let null_key = self.keys.iter().any(|&c| row.values[c].is_null());
        if null_key || row.values[self.value].is_null() {
            // `x = NULL` / `x >= NULL` is unknown: the row meets no window.
            return;
        }
        let (t, wm) = (row.time.0, ctx.watermark());
        let started = wm != Timestamp::MIN;
        // Behind the watermark: the join would not keep it.
        let late = started && t <= wm.0;
        match self.window {
            ExtremeWindow::Upstream => {
                if late {
                    ctx.count_late();
                    return;
                }
                let group = window(self, ctx, t);
                self.offer(group, row);
            }
            ExtremeWindow::Tumble { size, boundary } => {
                if late {
                    ctx.count_late();
                }
                if boundary && !late && t.rem_euclid(size) == 0 {
                    // `t` is also the end of the window before.
                    let open = !started || t - 1 > wm.0;
                    if open || ctx.state().windows.contains_key(&t) {
                        let group = window(self, ctx, t);
                        self.offer_boundary(group, row.clone(), out);
                    }
                }
                let end = t - t.rem_euclid(size) + size;
                // The window aggregate counts a row while its window has not fired.
                if !started || end - 1 > wm.0 {
                    let group = window(self, ctx, end);
                    if late {
                        self.count(group, &row.values[self.value]);
                    } else {
                        self.offer(group, row);
                    }
                } else if !late {
                    ctx.count_late();
                }
            }
        }
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, ExtremeState>,
        out: &mut Output<Row>,
    ) {
        let windows = &mut ctx.state().windows;
        for group in windows.values_mut() {
            let (fire, _) = self.times(group.end);
            if fire > time.0 {
                break;
            }
            if std::mem::replace(&mut group.fired, true) {
                continue;
            }
            let Some(best) = group.best.clone() else {
                continue;
            };
            let end = group.end;
            for row in group.rows.drain(..) {
                out.emit(self.output(row, end));
            }
            for row in group.boundary.drain(..) {
                if row.values[self.value] == best {
                    out.emit(self.output(row, end));
                }
            }
        }
        windows.retain(|&end, _| self.times(end).1 > time.0);
        if windows.is_empty() {
            ctx.clear_state();
        }
    }
}

/// `plan` with a join of a windowed stream with its own per-window extreme (see the module
/// documentation) made an [`ExtremeRows`] node under a projection giving the join's columns;
/// any other plan unchanged.
pub fn join_with_own_extreme(plan: Plan) -> Plan {
    extreme_rows_of(&plan).unwrap_or(plan)
}

/// The base column each output column of `plan` copies (`None`: a computed column), and the
/// base: the input of `plan` if it is a projection, else `plan` itself (all columns copied).
fn through_columns(plan: &Plan) -> (Vec<Option<usize>>, &Plan) {
    match &plan.node {
        Node::Project { input, exprs } => (
            exprs
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            input,
        ),
        _ => ((0..plan.fields.len()).map(Some).collect(), plan),
    }
}

/// Whether `a` and `b` make the same rows: the same plan but for the names of columns (a
/// table scanned under two aliases).
fn same_rows(a: &Plan, b: &Plan) -> bool {
    fn unnamed(plan: Plan) -> Plan {
        let mut plan = crate::rules::map_inputs(plan, &mut unnamed);
        for field in &mut plan.fields {
            field.name.clear();
            field.qualifier = None;
        }
        plan
    }
    unnamed(a.clone()).reuse_key() == unnamed(b.clone()).reuse_key()
}

/// Whether `plan` computes the same rows every time it runs: both sides of the join evaluate
/// it apart, so a `RAND()` in it would make them differ.
fn deterministic(plan: &Plan) -> bool {
    let here = match &plan.node {
        Node::Project { exprs, .. } => exprs.iter().all(Expr::is_deterministic),
        Node::Filter { predicate, .. } => predicate.is_deterministic(),
        _ => true,
    };
    here && plan.inputs().into_iter().all(deterministic)
}

fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(parts) => parts.iter().for_each(|p| conjuncts(p, out)),
        e => out.push(e),
    }
}

/// What the join condition says, column by column.
#[derive(Default)]
struct Condition {
    /// Per group key of the aggregate, the left column equated with it.
    keys: Vec<Option<usize>>,
    /// The left column compared with the extreme.
    value: Option<usize>,
    /// Form B: `left.time >= window_end - size` (or `>= window_start`) seen.
    lower: bool,
    /// Form B: `left.time <= window_end` (`Some(true)`) or `< window_end` (`Some(false)`).
    upper: Option<bool>,
}

fn extreme_rows_of(plan: &Plan) -> Option<Plan> {
    let Node::Join {
        left,
        right,
        kind: JoinKind::Inner,
        on,
        late,
        ..
    } = &plan.node
    else {
        return None;
    };
    if late.left.is_some() || late.right.is_some() || left.updating || right.updating {
        return None;
    }
    if plan.rowtime.is_some() && plan.rowtime != left.rowtime {
        return None;
    }
    let (left_cols, base) = through_columns(left);
    let (right_cols, agg) = through_columns(right);
    let Node::WindowAggregate {
        input,
        window,
        keys,
        aggs,
        upstream,
        proctime: false,
        late: None,
        lateness: None,
    } = &agg.node
    else {
        return None;
    };
    let [call] = aggs.as_slice() else {
        return None;
    };
    let max = match call.func {
        AggFunc::Max => true,
        AggFunc::Min => false,
        _ => return None,
    };
    if call.distinct || call.filter.is_some() {
        return None;
    }
    let (agg_cols, agg_base) = through_columns(input);
    if !same_rows(agg_base, base) || !deterministic(base) {
        return None;
    }
    let k = *keys;
    let value_base = agg_cols.get(call.arg?).copied().flatten()?;
    let size = match (upstream, window) {
        (true, _) => None,
        (false, WindowKind::Tumble { size }) => Some(*size),
        _ => return None,
    };
    let time_base = base.rowtime;
    let n = left.fields.len();
    let mut cond = Condition {
        keys: vec![None; k],
        ..Condition::default()
    };
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    for part in parts {
        let Expr::Cmp(op, a, b) = part else {
            return None;
        };
        // The left column first.
        let (op, l, r) = match (a.as_ref(), b.as_ref()) {
            (Expr::Column(l), r) if *l < n => (*op, *l, r),
            (r, Expr::Column(l)) if *l < n => (op.flipped(), *l, r),
            _ => return None,
        };
        let is_time = time_base.is_some() && left_cols[l] == time_base;
        let right_col = |e: &Expr| match e {
            Expr::Column(c) if *c >= n => right_cols[c - n],
            _ => None,
        };
        match (right_col(r), r) {
            (Some(rc), _) if rc < k => {
                if op != CmpOp::Eq || left_cols[l].is_none() || left_cols[l] != agg_cols[rc] {
                    return None;
                }
                cond.keys[rc] = Some(l);
            }
            (Some(rc), _) if rc == k => {
                let compares =
                    op == CmpOp::Eq || (max && op == CmpOp::GtEq) || (!max && op == CmpOp::LtEq);
                if !compares || left_cols[l] != Some(value_base) {
                    return None;
                }
                cond.value = Some(l);
            }
            (Some(rc), _) if size.is_some() && is_time && rc == k + 1 && op == CmpOp::GtEq => {
                cond.lower = true;
            }
            (Some(rc), _) if size.is_some() && is_time && rc == k + 2 => {
                // With two upper bounds, the tighter one.
                let inclusive = match op {
                    CmpOp::LtEq => true,
                    CmpOp::Lt => false,
                    _ => return None,
                };
                cond.upper = Some(cond.upper.unwrap_or(true) && inclusive);
            }
            (None, Expr::Arith(ArithOp::Sub, end, d, _))
                if is_time
                    && op == CmpOp::GtEq
                    && right_col(end) == Some(k + 2)
                    && matches!((size, d.as_ref()), (Some(s), Expr::Literal(Scalar::Int(x))) if *x == s) =>
            {
                cond.lower = true;
            }
            _ => return None,
        }
    }
    let key_columns: Vec<usize> = cond.keys.iter().copied().collect::<Option<_>>()?;
    let value = cond.value?;
    let window = match size {
        None => ExtremeWindow::Upstream,
        Some(size) => {
            if !cond.lower {
                return None;
            }
            ExtremeWindow::Tumble {
                size,
                boundary: cond.upper?,
            }
        }
    };
    // The join's right columns, from the left row (and the window end form B appends).
    let mut exprs: Vec<Expr> = (0..n).map(Expr::Column).collect();
    for (j, field) in right.fields.iter().enumerate() {
        let rc = right_cols[j]?;
        let end = || Box::new(Expr::Column(n));
        let minus = |ms: i64| {
            Expr::Arith(
                ArithOp::Sub,
                end(),
                Box::new(Expr::Literal(Scalar::Int(ms))),
                field.ty,
            )
        };
        exprs.push(match (size, rc) {
            (_, rc) if rc < k => Expr::Column(key_columns[rc]),
            (_, rc) if rc == k => Expr::Column(value),
            (Some(size), rc) if rc == k + 1 => minus(size),
            (Some(_), rc) if rc == k + 2 => Expr::Column(n),
            (Some(_), rc) if rc == k + 3 => minus(1),
            _ => return None,
        });
    }
    let mut fields = left.fields.clone();
    if size.is_some() {
        fields.push(agg.fields.get(k + 2)?.clone());
    }
    let rows = Plan {
        node: Node::ExtremeRows {
            input: left.clone(),
            keys: key_columns,
            value,
            max,
            window,
        },
        fields,
        updating: false,
        rowtime: left.rowtime,
    };
    Some(Plan {
        node: Node::Project {
            input: Box::new(rows),
            exprs,
        },
        fields: plan.fields.clone(),
        updating: false,
        rowtime: plan.rowtime,
    })
}
