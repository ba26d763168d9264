//! Rewrites of the logical plan before it becomes operators: adjacent projections merge into
//! one, filters move below projections (down to the scan, where a `nexmark` scan can make
//! only the event kind the filter keeps), adjacent filters merge, identity projections go,
//! a join of a windowed stream with its own per-window extreme becomes the rows holding
//! it ([`crate::extreme`]), and a filter on a join's unique input may move into the join
//! ([`crate::unique`]). Each rewrite keeps the plan's output, its changelog mode and its rowtime.

use crate::binder::project;
use crate::expr::Expr;
use crate::join::make_join;
use crate::plan::{JoinKind, JoinStrategy, Node, Plan};

/// Applies the rewrites bottom-up, then moves filters into joins with a unique input where
/// that lets them keep fewer rows ([`crate::unique::filter_into_unique_joins`]: last, as the
/// other rewrites push filters down).
pub fn optimize(plan: Plan) -> Plan {
    crate::unique::filter_into_unique_joins(optimize_nodes(plan))
}

fn optimize_nodes(plan: Plan) -> Plan {
    crate::extreme::join_with_own_extreme(rewrite(map_inputs(plan, &mut optimize_nodes)))
}

/// One rewrite at the top of `plan` (its inputs are already rewritten).
fn rewrite(plan: Plan) -> Plan {
    match plan.node {
        Node::Project { input, exprs } => {
            if is_identity(&exprs, input.fields.len()) {
                let mut inner = *input;
                inner.fields = plan.fields;
                return inner;
            }
            match input.node {
                Node::Rank {
                    input: rank_input,
                    partition,
                    order,
                    limit,
                    number_selected: true,
                } if {
                    let mut cols = Vec::new();
                    exprs.iter().for_each(|e| e.columns(&mut cols));
                    !cols.contains(&rank_input.fields.len())
                } =>
                {
                    // The row number is not read: a Top-N of rows, not of ranks.
                    let rank = Plan {
                        node: Node::Rank {
                            input: rank_input,
                            partition,
                            order,
                            limit,
                            number_selected: false,
                        },
                        ..*input
                    };
                    Plan {
                        node: Node::Project {
                            input: Box::new(rank),
                            exprs,
                        },
                        ..plan
                    }
                }
                Node::Project {
                    input: inner,
                    exprs: inner_exprs,
                } if substitutable(&exprs, &inner_exprs) => {
                    let merged = exprs.iter().map(|e| substitute(e, &inner_exprs)).collect();
                    rewrite(project_keeping(*inner, merged, plan.fields, plan.rowtime))
                }
                node => Plan {
                    node: Node::Project {
                        input: Box::new(Plan { node, ..*input }),
                        exprs,
                    },
                    ..plan
                },
            }
        }
        Node::Filter { input, predicate } => match input.node {
            Node::Rank {
                input: rank_input,
                partition,
                order,
                limit,
                number_selected,
            } => {
                // `rownum <= N` (or `< N`, `= 1`) sets the Top-N's size; other conditions stay
                // above the ranking (below it they would change which rows rank).
                let number = rank_input.fields.len();
                let mut limit = limit;
                let mut rest = Vec::new();
                for c in conjuncts(predicate) {
                    match rank_limit(&c, number) {
                        Some(n) => limit = Some(limit.map_or(n, |l: usize| l.min(n))),
                        None => rest.push(c),
                    }
                }
                let rank = Plan {
                    node: Node::Rank {
                        input: rank_input,
                        partition,
                        order,
                        limit,
                        number_selected,
                    },
                    ..*input
                };
                if rest.is_empty() {
                    let mut rank = rank;
                    rank.fields = plan.fields;
                    rank
                } else {
                    Plan {
                        node: Node::Filter {
                            input: Box::new(rank),
                            predicate: Expr::And(rest),
                        },
                        ..plan
                    }
                }
            }
            Node::Filter {
                input: inner,
                predicate: first,
            } => {
                let mut parts = conjuncts(first);
                parts.extend(conjuncts(predicate));
                Plan {
                    node: Node::Filter {
                        input: inner,
                        predicate: Expr::And(parts),
                    },
                    ..plan
                }
            }
            Node::Project {
                input: inner,
                exprs,
            } if substitutable(std::slice::from_ref(&predicate), &exprs) => {
                let pushed = substitute(&predicate, &exprs);
                let inner = *inner;
                let filtered = rewrite(Plan {
                    fields: inner.fields.clone(),
                    updating: inner.updating,
                    rowtime: inner.rowtime,
                    node: Node::Filter {
                        input: Box::new(inner),
                        predicate: pushed,
                    },
                });
                project_keeping(filtered, exprs, plan.fields, plan.rowtime)
            }
            Node::Join {
                left,
                right,
                kind: JoinKind::Inner,
                on,
                late,
                ..
            } => {
                // An inner join's filter: conditions on one side go below the join to that
                // side, the others join the ON condition (where they may bound time).
                let n = left.fields.len();
                let (mut left, mut right) = (*left, *right);
                let mut on_parts = conjuncts(on);
                for c in conjuncts(predicate) {
                    let mut cols = Vec::new();
                    c.columns(&mut cols);
                    if !cols.is_empty() && cols.iter().all(|&x| x < n) {
                        left = push_filter(left, c);
                    } else if !cols.is_empty() && cols.iter().all(|&x| x >= n) {
                        right = push_filter(right, map_columns(&c, &|x| x - n));
                    } else {
                        on_parts.push(c);
                    }
                }
                let on = match on_parts.len() {
                    1 => on_parts.pop().expect("one"),
                    _ => Expr::And(on_parts),
                };
                let fields = plan.fields;
                match make_join(left, right, JoinKind::Inner, on, late) {
                    Ok(mut joined) => {
                        joined.fields = fields;
                        joined
                    }
                    Err(_) => unreachable!("a join that planned before plans with more conditions"),
                }
            }
            node => Plan {
                node: Node::Filter {
                    input: Box::new(Plan { node, ..*input }),
                    predicate,
                },
                ..plan
            },
        },
        node => Plan { node, ..plan },
    }
}

