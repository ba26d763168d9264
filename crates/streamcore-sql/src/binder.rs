//! The binder: a parsed query (sqlparser's AST) into a logical [`Plan`] — names resolved to
//! column positions against the catalog, types checked, aggregates and windows recognized —
//! with every error placed at the line and column of the text it is about.

use crate::catalog::{Catalog, ColumnSource, PlanField, Relation, TableDef};
use crate::error::{did_you_mean, PlanError};
use crate::expr::{CmpOp, Expr, LikePattern};
use crate::functions::time::TimeFunction;
use crate::functions::{scalar_function_names, udf_type, ScalarFunction, TimeUnit};
use crate::join::{make_join, window_of, WindowBound};
use crate::plan::{AggCall, AggFunc, JoinKind, JoinLate, Node, Plan, WindowKind};
use crate::types::{from_ast, numeric_result, ArithOp, IntervalKind, SqlType};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sqlparser::ast::{
    self, BinaryOperator, DateTimeField, Distinct, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectName, Query, Select, SelectItem, SetExpr,
    SetOperator, SetQuantifier, Spanned, TableFactor, TableWithJoins, UnaryOperator, Value,
};
use std::sync::Arc;
use streamcore::row::{ArrayType, DataType, MapType, Scalar};

/// Binds queries against a catalog.
pub struct Binder<'a> {
    catalog: &'a Catalog,
    depth: usize,
    /// The common table expressions in scope (`WITH name AS (…)`), innermost last: a name
    /// found here shadows the catalog's.
    ctes: Vec<(String, Query)>,
    /// The named windows of the SELECT being bound (`WINDOW w AS (…)`).
    windows: Vec<(String, ast::WindowSpec)>,
}

/// What an aggregate's output offers to the expressions after it (SELECT, HAVING).
struct AggScope {
    /// The input the aggregate reads (for "not grouped" messages).
    input: Vec<PlanField>,
    /// Group expressions by their text, and their output column.
    groups: Vec<(String, usize)>,
    /// Aggregate calls by their text, and their output column.
    aggs: Vec<(String, usize)>,
    /// `window_start`, `window_end`, `window_time` output columns of a window aggregate.
    window: Option<[usize; 3]>,
}

/// Names in scope for an expression.
struct Scope<'s> {
    fields: &'s [PlanField],
    agg: Option<&'s AggScope>,
}

pub(crate) const AGGREGATES: &[&str] = &[
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "VAR_POP",
    "VAR_SAMP",
    "VARIANCE",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STDDEV",
    "FIRST_VALUE",
    "LAST_VALUE",
    "LISTAGG",
];

/// The built-in functions bound outside [`ScalarFunction::resolve`]: `MOD`, the Top-N's
/// `ROW_NUMBER`, the window table functions (also legacy `GROUP BY` windows) and the legacy
/// windows' `…_START`/`…_END`/`…_ROWTIME`, and `MATCH_RECOGNIZE`'s navigation functions.
pub(crate) const OTHER_FUNCTIONS: &[&str] = &[
    "MOD",
    "ROW_NUMBER",
    "TUMBLE",
    "HOP",
    "SESSION",
    "CUMULATE",
    "TUMBLE_START",
    "TUMBLE_END",
    "TUMBLE_ROWTIME",
    "HOP_START",
    "HOP_END",
    "HOP_ROWTIME",
    "SESSION_START",
    "SESSION_END",
    "SESSION_ROWTIME",
    "PREV",
    "FIRST",
    "LAST",
    "MATCH_ROWTIME",
];

fn is_aggregate(f: &Function) -> bool {
    f.over.is_none() && AGGREGATES.contains(&name_of(&f.name).to_ascii_uppercase().as_str())
}

pub(crate) fn name_of(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.clone(),
            None => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn field(name: &str, qualifier: Option<&str>, ty: SqlType) -> PlanField {
    PlanField {
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
        ty,
    }
}

/// The positional arguments of a function call.
fn args_of(f: &Function) -> Result<Vec<&ast::Expr>, PlanError> {
    match &f.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(PlanError::unsupported(format!(
                    "the argument `{other}` of {} (named arguments and wildcards)",
                    name_of(&f.name)
                ))
                .at(f.span())),
            })
            .collect(),
        FunctionArguments::Subquery(_) => {
            Err(PlanError::unsupported("a subquery as a function argument").at(f.span()))
        }
    }
}

/// The milliseconds of an `INTERVAL` literal of fixed length (a day-time interval: windows,
/// watermarks, frames, `WITHIN`); a year-month interval is refused here.
pub fn interval_ms(e: &ast::Expr) -> Result<i64, PlanError> {
    match interval_value(e)? {
        (IntervalKind::YearMonth, _) => Err(PlanError::invalid(format!(
            "the interval `{e}` is in months or years, which have no fixed length: use DAY, HOUR, MINUTE, SECOND or MILLISECOND here"
        ))
        .at(e.span())),
        (_, ms) => Ok(ms),
    }
}

/// The kind and value of an `INTERVAL` literal: milliseconds for a day-time interval, months
/// for a year-month one. The text is a single number for a single unit (`'10' SECOND`, `'1.5'
/// SECOND`, `'-2' DAY`), or Flink's (SQL's) fields for a range of units: `'1-6' YEAR TO
/// MONTH`, `'2 12' DAY TO HOUR`, `'2 12:30' DAY TO MINUTE`, `'2 12:30:15.250' DAY TO SECOND`,
/// `'1:30' HOUR TO MINUTE`, `'1:30:15' HOUR TO SECOND`, `'30:15.5' MINUTE TO SECOND`; a
/// leading `-` negates it all; every field after the first is within its unit (an hour below
/// 24, a minute or second below 60, a month below 12).
pub fn interval_value(e: &ast::Expr) -> Result<(IntervalKind, i64), PlanError> {
    let ast::Expr::Interval(iv) = e else {
        return Err(PlanError::invalid(format!("expected an INTERVAL, got `{e}`")).at(e.span()));
    };
    let text = match iv.value.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    // The units of an interval qualifier (YEAR to MILLISECOND).
    use TimeUnit as Unit;
    let unit = |f: &DateTimeField| -> Result<Unit, PlanError> {
        Ok(match f {
            DateTimeField::Year | DateTimeField::Years => Unit::Year,
            DateTimeField::Month | DateTimeField::Months => Unit::Month,
            DateTimeField::Day | DateTimeField::Days => Unit::Day,
            DateTimeField::Hour | DateTimeField::Hours => Unit::Hour,
            DateTimeField::Minute | DateTimeField::Minutes => Unit::Minute,
            DateTimeField::Second | DateTimeField::Seconds => Unit::Second,
            DateTimeField::Millisecond | DateTimeField::Milliseconds => Unit::Millisecond,
            other => {
                let units = "YEAR, MONTH, DAY, HOUR, MINUTE, SECOND or MILLISECOND";
                let message = format!("intervals in {other} (use {units})");
                return Err(PlanError::unsupported(message).at(e.span()));
            }
        })
    };
    let leading = iv
        .leading_field
        .as_ref()
        .map(unit)
        .transpose()?
        .unwrap_or(Unit::Second);
    let last = iv
        .last_field
        .as_ref()
        .map(unit)
        .transpose()?
        .unwrap_or(leading);
    // The units from the leading to the last, and each one's size (ms or months) and bound
    // as a field after the first.
    const YEAR_MONTH: [(Unit, i64, i64); 2] = [(Unit::Year, 12, 0), (Unit::Month, 1, 12)];
    const DAY_TIME: [(Unit, i64, i64); 5] = [
        (Unit::Day, 86_400_000, 0),
        (Unit::Hour, 3_600_000, 24),
        (Unit::Minute, 60_000, 60),
        (Unit::Second, 1_000, 60),
        (Unit::Millisecond, 1, 1_000),
    ];
    let year_month = matches!(leading, Unit::Year | Unit::Month);
    let family: &[(Unit, i64, i64)] = if year_month { &YEAR_MONTH } else { &DAY_TIME };
    let position = |u: Unit| family.iter().position(|(f, _, _)| *f == u);
    let (Some(from), Some(to)) = (position(leading), position(last)) else {
        return Err(PlanError::invalid(format!(
            "the interval `{e}` mixes months or years with days or time"
        ))
        .at(e.span()));
    };
    if to < from || (last != leading && last == Unit::Millisecond) {
        return Err(PlanError::invalid(format!(
            "the interval `{e}`: not a range of units (YEAR TO MONTH, DAY TO HOUR, DAY TO MINUTE, DAY TO SECOND, HOUR TO MINUTE, HOUR TO SECOND, MINUTE TO SECOND)"
        ))
        .at(e.span()));
    }
    let units = &family[from..=to];
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    // The fields: `y-m`; `d h:m:s` (a space after the days, colons between the others).
    let fields: Vec<&str> = if units.len() == 1 {
        vec![body]
    } else if year_month {
        body.split('-').collect()
    } else if units[0].0 == Unit::Day {
        match body.split_once(' ') {
            Some((days, time)) => std::iter::once(days).chain(time.split(':')).collect(),
            None => vec![body],
        }
    } else {
        body.split(':').collect()
    };
    let shape = || {
        let example = match (units[0].0, units[units.len() - 1].0) {
            (Unit::Year, Unit::Month) => "'1-6' YEAR TO MONTH",
            (Unit::Day, Unit::Hour) => "'2 12' DAY TO HOUR",
            (Unit::Day, Unit::Minute) => "'2 12:30' DAY TO MINUTE",
            (Unit::Day, Unit::Second) => "'2 12:30:15.5' DAY TO SECOND",
            (Unit::Hour, Unit::Minute) => "'1:30' HOUR TO MINUTE",
            (Unit::Hour, Unit::Second) => "'1:30:15' HOUR TO SECOND",
            (Unit::Minute, Unit::Second) => "'30:15.5' MINUTE TO SECOND",
            (Unit::Year, _) => "'2' YEAR (whole years)",
            (Unit::Month, _) => "'10' MONTH (whole months)",
            (Unit::Day, _) => "'2' DAY",
            (Unit::Hour, _) => "'10' HOUR",
            (Unit::Minute, _) => "'10' MINUTE",
            (Unit::Second, _) => "'10.5' SECOND",
            _ => "'10' MILLISECOND",
        };
        PlanError::invalid(format!(
            "the interval `{e}`: `{text}` is not of the form {example}"
        ))
        .at(e.span())
    };
    if fields.len() != units.len() {
        return Err(shape());
    }
    // Exact decimals: `'1.001' SECOND` is 1001 ms; a fraction of a millisecond is cut off (as
    // Flink does).
    let mut total = Decimal::ZERO;
    for (i, (field, (unit, size, bound))) in fields.iter().zip(units).enumerate() {
        // A fraction only in the last field of a day-time interval (its seconds, or its one
        // unit); months and years are whole.
        let fractional =
            i == units.len() - 1 && !year_month && (units.len() == 1 || *unit == Unit::Second);
        let well_formed = field.bytes().any(|b| b.is_ascii_digit())
            && field
                .bytes()
                .all(|b| b.is_ascii_digit() || (fractional && b == b'.'));
        let value: Decimal = match field.parse() {
            Ok(v) if well_formed => v,
            _ => return Err(shape()),
        };
        if i > 0 && value >= Decimal::from(*bound) {
            return Err(PlanError::invalid(format!(
                "the interval `{e}`: {value} is out of range for its {} (below {bound})",
                match unit {
                    Unit::Month => "months",
                    Unit::Hour => "hours",
                    Unit::Minute => "minutes",
                    Unit::Second => "seconds",
                    _ => "field",
                }
            ))
            .at(e.span()));
        }
        total = value
            .checked_mul(Decimal::from(*size))
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| PlanError::invalid(format!("the interval `{e}` is out of range")))?;
    }
    let kind = if year_month {
        IntervalKind::YearMonth
    } else {
        IntervalKind::DayTime
    };
    let value = total.trunc().to_i64().ok_or_else(|| {
        PlanError::invalid(format!("the interval `{e}` is out of range")).at(e.span())
    })?;
    Ok((kind, if negative { -value } else { value }))
}

/// `l op r` when either side is an interval: a time point plus or
/// minus an interval (an interval plus a time point), or two intervals of one family added or
/// subtracted — typed as Flink (Calcite) types them: the time point keeps its type; a `DATE`
/// moves by the whole days of a day-time interval, truncated toward zero (`date + ms /
/// MILLIS_PER_DAY`: `DATE '2024-01-31' + INTERVAL '36' HOUR` is February 1); months are added
/// in calendar months (`TIMESTAMPADD(MONTH, …)`: the day kept, clamped to the month's last).
fn temporal_arith(
    op: ArithOp,
    (l, lt): (Expr, SqlType),
    (r, rt): (Expr, SqlType),
) -> Result<(Expr, SqlType), PlanError> {
    let additive = matches!(op, ArithOp::Add | ArithOp::Sub);
    let symbol = op.symbol();
    let ((point, pt), (interval, kind)) = match (lt, rt) {
        (SqlType::Interval(a), SqlType::Interval(b)) => {
            if !additive || a != b {
                return Err(PlanError::invalid(format!(
                    "type mismatch: {lt} {symbol} {rt}"
                )));
            }
            return Ok((Expr::Arith(op, Box::new(l), Box::new(r), lt).folded(), lt));
        }
        (p, SqlType::Interval(k)) if (p.is_temporal() || p == SqlType::Null) && additive => {
            ((l, p), (r, k))
        }
        (SqlType::Interval(k), p)
            if (p.is_temporal() || p == SqlType::Null) && op == ArithOp::Add =>
        {
            ((r, p), (l, k))
        }
        (SqlType::Interval(_), _) | (_, SqlType::Interval(_))
            if matches!(op, ArithOp::Mul | ArithOp::Div) =>
        {
            return Err(PlanError::unsupported(format!(
                "an interval multiplied or divided by a number ({lt} {symbol} {rt})"
            )))
        }
        _ => {
            return Err(PlanError::invalid(format!(
                "type mismatch: {lt} {symbol} {rt} (an interval is added to or subtracted from a timestamp, a date or another interval)"
            )))
        }
    };
    let pt = if pt == SqlType::Null {
        SqlType::TIMESTAMP
    } else {
        pt
    };
    Ok(match kind {
        IntervalKind::YearMonth => {
            let n = if op == ArithOp::Sub {
                Expr::Neg(Box::new(interval)).folded()
            } else {
                interval
            };
            (
                Expr::Call(
                    ScalarFunction::Time(TimeFunction::Add(TimeUnit::Month)),
                    vec![n, point],
                )
                .folded(),
                pt,
            )
        }
        IntervalKind::DayTime => (
            Expr::Arith(op, Box::new(point), Box::new(interval), pt).folded(),
            pt,
        ),
    })
}

