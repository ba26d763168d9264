//! Bound expressions ([`Expr`]): column references resolved to positions, types checked and
//! constants folded at planning time; evaluated per row by one `match` over a small tree (no
//! virtual call except into a user-defined function).
//!
//! Evaluation follows SQL's three-valued logic (`NULL` propagates through arithmetic and
//! comparisons; `AND`/`OR` know `false AND NULL` is `false`). A failure (division by zero, a
//! bad cast) is an [`EvalError`] that the operator hands to the job's error policy with the row.

use crate::functions::ScalarFunction;
use crate::types::{ArithOp, SqlType};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use std::cmp::Ordering;
use std::fmt;
use streamcore::row::{DataType, Scalar};

/// An expression failed on a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CmpOp {
    /// The comparison with its operands swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            op => op,
        }
    }

    /// Whether `ord`, the order of the left operand to the right, satisfies the comparison.
    #[inline]
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::NotEq => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::LtEq => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::GtEq => ord != Ordering::Less,
        }
    }
}

/// A bound expression over the columns of one input row.
#[derive(Clone, Debug)]
pub enum Expr {
    /// The value of column `i`.
    Column(usize),
    /// A constant.
    Literal(Scalar),
    /// Arithmetic; the operands are already of the result's kind (see [`Expr::Cast`]).
    Arith(ArithOp, Box<Expr>, Box<Expr>, SqlType),
    /// A comparison of two values of one kind.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `AND` of all.
    And(Vec<Expr>),
    /// `OR` of all.
    Or(Vec<Expr>),
    /// `NOT`.
    Not(Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `IS [NOT] NULL` (`true` for `IS NOT NULL`).
    IsNull(Box<Expr>, bool),
    /// `CASE WHEN c THEN v … ELSE e END`.
    Case(Vec<(Expr, Expr)>, Box<Expr>),
    /// `CAST(e AS t)`, also inserted where types are widened.
    Cast(Box<Expr>, DataType),
    /// `e [NOT] IN (constants)`; a NULL among the constants comes first (the binder puts it
    /// there), so a miss knows in one test whether the answer is NULL.
    InList(Box<Expr>, Vec<Scalar>, bool),
    /// `e [NOT] LIKE pattern` (a compiled pattern).
    Like(Box<Expr>, LikePattern, bool),
    /// A scalar function.
    Call(ScalarFunction, Vec<Expr>),
    /// `CASE WHEN e = c1 THEN v1 WHEN e = c2 THEN v2 … ELSE x END` with one `e`, which is then
    /// evaluated once, not once per arm. Made by [`Expr::compiled`] from such a `Case` when an
    /// operator is built; the planner's rules never see it.
    Switch(Box<Expr>, Vec<(Scalar, Expr)>, Box<Expr>),
    /// `d * CAST(e AS DECIMAL(p, 0))` (either order) for an integer `e` and a decimal
    /// constant `d` whose scale is the result's (`0.908 * price`): the exact product is the
    /// integer times `d`'s mantissa, at `d`'s scale — no decimal multiplication, rounding or
    /// rescaling. A value of `e` that is not an integer is evaluated by the third expression,
    /// the original. Made by [`Expr::compiled`], for mantissas below 2³² (so that the product
    /// fits a decimal's 96 bits).
    ScaledInt(Box<Expr>, Decimal, Box<Expr>),
    /// A test of an integer `e` with constants, in place of the general predicate (the
    /// third expression, which answers for a value of `e` that is not an integer): no
    /// intermediate value, no dispatch on value kinds. Made by [`Expr::compiled`] from a
    /// comparison [`IntTest`] describes.
    IntTest(IntTest, Box<Expr>, Box<Expr>),
    /// A subexpression that occurs more than once in one operator's expressions (a scan's
    /// filter and its projection): evaluated at most once per row — the first time one of
    /// its occurrences is needed — and its value taken by the others from slot `.0`
    /// ([`crate::cse`]). Made by [`crate::cse::share_common`] when an operator is built;
    /// the operator starts each row with [`crate::cse::next_row`].
    Shared(usize, Box<Expr>),
}

/// What an [`Expr::IntTest`] tests of its integer `e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntTest {
    /// `e op b`: made from `d * CAST(e AS DECIMAL(p, 0)) op k` (either order) for a decimal
    /// constant `d ≠ 0` as in [`Expr::ScaledInt`] and a constant `k`, `b` the floor or
    /// ceiling of `k / d` and `op` flipped when `d < 0`: `0.908 * price > 1000000` is
    /// `price > 1101321`, with no product and no decimal comparison.
    Cmp(CmpOp, i64),
    /// `MOD(e, divisor) op r` (`e % divisor`, the remainder with `e`'s sign), `divisor ≠ 0`:
    /// Nexmark q2's `MOD(auction, 123) = 0`.
    Mod(i64, CmpOp, i64),
}

impl IntTest {
    /// Whether `v` passes.
    #[inline]
    fn holds(self, v: i64) -> bool {
        match self {
            IntTest::Cmp(op, bound) => op.holds(v.cmp(&bound)),
            IntTest::Mod(divisor, op, r) => op.holds(v.wrapping_rem(divisor).cmp(&r)),
        }
    }
}

/// A compiled `LIKE` pattern (`%` and `_`).
#[derive(Clone, Debug)]
pub struct LikePattern(regex_lite::Regex);

