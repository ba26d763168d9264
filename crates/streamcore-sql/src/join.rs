//! Joins in the logical plan: [`make_join`] builds a join node and decides, from its
//! condition, how it runs —
//!
//! - an **interval join** when the inputs are append-only and the condition bounds one
//!   side's event time by the other's from both sides (`a.t BETWEEN b.t - INTERVAL '10'
//!   SECOND AND b.t`, or equal window bounds of two window aggregates — a window join): state
//!   is kept only until the watermark passes, and the result is append-only;
//! - otherwise a **regular join** on the equality conditions, which keeps every row of both
//!   sides (bounded by `table.exec.state.ttl`) and emits an updating result for outer joins.
//!
//! The condition is split into equality keys (`left expr = right expr`), time bounds and a
//! residual predicate evaluated on each joined row.

use crate::catalog::PlanField;
use crate::error::PlanError;
use crate::expr::{CmpOp, Expr};
use crate::plan::{JoinKind, JoinLate, JoinStrategy, Node, Plan, WindowKind};
use crate::types::{ArithOp, SqlType};
use streamcore::join::UniqueSides;
use streamcore::row::{DataType, Scalar};

/// The parts of a join condition.
#[derive(Clone, Debug, Default)]
pub struct JoinCondition {
    /// Equality keys: (left expression over the left row, right expression over the right row).
    pub keys: Vec<(Expr, Expr)>,
    /// `left.time - right.time >= lower`, if bounded.
    pub lower: Option<i64>,
    /// `left.time - right.time <= upper`, if bounded.
    pub upper: Option<i64>,
    /// What remains, over the joined row (left columns, then right columns).
    pub residual: Vec<Expr>,
}

/// A join of `left` and `right` on `on` (over the joined row's columns); `late`: the inputs'
/// late-data tables, used if it is an interval join.
pub fn make_join(
    left: Plan,
    right: Plan,
    kind: JoinKind,
    on: Expr,
    late: JoinLate,
) -> Result<Plan, PlanError> {
    let n = left.fields.len();
    let cond = split(&on, &left, &right);
    let append = !left.updating && !right.updating;
    let strategy = match (kind, cond.lower, cond.upper) {
        (JoinKind::Inner, Some(lower), Some(upper)) if append && !cond.keys.is_empty() => {
            if lower > upper {
                return Err(PlanError::invalid(format!(
                    "the join's time bounds are empty (left time - right time between {lower} and {upper} ms)"
                )));
            }
            JoinStrategy::Interval { lower, upper }
        }
        _ => {
            // Without keys yet (`FROM a, b WHERE …`): the filter above brings them in; the
            // physical planner refuses a join that still has none.
            if kind != JoinKind::Inner && !cond.residual.is_empty() {
                return Err(PlanError::unsupported(format!(
                    "an outer join whose ON has conditions besides equalities ({})",
                    cond.residual
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(" AND ")
                )));
            }
            JoinStrategy::Regular
        }
    };
    let mut fields: Vec<PlanField> = left.fields.clone();
    fields.extend(right.fields.iter().cloned());
    let (updating, rowtime) = match strategy {
        JoinStrategy::Interval { .. } => (false, left.rowtime.or(right.rowtime.map(|r| r + n))),
        // A regular join's output has no time attribute (as in Flink): its rows carry no
        // order in event time.
        JoinStrategy::Regular => (
            left.updating || right.updating || kind != JoinKind::Inner,
            None,
        ),
    };
    Ok(Plan {
        node: Node::Join {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            on,
            strategy,
            late,
        },
        fields,
        updating,
        rowtime,
    })
}