impl<'a> Binder<'a> {
    /// A binder over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        Binder {
            catalog,
            depth: 0,
            ctes: Vec::new(),
            windows: Vec::new(),
        }
    }

    /// The window of an `OVER`: its own specification, or the named window it names (`None`:
    /// no OVER, or an unknown name).
    fn window_spec<'w>(&'w self, over: &'w Option<ast::WindowType>) -> Option<&'w ast::WindowSpec> {
        match over {
            Some(ast::WindowType::WindowSpec(spec)) => Some(spec),
            Some(ast::WindowType::NamedWindow(name)) => self
                .windows
                .iter()
                .find(|(n, _)| *n == name.value)
                .map(|(_, spec)| spec),
            None => None,
        }
    }

    /// A window name an `OVER` names and the SELECT does not define.
    fn check_window_name(&self, over: &Option<ast::WindowType>) -> Result<(), PlanError> {
        if let Some(ast::WindowType::NamedWindow(name)) = over {
            if self.window_spec(over).is_none() {
                return Err(PlanError::invalid(format!(
                    "unknown window `{}`{}",
                    name.value,
                    did_you_mean(&name.value, self.windows.iter().map(|(n, _)| n.as_str()))
                ))
                .at(name.span));
            }
        }
        Ok(())
    }

    /// Binds a query.
    pub fn bind_query(&self, q: &Query) -> Result<Plan, PlanError> {
        if let Some(with) = &q.with {
            // `WITH a AS (…), b AS (…) body`: each is a view visible to the ones after it
            // and to the body, planned where it is read (as a view is).
            if with.recursive {
                return Err(PlanError::unsupported("WITH RECURSIVE").at(q.span()));
            }
            let mut ctes = self.ctes.clone();
            for cte in &with.cte_tables {
                if !cte.alias.columns.is_empty() {
                    return Err(PlanError::unsupported(
                        "column names on a common table expression (`name (a, b) AS …`): alias the columns in its SELECT",
                    )
                    .at(cte.alias.name.span));
                }
                let name = cte.alias.name.value.clone();
                if with
                    .cte_tables
                    .iter()
                    .filter(|c| c.alias.name.value == name)
                    .count()
                    > 1
                {
                    return Err(PlanError::invalid(format!(
                        "`{name}` is defined twice in one WITH"
                    ))
                    .at(cte.alias.name.span));
                }
                ctes.push((name, (*cte.query).clone()));
            }
            let inner = Binder {
                catalog: self.catalog,
                depth: self.depth,
                ctes,
                windows: Vec::new(),
            };
            let mut body = q.clone();
            body.with = None;
            return inner.bind_query(&body);
        }
        if q.order_by.is_none() && q.limit_clause.is_none() {
            return self.bind_set_expr(&q.body);
        }
        let body = self.bind_set_expr(&q.body)?;
        self.bind_order_limit(body, q.order_by.as_ref(), q.limit_clause.as_ref())
    }

    /// `ORDER BY … LIMIT n` (or `LIMIT n` alone) over a query's result: a global Top-N (Flink's
    /// streaming semantics), an updating result of the `n` first rows in that order — rows of
    /// equal keys (or every row, without ORDER BY) in arrival order. `ORDER BY` without `LIMIT`
    /// sorts by the time attribute first, ascending, as Flink's temporal sort; any other order
    /// without `LIMIT`, and `OFFSET`, are refused: a stream is never sorted as a whole.
    fn bind_order_limit(
        &self,
        body: Plan,
        order_by: Option<&ast::OrderBy>,
        limit: Option<&ast::LimitClause>,
    ) -> Result<Plan, PlanError> {
        let out_fields = body.fields.clone();
        let visible = out_fields.len();
        // The keys, and the body with a column more per key that is not in the result.
        let (body, mut order) = match order_by {
            Some(o) => self.bind_order_keys(body, o)?,
            None => (body, Vec::new()),
        };
        let n = match limit {
            None => {
                let Some(o) = order_by else {
                    return Err(PlanError::unsupported("a query without ORDER BY or LIMIT"));
                };
                // Late rows (the result's, its visible columns) go to the scanned table's
                // late-data table, if it names one.
                let late = match body.updating {
                    false => {
                        self.late_data_of(&body, &out_fields)?
                            .map(|table| crate::plan::LateData {
                                table,
                                columns: 0..visible,
                            })
                    }
                    true => None,
                };
                let sorted = temporal_sort(body, order, late).map_err(|e| e.at(o.span()))?;
                return Ok(if sorted.fields.len() == visible {
                    sorted
                } else {
                    project(sorted, (0..visible).map(Expr::Column).collect(), out_fields)
                });
            }
            Some(ast::LimitClause::LimitOffset {
                limit: Some(e),
                offset: None,
                limit_by,
            }) if limit_by.is_empty() => {
                let scope = Scope {
                    fields: &out_fields,
                    agg: None,
                };
                match self.bind_expr(e, &scope)?.0.folded() {
                    Expr::Literal(Scalar::Int(n)) if n > 0 => n as usize,
                    _ => {
                        return Err(
                            PlanError::invalid("LIMIT takes a positive integer").at(e.span())
                        )
                    }
                }
            }
            Some(other) => {
                return Err(PlanError::unsupported(
                    "this LIMIT on a stream (OFFSET, LIMIT ALL, LIMIT BY): only LIMIT n",
                )
                .at(other.span()))
            }
        };
        if order.is_empty() {
            // Every row ranks equal: the first n to arrive.
            order.push((Expr::Literal(Scalar::Int(0)), false));
        }
        let mut fields = body.fields.clone();
        fields.push(field("$row_number", None, SqlType::BIGINT));
        let ranked = Plan {
            node: Node::Rank {
                input: Box::new(body),
                partition: Vec::new(),
                order,
                limit: Some(n),
                number_selected: false,
            },
            fields,
            updating: true,
            rowtime: None,
        };
        Ok(project(
            ranked,
            (0..visible).map(Expr::Column).collect(),
            out_fields,
        ))
    }

    /// The keys of `ORDER BY` over `body`'s columns, `true` for descending (`ORDER BY 2`: the
    /// second column). A key that is not a column of the result but of the projection's input
    /// (`SELECT id FROM t ORDER BY ts`) is added to the projection as one more column: the
    /// body is returned with it, the caller drops it after sorting.
    fn bind_order_keys(
        &self,
        body: Plan,
        o: &ast::OrderBy,
    ) -> Result<(Plan, Vec<(Expr, bool)>), PlanError> {
        let ast::OrderByKind::Expressions(exprs) = &o.kind else {
            return Err(PlanError::unsupported("ORDER BY ALL").at(o.span()));
        };
        let width = body.fields.len();
        let mut order = Vec::new();
        // Keys over the projection's input, with their types.
        let mut hidden: Vec<(Expr, SqlType)> = Vec::new();
        for e in exprs {
            let desc = matches!(e.options.sort, Some(ast::OrderBySort::Desc));
            // `ORDER BY 2`: the second column of the result.
            if let ast::Expr::Value(v) = &e.expr {
                if let ast::Value::Number(text, _) = &v.value {
                    let at: usize = text.parse().unwrap_or(0);
                    if at == 0 || at > width {
                        return Err(PlanError::invalid(format!(
                            "ORDER BY {text}: the result has {width} columns"
                        ))
                        .at(e.expr.span()));
                    }
                    order.push((Expr::Column(at - 1), desc));
                    continue;
                }
            }
            let scope = Scope {
                fields: &body.fields,
                agg: None,
            };
            let bound = match self.bind_expr(&e.expr, &scope) {
                Ok((bound, ty)) => {
                    unordered(ty, &e.expr)?;
                    bound
                }
                Err(err) => {
                    let Node::Project { input, .. } = &body.node else {
                        return Err(err);
                    };
                    let inner = Scope {
                        fields: &input.fields,
                        agg: None,
                    };
                    let Ok((key, ty)) = self.bind_expr(&e.expr, &inner) else {
                        return Err(err);
                    };
                    unordered(ty, &e.expr)?;
                    hidden.push((key, ty));
                    Expr::Column(width + hidden.len() - 1)
                }
            };
            order.push((bound, desc));
        }
        if hidden.is_empty() {
            return Ok((body, order));
        }
        let Plan {
            node: Node::Project { input, mut exprs },
            mut fields,
            ..
        } = body
        else {
            return Err(PlanError::invalid(
                "ORDER BY: a key outside the result without a projection",
            ));
        };
        for (k, (e, ty)) in hidden.into_iter().enumerate() {
            exprs.push(e);
            fields.push(field(&format!("$order{k}"), None, ty));
        }
        Ok((project(*input, exprs, fields), order))
    }

    fn bind_set_expr(&self, body: &SetExpr) -> Result<Plan, PlanError> {
        match body {
            SetExpr::Select(s) => self.bind_select(s),
            SetExpr::Query(q) => self.bind_query(q),
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::All,
                left,
                right,
            } => {
                let l = self.bind_set_expr(left)?;
                let r = self.bind_set_expr(right)?;
                if l.fields.len() != r.fields.len() {
                    return Err(PlanError::invalid(format!(
                        "UNION ALL of {} and {} columns",
                        l.fields.len(),
                        r.fields.len()
                    ))
                    .at(body.span()));
                }
                for (a, b) in l.fields.iter().zip(&r.fields) {
                    if a.ty.data_type() != b.ty.data_type()
                        && a.ty != SqlType::Null
                        && b.ty != SqlType::Null
                    {
                        return Err(PlanError::invalid(format!(
                            "type mismatch in UNION ALL: column `{}` is {} on the left and {} on the right",
                            a.name, a.ty, b.ty
                        ))
                        .at(body.span()));
                    }
                }
                let fields = l.fields.clone();
                Ok(Plan {
                    updating: l.updating || r.updating,
                    rowtime: if l.rowtime == r.rowtime {
                        l.rowtime
                    } else {
                        None
                    },
                    fields,
                    node: Node::Union { inputs: vec![l, r] },
                })
            }
            SetExpr::Values(values) => self.bind_values(values),
            other => Err(PlanError::unsupported(format!(
                "`{}`",
                other.to_string().chars().take(60).collect::<String>()
            ))
            .at(other.span())),
        }
    }

    fn bind_values(&self, values: &ast::Values) -> Result<Plan, PlanError> {
        let scope = Scope {
            fields: &[],
            agg: None,
        };
        let mut rows = Vec::new();
        let mut types: Vec<SqlType> = Vec::new();
        for row in &values.rows {
            let mut out = Vec::new();
            for (i, e) in row.iter().enumerate() {
                let (b, ty) = self.bind_expr(e, &scope)?;
                let Expr::Literal(v) = b.folded() else {
                    return Err(PlanError::invalid("VALUES takes constants").at(e.span()));
                };
                if types.len() <= i {
                    types.push(ty);
                } else if types[i] == SqlType::Null {
                    types[i] = ty;
                }
                out.push(v);
            }
            rows.push(out);
        }
        let fields = types
            .iter()
            .enumerate()
            .map(|(i, t)| field(&format!("EXPR${i}"), None, *t))
            .collect();
        Ok(Plan {
            node: Node::Values { rows },
            fields,
            updating: false,
            rowtime: None,
        })
    }

    fn bind_select(&self, s: &Select) -> Result<Plan, PlanError> {
        if !s.lateral_views.is_empty() || s.qualify.is_some() {
            return Err(PlanError::unsupported("LATERAL VIEW and QUALIFY").at(s.span()));
        }
        if !s.named_window.is_empty() {
            // `WINDOW w AS (…)`: the OVERs of this SELECT may name them (a definition may
            // name an earlier one).
            let mut windows: Vec<(String, ast::WindowSpec)> = Vec::new();
            for ast::NamedWindowDefinition(name, def) in &s.named_window {
                let spec = match def {
                    ast::NamedWindowExpr::WindowSpec(spec) => spec.clone(),
                    ast::NamedWindowExpr::NamedWindow(other) => windows
                        .iter()
                        .find(|(n, _)| *n == other.value)
                        .map(|(_, spec)| spec.clone())
                        .ok_or_else(|| {
                            PlanError::invalid(format!(
                                "window `{}` names `{}`, which is not defined before it",
                                name.value, other.value
                            ))
                            .at(other.span)
                        })?,
                };
                if windows.iter().any(|(n, _)| *n == name.value) {
                    return Err(PlanError::invalid(format!(
                        "window `{}` is defined twice",
                        name.value
                    ))
                    .at(name.span));
                }
                windows.push((name.value.clone(), spec));
            }
            let inner = Binder {
                catalog: self.catalog,
                depth: self.depth,
                ctes: self.ctes.clone(),
                windows,
            };
            let mut s = s.clone();
            s.named_window.clear();
            return inner.bind_select(&s);
        }
        let mut input = self.bind_from(&s.from)?;
        // A WHERE that limits the alias of this SELECT's ROW_NUMBER() (Nexmark q6's
        // `WHERE rownum <= 1`) filters after the numbering, as QUALIFY would: see
        // `split_row_number_filter`. Its other conditions filter before, as WHERE does.
        let (selection, qualify) = match &s.selection {
            Some(w) => split_row_number_filter(w, &s.projection, &input.fields),
            None => (None, Vec::new()),
        };
        if let Some(selection) = &selection {
            let scope = Scope {
                fields: &input.fields,
                agg: None,
            };
            let predicate = self.bind_predicate(selection, &scope, "WHERE")?;
            input = filter(input, predicate);
        }

        let group_exprs: Vec<&ast::Expr> = match &s.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(PlanError::unsupported("GROUP BY … WITH ROLLUP/CUBE").at(s.span()));
                }
                exprs.iter().collect()
            }
            GroupByExpr::All(_) => {
                return Err(PlanError::unsupported("GROUP BY ALL").at(s.span()));
            }
        };
        let mut agg_calls: Vec<&Function> = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_aggregates(e, &mut agg_calls);
            }
        }
        if let Some(h) = &s.having {
            collect_aggregates(h, &mut agg_calls);
        }
        let aggregated = !group_exprs.is_empty() || !agg_calls.is_empty();

        let (plan, agg_scope) = if aggregated {
            let (plan, scope) = self.bind_aggregate(input, &group_exprs, &agg_calls)?;
            (plan, Some(scope))
        } else {
            if let Some(h) = &s.having {
                return Err(
                    PlanError::invalid("HAVING without GROUP BY or aggregates").at(h.span())
                );
            }
            (input, None)
        };
        let mut plan = plan;
        if let Some(h) = &s.having {
            let scope = Scope {
                fields: &plan.fields,
                agg: agg_scope.as_ref(),
            };
            let predicate = self.bind_predicate(h, &scope, "HAVING")?;
            plan = filter(plan, predicate);
        }

        // ROW_NUMBER() OVER (PARTITION BY … ORDER BY …): a Rank node under the projection,
        // its row number a column the projection reads.
        let mut row_number: Option<(String, usize)> = None;
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(ast::Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: ast::Expr::Function(f),
                ..
            } = item
            {
                if f.over.is_some() && name_of(&f.name).eq_ignore_ascii_case("ROW_NUMBER") {
                    if agg_scope.is_some() || row_number.is_some() {
                        return Err(PlanError::unsupported(
                            "ROW_NUMBER() with GROUP BY or twice in one SELECT",
                        )
                        .at(f.span()));
                    }
                    let text = ast::Expr::Function(f.clone()).to_string();
                    plan = self.bind_rank(plan, f)?;
                    row_number = Some((text, plan.fields.len() - 1));
                }
            }
        }
        // Aggregates with OVER (…): an Over node under the projection.
        let mut over_calls: Vec<&Function> = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_over_aggregates(e, &mut over_calls);
            }
        }
        let mut over_columns: Option<(usize, Vec<(String, usize)>)> = None;
        if !over_calls.is_empty() {
            if agg_scope.is_some() || row_number.is_some() {
                return Err(PlanError::unsupported(
                    "OVER aggregations with GROUP BY or ROW_NUMBER in one SELECT",
                )
                .at(over_calls[0].span()));
            }
            let width = plan.fields.len();
            let (p, columns) = self.bind_over(plan, &over_calls)?;
            plan = p;
            over_columns = Some((width, columns));
        }
        let rank_scope;
        let agg_scope = match (&row_number, agg_scope) {
            (None, None) if over_columns.is_some() => {
                let (width, columns) = over_columns.take().expect("some");
                rank_scope = AggScope {
                    input: vec![],
                    groups: (0..width).map(|i| (format!("\u{0}{i}"), i)).collect(),
                    aggs: columns,
                    window: None,
                };
                Some(rank_scope)
            }
            (Some((text, col)), None) => {
                // The row number, found by its text like an aggregate's result.
                rank_scope = AggScope {
                    input: vec![],
                    groups: (0..*col).map(|i| (format!("\u{0}{i}"), i)).collect(),
                    aggs: vec![(text.clone(), *col)],
                    window: None,
                };
                Some(rank_scope)
            }
            (_, a) => a,
        };
        // The projection.
        let scope = Scope {
            fields: &plan.fields,
            agg: agg_scope.as_ref(),
        };
        let mut exprs = Vec::new();
        let mut fields = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    if aggregated {
                        return Err(PlanError::invalid("SELECT * with GROUP BY").at(item.span()));
                    }
                    for (i, f) in plan.fields.iter().enumerate() {
                        if f.name == "$row_number" {
                            continue;
                        }
                        exprs.push(Expr::Column(i));
                        fields.push(f.clone());
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string();
                    let q = q.trim_end_matches(".*").trim_matches('`');
                    let before = exprs.len();
                    for (i, f) in plan.fields.iter().enumerate() {
                        if f.qualifier
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(q))
                        {
                            exprs.push(Expr::Column(i));
                            fields.push(f.clone());
                        }
                    }
                    if exprs.len() == before {
                        return Err(
                            PlanError::invalid(format!("unknown table `{q}` in `{q}.*`"))
                                .at(item.span()),
                        );
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let (b, ty) = self.bind_expr(e, &scope)?;
                    // A column selected as it is keeps its table's qualifier, as `*` keeps
                    // them: `t.x` still names it above a derived table without an alias
                    // (Nexmark q6's `A.id` over `(SELECT A.id, … FROM auction AS A, …)`).
                    let qualifier = match (&b, e) {
                        (Expr::Column(c), ast::Expr::CompoundIdentifier(_)) => {
                            plan.fields[*c].qualifier.clone()
                        }
                        _ => None,
                    };
                    let name = match e {
                        ast::Expr::Identifier(i) => i.value.clone(),
                        ast::Expr::CompoundIdentifier(parts) => {
                            parts.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        _ => match &b {
                            Expr::Column(c) => plan.fields[*c].name.clone(),
                            _ => format!("EXPR${}", exprs.len()),
                        },
                    };
                    exprs.push(b.folded());
                    fields.push(field(&name, qualifier.as_deref(), ty));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let (b, ty) = self.bind_expr(expr, &scope)?;
                    exprs.push(b.folded());
                    fields.push(field(&alias.value, None, ty));
                }
                other => {
                    return Err(PlanError::unsupported(format!("the select item `{other}`"))
                        .at(other.span()))
                }
            }
        }
        let mut out = project(plan, exprs, fields);
        if !qualify.is_empty() {
            let scope = Scope {
                fields: &out.fields,
                agg: None,
            };
            let mut parts = Vec::new();
            for c in &qualify {
                parts.push(self.bind_predicate(c, &scope, "WHERE")?);
            }
            out = filter(out, Expr::And(parts));
        }
        if let Some(d) = &s.distinct {
            match d {
                Distinct::Distinct => {
                    // SELECT DISTINCT: a group aggregate over every column, with no calls.
                    let keys = out.fields.len();
                    let fields = out.fields.clone();
                    out = Plan {
                        node: Node::Aggregate {
                            input: Box::new(out),
                            keys,
                            aggs: vec![],
                        },
                        fields,
                        updating: true,
                        rowtime: None,
                    };
                }
                _ => {
                    return Err(PlanError::unsupported("DISTINCT ON").at(s.span()));
                }
            }
        }
        Ok(out)
    }

    /// Aggregates with one `OVER (PARTITION BY … ORDER BY rowtime [frame])` over `input`: the
    /// plan (input columns, argument columns, results) and each call's text → its column.
    fn bind_over(
        &self,
        input: Plan,
        calls: &[&Function],
    ) -> Result<(Plan, Vec<(String, usize)>), PlanError> {
        let first = calls[0];
        self.check_window_name(&first.over)?;
        let Some(spec) = self.window_spec(&first.over) else {
            return Err(PlanError::unsupported("a named window in OVER").at(first.span()));
        };
        if calls
            .iter()
            .any(|c| self.window_spec(&c.over) != Some(spec))
        {
            return Err(PlanError::unsupported(
                "OVER aggregations over different windows in one SELECT",
            )
            .at(first.span()));
        }
        let scope = Scope {
            fields: &input.fields,
            agg: None,
        };
        // Over an updating input (Flink refuses it): any order, ROWS frames; the result is
        // the table of every current row with its frame's aggregates, updated as rows come
        // and go (see `crate::over_updating`).
        let mut order = Vec::new();
        if input.updating {
            if spec.order_by.is_empty() {
                return Err(
                    PlanError::invalid("an OVER aggregation needs ORDER BY").at(first.span())
                );
            }
            for o in &spec.order_by {
                let (e, _) = self.bind_expr(&o.expr, &scope)?;
                order.push((e, matches!(o.options.sort, Some(ast::OrderBySort::Desc))));
            }
        }
        match spec.order_by.as_slice() {
            _ if input.updating => {}
            [o] if !matches!(o.options.sort, Some(ast::OrderBySort::Desc)) => {
                match self.bind_expr(&o.expr, &scope)? {
                    (Expr::Column(c), _) if Some(c) == input.rowtime => {}
                    _ => {
                        return Err(PlanError::invalid(
                            "OVER windows must be ordered by the rowtime (the column of WATERMARK FOR), ascending",
                        )
                        .at(o.expr.span()))
                    }
                }
            }
            _ => {
                return Err(PlanError::invalid(
                    "OVER windows must be ordered by the rowtime (the column of WATERMARK FOR), ascending",
                )
                .at(first.span()))
            }
        }
        let frame = match &spec.window_frame {
            None => crate::over::Frame::Range(None),
            Some(f) => {
                if !matches!(f.end_bound, None | Some(ast::WindowFrameBound::CurrentRow)) {
                    return Err(
                        PlanError::unsupported("an OVER frame ending after CURRENT ROW")
                            .at(first.span()),
                    );
                }
                match (&f.units, &f.start_bound) {
                    (ast::WindowFrameUnits::Rows, ast::WindowFrameBound::Preceding(None)) => {
                        crate::over::Frame::Rows(None)
                    }
                    (ast::WindowFrameUnits::Rows, ast::WindowFrameBound::Preceding(Some(n))) => {
                        let (n, _) = self.bind_expr(n, &scope)?;
                        match n.folded() {
                            Expr::Literal(Scalar::Int(n)) if n >= 0 => {
                                crate::over::Frame::Rows(Some(n as u64))
                            }
                            _ => {
                                return Err(PlanError::invalid("ROWS … PRECEDING takes a count")
                                    .at(first.span()))
                            }
                        }
                    }
                    (ast::WindowFrameUnits::Rows, ast::WindowFrameBound::CurrentRow) => {
                        crate::over::Frame::Rows(Some(0))
                    }
                    (ast::WindowFrameUnits::Range, ast::WindowFrameBound::Preceding(None)) => {
                        crate::over::Frame::Range(None)
                    }
                    (ast::WindowFrameUnits::Range, ast::WindowFrameBound::Preceding(Some(iv))) => {
                        crate::over::Frame::Range(Some(interval_ms(iv)?))
                    }
                    (ast::WindowFrameUnits::Range, ast::WindowFrameBound::CurrentRow) => {
                        crate::over::Frame::Range(Some(0))
                    }
                    _ => {
                        return Err(PlanError::unsupported(format!(
                            "the OVER frame `{} {}`",
                            f.units, f.start_bound
                        ))
                        .at(first.span()))
                    }
                }
            }
        };
        if input.updating && matches!(frame, crate::over::Frame::Range(_)) {
            return Err(PlanError::unsupported(
                "a RANGE frame (the default without ROWS) in an OVER aggregation over an updating input: give ROWS BETWEEN n PRECEDING AND CURRENT ROW",
            )
            .at(first.span()));
        }
        let partition = spec
            .partition_by
            .iter()
            .map(|e| self.bind_expr(e, &scope).map(|b| b.0))
            .collect::<Result<Vec<_>, _>>()?;
        let n = input.fields.len();
        let mut pre_exprs: Vec<Expr> = (0..n).map(Expr::Column).collect();
        let mut pre_fields = input.fields.clone();
        let mut aggs = Vec::new();
        let mut texts = Vec::new();
        let mut result_fields = Vec::new();
        for call in calls {
            let text = ast::Expr::Function((*call).clone()).to_string();
            if texts.iter().any(|(t, _)| *t == text) {
                continue;
            }
            let agg = self.bind_agg_call(call, &scope, &mut pre_exprs, &mut pre_fields)?;
            texts.push((text, aggs.len()));
            result_fields.push(field(
                &format!("EXPR${}", aggs.len()),
                None,
                SqlType::Data(agg.ty),
            ));
            aggs.push(agg);
        }
        // Late rows (behind the watermark) go to the scanned table's late-data table, if it
        // names one: the input row, the pre-projection's first columns.
        let late = match input.updating {
            false => self
                .late_data_of(&input, &input.fields)?
                .map(|table| crate::plan::LateData {
                    table,
                    columns: 0..n,
                }),
            true => None,
        };
        let rowtime = input.rowtime;
        let mut pre = project(input, pre_exprs, pre_fields);
        pre.rowtime = rowtime;
        let width = pre.fields.len();
        let mut fields = pre.fields.clone();
        fields.extend(result_fields);
        let columns = texts.into_iter().map(|(t, i)| (t, width + i)).collect();
        if pre.updating {
            let crate::over::Frame::Rows(rows) = frame else {
                unreachable!("RANGE frames over updating inputs are refused above")
            };
            return Ok((
                Plan {
                    node: Node::UpdatingOver {
                        input: Box::new(pre),
                        partition,
                        order,
                        rows,
                        aggs,
                    },
                    fields,
                    updating: true,
                    rowtime: None,
                },
                columns,
            ));
        }
        Ok((
            Plan {
                node: Node::Over {
                    input: Box::new(pre),
                    partition,
                    frame,
                    aggs,
                    late,
                },
                fields,
                updating: false,
                rowtime,
            },
            columns,
        ))
    }

    /// Binds one aggregate call (`COUNT(*)`, `SUM(DISTINCT x) FILTER (WHERE …)`, …) over
    /// `scope`: its argument and filter become columns of the pre-projection.
    fn bind_agg_call(
        &self,
        call: &Function,
        scope: &Scope,
        pre_exprs: &mut Vec<Expr>,
        pre_fields: &mut Vec<PlanField>,
    ) -> Result<AggCall, PlanError> {
        let name = name_of(&call.name).to_ascii_uppercase();
        let func = match name.as_str() {
            "COUNT" => AggFunc::Count,
            "SUM" => AggFunc::Sum,
            "MIN" => AggFunc::Min,
            "MAX" => AggFunc::Max,
            "VAR_POP" => AggFunc::VarPop,
            "VAR_SAMP" | "VARIANCE" => AggFunc::VarSamp,
            "STDDEV_POP" => AggFunc::StddevPop,
            "STDDEV_SAMP" | "STDDEV" => AggFunc::StddevSamp,
            "FIRST_VALUE" => AggFunc::FirstValue,
            "LAST_VALUE" => AggFunc::LastValue,
            "LISTAGG" => AggFunc::ListAgg,
            _ => AggFunc::Avg,
        };
        let distinct = matches!(
            &call.args,
            FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct))
        );
        let star = matches!(
            &call.args,
            FunctionArguments::List(l) if l.args.len() == 1 && matches!(l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Wildcard))
        );
        if distinct && func.is_ordered() {
            return Err(PlanError::unsupported(format!(
                "{name}(DISTINCT …): DISTINCT is not supported for {name}"
            ))
            .at(call.span()));
        }
        let mut separator = None;
        let (arg, arg_ty) = if star {
            if func != AggFunc::Count {
                return Err(
                    PlanError::invalid(format!("{name}(*): only COUNT takes *")).at(call.span())
                );
            }
            (None, SqlType::BIGINT)
        } else {
            let mut args = args_of(call)?;
            if func == AggFunc::ListAgg && args.len() == 2 {
                let sep = args.pop().expect("two arguments");
                match self.bind_expr(sep, scope)?.0.folded() {
                    Expr::Literal(Scalar::Str(s)) => separator = Some(s.to_string()),
                    _ => {
                        return Err(PlanError::unsupported(
                            "LISTAGG with a separator that is not a string literal",
                        )
                        .at(sep.span()))
                    }
                }
            }
            if args.len() != 1 {
                return Err(PlanError::invalid(format!(
                    "{name} takes one argument, got {}",
                    args.len()
                ))
                .at(call.span()));
            }
            let (b, ty) = self.bind_expr(args[0], scope)?;
            (Some(pre_column(b, "$arg", ty, pre_exprs, pre_fields)), ty)
        };
        let ty = agg_type(func, &name, arg_ty).map_err(|e| e.at(call.span()))?;
        let filter = match &call.filter {
            Some(f) => {
                let p = self.bind_predicate(f, scope, "FILTER")?;
                Some(pre_column(
                    p,
                    "$filter",
                    SqlType::BOOLEAN,
                    pre_exprs,
                    pre_fields,
                ))
            }
            None => None,
        };
        Ok(AggCall {
            func,
            arg,
            distinct,
            filter,
            ty,
            separator,
        })
    }

    /// `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` over `input`.
    fn bind_rank(&self, input: Plan, f: &Function) -> Result<Plan, PlanError> {
        self.check_window_name(&f.over)?;
        let Some(spec) = self.window_spec(&f.over) else {
            return Err(PlanError::unsupported("a named window in OVER").at(f.span()));
        };
        if spec.window_frame.is_some() {
            return Err(PlanError::invalid("ROW_NUMBER() takes no window frame").at(f.span()));
        }
        if spec.order_by.is_empty() {
            return Err(
                PlanError::invalid("ROW_NUMBER() needs ORDER BY in its OVER clause").at(f.span()),
            );
        }
        let scope = Scope {
            fields: &input.fields,
            agg: None,
        };
        let partition = spec
            .partition_by
            .iter()
            .map(|e| self.bind_expr(e, &scope).map(|b| b.0))
            .collect::<Result<Vec<_>, _>>()?;
        let order = spec
            .order_by
            .iter()
            .map(|o| {
                let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                let (key, ty) = self.bind_expr(&o.expr, &scope)?;
                unordered(ty, &o.expr)?;
                Ok::<_, PlanError>((key, desc))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut fields = input.fields.clone();
        fields.push(field("$row_number", None, SqlType::BIGINT));
        Ok(Plan {
            node: Node::Rank {
                input: Box::new(input),
                partition,
                order,
                limit: None,
                number_selected: true,
            },
            fields,
            updating: true,
            rowtime: None,
        })
    }

    /// Binds `GROUP BY` and the aggregate calls over `input`: a pre-projection (keys, then
    /// each call's argument and filter), then the (window) aggregate.
    fn bind_aggregate(
        &self,
        input: Plan,
        group_exprs: &[&ast::Expr],
        calls: &[&Function],
    ) -> Result<(Plan, AggScope), PlanError> {
        // A window: a window table function's window_start/window_end among the keys, or a
        // legacy TUMBLE/HOP/SESSION call.
        let mut window: Option<WindowKind> = None;
        // The window is one of processing time (over a PROCTIME() column).
        let mut proctime = false;
        let mut input = input;
        let mut keys: Vec<&ast::Expr> = Vec::new();
        let tvf = tvf_window(&input);
        // CUMULATE: rows are assigned to their windows (one copy per window, its time the
        // window's end − 1 ms) and grouped by window_start and window_end as keys, in tumbling
        // windows of the step that fire at each window's end.
        let cumulate_step = match tvf {
            Some((WindowKind::Cumulate { step, .. }, _, false)) => Some(step),
            Some((WindowKind::Cumulate { .. }, _, true)) => {
                return Err(PlanError::unsupported(
                    "a CUMULATE window aggregate over processing time",
                ))
            }
            _ => None,
        };
        for &g in group_exprs {
            if let ast::Expr::Function(f) = g {
                let name = name_of(&f.name).to_ascii_uppercase();
                if matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION" | "CUMULATE") {
                    if window.is_some() {
                        return Err(PlanError::invalid("GROUP BY with two windows").at(g.span()));
                    }
                    let (kind, proc) = self.legacy_window(&input, f)?;
                    window = Some(kind);
                    proctime = proc;
                    continue;
                }
            }
            if let (Some((_, tvf_fields, _)), None) = (&tvf, cumulate_step) {
                let scope = Scope {
                    fields: &input.fields,
                    agg: None,
                };
                if let Ok((Expr::Column(c), _)) = self.bind_expr(g, &scope) {
                    if tvf_fields.contains(&c) {
                        continue;
                    }
                }
            }
            keys.push(g);
        }
        if window.is_none() {
            if let Some((kind, [start, end, _], proc)) = tvf {
                // GROUP BY window_start, window_end (both) makes a window aggregate.
                let scope = Scope {
                    fields: &input.fields,
                    agg: None,
                };
                let grouped: Vec<usize> = group_exprs
                    .iter()
                    .filter_map(|g| match self.bind_expr(g, &scope) {
                        Ok((Expr::Column(c), _)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if grouped.contains(&start) && grouped.contains(&end) {
                    match cumulate_step {
                        Some(step) => window = Some(WindowKind::Tumble { size: step }),
                        None => {
                            window = Some(kind);
                            proctime = proc;
                            input = strip_window_tvf(input)?;
                        }
                    }
                } else {
                    return Err(PlanError::unsupported(
                        "a window table function whose window_start and window_end are not both in GROUP BY",
                    )
                    .at(group_exprs.first().map(|g| g.span()).unwrap_or(ast::Expr::value(Value::Null).span())));
                }
            }
        }
        // Grouped by the window_start and window_end of the windows the input's rows come
        // from (an aggregate over a window aggregate's result): a window aggregate again, its
        // windows as the input's (each row's time is its window's end − 1 ms).
        let mut upstream = cumulate_step.is_some();
        if window.is_none() {
            let scope = Scope {
                fields: &input.fields,
                agg: None,
            };
            let bounds: Vec<(WindowKind, WindowBound)> = keys
                .iter()
                .filter_map(|g| match self.bind_expr(g, &scope) {
                    Ok((Expr::Column(c), _)) => window_of(&input, c),
                    _ => None,
                })
                .collect();
            let start = bounds.iter().find(|b| b.1 == WindowBound::Start);
            let end = bounds.iter().find(|b| b.1 == WindowBound::End);
            if let (Some((kind, _)), Some(_)) = (start, end) {
                let step = match *kind {
                    WindowKind::Tumble { size } => Some(size),
                    WindowKind::Hop { slide, .. } => Some(slide),
                    WindowKind::Cumulate { step, .. } => Some(step),
                    WindowKind::Session { .. } => None,
                };
                if let Some(size) = step {
                    window = Some(WindowKind::Tumble { size });
                    upstream = true;
                }
            }
        }
        if window.is_some() && input.updating {
            return Err(PlanError::invalid(
                "a window aggregate over an updating input (windows take append-only input, as in Flink)",
            ));
        }
        // (Rows of an upstream window carry their window's time, projected or not.)
        if window.is_some() && !upstream && !proctime && input.rowtime.is_none() {
            return Err(PlanError::invalid(
                "a window over a table without a rowtime: declare WATERMARK FOR the time column",
            ));
        }

        // The pre-projection.
        let scope = Scope {
            fields: &input.fields,
            agg: None,
        };
        let mut pre_exprs = Vec::new();
        let mut pre_fields = Vec::new();
        let mut groups = Vec::new();
        for (i, g) in keys.iter().enumerate() {
            let (b, ty) = self.bind_expr(g, &scope)?;
            let (name, qualifier) = match &b {
                Expr::Column(c) => (
                    input.fields[*c].name.clone(),
                    input.fields[*c].qualifier.clone(),
                ),
                _ => (format!("EXPR${i}"), None),
            };
            pre_exprs.push(b);
            pre_fields.push(PlanField {
                name,
                qualifier,
                ty,
            });
            groups.push((g.to_string(), i));
        }
        let nkeys = keys.len();
        let mut aggs = Vec::new();
        let mut agg_names = Vec::new();
        let mut agg_fields = Vec::new();
        for call in calls {
            let text = ast::Expr::Function((*call).clone()).to_string();
            if agg_names.iter().any(|(t, _)| *t == text) {
                continue;
            }
            let agg = self.bind_agg_call(call, &scope, &mut pre_exprs, &mut pre_fields)?;
            agg_names.push((text, nkeys + aggs.len()));
            agg_fields.push(field(
                &format!("EXPR${}", nkeys + aggs.len()),
                None,
                SqlType::Data(agg.ty),
            ));
            aggs.push(agg);
        }
        let input_fields = input.fields.clone();
        // Late rows of an event-time window go to the scanned table's late-data table, if
        // it names one: the pre-projection carries the whole input row at its end for them.
        let late = match window {
            Some(_) if !proctime && !upstream => self.late_data_of(&input, &input.fields)?,
            _ => None,
        };
        // A fired event-time window may take late rows for a while, updating its result.
        let lateness = match window {
            Some(_) if !proctime && !upstream => self.allowed_lateness_of(&input)?,
            _ => None,
        };
        if late.is_some() {
            pre_exprs.extend((0..input.fields.len()).map(Expr::Column));
            pre_fields.extend(input.fields.iter().cloned());
        }
        let width = input.fields.len();
        let late = late.map(|table| crate::plan::LateData {
            table,
            // The input row carried at the end of the pre-projected row.
            columns: pre_exprs.len() - width..pre_exprs.len(),
        });
        let rowtime = input.rowtime;
        let mut pre = project(input, pre_exprs, pre_fields);
        pre.rowtime = rowtime;
        let mut fields: Vec<PlanField> = pre.fields[..nkeys].to_vec();
        fields.extend(agg_fields);
        let scope = match window {
            Some(kind) => {
                let n = fields.len();
                fields.push(field("window_start", None, SqlType::TIMESTAMP));
                fields.push(field("window_end", None, SqlType::TIMESTAMP));
                fields.push(field("window_time", None, SqlType::TIMESTAMP));
                let plan = Plan {
                    node: Node::WindowAggregate {
                        input: Box::new(pre),
                        window: kind,
                        keys: nkeys,
                        aggs,
                        upstream,
                        proctime,
                        late,
                        lateness,
                    },
                    fields,
                    // Re-fired by late rows, a window's result is updated.
                    updating: lateness.is_some(),
                    // window_time of a processing-time window is no rowtime, nor is that of
                    // windows that update their results.
                    rowtime: (!proctime && lateness.is_none()).then_some(n + 2),
                };
                (
                    plan,
                    AggScope {
                        input: input_fields,
                        groups,
                        aggs: agg_names,
                        window: Some([n, n + 1, n + 2]),
                    },
                )
            }
            None => {
                let plan = Plan {
                    node: Node::Aggregate {
                        input: Box::new(pre),
                        keys: nkeys,
                        aggs,
                    },
                    fields,
                    updating: true,
                    rowtime: None,
                };
                (
                    plan,
                    AggScope {
                        input: input_fields,
                        groups,
                        aggs: agg_names,
                        window: None,
                    },
                )
            }
        };
        Ok(scope)
    }

    /// The allowed lateness (ms) of windows over `input`: its scanned table's
    /// `'allowed-lateness'` option, or else `SET 'table.exec.emit.allow-lateness'` (Flink's
    /// key); `None` for none or zero.
    fn allowed_lateness_of(&self, input: &Plan) -> Result<Option<i64>, PlanError> {
        let from_table = scanned_table(input).and_then(|t| {
            t.options
                .get("allowed-lateness")
                .map(|v| (format!("'allowed-lateness' of `{}`", t.name), v.clone()))
        });
        let from_session = || {
            self.catalog
                .option("table.exec.emit.allow-lateness")
                .map(|v| {
                    (
                        "'table.exec.emit.allow-lateness'".to_string(),
                        v.to_string(),
                    )
                })
        };
        let Some((what, text)) = from_table.or_else(from_session) else {
            return Ok(None);
        };
        let lateness = crate::session::parse_duration(&text)
            .map_err(|e| PlanError::invalid(format!("{what}: {e}")))?;
        Ok(match lateness.as_millis() {
            0 => None,
            ms => Some(i64::try_from(ms).unwrap_or(i64::MAX)),
        })
    }

    /// The late-data table for rows of `fields` out of `input` (`'late-data.table'` of the
    /// table it scans, through filters, projections and window table functions), checked to
    /// take those rows: the same number of columns, of the same types.
    fn late_data_of(
        &self,
        input: &Plan,
        fields: &[PlanField],
    ) -> Result<Option<Arc<TableDef>>, PlanError> {
        let Some(table) = self.late_table_of(input)? else {
            return Ok(None);
        };
        let source = scanned_table(input).expect("a late table comes from a scanned table");
        check_late_table(&table, &format!("of `{}`", source.name), fields)?;
        Ok(Some(table))
    }

    /// The late-data table `input`'s scanned table names, if any (not checked against rows).
    fn late_table_of(&self, input: &Plan) -> Result<Option<Arc<TableDef>>, PlanError> {
        let Some(source) = scanned_table(input) else {
            return Ok(None);
        };
        let Some(name) = source.options.get("late-data.table") else {
            return Ok(None);
        };
        match self.catalog.relation(name)? {
            Relation::Table(t) => Ok(Some(t)),
            Relation::View(_) => Err(PlanError::invalid(format!(
                "'late-data.table' of `{}` names the view `{name}`: late rows go to a table",
                source.name
            ))),
        }
    }

    /// The late-data tables of a join's inputs, each input's error kept apart. Which inputs'
    /// rows can be late — and so whose unusable late table is an error — is
    /// `join::late_tables`' to say: both of an interval join, the inputs with bounded partners
    /// of a regular join whose rows expire, none of a regular join that keeps every row.
    fn join_late(&self, left: &Plan, right: &Plan) -> JoinLate {
        let mut late = JoinLate::default();
        match self.late_table_of(left) {
            Ok(table) => late.left = table,
            Err(e) => late.invalid_left = Some(e),
        }
        match self.late_table_of(right) {
            Ok(table) => late.right = table,
            Err(e) => late.invalid_right = Some(e),
        }
        late
    }

    /// A legacy `TUMBLE(t, size)`, `HOP(t, slide, size)` or `SESSION(t, gap)` in GROUP BY,
    /// and whether `t` is a processing-time column.
    fn legacy_window(&self, input: &Plan, f: &Function) -> Result<(WindowKind, bool), PlanError> {
        let name = name_of(&f.name).to_ascii_uppercase();
        let args = args_of(f)?;
        let scope = Scope {
            fields: &input.fields,
            agg: None,
        };
        let Some(time) = args.first() else {
            return Err(PlanError::invalid(format!("{name} needs a time column")).at(f.span()));
        };
        let proctime = self.check_rowtime(input, time, &scope)?;
        if proctime && name == "CUMULATE" {
            return Err(
                PlanError::unsupported("a CUMULATE window over processing time").at(f.span()),
            );
        }
        let kind = window_kind(&name, &args[1..]).map_err(|e| e.at(f.span()))?;
        Ok((kind, proctime))
    }

    /// Checks that `time` is a time attribute of `input`: its rowtime (`false`), or a
    /// processing-time column, `PROCTIME()` (`true`).
    fn check_rowtime(
        &self,
        input: &Plan,
        time: &ast::Expr,
        scope: &Scope,
    ) -> Result<bool, PlanError> {
        let (b, _) = self.bind_expr(time, scope)?;
        match b {
            Expr::Column(c) if Some(c) == input.rowtime => Ok(false),
            Expr::Column(c) if is_proctime(input, c) => Ok(true),
            Expr::Column(c) => Err(PlanError::invalid(format!(
                "`{}` is not a time attribute: windows need the rowtime column (declared with WATERMARK FOR) or a processing-time column (`PROCTIME()`){}",
                input.fields[c].name,
                match input.rowtime {
                    Some(r) => format!(", here `{}`", input.fields[r].name),
                    None => String::new(),
                }
            ))
            .at(time.span())),
            _ => Err(PlanError::invalid("windows need a column as their time").at(time.span())),
        }
    }

    fn bind_from(&self, from: &[TableWithJoins]) -> Result<Plan, PlanError> {
        match from {
            [] => Ok(Plan {
                node: Node::Values { rows: vec![vec![]] },
                fields: vec![],
                updating: false,
                rowtime: None,
            }),
            [one] => {
                let mut plan = self.bind_table_factor(&one.relation)?;
                for j in &one.joins {
                    plan = self.bind_join(plan, j)?;
                }
                Ok(plan)
            }
            [first, rest @ ..] => {
                // `FROM a, b`: an inner join whose condition comes from WHERE.
                let mut plan = self.bind_from(std::slice::from_ref(first))?;
                for t in rest {
                    if let (Some(call), []) = (unnest_call(&t.relation)?, &t.joins[..]) {
                        // `FROM t, UNNEST(t.tags)`: a lateral cross join.
                        plan = self.bind_unnest(plan, call, false)?;
                        continue;
                    }
                    let right = self.bind_from(std::slice::from_ref(t))?;
                    let late = self.join_late(&plan, &right);
                    plan = make_join(
                        plan,
                        right,
                        JoinKind::Inner,
                        Expr::Literal(Scalar::Bool(true)),
                        late,
                    )?;
                }
                Ok(plan)
            }
        }
    }

    fn bind_join(&self, left: Plan, j: &ast::Join) -> Result<Plan, PlanError> {
        use ast::{JoinConstraint, JoinOperator};
        if let Some(call) = unnest_call(&j.relation)? {
            // `CROSS JOIN UNNEST(…)`, `JOIN UNNEST(…) ON TRUE`, `LEFT JOIN UNNEST(…) ON TRUE`.
            let on_true = |c: &JoinConstraint| match c {
                JoinConstraint::On(on) => matches!(
                    on,
                    ast::Expr::Value(v) if matches!(v.value, Value::Boolean(true))
                ),
                JoinConstraint::None => true,
                _ => false,
            };
            let outer = match &j.join_operator {
                JoinOperator::CrossJoin(c) | JoinOperator::Join(c) | JoinOperator::Inner(c)
                    if on_true(c) =>
                {
                    false
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) if on_true(c) => true,
                _ => {
                    return Err(PlanError::unsupported(
                        "a join with UNNEST other than CROSS JOIN UNNEST(…) or [LEFT] JOIN UNNEST(…) ON TRUE",
                    )
                    .at(j.relation.span()))
                }
            };
            return self.bind_unnest(left, call, outer);
        }
        let (kind, constraint) = match &j.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, c),
            JoinOperator::FullOuter(c) => (JoinKind::Full, c),
            other => {
                return Err(PlanError::unsupported(format!(
                    "the join `{}`",
                    format!("{other:?}").split('(').next().unwrap_or("?")
                ))
                .at(j.relation.span()))
            }
        };
        let JoinConstraint::On(on) = constraint else {
            return Err(
                PlanError::unsupported("joins without ON (USING, NATURAL, cross joins)")
                    .at(j.relation.span()),
            );
        };
        if let TableFactor::Table {
            name,
            alias,
            version: Some(ast::TableVersion::ForSystemTimeAsOf(time)),
            ..
        } = &j.relation
        {
            return self.bind_lookup_join(left, kind, name, alias.as_ref(), time, on);
        }
        let right = self.bind_table_factor(&j.relation)?;
        let JoinConstraint::On(on) = constraint else {
            return Err(
                PlanError::unsupported("joins without ON (USING, NATURAL, cross joins)")
                    .at(j.relation.span()),
            );
        };
        let mut fields = left.fields.clone();
        fields.extend(right.fields.iter().cloned());
        let scope = Scope {
            fields: &fields,
            agg: None,
        };
        let predicate = self.bind_predicate(on, &scope, "ON")?;
        let late = self.join_late(&left, &right);
        make_join(left, right, kind, predicate, late).map_err(|e| e.at(on.span()))
    }

    /// `left` joined with `UNNEST(e) [WITH ORDINALITY] [AS t(c, …)]` (`outer`: a LEFT join):
    /// a row per element of the array `e` (an entry of the map `e`) of each of `left`'s rows.
    fn bind_unnest(
        &self,
        left: Plan,
        call: UnnestCall<'_>,
        outer: bool,
    ) -> Result<Plan, PlanError> {
        let UnnestCall {
            exprs,
            alias,
            with_ordinality,
            factor,
        } = call;
        let [e] = exprs.as_slice() else {
            return Err(PlanError::unsupported(
                "UNNEST of several collections at once (unnest them one by one)",
            )
            .at(factor.span()));
        };
        let with_ordinality = &with_ordinality;
        let scope = Scope {
            fields: &left.fields,
            agg: None,
        };
        let (expr, ty) = self.bind_expr(e, &scope)?;
        let mut columns: Vec<(String, SqlType)> = match ty {
            SqlType::Data(DataType::Array(a)) => {
                vec![("EXPR$0".into(), SqlType::Data(a.element()))]
            }
            SqlType::Data(DataType::Map(m)) => vec![
                ("EXPR$0".into(), SqlType::Data(m.key())),
                ("EXPR$1".into(), SqlType::Data(m.value())),
            ],
            other => {
                return Err(PlanError::invalid(format!(
                    "UNNEST takes an ARRAY or a MAP, `{e}` is {other}"
                ))
                .at(e.span()))
            }
        };
        if *with_ordinality {
            columns.push(("ORDINALITY".into(), SqlType::BIGINT));
        }
        let qualifier = alias.map(|a| a.name.value.clone());
        if let Some(a) = alias.filter(|a| !a.columns.is_empty()) {
            if a.columns.len() != columns.len() {
                return Err(PlanError::invalid(format!(
                    "`{}` names {} columns, UNNEST(`{e}`) gives {}",
                    a.name,
                    a.columns.len(),
                    columns.len()
                ))
                .at(a.name.span));
            }
            for (c, named) in columns.iter_mut().zip(&a.columns) {
                c.0 = named.name.value.clone();
            }
        }
        let mut fields = left.fields.clone();
        fields.extend(columns.into_iter().map(|(name, ty)| PlanField {
            name,
            qualifier: qualifier.clone(),
            ty,
        }));
        Ok(Plan {
            fields,
            updating: left.updating,
            rowtime: left.rowtime,
            node: Node::Unnest {
                input: Box::new(left),
                expr,
                outer,
                ordinality: *with_ordinality,
            },
        })
    }

    /// The table side of a temporal or lookup join (`table`, qualified by `alias` or its
    /// name), the joined row's fields, and `on` bound over them.
    fn bind_table_join_on(
        &self,
        left: &Plan,
        table: &Arc<TableDef>,
        table_name: String,
        alias: Option<&ast::TableAlias>,
        on: &ast::Expr,
    ) -> Result<(Plan, Vec<PlanField>, Expr), PlanError> {
        self.bind_plan_join_on(left, scan(table.clone()), table_name, alias, on)
    }

    /// [`Binder::bind_table_join_on`] for any plan on the table side (a versioned view's).
    fn bind_plan_join_on(
        &self,
        left: &Plan,
        right: Plan,
        name: String,
        alias: Option<&ast::TableAlias>,
        on: &ast::Expr,
    ) -> Result<(Plan, Vec<PlanField>, Expr), PlanError> {
        let right = requalify(
            right,
            &alias.map(|a| a.name.value.clone()).unwrap_or(name),
            alias,
        )?;
        let mut fields = left.fields.clone();
        fields.extend(right.fields.iter().cloned());
        let scope = Scope {
            fields: &fields,
            agg: None,
        };
        let predicate = self.bind_predicate(on, &scope, "ON")?;
        Ok((right, fields, predicate))
    }

    /// `left JOIN t FOR SYSTEM_TIME AS OF left.rowtime ON …`: an event-time temporal join
    /// against the versioned table `t` (its `PRIMARY KEY` equal to expressions of the probe
    /// row in `ON`, its rowtime from `WATERMARK FOR`).
    fn bind_temporal_join(
        &self,
        left: Plan,
        kind: JoinKind,
        name: &ObjectName,
        alias: Option<&ast::TableAlias>,
        on: &ast::Expr,
    ) -> Result<Plan, PlanError> {
        let table_name = name_of(name);
        // The versions (rows of a versioned table, or of a versioned view's input), with their
        // primary key's columns.
        let (versions, primary_key) = match self
            .catalog
            .relation(&table_name)
            .map_err(|e| e.at(name.span()))?
        {
            Relation::Table(table) => {
                if table.primary_key.is_empty() {
                    return Err(PlanError::invalid(format!(
                        "FOR SYSTEM_TIME AS OF a rowtime needs a versioned table: `{}` has no PRIMARY KEY (declare PRIMARY KEY (…) NOT ENFORCED)",
                        table.name
                    ))
                    .at(name.span()));
                }
                if table.rowtime.is_none() {
                    return Err(PlanError::invalid(format!(
                        "FOR SYSTEM_TIME AS OF a rowtime needs a versioned table: `{}` has no rowtime (declare WATERMARK FOR its time column)",
                        table.name
                    ))
                    .at(name.span()));
                }
                let key = table.primary_key.clone();
                (scan(table), key)
            }
            Relation::View(_) => {
                let view = crate::rules::optimize(self.bind_relation(&table_name)?);
                versioned_view(view).map_err(|why| {
                    PlanError::unsupported(format!(
                        "an event-time temporal join against the view `{table_name}`, which is not a versioned view: {why} (a versioned view keeps the last row per key by its rowtime: SELECT … FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY key ORDER BY rowtime DESC) AS rownum FROM t) WHERE rownum = 1)"
                    ))
                    .at(name.span())
                })?
            }
        };
        if left.updating {
            return Err(PlanError::unsupported(
                "an event-time temporal join of an updating input (the probe side must be append-only)",
            )
            .at(name.span()));
        }
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(PlanError::unsupported("a RIGHT or FULL temporal join").at(name.span()));
        }
        let (right, fields, predicate) =
            self.bind_plan_join_on(&left, versions, table_name.clone(), alias, on)?;
        let n = left.fields.len();
        let (keys, mut residual) = split_lookup_keys(predicate, n);
        // Flink's rule: the join is on the whole primary key (then a probe meets one version).
        let pk_keys: Vec<(Expr, usize)> = primary_key
            .iter()
            .filter_map(|&pk| keys.iter().find(|(_, c)| *c == pk).cloned())
            .collect();
        if pk_keys.len() != primary_key.len() {
            return Err(PlanError::invalid(format!(
                "an event-time temporal join needs ON to equal the primary key of `{}` ({}) to expressions of the probe row",
                table_name,
                primary_key
                    .iter()
                    .map(|&c| right.fields[c].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .at(on.span()));
        }
        // Equalities on other table columns are conditions on the version found.
        for (e, c) in keys {
            if !primary_key.contains(&c) {
                residual.push(Expr::Cmp(
                    CmpOp::Eq,
                    Box::new(e),
                    Box::new(Expr::Column(n + c)),
                ));
            }
        }
        // Probes behind the watermark go to the probe table's late-data table, if it names one.
        let late = self.late_data_of(&left, &left.fields)?;
        Ok(Plan {
            updating: false,
            rowtime: left.rowtime,
            fields,
            node: Node::TemporalJoin {
                late,
                left: Box::new(left),
                right: Box::new(right),
                keys: pk_keys,
                residual: match residual.len() {
                    0 => None,
                    1 => residual.pop(),
                    _ => Some(Expr::And(residual)),
                },
                left_outer: kind == JoinKind::Left,
            },
        })
    }

    /// `left JOIN t FOR SYSTEM_TIME AS OF left.proc_time ON …`: a lookup join into a bounded
    /// table.
    fn bind_lookup_join(
        &self,
        left: Plan,
        kind: JoinKind,
        name: &ObjectName,
        alias: Option<&ast::TableAlias>,
        time: &ast::Expr,
        on: &ast::Expr,
    ) -> Result<Plan, PlanError> {
        let scope = Scope {
            fields: &left.fields,
            agg: None,
        };
        let (t, _) = self.bind_expr(time, &scope)?;
        if matches!(t, Expr::Column(c) if Some(c) == left.rowtime) {
            return self.bind_temporal_join(left, kind, name, alias, on);
        }
        let table_name = name_of(name);
        let table = match self
            .catalog
            .relation(&table_name)
            .map_err(|e| e.at(name.span()))?
        {
            Relation::Table(t) => t,
            Relation::View(_) => {
                return Err(PlanError::unsupported("a lookup join into a view").at(name.span()))
            }
        };
        let connector = table.connector()?;
        if !matches!(connector, "filesystem" | "values") {
            return Err(PlanError::unsupported(format!(
                "a lookup join into a `{connector}` table (lookup tables: filesystem, values — loaded once)"
            ))
            .at(name.span()));
        }
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(PlanError::unsupported("a RIGHT or FULL lookup join").at(name.span()));
        }
        let (_, fields, predicate) =
            self.bind_table_join_on(&left, &table, table_name, alias, on)?;
        let (keys, mut residual) = split_lookup_keys(predicate, left.fields.len());
        if keys.is_empty() {
            return Err(PlanError::invalid(
                "a lookup join needs an equality between the input and a column of the table",
            )
            .at(on.span()));
        }
        Ok(Plan {
            updating: left.updating,
            rowtime: left.rowtime,
            fields,
            node: Node::LookupJoin {
                input: Box::new(left),
                table,
                keys,
                residual: match residual.len() {
                    0 => None,
                    1 => residual.pop(),
                    _ => Some(Expr::And(residual)),
                },
                left_outer: kind == JoinKind::Left,
            },
        })
    }

    fn bind_table_factor(&self, tf: &TableFactor) -> Result<Plan, PlanError> {
        match tf {
            // `FROM UNNEST(ARRAY[…])`: over one empty row.
            tf if unnest_call(tf)?.is_some() => {
                let call = unnest_call(tf)?.expect("an UNNEST");
                self.bind_unnest(self.bind_from(&[])?, call, false)
            }
            TableFactor::Table {
                name,
                alias,
                args,
                version,
                ..
            } => {
                if args.is_some() {
                    return Err(
                        PlanError::unsupported(format!("table function `{name}`")).at(tf.span())
                    );
                }
                if version.is_some() {
                    return Err(PlanError::unsupported(
                        "FOR SYSTEM_TIME AS OF (temporal joins) — planned next",
                    )
                    .at(tf.span()));
                }
                let table_name = name_of(name);
                let plan = self
                    .bind_relation(&table_name)
                    .map_err(|e| e.at(name.span()))?;
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or(table_name);
                requalify(plan, &qualifier, alias.as_ref())
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let plan = self.bind_query(subquery)?;
                match alias {
                    Some(a) => requalify(plan, &a.name.value.clone(), Some(a)),
                    None => Ok(plan),
                }
            }
            TableFactor::TableFunction { expr, alias } => {
                let ast::Expr::Function(f) = expr else {
                    return Err(PlanError::unsupported(format!("TABLE({expr})")).at(expr.span()));
                };
                let plan = self.bind_window_tvf(f)?;
                match alias {
                    Some(a) => requalify(plan, &a.name.value.clone(), Some(a)),
                    None => Ok(plan),
                }
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let plan = self.bind_from(std::slice::from_ref(table_with_joins))?;
                match alias {
                    Some(a) => requalify(plan, &a.name.value.clone(), Some(a)),
                    None => Ok(plan),
                }
            }
            TableFactor::MatchRecognize { table, .. } => {
                let input = self.bind_table_factor(table)?;
                crate::match_recognize::bind(self, input, tf)
            }
            other => Err(PlanError::unsupported(format!("`{other}` in FROM")).at(other.span())),
        }
    }

    /// Binds an expression over the columns `fields` (no aggregates in scope).
    pub(crate) fn bind_row_expr(
        &self,
        e: &ast::Expr,
        fields: &[PlanField],
    ) -> Result<(Expr, SqlType), PlanError> {
        self.bind_expr(e, &Scope { fields, agg: None })
    }

    /// `TUMBLE(TABLE t, DESCRIPTOR(c), size)` and its kin.
    fn bind_window_tvf(&self, f: &Function) -> Result<Plan, PlanError> {
        let name = name_of(&f.name).to_ascii_uppercase();
        if !matches!(name.as_str(), "TUMBLE" | "HOP" | "CUMULATE" | "SESSION") {
            return Err(PlanError::unsupported(format!("the table function {name}")).at(f.span()));
        }
        let args = args_of(f)?;
        let (Some(ast::Expr::Function(table)), Some(ast::Expr::Function(descriptor))) =
            (args.first(), args.get(1))
        else {
            return Err(PlanError::invalid(format!(
                "{name} takes (TABLE t, DESCRIPTOR(time column), …)"
            ))
            .at(f.span()));
        };
        if !name_of(&table.name).eq_ignore_ascii_case("TABLE")
            || !name_of(&descriptor.name).eq_ignore_ascii_case("DESCRIPTOR")
        {
            return Err(PlanError::invalid(format!(
                "{name} takes (TABLE t, DESCRIPTOR(time column), …)"
            ))
            .at(f.span()));
        }
        let table_args = args_of(table)?;
        let Some(ast::Expr::CompoundIdentifier(parts)) = table_args.first() else {
            return Err(PlanError::invalid("TABLE needs a table name").at(table.span()));
        };
        let table_name = parts
            .iter()
            .map(|p| p.value.clone())
            .collect::<Vec<_>>()
            .join(".");
        let input = self
            .bind_relation(&table_name)
            .map_err(|e| e.at(table.span()))?;
        let input = requalify(input, &table_name, None)?;
        let desc_args = args_of(descriptor)?;
        let scope = Scope {
            fields: &input.fields,
            agg: None,
        };
        let Some(time) = desc_args.first() else {
            return Err(PlanError::invalid("DESCRIPTOR needs a column").at(descriptor.span()));
        };
        let proctime = self.check_rowtime(&input, time, &scope)?;
        if proctime && name == "CUMULATE" {
            return Err(
                PlanError::unsupported("a CUMULATE window over processing time").at(f.span()),
            );
        }
        if input.updating {
            return Err(PlanError::invalid(format!(
                "{name} over an updating input (window table functions take append-only input)"
            ))
            .at(f.span()));
        }
        let kind = window_kind(&name, &args[2..]).map_err(|e| e.at(f.span()))?;
        let mut fields = input.fields.clone();
        let n = fields.len();
        fields.push(field("window_start", None, SqlType::TIMESTAMP));
        fields.push(field("window_end", None, SqlType::TIMESTAMP));
        fields.push(field("window_time", None, SqlType::TIMESTAMP));
        Ok(Plan {
            node: Node::WindowTvf {
                input: Box::new(input),
                window: kind,
                proctime,
            },
            fields,
            updating: false,
            rowtime: (!proctime).then_some(n + 2),
        })
    }

    /// The plan of a table or view.
    fn bind_relation(&self, name: &str) -> Result<Plan, PlanError> {
        if let Some(i) = self.ctes.iter().rposition(|(n, _)| n == name) {
            // A common table expression sees the ones defined before it.
            let inner = Binder {
                catalog: self.catalog,
                depth: self.depth + 1,
                ctes: self.ctes[..i].to_vec(),
                windows: Vec::new(),
            };
            return inner.bind_query(&self.ctes[i].1);
        }
        match self.catalog.relation(name)? {
            Relation::Table(t) => Ok(scan(t)),
            Relation::View(q) => {
                if self.depth > 32 {
                    return Err(PlanError::invalid(format!(
                        "view `{name}` refers to itself"
                    )));
                }
                // A view sees the catalog, not the query's common table expressions.
                let inner = Binder {
                    catalog: self.catalog,
                    depth: self.depth + 1,
                    ctes: Vec::new(),
                    windows: Vec::new(),
                };
                inner.bind_query(&q)
            }
        }
    }

    fn bind_predicate(
        &self,
        e: &ast::Expr,
        scope: &Scope,
        clause: &str,
    ) -> Result<Expr, PlanError> {
        let (b, ty) = self.bind_expr(e, scope)?;
        if ty != SqlType::BOOLEAN && ty != SqlType::Null {
            return Err(PlanError::invalid(format!(
                "type mismatch: {clause} needs a BOOLEAN condition, got {ty}"
            ))
            .at(e.span()));
        }
        Ok(b.folded())
    }

    /// Binds an expression: its bound form and type.
    fn bind_expr(&self, e: &ast::Expr, scope: &Scope) -> Result<(Expr, SqlType), PlanError> {
        self.bind_expr_inner(e, scope)
            .map_err(|err| err.at(e.span()))
    }

    fn bind_expr_inner(&self, e: &ast::Expr, scope: &Scope) -> Result<(Expr, SqlType), PlanError> {
        if let Some(agg) = scope.agg {
            let text = e.to_string();
            if let Some((_, c)) = agg.groups.iter().chain(&agg.aggs).find(|(t, _)| *t == text) {
                return Ok((Expr::Column(*c), scope.fields[*c].ty));
            }
            if let ast::Expr::Function(f) = e {
                let name = name_of(&f.name).to_ascii_uppercase();
                if let (Some([start, end, time]), Some(which)) = (agg.window, name.rsplit_once('_'))
                {
                    if matches!(which.0, "TUMBLE" | "HOP" | "SESSION" | "CUMULATE") {
                        let c = match which.1 {
                            "START" => start,
                            "END" => end,
                            "ROWTIME" => time,
                            _ => return Err(PlanError::unsupported(name.to_string())),
                        };
                        return Ok((Expr::Column(c), SqlType::TIMESTAMP));
                    }
                }
                if is_aggregate(f) {
                    return Err(PlanError::invalid(format!("aggregate `{e}` not planned")));
                }
            }
        }
        match e {
            ast::Expr::Identifier(ident) => self.resolve(std::slice::from_ref(ident), scope),
            ast::Expr::CompoundIdentifier(parts) => self.resolve(parts, scope),
            ast::Expr::Nested(inner) => self.bind_expr(inner, scope),
            ast::Expr::Value(v) => literal(&v.value),
            ast::Expr::Interval(_) => {
                let (kind, value) = interval_value(e)?;
                Ok((Expr::Literal(Scalar::Int(value)), SqlType::Interval(kind)))
            }
            ast::Expr::TypedString(ts) => {
                let mut to = from_ast(&ts.data_type)?;
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                // A `TIMESTAMP '…'` literal has the precision of its fraction (as Flink's):
                // more than three digits make it a TIMESTAMP(6), not cut to milliseconds.
                let fraction = text
                    .rsplit_once('.')
                    .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
                if matches!(ts.data_type, ast::DataType::Timestamp(None, _)) && fraction > 3 {
                    to = DataType::TimestampMicros;
                }
                let v = crate::expr::parse_as(&text, to)
                    .ok_or_else(|| PlanError::invalid(format!("`{text}` is not a {to}")))?;
                Ok((Expr::Literal(v), SqlType::Data(to)))
            }
            ast::Expr::BinaryOp { left, op, right } => self.bind_binary(left, op, right, scope),
            ast::Expr::UnaryOp { op, expr } => {
                let (b, ty) = self.bind_expr(expr, scope)?;
                match op {
                    UnaryOperator::Not => {
                        expect_bool(ty, "NOT")?;
                        Ok((Expr::Not(Box::new(b)), SqlType::BOOLEAN))
                    }
                    UnaryOperator::Minus => {
                        if !ty.is_numeric() && !ty.is_interval() {
                            return Err(PlanError::invalid(format!("type mismatch: -{ty}")));
                        }
                        Ok((Expr::Neg(Box::new(b)).folded(), ty))
                    }
                    UnaryOperator::Plus => Ok((b, ty)),
                    other => Err(PlanError::unsupported(format!("the operator {other}"))),
                }
            }
            ast::Expr::IsNull(inner) | ast::Expr::IsNotNull(inner) => {
                let (b, _) = self.bind_expr(inner, scope)?;
                Ok((
                    Expr::IsNull(Box::new(b), matches!(e, ast::Expr::IsNotNull(_))),
                    SqlType::BOOLEAN,
                ))
            }
            ast::Expr::IsTrue(inner) | ast::Expr::IsFalse(inner) => {
                let (b, ty) = self.bind_expr(inner, scope)?;
                expect_bool(ty, "IS TRUE")?;
                let want = matches!(e, ast::Expr::IsTrue(_));
                Ok((
                    Expr::Cmp(
                        CmpOp::Eq,
                        Box::new(Expr::Call(
                            ScalarFunction::Coalesce,
                            vec![b, Expr::Literal(Scalar::Bool(!want))],
                        )),
                        Box::new(Expr::Literal(Scalar::Bool(want))),
                    ),
                    SqlType::BOOLEAN,
                ))
            }
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let ge = self.bind_compare(expr, CmpOp::GtEq, low, scope)?;
                let le = self.bind_compare(expr, CmpOp::LtEq, high, scope)?;
                let both = Expr::And(vec![ge, le]);
                Ok((
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    SqlType::BOOLEAN,
                ))
            }
            ast::Expr::In {
                expr,
                target,
                negated,
                ..
            } => {
                let ast::InTarget::List(list) = target else {
                    return Err(PlanError::unsupported("IN with a subquery"));
                };
                let (b, ty) = self.bind_expr(expr, scope)?;
                let items = list
                    .iter()
                    .map(|item| self.bind_expr(item, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                // Constants of `x`'s own type: a set, a NULL first (see `Expr::InList`).
                let set: Option<Vec<Scalar>> = items
                    .iter()
                    .map(|(v, vt)| match v.clone().folded() {
                        Expr::Literal(v)
                            if *vt == ty || *vt == SqlType::Null || ty == SqlType::Null =>
                        {
                            Some(v)
                        }
                        _ => None,
                    })
                    .collect();
                if let Some(mut values) = set {
                    values.sort_by_key(|v| !v.is_null());
                    return Ok((
                        Expr::InList(Box::new(b), values, *negated),
                        SqlType::BOOLEAN,
                    ));
                }
                // A list reading columns, or of constants of another type (a decimal against
                // an integer column, a timestamp of another precision): `x = a OR x = b …`
                // (NOT of it for NOT IN), each at the pair's common type, in SQL's
                // three-valued logic.
                let tests = items
                    .into_iter()
                    .map(|(v, vt)| {
                        let (l, (r, _)) = unify(b.clone(), ty, v, vt, "IN")?;
                        Ok(Expr::Cmp(CmpOp::Eq, Box::new(l), Box::new(r)).folded())
                    })
                    .collect::<Result<Vec<_>, PlanError>>()?;
                let any = Expr::Or(tests);
                Ok((
                    if *negated {
                        Expr::Not(Box::new(any))
                    } else {
                        any
                    },
                    SqlType::BOOLEAN,
                ))
            }
            ast::Expr::Like {
                negated,
                expr,
                pattern,
                any,
                ..
            } => {
                if *any {
                    return Err(PlanError::unsupported("LIKE ANY"));
                }
                let (b, ty) = self.bind_expr(expr, scope)?;
                if !ty.is_string() {
                    return Err(PlanError::invalid(format!("type mismatch: LIKE on {ty}")));
                }
                let (p, _) = self.bind_expr(pattern, scope)?;
                let Expr::Literal(Scalar::Str(p)) = p.folded() else {
                    return Err(PlanError::unsupported(
                        "LIKE with a pattern that is not a literal",
                    ));
                };
                Ok((
                    Expr::Like(Box::new(b), LikePattern::new(&p), *negated),
                    SqlType::BOOLEAN,
                ))
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut branches = Vec::new();
                let mut result_ty = SqlType::Null;
                let mut results = Vec::new();
                let operand = match operand {
                    Some(o) => Some(self.bind_expr(o, scope)?),
                    None => None,
                };
                for cw in conditions {
                    let when = match &operand {
                        Some((o, ot)) => {
                            let (v, vt) = self.bind_expr(&cw.condition, scope)?;
                            let (l, r) = unify(o.clone(), *ot, v, vt, "CASE")?;
                            Expr::Cmp(CmpOp::Eq, Box::new(l), Box::new(r.0))
                        }
                        None => self.bind_predicate(&cw.condition, scope, "WHEN")?,
                    };
                    let (then, tt) = self.bind_expr(&cw.result, scope)?;
                    result_ty = common_type(result_ty, tt).ok_or_else(|| {
                        PlanError::invalid(format!(
                            "type mismatch: CASE branches of {result_ty} and {tt}"
                        ))
                    })?;
                    branches.push(when);
                    results.push((then, tt));
                }
                let (otherwise, ot) = match else_result {
                    Some(e) => self.bind_expr(e, scope)?,
                    None => (Expr::Literal(Scalar::Null), SqlType::Null),
                };
                result_ty = common_type(result_ty, ot).ok_or_else(|| {
                    PlanError::invalid(format!(
                        "type mismatch: CASE branches of {result_ty} and {ot}"
                    ))
                })?;
                let pairs = branches
                    .into_iter()
                    .zip(results)
                    .map(|(w, (t, tt))| (w, widen(t, tt, result_ty)))
                    .collect();
                Ok((
                    Expr::Case(pairs, Box::new(widen(otherwise, ot, result_ty))),
                    result_ty,
                ))
            }
            ast::Expr::Cast {
                expr,
                data_type,
                kind,
                ..
            } => {
                let to = from_ast(data_type)?;
                let (b, from) = self.bind_expr(expr, scope)?;
                let to_collection = matches!(to, DataType::Map(_) | DataType::Array(_));
                let kind_of = |t: DataType| std::mem::discriminant(&t);
                let fits = match (from.is_collection(), to_collection) {
                    (false, false) => true,
                    (true, true) => kind_of(from.data_type()) == kind_of(to),
                    (true, false) => to == DataType::Varchar,
                    (false, true) => from == SqlType::Null,
                };
                if !fits {
                    return Err(PlanError::invalid(format!(
                        "CAST of {from} to {to}: a map or an array casts only to its kind of collection (element by element) or to STRING"
                    ))
                    .at(expr.span()));
                }
                let cast = match kind {
                    ast::CastKind::TryCast | ast::CastKind::SafeCast => {
                        Expr::Call(ScalarFunction::TryCast(to), vec![b])
                    }
                    _ => Expr::Cast(Box::new(b), to),
                };
                // As Flink: text cast to VARCHAR(n) keeps its first n characters, to CHAR(n)
                // (CHAR alone is CHAR(1)) is cut or padded with spaces to n.
                let length = |l: &Option<ast::CharacterLength>| match l {
                    Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length),
                    _ => None,
                };
                // Flink's lengths: 1 to 2147483647.
                let n = |len: u64| -> Result<Expr, PlanError> {
                    if !(1..=2_147_483_647).contains(&len) {
                        return Err(PlanError::invalid(format!(
                            "the length of `{data_type}` must be between 1 and 2147483647"
                        )));
                    }
                    Ok(Expr::Literal(Scalar::Int(len as i64)))
                };
                let cast = match data_type {
                    ast::DataType::Varchar(l)
                    | ast::DataType::CharVarying(l)
                    | ast::DataType::CharacterVarying(l) => match length(l) {
                        Some(len) => Expr::Call(
                            ScalarFunction::Substring,
                            vec![cast, Expr::Literal(Scalar::Int(1)), n(len)?],
                        ),
                        None => cast,
                    },
                    ast::DataType::Char(l) | ast::DataType::Character(l) => Expr::Call(
                        ScalarFunction::Text(crate::functions::strings::StringFunction::Rpad),
                        vec![
                            cast,
                            n(length(l).unwrap_or(1))?,
                            Expr::Literal(Scalar::str(" ")),
                        ],
                    ),
                    _ => cast,
                };
                Ok((cast.folded(), SqlType::Data(to)))
            }
            ast::Expr::Floor { expr, field } => self.bind_floor_ceil(expr, field, false, scope),
            ast::Expr::Ceil { expr, field } => self.bind_floor_ceil(expr, field, true, scope),
            ast::Expr::Position { expr, r#in } => {
                let args = vec![self.bind_expr(expr, scope)?, self.bind_expr(r#in, scope)?];
                self.call_builtin("POSITION", args)
            }
            ast::Expr::Extract { field, expr, .. } => {
                let unit = TimeUnit::parse(&field.to_string())
                    .ok_or_else(|| PlanError::unsupported(format!("EXTRACT({field} FROM …)")))?;
                let (b, ty) = self.bind_expr(expr, scope)?;
                if !ty.is_temporal() {
                    return Err(PlanError::invalid(format!(
                        "type mismatch: EXTRACT from {ty} (needs a timestamp)"
                    )));
                }
                Ok((
                    Expr::Call(ScalarFunction::Extract(unit), vec![b]),
                    SqlType::BIGINT,
                ))
            }
            ast::Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind_expr(expr, scope)?];
                match substring_from {
                    Some(f) => args.push(self.bind_expr(f, scope)?),
                    None => args.push((Expr::Literal(Scalar::Int(1)), SqlType::BIGINT)),
                }
                if let Some(f) = substring_for {
                    args.push(self.bind_expr(f, scope)?);
                }
                self.call_builtin("SUBSTRING", args)
            }
            ast::Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(PlanError::unsupported(
                        "TRIM(s, characters) (write TRIM(BOTH characters FROM s) or BTRIM(s, characters))",
                    ));
                }
                // `TRIM([BOTH | LEADING | TRAILING] [chars] FROM s)`: BTRIM, LTRIM or RTRIM
                // of `s` and the characters (spaces by default).
                let mut args = vec![self.bind_expr(expr, scope)?];
                if let Some(what) = trim_what {
                    args.push(self.bind_expr(what, scope)?);
                }
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "LTRIM",
                    Some(ast::TrimWhereField::Trailing) => "RTRIM",
                    Some(ast::TrimWhereField::Both) | None if args.len() == 2 => "BTRIM",
                    _ => "TRIM",
                };
                self.call_builtin(name, args)
            }
            ast::Expr::Function(f) => self.bind_function(f, scope),
            ast::Expr::Array(array) => {
                let args = array
                    .elem
                    .iter()
                    .map(|e| self.bind_expr(e, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call_builtin("ARRAY", args)
            }
            ast::Expr::CompoundFieldAccess { root, access_chain } => {
                let mut bound = self.bind_expr(root, scope)?;
                for access in access_chain {
                    bound = self.bind_access(bound, access, scope)?;
                }
                Ok(bound)
            }
            other => Err(PlanError::unsupported(format!("the expression `{other}`"))),
        }
    }

    /// `TIMESTAMPADD(unit, n, ts)` and `TIMESTAMPDIFF(unit, t1, t2)`: the unit is a word, not
    /// an expression.
    fn bind_timestamp_arithmetic(
        &self,
        f: &Function,
        scope: &Scope,
    ) -> Result<(Expr, SqlType), PlanError> {
        let upper = name_of(&f.name).to_ascii_uppercase();
        let args = args_of(f)?;
        if args.len() != 3 {
            return Err(PlanError::invalid(format!(
                "{upper} takes 3 arguments (unit, …), got {}",
                args.len()
            ))
            .at(f.span()));
        }
        let word = match args[0] {
            ast::Expr::Identifier(i) => i.value.to_ascii_uppercase(),
            other => other.to_string().to_ascii_uppercase(),
        };
        let unit = TimeUnit::interval(word.trim_start_matches("SQL_TSI_")).ok_or_else(|| {
            PlanError::invalid(format!(
                "{upper}: `{}` is not a unit (SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, QUARTER, YEAR)",
                args[0]
            ))
            .at(args[0].span())
        })?;
        let bound = args[1..]
            .iter()
            .map(|a| self.bind_expr(a, scope))
            .collect::<Result<Vec<_>, _>>()?;
        let (func, returns) = if upper == "TIMESTAMPADD" {
            let ty = match bound[1].1 {
                SqlType::Null => SqlType::TIMESTAMP,
                SqlType::Data(DataType::Date) if unit.is_sub_day() => SqlType::TIMESTAMP,
                t => t,
            };
            (TimeFunction::Add(unit), ty)
        } else {
            (TimeFunction::Diff(unit), SqlType::BIGINT)
        };
        let func = ScalarFunction::Time(func);
        crate::functions::check_arguments(&func, &bound)?;
        Ok((
            Expr::Call(func, bound.into_iter().map(|a| a.0).collect()).folded(),
            returns,
        ))
    }

    /// `FLOOR(x)`, `CEIL(x)`, and `FLOOR(ts TO unit)` / `CEIL(ts TO unit)`.
    fn bind_floor_ceil(
        &self,
        expr: &ast::Expr,
        field: &ast::CeilFloorKind,
        ceil: bool,
        scope: &Scope,
    ) -> Result<(Expr, SqlType), PlanError> {
        let name = if ceil { "CEIL" } else { "FLOOR" };
        let arg = self.bind_expr(expr, scope)?;
        match field {
            ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) => {
                self.call_builtin(name, vec![arg])
            }
            ast::CeilFloorKind::DateTimeField(unit) => {
                let unit = TimeUnit::interval(&unit.to_string())
                    .ok_or_else(|| PlanError::unsupported(format!("{name}(… TO {unit})")))?;
                let func = ScalarFunction::Time(if ceil {
                    TimeFunction::Ceil(unit)
                } else {
                    TimeFunction::Floor(unit)
                });
                let ty = arg.1;
                crate::functions::check_arguments(&func, std::slice::from_ref(&arg))?;
                Ok((Expr::Call(func, vec![arg.0]).folded(), ty))
            }
            ast::CeilFloorKind::Scale(_) => Err(PlanError::unsupported(format!(
                "{name}(x, scale): use ROUND(x, d) or TRUNCATE(x, d)"
            ))),
        }
    }

    /// `m[key]` on the bound `m`: the value of `key` in a map, or the element at a 1-based
    /// index of an array.
    fn bind_access(
        &self,
        (m, ty): (Expr, SqlType),
        access: &ast::AccessExpr,
        scope: &Scope,
    ) -> Result<(Expr, SqlType), PlanError> {
        let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = access else {
            return Err(PlanError::unsupported(format!(
                "the access `{access}` (maps take `m[key]`)"
            )));
        };
        if let SqlType::Data(DataType::Array(a)) = ty {
            let (i, it) = self.bind_expr(index, scope)?;
            if it != SqlType::BIGINT && it != SqlType::Null {
                return Err(PlanError::invalid(format!(
                    "type mismatch: the index `{index}` is {it}, an array's index an integer (from 1)"
                ))
                .at(index.span()));
            }
            return Ok((
                Expr::Call(ScalarFunction::Element { at: true }, vec![m, i]).folded(),
                SqlType::Data(a.element()),
            ));
        }
        let SqlType::Data(DataType::Map(map)) = ty else {
            return Err(PlanError::invalid(format!(
                "type mismatch: `[{index}]` on {ty} (only maps and arrays take `[…]` here)"
            ))
            .at(index.span()));
        };
        let (key, key_ty) = self.bind_expr(index, scope)?;
        let want = SqlType::Data(map.key());
        // Exact lookups only: decimals equal by value at any scale, an integer widens
        // exactly; anything else (a fraction into integer keys) could find the wrong key.
        let key = match (key_ty.data_type(), want.data_type()) {
            _ if key_ty == want || key_ty == SqlType::Null => key,
            (DataType::Decimal { .. }, DataType::Decimal { .. }) => key,
            (DataType::BigInt, _) if want.is_numeric() => widen(key, key_ty, want),
            _ => {
                return Err(PlanError::invalid(format!(
                    "type mismatch: the key `{index}` is {key_ty}, the map's keys {want}"
                ))
                .at(index.span()))
            }
        };
        Ok((
            Expr::Call(ScalarFunction::Item, vec![m, key]).folded(),
            SqlType::Data(map.value()),
        ))
    }

    fn call_builtin(
        &self,
        name: &str,
        args: Vec<(Expr, SqlType)>,
    ) -> Result<(Expr, SqlType), PlanError> {
        let (f, ty) = ScalarFunction::resolve(name, &args).expect("a built-in")?;
        Ok((
            Expr::Call(f, args.into_iter().map(|a| a.0).collect()).folded(),
            ty,
        ))
    }

    fn bind_function(&self, f: &Function, scope: &Scope) -> Result<(Expr, SqlType), PlanError> {
        let name = name_of(&f.name);
        if is_aggregate(f) {
            return Err(match scope.agg {
                None => PlanError::invalid(format!(
                    "aggregate `{}` is not allowed here",
                    ast::Expr::Function(f.clone())
                )),
                Some(_) => PlanError::invalid(format!(
                    "aggregate `{}` inside another aggregate",
                    ast::Expr::Function(f.clone())
                )),
            });
        }
        if f.over.is_some() {
            return Err(PlanError::unsupported(format!(
                "{name}(…) OVER (…): OVER aggregations and ROW_NUMBER Top-N are planned next"
            )));
        }
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "TUMBLE" | "HOP" | "SESSION" | "CUMULATE" => {
                return Err(PlanError::invalid(format!(
                    "{upper}(…) belongs in GROUP BY (legacy window) or in FROM TABLE({upper}(TABLE t, …))"
                )))
            }
            "TIMESTAMPADD" | "TIMESTAMPDIFF" => return self.bind_timestamp_arithmetic(f, scope),
            "MOD" => {
                let args = args_of(f)?;
                if args.len() != 2 {
                    return Err(PlanError::invalid("MOD takes 2 arguments"));
                }
                return self.bind_arith(args[0], ArithOp::Mod, args[1], scope);
            }
            _ => {}
        }
        let args = args_of(f)?
            .into_iter()
            .map(|a| self.bind_expr(a, scope))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(udf) = self.catalog.function(&name) {
            let ty = udf_type(udf);
            return Ok((
                Expr::Call(
                    ScalarFunction::Udf(udf.clone()),
                    args.into_iter().map(|a| a.0).collect(),
                ),
                ty,
            ));
        }
        // COALESCE's arguments meet at their common type (`COALESCE(int_col, 1.5)` is a
        // decimal, `COALESCE(day, ts)` a timestamp), as Flink types it.
        let args = if matches!(upper.as_str(), "COALESCE" | "IFNULL") {
            let mut common = SqlType::Null;
            for (_, t) in &args {
                common = match (common, *t) {
                    (SqlType::Null, t) | (t, SqlType::Null) => t,
                    (a, b) if a == b => a,
                    (a, b) => common_type(a, b).ok_or_else(|| {
                        PlanError::invalid(format!("type mismatch: {upper} of {a} and {b}"))
                    })?,
                };
            }
            args.into_iter()
                .map(|(e, t)| {
                    (
                        widen(e, t, common),
                        if t == SqlType::Null { t } else { common },
                    )
                })
                .collect()
        } else {
            args
        };
        match ScalarFunction::resolve(&name, &args) {
            Some(r) => {
                let (func, ty) = r?;
                Ok((
                    Expr::Call(func, args.into_iter().map(|a| a.0).collect()).folded(),
                    ty,
                ))
            }
            None => Err(PlanError::invalid(format!(
                "unknown function `{name}`{}",
                did_you_mean(
                    &name,
                    self.catalog.function_names().chain(
                        scalar_function_names()
                            .chain(AGGREGATES.iter().chain(OTHER_FUNCTIONS).copied())
                            .collect::<Vec<&str>>()
                    )
                )
            ))),
        }
    }

    fn bind_binary(
        &self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        scope: &Scope,
    ) -> Result<(Expr, SqlType), PlanError> {
        let cmp = match op {
            BinaryOperator::Eq => Some(CmpOp::Eq),
            BinaryOperator::NotEq => Some(CmpOp::NotEq),
            BinaryOperator::Lt => Some(CmpOp::Lt),
            BinaryOperator::LtEq => Some(CmpOp::LtEq),
            BinaryOperator::Gt => Some(CmpOp::Gt),
            BinaryOperator::GtEq => Some(CmpOp::GtEq),
            _ => None,
        };
        if let Some(c) = cmp {
            return Ok((self.bind_compare(left, c, right, scope)?, SqlType::BOOLEAN));
        }
        let arith = match op {
            BinaryOperator::Plus => Some(ArithOp::Add),
            BinaryOperator::Minus => Some(ArithOp::Sub),
            BinaryOperator::Multiply => Some(ArithOp::Mul),
            BinaryOperator::Divide => Some(ArithOp::Div),
            BinaryOperator::Modulo => Some(ArithOp::Mod),
            _ => None,
        };
        if let Some(a) = arith {
            return self.bind_arith(left, a, right, scope);
        }
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                let (l, lt) = self.bind_expr(left, scope)?;
                let (r, rt) = self.bind_expr(right, scope)?;
                let word = if matches!(op, BinaryOperator::And) {
                    "AND"
                } else {
                    "OR"
                };
                expect_bool(lt, word)?;
                expect_bool(rt, word)?;
                let and = matches!(op, BinaryOperator::And);
                let mut parts = Vec::new();
                for p in [l, r] {
                    match p {
                        Expr::And(v) if and => parts.extend(v),
                        Expr::Or(v) if !and => parts.extend(v),
                        p => parts.push(p),
                    }
                }
                Ok((
                    if and {
                        Expr::And(parts)
                    } else {
                        Expr::Or(parts)
                    },
                    SqlType::BOOLEAN,
                ))
            }
            BinaryOperator::StringConcat => {
                let l = self.bind_expr(left, scope)?;
                let r = self.bind_expr(right, scope)?;
                self.call_builtin("CONCAT", vec![l, r])
            }
            other => Err(PlanError::unsupported(format!("the operator {other}"))),
        }
    }

    fn bind_arith(
        &self,
        left: &ast::Expr,
        op: ArithOp,
        right: &ast::Expr,
        scope: &Scope,
    ) -> Result<(Expr, SqlType), PlanError> {
        let (l, lt) = self.bind_expr(left, scope)?;
        let (r, rt) = self.bind_expr(right, scope)?;
        // Timestamps and dates ± intervals, intervals ± intervals of their kind.
        if lt.is_interval() || rt.is_interval() {
            return temporal_arith(op, (l, lt), (r, rt));
        }
        if !lt.is_numeric() || !rt.is_numeric() {
            return Err(PlanError::invalid(format!(
                "type mismatch: {lt} {} {rt}",
                op.symbol()
            )));
        }
        let ty = numeric_result(op, lt, rt);
        let operand = match ty.data_type() {
            DataType::Decimal { .. } => DataType::Decimal {
                precision: 28,
                scale: 0,
            },
            d => d,
        };
        let (l, r) = (to_kind(l, lt, operand), to_kind(r, rt, operand));
        Ok((Expr::Arith(op, Box::new(l), Box::new(r), ty).folded(), ty))
    }

    fn bind_compare(
        &self,
        left: &ast::Expr,
        op: CmpOp,
        right: &ast::Expr,
        scope: &Scope,
    ) -> Result<Expr, PlanError> {
        let (l, lt) = self.bind_expr(left, scope)?;
        let (r, rt) = self.bind_expr(right, scope)?;
        if !matches!(op, CmpOp::Eq | CmpOp::NotEq) && (lt.is_collection() || rt.is_collection()) {
            return Err(PlanError::invalid(format!(
                "type mismatch: {lt} and {rt} compared by order (maps and arrays compare only with = and <>)"
            )));
        }
        let (l, (r, _)) = unify(l, lt, r, rt, "comparison")?;
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)).folded())
    }

    /// Resolves a column name.
    fn resolve(&self, parts: &[Ident], scope: &Scope) -> Result<(Expr, SqlType), PlanError> {
        let full = parts
            .iter()
            .map(|p| p.value.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let mut found: Vec<usize> = scope
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name == full)
            .map(|(i, _)| i)
            .collect();
        if found.is_empty() && parts.len() >= 2 {
            let rest = parts[1..]
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join(".");
            found = scope
                .fields
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.name == rest
                        && f.qualifier
                            .as_deref()
                            .is_some_and(|q| q.eq_ignore_ascii_case(&parts[0].value))
                })
                .map(|(i, _)| i)
                .collect();
        }
        if let Some(agg) = scope.agg {
            if found.is_empty() {
                if let Some([start, end, time]) = agg.window {
                    match full.as_str() {
                        "window_start" => found.push(start),
                        "window_end" => found.push(end),
                        "window_time" => found.push(time),
                        _ => {}
                    }
                }
            }
            // A column of the aggregate's input that is not a group key.
            let in_input = agg.input.iter().any(|f| {
                f.name == full
                    || (parts.len() >= 2
                        && f.qualifier
                            .as_deref()
                            .is_some_and(|q| q.eq_ignore_ascii_case(&parts[0].value)))
            });
            if found.is_empty() && in_input {
                return Err(PlanError::invalid(format!(
                    "column `{full}` is neither in GROUP BY nor inside an aggregate"
                ))
                .at(parts[0].span));
            }
            // Group keys are the leading fields; anything else is an aggregate's output.
            found.retain(|&i| i < agg.groups.len() || agg.window.is_some_and(|w| w.contains(&i)));
        }
        match found.as_slice() {
            [one] => Ok((Expr::Column(*one), scope.fields[*one].ty)),
            [] => Err(PlanError::invalid(format!(
                "unknown column `{full}`{}",
                did_you_mean(
                    &full,
                    scope
                        .fields
                        .iter()
                        .filter(|f| !f.name.starts_with('$') && !f.name.starts_with("EXPR$"))
                        .map(|f| f.name.as_str())
                )
            ))
            .at(parts[0].span)),
            _ => Err(PlanError::invalid(format!(
                "column `{full}` is ambiguous: qualify it with its table"
            ))
            .at(parts[0].span)),
        }
    }
}

