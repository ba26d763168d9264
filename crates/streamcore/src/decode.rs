//! Decoding records from text, with errors that name the field and say why.

use serde::de::DeserializeOwned;
use thiserror::Error;

/// A record could not be decoded: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{reason}", if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
pub struct DecodeError {
    /// Dotted path of the offending field (`data.amount`), or empty when the record as a whole
    /// is malformed (not JSON, truncated).
    pub field: String,
    /// Why, in the decoder's words.
    pub reason: String,
}

/// Decodes one `T` from a JSON text. A missing field is reported under its own name.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Tx { amount: i64 }
/// let err = streamcore::decode::from_json_str::<Tx>(r#"{"amount":"lots"}"#).unwrap_err();
/// assert_eq!(err.field, "amount");
/// ```
pub fn from_json_str<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| DecodeError {
        field: String::new(),
        reason: json_reason(&e),
    })?;
    Ok(value)
}

/// serde_json's message, with its position said once: a record is one line of text, so
/// "at line 1 column 88" (which reads as a second, different line number next to the file's)
/// becomes "at column 88".
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 1 {
        let suffix = format!(" at line 1 column {}", e.column());
        if let Some(message) = text.strip_suffix(&suffix) {
            return format!("{message} at column {}", e.column());
        }
    }
    text
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    // Segments serde_path_to_error could not name (`?`: inside a value that ended early) say
    // nothing; the field is the deepest named one.
    let mut field = e.path().to_string();
    while let Some(parent) = field.strip_suffix(".?").or_else(|| field.strip_suffix('?')) {
        field = parent.to_string();
    }
    if field == "." {
        field.clear();
    }
    let reason = json_reason(e.inner());
    if field.is_empty() {
        // serde reports a missing field at the parent; name the field itself.
        if let Some(name) = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            field = name.to_string();
        }
    }
    DecodeError { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn a_truncated_record_names_the_field_and_one_position() {
        let err = Event::from_json(
            r#"{"event_id":"e1","timestamp":1,"event_type":"t","data":{"amount":1"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "data");
        assert_eq!(
            err.to_string(),
            "field `data`: EOF while parsing an object at column 66"
        );
    }

    #[test]
    fn trailing_garbage_has_one_position() {
        let err = from_json_str::<u32>("1 x").unwrap_err();
        assert_eq!(err.to_string(), "trailing characters at column 3");
    }
}