impl LikePattern {
    /// Compiles `pattern` with `\` as the escape character.
    pub fn new(pattern: &str) -> Self {
        let mut re = String::from("(?s)^");
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => re.push_str(".*"),
                '_' => re.push('.'),
                '\\' => {
                    if let Some(n) = chars.next() {
                        re.push_str(&regex_lite::escape(&n.to_string()));
                    }
                }
                c => re.push_str(&regex_lite::escape(&c.to_string())),
            }
        }
        re.push('$');
        LikePattern(regex_lite::Regex::new(&re).expect("an escaped LIKE pattern is a regex"))
    }

    /// Whether `s` matches the pattern.
    pub fn matches(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

impl Expr {
    /// Evaluates the expression on a row's values.
    #[inline]
    pub fn eval(&self, row: &[Scalar]) -> Result<Scalar, EvalError> {
        match self {
            Expr::Column(i) => Ok(row[*i].clone()),
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Arith(op, l, r, ty) => {
                let l = l.eval_cow(row)?;
                let r = r.eval_cow(row)?;
                arith(*op, &l, &r, *ty)
            }
            Expr::Cmp(op, l, r) => {
                // Columns and constants are compared where they are, not copied.
                let l = l.eval_cow(row)?;
                let r = r.eval_cow(row)?;
                Ok(compare(*op, &l, &r))
            }
            Expr::And(_) | Expr::Or(_) | Expr::Not(_) | Expr::IntTest(..) => {
                Ok(match self.truth(row)? {
                    Some(b) => Scalar::Bool(b),
                    None => Scalar::Null,
                })
            }
            Expr::Neg(e) => Ok(match e.eval(row)? {
                Scalar::Int(v) => Scalar::Int(v.wrapping_neg()),
                Scalar::Float(v) => Scalar::float(-v.get()),
                Scalar::Decimal(d) => Scalar::Decimal(-d),
                _ => Scalar::Null,
            }),
            Expr::IsNull(e, negated) => Ok(Scalar::Bool(e.eval_cow(row)?.is_null() != *negated)),
            Expr::Case(branches, otherwise) => {
                for (when, then) in branches {
                    if when.truth(row)? == Some(true) {
                        return then.eval(row);
                    }
                }
                otherwise.eval(row)
            }
            Expr::Switch(subject, arms, otherwise) => {
                let subject = subject.eval_cow(row)?;
                for (value, then) in arms {
                    if compare_truth(CmpOp::Eq, &subject, value) == Some(true) {
                        return then.eval(row);
                    }
                }
                otherwise.eval(row)
            }
            Expr::Cast(e, to) => cast(e.eval(row)?, *to),
            Expr::ScaledInt(e, factor, general) => match &*e.eval_cow(row)? {
                Scalar::Int(i) => Ok(Scalar::Decimal(Decimal::from_i128_with_scale(
                    *i as i128 * factor.mantissa(),
                    factor.scale(),
                ))),
                Scalar::Null => Ok(Scalar::Null),
                _ => general.eval(row),
            },
            Expr::InList(e, list, negated) => {
                let v = e.eval_cow(row)?;
                Ok(in_list(&v, list, *negated).map_or(Scalar::Null, Scalar::Bool))
            }
            Expr::Like(e, pattern, negated) => Ok(match &*e.eval_cow(row)? {
                Scalar::Str(s) => Scalar::Bool(pattern.matches(s) != *negated),
                _ => Scalar::Null,
            }),
            Expr::Call(f, args) => f.call(args, row),
            Expr::Shared(slot, e) => {
                if let Some(v) = crate::cse::get(*slot) {
                    return Ok(v);
                }
                let v = e.eval(row)?;
                crate::cse::set(*slot, &v);
                Ok(v)
            }
        }
    }

    /// Evaluates the expression, borrowing a column's or constant's value instead of copying it.
    #[inline]
    pub fn eval_cow<'a>(
        &'a self,
        row: &'a [Scalar],
    ) -> Result<std::borrow::Cow<'a, Scalar>, EvalError> {
        use std::borrow::Cow;
        Ok(match self {
            Expr::Column(i) => Cow::Borrowed(&row[*i]),
            Expr::Literal(v) => Cow::Borrowed(v),
            e => Cow::Owned(e.eval(row)?),
        })
    }

    /// The column the expression is, if it is a bare column.
    pub fn as_column(&self) -> Option<usize> {
        match self {
            Expr::Column(c) => Some(*c),
            _ => None,
        }
    }

    /// Evaluates a predicate: only `true` passes (`NULL` and `false` do not).
    #[inline]
    pub fn test(&self, row: &[Scalar]) -> Result<bool, EvalError> {
        Ok(self.truth(row)? == Some(true))
    }

    /// Evaluates a predicate to SQL's three truth values (`None`: unknown), without making a
    /// [`Scalar`] for the connectives and comparisons: a value made by parts and copied whole
    /// stalls the processor (a failed store-to-load forward), and a filter made of these
    /// nodes evaluated every row through such copies.
    pub fn truth(&self, row: &[Scalar]) -> Result<Option<bool>, EvalError> {
        Ok(match self {
            Expr::Cmp(op, l, r) => {
                let l = l.eval_cow(row)?;
                let r = r.eval_cow(row)?;
                compare_truth(*op, &l, &r)
            }
            Expr::And(all) | Expr::Or(all) => {
                // AND stops at the first false, OR at the first true; an unknown operand
                // makes the result unknown unless one decides it.
                let decisive = matches!(self, Expr::Or(_));
                let mut unknown = false;
                for e in all {
                    match e.truth(row)? {
                        Some(b) if b == decisive => return Ok(Some(decisive)),
                        None => unknown = true,
                        Some(_) => {}
                    }
                }
                (!unknown).then_some(!decisive)
            }
            Expr::Not(e) => e.truth(row)?.map(|b| !b),
            Expr::IntTest(test, e, general) => match &*e.eval_cow(row)? {
                Scalar::Int(i) => Some(test.holds(*i)),
                Scalar::Null => None,
                _ => general.truth(row)?,
            },
            Expr::IsNull(e, negated) => Some(e.eval_cow(row)?.is_null() != *negated),
            Expr::InList(e, list, negated) => in_list(&*e.eval_cow(row)?, list, *negated),
            Expr::Like(e, pattern, negated) => match &*e.eval_cow(row)? {
                Scalar::Str(s) => Some(pattern.matches(s) != *negated),
                _ => None,
            },
            e => match &*e.eval_cow(row)? {
                Scalar::Bool(b) => Some(*b),
                _ => None,
            },
        })
    }

    /// True if the expression gives the same value for the same row every time (it calls no
    /// function such as `RAND()` or `NOW()`).
    pub fn is_deterministic(&self) -> bool {
        let mut deterministic = true;
        self.transform(&mut |x| {
            if let Expr::Call(f, _) = x {
                deterministic &= f.is_deterministic();
            }
            None
        });
        deterministic
    }

    /// True if the expression reads no column (a constant to fold).
    pub fn is_constant(&self) -> bool {
        match self {
            Expr::Column(_) => false,
            Expr::Literal(_) => true,
            Expr::Arith(_, l, r, _) | Expr::Cmp(_, l, r) => l.is_constant() && r.is_constant(),
            Expr::And(v) | Expr::Or(v) => v.iter().all(Expr::is_constant),
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => e.is_constant(),
            Expr::InList(e, _, _) | Expr::Like(e, _, _) => e.is_constant(),
            Expr::Case(b, e) => {
                e.is_constant() && b.iter().all(|(w, t)| w.is_constant() && t.is_constant())
            }
            Expr::Call(f, args) => f.is_deterministic() && args.iter().all(Expr::is_constant),
            Expr::Switch(s, arms, e) => {
                s.is_constant() && e.is_constant() && arms.iter().all(|(_, t)| t.is_constant())
            }
            Expr::ScaledInt(_, _, general) | Expr::IntTest(_, _, general) => general.is_constant(),
            Expr::Shared(_, e) => e.is_constant(),
        }
    }

    /// True if evaluating the expression returns no error for any row: columns, constants,
    /// comparisons, the connectives, `IS NULL`, `IN`, `LIKE`, `CASE`, `LOWER`/`UPPER` and
    /// regular expressions compiled once, over such operands (anything else is taken to be
    /// able to fail).
    pub fn cannot_fail(&self) -> bool {
        match self {
            Expr::Column(_) | Expr::Literal(_) => true,
            Expr::Cmp(_, l, r) => l.cannot_fail() && r.cannot_fail(),
            Expr::And(all) | Expr::Or(all) => all.iter().all(Expr::cannot_fail),
            Expr::Not(e) | Expr::IsNull(e, _) | Expr::InList(e, _, _) | Expr::Like(e, _, _) => {
                e.cannot_fail()
            }
            Expr::Call(
                ScalarFunction::Lower
                | ScalarFunction::Upper
                | ScalarFunction::RegexpFound(_)
                | ScalarFunction::RegexpExtract(Some(_)),
                args,
            ) => args.iter().all(Expr::cannot_fail),
            Expr::Case(branches, otherwise) => {
                otherwise.cannot_fail()
                    && branches
                        .iter()
                        .all(|(when, then)| when.cannot_fail() && then.cannot_fail())
            }
            Expr::Shared(_, e) => e.cannot_fail(),
            _ => false,
        }
    }

    /// A rough cost of evaluating the expression once, to order the operands of `AND` and
    /// `OR`: reading a value is free, a comparison or a step of a list costs 1, a string
    /// function 5, `LIKE` 20, a regular expression 100.
    pub fn cost(&self) -> u32 {
        let sum = |all: &[Expr]| all.iter().map(Expr::cost).sum::<u32>();
        match self {
            Expr::Column(_) | Expr::Literal(_) => 0,
            Expr::Cmp(_, l, r) | Expr::Arith(_, l, r, _) => 1 + l.cost() + r.cost(),
            Expr::And(all) | Expr::Or(all) => sum(all),
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => 1 + e.cost(),
            Expr::InList(e, list, _) => 1 + list.len() as u32 + e.cost(),
            Expr::Like(e, _, _) => 20 + e.cost(),
            Expr::Call(ScalarFunction::RegexpFound(_) | ScalarFunction::RegexpExtract(_), args) => {
                100 + sum(args)
            }
            Expr::Call(_, args) => 5 + sum(args),
            Expr::Case(..) | Expr::Switch(..) | Expr::ScaledInt(..) => 10,
            Expr::IntTest(_, e, _) => 1 + e.cost(),
            Expr::Shared(_, e) => e.cost(),
        }
    }

    /// The expression as an operator evaluates it: a `CASE` whose arms all compare one
    /// expression with a constant (`CASE WHEN lower(c) = 'a' THEN … WHEN lower(c) = 'b' THEN
    /// …`) becomes an [`Expr::Switch`] evaluating that expression once per row; and
    /// `REGEXP_EXTRACT(s, 'p', g) IS [NOT] NULL` a match test when group `g` takes part in
    /// every match (no capture groups computed to be thrown away; not when the extraction is
    /// shared with the projection, [`Expr::Shared`], as in Nexmark q21's scan). The
    /// operands of an `AND` or `OR` that cannot fail are evaluated cheapest first
    /// ([`Expr::cost`]): `regexp(url) OR lower(channel) IN (…)` tests the channel before it
    /// searches the URL. Both connectives are commutative in SQL's three-valued logic, so only
    /// the work changes; an operand that can fail keeps the order as written (an error is
    /// reported where the written order would reach it). A decimal constant times an integer
    /// is an integer product ([`Expr::ScaledInt`]); such a product compared with a constant,
    /// and `MOD(x, d)` compared with one, are integer tests ([`Expr::IntTest`]). Compiling a
    /// compiled expression again changes nothing.
    pub fn compiled(&self) -> Expr {
        self.transform(&mut |e| {
            if matches!(e, Expr::ScaledInt(..) | Expr::IntTest(..)) {
                // Compiled already: its general form is the original, kept as written.
                return Some(e.clone());
            }
            if let Some(found) = regexp_found(e) {
                return Some(found);
            }
            if let Expr::And(all) | Expr::Or(all) = e {
                let mut parts: Vec<Expr> = all.iter().map(Expr::compiled).collect();
                if parts.iter().all(Expr::cannot_fail) {
                    parts.sort_by_key(Expr::cost);
                }
                return Some(match e {
                    Expr::And(_) => Expr::And(parts),
                    _ => Expr::Or(parts),
                });
            }
            if let Some(test) = int_test(e) {
                return Some(test);
            }
            if let Some(scaled) = scaled_int(e) {
                return Some(scaled);
            }
            let Expr::Case(branches, otherwise) = e else {
                return None;
            };
            if branches.len() < 2 {
                return None;
            }
            let mut subject: Option<(&Expr, String)> = None;
            let mut arms = Vec::with_capacity(branches.len());
            for (when, then) in branches {
                let Expr::Cmp(CmpOp::Eq, l, r) = when else {
                    return None;
                };
                let (e, value) = match (&**l, &**r) {
                    (e, Expr::Literal(v)) | (Expr::Literal(v), e) if !v.is_null() => (e, v),
                    _ => return None,
                };
                // Planning-time identity of the compared expression (as `Plan::reuse_key`).
                let key = format!("{e:?}");
                match &subject {
                    None => subject = Some((e, key)),
                    Some((_, k)) if *k == key => {}
                    Some(_) => return None,
                }
                arms.push((value.clone(), then.compiled()));
            }
            let (subject, _) = subject?;
            if matches!(subject, Expr::Column(_) | Expr::Literal(_)) {
                // Nothing to save: reading a column is as cheap as the comparison.
                return None;
            }
            Some(Expr::Switch(
                Box::new(subject.compiled()),
                arms,
                Box::new(otherwise.compiled()),
            ))
        })
    }

    /// Folds the expression to a literal if it reads no column and evaluates without error.
    pub fn folded(self) -> Expr {
        if !matches!(self, Expr::Literal(_)) && self.is_constant() {
            // Its shared subexpressions (if any) are evaluated as a row of their own.
            crate::cse::next_row();
            if let Ok(v) = self.eval(&[]) {
                return Expr::Literal(v);
            }
        }
        self
    }

    /// A copy of the expression in which every node `f` replaces (`Some`) is replaced, and
    /// every other node is rebuilt from its transformed children (the walk of every rewrite:
    /// column renumbering, substitution, constants).
    pub fn transform(&self, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
        if let Some(e) = f(self) {
            return e;
        }
        let mut t = |x: &Expr| Box::new(x.transform(f));
        match self {
            Expr::Column(_) | Expr::Literal(_) => self.clone(),
            Expr::Arith(op, l, r, ty) => {
                let l = t(l);
                Expr::Arith(*op, l, t(r), *ty)
            }
            Expr::Cmp(op, l, r) => {
                let l = t(l);
                Expr::Cmp(*op, l, t(r))
            }
            Expr::And(v) => Expr::And(v.iter().map(|x| x.transform(f)).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(|x| x.transform(f)).collect()),
            Expr::Not(x) => Expr::Not(t(x)),
            Expr::Neg(x) => Expr::Neg(t(x)),
            Expr::IsNull(x, n) => Expr::IsNull(t(x), *n),
            Expr::Case(b, x) => {
                let branches = b
                    .iter()
                    .map(|(w, th)| (w.transform(f), th.transform(f)))
                    .collect();
                Expr::Case(branches, Box::new(x.transform(f)))
            }
            Expr::Cast(x, ty) => Expr::Cast(t(x), *ty),
            Expr::InList(x, l, n) => Expr::InList(t(x), l.clone(), *n),
            Expr::Like(x, p, n) => Expr::Like(t(x), p.clone(), *n),
            Expr::Call(func, args) => {
                Expr::Call(func.clone(), args.iter().map(|x| x.transform(f)).collect())
            }
            Expr::Switch(s, arms, x) => {
                let s = t(s);
                let arms = arms
                    .iter()
                    .map(|(v, th)| (v.clone(), th.transform(f)))
                    .collect();
                Expr::Switch(s, arms, Box::new(x.transform(f)))
            }
            Expr::ScaledInt(x, d, general) => Expr::ScaledInt(t(x), *d, t(general)),
            Expr::IntTest(test, x, general) => Expr::IntTest(*test, t(x), t(general)),
            Expr::Shared(slot, x) => Expr::Shared(*slot, t(x)),
        }
    }

    /// The columns this expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Column(i) => out.push(*i),
            Expr::Literal(_) => {}
            Expr::Arith(_, l, r, _) | Expr::Cmp(_, l, r) => {
                l.columns(out);
                r.columns(out);
            }
            Expr::And(v) | Expr::Or(v) | Expr::Call(_, v) => v.iter().for_each(|e| e.columns(out)),
            Expr::Not(e)
            | Expr::Neg(e)
            | Expr::IsNull(e, _)
            | Expr::Cast(e, _)
            | Expr::InList(e, _, _)
            | Expr::Like(e, _, _) => e.columns(out),
            Expr::Case(b, e) => {
                for (w, t) in b {
                    w.columns(out);
                    t.columns(out);
                }
                e.columns(out);
            }
            Expr::Switch(s, arms, e) => {
                s.columns(out);
                arms.iter().for_each(|(_, t)| t.columns(out));
                e.columns(out);
            }
            Expr::ScaledInt(_, _, general) | Expr::IntTest(_, _, general) => general.columns(out),
            Expr::Shared(_, e) => e.columns(out),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(i) => write!(f, "${i}"),
            Expr::Literal(Scalar::Str(s)) => write!(f, "'{s}'"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Arith(op, l, r, _) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Cmp(op, l, r) => {
                let op = match op {
                    CmpOp::Eq => "=",
                    CmpOp::NotEq => "<>",
                    CmpOp::Lt => "<",
                    CmpOp::LtEq => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::GtEq => ">=",
                };
                write!(f, "({l} {op} {r})")
            }
            Expr::And(v) => join(f, v, " AND "),
            Expr::Or(v) => join(f, v, " OR "),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::IsNull(e, false) => write!(f, "{e} IS NULL"),
            Expr::IsNull(e, true) => write!(f, "{e} IS NOT NULL"),
            Expr::Case(b, e) => {
                f.write_str("CASE")?;
                for (w, t) in b {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                write!(f, " ELSE {e} END")
            }
            Expr::Switch(s, arms, e) => {
                write!(f, "CASE {s}")?;
                for (v, t) in arms {
                    match v {
                        Scalar::Str(v) => write!(f, " WHEN '{v}' THEN {t}")?,
                        v => write!(f, " WHEN {v} THEN {t}")?,
                    }
                }
                write!(f, " ELSE {e} END")
            }
            Expr::Cast(e, t) => write!(f, "CAST({e} AS {t})"),
            Expr::ScaledInt(_, _, general) | Expr::IntTest(_, _, general) => {
                write!(f, "{general}")
            }
            Expr::Shared(_, e) => write!(f, "{e}"),
            Expr::InList(e, l, n) => {
                write!(f, "{e} {}IN (", if *n { "NOT " } else { "" })?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Expr::Like(e, p, n) => write!(f, "{e} {}LIKE /{}/", if *n { "NOT " } else { "" }, p.0),
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, v: &[Expr], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, e) in v.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{e}")?;
    }
    f.write_str(")")
}