/// A scan of `table`: all its columns, qualified by its name.
fn scan(table: Arc<TableDef>) -> Plan {
    let fields = table
        .columns
        .iter()
        .map(|c| field(&c.name, Some(&table.name), SqlType::Data(c.data_type)))
        .collect();
    // A change-data-capture table is a changelog.
    let updating = table.options.get("connector").map(String::as_str) == Some("postgres-cdc")
        || crate::kafka::is_changelog(&table);
    Plan {
        rowtime: table.rowtime,
        fields,
        updating,
        node: Node::Scan {
            columns: (0..table.columns.len()).collect(),
            table,
        },
    }
}

fn filter(input: Plan, predicate: Expr) -> Plan {
    Plan {
        fields: input.fields.clone(),
        updating: input.updating,
        rowtime: input.rowtime,
        node: Node::Filter {
            input: Box::new(input),
            predicate,
        },
    }
}

/// The versions a versioned view stands for, and its key's columns: a view that keeps the
/// last row per key by rowtime (`ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime DESC)
/// = 1`) over an append-only input is, as a versioned table, that input — every row its key's
/// version from its rowtime on — seen through the view's projection (Flink's versioned views).
/// `Err` says what the view lacks.
fn versioned_view(view: Plan) -> Result<(Plan, Vec<usize>), &'static str> {
    let (rank, projection) = match view.node {
        Node::Project { input, exprs } => (*input, Some((exprs, view.fields))),
        node => (
            Plan {
                node,
                fields: view.fields,
                updating: view.updating,
                rowtime: view.rowtime,
            },
            None,
        ),
    };
    let Node::Rank {
        input,
        partition,
        order,
        limit: Some(1),
        number_selected: false,
    } = rank.node
    else {
        return Err("it does not keep one row per key (ROW_NUMBER() … = 1)");
    };
    if input.updating {
        return Err("its input is an updating table");
    }
    let time = input.rowtime.ok_or("its input has no rowtime")?;
    if !matches!(order.as_slice(), [(Expr::Column(c), true)] if *c == time) {
        return Err("it does not order by the rowtime descending (the last row per key)");
    }
    let key: Vec<usize> = partition
        .iter()
        .map(|e| match e {
            Expr::Column(c) => Ok(*c),
            _ => Err("its PARTITION BY is not of columns"),
        })
        .collect::<Result<_, _>>()?;
    let width = input.fields.len();
    let (versions, key) = match projection {
        None => {
            let mut versions = *input;
            versions.fields.truncate(width);
            (versions, key)
        }
        Some((exprs, fields)) => {
            let mut read = Vec::new();
            exprs.iter().for_each(|e| e.columns(&mut read));
            if read.contains(&width) {
                return Err("it selects the row number");
            }
            let key = key
                .iter()
                .map(|c| {
                    exprs
                        .iter()
                        .position(|e| matches!(e, Expr::Column(x) if x == c))
                        .ok_or("it does not select its key")
                })
                .collect::<Result<Vec<_>, _>>()?;
            (project(*input, exprs, fields), key)
        }
    };
    if versions.rowtime.is_none() {
        return Err("it does not select its rowtime");
    }
    Ok((versions, key))
}