/// A projection with the given fields; the rowtime is kept as the original plan had it.
fn project_keeping(
    input: Plan,
    exprs: Vec<Expr>,
    fields: Vec<crate::catalog::PlanField>,
    rowtime: Option<usize>,
) -> Plan {
    let mut p = project(input, exprs, fields);
    p.rowtime = rowtime;
    p
}

/// The Top-N size a condition on the row number (column `number`) sets.
fn rank_limit(c: &Expr, number: usize) -> Option<usize> {
    use crate::expr::CmpOp;
    use streamcore::row::Scalar;
    let Expr::Cmp(op, a, b) = c else {
        return None;
    };
    let (op, k) = match (a.as_ref(), b.as_ref()) {
        (Expr::Column(x), Expr::Literal(Scalar::Int(k))) if *x == number => (*op, *k),
        (Expr::Literal(Scalar::Int(k)), Expr::Column(x)) if *x == number => (op.flipped(), *k),
        _ => return None,
    };
    match op {
        CmpOp::LtEq if k >= 1 => Some(k as usize),
        CmpOp::Lt if k >= 2 => Some(k as usize - 1),
        CmpOp::Eq if k == 1 => Some(1),
        _ => None,
    }
}

/// `plan` under a filter, rewritten (down to its scan where possible).
fn push_filter(plan: Plan, predicate: Expr) -> Plan {
    rewrite(Plan {
        fields: plan.fields.clone(),
        updating: plan.updating,
        rowtime: plan.rowtime,
        node: Node::Filter {
            input: Box::new(plan),
            predicate,
        },
    })
}

/// `e` with every column `c` renamed to `f(c)`.
pub fn map_columns(e: &Expr, f: &dyn Fn(usize) -> usize) -> Expr {
    e.transform(&mut |x| match x {
        Expr::Column(i) => Some(Expr::Column(f(*i))),
        _ => None,
    })
}

fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::And(v) => v,
        Expr::Literal(streamcore::row::Scalar::Bool(true)) => vec![],
        e => vec![e],
    }
}

fn is_identity(exprs: &[Expr], width: usize) -> bool {
    exprs.len() == width
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column(c) if *c == i))
}

/// Whether substituting `inner` into `outer` computes nothing twice: every inner expression
/// that is not a column or a constant is read at most once.
pub(crate) fn substitutable(outer: &[Expr], inner: &[Expr]) -> bool {
    let mut reads = Vec::new();
    for e in outer {
        e.columns(&mut reads);
    }
    inner.iter().enumerate().all(|(i, e)| {
        matches!(e, Expr::Column(_) | Expr::Literal(_))
            || reads.iter().filter(|&&r| r == i).count() <= 1
    })
}

/// `e` with each column `i` replaced by `inner[i]`.
pub(crate) fn substitute(e: &Expr, inner: &[Expr]) -> Expr {
    e.transform(&mut |x| match x {
        Expr::Column(i) => Some(inner[*i].clone()),
        _ => None,
    })
}

/// Prunes the columns nothing reads: first below joins ([`prune_join_inputs`]), then in
/// scans ([`prune_scans`]).
pub fn prune_columns(plan: Plan) -> Plan {
    prune_scans(prune_join_inputs(plan))
}

/// Drops the columns of a join's inputs that neither the projection above the join nor the
/// join's condition reads (Flink's projection push-down through joins): each input gets a
/// projection of the columns read — merged into the projection below it, so that its scan
/// is then pruned too — and the join keeps and buffers only those (also under a Top-N or
/// deduplication that does not select its row number). An interval join's time
/// attributes are kept, so its strategy and rowtime stay as they were (a regular join's
/// output has no rowtime). Top-down: the
/// inputs are pruned after the join above them has narrowed them.
pub fn prune_join_inputs(plan: Plan) -> Plan {
    let plan = match plan.node {
        Node::Project { input, exprs } => Plan {
            node: project_over_join(*input, exprs),
            ..plan
        },
        node => Plan { node, ..plan },
    };
    map_inputs(plan, &mut prune_join_inputs)
}

