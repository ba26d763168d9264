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
        reason: e.to_string(),
    })?;
    Ok(value)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let mut field = e.path().to_string();
    if field == "." {
        field.clear();
    }
    let reason = e.into_inner().to_string();
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
