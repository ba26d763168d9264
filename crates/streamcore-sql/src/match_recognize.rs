//! `MATCH_RECOGNIZE`: row pattern recognition planned onto the engine's CEP operator
//! ([`streamcore::cep`]).
//!
//! The binder hands over the bound input and the clause ([`bind`]); this module checks it
//! against what Flink accepts, turns `PATTERN (…)` into a [`Pattern`] of strictly contiguous
//! steps, and binds `DEFINE` and `MEASURES` expressions. Everything in them that looks at the
//! match — `v.col` of another variable, `PREV(col, n)`, `FIRST/LAST(v.col, n)`, aggregates over
//! a variable's rows, `MATCH_ROWTIME()` — becomes a *slot*: a value computed from the (partial)
//! match before the expression is evaluated over the row `[current row…, slots…]`. A `DEFINE`
//! without slots is a plain condition on the row (no partial-match look-ups at all).
//!
//! Flink's `WITHIN INTERVAL '…'` after `PATTERN (…)` has no place in sqlparser's AST: the token
//! pre-pass ([`move_within`]) moves it into `DEFINE` as the pseudo-variable [`WITHIN_SYMBOL`].

use crate::binder::{interval_ms, Binder};
use crate::catalog::PlanField;
use crate::error::PlanError;
use crate::expr::Expr;
use crate::plan::{AggFunc, Node, Plan};
use crate::types::SqlType;
use sqlparser::ast::{
    self, AfterMatchSkip as AstSkip, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    MatchRecognizePattern as P, MatchRecognizeSymbol, RepetitionQuantifier as Q, RowsPerMatch,
    Spanned, TableFactor,
};
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Word};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;
use streamcore::cep::{AfterMatchSkip, Match, PartialMatch, Pattern};
use streamcore::row::{Row, Scalar};
use streamcore::Stream;

/// The pseudo-variable that carries `WITHIN INTERVAL '…'` through sqlparser (see
/// [`move_within`]).
pub const WITHIN_SYMBOL: &str = "__streamcore_within";

/// Which rows a slot reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rows {
    /// The rows of a pattern variable (its index in the pattern).
    Var(usize),
    /// All rows of the match.
    All,
}

/// What a slot computes over its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// The column of the `n`th row from the end (0 = the last).
    Last(usize),
    /// The column of the `n`th row from the start (0 = the first).
    First(usize),
    /// An aggregate of the column (`None`: `COUNT(*)`).
    Agg(AggFunc),
}

/// A value computed from the (partial) match.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The rows it reads.
    pub rows: Rows,
    /// The input column (`None` for `COUNT(*)`).
    pub column: Option<usize>,
    /// What it computes.
    pub kind: SlotKind,
}

/// A bound `DEFINE` or `MEASURES` expression: evaluated over `[row…, slots…]`.
#[derive(Clone, Debug)]
pub struct MatchExpr {
    /// The expression.
    pub expr: Expr,
    /// The slots appended to the row, in order.
    pub slots: Vec<Slot>,
}

/// One pattern variable as a CEP step.
#[derive(Clone, Debug)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Fewest rows.
    pub min: u32,
    /// Most rows.
    pub max: u32,
    /// Greedy (the default) or reluctant (`?` after the quantifier).
    pub greedy: bool,
    /// Its `DEFINE` condition (`None`: any row).
    pub define: Option<MatchExpr>,
}

/// A planned `MATCH_RECOGNIZE`.
#[derive(Clone, Debug)]
pub struct MatchRecognize {
    /// The partition keys over the input.
    pub partition: Vec<Expr>,
    /// The pattern's variables, in order.
    pub vars: Vec<Variable>,
    /// `AFTER MATCH SKIP`.
    pub skip: AfterMatchSkip,
    /// `WITHIN`, ms.
    pub within: Option<i64>,
    /// The measures, over `[last row…, slots…]`.
    pub measures: Vec<MatchExpr>,
}