/// The projection `exprs` over `input`, where a join right below it — or below a Top-N or
/// deduplication that does not select its row number (q9), whose keys it then also reads —
/// has its inputs narrowed to what is read.
fn project_over_join(input: Plan, exprs: Vec<Expr>) -> Node {
    let no_rowtime = input.rowtime.is_none();
    match input.node {
        Node::Join { .. } => {
            let join = Plan {
                node: input.node,
                ..input
            };
            let (join, used) = narrow_join(join, &exprs);
            Node::Project {
                input: Box::new(join),
                exprs: exprs.iter().map(|e| renumbered(e, &used)).collect(),
            }
        }
        Node::Rank {
            input: join,
            partition,
            order,
            limit,
            number_selected: false,
        } if no_rowtime && matches!(join.node, Node::Join { .. }) => {
            let mut reads = exprs.clone();
            reads.extend(partition.iter().cloned());
            reads.extend(order.iter().map(|(e, _)| e.clone()));
            // The rank's fields are its input's and the row number's (never read here).
            let number = input.fields[join.fields.len()..].to_vec();
            let (join, used) = narrow_join(*join, &reads);
            let rank = Plan {
                fields: join.fields.iter().cloned().chain(number).collect(),
                updating: input.updating,
                rowtime: None,
                node: Node::Rank {
                    input: Box::new(join),
                    partition: partition.iter().map(|e| renumbered(e, &used)).collect(),
                    order: order
                        .iter()
                        .map(|(e, descending)| (renumbered(e, &used), *descending))
                        .collect(),
                    limit,
                    number_selected: false,
                },
            };
            Node::Project {
                input: Box::new(rank),
                exprs: exprs.iter().map(|e| renumbered(e, &used)).collect(),
            }
        }
        Node::ExtremeRows {
            input: inner,
            keys,
            value,
            max,
            window,
        } if matches!(inner.node, Node::Project { .. }) => {
            // The rows a window keeps hold only the columns read above, and its keys and
            // compared value.
            let width = inner.fields.len();
            let mut used = vec![value];
            used.extend(&keys);
            exprs.iter().for_each(|e| e.columns(&mut used));
            used.retain(|&c| c < width);
            used.sort_unstable();
            used.dedup();
            let at = |c: usize| used.binary_search(&c).unwrap_or(used.len());
            let Node::Project {
                input: below,
                exprs: inner_exprs,
            } = inner.node
            else {
                unreachable!("matched a projection")
            };
            let narrowed = Plan {
                fields: used.iter().map(|&c| inner.fields[c].clone()).collect(),
                updating: inner.updating,
                rowtime: inner.rowtime.and_then(|r| used.binary_search(&r).ok()),
                node: Node::Project {
                    input: below,
                    exprs: used.iter().map(|&c| inner_exprs[c].clone()).collect(),
                },
            };
            let rows = Plan {
                fields: narrowed
                    .fields
                    .iter()
                    .chain(&input.fields[width..])
                    .cloned()
                    .collect(),
                updating: input.updating,
                rowtime: narrowed.rowtime,
                node: Node::ExtremeRows {
                    input: Box::new(narrowed),
                    keys: keys.iter().map(|&c| at(c)).collect(),
                    value: at(value),
                    max,
                    window,
                },
            };
            Node::Project {
                input: Box::new(rows),
                exprs: exprs.iter().map(|e| map_columns(e, &at)).collect(),
            }
        }
        node => Node::Project {
            input: Box::new(Plan { node, ..input }),
            exprs,
        },
    }
}

/// `e` over the columns `used` kept of a row (all of them if `None`).
fn renumbered(e: &Expr, used: &Option<Vec<usize>>) -> Expr {
    match used {
        Some(used) => map_columns(e, &|c| used.binary_search(&c).expect("a kept column")),
        None => e.clone(),
    }
}

/// `join` with its inputs narrowed to the columns that `reads` (expressions over its output)
/// and its condition read, and those columns (sorted), if any went.
fn narrow_join(join: Plan, reads: &[Expr]) -> (Plan, Option<Vec<usize>>) {
    let Node::Join {
        left,
        right,
        kind,
        on,
        strategy,
        late,
    } = join.node
    else {
        unreachable!("matched a join")
    };
    let n = left.fields.len();
    let mut used = Vec::new();
    reads.iter().for_each(|e| e.columns(&mut used));
    on.columns(&mut used);
    // An input whose late rows go to its late-data table keeps its rows whole: they are what
    // its late rows are (the strategy is final here: pruning runs after the rewrites).
    let sends = crate::join::late_tables(kind, &strategy, &on, &left, &right, &late);
    if sends.left.is_some() {
        used.extend(0..n);
    }
    if sends.right.is_some() {
        used.extend(n..n + right.fields.len());
    }
    if matches!(strategy, JoinStrategy::Interval { .. }) {
        // Its time attributes bound the join (they are in `on`) and give its rowtime.
        used.extend(left.rowtime);
        used.extend(right.rowtime.map(|r| r + n));
    }
    used.sort_unstable();
    used.dedup();
    if used.len() == n + right.fields.len() {
        let join = Plan {
            node: Node::Join {
                left,
                right,
                kind,
                on,
                strategy,
                late,
            },
            ..join
        };
        return (join, None);
    }
    let split = used.partition_point(|&c| c < n);
    let narrow = |input: Plan, cols: Vec<usize>| {
        if cols.len() == input.fields.len() {
            return input;
        }
        let fields = cols.iter().map(|&c| input.fields[c].clone()).collect();
        let rowtime = input.rowtime.and_then(|r| cols.binary_search(&r).ok());
        let exprs = cols.iter().map(|&c| Expr::Column(c)).collect();
        rewrite(project_keeping(input, exprs, fields, rowtime))
    };
    let left = narrow(*left, used[..split].to_vec());
    let right = narrow(*right, used[split..].iter().map(|&c| c - n).collect());
    let used = Some(used);
    match make_join(left, right, kind, renumbered(&on, &used), late) {
        Ok(narrowed) => (narrowed, used),
        Err(_) => unreachable!("a join that planned before plans over fewer columns"),
    }
}

