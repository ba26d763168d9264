//! Flink's string functions beyond the Nexmark set ([`StringFunction`]): replacing and
//! matching (`REPLACE`, `REGEXP_REPLACE`, `REGEXP`), finding (`POSITION`, `LOCATE`, `INSTR`),
//! padding and trimming (`LPAD`, `RPAD`, `LTRIM`, `RTRIM`), pieces (`LEFT`, `RIGHT`, `REPEAT`,
//! `REVERSE`, `INITCAP`, `CONCAT_WS`), characters (`ASCII`, `CHR`), base64 (`TO_BASE64`,
//! `FROM_BASE64`), digests (`MD5`, `SHA224` … `SHA512`, `SHA2`) and tests (`IS_ALPHA`,
//! `IS_DIGIT`, `IS_DECIMAL`). Positions and lengths count
//! characters, not bytes, as in Flink; a `NULL` argument gives `NULL` (but for `CONCAT_WS`'s
//! strings, which it skips, as Flink does).

use super::Arity;
use crate::error::PlanError;
use crate::expr::{EvalError, Expr};
use crate::types::SqlType;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use compact_str::CompactString;
use md5::Digest;
use std::sync::Arc;
use streamcore::row::{DataType, Scalar};

/// A string function of Flink's.
#[derive(Clone, Debug)]
pub enum StringFunction {
    /// `REPLACE(s, from, to)`: every occurrence of `from` replaced.
    Replace,
    /// `REGEXP_REPLACE(s, regex, replacement)` (Java's replacement syntax: `$1` names a group,
    /// `\$` is a dollar); the pattern compiled once when it is a literal.
    RegexpReplace(Option<Arc<regex::Regex>>),
    /// `REGEXP(s, regex)`: whether some part of `s` matches.
    Regexp(Option<Arc<regex::Regex>>),
    /// `LOCATE(needle, s[, from])`, `POSITION(needle IN s)`, `INSTR(s, needle)`: the 1-based
    /// position of the first `needle` at or after `from`, 0 if there is none.
    Locate {
        /// `INSTR` takes the string first.
        haystack_first: bool,
    },
    /// `LPAD(s, n, pad)`: `s` padded on the left to `n` characters (cut to `n` if longer).
    Lpad,
    /// `RPAD(s, n, pad)`: the same on the right.
    Rpad,
    /// `LTRIM(s[, chars])`: without leading spaces (or leading characters of `chars`);
    /// `TRIM(LEADING [chars] FROM s)`.
    Ltrim,
    /// `RTRIM(s[, chars])`: the same at the end; `TRIM(TRAILING [chars] FROM s)`.
    Rtrim,
    /// `BTRIM(s[, chars])`: the same at both ends; `TRIM([BOTH] chars FROM s)`.
    Btrim,
    /// `INITCAP(s)`: each word's first character upper case, the rest lower case.
    Initcap,
    /// `REPEAT(s, n)`.
    Repeat,
    /// `REVERSE(s)`.
    Reverse,
    /// `LEFT(s, n)`: the first `n` characters.
    Left,
    /// `RIGHT(s, n)`: the last `n` characters.
    Right,
    /// `ASCII(s)`: the code of the first character (0 for an empty string).
    Ascii,
    /// `CHR(n)`: the character of code `n` (0–255, as Flink).
    Chr,
    /// `CONCAT_WS(sep, s1, …)`: the non-NULL strings joined by `sep`.
    ConcatWs,
    /// `TO_BASE64(s)`: the base64 of the string's UTF-8 bytes (or of bytes).
    ToBase64,
    /// `FROM_BASE64(s)`: the string whose UTF-8 bytes `s` holds in base64.
    FromBase64,
    /// `IS_ALPHA(s)`: all letters (false for an empty string).
    IsAlpha,
    /// `IS_DIGIT(s)`: all digits (false for an empty string).
    IsDigit,
    /// `IS_DECIMAL(s)`: a number (`-1.5`, `2e3`).
    IsDecimal,
    /// `MD5(s)`: the hex MD5 digest of the string's UTF-8 bytes.
    Md5,
    /// `SHA224(s)` … `SHA512(s)`, `SHA2(s, bits)`: the hex SHA-2 digest of that many bits.
    Sha2(u16),
}