/// Checks that late-data table `table` (of `whose`: "of `bids`") takes rows of `fields`: the
/// same number of columns, of the same types.
pub(crate) fn check_late_table(
    table: &TableDef,
    whose: &str,
    fields: &[PlanField],
) -> Result<(), PlanError> {
    let columns: Vec<&crate::catalog::TableColumn> = table.physical().collect();
    let fits = columns.len() == fields.len()
        && columns
            .iter()
            .zip(fields)
            .all(|(c, f)| SqlType::Data(c.data_type) == f.ty);
    if fits {
        return Ok(());
    }
    Err(PlanError::invalid(format!(
        "late-data table `{}` {whose} has columns ({}), the late rows have ({})",
        table.name,
        columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.data_type))
            .collect::<Vec<_>>()
            .join(", "),
        fields
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The table `p` scans, through filters, projections and window table functions.
fn scanned_table(p: &Plan) -> Option<&Arc<TableDef>> {
    match &p.node {
        Node::Scan { table, .. } => Some(table),
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::WindowTvf { input, .. } => scanned_table(input),
        _ => None,
    }
}

/// `ORDER BY` without `LIMIT` over `body`: Flink's temporal sort, which needs an append-only
/// input and the time attribute as the first key, ascending.
fn temporal_sort(
    body: Plan,
    mut order: Vec<(Expr, bool)>,
    late: Option<crate::plan::LateData>,
) -> Result<Plan, PlanError> {
    if body.updating {
        return Err(PlanError::unsupported(
            "ORDER BY without LIMIT over an updating result (a temporal sort takes append-only rows; add LIMIT n for a Top-N)",
        ));
    }
    // The time attribute's name, for the message: the result's, or its projection's input's.
    let time_name = match (body.rowtime, &body.node) {
        (Some(t), _) => Some(body.fields[t].name.clone()),
        (None, Node::Project { input, .. }) => input.rowtime.map(|t| input.fields[t].name.clone()),
        _ => None,
    };
    let Some(name) = time_name else {
        return Err(PlanError::unsupported(
            "ORDER BY without LIMIT on a result without a time attribute (a stream is sorted by its event time only; add LIMIT n for a Top-N)",
        ));
    };
    match (order.first(), body.rowtime) {
        (Some((Expr::Column(c), false)), Some(time)) if *c == time => {}
        _ => {
            return Err(PlanError::unsupported(format!(
                "ORDER BY without LIMIT on a stream sorts by the time attribute first, ascending, as in Flink: `ORDER BY {name} [, …]` (for another order add LIMIT n: a Top-N)"
            )))
        }
    }
    let time = body.rowtime.unwrap_or_default();
    order.remove(0);
    Ok(Plan {
        fields: body.fields.clone(),
        updating: false,
        rowtime: Some(time),
        node: Node::TemporalSort {
            input: Box::new(body),
            order,
            late,
        },
    })
}

/// Refuses a map or an array as a sort key: they have no order (as in Flink).
fn unordered(ty: SqlType, e: &ast::Expr) -> Result<(), PlanError> {
    if ty.is_collection() {
        return Err(PlanError::invalid(format!(
            "ORDER BY `{e}`, a {ty}: maps and arrays have no order"
        ))
        .at(e.span()));
    }
    Ok(())
}

/// The parts of `UNNEST(e, …) [WITH ORDINALITY] [AS t(c, …)]`, however sqlparser read it: its
/// own table factor in some dialects, a table function call in Flink's.
struct UnnestCall<'a> {
    exprs: Vec<&'a ast::Expr>,
    alias: Option<&'a ast::TableAlias>,
    with_ordinality: bool,
    factor: &'a TableFactor,
}

/// `tf` as an `UNNEST` call, if it is one.
fn unnest_call(tf: &TableFactor) -> Result<Option<UnnestCall<'_>>, PlanError> {
    Ok(match tf {
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset,
            with_ordinality,
            ..
        } => {
            if *with_offset {
                return Err(
                    PlanError::unsupported("UNNEST … WITH OFFSET (use WITH ORDINALITY)")
                        .at(tf.span()),
                );
            }
            Some(UnnestCall {
                exprs: array_exprs.iter().collect(),
                alias: alias.as_ref(),
                with_ordinality: *with_ordinality,
                factor: tf,
            })
        }
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality,
            ..
        } if name_of(name).eq_ignore_ascii_case("UNNEST") => {
            let exprs = args
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                    other => Err(PlanError::unsupported(format!(
                        "the argument `{other}` of UNNEST"
                    ))
                    .at(tf.span())),
                })
                .collect::<Result<_, _>>()?;
            Some(UnnestCall {
                exprs,
                alias: alias.as_ref(),
                with_ordinality: *with_ordinality,
                factor: tf,
            })
        }
        _ => None,
    })
}