/// Prunes the columns of scans that nothing reads: a scan under a projection (with a filter
/// in between, or not) emits only the columns the projection and the filter read, so that a
/// connector never builds — or, for JSON, never parses — a value nobody uses.
pub fn prune_scans(plan: Plan) -> Plan {
    let plan = map_inputs(plan, &mut prune_scans);
    let Plan {
        node,
        fields,
        updating,
        rowtime,
    } = plan;
    let Node::Project { input, exprs } = node else {
        return Plan {
            node,
            fields,
            updating,
            rowtime,
        };
    };
    let rebuild = |input: Plan, exprs: Vec<Expr>| Plan {
        node: Node::Project {
            input: Box::new(input),
            exprs,
        },
        fields: fields.clone(),
        updating,
        rowtime,
    };
    let input = *input;
    let (scan, predicate) = match input.node {
        Node::Filter {
            input: inner,
            predicate,
        } if matches!(inner.node, Node::Scan { .. }) => (*inner, Some(predicate)),
        Node::Scan { .. } => (input, None),
        node => return rebuild(Plan { node, ..input }, exprs),
    };
    let mut used = Vec::new();
    exprs.iter().for_each(|e| e.columns(&mut used));
    if let Some(p) = &predicate {
        p.columns(&mut used);
    }
    used.sort_unstable();
    used.dedup();
    let Node::Scan { table, columns } = scan.node else {
        unreachable!("matched a scan")
    };
    if used.len() == columns.len() {
        let scan = Plan {
            node: Node::Scan { table, columns },
            ..scan
        };
        let input = match predicate {
            Some(predicate) => Plan {
                fields: scan.fields.clone(),
                updating: scan.updating,
                rowtime: scan.rowtime,
                node: Node::Filter {
                    input: Box::new(scan),
                    predicate,
                },
            },
            None => scan,
        };
        return rebuild(input, exprs);
    }
    let position = |c: usize| used.binary_search(&c).expect("a used column");
    let scan = Plan {
        fields: used.iter().map(|&c| scan.fields[c].clone()).collect(),
        rowtime: scan.rowtime.and_then(|r| used.binary_search(&r).ok()),
        updating: scan.updating,
        node: Node::Scan {
            columns: used.iter().map(|&c| columns[c]).collect(),
            table,
        },
    };
    let input = match predicate {
        Some(p) => Plan {
            fields: scan.fields.clone(),
            updating: scan.updating,
            rowtime: scan.rowtime,
            node: Node::Filter {
                input: Box::new(scan),
                predicate: map_columns(&p, &position),
            },
        },
        None => scan,
    };
    let exprs: Vec<Expr> = exprs.iter().map(|e| map_columns(e, &position)).collect();
    if is_identity(&exprs, input.fields.len()) {
        // The scan now emits exactly the projection's columns.
        return Plan {
            fields: fields.clone(),
            rowtime,
            ..input
        };
    }
    rebuild(input, exprs)
}