/// `e` as an [`Expr::ScaledInt`], if it is a decimal constant times an integer cast to a
/// decimal of scale 0, the result at the constant's scale.
fn scaled_int(e: &Expr) -> Option<Expr> {
    let (factor, int) = scaled_factor(e)?;
    Some(Expr::ScaledInt(
        Box::new(int.compiled()),
        factor,
        Box::new(e.clone()),
    ))
}

/// The decimal constant `d` and the expression `e` of `e`'s product `d * CAST(e AS
/// DECIMAL(p, 0))` (either order), when the exact product is `e` times `d`'s mantissa at the
/// result's scale: `d`'s scale is the result's, and its mantissa is below 2³² (the product of
/// a 64-bit integer fits a decimal's 96 bits: never an overflow, never a rounding).
fn scaled_factor(e: &Expr) -> Option<(Decimal, &Expr)> {
    let Expr::Arith(ArithOp::Mul, l, r, SqlType::Data(DataType::Decimal { scale, .. })) = e else {
        return None;
    };
    let (factor, int) = match (&**l, &**r) {
        (Expr::Literal(Scalar::Decimal(d)), Expr::Cast(x, DataType::Decimal { scale: 0, .. }))
        | (Expr::Cast(x, DataType::Decimal { scale: 0, .. }), Expr::Literal(Scalar::Decimal(d))) => {
            (d, x)
        }
        _ => return None,
    };
    (factor.scale() == *scale as u32
        && factor.mantissa().unsigned_abs() < 1 << 32
        && reads_columns_only(int))
    .then_some((*factor, &**int))
}

