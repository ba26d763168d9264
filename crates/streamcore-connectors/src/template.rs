//! Text templates over rows (`"user:{user_id}"`), compiled once against a [`Schema`] and
//! rendered into a reused buffer, and the JSON text of rows and values — shared by the Redis
//! sink (keys, values, hash fields, members) and the webhook sink (payloads).
//!
//! A template is literal text with `{column}` placeholders naming columns of the schema (a
//! name of letters, digits, `_`, `.`, `$`, `-`); any other brace is literal text — so a JSON
//! payload template reads as JSON: `{"user": {user_id}}` — and `{{` / `}}` are a literal
//! brace where one is needed before a name. A template naming a column the schema does not have is
//! refused when it is compiled, with the template and the columns there are. Values render in
//! SQL's text form ([`Scalar`]'s `Display`: `42`, `1.5`, the string itself,
//! `2023-11-14 22:13:20.123`); `NULL` renders as an empty string in text templates and as
//! `null` in JSON templates.

use std::fmt::Write as _;
use streamcore::row::{Row, Scalar, Schema};
use streamcore::{Result, StreamError};

/// How a template escapes the values it inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Values are inserted as they are (Redis keys, fields, values).
    Text,
    /// Values are inserted escaped for a JSON string: a template like
    /// `{"text": "user {user}"}` stays valid JSON whatever the user name holds. `NULL` is
    /// `null`, so a placeholder outside quotes (`{"amount": {amount}}`) gives a JSON value
    /// for numbers, booleans and nulls.
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Column(usize),
}

/// A compiled template: literal text and column positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    escape: Escape,
}

impl Template {
    /// Compiles `text` against `schema`. `what` names the template in errors (`key template`,
    /// `payload template`).
    pub fn compile(text: &str, schema: &Schema, escape: Escape, what: &str) -> Result<Self> {
        let bad = |why: String| StreamError::Config(format!("{what} `{text}`: {why}"));
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let trimmed = rest.trim_start();
                    let ident = trimmed
                        .find(|c: char| !(c.is_alphanumeric() || "_.$-".contains(c)))
                        .unwrap_or(trimmed.len());
                    let name = &trimmed[..ident];
                    let after = trimmed[ident..].trim_start();
                    if !name.is_empty() && after.is_empty() {
                        return Err(bad(format!("`{{{name}` at byte {i} is never closed")));
                    }
                    if name.is_empty() || !after.starts_with('}') {
                        // Not a placeholder (JSON's `{"key": …}`): a literal brace.
                        literal.push('{');
                        continue;
                    }
                    let Some(column) = schema.index_of(name) else {
                        let names: Vec<&str> =
                            schema.fields.iter().map(|f| f.name.as_str()).collect();
                        return Err(bad(format!(
                            "no column `{name}` (the columns are: {})",
                            names.join(", ")
                        )));
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Column(column));
                    // Skip the placeholder's characters, up to its `}`.
                    let len = rest.len() - after.len() + 1;
                    for _ in 0..rest[..len].chars().count() {
                        chars.next();
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
            escape,
        })
    }

    /// The template's text, as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The columns the template reads, in order of appearance.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(*c),
            Part::Literal(_) => None,
        })
    }

    /// Appends the template rendered for `row` to `out`.
    pub fn render_into(&self, row: &Row, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Column(c) => {
                    let value = row.values.get(*c).unwrap_or(&Scalar::Null);
                    match self.escape {
                        Escape::Text => write_text(value, out),
                        Escape::Json => write_json_escaped(value, out),
                    }
                }
            }
        }
    }

    /// The template rendered for `row`, as a new string.
    pub fn render(&self, row: &Row) -> String {
        let mut s = String::new();
        self.render_into(row, &mut s);
        s
    }
}

