//! Dynamic values: [`Value`] and the small ordered map [`Fields`] that holds an event's data.
//!
//! `Fields` is a vector of `(key, value)` pairs kept in insertion order. Events carry a handful
//! of fields, where a linear scan beats hashing and a single allocation beats a tree of nodes.
//! Keys are [`CompactString`]s: up to 24 bytes live inline, so typical field names never
//! allocate. Integers and floats are kept apart (`Int` vs `Float`), as SQL needs them to be.

use compact_str::CompactString;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A dynamic value: the JSON data model, with integers kept apart from floats.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string; short strings are stored inline.
    Str(CompactString),
    /// A list of values.
    List(Vec<Value>),
    /// A nested object.
    Map(Fields),
}

impl Value {
    /// The value as a float if it is numeric (`Int` or `Float`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer if it is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a string slice if it is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean if it is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(CompactString::from(v))
    }
}
impl From<CompactString> for Value {
    fn from(v: CompactString) -> Self {
        Value::Str(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(CompactString::from(v))
    }
}

/// An insertion-ordered map from field name to [`Value`], tuned for a handful of fields.
///
/// ```
/// use streamcore::{Fields, Value};
/// let mut f = Fields::with_capacity(2);
/// f.insert("amount", 125);
/// f.insert("user_id", "user_3");
/// assert_eq!(f.get("amount").and_then(Value::as_i64), Some(125));
/// f.insert("amount", 150); // replaces in place
/// assert_eq!(f.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Fields(Vec<(CompactString, Value)>);

impl Fields {
    /// An empty map; does not allocate.
    pub const fn new() -> Self {
        Fields(Vec::new())
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Fields(Vec::with_capacity(n))
    }

    /// The value of field `key`, if present.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A mutable reference to the value of field `key`, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets field `key`, replacing an existing value in place or appending a new field.
    /// Returns the previous value.
    ///
    /// The key is only converted (copied) when a new field is appended; pass
    /// `CompactString::const_new("name")` for a static name that is never copied.
    pub fn insert<K>(&mut self, key: K, value: impl Into<Value>) -> Option<Value>
    where
        K: AsRef<str> + Into<CompactString>,
    {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k.as_str() == key.as_ref()) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.0.push((key.into(), value));
                None
            }
        }
    }

    /// Appends a field without checking for an existing one with the same name.
    /// For builders that know their keys are distinct (generators, decoders).
    pub fn push_unchecked(&mut self, key: impl Into<CompactString>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// Removes field `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reserves room for `n` more fields.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve(n);
    }

    /// The fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<K: AsRef<str> + Into<CompactString>, V: Into<Value>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut f = Fields::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(m) => m.serialize(s),
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), v)?;
        }
        map.end()
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(CompactString::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(CompactString::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        FieldsVisitor.visit_map(map).map(Value::Map)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::with_capacity(map.size_hint().unwrap_or(4).min(64));
        while let Some(key) = map.next_key::<CompactString>()? {
            if fields.get(&key).is_some() {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value: Value = map.next_value()?;
            fields.0.push((key, value));
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_order_and_int_float_apart() {
        let text = r#"{"b":1,"a":1.5,"s":"x","n":null,"l":[1,"y",true],"m":{"z":-3}}"#;
        let f: Fields = serde_json::from_str(text).unwrap();
        assert_eq!(f.get("b"), Some(&Value::Int(1)));
        assert_eq!(f.get("a"), Some(&Value::Float(1.5)));
        assert_eq!(serde_json::to_string(&f).unwrap(), text);
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let err = serde_json::from_str::<Fields>(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `a`"), "{err}");
    }

    #[test]
    fn insert_replaces_and_remove_removes() {
        let mut f: Fields = [("a", 1i64), ("b", 2)].into_iter().collect();
        assert_eq!(f.insert("a", 10), Some(Value::Int(1)));
        assert_eq!(f.remove("b"), Some(Value::Int(2)));
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("a", &Value::Int(10))]);
    }
}