/// The inputs of an inner regular join whose join key (`lk` over the left input's columns,
/// `rk` over the right's) contains a unique key ([`crate::unique`]): no second row of that
/// input can meet a row of the other side, so the join keeps no row that met it (Flink's
/// `JoinKeyContainsUniqueKey` input spec). None for other joins.
pub fn unique_sides(
    kind: JoinKind,
    strategy: &JoinStrategy,
    left: &Plan,
    right: &Plan,
    lk: &[Expr],
    rk: &[Expr],
) -> UniqueSides {
    if kind != JoinKind::Inner || *strategy != JoinStrategy::Regular {
        return UniqueSides::default();
    }
    UniqueSides {
        left: crate::unique::key_contains_unique(left, lk),
        right: crate::unique::key_contains_unique(right, rk),
    }
}

/// `EXPLAIN`'s note of the inputs whose join key contains a unique key ([`unique_sides`]),
/// in Flink's words: `, leftInputSpec=[JoinKeyContainsUniqueKey]` and the right's; empty
/// for neither.
pub fn explain_unique(
    kind: JoinKind,
    strategy: &JoinStrategy,
    on: &Expr,
    left: &Plan,
    right: &Plan,
) -> String {
    let (lk, rk): (Vec<Expr>, Vec<Expr>) = split(on, left, right).keys.into_iter().unzip();
    let unique = unique_sides(kind, strategy, left, right, &lk, &rk);
    [(unique.left, "left"), (unique.right, "right")]
        .iter()
        .filter(|(unique, _)| *unique)
        .map(|(_, side)| format!(", {side}InputSpec=[JoinKeyContainsUniqueKey]"))
        .collect()
}

/// Splits a condition over the joined row.
pub fn split(on: &Expr, left: &Plan, right: &Plan) -> JoinCondition {
    let n = left.fields.len();
    let mut cond = JoinCondition::default();
    let conjuncts: Vec<&Expr> = match on {
        Expr::And(v) => v.iter().collect(),
        Expr::Literal(Scalar::Bool(true)) => vec![],
        e => vec![e],
    };
    for c in conjuncts {
        let mut used = false;
        if let Expr::Cmp(op, a, b) = c {
            if *op == CmpOp::Eq {
                match (side(a, n), side(b, n)) {
                    (Some(Side::Left), Some(Side::Right)) => {
                        cond.keys.push((a.as_ref().clone(), shift(b, n)));
                        used = true;
                    }
                    (Some(Side::Right), Some(Side::Left)) => {
                        cond.keys.push((b.as_ref().clone(), shift(a, n)));
                        used = true;
                    }
                    _ => {}
                }
            }
            // Time bounds: `x op y` with x and y each a side's event time plus a constant.
            if let (Some((sa, oa)), Some((sb, ob))) =
                (time_term(a, left, right), time_term(b, left, right))
            {
                // left.time + l_off  op  right.time + r_off  →  left.time - right.time op r_off - l_off
                let (op, d) = match (sa, sb) {
                    (Side::Left, Side::Right) => (Some(*op), ob - oa),
                    (Side::Right, Side::Left) => (flip(*op), oa - ob),
                    _ => (None, 0),
                };
                let mut bound = true;
                match op {
                    Some(CmpOp::Eq) => {
                        cond.lower = Some(cond.lower.map_or(d, |l: i64| l.max(d)));
                        cond.upper = Some(cond.upper.map_or(d, |u: i64| u.min(d)));
                    }
                    Some(CmpOp::GtEq) => cond.lower = Some(cond.lower.map_or(d, |l: i64| l.max(d))),
                    Some(CmpOp::Gt) => {
                        cond.lower = Some(cond.lower.map_or(d + 1, |l: i64| l.max(d + 1)))
                    }
                    Some(CmpOp::LtEq) => cond.upper = Some(cond.upper.map_or(d, |u: i64| u.min(d))),
                    Some(CmpOp::Lt) => {
                        cond.upper = Some(cond.upper.map_or(d - 1, |u: i64| u.min(d - 1)))
                    }
                    _ => bound = false,
                }
                // A bound other than an equality (a key already) stays in the residual too:
                // a regular join (when the bounds do not make an interval join) checks it
                // there; `residual_for` drops it when the interval join enforces it.
                if bound && op != Some(CmpOp::Eq) {
                    cond.residual.push(c.clone());
                    continue;
                }
                if bound && used {
                    continue;
                }
            }
        }
        if !used {
            cond.residual.push(c.clone());
        }
    }
    cond
}

