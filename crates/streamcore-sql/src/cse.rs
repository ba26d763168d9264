//! Common subexpressions of one operator's expressions, evaluated once per row.
//!
//! A scan's filter and its projection often repeat work: Nexmark q21 computes
//! `lower(channel)` in its filter and again in its `CASE`, and searches the URL with the same
//! regular expression in both. [`share_common`] finds every subexpression worth keeping that
//! occurs more than once (compared as planned: same function, same arguments) and wraps each
//! occurrence in [`Expr::Shared`] with one slot number. The first occurrence a row evaluates
//! keeps its value in the slot; the others take it from there. Evaluation stays lazy: a
//! shared subexpression in a branch the row does not take (an `OR` decided by its first
//! operand, a `CASE` arm not reached) is not evaluated for it.
//!
//! The slots live in a thread-local table, tagged with a row number: an operator calls
//! [`next_row`] before it evaluates a row's expressions, which makes every kept value stale
//! at once (no clearing). Operators of one thread may share slot numbers: each row starts
//! with a new number, and one row's expressions are all evaluated before the next row starts.

use crate::expr::Expr;
use crate::functions::ScalarFunction;
use std::cell::RefCell;
use std::collections::HashMap;
use streamcore::row::Scalar;

/// The values kept on one thread.
struct Kept {
    /// The row being evaluated.
    row: u64,
    /// Per slot: the row its value was computed for, and the value.
    slots: Vec<(u64, Scalar)>,
}

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(Kept { row: 1, slots: Vec::new() }) };
}

/// Starts a new row on this thread: the values kept for the last one are forgotten.
#[inline]
pub fn next_row() {
    KEPT.with_borrow_mut(|k| k.row += 1);
}

/// The value kept in `slot` for the current row, if one was.
#[inline]
pub(crate) fn get(slot: usize) -> Option<Scalar> {
    KEPT.with_borrow(|k| match k.slots.get(slot) {
        Some((r, value)) if *r == k.row => Some(value.clone()),
        _ => None,
    })
}

/// Keeps `value` in `slot` for the current row.
#[inline]
pub(crate) fn set(slot: usize, value: &Scalar) {
    KEPT.with_borrow_mut(|k| {
        if k.slots.len() <= slot {
            k.slots.resize(slot + 1, (0, Scalar::Null));
        }
        k.slots[slot] = (k.row, value.clone());
    });
}

/// Wraps every subexpression of `exprs` that occurs more than once among them, and is worth
/// keeping, in [`Expr::Shared`] (one slot per distinct subexpression); returns whether any
/// was. Worth keeping: deterministic, reading a column, and more than a comparison (a
/// function call, a cast, a `LIKE`, arithmetic over such). Run it before
/// [`Expr::compiled`], on all the expressions one operator evaluates per row, and have the
/// operator call [`next_row`] before each row when it returns true.
///
/// ```
/// use streamcore_sql::cse::share_common;
/// use streamcore_sql::expr::{CmpOp, Expr};
/// use streamcore_sql::functions::ScalarFunction;
/// use streamcore::row::Scalar;
/// let lower = Expr::Call(ScalarFunction::Lower, vec![Expr::Column(0)]);
/// let mut filter = Expr::Cmp(CmpOp::Eq, Box::new(lower.clone()), Box::new(Expr::Literal(Scalar::str("a"))));
/// let mut projection = lower;
/// assert!(share_common(&mut [&mut filter, &mut projection]));
/// assert!(matches!(projection, Expr::Shared(0, _)));
/// ```
pub fn share_common(exprs: &mut [&mut Expr]) -> bool {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for e in exprs.iter() {
        e.transform(&mut |x| {
            if worth_keeping(x) {
                *counts.entry(identity(x)).or_default() += 1;
            }
            None
        });
    }
    let mut slots: HashMap<String, usize> = HashMap::new();
    for e in exprs.iter_mut() {
        **e = share(e, &counts, &mut slots, false);
    }
    !slots.is_empty()
}

/// `e` without the wrappers around what is no longer worth a slot: a column or a constant,
/// once a rewrite after the sharing (a column known to be a constant) made it one.
pub fn unwrap_trivial(e: &Expr) -> Expr {
    e.transform(&mut |x| match x {
        Expr::Shared(_, inner) if matches!(**inner, Expr::Column(_) | Expr::Literal(_)) => {
            Some((**inner).clone())
        }
        _ => None,
    })
}

/// `e` without any wrapper: what it computes, to compare with an expression never shared.
pub fn unshared(e: &Expr) -> Expr {
    e.transform(&mut |x| match x {
        Expr::Shared(_, inner) => Some(unshared(inner)),
        _ => None,
    })
}

/// Whether `e` holds a shared subexpression.
pub fn has_shared(e: &Expr) -> bool {
    let mut shared = false;
    e.transform(&mut |x| {
        shared |= matches!(x, Expr::Shared(..));
        None
    });
    shared
}