/// The names [`StringFunction::resolve`] takes.
pub const NAMES: &[&str] = &[
    "REPLACE",
    "REGEXP_REPLACE",
    "REGEXP",
    "LOCATE",
    "POSITION",
    "INSTR",
    "LPAD",
    "RPAD",
    "LTRIM",
    "RTRIM",
    "BTRIM",
    "INITCAP",
    "REPEAT",
    "REVERSE",
    "LEFT",
    "RIGHT",
    "ASCII",
    "CHR",
    "CONCAT_WS",
    "TO_BASE64",
    "FROM_BASE64",
    "IS_ALPHA",
    "IS_DIGIT",
    "IS_DECIMAL",
    "MD5",
    "SHA224",
    "SHA256",
    "SHA384",
    "SHA512",
    "SHA2",
];

/// The pattern of argument `at`, compiled once if it is a literal.
fn literal_regex(
    name: &str,
    args: &[(Expr, SqlType)],
    at: usize,
) -> Result<Option<Arc<regex::Regex>>, PlanError> {
    match args.get(at) {
        Some((Expr::Literal(Scalar::Str(p)), _)) => regex::Regex::new(p)
            .map(|r| Some(Arc::new(r)))
            .map_err(|e| {
                PlanError::invalid(format!(
                    "{name}: the pattern '{p}' is not a regular expression: {e}"
                ))
            }),
        _ => Ok(None),
    }
}

