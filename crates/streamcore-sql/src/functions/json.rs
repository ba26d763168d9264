//! Flink's JSON functions over JSON text ([`JsonFunction`]): `JSON_VALUE(s, path)` (a scalar
//! at the path, as a string), `JSON_QUERY(s, path)` (an object or an array at the path, as
//! JSON text) and `JSON_EXISTS(s, path)`.
//!
//! Paths are SQL/JSON paths in lax mode (Flink's default): `$`, `.key`, `."key"`, `['key']`,
//! `[n]` (from 0), optionally prefixed by `lax` (`strict` is refused). The path must be a
//! literal: it is read once at planning. As in Flink's defaults (`NULL ON EMPTY`, `NULL ON
//! ERROR`), text that is not JSON, a missing path, or a value of the wrong kind (an object for
//! `JSON_VALUE`, a scalar for `JSON_QUERY`) give `NULL`.

use super::Arity;
use crate::error::PlanError;
use crate::expr::{EvalError, Expr};
use crate::types::SqlType;
use serde_json::Value;
use std::sync::Arc;
use streamcore::row::Scalar;

/// A JSON function of Flink's.
#[derive(Clone, Debug)]
pub enum JsonFunction {
    /// `JSON_VALUE(s, path)`.
    Value(Arc<JsonPath>),
    /// `JSON_QUERY(s, path)`.
    Query(Arc<JsonPath>),
    /// `JSON_EXISTS(s, path)`.
    Exists(Arc<JsonPath>),
}

/// The names [`JsonFunction::resolve`] takes.
pub const NAMES: &[&str] = &["JSON_VALUE", "JSON_QUERY", "JSON_EXISTS"];

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// A member of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// A compiled SQL/JSON path (lax mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Reads `path`; the error says what is wrong with it.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let mut rest = path.trim();
        if let Some(r) = rest.strip_prefix("lax ") {
            rest = r.trim_start();
        } else if rest.starts_with("strict ") {
            return Err("strict mode is not supported (lax is the default)".into());
        }
        let Some(mut rest) = rest.strip_prefix('$') else {
            return Err("a path starts with `$`".into());
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let (key, after) = if let Some(quoted) = r.strip_prefix('"') {
                    let end = quoted.find('"').ok_or("an unterminated \"key\"")?;
                    (&quoted[..end], &quoted[end + 1..])
                } else {
                    let end = r.find(['.', '[']).unwrap_or(r.len());
                    (&r[..end], &r[end..])
                };
                if key.is_empty() {
                    return Err("an empty key after `.`".into());
                }
                steps.push(Step::Key(key.to_string()));
                rest = after;
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or("an unterminated `[`")?;
                let inside = r[..end].trim();
                let step = match inside.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                    Some(key) => Step::Key(key.to_string()),
                    None => Step::Index(inside.parse().map_err(|_| {
                        format!(
                            "`[{inside}]` is not an index (wildcards and ranges are not supported)"
                        )
                    })?),
                };
                steps.push(step);
                rest = &r[end + 1..];
            } else {
                return Err(format!("unexpected `{rest}`"));
            }
        }
        Ok(JsonPath { steps })
    }

    /// The value at the path in `doc`.
    fn find<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(doc, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }
}

impl JsonFunction {
    /// The function `upper` (a name in upper case), its arity and result type; `None` if it
    /// is not one of these.
    pub fn resolve(
        upper: &str,
        args: &[(Expr, SqlType)],
    ) -> Option<Result<(JsonFunction, Arity, SqlType), PlanError>> {
        let make: fn(Arc<JsonPath>) -> JsonFunction = match upper {
            "JSON_VALUE" => JsonFunction::Value,
            "JSON_QUERY" => JsonFunction::Query,
            "JSON_EXISTS" => JsonFunction::Exists,
            _ => return None,
        };
        let returns = if upper == "JSON_EXISTS" {
            SqlType::BOOLEAN
        } else {
            SqlType::VARCHAR
        };
        let path = match args.get(1) {
            Some((Expr::Literal(Scalar::Str(p)), _)) => match JsonPath::parse(p) {
                Ok(path) => path,
                Err(e) => {
                    return Some(Err(PlanError::invalid(format!(
                        "{upper}: the path '{p}' is not a JSON path: {e}"
                    ))))
                }
            },
            Some(_) => {
                return Some(Err(PlanError::unsupported(format!(
                    "{upper} with a path that is not a literal"
                ))))
            }
            None => JsonPath { steps: Vec::new() },
        };
        Some(Ok((make(Arc::new(path)), 2..=2, returns)))
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        match self {
            JsonFunction::Value(_) => "JSON_VALUE",
            JsonFunction::Query(_) => "JSON_QUERY",
            JsonFunction::Exists(_) => "JSON_EXISTS",
        }
    }