/// A projection; the rowtime survives if it is projected as is.
pub(crate) fn project(input: Plan, exprs: Vec<Expr>, fields: Vec<PlanField>) -> Plan {
    let rowtime = input.rowtime.and_then(|r| {
        exprs
            .iter()
            .position(|e| matches!(e, Expr::Column(c) if *c == r))
    });
    Plan {
        fields,
        updating: input.updating,
        rowtime,
        node: Node::Project {
            input: Box::new(input),
            exprs,
        },
    }
}

/// Renames a plan's qualifier (and columns, with `AS t(a, b)`).
fn requalify(
    mut plan: Plan,
    qualifier: &str,
    alias: Option<&ast::TableAlias>,
) -> Result<Plan, PlanError> {
    if let Some(a) = alias {
        if !a.columns.is_empty() {
            if a.columns.len() != plan.fields.len() {
                return Err(PlanError::invalid(format!(
                    "`{}` names {} columns, the relation has {}",
                    a.name,
                    a.columns.len(),
                    plan.fields.len()
                ))
                .at(a.name.span));
            }
            for (f, c) in plan.fields.iter_mut().zip(&a.columns) {
                f.name = c.name.value.clone();
            }
        }
    }
    for f in &mut plan.fields {
        f.qualifier = Some(qualifier.to_string());
    }
    Ok(plan)
}