/// How long the rows of a regular inner join can find partners: the bounds its condition puts
/// on one side's event time by an expression over the other side's row (`B.dateTime <=
/// A.expires` bounds the bids an auction matches; `A.dateTime <= B.dateTime` the auctions a
/// bid matches). Each entry `(e, offset)` over the joined row says: a row of that side matches
/// only rows of the other side whose event time is at most `e + offset` — so once the
/// watermark passes that, the row can go.
#[derive(Clone, Debug, Default)]
pub struct RowBounds {
    /// Bounds of the left rows (expressions over the left columns).
    pub left: Vec<(Expr, i64)>,
    /// Bounds of the right rows (expressions over the right columns, numbered in the joined
    /// row).
    pub right: Vec<(Expr, i64)>,
}

impl RowBounds {
    /// True if no row of either side is bounded.
    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }

    /// `EXPLAIN`'s text: `left rows until $2, right rows until $6`.
    pub fn explain(&self) -> String {
        let side = |name: &str, bounds: &[(Expr, i64)]| {
            let until: Vec<String> = bounds
                .iter()
                .map(|(e, off)| match off {
                    0 => e.to_string(),
                    o if *o > 0 => format!("{e} + {o} ms"),
                    o => format!("{e} - {} ms", -o),
                })
                .collect();
            (!until.is_empty()).then(|| format!("{name} rows until {}", until.join(" and ")))
        };
        [side("left", &self.left), side("right", &self.right)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The [`RowBounds`] of a join of `left` and `right` on `on` (over the joined row): of an
/// inner regular join of append-only inputs only — the one rule the physical planner and
/// `EXPLAIN` both follow.
pub fn expiry_bounds(
    kind: JoinKind,
    strategy: &JoinStrategy,
    on: &Expr,
    left: &Plan,
    right: &Plan,
) -> RowBounds {
    match (kind, strategy) {
        (JoinKind::Inner, JoinStrategy::Regular) if !left.updating && !right.updating => {
            row_bounds(&split(on, left, right).residual, left, right)
        }
        _ => RowBounds::default(),
    }
}

/// Where a join of `left` and `right` on `on` sends its late rows: `late` (the inputs'
/// `'late-data.table'` tables) for an interval join; for a regular join whose rows expire
/// ([`expiry_bounds`]), the table of each input whose rows can be late — a row is late when the
/// other side's rows it could match may be gone, i.e. when the other side's rows are bounded;
/// nothing for a regular join that keeps every row. The one rule the pruning, the physical
/// planner and `EXPLAIN` follow.
pub fn late_tables(
    kind: JoinKind,
    strategy: &JoinStrategy,
    on: &Expr,
    left: &Plan,
    right: &Plan,
    late: &JoinLate,
) -> JoinLate {
    match strategy {
        JoinStrategy::Interval { .. } => late.clone(),
        JoinStrategy::Regular => {
            let bounds = expiry_bounds(kind, strategy, on, left, right);
            // Left rows can be late when the right rows are bounded, and the other way round.
            let (left_late, right_late) = (!bounds.right.is_empty(), !bounds.left.is_empty());
            JoinLate {
                left: late.left.clone().filter(|_| left_late),
                right: late.right.clone().filter(|_| right_late),
                invalid_left: late.invalid_left.clone().filter(|_| left_late),
                invalid_right: late.invalid_right.clone().filter(|_| right_late),
            }
        }
    }
}

/// The [`RowBounds`] of an inner join of `left` and `right` whose condition beyond its keys is
/// `residual`: each conjunct `x <= y` (or `<`, or `y >= x`, `y > x`) where `x` is one side's
/// event time plus a constant and `y` a timestamp read from the other side's columns
/// (`A.expires`, `A.ts + INTERVAL '1' HOUR`). None unless both inputs are scans, filtered and
/// projected: only their rows are never behind the watermark unless late.
fn row_bounds(residual: &[Expr], left: &Plan, right: &Plan) -> RowBounds {
    let n = left.fields.len();
    let mut bounds = RowBounds::default();
    if !rows_keep_time(left) || !rows_keep_time(right) {
        return bounds;
    }
    for c in residual {
        // (smaller, larger) as the comparison asserts. An equality across the sides is a
        // key (or an equal time bound) already, never in the residual.
        let (small, large) = match c {
            Expr::Cmp(CmpOp::Lt | CmpOp::LtEq, a, b) => (a, b),
            Expr::Cmp(CmpOp::Gt | CmpOp::GtEq, a, b) => (b, a),
            _ => continue,
        };
        let Some((s, offset)) = time_term(small, left, right) else {
            continue;
        };
        // `s.time + offset <= large(other row)`: the other side's rows are bounded.
        match s {
            Side::Left if timestamp_of_columns(large, &right.fields, n) => {
                bounds.right.push((large.as_ref().clone(), -offset))
            }
            Side::Right if timestamp_of_columns(large, &left.fields, 0) => {
                bounds.left.push((large.as_ref().clone(), -offset))
            }
            _ => {}
        }
    }
    bounds
}

/// Drops the time bounds from the residual when the interval join enforces them.
pub fn residual_for(
    strategy: &JoinStrategy,
    cond: &JoinCondition,
    left: &Plan,
    right: &Plan,
) -> Vec<Expr> {
    match strategy {
        JoinStrategy::Regular => cond.residual.clone(),
        JoinStrategy::Interval { .. } => cond
            .residual
            .iter()
            .filter(|c| match c {
                Expr::Cmp(_, a, b) => {
                    time_term(a, left, right).is_none() || time_term(b, left, right).is_none()
                }
                _ => true,
            })
            .cloned()
            .collect(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

fn flip(op: CmpOp) -> Option<CmpOp> {
    Some(match op {
        CmpOp::Eq => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::LtEq => CmpOp::GtEq,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::GtEq => CmpOp::LtEq,
        CmpOp::NotEq => return None,
    })
}

/// Which side's columns an expression reads (`None`: both, or none).
fn side(e: &Expr, n: usize) -> Option<Side> {
    let mut cols = Vec::new();
    e.columns(&mut cols);
    if cols.is_empty() {
        None
    } else if cols.iter().all(|&c| c < n) {
        Some(Side::Left)
    } else if cols.iter().all(|&c| c >= n) {
        Some(Side::Right)
    } else {
        None
    }
}

/// A right-side expression over the right row's own columns.
fn shift(e: &Expr, n: usize) -> Expr {
    crate::rules::map_columns(e, &|c| c - n)
}

/// `e` as (side, offset) when it is that side's event time plus a constant in ms: the side's
/// rowtime column, or the `window_end` of a window aggregate (event time + 1 ms), ± an
/// interval.
fn time_term(e: &Expr, left: &Plan, right: &Plan) -> Option<(Side, i64)> {
    let n = left.fields.len();
    match e {
        Expr::Column(c) => {
            let (plan, col, s) = if *c < n {
                (left, *c, Side::Left)
            } else {
                (right, *c - n, Side::Right)
            };
            if plan.rowtime == Some(col) {
                return Some((s, 0));
            }
            window_bound(plan, col).map(|offset| (s, offset))
        }
        Expr::Arith(op @ (ArithOp::Add | ArithOp::Sub), a, b, _) => {
            let (s, off) = time_term(a, left, right)?;
            let Expr::Literal(Scalar::Int(ms)) = b.as_ref() else {
                return None;
            };
            Some((
                s,
                if *op == ArithOp::Add {
                    off + ms
                } else {
                    off - ms
                },
            ))
        }
        // A cast to another timestamp precision keeps the instant; any other (to a DATE, a
        // string) does not, and bounds nothing.
        Expr::Cast(inner, DataType::TimestampMillis | DataType::TimestampMicros) => {
            time_term(inner, left, right)
        }
        _ => None,
    }
}

/// Whether `e` is a timestamp read from columns of `fields` (its own numbering from `first`):
/// a `TIMESTAMP` column, ± an interval, cast between timestamp precisions — a bound that is
/// the same every time it is read.
fn timestamp_of_columns(e: &Expr, fields: &[PlanField], first: usize) -> bool {
    let timestamp = |t: SqlType| {
        matches!(
            t,
            SqlType::Data(DataType::TimestampMillis | DataType::TimestampMicros)
        )
    };
    match e {
        Expr::Column(c) => c
            .checked_sub(first)
            .and_then(|c| fields.get(c))
            .is_some_and(|f| timestamp(f.ty)),
        Expr::Arith(ArithOp::Add | ArithOp::Sub, a, b, _) => {
            matches!(b.as_ref(), Expr::Literal(Scalar::Int(_)))
                && timestamp_of_columns(a, fields, first)
        }
        Expr::Cast(inner, DataType::TimestampMillis | DataType::TimestampMicros) => {
            timestamp_of_columns(inner, fields, first)
        }
        _ => false,
    }
}

/// Whether the rows of `plan` carry their rowtime as their event time and reach an operator
/// no later than the watermark lets them (behind it only when late at their source): a scan,
/// filtered and projected. The output of a window aggregate (emitted once the watermark
/// passed its window) or of another join is not.
fn rows_keep_time(plan: &Plan) -> bool {
    match &plan.node {
        Node::Scan { .. } => true,
        Node::Filter { input, .. } | Node::Project { input, .. } => rows_keep_time(input),
        _ => false,
    }
}

/// Which bound of a window a column is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowBound {
    /// `window_start`.
    Start,
    /// `window_end`.
    End,
}

/// If column `col` of `plan` is the `window_start` or `window_end` of the window its rows
/// belong to (a window aggregate's output, through projections and filters, and through the
/// group keys of a window aggregate that groups by an upstream window), that window and bound.
pub fn window_of(plan: &Plan, col: usize) -> Option<(WindowKind, WindowBound)> {
    match &plan.node {
        Node::Project { input, exprs } => match exprs.get(col)? {
            Expr::Column(c) => window_of(input, *c),
            _ => None,
        },
        Node::Filter { input, .. } => window_of(input, col),
        // Processing-time windows' bounds are no event time: no window join or window
        // aggregate builds on them.
        Node::WindowAggregate { proctime: true, .. } => None,
        // Nor do the bounds of windows that take late rows (their results update).
        Node::WindowAggregate {
            lateness: Some(_), ..
        } => None,
        Node::WindowAggregate {
            window,
            keys,
            input,
            upstream,
            ..
        } => {
            let n = plan.fields.len();
            if *upstream && col < *keys {
                return window_of(input, col);
            }
            if col == n - 2 {
                Some((*window, WindowBound::End))
            } else if col == n - 3 {
                Some((*window, WindowBound::Start))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// If column `col` of `plan` is a window bound (see [`window_of`]), its offset from the rows'
/// event time: rows of a window carry `window_end - 1`, so `window_end` is the event time +
/// 1 ms, and `window_start` of a tumbling or hopping window the event time + 1 − size.
pub fn window_bound(plan: &Plan, col: usize) -> Option<i64> {
    match window_of(plan, col)? {
        (_, WindowBound::End) => Some(1),
        (WindowKind::Tumble { size } | WindowKind::Hop { size, .. }, WindowBound::Start) => {
            Some(1 - size)
        }
        _ => None,
    }
}