impl std::fmt::Display for MatchRecognize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pattern = self
            .vars
            .iter()
            .map(|v| {
                let q = match (v.min, v.max) {
                    (1, 1) => String::new(),
                    (lo, u32::MAX) => format!("{{{lo},}}"),
                    (lo, hi) => format!("{{{lo},{hi}}}"),
                };
                format!("{}{q}{}", v.name, if v.greedy { "" } else { "?" })
            })
            .collect::<Vec<_>>()
            .join(" ");
        write!(
            f,
            "partitionBy=[{}], pattern=[{pattern}], skip={:?}, within={:?}, define=[{}], measures=[{}]",
            self.partition
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.skip,
            self.within,
            self.vars
                .iter()
                .filter_map(|v| v.define.as_ref().map(|d| format!("{}: {} {:?}", v.name, d.expr, d.slots)))
                .collect::<Vec<_>>()
                .join("; "),
            self.measures
                .iter()
                .map(|m| format!("{} {:?}", m.expr, m.slots))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

fn unsupported(what: &str) -> PlanError {
    PlanError::unsupported(format!("{what} in MATCH_RECOGNIZE"))
}

/// Binds `MATCH_RECOGNIZE` (the table factor `tf`) over its bound input.
pub fn bind(binder: &Binder<'_>, input: Plan, tf: &TableFactor) -> Result<Plan, PlanError> {
    let TableFactor::MatchRecognize {
        partition_by,
        order_by,
        measures,
        rows_per_match,
        after_match_skip,
        pattern,
        symbols,
        alias,
        ..
    } = tf
    else {
        return Err(PlanError::invalid("not a MATCH_RECOGNIZE"));
    };
    if input.updating {
        return Err(PlanError::invalid(
            "MATCH_RECOGNIZE over an updating input (it takes append-only input, as in Flink)",
        )
        .at(tf.span()));
    }
    if let Some(RowsPerMatch::AllRows(_)) = rows_per_match {
        return Err(unsupported(
            "ALL ROWS PER MATCH (as in Flink: use ONE ROW PER MATCH)",
        ));
    }
    // ORDER BY: the rowtime, ascending.
    let order_error = || {
        PlanError::invalid(
            "MATCH_RECOGNIZE must be ordered by the input's rowtime (event-time) attribute, ascending, \
             as in Flink (ORDER BY <rowtime column> [ASC])",
        )
        .at(tf.span())
    };
    let Some(rowtime) = input.rowtime else {
        return Err(order_error());
    };
    match order_by.as_slice() {
        [o] if o
            .options
            .sort
            .as_ref()
            .is_none_or(|s| matches!(s, ast::OrderBySort::Asc)) =>
        {
            let (e, _) = binder.bind_row_expr(&o.expr, &input.fields)?;
            if !matches!(e, Expr::Column(c) if c == rowtime) {
                return Err(order_error());
            }
        }
        _ => return Err(order_error()),
    }
    // PATTERN.
    let mut vars: Vec<Variable> = Vec::new();
    let elements = match pattern {
        P::Concat(v) => v.iter().collect::<Vec<_>>(),
        p => vec![p],
    };
    for e in elements {
        let (sym, quantifier) = match e {
            P::Symbol(s) => (s, None),
            P::Repetition(inner, q) => match &**inner {
                P::Symbol(s) => (s, Some(q)),
                _ => return Err(unsupported("a quantified group")),
            },
            P::Group(_) => return Err(unsupported("a group `( … )` in PATTERN")),
            P::Alternation(_) => return Err(unsupported("an alternation `|` in PATTERN")),
            P::Permute(_) => return Err(unsupported("PERMUTE")),
            P::Exclude(_) => return Err(unsupported("an exclusion `{- … -}`")),
            P::Concat(_) => return Err(unsupported("a nested pattern")),
        };
        let MatchRecognizeSymbol::Named(name) = sym else {
            return Err(unsupported("the anchors `^` and `$`"));
        };
        let (min, max, greedy) = match quantifier {
            None => (1, 1, true),
            Some(q) => quantify(q)?,
        };
        if vars.iter().any(|v| v.name == name.value) {
            return Err(PlanError::invalid(format!(
                "the pattern variable `{}` appears twice in PATTERN",
                name.value
            ))
            .at(name.span));
        }
        vars.push(Variable {
            name: name.value.clone(),
            min,
            max,
            greedy,
            define: None,
        });
    }
    if vars[0].min == 0 {
        return Err(PlanError::invalid(
            "the first pattern variable must match at least one row (no `*`, `?` or `{0,…}` on it)",
        ));
    }
    let last = vars.last().expect("a pattern has a variable");
    if last.greedy && last.max > last.min {
        return Err(PlanError::invalid(format!(
            "a greedy quantifier on the last pattern variable `{}` is not supported (as in Flink): \
             end the pattern with a single variable or a reluctant quantifier (`{}+?`)",
            last.name, last.name
        )));
    }
    let names: Vec<String> = vars.iter().map(|v| v.name.clone()).collect();
    let var_index = |name: &Ident| {
        names.iter().position(|v| *v == name.value).ok_or_else(|| {
            PlanError::invalid(format!(
                "`{}` is not a variable of PATTERN ({})",
                name.value,
                names.join(" ")
            ))
            .at(name.span)
        })
    };
    let skip = match after_match_skip {
        None | Some(AstSkip::ToNextRow) => AfterMatchSkip::SkipToNext,
        Some(AstSkip::PastLastRow) => AfterMatchSkip::SkipPastLastEvent,
        Some(AstSkip::ToFirst(v)) => {
            var_index(v)?;
            AfterMatchSkip::SkipToFirst(v.value.clone())
        }
        Some(AstSkip::ToLast(v)) => {
            var_index(v)?;
            AfterMatchSkip::SkipToLast(v.value.clone())
        }
    };
    // DEFINE (and WITHIN).
    let mut within = None;
    for d in symbols {
        if d.symbol.value == WITHIN_SYMBOL {
            let ms = interval_ms(&d.definition)?;
            if ms <= 0 {
                return Err(
                    PlanError::invalid("WITHIN needs a positive interval").at(d.definition.span())
                );
            }
            within = Some(ms);
            continue;
        }
        let i = var_index(&d.symbol)?;
        if vars[i].define.is_some() {
            return Err(PlanError::invalid(format!(
                "the variable `{}` is defined twice",
                d.symbol.value
            ))
            .at(d.symbol.span));
        }
        let mut ctx = Rewrite {
            names: &names,
            fields: &input.fields,
            rowtime,
            defining: Some(i),
            slots: Vec::new(),
        };
        let rewritten = ctx.expr(&d.definition)?;
        let (expr, ty) = bind_with_slots(binder, &rewritten, &input.fields, &ctx.slots)?;
        if ty != SqlType::BOOLEAN && ty != SqlType::Null {
            return Err(PlanError::invalid(format!(
                "type mismatch: DEFINE {} needs a BOOLEAN condition, got {ty}",
                d.symbol.value
            ))
            .at(d.definition.span()));
        }
        vars[i].define = Some(MatchExpr {
            expr: expr.folded(),
            slots: ctx.slots,
        });
    }
    // Output: partition columns, then measures.
    let qualifier = alias.as_ref().map(|a| a.name.value.clone());
    let mut fields = Vec::new();
    let mut partition = Vec::new();
    for p in partition_by {
        let (e, ty) = binder.bind_row_expr(p, &input.fields)?;
        let Expr::Column(c) = e else {
            return Err(PlanError::invalid("PARTITION BY takes columns of the input").at(p.span()));
        };
        fields.push(PlanField {
            name: input.fields[c].name.clone(),
            qualifier: qualifier.clone(),
            ty,
        });
        partition.push(e);
    }
    let mut bound_measures = Vec::new();
    let mut out_rowtime = None;
    for m in measures {
        let mut ctx = Rewrite {
            names: &names,
            fields: &input.fields,
            rowtime,
            defining: None,
            slots: Vec::new(),
        };
        if is_match_rowtime(&m.expr) {
            out_rowtime = Some(fields.len());
        }
        let rewritten = ctx.expr(&m.expr)?;
        let (expr, ty) = bind_with_slots(binder, &rewritten, &input.fields, &ctx.slots)?;
        fields.push(PlanField {
            name: m.alias.value.clone(),
            qualifier: qualifier.clone(),
            ty,
        });
        bound_measures.push(MatchExpr {
            expr: expr.folded(),
            slots: ctx.slots,
        });
    }
    if let Some(a) = alias {
        if !a.columns.is_empty() {
            return Err(unsupported("column aliases on the MATCH_RECOGNIZE alias"));
        }
    }
    let spec = MatchRecognize {
        partition,
        vars,
        skip,
        within,
        measures: bound_measures,
    };
    pattern_of(&spec).validate().map_err(PlanError::invalid)?;
    Ok(Plan {
        fields,
        updating: false,
        rowtime: out_rowtime,
        node: Node::MatchRecognize {
            input: Box::new(input),
            spec: Arc::new(spec),
        },
    })
}

fn is_match_rowtime(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("MATCH_ROWTIME"))
}