/// The window of a plan that is a window table function, possibly under filters: the kind,
/// the `window_start`, `window_end`, `window_time` columns, and whether it is of processing
/// time.
fn tvf_window(plan: &Plan) -> Option<(WindowKind, [usize; 3], bool)> {
    match &plan.node {
        Node::WindowTvf {
            window, proctime, ..
        } => {
            let n = plan.fields.len();
            Some((*window, [n - 3, n - 2, n - 1], *proctime))
        }
        Node::Filter { input, .. } => tvf_window(input),
        _ => None,
    }
}

/// Splits a WHERE into the conditions that filter the input (returned first, `None` if none)
/// and those that limit this SELECT's `ROW_NUMBER() … AS alias` (`alias <= N`, `alias < N`,
/// `alias = 1`, `N >= alias`, …), which then filter after the numbering.
///
/// Standard SQL evaluates WHERE before window functions, so a WHERE reading a window
/// function's alias is an error there; Nexmark q6 is written that way. Its only possible
/// meaning is a filter on the row number, and accepting it is sound under three conditions,
/// all checked here: the alias is not also a column of the input (then WHERE reads the
/// column, as SQL says), the limit is a top-level `AND` term (so no condition mixes the two
/// phases), and it has the Top-N form (anything else on the alias stays an unknown column).
fn split_row_number_filter(
    selection: &ast::Expr,
    projection: &[SelectItem],
    input: &[PlanField],
) -> (Option<ast::Expr>, Vec<ast::Expr>) {
    let alias = projection.iter().find_map(|item| match item {
        SelectItem::ExprWithAlias {
            expr: ast::Expr::Function(f),
            alias,
        } if f.over.is_some() && name_of(&f.name).eq_ignore_ascii_case("ROW_NUMBER") => {
            Some(alias.value.clone())
        }
        _ => None,
    });
    let Some(alias) = alias else {
        return (Some(selection.clone()), Vec::new());
    };
    if input.iter().any(|f| f.name == alias) {
        return (Some(selection.clone()), Vec::new());
    }
    fn terms(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
        match e {
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::And,
                right,
            } => {
                terms(left, out);
                terms(right, out);
            }
            ast::Expr::Nested(inner) => terms(inner, out),
            e => out.push(e.clone()),
        }
    }
    let is_alias = |e: &ast::Expr| matches!(e, ast::Expr::Identifier(i) if i.value == alias);
    let is_count = |e: &ast::Expr| {
        matches!(
            e,
            ast::Expr::Value(v) if matches!(&v.value, Value::Number(..))
        )
    };
    let mut all = Vec::new();
    terms(selection, &mut all);
    let (limits, rest): (Vec<ast::Expr>, Vec<ast::Expr>) = all.into_iter().partition(|t| {
        use ast::BinaryOperator::*;
        match t {
            ast::Expr::BinaryOp { left, op, right } => {
                (is_alias(left) && matches!(op, LtEq | Lt | Eq) && is_count(right))
                    || (is_count(left) && matches!(op, GtEq | Gt | Eq) && is_alias(right))
            }
            _ => false,
        }
    });
    let rest = rest.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    });
    (rest, limits)
}