impl StringFunction {
    /// The function `upper` (a name in upper case), its arity and result type; `None` if it
    /// is not one of these.
    pub fn resolve(
        upper: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(StringFunction, Arity, SqlType), PlanError>> {
        use StringFunction as F;
        let (f, arity, returns) = match upper {
            "REPLACE" => (F::Replace, 3..=3, SqlType::VARCHAR),
            "REGEXP_REPLACE" => match literal_regex(upper, args, 1) {
                Ok(re) => (F::RegexpReplace(re), 3..=3, SqlType::VARCHAR),
                Err(e) => return Some(Err(e)),
            },
            "REGEXP" => match literal_regex(upper, args, 1) {
                Ok(re) => (F::Regexp(re), 2..=2, SqlType::BOOLEAN),
                Err(e) => return Some(Err(e)),
            },
            "LOCATE" | "POSITION" => (
                F::Locate {
                    haystack_first: false,
                },
                2..=3,
                SqlType::BIGINT,
            ),
            "INSTR" => (
                F::Locate {
                    haystack_first: true,
                },
                2..=2,
                SqlType::BIGINT,
            ),
            "LPAD" => (F::Lpad, 3..=3, SqlType::VARCHAR),
            "RPAD" => (F::Rpad, 3..=3, SqlType::VARCHAR),
            "LTRIM" => (F::Ltrim, 1..=2, SqlType::VARCHAR),
            "RTRIM" => (F::Rtrim, 1..=2, SqlType::VARCHAR),
            "BTRIM" => (F::Btrim, 1..=2, SqlType::VARCHAR),
            "INITCAP" => (F::Initcap, 1..=1, SqlType::VARCHAR),
            "REPEAT" => (F::Repeat, 2..=2, SqlType::VARCHAR),
            "REVERSE" => (F::Reverse, 1..=1, SqlType::VARCHAR),
            "LEFT" => (F::Left, 2..=2, SqlType::VARCHAR),
            "RIGHT" => (F::Right, 2..=2, SqlType::VARCHAR),
            "ASCII" => (F::Ascii, 1..=1, SqlType::BIGINT),
            "CHR" => (F::Chr, 1..=1, SqlType::VARCHAR),
            "CONCAT_WS" => (F::ConcatWs, 2..=usize::MAX, SqlType::VARCHAR),
            "TO_BASE64" => (F::ToBase64, 1..=1, SqlType::VARCHAR),
            "FROM_BASE64" => (F::FromBase64, 1..=1, SqlType::VARCHAR),
            "IS_ALPHA" => (F::IsAlpha, 1..=1, SqlType::BOOLEAN),
            "IS_DIGIT" => (F::IsDigit, 1..=1, SqlType::BOOLEAN),
            "IS_DECIMAL" => (F::IsDecimal, 1..=1, SqlType::BOOLEAN),
            "MD5" => (F::Md5, 1..=1, SqlType::VARCHAR),
            "SHA224" => (F::Sha2(224), 1..=1, SqlType::VARCHAR),
            "SHA256" => (F::Sha2(256), 1..=1, SqlType::VARCHAR),
            "SHA384" => (F::Sha2(384), 1..=1, SqlType::VARCHAR),
            "SHA512" => (F::Sha2(512), 1..=1, SqlType::VARCHAR),
            "SHA2" => match args.get(1) {
                Some((Expr::Literal(Scalar::Int(bits @ (224 | 256 | 384 | 512))), _)) => {
                    (F::Sha2(*bits as u16), 2..=2, SqlType::VARCHAR)
                }
                Some(_) => {
                    return Some(Err(PlanError::invalid(
                        "SHA2(s, bits): bits is a literal 224, 256, 384 or 512",
                    )))
                }
                None => (F::Sha2(256), 2..=2, SqlType::VARCHAR),
            },
            _ => return None,
        };
        Some(Ok((f, arity, returns)))
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        use StringFunction as F;
        match self {
            F::Replace => "REPLACE",
            F::RegexpReplace(_) => "REGEXP_REPLACE",
            F::Regexp(_) => "REGEXP",
            F::Locate {
                haystack_first: false,
            } => "LOCATE",
            F::Locate {
                haystack_first: true,
            } => "INSTR",
            F::Lpad => "LPAD",
            F::Rpad => "RPAD",
            F::Ltrim => "LTRIM",
            F::Rtrim => "RTRIM",
            F::Btrim => "BTRIM",
            F::Initcap => "INITCAP",
            F::Repeat => "REPEAT",
            F::Reverse => "REVERSE",
            F::Left => "LEFT",
            F::Right => "RIGHT",
            F::Ascii => "ASCII",
            F::Chr => "CHR",
            F::ConcatWs => "CONCAT_WS",
            F::ToBase64 => "TO_BASE64",
            F::FromBase64 => "FROM_BASE64",
            F::IsAlpha => "IS_ALPHA",
            F::IsDigit => "IS_DIGIT",
            F::IsDecimal => "IS_DECIMAL",
            F::Md5 => "MD5",
            F::Sha2(_) => "SHA2",
        }
    }

    /// Which arguments must be strings and which integers: `(strings, integers)` by position.
    fn signature(&self) -> (&'static [usize], &'static [usize]) {
        use StringFunction as F;
        match self {
            F::Replace => (&[0, 1, 2], &[]),
            F::Ltrim | F::Rtrim | F::Btrim => (&[0, 1], &[]),
            F::RegexpReplace(_) => (&[0, 1, 2], &[]),
            F::Regexp(_) | F::Locate { .. } => (&[0, 1], &[2]),
            F::Lpad | F::Rpad => (&[0, 2], &[1]),
            F::Repeat | F::Left | F::Right => (&[0], &[1]),
            F::Chr => (&[], &[0]),
            F::Sha2(_) => (&[0], &[1]),
            F::ToBase64 => (&[], &[]),
            F::ConcatWs => (&[0], &[]),
            _ => (&[0], &[]),
        }
    }

    /// Checks the argument types (`want` reports a mismatch of argument `i`).
    pub fn check(
        &self,
        args: &[(Expr, SqlType)],
        want: impl Fn(usize, bool, &str) -> Result<(), PlanError>,
    ) -> Result<(), PlanError> {
        let (strings, integers) = self.signature();
        for &i in strings.iter().filter(|&&i| i < args.len()) {
            want(i, args[i].1.is_string(), "a string")?;
        }
        for &i in integers.iter().filter(|&&i| i < args.len()) {
            want(
                i,
                matches!(args[i].1, SqlType::Null) || args[i].1 == SqlType::BIGINT,
                "an integer",
            )?;
        }
        match self {
            StringFunction::ToBase64 => want(
                0,
                args[0].1.is_string() || args[0].1 == SqlType::Data(DataType::Bytes),
                "a string or bytes",
            ),
            StringFunction::ConcatWs => {
                for (i, (_, t)) in args.iter().enumerate().skip(1) {
                    want(i, t.is_string(), "a string")?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Calls the function on arguments evaluated from `row`.
    pub fn call(&self, args: &[Expr], row: &[Scalar]) -> Result<Scalar, EvalError> {
        use Scalar::{Int, Null, Str};
        use StringFunction as F;
        let arg = |i: usize| args[i].eval_cow(row);
        if let F::ConcatWs = self {
            let Str(sep) = &*arg(0)? else {
                return Ok(Null);
            };
            let mut out = CompactString::default();
            let mut first = true;
            for a in &args[1..] {
                if let Str(s) = &*a.eval_cow(row)? {
                    if !first {
                        out.push_str(sep);
                    }
                    out.push_str(s);
                    first = false;
                }
            }
            return Ok(Str(out));
        }
        if let F::ToBase64 = self {
            return Ok(match &*arg(0)? {
                Str(s) => Scalar::str(&BASE64.encode(s.as_bytes())),
                Scalar::Bytes(b) => Scalar::str(&BASE64.encode(b)),
                _ => Null,
            });
        }
        if let F::Chr = self {
            return Ok(match *arg(0)? {
                // As Flink: the code's low byte; nothing for a negative code.
                Int(n) if n < 0 => Str(CompactString::default()),
                Int(n) => Str(char::from((n & 0xff) as u8).to_string().into()),
                _ => Null,
            });
        }
        let first = arg(0)?;
        let Str(s) = &*first else {
            return Ok(Null);
        };
        // The other arguments; NULL makes the result NULL.
        let mut rest = Vec::with_capacity(args.len() - 1);
        for a in &args[1..] {
            let v = a.eval_cow(row)?;
            if v.is_null() {
                return Ok(Null);
            }
            rest.push(v);
        }
        let text = |i: usize| match &*rest[i] {
            Str(t) => t.as_str(),
            _ => "",
        };
        let int = |i: usize| match &*rest[i] {
            Int(n) => *n,
            _ => 0,
        };
        let regex = |compiled: &Option<Arc<regex::Regex>>, owned: &mut Option<regex::Regex>| {
            if compiled.is_none() {
                let p = text(0);
                *owned =
                    Some(regex::Regex::new(p).map_err(|e| {
                        EvalError(format!("{}: bad pattern '{p}': {e}", self.name()))
                    })?);
            }
            Ok::<_, EvalError>(())
        };
        Ok(match self {
            F::Replace => Scalar::str(&s.replace(text(0), text(1))),
            F::RegexpReplace(compiled) => {
                let mut owned = None;
                regex(compiled, &mut owned)?;
                let re = compiled.as_deref().or(owned.as_ref()).expect("compiled");
                Scalar::str(&re.replace_all(s, java_replacement(text(1)).as_str()))
            }
            F::Regexp(compiled) => {
                let mut owned = None;
                regex(compiled, &mut owned)?;
                let re = compiled.as_deref().or(owned.as_ref()).expect("compiled");
                Scalar::Bool(re.is_match(s))
            }
            F::Locate { haystack_first } => {
                let (needle, haystack) = if *haystack_first {
                    (text(0), s.as_str())
                } else {
                    (s.as_str(), text(0))
                };
                let from = if rest.len() > 1 { int(1) } else { 1 };
                Int(locate(needle, haystack, from))
            }
            F::Lpad | F::Rpad => {
                let (n, pad) = (int(0), text(1));
                check_size(self.name(), n.max(0) as usize)?;
                pad_to(s, n, pad, matches!(self, F::Lpad)).map_or(Null, Str)
            }
            F::Ltrim | F::Rtrim | F::Btrim => {
                // Flink's: every character of the set (a space by default) at that end goes.
                let set = if rest.is_empty() { " " } else { text(0) };
                let trimmed = |c: char| set.contains(c);
                Scalar::str(match self {
                    F::Ltrim => s.trim_start_matches(trimmed),
                    F::Rtrim => s.trim_end_matches(trimmed),
                    _ => s.trim_matches(trimmed),
                })
            }
            F::Initcap => Str(initcap(s)),
            F::Repeat => {
                let n = int(0).max(0) as usize;
                check_size("REPEAT", s.chars().count().saturating_mul(n))?;
                Scalar::str(&s.repeat(n))
            }
            F::Reverse => Str(s.chars().rev().collect()),
            F::Left => Str(s.chars().take(int(0).max(0) as usize).collect()),
            F::Right => {
                let len = s.chars().count();
                let n = (int(0).max(0) as usize).min(len);
                Str(s.chars().skip(len - n).collect())
            }
            F::Ascii => Int(s.chars().next().map_or(0, |c| c as i64)),
            F::FromBase64 => match BASE64.decode(s.as_bytes()) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => Scalar::str(&t),
                    Err(_) => {
                        return Err(EvalError(format!(
                            "FROM_BASE64: '{s}' does not hold UTF-8 text"
                        )))
                    }
                },
                Err(e) => return Err(EvalError(format!("FROM_BASE64: '{s}' is not base64: {e}"))),
            },
            F::IsAlpha => Scalar::Bool(!s.is_empty() && s.chars().all(char::is_alphabetic)),
            F::IsDigit => Scalar::Bool(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            F::IsDecimal => Scalar::Bool(s.trim().parse::<f64>().is_ok_and(f64::is_finite)),
            F::Md5 => hex(&md5::Md5::digest(s.as_bytes())),
            F::Sha2(bits) => {
                let b = s.as_bytes();
                match bits {
                    224 => hex(&sha2::Sha224::digest(b)),
                    256 => hex(&sha2::Sha256::digest(b)),
                    384 => hex(&sha2::Sha384::digest(b)),
                    _ => hex(&sha2::Sha512::digest(b)),
                }
            }
            F::ConcatWs | F::ToBase64 | F::Chr => unreachable!("handled above"),
        })
    }
}

/// A digest in lower-case hex.
fn hex(digest: &[u8]) -> Scalar {
    let mut out = CompactString::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from_digit((b >> 4) as u32, 16).expect("a hex digit"));
        out.push(char::from_digit((b & 15) as u32, 16).expect("a hex digit"));
    }
    Scalar::Str(out)
}

/// The 1-based character position of the first `needle` in `haystack` starting at character
/// `from` (1-based), 0 if there is none or `from` is out of range.
fn locate(needle: &str, haystack: &str, from: i64) -> i64 {
    if from < 1 {
        return 0;
    }
    let Some((start, _)) = haystack.char_indices().nth(from as usize - 1).or(
        // `from` just past the end still finds an empty needle there.
        (haystack.chars().count() == from as usize - 1).then_some((haystack.len(), ' ')),
    ) else {
        return 0;
    };
    match haystack[start..].find(needle) {
        Some(at) => (haystack[..start + at].chars().count() + 1) as i64,
        None => 0,
    }
}

/// The most characters a string function builds (a guard against `LPAD(s, 2147483647, …)`
/// taking the job's memory): 16 M.
const MAX_CHARS: usize = 1 << 24;

/// Fails a result of `chars` characters past [`MAX_CHARS`].
fn check_size(name: &str, chars: usize) -> Result<(), EvalError> {
    if chars > MAX_CHARS {
        return Err(EvalError(format!(
            "{name}: a result of {chars} characters is over the limit of {MAX_CHARS}"
        )));
    }
    Ok(())
}

/// Java's replacement text (`$1`, `\$`) in the `regex` crate's syntax (`${1}`, `$$`).
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 4);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut group = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    group.push(*d);
                    chars.next();
                }
                out.push_str("${");
                out.push_str(&group);
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` padded with `pad` (repeated) to `n` characters on the left or the right, or cut to
/// `n`; `None` for a negative `n` or an empty `pad` (Flink's NULL).
fn pad_to(s: &str, n: i64, pad: &str, left: bool) -> Option<CompactString> {
    let n = usize::try_from(n).ok()?;
    if pad.is_empty() {
        return None;
    }
    let len = s.chars().count();
    if len >= n {
        return Some(s.chars().take(n).collect());
    }
    let fill: String = pad.chars().cycle().take(n - len).collect();
    let mut out = CompactString::with_capacity(s.len() + fill.len());
    if left {
        out.push_str(&fill);
        out.push_str(s);
    } else {
        out.push_str(s);
        out.push_str(&fill);
    }
    Some(out)
}

/// Each word (a run of letters and digits) with its first character in upper case and the
/// rest in lower case.
fn initcap(s: &str) -> CompactString {
    let mut out = CompactString::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if in_word {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Scalar]) -> Scalar {
        crate::functions::call_with(name, args)
    }

    fn s(v: &str) -> Scalar {
        Scalar::str(v)
    }

    #[test]
    fn as_flink_documents_them() {
        let i = Scalar::Int;
        assert_eq!(
            call("REPLACE", &[s("hello world"), s("o"), s("0")]),
            s("hell0 w0rld")
        );
        assert_eq!(
            call("REGEXP_REPLACE", &[s("foobar"), s("oo|ar"), s("")]),
            s("fb")
        );
        assert_eq!(
            call(
                "REGEXP_REPLACE",
                &[s("2026-12-06"), s("(\\d+)-(\\d+)-(\\d+)"), s("$3/$2/$1")]
            ),
            s("06/12/2026")
        );
        assert_eq!(
            call("REGEXP", &[s("abc123"), s("[0-9]+")]),
            Scalar::Bool(true)
        );
        assert_eq!(call("LOCATE", &[s("b"), s("abcb")]), i(2));
        assert_eq!(call("LOCATE", &[s("b"), s("abcb"), i(3)]), i(4));
        assert_eq!(call("LOCATE", &[s("x"), s("abc")]), i(0));
        assert_eq!(call("LOCATE", &[s("é"), s("aéb")]), i(2));
        assert_eq!(call("INSTR", &[s("aéb"), s("b")]), i(3));
        assert_eq!(call("LPAD", &[s("hi"), i(4), s("??")]), s("??hi"));
        assert_eq!(call("LPAD", &[s("hi"), i(1), s("??")]), s("h"));
        assert_eq!(call("RPAD", &[s("hi"), i(5), s("ab")]), s("hiaba"));
        assert_eq!(call("LPAD", &[s("hi"), i(-1), s("?")]), Scalar::Null);
        assert_eq!(call("LTRIM", &[s("  a b  ")]), s("a b  "));
        assert_eq!(call("RTRIM", &[s("  a b  ")]), s("  a b"));
        assert_eq!(
            call("INITCAP", &[s("hELLO wORLD, 2nd")]),
            s("Hello World, 2nd")
        );
        assert_eq!(call("REPEAT", &[s("ab"), i(3)]), s("ababab"));
        assert_eq!(call("REPEAT", &[s("ab"), i(-1)]), s(""));
        assert_eq!(call("REVERSE", &[s("abé")]), s("éba"));
        assert_eq!(call("LEFT", &[s("abcd"), i(2)]), s("ab"));
        assert_eq!(call("RIGHT", &[s("abcd"), i(9)]), s("abcd"));
        assert_eq!(call("ASCII", &[s("a")]), i(97));
        assert_eq!(call("CHR", &[i(97)]), s("a"));
        assert_eq!(
            call(
                "CONCAT_WS",
                &[s("~"), s("AA"), Scalar::Null, s("BB"), s(""), s("CC")]
            ),
            s("AA~BB~~CC")
        );
        assert_eq!(call("CONCAT_WS", &[Scalar::Null, s("AA")]), Scalar::Null);
        assert_eq!(
            call("TO_BASE64", &[s("hello world")]),
            s("aGVsbG8gd29ybGQ=")
        );
        assert_eq!(
            call("FROM_BASE64", &[s("aGVsbG8gd29ybGQ=")]),
            s("hello world")
        );
        assert_eq!(call("IS_DIGIT", &[s("123")]), Scalar::Bool(true));
        assert_eq!(call("IS_DIGIT", &[s("")]), Scalar::Bool(false));
        assert_eq!(call("IS_ALPHA", &[s("abC")]), Scalar::Bool(true));
        assert_eq!(call("IS_DECIMAL", &[s("-1.5e3")]), Scalar::Bool(true));
        assert_eq!(call("IS_DECIMAL", &[s("1.5x")]), Scalar::Bool(false));
        assert_eq!(
            call("MD5", &[s("abc")]),
            s("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            call("SHA256", &[s("abc")]),
            s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            call("SHA2", &[s("abc"), i(256)]),
            call("SHA256", &[s("abc")])
        );
        assert_eq!(
            call("SHA224", &[s("abc")]),
            s("23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7")
        );
        // A NULL argument gives NULL.
        assert_eq!(
            call("REPLACE", &[s("a"), Scalar::Null, s("b")]),
            Scalar::Null
        );
        assert_eq!(call("LEFT", &[Scalar::Null, i(1)]), Scalar::Null);
    }

    /// The review's cases: Flink's CHR of any code, NULL for an empty pad, Java's replacement
    /// syntax, and a size limit in place of an unbounded allocation.
    #[test]
    fn edges_as_flink() {
        let i = Scalar::Int;
        assert_eq!(call("CHR", &[i(353)]), s("a"));
        assert_eq!(call("CHR", &[i(-1)]), s(""));
        assert_eq!(call("LPAD", &[s("abc"), i(2), s("")]), Scalar::Null);
        assert_eq!(
            call("REGEXP_REPLACE", &[s("abc"), s("(b)"), s("$1x")]),
            s("abxc")
        );
        assert_eq!(
            call("REGEXP_REPLACE", &[s("abc"), s("b"), s("$0$0x")]),
            s("abbxc")
        );
        assert_eq!(
            call("REGEXP_REPLACE", &[s("abc"), s("b"), s("\\$")]),
            s("a$c")
        );
        assert_eq!(java_replacement("a$12b\\\\c"), "a${12}b\\c");
        assert!(check_size("LPAD", MAX_CHARS).is_ok());
        let e = check_size("LPAD", MAX_CHARS + 1).unwrap_err();
        assert!(e.0.contains("over the limit"), "{e}");
        let huge = crate::functions::ScalarFunction::resolve(
            "LPAD",
            &[
                (Expr::Literal(s("a")), SqlType::VARCHAR),
                (Expr::Literal(i(1 << 31)), SqlType::BIGINT),
                (Expr::Literal(s("x")), SqlType::VARCHAR),
            ],
        )
        .unwrap()
        .unwrap()
        .0;
        let args = [
            Expr::Literal(s("a")),
            Expr::Literal(i(1 << 31)),
            Expr::Literal(s("x")),
        ];
        assert!(huge.call(&args, &[]).is_err());
    }

    #[test]
    fn locate_counts_characters_from_one() {
        assert_eq!(locate("", "abc", 1), 1);
        assert_eq!(locate("", "abc", 4), 4);
        assert_eq!(locate("", "abc", 5), 0);
        assert_eq!(locate("c", "abc", 0), 0);
        assert_eq!(locate("ab", "abab", 2), 3);
    }
}
