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
//! can still equal that window's final extreme. Rows that arrive after their window closed
//! are dropped from it, as the window aggregate drops them, and counted in `late_records`
//! (the join, which keeps the extreme a little longer, could still pair some of them).

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
#[derive(Clone, Debug)]
pub struct ExtremeRows {
    value: usize,
    max: bool,
    window: ExtremeWindow,
}

impl ExtremeRows {
    /// The rows with the greatest (`max`) or least non-NULL `value` of their window.
    pub fn new(value: usize, max: bool, window: ExtremeWindow) -> Self {
        ExtremeRows { value, max, window }
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

    /// Counts `row`'s value toward `group`'s extreme and keeps `row` if it holds it.
    #[inline]
    fn offer(&self, group: &mut Group, row: Row) {
        let v = &row.values[self.value];
        match group.best.as_ref().map(|b| self.rank(v, b)) {
            Some(Ordering::Less) => {}
            Some(Ordering::Equal) => group.rows.push(row),
            _ => {
                group
                    .boundary
                    .retain(|r| self.rank(&r.values[self.value], v) != Ordering::Less);
                group.best = Some(v.clone());
                group.rows.clear();
                group.rows.push(row);
            }
        }
    }

    /// Keeps `row`, which meets `group` without counting toward it, while it may still equal
    /// its final extreme.
    fn offer_boundary(&self, group: &mut Group, row: Row) {
        let v = &row.values[self.value];
        if group
            .best
            .as_ref()
            .is_none_or(|b| self.rank(v, b) != Ordering::Less)
        {
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
}

/// The open windows of a key, by the time they close.
#[derive(Default, Serialize, Deserialize)]
pub struct ExtremeState {
    windows: BTreeMap<i64, Group>,
}

/// The window ending (form A: closing) at `end`, and whether it is new. In-order rows meet
/// the last window: it is looked at first.
#[inline]
fn window(windows: &mut BTreeMap<i64, Group>, end: i64) -> (&mut Group, bool) {
    if windows.last_key_value().is_some_and(|(&e, _)| e == end) {
        let group = windows.last_entry().expect("a last window").into_mut();
        return (group, false);
    }
    let mut fresh = false;
    let group = windows.entry(end).or_insert_with(|| {
        fresh = true;
        Group {
            end,
            ..Group::default()
        }
    });
    (group, fresh)
}

/// One window: its extreme so far, the rows holding it, and (form B) the rows at its end.
#[derive(Default, Serialize, Deserialize)]
struct Group {
    /// The window's end (form B; the rows' time in form A).
    end: i64,
    best: Option<Scalar>,
    rows: Vec<Row>,
    /// Rows at the window's end, not counted toward it: those not below `best`.
    boundary: Vec<Row>,
}

impl<K: streamcore::Key> KeyedProcessFunction<K, Row> for ExtremeRows {
    type State = ExtremeState;
    type Out = Row;

    fn process(
        &mut self,
        row: Row,
        ctx: &mut KeyedContext<'_, K, ExtremeState>,
        _: &mut Output<Row>,
    ) {
        if row.values[self.value].is_null() {
            // `x >= NULL` / `x = NULL` is unknown: the row meets no window.
            return;
        }
        let (t, wm) = (row.time.0, ctx.watermark());
        let started = wm != Timestamp::MIN;
        match self.window {
            ExtremeWindow::Upstream => {
                if started && t <= wm.0 {
                    ctx.count_late();
                    return;
                }
                let (group, fresh) = window(&mut ctx.state().windows, t);
                self.offer(group, row);
                if fresh {
                    ctx.register_event_time_timer(Timestamp(t));
                }
            }
            ExtremeWindow::Tumble { size, boundary } => {
                let end = t - t.rem_euclid(size) + size;
                // A window closes (its aggregate fires) when the watermark reaches its last
                // millisecond; the operator emits it a millisecond later, once no row at its
                // end can come.
                let counts = !started || end - 1 > wm.0;
                let at_boundary = boundary && t.rem_euclid(size) == 0 && (!started || t > wm.0);
                if !counts && !at_boundary {
                    ctx.count_late();
                    return;
                }
                let (at_end, in_window) = match (at_boundary, counts) {
                    (true, true) => (Some(row.clone()), Some(row)),
                    (true, false) => (Some(row), None),
                    (false, _) => (None, Some(row)),
                };
                let mut fresh = [None, None];
                let windows = &mut ctx.state().windows;
                if let Some(row) = at_end {
                    // `t` is the end of the window before, which closes at `t`.
                    let (group, new) = window(windows, t);
                    self.offer_boundary(group, row);
                    fresh[0] = new.then_some(t);
                }
                if let Some(row) = in_window {
                    let (group, new) = window(windows, end);
                    self.offer(group, row);
                    fresh[1] = new.then_some(end);
                } else {
                    ctx.count_late();
                }
                for t in fresh.into_iter().flatten() {
                    ctx.register_event_time_timer(Timestamp(t));
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
        let state = ctx.state();
        let later = state.windows.split_off(&(time.0 + 1));
        let due = std::mem::replace(&mut state.windows, later);
        for (_, group) in due {
            let Some(best) = &group.best else {
                continue;
            };
            for row in group.rows {
                out.emit(self.output(row, group.end));
            }
            for row in group.boundary {
                if row.values[self.value] == *best {
                    out.emit(self.output(row, group.end));
                }
            }
        }
        if ctx.state().windows.is_empty() {
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
    if !same_rows(agg_base, base) {
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
                cond.upper = Some(match op {
                    CmpOp::LtEq => true,
                    CmpOp::Lt => false,
                    _ => return None,
                });
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