    /// Checks the argument types (`want` reports a mismatch of argument `i`).
    pub fn check(
        &self,
        args: &[(Expr, SqlType)],
        want: impl Fn(usize, bool, &str) -> Result<(), PlanError>,
    ) -> Result<(), PlanError> {
        want(0, args[0].1.is_string(), "a string (JSON text)")
    }

    /// Calls the function on arguments evaluated from `row`.
    pub fn call(&self, args: &[Expr], row: &[Scalar]) -> Result<Scalar, EvalError> {
        let text = args[0].eval_cow(row)?;
        let Scalar::Str(text) = &*text else {
            return Ok(Scalar::Null);
        };
        let Ok(doc) = serde_json::from_str::<Value>(text) else {
            return Ok(match self {
                JsonFunction::Exists(_) => Scalar::Bool(false),
                _ => Scalar::Null,
            });
        };
        Ok(match self {
            JsonFunction::Value(path) => match path.find(&doc) {
                Some(Value::String(s)) => Scalar::str(s),
                Some(Value::Number(n)) => Scalar::str(&n.to_string()),
                Some(Value::Bool(b)) => Scalar::str(if *b { "true" } else { "false" }),
                _ => Scalar::Null,
            },
            JsonFunction::Query(path) => match path.find(&doc) {
                Some(v @ (Value::Object(_) | Value::Array(_))) => Scalar::str(&v.to_string()),
                _ => Scalar::Null,
            },
            JsonFunction::Exists(path) => Scalar::Bool(path.find(&doc).is_some()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, doc: &str, path: &str) -> Scalar {
        crate::functions::call_with(name, &[Scalar::str(doc), Scalar::str(path)])
    }

    const DOC: &str = r#"{"a": {"b": [10, {"c": "x"}], "n": null, "t": true, "k y": 1.5}}"#;

    #[test]
    fn values_queries_and_existence() {
        let s = Scalar::str;
        assert_eq!(call("JSON_VALUE", DOC, "$.a.b[0]"), s("10"));
        assert_eq!(call("JSON_VALUE", DOC, "lax $.a.b[1].c"), s("x"));
        assert_eq!(call("JSON_VALUE", DOC, "$.a['k y']"), s("1.5"));
        assert_eq!(call("JSON_VALUE", DOC, "$.a.\"k y\""), s("1.5"));
        assert_eq!(call("JSON_VALUE", DOC, "$.a.t"), s("true"));
        assert_eq!(call("JSON_VALUE", DOC, "$.a.n"), Scalar::Null);
        assert_eq!(call("JSON_VALUE", DOC, "$.a"), Scalar::Null);
        assert_eq!(call("JSON_VALUE", DOC, "$.missing"), Scalar::Null);
        assert_eq!(call("JSON_VALUE", "not json", "$.a"), Scalar::Null);
        assert_eq!(call("JSON_QUERY", DOC, "$.a.b"), s(r#"[10,{"c":"x"}]"#));
        assert_eq!(call("JSON_QUERY", DOC, "$.a.b[0]"), Scalar::Null);
        assert_eq!(call("JSON_EXISTS", DOC, "$.a.n"), Scalar::Bool(true));
        assert_eq!(call("JSON_EXISTS", DOC, "$.a.b[2]"), Scalar::Bool(false));
    }

    #[test]
    fn bad_paths_are_named() {
        for (path, why) in [
            ("a.b", "starts with `$`"),
            ("strict $.a", "strict mode"),
            ("$.a[*]", "not an index"),
            ("$.a[1", "unterminated `[`"),
            ("$..a", "empty key"),
        ] {
            let e = JsonPath::parse(path).unwrap_err();
            assert!(e.contains(why), "{path}: {e}");
        }
    }
}
