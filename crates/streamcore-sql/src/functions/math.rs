//! Flink's numeric and comparison functions beyond the Nexmark set ([`MathFunction`]):
//! rounding (`ROUND`, `TRUNCATE`, `FLOOR`, `CEIL`), `SIGN`, the floating-point functions
//! (`POWER`, `SQRT`, `EXP`, `LN`, `LOG10`, `LOG2`, `LOG`, the trigonometric ones, `PI`), and
//! `GREATEST` / `LEAST` / `IF`, and the random ones (`RAND`, `RAND_INTEGER`, `UUID`: never
//! folded into constants).
//!
//! Rounding keeps the argument's kind: an integer stays an integer, a double a double, a
//! decimal a decimal (exact: halves round away from zero, as Flink's `HALF_UP`). The
//! floating-point functions return `DOUBLE`; out of their domain (`SQRT(-1)`, `LN(0)`) they
//! give `NaN` or an infinity, as Flink's (Java's) do.

use super::Arity;
use crate::binder::common_type;
use crate::error::PlanError;
use crate::expr::{cast, EvalError, Expr};
use crate::types::SqlType;
use rust_decimal::prelude::{Signed, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use streamcore::row::{DataType, Scalar};

/// A numeric or comparison function of Flink's.
#[derive(Clone, Debug)]
pub enum MathFunction {
    /// `ROUND(x[, d])`: to `d` digits after the point (0 by default; negative: before it).
    Round,
    /// `TRUNCATE(x[, d])`: the same, toward zero.
    Truncate,
    /// `FLOOR(x)`.
    Floor,
    /// `CEIL(x)` / `CEILING(x)`.
    Ceil,
    /// `SIGN(x)`: -1, 0 or 1 of `x`'s type.
    Sign,
    /// A function of one or two doubles to a double (`POWER`, `SQRT`, `LN`, …).
    Float(FloatFunction),
    /// `GREATEST(a, b, …)` (`true`) / `LEAST(a, b, …)`: NULL if any argument is NULL, as Flink.
    Extreme {
        /// `GREATEST`.
        greatest: bool,
        /// The common type the arguments are compared as.
        of: DataType,
    },
    /// `IF(condition, then, else)`, the branches of the common type.
    If(DataType),
    /// `RAND()`: a pseudorandom double in [0, 1).
    Rand,
    /// `RAND_INTEGER(n)`: a pseudorandom integer in [0, n).
    RandInteger,
    /// `UUID()`: a random (version 4) UUID.
    Uuid,
}

/// A floating-point function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatFunction {
    /// `POWER(x, y)`.
    Power,
    /// `SQRT(x)`.
    Sqrt,
    /// `EXP(x)`.
    Exp,
    /// `LN(x)`.
    Ln,
    /// `LOG10(x)`.
    Log10,
    /// `LOG2(x)`.
    Log2,
    /// `LOG(x)` (natural) / `LOG(base, x)`.
    Log,
    /// `SIN(x)`.
    Sin,
    /// `COS(x)`.
    Cos,
    /// `TAN(x)`.
    Tan,
    /// `ASIN(x)`.
    Asin,
    /// `ACOS(x)`.
    Acos,
    /// `ATAN(x)`.
    Atan,
    /// `ATAN2(y, x)`.
    Atan2,
    /// `DEGREES(radians)`.
    Degrees,
    /// `RADIANS(degrees)`.
    Radians,
    /// `PI()`.
    Pi,
}

/// The names [`MathFunction::resolve`] takes.
pub const NAMES: &[&str] = &[
    "ROUND",
    "TRUNCATE",
    "FLOOR",
    "CEIL",
    "CEILING",
    "SIGN",
    "POWER",
    "POW",
    "SQRT",
    "EXP",
    "LN",
    "LOG10",
    "LOG2",
    "LOG",
    "SIN",
    "COS",
    "TAN",
    "ASIN",
    "ACOS",
    "ATAN",
    "ATAN2",
    "DEGREES",
    "RADIANS",
    "PI",
    "GREATEST",
    "LEAST",
    "IF",
    "RAND",
    "RAND_INTEGER",
    "UUID",
];