/// `(min, max, greedy)` of a quantifier.
fn quantify(q: &Q) -> Result<(u32, u32, bool), PlanError> {
    Ok(match q {
        Q::ZeroOrMore => (0, u32::MAX, true),
        Q::OneOrMore => (1, u32::MAX, true),
        Q::AtMostOne => (0, 1, true),
        Q::Exactly(n) => (*n, *n, true),
        Q::AtLeast(n) => (*n, u32::MAX, true),
        Q::AtMost(m) => (0, *m, true),
        Q::Range(n, m) => {
            if n > m || *m == 0 {
                return Err(PlanError::invalid(format!("bad quantifier {{{n},{m}}}")));
            }
            (*n, *m, true)
        }
        Q::Reluctant(inner) => {
            if matches!(**inner, Q::Reluctant(_)) {
                return Err(PlanError::invalid("a doubly reluctant quantifier"));
            }
            let (lo, hi, _) = quantify(inner)?;
            (lo, hi, false)
        }
    })
}

/// Binds `e` over `[fields…, slots…]` (the slots are the columns `$mr0`, `$mr1`, …).
fn bind_with_slots(
    binder: &Binder<'_>,
    e: &ast::Expr,
    fields: &[PlanField],
    slots: &[Slot],
) -> Result<(Expr, SqlType), PlanError> {
    let mut all = fields.to_vec();
    for (i, s) in slots.iter().enumerate() {
        let ty = match (s.kind, s.column) {
            (SlotKind::Agg(AggFunc::Count), _) | (_, None) => {
                SqlType::Data(streamcore::row::DataType::BigInt)
            }
            (SlotKind::Agg(f), Some(c)) => {
                SqlType::Data(crate::binder::agg_type(f, &format!("{f:?}"), fields[c].ty)?)
            }
            (_, Some(c)) => fields[c].ty,
        };
        all.push(PlanField {
            name: format!("$mr{i}"),
            qualifier: None,
            ty,
        });
    }
    binder.bind_row_expr(e, &all)
}