/// `e` with its repeated subexpressions shared (`e` itself too unless `skip_root`).
fn share(
    e: &Expr,
    counts: &HashMap<String, usize>,
    slots: &mut HashMap<String, usize>,
    skip_root: bool,
) -> Expr {
    let root: *const Expr = e;
    e.transform(&mut |x| {
        if (skip_root && std::ptr::eq(x, root)) || !worth_keeping(x) {
            return None;
        }
        let key = identity(x);
        if counts.get(&key).copied().unwrap_or(0) < 2 {
            return None;
        }
        let next = slots.len();
        let slot = *slots.entry(key).or_insert(next);
        // Its own repeated parts are shared too (they may occur outside it as well).
        Some(Expr::Shared(slot, Box::new(share(x, counts, slots, true))))
    })
}

/// Worth a slot: evaluating it costs more than reading the slot back, and gives the same
/// value each time for one row. A user-defined function is not shared (nor anything that
/// calls one): it may count its calls or keep state, and is called as often as written.
fn worth_keeping(e: &Expr) -> bool {
    !matches!(
        e,
        Expr::Column(_) | Expr::Literal(_) | Expr::Shared(..) | Expr::Cmp(..)
    ) && e.cost() >= 5
        && !e.is_constant()
        && e.is_deterministic()
        && !calls_udf(e)
}

fn calls_udf(e: &Expr) -> bool {
    let mut udf = false;
    e.transform(&mut |x| {
        udf |= matches!(x, Expr::Call(ScalarFunction::Udf(_), _));
        None
    });
    udf
}

/// The planning-time identity of an expression (as `Plan::reuse_key` compares plans).
fn identity(e: &Expr) -> String {
    format!("{e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::CmpOp;

    fn lower(c: usize) -> Expr {
        Expr::Call(ScalarFunction::Lower, vec![Expr::Column(c)])
    }

    fn eq(e: Expr, s: &str) -> Expr {
        Expr::Cmp(
            CmpOp::Eq,
            Box::new(e),
            Box::new(Expr::Literal(Scalar::str(s))),
        )
    }

    #[test]
    fn only_repeated_subexpressions_worth_keeping_are_shared() {
        let mut filter = Expr::Or(vec![eq(lower(0), "a"), eq(lower(1), "b")]);
        let mut projection = Expr::Case(
            vec![(eq(lower(0), "a"), Expr::Literal(Scalar::Int(1)))],
            Box::new(Expr::Column(0)),
        );
        assert!(share_common(&mut [&mut filter, &mut projection]));
        // lower($0) is shared, lower($1) (once) and the comparisons are not.
        let Expr::Or(parts) = &filter else { panic!() };
        let Expr::Cmp(_, l, _) = &parts[0] else {
            panic!()
        };
        assert!(matches!(**l, Expr::Shared(0, _)), "{filter:?}");
        let Expr::Cmp(_, l, _) = &parts[1] else {
            panic!()
        };
        assert!(matches!(**l, Expr::Call(..)), "{filter:?}");
        let Expr::Case(arms, _) = &projection else {
            panic!()
        };
        let Expr::Cmp(_, l, _) = &arms[0].0 else {
            panic!()
        };
        assert!(matches!(**l, Expr::Shared(0, _)), "{projection:?}");

        let mut once = lower(0);
        let mut other = lower(1);
        assert!(!share_common(&mut [&mut once, &mut other]));

        // A user-defined function is called as often as written.
        let udf =
            crate::functions::Udf::new(
                "h",
                streamcore::row::DataType::BigInt,
                |a| Ok(a[0].clone()),
            );
        let call = Expr::Call(ScalarFunction::Udf(udf), vec![lower(0)]);
        let (mut a, mut b) = (call.clone(), call);
        assert!(
            share_common(&mut [&mut a, &mut b]),
            "lower($0) inside is shared"
        );
        assert!(matches!(a, Expr::Call(ScalarFunction::Udf(_), _)), "{a:?}");
    }

    #[test]
    fn wrappers_come_off_what_became_trivial_and_for_comparisons() {
        let shared = |e: Expr| Expr::Shared(0, Box::new(e));
        let e = Expr::Call(ScalarFunction::Upper, vec![shared(Expr::Column(1))]);
        assert_eq!(
            format!("{:?}", unwrap_trivial(&e)),
            format!(
                "{:?}",
                Expr::Call(ScalarFunction::Upper, vec![Expr::Column(1)])
            )
        );
        assert!(!has_shared(&unwrap_trivial(&e)));
        let kept = shared(lower(1));
        assert!(has_shared(&unwrap_trivial(&kept)));
        assert_eq!(format!("{:?}", unshared(&kept)), format!("{:?}", lower(1)));
    }

    #[test]
    fn a_shared_value_is_computed_once_per_row_and_never_crosses_rows() {
        let mut a = lower(0);
        let mut b = Expr::Call(ScalarFunction::Upper, vec![lower(0)]);
        assert!(share_common(&mut [&mut a, &mut b]));
        for word in ["ABC", "Def", "gHi"] {
            next_row();
            let row = [Scalar::str(word)];
            assert_eq!(a.eval(&row).unwrap(), Scalar::str(&word.to_lowercase()));
            assert_eq!(b.eval(&row).unwrap(), Scalar::str(&word.to_uppercase()));
            // Computed once: a value kept for the row is what the next occurrence reads.
            assert_eq!(get(0), Some(Scalar::str(&word.to_lowercase())));
        }
        next_row();
        assert_eq!(get(0), None);
    }
}