/// Splits a join condition over `probe columns (n of them), table columns` into equalities of
/// an expression of the probe row with a table column (the column's index in the table), and
/// the other conditions.
fn split_lookup_keys(predicate: Expr, n: usize) -> (Vec<(Expr, usize)>, Vec<Expr>) {
    let mut keys = Vec::new();
    let mut residual = Vec::new();
    let parts = match predicate {
        Expr::And(v) => v,
        p => vec![p],
    };
    for p in parts {
        if let Expr::Cmp(CmpOp::Eq, a, b) = &p {
            let probe_only = |e: &Expr| {
                let mut c = Vec::new();
                e.columns(&mut c);
                !c.is_empty() && c.iter().all(|&x| x < n)
            };
            match (a.as_ref(), b.as_ref()) {
                (l, Expr::Column(c)) if *c >= n && probe_only(l) => {
                    keys.push((l.clone(), *c - n));
                    continue;
                }
                (Expr::Column(c), r) if *c >= n && probe_only(r) => {
                    keys.push((r.clone(), *c - n));
                    continue;
                }
                _ => {}
            }
        }
        residual.push(p);
    }
    (keys, residual)
}

/// Whether column `col` of `plan` is a processing-time attribute: `PROCTIME()`, computed in
/// a projection or as a table's computed column, and passed on unchanged by projections,
/// filters and window table functions.
pub(crate) fn is_proctime(plan: &Plan, col: usize) -> bool {
    let is_call = |e: &Expr| matches!(e, Expr::Call(ScalarFunction::Proctime, _));
    match &plan.node {
        Node::Project { input, exprs } => match exprs.get(col) {
            Some(Expr::Column(c)) => is_proctime(input, *c),
            Some(e) => is_call(e),
            None => false,
        },
        Node::Filter { input, .. } => is_proctime(input, col),
        Node::WindowTvf { input, .. } => col < input.fields.len() && is_proctime(input, col),
        Node::Scan { table, columns } => columns
            .get(col)
            .and_then(|&c| table.columns.get(c))
            .is_some_and(|c| matches!(&c.kind, ColumnSource::Computed(e) if is_call(e))),
        _ => false,
    }
}

/// Removes the window table function under a window aggregate (filters above it move below
/// it when they do not read the window's columns).
fn strip_window_tvf(plan: Plan) -> Result<Plan, PlanError> {
    match plan.node {
        Node::WindowTvf { input, .. } => Ok(*input),
        Node::Filter { input, predicate } => {
            let inner = strip_window_tvf(*input)?;
            let mut cols = Vec::new();
            predicate.columns(&mut cols);
            if cols.iter().any(|&c| c >= inner.fields.len()) {
                return Err(PlanError::unsupported(
                    "a WHERE on window_start/window_end before the window aggregate",
                ));
            }
            Ok(filter(inner, predicate))
        }
        _ => Ok(plan),
    }
}