/// Whether `e` is columns and constants under arithmetic and casts: cheap, and calling no
/// function. The integer forms ([`Expr::ScaledInt`], [`Expr::IntTest`]) evaluate their
/// integer operand, and evaluate it again inside the general form when it is not an
/// integer: a function there (a user's) would be called twice for the row.
fn reads_columns_only(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(_) => true,
        Expr::Arith(_, l, r, _) => reads_columns_only(l) && reads_columns_only(r),
        Expr::Cast(x, _) | Expr::Neg(x) => reads_columns_only(x),
        _ => false,
    }
}

/// `e` as an [`Expr::IntTest`]: [`IntTest::Mod`] if it compares `MOD(x, d)` of a non-zero
/// integer `d` with an integer constant; [`IntTest::Cmp`] if it compares a product
/// [`scaled_factor`] takes apart (or a shared one: the comparison then no longer needs it)
/// with a number constant, the factor is not zero, and the bound fits 64 bits.
///
/// For `d > 0` and an integer `x`: `d·x > k ⟺ x > k/d ⟺ x > ⌊k/d⌋`, `d·x ≥ k ⟺ x ≥ ⌈k/d⌉`,
/// `d·x < k ⟺ x < ⌈k/d⌉`, `d·x ≤ k ⟺ x ≤ ⌊k/d⌋`; `d < 0` flips the comparison. `=` and
/// `<>` are left as they are.
fn int_test(e: &Expr) -> Option<Expr> {
    let Expr::Cmp(op, l, r) = e else {
        return None;
    };
    let (op, product, k) = match (&**l, &**r) {
        (p, Expr::Literal(k)) => (*op, p, k),
        (Expr::Literal(k), p) => (op.flipped(), p, k),
        _ => return None,
    };
    let product = match product {
        Expr::Shared(_, p) => &**p,
        p => p,
    };
    if let (Expr::Arith(ArithOp::Mod, x, divisor, _), Scalar::Int(r)) = (product, k) {
        let Expr::Literal(Scalar::Int(divisor)) = **divisor else {
            return None;
        };
        return (divisor != 0 && reads_columns_only(x)).then(|| {
            Expr::IntTest(
                IntTest::Mod(divisor, op, *r),
                Box::new(x.compiled()),
                Box::new(e.clone()),
            )
        });
    }
    let (d, x) = scaled_factor(product)?;
    let k = match k {
        Scalar::Int(i) => Decimal::from(*i),
        Scalar::Decimal(k) => *k,
        _ => return None,
    };
    if d.is_zero() {
        return None;
    }
    let op = if d.is_sign_negative() {
        op.flipped()
    } else {
        op
    };
    // k / d = (k's mantissa · 10^d's scale) / (d's mantissa · 10^k's scale), a positive
    // denominator.
    let num = k.mantissa().checked_mul(10i128.checked_pow(d.scale())?)?;
    let den = d.mantissa().checked_mul(10i128.checked_pow(k.scale())?)?;
    let (num, den) = if den < 0 {
        (num.checked_neg()?, -den)
    } else {
        (num, den)
    };
    let floor = num.div_euclid(den);
    let ceil = floor + i128::from(num.rem_euclid(den) != 0);
    let bound = match op {
        CmpOp::Gt | CmpOp::LtEq => floor,
        CmpOp::Lt | CmpOp::GtEq => ceil,
        CmpOp::Eq | CmpOp::NotEq => return None,
    };
    Some(Expr::IntTest(
        IntTest::Cmp(op, i64::try_from(bound).ok()?),
        Box::new(x.compiled()),
        Box::new(e.clone()),
    ))
}

/// `v [NOT] IN (list)` in SQL's three-valued logic: unknown (`None`) for a NULL `v`, and for a
/// `v` not in a list holding a NULL (`1 NOT IN (2, NULL)` is NULL, not true); a NULL in
/// `list` is its first element ([`Expr::InList`]).
#[inline]
fn in_list(v: &Scalar, list: &[Scalar], negated: bool) -> Option<bool> {
    if v.is_null() {
        return None;
    }
    if list.contains(v) {
        return Some(!negated);
    }
    if list.first().is_some_and(Scalar::is_null) {
        return None;
    }
    Some(negated)
}

/// Arithmetic on two values already of the result's kind (integers, doubles or decimals;
/// timestamps and dates plus or minus an interval in milliseconds).
pub fn arith(op: ArithOp, l: &Scalar, r: &Scalar, ty: SqlType) -> Result<Scalar, EvalError> {
    use Scalar::*;
    Ok(match (l, r) {
        (Null, _) | (_, Null) => Null,
        // Intervals: a sum out of range is an error, not a wrapped value.
        (Int(a), Int(b)) if matches!(ty, SqlType::Interval(_)) => {
            let v = match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Sub => a.checked_sub(*b),
                _ => None,
            };
            Int(v.ok_or_else(|| EvalError(format!("interval out of range: {a} {op:?} {b}")))?)
        }
        (Int(a), Int(b)) => match op {
            ArithOp::Add => Int(a.wrapping_add(*b)),
            ArithOp::Sub => Int(a.wrapping_sub(*b)),
            ArithOp::Mul => Int(a.wrapping_mul(*b)),
            ArithOp::Div => {
                if *b == 0 {
                    return Err(EvalError("division by zero".into()));
                }
                Int(a.wrapping_div(*b))
            }
            ArithOp::Mod => {
                if *b == 0 {
                    return Err(EvalError("division by zero (MOD)".into()));
                }
                Int(a.wrapping_rem(*b))
            }
        },
        (Float(a), Float(b)) => {
            let (a, b) = (a.get(), b.get());
            Scalar::float(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
            })
        }
        (Decimal(a), Decimal(b)) => {
            let v = match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Sub => a.checked_sub(*b),
                ArithOp::Mul => a.checked_mul(*b),
                ArithOp::Div => {
                    if b.is_zero() {
                        return Err(EvalError("division by zero".into()));
                    }
                    a.checked_div(*b)
                }
                ArithOp::Mod => {
                    if b.is_zero() {
                        return Err(EvalError("division by zero (MOD)".into()));
                    }
                    a.checked_rem(*b)
                }
            };
            let mut v = v.ok_or_else(|| EvalError(format!("decimal overflow in {a} and {b}")))?;
            if let SqlType::Data(DataType::Decimal { scale, .. }) = ty {
                if v.scale() != scale as u32 {
                    v = crate::types::to_scale(v, scale as u32);
                }
            }
            Decimal(v)
        }
        // A time point plus or minus a day-time interval (milliseconds); the binder puts the
        // point first.
        (TimestampMs(_) | TimestampUs(_) | Date(_), Int(ms))
            if matches!(op, ArithOp::Add | ArithOp::Sub) =>
        {
            let signed = if op == ArithOp::Sub {
                ms.checked_neg()
            } else {
                Some(*ms)
            };
            let moved = signed.and_then(|ms| match l {
                TimestampMs(t) => t.checked_add(ms).map(TimestampMs),
                TimestampUs(t) => ms
                    .checked_mul(1000)
                    .and_then(|us| t.checked_add(us))
                    .map(TimestampUs),
                // Whole days, truncated toward zero (as Flink's `date + ms / MILLIS_PER_DAY`).
                Date(d) => i32::try_from(ms / 86_400_000)
                    .ok()
                    .and_then(|days| d.checked_add(days))
                    .map(Date),
                _ => None,
            });
            moved.ok_or_else(|| {
                EvalError(format!(
                    "{} {} an interval of {} ms is out of range",
                    l.type_name(),
                    if op == ArithOp::Sub { "minus" } else { "plus" },
                    ms
                ))
            })?
        }
        (TimestampMs(a), TimestampMs(b)) if op == ArithOp::Sub => Int(a - b),
        (a, b) => {
            return Err(EvalError(format!(
                "cannot apply {op:?} to {} and {}",
                a.type_name(),
                b.type_name()
            )))
        }
    })
}