impl MathFunction {
    /// The function `upper` (a name in upper case), its arity and result type; `None` if it
    /// is not one of these.
    pub fn resolve(
        upper: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(MathFunction, Arity, SqlType), PlanError>> {
        use FloatFunction as Fl;
        use MathFunction as M;
        let first = args.first().map_or(SqlType::BIGINT, |a| a.1);
        let float = |f: FloatFunction, arity: Arity| (M::Float(f), arity, SqlType::DOUBLE);
        let (f, arity, returns) = match upper {
            "ROUND" | "TRUNCATE" => {
                let digits = match args.get(1) {
                    None => Some(0),
                    Some((Expr::Literal(Scalar::Int(d)), _)) => Some(*d),
                    Some(_) => None,
                };
                let f = if upper == "ROUND" {
                    M::Round
                } else {
                    M::Truncate
                };
                (f, 1..=2, rounded_type(first, digits))
            }
            "FLOOR" => (M::Floor, 1..=1, rounded_type(first, Some(0))),
            "CEIL" | "CEILING" => (M::Ceil, 1..=1, rounded_type(first, Some(0))),
            "SIGN" => (M::Sign, 1..=1, first),
            "POWER" | "POW" => float(Fl::Power, 2..=2),
            "SQRT" => float(Fl::Sqrt, 1..=1),
            "EXP" => float(Fl::Exp, 1..=1),
            "LN" => float(Fl::Ln, 1..=1),
            "LOG10" => float(Fl::Log10, 1..=1),
            "LOG2" => float(Fl::Log2, 1..=1),
            "LOG" => float(Fl::Log, 1..=2),
            "SIN" => float(Fl::Sin, 1..=1),
            "COS" => float(Fl::Cos, 1..=1),
            "TAN" => float(Fl::Tan, 1..=1),
            "ASIN" => float(Fl::Asin, 1..=1),
            "ACOS" => float(Fl::Acos, 1..=1),
            "ATAN" => float(Fl::Atan, 1..=1),
            "ATAN2" => float(Fl::Atan2, 2..=2),
            "DEGREES" => float(Fl::Degrees, 1..=1),
            "RADIANS" => float(Fl::Radians, 1..=1),
            "PI" => float(Fl::Pi, 0..=0),
            "GREATEST" | "LEAST" => {
                let of = match common_of(args.iter().map(|a| a.1), upper) {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                let greatest = upper == "GREATEST";
                (
                    M::Extreme {
                        greatest,
                        of: of.data_type(),
                    },
                    1..=usize::MAX,
                    of,
                )
            }
            "IF" => {
                let of = match common_of(args.iter().skip(1).map(|a| a.1), upper) {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                (M::If(of.data_type()), 3..=3, of)
            }
            "RAND" if !args.is_empty() => {
                return Some(Err(PlanError::unsupported(
                    "RAND(seed): a seeded sequence; RAND() without a seed is supported",
                )))
            }
            "RAND" => (M::Rand, 0..=0, SqlType::DOUBLE),
            "RAND_INTEGER" if args.len() == 2 => {
                return Some(Err(PlanError::unsupported(
                    "RAND_INTEGER(seed, n): a seeded sequence; RAND_INTEGER(n) is supported",
                )))
            }
            "RAND_INTEGER" => (M::RandInteger, 1..=1, SqlType::BIGINT),
            "UUID" => (M::Uuid, 0..=0, SqlType::VARCHAR),
            _ => return None,
        };
        Some(Ok((f, arity, returns)))
    }

    /// Whether equal arguments always give equal results (not for the random ones).
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            MathFunction::Rand | MathFunction::RandInteger | MathFunction::Uuid
        )
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        use FloatFunction as Fl;
        match self {
            MathFunction::Round => "ROUND",
            MathFunction::Truncate => "TRUNCATE",
            MathFunction::Floor => "FLOOR",
            MathFunction::Ceil => "CEIL",
            MathFunction::Sign => "SIGN",
            MathFunction::Extreme { greatest: true, .. } => "GREATEST",
            MathFunction::Extreme { .. } => "LEAST",
            MathFunction::If(_) => "IF",
            MathFunction::Rand => "RAND",
            MathFunction::RandInteger => "RAND_INTEGER",
            MathFunction::Uuid => "UUID",
            MathFunction::Float(f) => match f {
                Fl::Power => "POWER",
                Fl::Sqrt => "SQRT",
                Fl::Exp => "EXP",
                Fl::Ln => "LN",
                Fl::Log10 => "LOG10",
                Fl::Log2 => "LOG2",
                Fl::Log => "LOG",
                Fl::Sin => "SIN",
                Fl::Cos => "COS",
                Fl::Tan => "TAN",
                Fl::Asin => "ASIN",
                Fl::Acos => "ACOS",
                Fl::Atan => "ATAN",
                Fl::Atan2 => "ATAN2",
                Fl::Degrees => "DEGREES",
                Fl::Radians => "RADIANS",
                Fl::Pi => "PI",
            },
        }
    }

    /// Checks the argument types (`want` reports a mismatch of argument `i`).
    pub fn check(
        &self,
        args: &[(Expr, SqlType)],
        want: impl Fn(usize, bool, &str) -> Result<(), PlanError>,
    ) -> Result<(), PlanError> {
        match self {
            MathFunction::Round | MathFunction::Truncate => {
                want(0, args[0].1.is_numeric(), "a number")?;
                match args.get(1) {
                    Some((Expr::Literal(Scalar::Int(_)), _)) | None => Ok(()),
                    Some((_, t)) if *t == SqlType::BIGINT => Err(PlanError::unsupported(format!(
                        "{}(x, d) with a number of digits that is not a literal",
                        self.name()
                    ))),
                    Some(_) => want(1, false, "an integer literal"),
                }
            }
            MathFunction::Extreme { .. } | MathFunction::Rand | MathFunction::Uuid => Ok(()),
            MathFunction::RandInteger => want(0, args[0].1 == SqlType::BIGINT, "an integer"),
            MathFunction::If(_) => want(
                0,
                matches!(args[0].1, SqlType::Null) || args[0].1 == SqlType::BOOLEAN,
                "a boolean",
            ),
            _ => {
                for (i, (_, t)) in args.iter().enumerate() {
                    want(i, t.is_numeric(), "a number")?;
                }
                Ok(())
            }
        }
    }

    /// Calls the function on arguments evaluated from `row`.
    pub fn call(&self, args: &[Expr], row: &[Scalar]) -> Result<Scalar, EvalError> {
        use Scalar::{Decimal as Dec, Float, Int, Null};
        let arg = |i: usize| args[i].eval_cow(row);
        Ok(match self {
            MathFunction::Rand => Scalar::float(fastrand::f64()),
            MathFunction::RandInteger => match &*arg(0)? {
                Int(n) if *n > 0 => Int(fastrand::i64(0..*n)),
                Int(n) => {
                    return Err(EvalError(format!(
                        "RAND_INTEGER({n}): the bound must be positive"
                    )))
                }
                _ => Null,
            },
            MathFunction::Uuid => {
                let mut b = fastrand::u128(..).to_be_bytes();
                b[6] = (b[6] & 0x0f) | 0x40; // version 4
                b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Scalar::str(&format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
            MathFunction::If(of) => {
                let pick = match &*arg(0)? {
                    Scalar::Bool(true) => 1,
                    _ => 2,
                };
                cast(args[pick].eval(row)?, *of)?
            }
            MathFunction::Extreme { greatest, of } => {
                let mut best: Option<Scalar> = None;
                for a in args {
                    let v = a.eval(row)?;
                    if v.is_null() {
                        return Ok(Null);
                    }
                    let v = cast(v, *of)?;
                    best = Some(match best {
                        Some(b) if (v > b) != *greatest || v == b => b,
                        _ => v,
                    });
                }
                best.unwrap_or(Null)
            }
            MathFunction::Float(f) => {
                let mut x = [0.0; 2];
                for (i, slot) in x.iter_mut().enumerate().take(args.len()) {
                    match arg(i)?.as_f64() {
                        Some(v) => *slot = v,
                        None => return Ok(Null),
                    }
                }
                let two = args.len() == 2;
                Scalar::float(f.apply(x[0], x[1], two))
            }
            MathFunction::Sign => match &*arg(0)? {
                Int(v) => Int(v.signum()),
                Float(v) => Scalar::float(if v.get() == 0.0 || v.get().is_nan() {
                    v.get()
                } else {
                    v.get().signum()
                }),
                Dec(d) => {
                    let mut sign = d.signum();
                    sign.rescale(d.scale());
                    Dec(sign)
                }
                _ => Null,
            },
            MathFunction::Round
            | MathFunction::Truncate
            | MathFunction::Floor
            | MathFunction::Ceil => {
                let digits = match args.get(1).map(|a| a.eval(row)).transpose()? {
                    Some(Int(d)) => d.clamp(-28, 28) as i32,
                    Some(_) => return Ok(Null),
                    None => 0,
                };
                round(&*arg(0)?, digits, self)
            }
        })
    }
}

impl FloatFunction {
    /// The function of `x` (and `y` when it takes two arguments and `two` is set).
    fn apply(self, x: f64, y: f64, two: bool) -> f64 {
        use FloatFunction as F;
        match self {
            F::Power => x.powf(y),
            F::Sqrt => x.sqrt(),
            F::Exp => x.exp(),
            F::Ln => x.ln(),
            F::Log10 => x.log10(),
            F::Log2 => x.log2(),
            // `LOG(base, x)`.
            F::Log if two => y.ln() / x.ln(),
            F::Log => x.ln(),
            F::Sin => x.sin(),
            F::Cos => x.cos(),
            F::Tan => x.tan(),
            F::Asin => x.asin(),
            F::Acos => x.acos(),
            F::Atan => x.atan(),
            F::Atan2 => x.atan2(y),
            F::Degrees => x.to_degrees(),
            F::Radians => x.to_radians(),
            F::Pi => std::f64::consts::PI,
        }
    }
}

/// The common type of `types`, for `GREATEST`, `LEAST` and `IF`'s branches.
fn common_of(types: impl Iterator<Item = SqlType>, name: &str) -> Result<SqlType, PlanError> {
    let mut of = SqlType::Null;
    for t in types {
        of = common_type(of, t)
            .ok_or_else(|| PlanError::invalid(format!("type mismatch: {name} of {of} and {t}")))?;
    }
    Ok(of)
}

/// The type of `ROUND(x, d)` and kin: an integer or a double stays one; a decimal's scale
/// becomes `d` (not below 0, not above its scale), its integer digits one more (a carry).
fn rounded_type(x: SqlType, digits: Option<i64>) -> SqlType {
    match (x.data_type(), digits) {
        (DataType::Decimal { precision, scale }, Some(d)) => {
            let new_scale = d.clamp(0, scale as i64) as u8;
            let integer = precision - scale + 1;
            SqlType::Data(DataType::Decimal {
                precision: (integer + new_scale).min(28),
                scale: new_scale,
            })
        }
        _ => x,
    }
}

/// `v` rounded (`ROUND`), truncated (`TRUNCATE`), floored or ceiled to `digits` after the
/// point (before it when negative).
fn round(v: &Scalar, digits: i32, how: &MathFunction) -> Scalar {
    let strategy = match how {
        MathFunction::Round => RoundingStrategy::MidpointAwayFromZero,
        MathFunction::Truncate => RoundingStrategy::ToZero,
        MathFunction::Floor => RoundingStrategy::ToNegativeInfinity,
        _ => RoundingStrategy::ToPositiveInfinity,
    };
    match v {
        Scalar::Int(i) if digits >= 0 => Scalar::Int(*i),
        Scalar::Int(i) => round_decimal(Decimal::from(*i), digits, strategy)
            .and_then(|r| r.to_i64())
            .map_or(Scalar::Null, Scalar::Int),
        Scalar::Decimal(d) => round_decimal(*d, digits, strategy).map_or(Scalar::Null, |mut r| {
            if digits >= 0 {
                r.rescale(digits.min(d.scale() as i32) as u32);
            }
            Scalar::Decimal(r)
        }),
        // As Flink: through the double's shortest decimal text (`ROUND(0.285, 2)` is 0.29,
        // though the double is a little below 0.285); beyond a decimal's range a double has
        // no digits after the point to round.
        Scalar::Float(f) => match Decimal::from_str_exact(&f.get().to_string()) {
            Ok(d) => round_decimal(d, digits, strategy)
                .and_then(|r| r.to_f64())
                .map_or(Scalar::Null, Scalar::float),
            // Past a decimal's 28 digits (1e-30, 1e300): in doubles.
            Err(_) => {
                let unit = 10f64.powi(-digits);
                let x = f.get() / unit;
                let r = match how {
                    MathFunction::Round => x.round(),
                    MathFunction::Truncate => x.trunc(),
                    MathFunction::Floor => x.floor(),
                    _ => x.ceil(),
                };
                Scalar::float(r * unit)
            }
        },
        _ => Scalar::Null,
    }
}

/// `d` rounded by `strategy` to `digits` after the point (before it when negative); `None`
/// out of a decimal's range.
fn round_decimal(d: Decimal, digits: i32, strategy: RoundingStrategy) -> Option<Decimal> {
    if digits >= 0 {
        return Some(d.round_dp_with_strategy(digits as u32, strategy));
    }
    // Beyond a decimal's 28 digits every value rounds to 0.
    let Some(power) = 10i128
        .checked_pow(digits.unsigned_abs())
        .filter(|p| *p < 10i128.pow(28))
    else {
        return Some(Decimal::ZERO);
    };
    let scale = Decimal::from_i128_with_scale(power, 0);
    (d / scale)
        .round_dp_with_strategy(0, strategy)
        .checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn call(name: &str, args: &[Scalar]) -> Scalar {
        crate::functions::call_with(name, args)
    }

    fn dec(s: &str) -> Scalar {
        Scalar::Decimal(Decimal::from_str(s).unwrap())
    }

    #[test]
    fn rounding_keeps_the_kind_and_rounds_halves_away_from_zero() {
        let (i, f) = (Scalar::Int, Scalar::float);
        assert_eq!(call("ROUND", &[dec("125.315"), i(2)]), dec("125.32"));
        assert_eq!(call("ROUND", &[dec("-125.315"), i(2)]), dec("-125.32"));
        assert_eq!(call("ROUND", &[dec("125.315")]), dec("125"));
        assert_eq!(call("ROUND", &[dec("125.3"), i(2)]), dec("125.3"));
        assert_eq!(call("ROUND", &[i(1250), i(-2)]), i(1300));
        assert_eq!(call("ROUND", &[i(-1250), i(-2)]), i(-1300));
        assert_eq!(call("ROUND", &[f(0.285), i(2)]), f(0.29));
        assert_eq!(call("ROUND", &[f(2.5)]), f(3.0));
        assert_eq!(call("TRUNCATE", &[dec("42.345"), i(2)]), dec("42.34"));
        assert_eq!(call("TRUNCATE", &[f(-42.345), i(1)]), f(-42.3));
        assert_eq!(call("FLOOR", &[dec("-1.5")]), dec("-2"));
        assert_eq!(call("CEIL", &[dec("1.2")]), dec("2"));
        assert_eq!(call("FLOOR", &[f(1.7)]), f(1.0));
        assert_eq!(call("CEIL", &[i(7)]), i(7));
        assert_eq!(call("SIGN", &[dec("-3.5")]), dec("-1"));
        assert_eq!(call("SIGN", &[i(0)]), i(0));
        assert_eq!(call("ROUND", &[Scalar::Null, i(1)]), Scalar::Null);
    }

    /// The review's cases: tiny doubles still round, SIGN keeps a decimal's scale, a rounding
    /// past every digit is 0.
    #[test]
    fn rounding_edges() {
        let (i, f) = (Scalar::Int, Scalar::float);
        assert_eq!(call("FLOOR", &[f(-1.2345678901234567e-15)]), f(-1.0));
        assert_eq!(call("CEIL", &[f(1e-29)]), f(1.0));
        assert_eq!(call("TRUNCATE", &[f(1.5e-30), i(2)]), f(0.0));
        assert_eq!(call("SIGN", &[dec("1.500")]).to_string(), "1.000");
        assert_eq!(call("ROUND", &[i(5), i(-19)]), i(0));
        assert_eq!(call("ROUND", &[i(1234), i(-2)]), i(1200));
    }

    #[test]
    fn floating_point_functions() {
        let (i, f) = (Scalar::Int, Scalar::float);
        assert_eq!(call("POWER", &[i(2), i(10)]), f(1024.0));
        assert_eq!(call("SQRT", &[f(2.25)]), f(1.5));
        assert_eq!(call("LOG", &[i(2), i(8)]), f(3.0));
        assert_eq!(call("LOG10", &[i(1000)]), f(3.0));
        assert_eq!(call("LN", &[f(1.0)]), f(0.0));
        assert_eq!(call("PI", &[]), f(std::f64::consts::PI));
        assert_eq!(call("SQRT", &[Scalar::Null]), Scalar::Null);
        assert!(matches!(call("SQRT", &[i(-1)]), Scalar::Float(v) if v.get().is_nan()));
    }

    #[test]
    fn greatest_least_and_if() {
        let i = Scalar::Int;
        assert_eq!(call("GREATEST", &[i(1), i(7), i(3)]), i(7));
        assert_eq!(call("LEAST", &[i(1), dec("0.5"), i(3)]), dec("0.5"));
        assert_eq!(call("GREATEST", &[i(1), Scalar::Null]), Scalar::Null);
        assert_eq!(call("IF", &[Scalar::Bool(true), i(1), i(2)]), i(1));
        assert_eq!(call("IF", &[Scalar::Null, i(1), i(2)]), i(2));
        assert_eq!(
            call("IF", &[Scalar::Bool(false), i(1), dec("2.5")]),
            dec("2.5")
        );
    }

    #[test]
    fn random_values_are_in_range_and_uuids_are_version_4() {
        for _ in 0..100 {
            let Scalar::Float(r) = call("RAND", &[]) else {
                panic!()
            };
            assert!((0.0..1.0).contains(&r.get()));
            let Scalar::Int(n) = call("RAND_INTEGER", &[Scalar::Int(3)]) else {
                panic!()
            };
            assert!((0..3).contains(&n));
        }
        let Scalar::Str(u) = call("UUID", &[]) else {
            panic!()
        };
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(call("UUID", &[]), call("UUID", &[]));
        assert!(!MathFunction::Uuid.is_deterministic());
    }
}