/// Appends a value's text form (SQL's; `NULL` is empty).
pub fn write_text(value: &Scalar, out: &mut String) {
    match value {
        Scalar::Null => {}
        Scalar::Str(s) => out.push_str(s),
        Scalar::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Appends a value for a JSON template: inside a JSON string's quotes for text, the bare
/// JSON for numbers, booleans and `NULL`.
fn write_json_escaped(value: &Scalar, out: &mut String) {
    match value {
        Scalar::Null => out.push_str("null"),
        Scalar::Str(s) => escape_json_str(s, out),
        Scalar::Float(f) if !f.get().is_finite() => out.push_str("null"),
        Scalar::Int(_) | Scalar::Float(_) | Scalar::Decimal(_) | Scalar::Bool(_) => {
            write_text(value, out)
        }
        other => {
            let mut s = String::new();
            write_text(other, &mut s);
            escape_json_str(&s, out);
        }
    }
}

/// Appends `s` escaped for the inside of a JSON string (no quotes).
fn escape_json_str(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Appends a value as a JSON value: numbers and booleans bare (non-finite floats are
/// `null`), decimals as JSON numbers with their exact digits, strings, timestamps and dates
/// as strings in SQL's text form, bytes as a lowercase hex string, maps as objects (keys as
/// text), arrays as arrays.
pub fn write_json_value(value: &Scalar, out: &mut String) {
    match value {
        Scalar::Null => out.push_str("null"),
        Scalar::Bool(_) | Scalar::Int(_) | Scalar::Decimal(_) => write_text(value, out),
        Scalar::Float(f) if f.get().is_finite() => {
            let _ = write!(out, "{}", f.get());
        }
        Scalar::Float(_) => out.push_str("null"),
        Scalar::Bytes(b) => {
            out.push('"');
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            out.push('"');
        }
        Scalar::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                write_json_escaped(k, out);
                out.push_str("\":");
                write_json_value(v, out);
            }
            out.push('}');
        }
        Scalar::Array(elements) => {
            out.push('[');
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(e, out);
            }
            out.push(']');
        }
        other => {
            out.push('"');
            write_json_escaped(other, out);
            out.push('"');
        }
    }
}

/// Appends `row` as a JSON object keyed by the schema's column names.
pub fn write_json_row(row: &Row, schema: &Schema, out: &mut String) {
    out.push('{');
    for (i, field) in schema.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        escape_json_str(&field.name, out);
        out.push_str("\":");
        write_json_value(row.values.get(i).unwrap_or(&Scalar::Null), out);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::{DataType, Field};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user_id", DataType::BigInt),
            Field::new("name", DataType::Varchar),
            Field::new("amount", DataType::Double),
            Field::new("at", DataType::TimestampMillis),
        ])
    }

    fn row() -> Row {
        Row::new(vec![
            Scalar::Int(7),
            Scalar::str("a \"quoted\"\nname"),
            Scalar::float(12.5),
            Scalar::TimestampMs(1_700_000_000_123),
        ])
    }

    #[test]
    fn text_templates_render_columns_and_literal_braces() {
        let t = Template::compile(
            "user:{user_id}:{{x}}:{ name }",
            &schema(),
            Escape::Text,
            "key",
        )
        .unwrap();
        assert_eq!(t.render(&row()), "user:7:{x}:a \"quoted\"\nname");
        assert_eq!(t.columns().collect::<Vec<_>>(), [0, 1]);
        let null = Row::new(vec![Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null]);
        assert_eq!(t.render(&null), "user::{x}:");
    }

    #[test]
    fn json_templates_stay_valid_json() {
        let t = Template::compile(
            r#"{"text": "{name} spent {amount} at {at}", "user": {user_id}, "amount": {amount}}"#,
            &schema(),
            Escape::Json,
            "payload template",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&t.render(&row())).unwrap();
        assert_eq!(
            v["text"],
            "a \"quoted\"\nname spent 12.5 at 2023-11-14 22:13:20.123"
        );
        assert_eq!(v["user"], 7);
        assert_eq!(v["amount"], 12.5);
    }

    #[test]
    fn rows_as_json_objects() {
        let mut s = String::new();
        write_json_row(&row(), &schema(), &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"user_id": 7, "name": "a \"quoted\"\nname", "amount": 12.5,
                "at": "2023-11-14 22:13:20.123"})
        );
    }

    #[test]
    fn maps_are_json_objects() {
        let m = Scalar::map(vec![
            (Scalar::str("a\"b"), Scalar::Int(1)),
            (Scalar::str("n"), Scalar::Null),
            (Scalar::str("s"), Scalar::str("x")),
        ]);
        let mut s = String::new();
        write_json_value(&m, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, serde_json::json!({"a\"b": 1, "n": null, "s": "x"}));
    }

    #[test]
    fn bad_templates_are_refused_naming_the_problem() {
        let err = |t: &str| {
            Template::compile(t, &schema(), Escape::Text, "key template")
                .unwrap_err()
                .to_string()
        };
        let e = err("user:{userid}");
        assert!(e.contains("key template `user:{userid}`"), "{e}");
        assert!(
            e.contains("no column `userid`") && e.contains("user_id, name"),
            "{e}"
        );
        assert!(err("user:{user_id").contains("never closed"));
        // Braces that are no placeholder are text.
        let ok = |t: &str| {
            Template::compile(t, &schema(), Escape::Text, "key")
                .unwrap()
                .render(&row())
        };
        assert_eq!(ok("{} {{user_id}} }{ {user_id}"), "{} {user_id} }{ 7");
    }
}