/// Compares two values of one kind (numbers of different kinds compare by value).
#[inline]
pub fn compare(op: CmpOp, l: &Scalar, r: &Scalar) -> Scalar {
    match compare_truth(op, l, r) {
        Some(b) => Scalar::Bool(b),
        None => Scalar::Null,
    }
}

/// [`compare`] as SQL's three truth values (`None`: unknown, a `NULL` operand), without
/// making a value.
#[inline]
pub fn compare_truth(op: CmpOp, l: &Scalar, r: &Scalar) -> Option<bool> {
    let ord = match (l, r) {
        (Scalar::Null, _) | (_, Scalar::Null) => return None,
        (Scalar::Int(a), Scalar::Int(b)) => a.cmp(b),
        (Scalar::Int(a), Scalar::Decimal(b)) => Decimal::from(*a).cmp(b),
        (Scalar::Decimal(a), Scalar::Int(b)) => a.cmp(&Decimal::from(*b)),
        (Scalar::Float(_), _) | (_, Scalar::Float(_)) => match (l.as_f64(), r.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            _ => l.cmp(r),
        },
        _ => l.cmp(r),
    };
    Some(op.holds(ord))
}

/// `REGEXP_EXTRACT(s, 'p', g) IS NOT NULL` as `REGEXP_FOUND(s)` (and `IS NULL` as its
/// negation), when the pattern is compiled and group `g` takes part in every match of it (then
/// the extract is NULL exactly when nothing matches, or `s` is not a string).
fn regexp_found(e: &Expr) -> Option<Expr> {
    let Expr::IsNull(inner, negated) = e else {
        return None;
    };
    let Expr::Call(ScalarFunction::RegexpExtract(Some(re)), args) = &**inner else {
        return None;
    };
    let group = match args.get(2) {
        None => 0,
        Some(Expr::Literal(Scalar::Int(g))) => usize::try_from(*g).ok()?,
        Some(_) => return None,
    };
    let every_match_has_all_groups = re.static_captures_len() == Some(re.captures_len());
    if group >= re.captures_len() || !every_match_has_all_groups {
        return None;
    }
    let found = Expr::Call(
        ScalarFunction::RegexpFound(re.clone()),
        vec![args[0].compiled()],
    );
    Some(if *negated {
        found
    } else {
        Expr::Not(Box::new(found))
    })
}

/// `CAST(v AS to)`.
#[inline]
pub fn cast(v: Scalar, to: DataType) -> Result<Scalar, EvalError> {
    // A value of the type already — the casts the planner inserts where types are widened or
    // fitted to a sink, e.g. `0.908 * price` into DECIMAL(23, 3) — returns where it is.
    let identity = match (&v, to) {
        (Scalar::Null, _) => true,
        (Scalar::Decimal(d), DataType::Decimal { precision, scale }) => {
            d.scale() == scale as u32 && fits_precision(d, precision, scale)
        }
        (Scalar::Int(_), DataType::BigInt)
        | (Scalar::Str(_), DataType::Varchar)
        | (Scalar::TimestampMs(_), DataType::TimestampMillis) => true,
        _ => false,
    };
    if identity {
        Ok(v)
    } else {
        cast_value(v, to)
    }
}

/// [`cast`] of a value that changes. A decimal with more digits before its point than
/// `DECIMAL(p, s)` holds (`p - s`) is NULL, as Flink's cast makes it.
fn cast_value(v: Scalar, to: DataType) -> Result<Scalar, EvalError> {
    let out = cast_value_unchecked(v, to)?;
    Ok(match (out, to) {
        (Scalar::Decimal(d), DataType::Decimal { precision, scale })
            if !fits_precision(&d, precision, scale) =>
        {
            Scalar::Null
        }
        (out, _) => out,
    })
}