/// Rewrites a DEFINE or MEASURES expression: references to the match become slot columns.
struct Rewrite<'a> {
    names: &'a [String],
    fields: &'a [PlanField],
    rowtime: usize,
    /// The variable a DEFINE defines (`None` in MEASURES).
    defining: Option<usize>,
    slots: Vec<Slot>,
}

impl Rewrite<'_> {
    fn slot(&mut self, slot: Slot, span: Span) -> ast::Expr {
        let i = match self.slots.iter().position(|s| *s == slot) {
            Some(i) => i,
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        ast::Expr::Identifier(Ident::with_span(span, format!("$mr{i}")))
    }

    fn column(&self, ident: &Ident) -> Result<usize, PlanError> {
        let found: Vec<usize> = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name == ident.value)
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(PlanError::invalid(format!(
                "unknown column `{}` in MATCH_RECOGNIZE",
                ident.value
            ))
            .at(ident.span)),
            _ => Err(
                PlanError::invalid(format!("column `{}` is ambiguous", ident.value)).at(ident.span),
            ),
        }
    }

    fn var(&self, ident: &Ident) -> Option<usize> {
        self.names.iter().position(|n| *n == ident.value)
    }

    /// `v.col` or `col`: the rows and the column.
    fn reference(&self, e: &ast::Expr) -> Result<(Rows, usize), PlanError> {
        match e {
            ast::Expr::Identifier(c) => Ok((Rows::All, self.column(c)?)),
            ast::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let Some(v) = self.var(&parts[0]) else {
                    return Err(PlanError::invalid(format!(
                        "`{}` is not a pattern variable",
                        parts[0].value
                    ))
                    .at(parts[0].span));
                };
                Ok((Rows::Var(v), self.column(&parts[1])?))
            }
            other => Err(PlanError::invalid(format!(
                "expected a column or `variable.column`, got `{other}`"
            ))
            .at(other.span())),
        }
    }

    fn expr(&mut self, e: &ast::Expr) -> Result<ast::Expr, PlanError> {
        use ast::Expr as E;
        let b = |x: ast::Expr| Box::new(x);
        Ok(match e {
            E::Identifier(c) if self.defining.is_none() && !c.value.starts_with('$') => {
                // MEASURES: a column of the match's last row.
                let column = self.column(c)?;
                self.slot(
                    Slot {
                        rows: Rows::All,
                        column: Some(column),
                        kind: SlotKind::Last(0),
                    },
                    c.span,
                )
            }
            E::CompoundIdentifier(parts) if parts.len() == 2 && self.var(&parts[0]).is_some() => {
                let v = self.var(&parts[0]).expect("checked");
                if Some(v) == self.defining {
                    // The row being tested.
                    E::Identifier(parts[1].clone())
                } else {
                    let column = self.column(&parts[1])?;
                    self.slot(
                        Slot {
                            rows: Rows::Var(v),
                            column: Some(column),
                            kind: SlotKind::Last(0),
                        },
                        parts[0].span,
                    )
                }
            }
            E::Function(f) => return self.function(f),
            E::BinaryOp { left, op, right } => E::BinaryOp {
                left: b(self.expr(left)?),
                op: op.clone(),
                right: b(self.expr(right)?),
            },
            E::UnaryOp { op, expr } => E::UnaryOp {
                op: *op,
                expr: b(self.expr(expr)?),
            },
            E::Nested(x) => E::Nested(b(self.expr(x)?)),
            E::IsNull(x) => E::IsNull(b(self.expr(x)?)),
            E::IsNotNull(x) => E::IsNotNull(b(self.expr(x)?)),
            E::IsTrue(x) => E::IsTrue(b(self.expr(x)?)),
            E::IsFalse(x) => E::IsFalse(b(self.expr(x)?)),
            E::Between {
                expr,
                negated,
                low,
                high,
            } => E::Between {
                expr: b(self.expr(expr)?),
                negated: *negated,
                low: b(self.expr(low)?),
                high: b(self.expr(high)?),
            },
            E::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => E::Like {
                negated: *negated,
                any: *any,
                expr: b(self.expr(expr)?),
                pattern: b(self.expr(pattern)?),
                escape_char: escape_char.clone(),
            },
            E::Cast {
                kind,
                expr,
                data_type,
                format,
            } => E::Cast {
                kind: kind.clone(),
                expr: b(self.expr(expr)?),
                data_type: data_type.clone(),
                format: format.clone(),
            },
            E::Case {
                case_token,
                end_token,
                operand,
                conditions,
                else_result,
            } => E::Case {
                case_token: case_token.clone(),
                end_token: end_token.clone(),
                operand: match operand {
                    Some(o) => Some(b(self.expr(o)?)),
                    None => None,
                },
                conditions: conditions
                    .iter()
                    .map(|w| {
                        Ok(ast::CaseWhen {
                            condition: self.expr(&w.condition)?,
                            result: self.expr(&w.result)?,
                        })
                    })
                    .collect::<Result<_, PlanError>>()?,
                else_result: match else_result {
                    Some(x) => Some(b(self.expr(x)?)),
                    None => None,
                },
            },
            other => other.clone(),
        })
    }

    fn function(&mut self, f: &ast::Function) -> Result<ast::Expr, PlanError> {
        let name = f.name.to_string().to_ascii_uppercase();
        let args: Vec<&FunctionArgExpr> = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(x) => Ok(x),
                    _ => Err(PlanError::invalid(format!("{name}: named arguments")).at(f.span())),
                })
                .collect::<Result<_, _>>()?,
            FunctionArguments::None => vec![],
            FunctionArguments::Subquery(_) => {
                return Err(unsupported("a subquery").at(f.span()));
            }
        };
        let offset = |a: Option<&&FunctionArgExpr>| -> Result<usize, PlanError> {
            match a {
                None => Ok(0),
                Some(FunctionArgExpr::Expr(ast::Expr::Value(v))) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<usize>().map_err(|_| {
                        PlanError::invalid(format!(
                            "{name}: the offset must be a non-negative integer"
                        ))
                    }),
                    _ => Err(PlanError::invalid(format!(
                        "{name}: the offset must be a non-negative integer literal"
                    ))),
                },
                Some(_) => Err(PlanError::invalid(format!(
                    "{name}: the offset must be a non-negative integer literal"
                ))
                .at(f.span())),
            }
        };
        let arg = |i: usize| -> Result<&ast::Expr, PlanError> {
            match args.get(i) {
                Some(FunctionArgExpr::Expr(x)) => Ok(x),
                _ => Err(
                    PlanError::invalid(format!("{name}: expected a column argument")).at(f.span()),
                ),
            }
        };
        let span = f.span();
        match name.as_str() {
            "NEXT" => Err(unsupported("NEXT (as in Flink)").at(span)),
            "PREV" | "LAST" | "FIRST" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(
                        PlanError::invalid(format!("{name} takes (column [, offset])")).at(span),
                    );
                }
                let (rows, column) = self.reference(arg(0)?)?;
                let n = offset(args.get(1))?;
                let (rows, kind) = match name.as_str() {
                    // The row `n` (default 1) before the current one (the last one in
                    // MEASURES), whatever variable it was mapped to.
                    "PREV" => (
                        Rows::All,
                        SlotKind::Last(if args.len() == 1 { 1 } else { n }),
                    ),
                    "LAST" => (rows, SlotKind::Last(n)),
                    _ => (rows, SlotKind::First(n)),
                };
                Ok(self.slot(
                    Slot {
                        rows,
                        column: Some(column),
                        kind,
                    },
                    span,
                ))
            }
            "COUNT" | "SUM" | "AVG" | "MIN" | "MAX" => {
                let func = match name.as_str() {
                    "COUNT" => AggFunc::Count,
                    "SUM" => AggFunc::Sum,
                    "AVG" => AggFunc::Avg,
                    "MIN" => AggFunc::Min,
                    _ => AggFunc::Max,
                };
                if let FunctionArguments::List(l) = &f.args {
                    if l.duplicate_treatment.is_some() {
                        return Err(unsupported("DISTINCT in an aggregate").at(span));
                    }
                }
                if f.filter.is_some() || f.over.is_some() {
                    return Err(unsupported("FILTER or OVER on an aggregate").at(span));
                }
                let (rows, column) = match args.as_slice() {
                    [FunctionArgExpr::Wildcard] if func == AggFunc::Count => (Rows::All, None),
                    [FunctionArgExpr::QualifiedWildcard(n)] if func == AggFunc::Count => {
                        let v =
                            n.0.first()
                                .and_then(|p| p.as_ident())
                                .and_then(|i| self.var(i));
                        match v {
                            Some(v) => (Rows::Var(v), None),
                            None => {
                                return Err(PlanError::invalid(format!(
                                    "`{n}.*` does not name a pattern variable"
                                ))
                                .at(span))
                            }
                        }
                    }
                    [FunctionArgExpr::Expr(x)] => {
                        let (rows, c) = self.reference(x)?;
                        (rows, Some(c))
                    }
                    _ => {
                        return Err(PlanError::invalid(format!("{name} takes one column")).at(span))
                    }
                };
                Ok(self.slot(
                    Slot {
                        rows,
                        column,
                        kind: SlotKind::Agg(func),
                    },
                    span,
                ))
            }
            "MATCH_ROWTIME" => {
                if self.defining.is_some() {
                    return Err(PlanError::invalid(
                        "MATCH_ROWTIME() is a measure, not a condition",
                    )
                    .at(span));
                }
                Ok(self.slot(
                    Slot {
                        rows: Rows::All,
                        column: Some(self.rowtime),
                        kind: SlotKind::Last(0),
                    },
                    span,
                ))
            }
            "MATCH_PROCTIME" | "CLASSIFIER" | "MATCH_NUMBER" | "RUNNING" | "FINAL" => {
                Err(unsupported(&format!("{name}()")).at(span))
            }
            _ => {
                // Another function: its arguments may refer to the match.
                let mut g = f.clone();
                if let FunctionArguments::List(l) = &mut g.args {
                    for a in &mut l.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            *x = self.expr(x)?;
                        }
                    }
                }
                Ok(ast::Expr::Function(g))
            }
        }
    }
}