fn window_kind(name: &str, sizes: &[&ast::Expr]) -> Result<WindowKind, PlanError> {
    let ms = sizes
        .iter()
        .map(|e| interval_ms(e))
        .collect::<Result<Vec<_>, _>>()?;
    let positive = |v: i64, what: &str| {
        if v > 0 {
            Ok(v)
        } else {
            Err(PlanError::invalid(format!(
                "{name}: the {what} must be positive"
            )))
        }
    };
    Ok(match (name, ms.as_slice()) {
        ("TUMBLE", [size]) => WindowKind::Tumble {
            size: positive(*size, "size")?,
        },
        ("HOP", [slide, size]) => {
            let (slide, size) = (positive(*slide, "slide")?, positive(*size, "size")?);
            if size % slide != 0 {
                return Err(PlanError::invalid(format!(
                    "HOP: the size ({size} ms) must be a multiple of the slide ({slide} ms)"
                )));
            }
            WindowKind::Hop { slide, size }
        }
        ("SESSION", [gap]) => WindowKind::Session {
            gap: positive(*gap, "gap")?,
        },
        ("CUMULATE", [step, size]) => {
            let (step, size) = (positive(*step, "step")?, positive(*size, "size")?);
            if size % step != 0 {
                return Err(PlanError::invalid(format!(
                    "CUMULATE: the size ({size} ms) must be a multiple of the step ({step} ms)"
                )));
            }
            WindowKind::Cumulate { step, size }
        }
        ("TUMBLE", [_, _]) | ("HOP" | "CUMULATE", [_, _, _]) => {
            return Err(PlanError::unsupported(format!(
                "{name} with an offset (its last argument): windows start at multiples of their size from the epoch"
            )))
        }
        _ => {
            return Err(PlanError::invalid(format!(
                "{name} takes {}",
                match name {
                    "TUMBLE" => "a size: TUMBLE(…, INTERVAL '10' SECOND)",
                    "HOP" =>
                        "a slide and a size: HOP(…, INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
                    "SESSION" => "a gap: SESSION(…, INTERVAL '10' SECOND)",
                    _ => "a step and a size: CUMULATE(…, INTERVAL '1' MINUTE, INTERVAL '1' HOUR)",
                }
            )))
        }
    })
}

fn literal(v: &Value) -> Result<(Expr, SqlType), PlanError> {
    Ok(match v {
        Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                (Expr::Literal(Scalar::Int(i)), SqlType::BIGINT)
            } else if n.contains(['e', 'E']) {
                let f: f64 = n
                    .parse()
                    .map_err(|_| PlanError::invalid(format!("bad number {n}")))?;
                (Expr::Literal(Scalar::float(f)), SqlType::DOUBLE)
            } else {
                let d: rust_decimal::Decimal = n.parse().map_err(|_| {
                    PlanError::invalid(format!("the number {n} has too many digits"))
                })?;
                let scale = d.scale() as u8;
                let precision = (d.mantissa().unsigned_abs().to_string().len() as u8).max(scale);
                (
                    Expr::Literal(Scalar::Decimal(d)),
                    SqlType::Data(DataType::Decimal { precision, scale }),
                )
            }
        }
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
            (Expr::Literal(Scalar::str(s)), SqlType::VARCHAR)
        }
        Value::Boolean(b) => (Expr::Literal(Scalar::Bool(*b)), SqlType::BOOLEAN),
        Value::Null => (Expr::Literal(Scalar::Null), SqlType::Null),
        other => return Err(PlanError::unsupported(format!("the literal {other}"))),
    })
}

fn expect_bool(ty: SqlType, what: &str) -> Result<(), PlanError> {
    if ty == SqlType::BOOLEAN || ty == SqlType::Null {
        Ok(())
    } else {
        Err(PlanError::invalid(format!(
            "type mismatch: {what} needs BOOLEAN operands, got {ty}"
        )))
    }
}

/// The type both may be widened to, if any.
pub(crate) fn common_type(a: SqlType, b: SqlType) -> Option<SqlType> {
    if a == b || b == SqlType::Null {
        return Some(a);
    }
    if a == SqlType::Null {
        return Some(b);
    }
    // Maps and arrays: the common type of their keys, values, elements.
    let common = |x: DataType, y: DataType| {
        common_type(SqlType::Data(x), SqlType::Data(y)).map(SqlType::data_type)
    };
    match (a.data_type(), b.data_type()) {
        (DataType::Map(x), DataType::Map(y)) => {
            let m = MapType::new(common(x.key(), y.key())?, common(x.value(), y.value())?)?;
            return Some(SqlType::Data(DataType::Map(m)));
        }
        (DataType::Array(x), DataType::Array(y)) => {
            let e = ArrayType::new(common(x.element(), y.element())?)?;
            return Some(SqlType::Data(DataType::Array(e)));
        }
        _ => {}
    }
    if a.is_numeric() && b.is_numeric() {
        return Some(numeric_result(ArithOp::Add, a, b));
    }
    if a.is_temporal() && b.is_temporal() {
        // The finer timestamp of the two (TIMESTAMP(6) with TIMESTAMP(3) or a DATE).
        let micros = SqlType::Data(DataType::TimestampMicros);
        return Some(if a == micros || b == micros {
            micros
        } else {
            SqlType::TIMESTAMP
        });
    }
    None
}

/// Converts `e` of type `from` to the run-time kind of `to` (a cast when the kinds differ).
pub(crate) fn widen(e: Expr, from: SqlType, to: SqlType) -> Expr {
    if from == to || from == SqlType::Null {
        return e;
    }
    Expr::Cast(Box::new(e), to.data_type()).folded()
}

fn to_kind(e: Expr, from: SqlType, to: DataType) -> Expr {
    let kind = |d: DataType| std::mem::discriminant(&d);
    if from == SqlType::Null || kind(from.data_type()) == kind(to) {
        e
    } else {
        Expr::Cast(Box::new(e), to).folded()
    }
}

/// Makes two operands comparable: numbers of different kinds meet at the wider kind, a
/// string literal against a timestamp is parsed, other mismatches are errors.
fn unify(
    l: Expr,
    lt: SqlType,
    r: Expr,
    rt: SqlType,
    what: &str,
) -> Result<(Expr, (Expr, SqlType)), PlanError> {
    if lt == rt || lt == SqlType::Null || rt == SqlType::Null {
        return Ok((l, (r, rt)));
    }
    if lt.is_numeric() && rt.is_numeric() {
        let common = numeric_result(ArithOp::Add, lt, rt).data_type();
        let kind = match common {
            DataType::Decimal { .. } => DataType::Decimal {
                precision: 28,
                scale: 0,
            },
            d => d,
        };
        // Integers compare with decimals directly; only doubles need a cast.
        if kind == DataType::Double {
            return Ok((
                to_kind(l, lt, kind),
                (to_kind(r, rt, kind), SqlType::DOUBLE),
            ));
        }
        return Ok((l, (r, rt)));
    }
    if lt.is_temporal() && rt.is_string() {
        return Ok((l, (Expr::Cast(Box::new(r), lt.data_type()).folded(), lt)));
    }
    if rt.is_temporal() && lt.is_string() {
        return Ok((Expr::Cast(Box::new(l), rt.data_type()).folded(), (r, rt)));
    }
    if lt.is_temporal() && rt.is_temporal() {
        // The finer of the two (Flink's common type of TIMESTAMP(3) and TIMESTAMP(6) is
        // TIMESTAMP(6)): microseconds are not cut to compare or to pick one.
        let micros = SqlType::Data(DataType::TimestampMicros);
        let t = if lt == micros || rt == micros {
            DataType::TimestampMicros
        } else {
            DataType::TimestampMillis
        };
        return Ok((to_kind(l, lt, t), (to_kind(r, rt, t), SqlType::Data(t))));
    }
    if let Some(common) = common_type(lt, rt).filter(|c| c.is_collection()) {
        // Maps and arrays of different element types: both cast to their common type.
        return Ok((widen(l, lt, common), (widen(r, rt, common), common)));
    }
    Err(PlanError::invalid(format!(
        "type mismatch in {what}: {lt} and {rt}"
    )))
}

/// The result type of an aggregate over `arg`, by Flink's rules.
pub(crate) fn agg_type(func: AggFunc, name: &str, arg: SqlType) -> Result<DataType, PlanError> {
    Ok(match func {
        AggFunc::Count => DataType::BigInt,
        _ if !arg.is_numeric()
            && (matches!(func, AggFunc::Sum | AggFunc::Avg) || func.is_variance()) =>
        {
            return Err(PlanError::invalid(format!(
                "type mismatch: {name} over {arg}"
            )))
        }
        AggFunc::Sum => match arg.data_type() {
            DataType::Decimal { scale, .. } => DataType::Decimal {
                precision: 28,
                scale,
            },
            t => t,
        },
        // As AVG's (Flink reduces the variances to sums and divisions in the argument's type).
        AggFunc::Avg
        | AggFunc::VarPop
        | AggFunc::VarSamp
        | AggFunc::StddevPop
        | AggFunc::StddevSamp => match arg.data_type() {
            DataType::Decimal { scale, .. } => DataType::Decimal {
                precision: 28,
                scale: scale.max(6),
            },
            t => t,
        },
        AggFunc::ListAgg if !arg.is_string() => {
            return Err(PlanError::invalid(format!(
                "type mismatch: {name} over {arg} (it joins strings)"
            )))
        }
        AggFunc::ListAgg => DataType::Varchar,
        AggFunc::FirstValue | AggFunc::LastValue => arg.data_type(),
        AggFunc::Min | AggFunc::Max if arg.is_collection() => {
            return Err(PlanError::invalid(format!(
                "type mismatch: {name} over {arg} (maps and arrays have no order)"
            )))
        }
        AggFunc::Min | AggFunc::Max => arg.data_type(),
    })
}

/// The aggregate calls with an OVER clause in an expression.
fn collect_over_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e Function>) {
    match e {
        ast::Expr::Function(f) => {
            let name = name_of(&f.name).to_ascii_uppercase();
            if f.over.is_some() && AGGREGATES.contains(&name.as_str()) {
                out.push(f);
            } else if let FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        collect_over_aggregates(x, out);
                    }
                }
            }
        }
        ast::Expr::BinaryOp { left, right, .. } => {
            collect_over_aggregates(left, out);
            collect_over_aggregates(right, out);
        }
        ast::Expr::UnaryOp { expr, .. }
        | ast::Expr::Nested(expr)
        | ast::Expr::Cast { expr, .. } => collect_over_aggregates(expr, out),
        ast::Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            for c in conditions {
                collect_over_aggregates(&c.condition, out);
                collect_over_aggregates(&c.result, out);
            }
            if let Some(e) = else_result {
                collect_over_aggregates(e, out);
            }
        }
        other => operands(other).for_each(|x| collect_over_aggregates(x, out)),
    }
}

/// The aggregate calls in an expression (not inside another aggregate).
fn collect_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e Function>) {
    match e {
        ast::Expr::Function(f) => {
            if is_aggregate(f) {
                out.push(f);
            } else if let FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        collect_aggregates(x, out);
                    }
                }
            }
        }
        ast::Expr::BinaryOp { left, right, .. } => {
            collect_aggregates(left, out);
            collect_aggregates(right, out);
        }
        ast::Expr::UnaryOp { expr, .. }
        | ast::Expr::Nested(expr)
        | ast::Expr::IsNull(expr)
        | ast::Expr::IsNotNull(expr)
        | ast::Expr::IsTrue(expr)
        | ast::Expr::IsFalse(expr)
        | ast::Expr::Cast { expr, .. }
        | ast::Expr::Extract { expr, .. } => collect_aggregates(expr, out),
        ast::Expr::Between {
            expr, low, high, ..
        } => {
            collect_aggregates(expr, out);
            collect_aggregates(low, out);
            collect_aggregates(high, out);
        }
        ast::Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                collect_aggregates(o, out);
            }
            for c in conditions {
                collect_aggregates(&c.condition, out);
                collect_aggregates(&c.result, out);
            }
            if let Some(e) = else_result {
                collect_aggregates(e, out);
            }
        }
        other => operands(other).for_each(|x| collect_aggregates(x, out)),
    }
}

/// The operands of the expressions that take operands in their own syntax (`FLOOR(x TO …)`,
/// `POSITION(a IN b)`, `ARRAY[…]`, `m[k]`, `SUBSTRING`, `TRIM`, `IN`, `LIKE`), for the
/// walkers that look for aggregates inside them.
fn operands(e: &ast::Expr) -> Box<dyn Iterator<Item = &ast::Expr> + '_> {
    match e {
        ast::Expr::Floor { expr, .. } | ast::Expr::Ceil { expr, .. } => {
            Box::new(std::iter::once(&**expr))
        }
        ast::Expr::Position { expr, r#in } => Box::new([&**expr, &**r#in].into_iter()),
        ast::Expr::Array(a) => Box::new(a.elem.iter()),
        ast::Expr::CompoundFieldAccess { root, access_chain } => Box::new(
            std::iter::once(&**root).chain(access_chain.iter().filter_map(|a| match a {
                ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => Some(index),
                _ => None,
            })),
        ),
        ast::Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => Box::new(
            std::iter::once(&**expr)
                .chain(substring_from.as_deref())
                .chain(substring_for.as_deref()),
        ),
        ast::Expr::Trim {
            expr, trim_what, ..
        } => Box::new(std::iter::once(&**expr).chain(trim_what.as_deref())),
        ast::Expr::In {
            expr,
            target: ast::InTarget::List(list),
            ..
        } => Box::new(std::iter::once(&**expr).chain(list)),
        ast::Expr::Like { expr, pattern, .. } => Box::new([&**expr, &**pattern].into_iter()),
        _ => Box::new(std::iter::empty()),
    }
}

/// Binds a table's computed column over its physical columns.
pub(crate) fn bind_computed(
    catalog: &Catalog,
    physical: &[PlanField],
    e: &ast::Expr,
) -> Result<(Expr, SqlType), PlanError> {
    let binder = Binder::new(catalog);
    let scope = Scope {
        fields: physical,
        agg: None,
    };
    binder.bind_expr(e, &scope)
}

/// Checks that a query's output fits a sink's columns, and converts it: widening casts where
/// Flink applies them implicitly, an error naming the column otherwise.
pub(crate) fn fit_to_sink(
    plan: Plan,
    sink: &TableDef,
    columns: Option<&[Ident]>,
) -> Result<Plan, PlanError> {
    let written = sink.written_columns();
    crate::kafka::check_metadata_written(sink, &written)?;
    let targets: Vec<usize> = match columns {
        Some(cols) => cols
            .iter()
            .map(|c| {
                let at = sink
                    .columns
                    .iter()
                    .position(|x| x.name == c.value)
                    .ok_or_else(|| {
                        PlanError::invalid(format!(
                            "table `{}` has no column `{}`{}",
                            sink.name,
                            c.value,
                            did_you_mean(&c.value, sink.column_names())
                        ))
                        .at(c.span)
                    })?;
                if !written.contains(&at) {
                    let what = match sink.columns[at].kind {
                        ColumnSource::Computed(_) => "a computed column",
                        _ => "a VIRTUAL metadata column (read-only)",
                    };
                    return Err(PlanError::invalid(format!(
                        "column `{}` of table `{}` is {what}: an INSERT cannot write it",
                        c.value, sink.name
                    ))
                    .at(c.span));
                }
                Ok(at)
            })
            .collect::<Result<_, _>>()?,
        // Without a column list the query gives the written columns in declaration order
        // (Flink's), whatever order the sink's rows hold them in.
        None => (0..sink.columns.len())
            .filter(|c| written.contains(c))
            .collect(),
    };
    if targets.len() != plan.fields.len() {
        return Err(PlanError::invalid(format!(
            "the query gives {} columns, table `{}` takes {} ({})",
            plan.fields.len(),
            sink.name,
            targets.len(),
            targets
                .iter()
                .map(|&t| sink.columns[t].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut exprs = Vec::new();
    let mut fields = Vec::new();
    for &p in &written {
        let col = &sink.columns[p];
        let want = SqlType::Data(col.data_type);
        match targets.iter().position(|&t| t == p) {
            Some(i) => {
                let have = plan.fields[i].ty;
                let ok = have == want
                    || have == SqlType::Null
                    || (have.is_numeric()
                        && want.is_numeric()
                        && !(have == SqlType::DOUBLE && want != SqlType::DOUBLE))
                    || (have.is_temporal() && want.is_temporal())
                    || want == SqlType::VARCHAR && have.is_string()
                    // An integer into a VARCHAR column, as its exact text (Flink refuses
                    // it; Nexmark q6 writes its BIGINT seller into a VARCHAR column).
                    || want == SqlType::VARCHAR && have == SqlType::BIGINT
                    // A map or an array whose elements widen into the column's.
                    || (have.is_collection() && common_type(have, want) == Some(want));
                if !ok {
                    return Err(PlanError::invalid(format!(
                        "type mismatch: column `{}` of table `{}` is {want}, the query gives {have} (column {} of the query, `{}`); CAST it",
                        col.name,
                        sink.name,
                        i + 1,
                        plan.fields[i].name
                    )));
                }
                let e = if have == want {
                    Expr::Column(i)
                } else {
                    Expr::Cast(Box::new(Expr::Column(i)), col.data_type)
                };
                exprs.push(e);
            }
            None => exprs.push(Expr::Literal(Scalar::Null)),
        }
        fields.push(field(&col.name, None, want));
    }
    let identity = exprs.len() == plan.fields.len()
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column(c) if *c == i));
    if identity {
        let mut plan = plan;
        for (f, n) in plan.fields.iter_mut().zip(&fields) {
            f.name = n.name.clone();
        }
        return Ok(plan);
    }
    Ok(project(plan, exprs, fields))
}

/// The column of an aggregation's pre-projection that computes `e`: an earlier one computing
/// the same deterministic expression of the same type (q15's `FILTER (WHERE price < 10000)`
/// of three aggregates, the argument of `COUNT(DISTINCT bidder)` and of its filtered
/// variants), else a new one named `{prefix}{n}`.
fn pre_column(
    e: Expr,
    prefix: &str,
    ty: SqlType,
    pre_exprs: &mut Vec<Expr>,
    pre_fields: &mut Vec<PlanField>,
) -> usize {
    if e.is_deterministic() {
        let text = format!("{e:?}");
        let same = |(x, f): (&Expr, &PlanField)| f.ty == ty && format!("{x:?}") == text;
        if let Some(i) = pre_exprs.iter().zip(pre_fields.iter()).position(same) {
            return i;
        }
    }
    pre_exprs.push(e);
    pre_fields.push(field(&format!("{prefix}{}", pre_fields.len()), None, ty));
    pre_fields.len() - 1
}