/// Whether `d` (at scale `scale`) has at most `precision - scale` digits before its point.
fn fits_precision(d: &Decimal, precision: u8, scale: u8) -> bool {
    // |d| < 10^whole, as its mantissa against 10^(whole + its scale): a table lookup per row.
    const POW10: [u128; 39] = {
        let mut t = [1u128; 39];
        let mut i = 1;
        while i < 39 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    let digits = usize::from(precision.saturating_sub(scale)) + d.scale() as usize;
    digits >= POW10.len() || d.mantissa().unsigned_abs() < POW10[digits]
}

/// [`cast_value`] without the precision check.
fn cast_value_unchecked(v: Scalar, to: DataType) -> Result<Scalar, EvalError> {
    use Scalar as S;
    // A collection of decimals is admitted at any scale: its elements are cast one by one.
    let is_decimal = |t: DataType| matches!(t, DataType::Decimal { .. });
    let rescales = match to {
        DataType::Map(m) => is_decimal(m.key()) || is_decimal(m.value()),
        DataType::Array(a) => is_decimal(a.element()),
        _ => false,
    };
    if (v.is_null() || !rescales) && to.admits(&v) {
        return Ok(match (v, to) {
            // At its scale already (`0.908 * price` into DECIMAL(_, 3)): nothing to round.
            (S::Decimal(d), DataType::Decimal { scale, .. }) if d.scale() == scale as u32 => {
                S::Decimal(d)
            }
            (S::Decimal(mut d), DataType::Decimal { scale, .. }) => {
                d = crate::types::to_scale(d, scale as u32);
                S::Decimal(d)
            }
            (v, _) => v,
        });
    }
    let bad = |v: &S| {
        EvalError(format!(
            "cannot cast {} `{v}` to {to}",
            v.type_name().to_lowercase()
        ))
    };
    Ok(match (&v, to) {
        (S::Int(i), DataType::Double) => S::float(*i as f64),
        (S::Int(i), DataType::Decimal { scale, .. }) => {
            let mut d = Decimal::from(*i);
            if scale != 0 {
                d.rescale(scale as u32);
            }
            S::Decimal(d)
        }
        (S::Int(i), DataType::Boolean) => S::Bool(*i != 0),
        (S::Int(i), DataType::TimestampMillis) => S::TimestampMs(*i),
        (S::Decimal(d), DataType::BigInt) => S::Int(d.trunc().to_i64().ok_or_else(|| bad(&v))?),
        (S::Decimal(d), DataType::Double) => S::float(d.to_f64().ok_or_else(|| bad(&v))?),
        (S::Float(f), DataType::BigInt) => S::Int(f.get() as i64),
        (S::Float(f), DataType::Decimal { scale, .. }) => {
            let mut d = Decimal::from_f64(f.get()).ok_or_else(|| bad(&v))?;
            d = crate::types::to_scale(d, scale as u32);
            S::Decimal(d)
        }
        (S::Bool(b), DataType::BigInt) => S::Int(i64::from(*b)),
        (S::TimestampMs(t), DataType::BigInt) => S::Int(*t),
        (S::TimestampMs(t), DataType::TimestampMicros) => {
            S::TimestampUs(t.checked_mul(1000).ok_or_else(|| bad(&v))?)
        }
        (S::Date(d), DataType::TimestampMicros) => S::TimestampUs(*d as i64 * 86_400_000_000),
        (S::TimestampUs(t), DataType::Date) => S::Date(t.div_euclid(86_400_000_000) as i32),
        (S::TimestampUs(t), DataType::TimestampMillis) => S::TimestampMs(t.div_euclid(1000)),
        (S::TimestampMs(t), DataType::Date) => S::Date(t.div_euclid(86_400_000) as i32),
        (S::Date(d), DataType::TimestampMillis) => S::TimestampMs(*d as i64 * 86_400_000),
        // Bytes are text in UTF-8 (Flink's cast; invalid UTF-8 fails, as since Flink 2.4).
        (S::Bytes(b), DataType::Varchar) => match std::str::from_utf8(b) {
            Ok(s) => S::str(s),
            Err(e) => {
                return Err(EvalError(format!(
                    "cannot cast bytes `{v}` to VARCHAR: not valid UTF-8 ({e})"
                )))
            }
        },
        (S::Map(entries), DataType::Map(m)) => S::map(
            entries
                .iter()
                .map(|(k, x)| Ok((cast(k.clone(), m.key())?, cast(x.clone(), m.value())?)))
                .collect::<Result<_, EvalError>>()?,
        ),
        (S::Array(elements), DataType::Array(a)) => S::Array(
            elements
                .iter()
                .map(|e| cast(e.clone(), a.element()))
                .collect::<Result<_, EvalError>>()?,
        ),
        (_, DataType::Varchar) => S::str(&v.to_string()),
        // `CAST` takes Flink's words for a boolean (`BinaryStringDataUtil.toBoolean`), any
        // case; a format reads only `true` and `false` (anything else is a bad record).
        (S::Str(s), DataType::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => S::Bool(true),
            "false" | "f" | "no" | "n" | "0" => S::Bool(false),
            _ => return Err(bad(&v)),
        },
        (S::Str(s), _) => parse_as(s.trim(), to).ok_or_else(|| bad(&v))?,
        _ => return Err(bad(&v)),
    })
}

/// Parses text as a value of `to` (CSV fields, `CAST('…' AS …)`); `None` if it is not one.
pub fn parse_as(s: &str, to: DataType) -> Option<Scalar> {
    Some(match to {
        DataType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" => Scalar::Bool(true),
            "false" => Scalar::Bool(false),
            _ => return None,
        },
        DataType::BigInt => Scalar::Int(s.parse().ok()?),
        DataType::Double => Scalar::float(s.parse().ok()?),
        DataType::Decimal { scale, .. } => {
            // Plain or scientific (`1.0E10`, as a DOUBLE prints).
            let mut d: Decimal = s
                .parse()
                .ok()
                .or_else(|| Decimal::from_scientific(s).ok())?;
            d = crate::types::to_scale(d, scale as u32);
            Scalar::Decimal(d)
        }
        DataType::Varchar => Scalar::str(s),
        DataType::Bytes => Scalar::Bytes(s.as_bytes().to_vec()),
        DataType::TimestampMillis => Scalar::TimestampMs(parse_timestamp_ms(s)?),
        DataType::TimestampMicros => Scalar::TimestampUs(parse_timestamp_us(s)?),
        DataType::Date => {
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Scalar::Date((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
        }
        DataType::Map(_) | DataType::Array(_) => return None,
    })
}

/// The timestamp forms with seconds (and a fraction, if any), as chrono formats.
const WITH_SECONDS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

/// Parses a timestamp as [`parse_timestamp_ms`] does, as epoch microseconds: every digit of
/// the fraction kept (`.123456`), not only the milliseconds.
pub fn parse_timestamp_us(s: &str) -> Option<i64> {
    for fmt in WITH_SECONDS {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    // The forms without seconds or a time have no fraction.
    parse_timestamp_ms(s)?.checked_mul(1000)
}

/// Parses `2026-12-05 14:00:00[.123]`, `2026-12-05T14:00:00[.123][Z]` or an RFC 3339
/// timestamp (converted to UTC) as epoch milliseconds.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    // The common form without chrono's format interpreter (the Nexmark JSON parser's).
    if let Some(ms) = streamcore_nexmark::json::parse_date_time(s) {
        return Some(ms);
    }
    for fmt in WITH_SECONDS
        .into_iter()
        .chain(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"])
    {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `CASE` cannot fail when none of its conditions and values can: a division in any
    /// of them can (by zero).
    #[test]
    fn a_case_cannot_fail_when_none_of_its_parts_can() {
        let x = || Box::new(Expr::Column(0));
        let when = Expr::Cmp(CmpOp::Gt, x(), Box::new(Expr::Literal(Scalar::Int(0))));
        let quotient = Expr::Arith(
            ArithOp::Div,
            Box::new(Expr::Literal(Scalar::Int(1))),
            x(),
            SqlType::Data(DataType::BigInt),
        );
        let case = |when: Expr, then: Expr, otherwise: Expr| {
            Expr::Case(vec![(when, then)], Box::new(otherwise))
        };
        let zero = || Expr::Literal(Scalar::Int(0));
        assert!(case(when.clone(), Expr::Column(0), zero()).cannot_fail());
        assert!(!case(when.clone(), quotient.clone(), zero()).cannot_fail());
        assert!(!case(when.clone(), zero(), quotient.clone()).cannot_fail());
        let failing_when = Expr::Cmp(CmpOp::Gt, Box::new(quotient), Box::new(zero()));
        assert!(!case(failing_when, zero(), zero()).cannot_fail());
    }

    /// `AND`/`OR` operands that cannot fail are evaluated cheapest first; with an operand that
    /// can fail (a division) the written order stays; the truth value is the same either way.
    #[test]
    fn connectives_test_the_cheaper_operands_first() {
        let regex = std::sync::Arc::new(regex::Regex::new("x=([^&]*)").unwrap());
        let found = Expr::Call(ScalarFunction::RegexpFound(regex), vec![Expr::Column(0)]);
        let cheap = Expr::InList(
            Box::new(Expr::Call(ScalarFunction::Lower, vec![Expr::Column(1)])),
            vec![Scalar::str("apple")],
            false,
        );
        let or = Expr::Or(vec![found.clone(), cheap.clone()]);
        let Expr::Or(parts) = or.compiled() else {
            panic!("an OR")
        };
        assert!(matches!(parts[0], Expr::InList(..)), "{parts:?}");
        let divide = Expr::Cmp(
            CmpOp::Gt,
            Box::new(Expr::Arith(
                ArithOp::Div,
                Box::new(Expr::Column(2)),
                Box::new(Expr::Column(3)),
                SqlType::BIGINT,
            )),
            Box::new(Expr::Literal(Scalar::Int(0))),
        );
        let and = Expr::And(vec![found, divide, cheap]);
        let Expr::And(parts) = and.compiled() else {
            panic!("an AND")
        };
        assert!(
            matches!(parts[0], Expr::Call(..)),
            "kept as written: {parts:?}"
        );
        for row in [
            [
                Scalar::str("a&x=1"),
                Scalar::str("Apple"),
                Scalar::Int(4),
                Scalar::Int(2),
            ],
            [
                Scalar::str("none"),
                Scalar::str("Apple"),
                Scalar::Int(4),
                Scalar::Int(2),
            ],
            [
                Scalar::str("none"),
                Scalar::str("pear"),
                Scalar::Int(4),
                Scalar::Int(2),
            ],
            [
                Scalar::Null,
                Scalar::str("pear"),
                Scalar::Int(4),
                Scalar::Int(2),
            ],
            [Scalar::Null, Scalar::Null, Scalar::Int(4), Scalar::Int(2)],
        ] {
            assert_eq!(or.truth(&row).unwrap(), or.compiled().truth(&row).unwrap());
            assert_eq!(
                and.truth(&row).unwrap(),
                and.compiled().truth(&row).unwrap()
            );
        }
    }

    /// `d * CAST($0 AS DECIMAL(28, 0))` (q1's `0.908 * price`), in both orders and with a
    /// negative constant: the integer product equals the decimal multiplication, digits and
    /// scale (`Display` shows both), for extreme integers, NULL and a non-integer value.
    #[test]
    fn an_integer_times_a_decimal_constant_is_an_integer_product() {
        let decimal = |d: &str| Expr::Literal(Scalar::Decimal(d.parse().unwrap()));
        let cast = || {
            Expr::Cast(
                Box::new(Expr::Column(0)),
                DataType::Decimal {
                    precision: 28,
                    scale: 0,
                },
            )
        };
        let times = |l: Expr, r: Expr, scale| {
            Expr::Arith(
                ArithOp::Mul,
                Box::new(l),
                Box::new(r),
                SqlType::Data(DataType::Decimal {
                    precision: 23,
                    scale,
                }),
            )
        };
        for general in [
            times(decimal("0.908"), cast(), 3),
            times(cast(), decimal("-12.5"), 1),
            times(decimal("4294967.295"), cast(), 3),
        ] {
            let compiled = general.compiled();
            assert!(matches!(compiled, Expr::ScaledInt(..)), "{general}");
            for v in [
                Scalar::Int(0),
                Scalar::Int(1),
                Scalar::Int(-7),
                Scalar::Int(123_456_789),
                Scalar::Int(i64::MAX),
                Scalar::Int(i64::MIN),
                Scalar::Null,
                Scalar::Decimal("2.0".parse().unwrap()),
            ] {
                let row = [v.clone()];
                let (want, got) = (general.eval(&row).unwrap(), compiled.eval(&row).unwrap());
                assert_eq!(want, got, "{general} at {v:?}");
                assert_eq!(want.to_string(), got.to_string(), "{general} at {v:?}");
            }
        }
        // A constant at another scale than the result's, or too long a mantissa: as written.
        assert!(matches!(
            times(decimal("0.9"), cast(), 3).compiled(),
            Expr::Arith(..)
        ));
        assert!(matches!(
            times(decimal("4294967.296"), cast(), 3).compiled(),
            Expr::Arith(..)
        ));
    }

    /// `CASE WHEN lower($0) = 'a' THEN 1 WHEN lower($0) = 'b' THEN 2 ELSE $1 END` compiles to
    /// one evaluation of `lower($0)` and gives what the CASE gives, NULL included; a CASE
    /// whose arms compare different expressions (or a bare column) stays as it is.
    #[test]
    fn a_case_over_one_expression_compiles_to_a_switch() {
        let int = |v: i64| Expr::Literal(Scalar::Int(v));
        let equals =
            |e: Expr, v: Scalar| Expr::Cmp(CmpOp::Eq, Box::new(e), Box::new(Expr::Literal(v)));
        let lower = || Expr::Call(ScalarFunction::Lower, vec![Expr::Column(0)]);
        let case = Expr::Case(
            vec![
                (equals(lower(), Scalar::str("a")), int(1)),
                (equals(lower(), Scalar::str("b")), int(2)),
            ],
            Box::new(Expr::Column(1)),
        );
        let compiled = case.compiled();
        assert!(matches!(compiled, Expr::Switch(..)), "{compiled}");
        assert_eq!(
            compiled.to_string(),
            "CASE LOWER($0) WHEN 'a' THEN 1 WHEN 'b' THEN 2 ELSE $1 END"
        );
        for input in [
            Scalar::str("A"),
            Scalar::str("b"),
            Scalar::str("c"),
            Scalar::Null,
        ] {
            let row = [input, Scalar::Int(9)];
            assert_eq!(compiled.eval(&row), case.eval(&row));
        }
        // Arms comparing different expressions, or a bare column, stay a CASE.
        let mixed = Expr::Case(
            vec![
                (equals(lower(), Scalar::str("a")), int(1)),
                (equals(Expr::Column(1), Scalar::Int(2)), int(2)),
            ],
            Box::new(int(0)),
        );
        assert!(matches!(mixed.compiled(), Expr::Case(..)));
        let on_a_column = Expr::Case(
            vec![
                (equals(Expr::Column(1), Scalar::Int(1)), int(1)),
                (equals(Expr::Column(1), Scalar::Int(2)), int(2)),
            ],
            Box::new(int(0)),
        );
        assert!(matches!(on_a_column.compiled(), Expr::Case(..)));
    }

    /// `REGEXP_EXTRACT(s, p, g) IS [NOT] NULL` compiles to a match test when group `g` takes
    /// part in every match, and gives what the extract gives; with an optional group (or one
    /// of two alternatives) it stays an extract.
    #[test]
    fn an_extract_tested_for_null_compiles_to_a_match_test() {
        let extract = |pattern: &str, group: i64| {
            let re = regex::Regex::new(pattern).unwrap();
            Expr::Call(
                ScalarFunction::RegexpExtract(Some(std::sync::Arc::new(re))),
                vec![
                    Expr::Column(0),
                    Expr::Literal(Scalar::str(pattern)),
                    Expr::Literal(Scalar::Int(group)),
                ],
            )
        };
        let inputs = [
            Scalar::str("https://x.com/item?channel_id=abc&x=1"),
            Scalar::str("channel_id=&b"),
            Scalar::str("https://x.com/item?query=1"),
            Scalar::str("b"),
            Scalar::str("ab"),
            Scalar::Null,
            Scalar::Int(3),
        ];
        for negated in [true, false] {
            let test = Expr::IsNull(Box::new(extract("(&|^)channel_id=([^&]*)", 2)), negated);
            let compiled = test.compiled();
            assert!(compiled.to_string().contains("REGEXP_FOUND"), "{compiled}");
            for input in &inputs {
                let row = [input.clone()];
                assert_eq!(compiled.eval(&row), test.eval(&row), "{input}");
            }
            // Group 1 is optional, or one of two alternatives: the extract may be NULL on a
            // match, so it stays.
            for (pattern, group) in [("(a)?b", 1), ("(a)|(b)", 1)] {
                let test = Expr::IsNull(Box::new(extract(pattern, group)), negated);
                let compiled = test.compiled();
                assert!(!compiled.to_string().contains("REGEXP_FOUND"), "{compiled}");
            }
            // A group the pattern does not have: always NULL, not rewritten.
            let test = Expr::IsNull(Box::new(extract("(a)b", 5)), negated);
            assert!(!test.compiled().to_string().contains("REGEXP_FOUND"));
        }
    }

    #[test]
    fn the_fast_timestamp_parser_agrees_with_chrono() {
        for s in [
            "2015-07-15 00:00:00.000",
            "2015-07-15 00:00:12.549",
            "2026-12-05T14:03:07.1",
            "2024-02-29 23:59:59.999999999",
            "1969-12-31 23:59:59.5",
            "2000-01-01 00:00:00Z",
            "1600-03-01 12:00:00",
        ] {
            let chrono = chrono::NaiveDateTime::parse_from_str(
                s.trim_end_matches('Z'),
                if s.as_bytes()[10] == b'T' {
                    "%Y-%m-%dT%H:%M:%S%.f"
                } else {
                    "%Y-%m-%d %H:%M:%S%.f"
                },
            )
            .unwrap()
            .and_utc()
            .timestamp_millis();
            assert_eq!(
                streamcore_nexmark::json::parse_date_time(s),
                Some(chrono),
                "{s}"
            );
        }
        for s in [
            "2023-02-29 00:00:00",
            "2015-13-01 00:00:00",
            "2015-07-15 24:00:00",
            "2015-07-15 00:00:00.",
            "2015-07-15 00:00:00+01:00",
            "2015-07-15",
        ] {
            assert_eq!(streamcore_nexmark::json::parse_date_time(s), None, "{s}");
        }
        // The other forms still parse, through chrono.
        assert_eq!(parse_timestamp_ms("2015-07-15"), Some(1_436_918_400_000));
        assert_eq!(
            parse_timestamp_ms("2015-07-15T01:00:00+01:00"),
            Some(1_436_918_400_000)
        );
    }

    fn lit(v: Scalar) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    #[test]
    fn three_valued_logic() {
        let and = Expr::And(vec![
            Expr::Literal(Scalar::Null),
            Expr::Literal(Scalar::Bool(false)),
        ]);
        assert_eq!(and.eval(&[]).unwrap(), Scalar::Bool(false));
        let or = Expr::Or(vec![
            Expr::Literal(Scalar::Null),
            Expr::Literal(Scalar::Bool(false)),
        ]);
        assert_eq!(or.eval(&[]).unwrap(), Scalar::Null);
        assert!(
            !Expr::Cmp(CmpOp::Eq, lit(Scalar::Null), lit(Scalar::Int(1)))
                .test(&[])
                .unwrap()
        );
    }

    #[test]
    fn decimal_arithmetic_keeps_the_scale() {
        let ty = SqlType::Data(DataType::Decimal {
            precision: 23,
            scale: 3,
        });
        let v = arith(
            ArithOp::Mul,
            &Scalar::Decimal("0.908".parse().unwrap()),
            &Scalar::Decimal(Decimal::from(1000)),
            ty,
        )
        .unwrap();
        assert_eq!(v.to_string(), "908.000");
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        let e = arith(
            ArithOp::Div,
            &Scalar::Int(1),
            &Scalar::Int(0),
            SqlType::BIGINT,
        );
        assert_eq!(e.unwrap_err().0, "division by zero");
    }

    #[test]
    fn casts() {
        assert_eq!(
            cast(Scalar::str("42"), DataType::BigInt).unwrap(),
            Scalar::Int(42)
        );
        assert!(cast(Scalar::str("4x2"), DataType::BigInt)
            .unwrap_err()
            .0
            .contains("cannot cast varchar `4x2` to BIGINT"));
        assert_eq!(
            cast(
                Scalar::str("1970-01-01 00:00:01.5"),
                DataType::TimestampMillis
            )
            .unwrap(),
            Scalar::TimestampMs(1500)
        );
        assert_eq!(
            cast(Scalar::Int(7), DataType::Varchar).unwrap(),
            Scalar::str("7")
        );
    }

    #[test]
    fn like_patterns() {
        let p = LikePattern::new("a%b_");
        assert!(p.0.is_match("axxbc"));
        assert!(!p.0.is_match("axxb"));
        assert!(LikePattern::new("50\\%").0.is_match("50%"));
    }

    /// The integer tests of a filter like q14's, where the scan shares the product with its
    /// projection ([`crate::cse`]; a sum of columns makes it worth sharing): the filter no
    /// longer computes the product, the projection still does, and both equal the general
    /// forms; compiling again changes nothing; a product
    /// whose factor's scale is not the result's, or whose integer operand calls a function,
    /// stays as written.
    #[test]
    fn integer_tests_of_a_shared_product_and_what_stays_as_written() {
        let product = |scale: u8, int: Expr| {
            Expr::Arith(
                ArithOp::Mul,
                Box::new(Expr::Literal(Scalar::Decimal("0.908".parse().unwrap()))),
                Box::new(Expr::Cast(
                    Box::new(int),
                    DataType::Decimal {
                        precision: 28,
                        scale: 0,
                    },
                )),
                SqlType::Data(DataType::Decimal {
                    precision: 38,
                    scale,
                }),
            )
        };
        let cmp = |op, e: Expr, k: i64| {
            Expr::Cmp(op, Box::new(e), Box::new(Expr::Literal(Scalar::Int(k))))
        };
        let plus = |l: Expr, r: usize| {
            Expr::Arith(
                ArithOp::Add,
                Box::new(l),
                Box::new(Expr::Column(r)),
                SqlType::BIGINT,
            )
        };
        let sum = plus(plus(plus(Expr::Column(0), 1), 2), 3);
        let general_filter = Expr::And(vec![
            cmp(CmpOp::Gt, product(3, sum.clone()), 1_000_000),
            cmp(CmpOp::Lt, product(3, sum.clone()), 50_000_000),
        ]);
        let general_projection = product(3, sum);
        let (mut filter, mut projection) = (general_filter.clone(), general_projection.clone());
        assert!(crate::cse::share_common(&mut [
            &mut filter,
            &mut projection
        ]));
        let (filter, projection) = (filter.compiled(), projection.compiled());
        let Expr::And(tests) = &filter else {
            panic!("{filter:?}")
        };
        assert!(
            tests
                .iter()
                .all(|t| matches!(t, Expr::IntTest(IntTest::Cmp(..), ..))),
            "{filter:?}"
        );
        assert_eq!(format!("{:?}", filter.compiled()), format!("{filter:?}"));
        for price in [1_101_321, 1_101_322, 55_066_079, 55_066_080, -5, 0] {
            let row = [
                Scalar::Int(price - 3),
                Scalar::Int(1),
                Scalar::Int(1),
                Scalar::Int(1),
            ];
            crate::cse::next_row();
            let passes = filter.test(&row).unwrap();
            assert_eq!(passes, general_filter.test(&row).unwrap(), "{price}");
            if passes {
                assert_eq!(
                    projection.eval(&row).unwrap(),
                    general_projection.eval(&row).unwrap()
                );
            }
        }
        // As written: a factor at another scale (the product is rounded to the result's), and
        // an integer operand calling a function.
        let rescaled = cmp(CmpOp::Gt, product(2, Expr::Column(0)), 7);
        assert!(matches!(rescaled.compiled(), Expr::Cmp(..)), "{rescaled}");
        let called = cmp(
            CmpOp::Gt,
            product(
                3,
                Expr::Call(ScalarFunction::CharLength, vec![Expr::Column(1)]),
            ),
            7,
        );
        assert!(matches!(called.compiled(), Expr::Cmp(..)), "{called}");
    }

    proptest::proptest! {
        /// A comparison of a decimal constant times an integer with a constant, compiled to an
        /// integer comparison with a bound, is true, false or unknown exactly when the
        /// original is: every operator, either operand order, factors of both signs and
        /// scales, integer and decimal constants, values at the bound and around it, NULL,
        /// and a value that is not an integer (compared as written).
        #[test]
        fn bounded_integer_comparisons_equal_the_decimal_ones(
            mantissa in -5_000_000i64..5_000_000,
            d_scale in 0u32..5,
            k_mantissa in -10_000_000_000i64..10_000_000_000,
            k_scale in 0u32..4,
            k_int in proptest::bool::ANY,
            op in 0usize..6,
            literal_first in proptest::bool::ANY,
            xs in proptest::collection::vec(-20_000_000i64..20_000_000, 8),
        ) {
            let d = Decimal::new(mantissa, d_scale);
            let k = if k_int {
                Scalar::Int(k_mantissa / 1000)
            } else {
                Scalar::Decimal(Decimal::new(k_mantissa, k_scale))
            };
            let op = [CmpOp::Eq, CmpOp::NotEq, CmpOp::Lt, CmpOp::LtEq, CmpOp::Gt, CmpOp::GtEq][op];
            let product = Expr::Arith(
                ArithOp::Mul,
                Box::new(Expr::Literal(Scalar::Decimal(d))),
                Box::new(Expr::Cast(
                    Box::new(Expr::Column(0)),
                    DataType::Decimal { precision: 28, scale: 0 },
                )),
                SqlType::Data(DataType::Decimal { precision: 38, scale: d_scale as u8 }),
            );
            let (l, r) = if literal_first {
                (Expr::Literal(k.clone()), product)
            } else {
                (product, Expr::Literal(k.clone()))
            };
            let general = Expr::Cmp(op, Box::new(l), Box::new(r));
            let compiled = general.compiled();
            let bounded = matches!(compiled, Expr::IntTest(IntTest::Cmp(..), ..));
            proptest::prop_assert_eq!(
                bounded,
                !d.is_zero() && !matches!(op, CmpOp::Eq | CmpOp::NotEq),
                "{}", general
            );
            // The values around the bound: k / d rounded, and its neighbours.
            let near = match &k {
                Scalar::Int(i) => Decimal::from(*i),
                Scalar::Decimal(k) => *k,
                _ => unreachable!(),
            }
            .checked_div(d)
            .and_then(|q| q.floor().to_i64())
            .unwrap_or(0);
            let mut values: Vec<Scalar> = xs.into_iter().map(Scalar::Int).collect();
            values.extend((near - 2..=near + 2).map(Scalar::Int));
            values.extend([
                Scalar::Null,
                Scalar::Decimal(Decimal::new(15, 1)),
                Scalar::Int(i64::MAX / 2_000_000),
                Scalar::Int(i64::MIN / 2_000_000),
                Scalar::Int(i64::MAX),
                Scalar::Int(i64::MIN),
            ]);
            for v in values {
                let row = [v.clone()];
                proptest::prop_assert_eq!(
                    general.truth(&row).unwrap(),
                    compiled.truth(&row).unwrap(),
                    "{} at {:?}", general, v
                );
                proptest::prop_assert_eq!(
                    general.eval(&row).unwrap(),
                    compiled.eval(&row).unwrap(),
                    "{} at {:?}", general, v
                );
            }
        }

        /// `MOD(x, d) op r`, compiled to a remainder test on the integer, is true, false or
        /// unknown exactly when the original is: divisors of both signs (zero is left as
        /// written: its error stays), negative values, NULL, a value that is not an integer.
        #[test]
        fn remainder_tests_equal_the_general_comparison(
            divisor in -300i64..300,
            r in -5i64..5,
            op in 0usize..6,
            literal_first in proptest::bool::ANY,
            xs in proptest::collection::vec(proptest::num::i64::ANY, 8),
        ) {
            let op = [CmpOp::Eq, CmpOp::NotEq, CmpOp::Lt, CmpOp::LtEq, CmpOp::Gt, CmpOp::GtEq][op];
            let modulo = Expr::Arith(
                ArithOp::Mod,
                Box::new(Expr::Column(0)),
                Box::new(Expr::Literal(Scalar::Int(divisor))),
                SqlType::BIGINT,
            );
            let k = Expr::Literal(Scalar::Int(r));
            let general = if literal_first {
                Expr::Cmp(op, Box::new(k), Box::new(modulo))
            } else {
                Expr::Cmp(op, Box::new(modulo), Box::new(k))
            };
            let compiled = general.compiled();
            proptest::prop_assert_eq!(
                matches!(compiled, Expr::IntTest(IntTest::Mod(..), ..)),
                divisor != 0,
                "{}", general
            );
            let mut values: Vec<Scalar> = xs.into_iter().map(Scalar::Int).collect();
            values.extend([-2 * divisor, -divisor - 1, r, divisor + r, i64::MIN, i64::MAX].map(Scalar::Int));
            values.extend([Scalar::Null, Scalar::Decimal(Decimal::new(15, 1))]);
            for v in values {
                let row = [v.clone()];
                proptest::prop_assert_eq!(
                    general.truth(&row).ok(),
                    compiled.truth(&row).ok(),
                    "{} at {:?}", general, v
                );
            }
        }
    }
}
