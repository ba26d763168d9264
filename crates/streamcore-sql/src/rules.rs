//! Rewrites of the logical plan before it becomes operators: adjacent projections merge into
//! one, filters move below projections (down to the scan, where a `nexmark` scan can make
//! only the event kind the filter keeps), adjacent filters merge, and identity projections
//! go. Each rewrite keeps the plan's output, its changelog mode and its rowtime.

use crate::binder::project;
use crate::expr::Expr;
use crate::plan::{Node, Plan};

/// Applies the rewrites bottom-up until none applies.
pub fn optimize(plan: Plan) -> Plan {
    let Plan {
        node,
        fields,
        updating,
        rowtime,
    } = plan;
    let node = match node {
        Node::Filter { input, predicate } => Node::Filter {
            input: Box::new(optimize(*input)),
            predicate,
        },
        Node::Project { input, exprs } => Node::Project {
            input: Box::new(optimize(*input)),
            exprs,
        },
        Node::WindowTvf { input, window } => Node::WindowTvf {
            input: Box::new(optimize(*input)),
            window,
        },
        Node::WindowAggregate {
            input,
            window,
            keys,
            aggs,
        } => Node::WindowAggregate {
            input: Box::new(optimize(*input)),
            window,
            keys,
            aggs,
        },
        Node::Aggregate { input, keys, aggs } => Node::Aggregate {
            input: Box::new(optimize(*input)),
            keys,
            aggs,
        },
        Node::Union { inputs } => Node::Union {
            inputs: inputs.into_iter().map(optimize).collect(),
        },
        leaf => leaf,
    };
    rewrite(Plan {
        node,
        fields,
        updating,
        rowtime,
    })
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

fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::And(v) => v,
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
fn substitutable(outer: &[Expr], inner: &[Expr]) -> bool {
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
fn substitute(e: &Expr, inner: &[Expr]) -> Expr {
    let s = |x: &Expr| Box::new(substitute(x, inner));
    match e {
        Expr::Column(i) => inner[*i].clone(),
        Expr::Literal(v) => Expr::Literal(v.clone()),
        Expr::Arith(op, l, r, t) => Expr::Arith(*op, s(l), s(r), *t),
        Expr::Cmp(op, l, r) => Expr::Cmp(*op, s(l), s(r)),
        Expr::And(v) => Expr::And(v.iter().map(|x| substitute(x, inner)).collect()),
        Expr::Or(v) => Expr::Or(v.iter().map(|x| substitute(x, inner)).collect()),
        Expr::Not(x) => Expr::Not(s(x)),
        Expr::Neg(x) => Expr::Neg(s(x)),
        Expr::IsNull(x, n) => Expr::IsNull(s(x), *n),
        Expr::Case(b, x) => Expr::Case(
            b.iter()
                .map(|(w, t)| (substitute(w, inner), substitute(t, inner)))
                .collect(),
            s(x),
        ),
        Expr::Cast(x, t) => Expr::Cast(s(x), *t),
        Expr::InList(x, l, n) => Expr::InList(s(x), l.clone(), *n),
        Expr::Like(x, p, n) => Expr::Like(s(x), p.clone(), *n),
        Expr::Call(f, args) => Expr::Call(
            f.clone(),
            args.iter().map(|x| substitute(x, inner)).collect(),
        ),
    }
}