/// `plan` with `f` applied to each of its inputs.
pub(crate) fn map_inputs(plan: Plan, f: &mut dyn FnMut(Plan) -> Plan) -> Plan {
    let Plan {
        node,
        fields,
        updating,
        rowtime,
    } = plan;
    let mut b = |p: Box<Plan>| Box::new(f(*p));
    let node = match node {
        Node::Filter { input, predicate } => Node::Filter {
            input: b(input),
            predicate,
        },
        Node::Project { input, exprs } => Node::Project {
            input: b(input),
            exprs,
        },
        Node::WindowTvf {
            input,
            window,
            proctime,
        } => Node::WindowTvf {
            input: b(input),
            window,
            proctime,
        },
        Node::WindowAggregate {
            input,
            window,
            keys,
            aggs,
            upstream,
            proctime,
            late,
            lateness,
        } => Node::WindowAggregate {
            input: b(input),
            window,
            keys,
            aggs,
            upstream,
            proctime,
            late,
            lateness,
        },
        Node::Aggregate { input, keys, aggs } => Node::Aggregate {
            input: b(input),
            keys,
            aggs,
        },
        Node::UpdatingOver {
            input,
            partition,
            order,
            rows,
            aggs,
        } => Node::UpdatingOver {
            input: b(input),
            partition,
            order,
            rows,
            aggs,
        },
        Node::Join {
            left,
            right,
            kind,
            on,
            strategy,
            late,
        } => Node::Join {
            left: b(left),
            right: b(right),
            kind,
            on,
            strategy,
            late,
        },
        Node::Rank {
            input,
            partition,
            order,
            limit,
            number_selected,
        } => Node::Rank {
            input: b(input),
            partition,
            order,
            limit,
            number_selected,
        },
        Node::TemporalSort { input, order, late } => Node::TemporalSort {
            input: b(input),
            order,
            late,
        },
        Node::Unnest {
            input,
            expr,
            outer,
            ordinality,
        } => Node::Unnest {
            input: b(input),
            expr,
            outer,
            ordinality,
        },
        Node::TemporalJoin {
            left,
            right,
            keys,
            residual,
            left_outer,
            late,
        } => Node::TemporalJoin {
            left: b(left),
            right: b(right),
            keys,
            residual,
            left_outer,
            late,
        },
        Node::LookupJoin {
            input,
            table,
            keys,
            residual,
            left_outer,
        } => Node::LookupJoin {
            input: b(input),
            table,
            keys,
            residual,
            left_outer,
        },
        Node::Over {
            input,
            partition,
            frame,
            aggs,
            late,
        } => Node::Over {
            input: b(input),
            partition,
            frame,
            aggs,
            late,
        },
        Node::Union { inputs } => Node::Union {
            inputs: inputs.into_iter().map(&mut *f).collect(),
        },
        Node::ExtremeRows {
            input,
            keys,
            value,
            max,
            window,
        } => Node::ExtremeRows {
            input: b(input),
            keys,
            value,
            max,
            window,
        },
        Node::MatchRecognize { input, spec } => Node::MatchRecognize {
            input: b(input),
            spec,
        },
        leaf @ (Node::Scan { .. } | Node::Values { .. }) => leaf,
    };
    Plan {
        node,
        fields,
        updating,
        rowtime,
    }
}

/// `e` with column `column` replaced by `value` and simplified: constant parts folded,
/// `CASE` branches with constant conditions decided.
pub fn with_constant(e: &Expr, column: usize, value: &streamcore::row::Scalar) -> Expr {
    use streamcore::row::Scalar;
    e.transform(&mut |x| match x {
        Expr::Column(c) if *c == column => Some(Expr::Literal(value.clone())),
        Expr::Case(branches, otherwise) => {
            let mut kept = Vec::new();
            for (w, t) in branches {
                let w = with_constant(w, column, value).folded();
                let t = with_constant(t, column, value);
                match w {
                    Expr::Literal(Scalar::Bool(true)) if kept.is_empty() => {
                        return Some(t.folded())
                    }
                    Expr::Literal(Scalar::Bool(false) | Scalar::Null) => {}
                    w => kept.push((w, t)),
                }
            }
            let otherwise = with_constant(otherwise, column, value);
            Some(if kept.is_empty() {
                otherwise.folded()
            } else {
                Expr::Case(kept, Box::new(otherwise))
            })
        }
        _ => None,
    })
    .folded()
}