/// Moves Flink's `WITHIN INTERVAL '…' UNIT` (after MATCH_RECOGNIZE's `PATTERN (…)`, where
/// sqlparser has no place for it) to the front of `DEFINE` as `__streamcore_within AS
/// INTERVAL '…' UNIT,` so that it survives parsing; [`bind`] takes it out again. Positions of
/// the moved tokens are kept, so errors in the interval point at the right place.
pub fn move_within(tokens: &mut Vec<TokenWithSpan>) {
    let is_word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let significant = |tokens: &[TokenWithSpan], from: usize| {
        (from..tokens.len()).find(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
    };
    let mut i = 0;
    while i < tokens.len() {
        if !is_word(&tokens[i].token, "PATTERN") {
            i += 1;
            continue;
        }
        // PATTERN ( … ): find the closing parenthesis.
        let Some(open) = significant(tokens, i + 1) else {
            return;
        };
        if tokens[open].token != Token::LParen {
            i += 1;
            continue;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (j, t) in tokens.iter().enumerate().skip(open) {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { return };
        let Some(w) = significant(tokens, close + 1) else {
            return;
        };
        if !is_word(&tokens[w].token, "WITHIN") {
            i = close + 1;
            continue;
        }
        let Some(define) = (w + 1..tokens.len()).find(|&j| is_word(&tokens[j].token, "DEFINE"))
        else {
            return;
        };
        let span = tokens[w].span;
        let interval: Vec<TokenWithSpan> = tokens.drain(w + 1..define).collect();
        tokens.remove(w);
        // `define` moved left by the drained tokens and WITHIN itself.
        let at = define - interval.len() - 1 + 1;
        let mut insert = vec![
            TokenWithSpan::new(
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                span,
            ),
            TokenWithSpan::new(
                Token::Word(Word {
                    value: WITHIN_SYMBOL.to_string(),
                    quote_style: None,
                    keyword: sqlparser::keywords::Keyword::NoKeyword,
                }),
                span,
            ),
            TokenWithSpan::new(
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                span,
            ),
            TokenWithSpan::new(
                Token::Word(Word {
                    value: "AS".to_string(),
                    quote_style: None,
                    keyword: sqlparser::keywords::Keyword::AS,
                }),
                span,
            ),
        ];
        insert.extend(interval);
        insert.push(TokenWithSpan::new(Token::Comma, span));
        let n = insert.len();
        tokens.splice(at..at, insert);
        i = at + n;
    }
}

/// The CEP pattern of a planned `MATCH_RECOGNIZE`: one strictly contiguous step per variable.
pub fn pattern_of(spec: &MatchRecognize) -> Pattern<Row> {
    let mut pattern: Option<Pattern<Row>> = None;
    for (i, v) in spec.vars.iter().enumerate() {
        let simple: Option<Expr> = v
            .define
            .as_ref()
            .filter(|d| d.slots.is_empty())
            .map(|d| d.expr.clone());
        let condition = move |r: &Row| {
            simple
                .as_ref()
                .is_none_or(|e| e.test(&r.values).unwrap_or(false))
        };
        let mut p = match pattern {
            None => Pattern::begin(&v.name, condition),
            Some(p) => p.next(&v.name, condition),
        };
        if let Some(d) = v.define.as_ref().filter(|d| !d.slots.is_empty()) {
            let d = d.clone();
            p = p
                .where_partial(move |r: &Row, m: &PartialMatch<'_, Row>| define_holds(&d, i, r, m));
        }
        if v.max > 1 {
            p = p.times_range(v.min.max(1)..=v.max).consecutive();
        }
        if v.min == 0 {
            p = p.optional();
        }
        if v.greedy && v.max > v.min {
            p = p.greedy();
        }
        pattern = Some(p);
    }
    let mut p = pattern
        .expect("a pattern has a variable")
        .skip(spec.skip.clone());
    if let Some(w) = spec.within {
        p = p.within(Duration::from_millis(w as u64));
    }
    p
}

thread_local! {
    /// The row a match expression is evaluated over, reused between evaluations.
    static SCRATCH: RefCell<Vec<Scalar>> = const { RefCell::new(Vec::new()) };
}

/// Evaluates `e` over `[base…, slot values…]`, the slot values from `slot`.
fn eval_with(e: &MatchExpr, base: &Row, slot: impl Fn(&Slot) -> Scalar) -> Scalar {
    SCRATCH.with(|s| {
        let mut row = std::mem::take(&mut *s.borrow_mut());
        row.clear();
        row.extend(base.values.iter().cloned());
        row.extend(e.slots.iter().map(&slot));
        let v = e.expr.eval(&row).unwrap_or(Scalar::Null);
        *s.borrow_mut() = row;
        v
    })
}

/// Whether `row` may be the next row of variable `var` after the partial match `m`.
fn define_holds(d: &MatchExpr, var: usize, row: &Row, m: &PartialMatch<'_, Row>) -> bool {
    let v = eval_with(d, row, |s| match s.rows {
        Rows::Var(v) if v == var => slot_value(s, m.step(v).chain(std::iter::once(row))),
        Rows::Var(v) => slot_value(s, m.step(v)),
        Rows::All => slot_value(s, m.events().chain(std::iter::once(row))),
    });
    matches!(v, Scalar::Bool(true))
}

/// A slot's value over its rows.
fn slot_value<'a>(s: &Slot, mut rows: impl DoubleEndedIterator<Item = &'a Row>) -> Scalar {
    let col = |r: &Row| s.column.map_or(Scalar::Null, |c| r.values[c].clone());
    match s.kind {
        SlotKind::Last(n) => rows.nth_back(n).map_or(Scalar::Null, col),
        SlotKind::First(n) => rows.nth(n).map_or(Scalar::Null, col),
        SlotKind::Agg(func) => {
            let Some(c) = s.column else {
                return Scalar::Int(rows.count() as i64);
            };
            let mut n = 0i64;
            let mut acc = Scalar::Null;
            for r in rows {
                let v = &r.values[c];
                if v.is_null() {
                    continue;
                }
                n += 1;
                acc = match (func, &acc) {
                    (_, Scalar::Null) => v.clone(),
                    (AggFunc::Min, a) => {
                        if v < a {
                            v.clone()
                        } else {
                            acc
                        }
                    }
                    (AggFunc::Max, a) => {
                        if v > a {
                            v.clone()
                        } else {
                            acc
                        }
                    }
                    (_, a) => add(a, v),
                };
            }
            match func {
                AggFunc::Count => Scalar::Int(n),
                AggFunc::Avg if n > 0 => match acc {
                    Scalar::Int(v) => Scalar::Int(v / n),
                    Scalar::Float(v) => Scalar::float(v.get() / n as f64),
                    Scalar::Decimal(d) => Scalar::Decimal(d / rust_decimal::Decimal::from(n)),
                    other => other,
                },
                _ => acc,
            }
        }
    }
}

fn add(a: &Scalar, b: &Scalar) -> Scalar {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Scalar::Int(x.wrapping_add(*y)),
        (Scalar::Float(x), Scalar::Float(y)) => Scalar::float(x.get() + y.get()),
        (Scalar::Decimal(x), Scalar::Decimal(y)) => Scalar::Decimal(x + y),
        _ => Scalar::Null,
    }
}

/// The output row of a match: partition columns, then measures; its time is the last row's.
pub fn output(spec: &MatchRecognize, m: &Match<Row>) -> Row {
    let all: Vec<&Row> = m.events().collect();
    let last = *all.last().expect("a match has rows");
    let first = all[0];
    let by_var: Vec<&[Row]> = spec.vars.iter().map(|v| m.get(&v.name)).collect();
    let mut values: Vec<Scalar> = Vec::with_capacity(spec.partition.len() + spec.measures.len());
    for p in &spec.partition {
        values.push(p.eval(&first.values).unwrap_or(Scalar::Null));
    }
    for e in &spec.measures {
        values.push(eval_with(e, last, |s| match s.rows {
            Rows::Var(v) => slot_value(s, by_var[v].iter()),
            Rows::All => slot_value(s, all.iter().copied()),
        }));
    }
    let mut row: Row = values.into_iter().collect();
    row.time = last.time;
    row
}

/// Plans a `MATCH_RECOGNIZE` over its (append-only) input: keyed by the partition, matched by
/// the CEP operator (id `uid`), each match turned into its output row.
pub fn build(input: Stream<Row>, spec: &Arc<MatchRecognize>, uid: &str) -> Stream<Row> {
    let partition: Arc<[Expr]> = spec.partition.clone().into();
    let pattern = pattern_of(spec);
    let out = spec.clone();
    input
        .key_by(move |r: &Row| -> Row {
            partition
                .iter()
                .map(|e| e.eval(&r.values).unwrap_or(Scalar::Null))
                .collect()
        })
        .pattern(pattern)
        .name("Match")
        .uid(uid)
        .map(move |m| output(&out, &m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse_script, FlinkStatement};
    use sqlparser::ast::{SetExpr, Statement};

    fn match_recognize(sql: &str) -> TableFactor {
        let statements = parse_script(sql).expect("parses");
        let FlinkStatement::Sql(Statement::Query(q)) = &statements[0] else {
            panic!("not a query")
        };
        let SetExpr::Select(s) = &*q.body else {
            panic!("not a select")
        };
        s.from[0].relation.clone()
    }

    #[test]
    fn within_moves_into_define() {
        let tf = match_recognize(
            "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts MEASURES A.v AS a \
             PATTERN (A (B C)+) WITHIN INTERVAL '10' MINUTE DEFINE A AS A.v > 1) AS m",
        );
        let TableFactor::MatchRecognize { symbols, alias, .. } = tf else {
            panic!("not MATCH_RECOGNIZE")
        };
        assert_eq!(symbols.len(), 2);
        assert_eq!(symbols[0].symbol.value, WITHIN_SYMBOL);
        assert_eq!(interval_ms(&symbols[0].definition).unwrap(), 600_000);
        assert_eq!(symbols[1].symbol.value, "A");
        assert_eq!(alias.unwrap().name.value, "m");
    }

    #[test]
    fn without_within_nothing_moves() {
        let tf = match_recognize(
            "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts MEASURES A.v AS a \
             PATTERN (A B) DEFINE A AS A.s = 'WITHIN')",
        );
        let TableFactor::MatchRecognize { symbols, .. } = tf else {
            panic!("not MATCH_RECOGNIZE")
        };
        assert_eq!(symbols.len(), 1);
        assert_eq!(symbols[0].symbol.value, "A");
    }

    #[test]
    fn an_error_in_the_interval_points_at_it() {
        let e = parse_script(
            "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts MEASURES A.v AS a\n\
             PATTERN (A B) WITHIN INTERVAL '10' MINUTE ) DEFINE A AS true)",
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
    }

    fn slot(rows: Rows, kind: SlotKind) -> Slot {
        Slot {
            rows,
            column: Some(0),
            kind,
        }
    }

    #[test]
    fn slots_over_rows() {
        let rows: Vec<Row> = [3i64, 1, 4, 1, 5]
            .iter()
            .map(|v| std::iter::once(Scalar::Int(*v)).collect())
            .collect();
        let v = |kind| slot_value(&slot(Rows::All, kind), rows.iter());
        assert_eq!(v(SlotKind::Last(0)), Scalar::Int(5));
        assert_eq!(v(SlotKind::Last(1)), Scalar::Int(1));
        assert_eq!(v(SlotKind::Last(5)), Scalar::Null);
        assert_eq!(v(SlotKind::First(2)), Scalar::Int(4));
        assert_eq!(v(SlotKind::Agg(AggFunc::Sum)), Scalar::Int(14));
        assert_eq!(v(SlotKind::Agg(AggFunc::Avg)), Scalar::Int(2));
        assert_eq!(v(SlotKind::Agg(AggFunc::Min)), Scalar::Int(1));
        assert_eq!(v(SlotKind::Agg(AggFunc::Max)), Scalar::Int(5));
        assert_eq!(v(SlotKind::Agg(AggFunc::Count)), Scalar::Int(5));
        let none: Vec<Row> = Vec::new();
        let e = |kind| slot_value(&slot(Rows::All, kind), none.iter());
        assert_eq!(e(SlotKind::Agg(AggFunc::Sum)), Scalar::Null);
        assert_eq!(e(SlotKind::Agg(AggFunc::Avg)), Scalar::Null);
        assert_eq!(e(SlotKind::Agg(AggFunc::Count)), Scalar::Int(0));
    }
}
