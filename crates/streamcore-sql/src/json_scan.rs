//! JSON objects decoded by a table's schema in one pass over the line's bytes.
//!
//! The scanner walks the object and looks each key up in the table's layout (a small tree of
//! the table's columns: `bid` → `price` for the column `bid.price`; the columns it does not
//! read are there as keys to skip, objects of them as one such key), first by comparing the
//! line's bytes with the key expected next (lines mostly list their keys in one order), then
//! by reading the key to its closing quote and searching the layout. A key the table reads is
//! decoded straight into its column's [`Scalar`]; any other value is skipped: strings by
//! jumping from quote to quote with `memchr` (SIMD), objects and arrays by walking their
//! structure without building anything. Nothing is allocated per line but the values the
//! table keeps (and an unescaped string, into a reused buffer).
//!
//! The grammar is JSON's (RFC 8259) for the whole line — structure, numbers, literals and
//! escapes are checked in skipped values too — with two leniencies, both of which serde_json
//! shares when it skips: UTF-8 is checked in the strings the table reads (a key or a skipped
//! string with invalid UTF-8 is not reported), and control characters inside strings are
//! accepted. Errors name the column (`field \`bid.price\`: expected BIGINT, got "x"`) and the
//! 1-based byte column where the scanner stopped.

use crate::expr::{parse_as, parse_timestamp_ms};
use rust_decimal::Decimal;
use streamcore::row::{ArrayType, DataType, MapType, Scalar};

/// How deep skipped objects and arrays may nest before the line is refused.
const MAX_DEPTH: usize = 128;

/// The columns of a table as its JSON objects hold them: a tree of object keys.
pub(crate) struct JsonLayout {
    root: JsonNode,
    /// Every column's name (nested: `outer.inner`), read or not.
    pub(crate) names: Vec<String>,
    pub(crate) types: Vec<DataType>,
}

/// The keys of one JSON object of the table, in the columns' order, looked up by comparing
/// bytes (a handful of keys: a linear scan beats hashing the key).
#[derive(Default)]
struct JsonNode {
    keys: Vec<Box<[u8]>>,
    /// Per key: `"key"` as a line writes it, if its bytes need no escape in JSON (no `"`,
    /// `\\` or control character): a key of the line is this key exactly when its bytes are.
    quoted: Vec<Option<Box<[u8]>>>,
    entries: Vec<JsonEntry>,
}

enum JsonEntry {
    /// The value is this column.
    Column(usize),
    /// The value is an object that holds columns (`bid` of `bid.price`).
    Nested(JsonNode),
    /// A column (or an object of columns) the table has but does not read: its value is
    /// skipped. Known, so that the keys after it are still found in order.
    Skip,
}

impl JsonNode {
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| **k == *key)
    }

    /// The key at `at` of `line` (at its opening quote) if it is written exactly as key
    /// `expected` of the node: `"`, the key's bytes, `"`. Lines written by one program list
    /// their keys in one order, so the key after key `i` is mostly key `i + 1`: one
    /// comparison instead of searching for the closing quote and then the key.
    #[inline]
    fn predicted(&self, line: &[u8], at: usize, expected: usize) -> Option<usize> {
        let quoted = self.quoted.get(expected)?.as_deref()?;
        let end = at + quoted.len();
        line.get(at..end)
            .is_some_and(|b| short_eq(b, quoted))
            .then_some(end)
    }

    fn entry_or_insert(&mut self, key: &str, entry: impl FnOnce() -> JsonEntry) -> &mut JsonEntry {
        let at = match self.keys.iter().position(|k| **k == *key.as_bytes()) {
            Some(at) => at,
            None => {
                self.keys.push(key.as_bytes().into());
                let plain = !key.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20);
                self.quoted
                    .push(plain.then(|| format!("\"{key}\"").into_bytes().into()));
                self.entries.push(entry());
                self.entries.len() - 1
            }
        };
        &mut self.entries[at]
    }
}

impl JsonLayout {
    /// The layout that reads the columns `names` of types `types` for which `keep` holds; a
    /// dotted name (`bid.price`) is a key of a nested object.
    pub(crate) fn of(
        names: Vec<String>,
        types: Vec<DataType>,
        keep: impl Fn(usize) -> bool,
    ) -> Self {
        // The objects that hold a column the table reads (`bid` for `bid.price`).
        let mut read_objects = std::collections::HashSet::new();
        for (i, name) in names.iter().enumerate() {
            if keep(i) {
                for (at, _) in name.match_indices('.') {
                    read_objects.insert(&name[..at]);
                }
            }
        }
        // Keys go in in the columns' order (a line's order, mostly): what is not read is
        // known as skipped, so that the keys after it are found in order too.
        let mut root = JsonNode::default();
        for (i, name) in names.iter().enumerate() {
            let kept = keep(i);
            let mut node = &mut root;
            let ends = name
                .match_indices('.')
                .map(|(at, _)| at)
                .chain([name.len()]);
            let mut from = 0;
            for to in ends {
                let part = &name[from..to];
                if to == name.len() && kept {
                    *node.entry_or_insert(part, || JsonEntry::Column(i)) = JsonEntry::Column(i);
                    break;
                }
                if !read_objects.contains(&name[..to]) {
                    node.entry_or_insert(part, || JsonEntry::Skip);
                    break;
                }
                // Never a `Skip`: whether a path holds a read column is decided alike above.
                node = match node.entry_or_insert(part, || JsonEntry::Nested(JsonNode::default())) {
                    JsonEntry::Nested(n) => n,
                    // A column named like the object that holds others: the column wins.
                    _ => break,
                };
                from = to + 1;
            }
        }
        JsonLayout { root, names, types }
    }

    /// Decodes the JSON object `line` into `values` (one per column; the columns the line
    /// does not hold are left as they are). `scratch` holds unescaped strings.
    pub(crate) fn decode_into(
        &self,
        line: &[u8],
        values: &mut [Scalar],
        scratch: &mut String,
    ) -> Result<(), String> {
        let mut s = Scanner { b: line, i: 0 };
        s.ws();
        if s.peek() != Some(b'{') {
            return Err(s.error("expected a JSON object"));
        }
        self.object(&mut s, &self.root, values, scratch)?;
        s.ws();
        if s.i < s.b.len() {
            return Err(s.error("trailing characters after the object"));
        }
        Ok(())
    }

    /// The object at the scanner (at its `{`), its keys looked up in `node`.
    fn object(
        &self,
        s: &mut Scanner<'_>,
        node: &JsonNode,
        values: &mut [Scalar],
        scratch: &mut String,
    ) -> Result<(), String> {
        s.i += 1;
        s.ws();
        if s.eat(b'}') {
            return Ok(());
        }
        // The node's key expected next (keys are mostly in the order the layout met them).
        let mut expected = 0;
        loop {
            s.ws();
            let at = match node.predicted(s.b, s.i, expected) {
                Some(after) => {
                    s.i = after;
                    Some(expected)
                }
                None => match s.key(scratch)? {
                    Key::Raw(k) => node.find(k),
                    Key::Unescaped => node.find(scratch.as_bytes()),
                },
            };
            if let Some(at) = at {
                expected = at + 1;
            }
            let entry = at.map(|at| &node.entries[at]);
            s.ws();
            if !s.eat(b':') {
                return Err(s.error("expected `:` after an object key"));
            }
            s.ws();
            match entry {
                Some(&JsonEntry::Column(c)) => {
                    let at = s.i;
                    s.value_into(self.types[c], scratch, &mut values[c])
                        .map_err(|what| {
                            format!("field `{}`: {what} at column {}", self.names[c], at + 1)
                        })?;
                }
                Some(JsonEntry::Nested(inner)) => match s.peek() {
                    Some(b'{') => self.object(s, inner, values, scratch)?,
                    Some(b'n') => s.literal(b"null")?,
                    _ => return Err(s.error("expected a JSON object or null")),
                },
                Some(JsonEntry::Skip) | None => s.skip_value(0)?,
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.i += 1,
                Some(b'}') => {
                    s.i += 1;
                    return Ok(());
                }
                _ => return Err(s.error("expected `,` or `}` in an object")),
            }
        }
    }
}

/// A key as the line holds it, or unescaped into the scratch buffer.
enum Key<'a> {
    Raw(&'a [u8]),
    Unescaped,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, what: &str) -> String {
        match self.b.get(self.i) {
            Some(c) if c.is_ascii_graphic() => {
                format!("{what}, found `{}` at column {}", *c as char, self.i + 1)
            }
            Some(_) => format!("{what} at column {}", self.i + 1),
            None => format!("{what}, found the end of the line"),
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    /// The string at the scanner (at its opening quote): its raw bytes between the quotes,
    /// and whether it holds escapes. Escapes are checked, not decoded.
    #[inline]
    fn raw_string(&mut self) -> Result<(&'a [u8], bool), String> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            match quote_or_backslash(&self.b[self.i..]) {
                None => {
                    self.i = self.b.len();
                    return Err(self.error("unterminated string"));
                }
                Some(p) => {
                    self.i += p;
                    if self.b[self.i] == b'"' {
                        let raw = &self.b[start..self.i];
                        self.i += 1;
                        return Ok((raw, escaped));
                    }
                    escaped = true;
                    self.escape()?;
                }
            }
        }
    }

    /// Checks the escape at the scanner (at its backslash) and steps over it.
    #[cold]
    fn escape(&mut self) -> Result<(), String> {
        self.i += 1;
        match self.bump() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(()),
            Some(b'u') => {
                let hex = self.b.get(self.i..self.i + 4);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(self.error("invalid \\u escape"));
                }
                self.i += 4;
                Ok(())
            }
            _ => {
                self.i -= 1;
                Err(self.error("invalid escape"))
            }
        }
    }

    /// An object key (at its opening quote).
    #[inline]
    fn key(&mut self, scratch: &mut String) -> Result<Key<'a>, String> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let at = self.i;
        let (raw, escaped) = self.raw_string()?;
        if !escaped {
            return Ok(Key::Raw(raw));
        }
        unescape(raw, scratch).map_err(|e| format!("{e} in the key at column {}", at + 1))?;
        Ok(Key::Unescaped)
    }

    /// The string at the scanner as text: borrowed from the line, or unescaped into `scratch`.
    fn text<'s>(&mut self, scratch: &'s mut String) -> Result<&'s str, String>
    where
        'a: 's,
    {
        let (raw, escaped) = self.raw_string()?;
        if escaped {
            unescape(raw, scratch)?;
            Ok(scratch.as_str())
        } else {
            std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8: {e}"))
        }
    }

    /// The number at the scanner, checked against JSON's grammar: its text and whether it is
    /// an integer (no fraction, no exponent).
    #[inline]
    fn number(&mut self) -> Result<(&'a [u8], bool), String> {
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => {
                self.i = i;
                return Err(self.error("expected a JSON value"));
            }
        }
        let integer = !matches!(b.get(i), Some(b'.' | b'e' | b'E'));
        self.i = i;
        if !integer {
            self.fraction_and_exponent()?;
        }
        Ok((&b[start..self.i], integer))
    }

    /// The `.ddd` and `e±ddd` parts of a number, if there.
    fn fraction_and_exponent(&mut self) -> Result<(), String> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
            s.i - from
        };
        if self.eat(b'.') && digits(self) == 0 {
            return Err(self.error("expected a digit after `.`"));
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(())
    }

    /// [`Scanner::value`] written into `slot`: integers, timestamps in the common form and
    /// strings are written there by the branch that reads them. A value returned from a call
    /// is written in parts and read back whole, which stalled the copy (a failed
    /// store-to-load forward, twice per value).
    #[inline]
    fn value_into(
        &mut self,
        ty: DataType,
        scratch: &mut String,
        slot: &mut Scalar,
    ) -> Result<(), String> {
        match (self.peek(), ty) {
            (Some(b'"'), DataType::TimestampMillis) => {
                // The canonical form (what Flink and the generator write) needs no search for
                // the closing quote: it is 23 bytes long.
                let canonical = self.b.get(self.i + 1..self.i + 25).and_then(|t| {
                    let (text, quote) = t.split_at(23);
                    (quote == b"\"").then_some(text)?.try_into().ok()
                });
                if let Some(ms) =
                    canonical.and_then(streamcore_nexmark::json::parse_canonical_date_time)
                {
                    self.i += 25;
                    *slot = Scalar::TimestampMs(ms);
                    return Ok(());
                }
                let at = self.i;
                let (raw, _) = self.raw_string()?;
                if let Some(ms) = streamcore_nexmark::json::parse_date_time_bytes(raw) {
                    *slot = Scalar::TimestampMs(ms);
                    return Ok(());
                }
                self.i = at;
            }
            (Some(b'"'), DataType::Varchar) => {
                *slot = Scalar::str(self.text(scratch)?);
                return Ok(());
            }
            (Some(b'-' | b'0'..=b'9'), DataType::BigInt) => {
                if let Some((v, end)) = short_integer(self.b, self.i) {
                    self.i = end;
                    *slot = Scalar::Int(v);
                    return Ok(());
                }
                let (text, integer) = self.number()?;
                if let Some(v) = integer.then(|| parse_i64(text)).flatten() {
                    *slot = Scalar::Int(v);
                    return Ok(());
                }
                *slot = number(text, integer, ty)?;
                return Ok(());
            }
            _ => {}
        }
        *slot = self.value(ty, scratch)?;
        Ok(())
    }

    /// The value at the scanner as a value of type `ty`. The error says what is wrong, without
    /// the field (the caller adds it).
    fn value(&mut self, ty: DataType, scratch: &mut String) -> Result<Scalar, String> {
        match self.peek() {
            Some(b'"') => {
                if ty == DataType::TimestampMillis {
                    // The common form straight from the bytes; anything else goes the long way.
                    let at = self.i;
                    let (raw, _) = self.raw_string()?;
                    if let Some(ms) = streamcore_nexmark::json::parse_date_time_bytes(raw) {
                        return Ok(Scalar::TimestampMs(ms));
                    }
                    self.i = at;
                }
                let v = self.text(scratch)?;
                match ty {
                    DataType::Varchar => Ok(Scalar::str(v)),
                    DataType::Bytes => crate::format::bytes_of_base64(v).map(Scalar::Bytes),
                    DataType::TimestampMillis => parse_timestamp_ms(v)
                        .map(Scalar::TimestampMs)
                        .ok_or_else(|| format!("expected a timestamp, got \"{v}\"")),
                    t => parse_as(v, t).ok_or_else(|| format!("expected {t}, got \"{v}\"")),
                }
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(Scalar::Null)
            }
            Some(b't') => {
                self.literal(b"true")?;
                boolean(true, ty)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                boolean(false, ty)
            }
            Some(b'{') => match ty {
                DataType::Map(m) => self.map(m, scratch),
                _ => Err(format!("expected {ty}, got an object")),
            },
            Some(b'[') => match ty {
                DataType::Array(a) => self.array(a, scratch),
                _ => Err(format!("expected {ty}, got an array")),
            },
            _ => {
                let (text, integer) = self.number()?;
                number(text, integer, ty)
            }
        }
    }

    /// The object at the scanner (at its `{`) as a map: its keys (strings) read as the map's
    /// key type, its values as its value type.
    fn map(&mut self, m: MapType, scratch: &mut String) -> Result<Scalar, String> {
        self.i += 1;
        let mut entries = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(Scalar::map(entries));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.text(scratch)?;
            let key = match m.key() {
                DataType::Varchar => Scalar::str(key),
                t => {
                    parse_as(key, t).ok_or_else(|| format!("expected a {t} key, got \"{key}\""))?
                }
            };
            self.ws();
            if !self.eat(b':') {
                return Err(self.error("expected `:` after an object key"));
            }
            self.ws();
            let value = self
                .value(m.value(), scratch)
                .map_err(|e| format!("key \"{key}\": {e}"))?;
            entries.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Scalar::map(entries));
                }
                _ => return Err(self.error("expected `,` or `}` in an object")),
            }
        }
    }

    /// The array at the scanner (at its `[`), its elements read as the array's element type.
    fn array(&mut self, a: ArrayType, scratch: &mut String) -> Result<Scalar, String> {
        self.i += 1;
        let mut elements = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Ok(Scalar::Array(elements.into()));
        }
        loop {
            self.ws();
            let at = elements.len();
            elements.push(
                self.value(a.element(), scratch)
                    .map_err(|e| format!("element {}: {e}", at + 1))?,
            );
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Scalar::Array(elements.into()));
                }
                _ => return Err(self.error("expected `,` or `]` in an array")),
            }
        }
    }

    /// Skips the value at the scanner, checking its grammar.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        match self.peek() {
            Some(b'"') => self.raw_string().map(|_| ()),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("objects and arrays nested too deeply"));
                }
                self.i += 1;
                self.ws();
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.error("expected a string key"));
                    }
                    self.raw_string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(self.error("expected `:` after an object key"));
                    }
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected `,` or `}` in an object")),
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("objects and arrays nested too deeply"));
                }
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected `,` or `]` in an array")),
                    }
                }
            }
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            _ => self.number().map(|_| ()),
        }
    }
}

/// `a == b` for slices of one length, at least 2 (a quoted key, `""` for an empty one): two
/// overlapping words compared inline up to 16 bytes, not a call into `memcmp`.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    debug_assert!(a.len() == b.len() && a.len() >= 2);
    let n = a.len();
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// Where the first `"` or `\\` of `b` is: eight bytes at a time in a word (most strings are
/// short: a call into a SIMD search costs more than it saves), then by `memchr` (SIMD) past
/// the first 64 bytes.
#[inline]
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = zero_byte(w ^ (ONES * b'"' as u64)) | zero_byte(w ^ (ONES * b'\\' as u64));
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
        if i == 64 {
            return memchr::memchr2(b'"', b'\\', &b[i..]).map(|p| p + i);
        }
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| p + i)
}

fn boolean(v: bool, ty: DataType) -> Result<Scalar, String> {
    match ty {
        DataType::Boolean => Ok(Scalar::Bool(v)),
        DataType::Varchar => Ok(Scalar::str(if v { "true" } else { "false" })),
        t => Err(format!("expected {t}, got a boolean")),
    }
}

/// A JSON number (`text`, an integer if `integer`) as a value of type `ty`: decimals from the
/// text exactly (not through a float), integers without a float in between.
fn number(digits: &[u8], integer: bool, ty: DataType) -> Result<Scalar, String> {
    if integer {
        if let (DataType::BigInt, Some(v)) = (ty, parse_i64(digits)) {
            return Ok(Scalar::Int(v));
        }
    }
    let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
    let int = || {
        if integer {
            parse_i64(digits).ok_or_else(|| format!("{text} is out of the BIGINT range"))
        } else {
            Err(format!("expected {ty}, got the number {text}"))
        }
    };
    match ty {
        DataType::BigInt => int().map(Scalar::Int),
        DataType::TimestampMillis => int().map(Scalar::TimestampMs),
        DataType::TimestampMicros => int().map(Scalar::TimestampUs),
        DataType::Double => text
            .parse::<f64>()
            .map(Scalar::float)
            .map_err(|_| format!("{text} is not a DOUBLE")),
        DataType::Decimal { scale, .. } => {
            let parsed = if integer || !text.contains(['e', 'E']) {
                text.parse::<Decimal>()
            } else {
                Decimal::from_scientific(text)
            };
            let mut d = parsed.map_err(|_| format!("{text} does not fit {ty}"))?;
            d = crate::types::to_scale(d, scale as u32);
            Ok(Scalar::Decimal(d))
        }
        DataType::Varchar => Ok(Scalar::str(text)),
        t => Err(format!("expected {t}, got the number {text}")),
    }
}

/// The JSON integer of at most 18 digits at `at` of `b` (no overflow possible) and where it
/// ends, read in one pass; `None` for anything else (longer, a fraction or an exponent, not a
/// number, a leading zero followed by digits), which the general path then reads.
#[inline]
fn short_integer(b: &[u8], at: usize) -> Option<(i64, usize)> {
    let negative = b.get(at) == Some(&b'-');
    let start = at + usize::from(negative);
    let mut i = start;
    let mut v: i64 = 0;
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
        if i - start == 18 {
            return None;
        }
        v = v * 10 + d as i64;
        i += 1;
    }
    let digits = i - start;
    let leading_zero = digits > 1 && b[start] == b'0';
    if digits == 0 || leading_zero || matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((if negative { -v } else { v }, i))
}

/// An integer's text (JSON grammar already checked) as an `i64`, `None` if out of range.
#[inline]
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    let mut v: i64 = 0;
    for &d in digits {
        let d = (d - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// Unescapes the raw bytes of a string (escapes already checked) into `out`.
fn unescape(raw: &[u8], out: &mut String) -> Result<(), String> {
    out.clear();
    let mut bytes: Vec<u8> = std::mem::take(out).into_bytes();
    let mut i = 0;
    while i < raw.len() {
        let Some(p) = memchr::memchr(b'\\', &raw[i..]) else {
            bytes.extend_from_slice(&raw[i..]);
            break;
        };
        bytes.extend_from_slice(&raw[i..i + p]);
        i += p + 1;
        let c = raw[i];
        i += 1;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => {
                let hi = hex4(&raw[i..i + 4]);
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate: a low one must follow as `\uXXXX`.
                    let lo = match raw.get(i..i + 6) {
                        Some([b'\\', b'u', h @ ..]) => hex4(h),
                        _ => return Err("lone leading surrogate in a \\u escape".into()),
                    };
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("lone leading surrogate in a \\u escape".into());
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let ch = char::from_u32(code)
                    .ok_or_else(|| "lone trailing surrogate in a \\u escape".to_string())?;
                let mut utf8 = [0; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
        };
        bytes.push(simple);
    }
    *out = String::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {}", e.utf8_error()))?;
    Ok(())
}

/// Four hex digits (checked by the scanner) as a number.
fn hex4(h: &[u8]) -> u32 {
    h.iter()
        .fold(0, |v, &d| v * 16 + (d as char).to_digit(16).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(cols: &[(&str, DataType)]) -> JsonLayout {
        JsonLayout::of(
            cols.iter().map(|(n, _)| n.to_string()).collect(),
            cols.iter().map(|(_, t)| *t).collect(),
            |_| true,
        )
    }

    fn decode(l: &JsonLayout, line: &str) -> Result<Vec<Scalar>, String> {
        let mut values = vec![Scalar::Null; l.types.len()];
        l.decode_into(line.as_bytes(), &mut values, &mut String::new())?;
        Ok(values)
    }

    #[test]
    fn keys_are_found_in_any_order_and_however_they_are_written() {
        // The layout's order is x, y, z: lines in that order take the predicted path, the
        // others the search; both give the same columns.
        let l = layout(&[
            ("x", DataType::BigInt),
            ("y", DataType::BigInt),
            ("z", DataType::BigInt),
        ]);
        let want = Ok(vec![Scalar::Int(1), Scalar::Int(2), Scalar::Int(3)]);
        for line in [
            r#"{"x":1,"y":2,"z":3}"#,
            r#"{"z":3,"y":2,"x":1}"#,
            r#"{"y":2,"x":1,"z":3}"#,
            r#"{"x":1,"w":"s","xy":0,"y":2,"zz":{"z":9},"z":3}"#,
            r#"{"\u0078":1,"y":2,"z\u0000":8,"z":3}"#,
            r#"{ "x" : 1 , "y":2,"z":3 }"#,
            r#"{"x":0,"y":2,"z":3,"x":1}"#,
        ] {
            assert_eq!(decode(&l, line), want, "{line}");
        }
        assert!(decode(&l, r#"{"x":1,"y:2}"#).is_err());
        assert!(decode(&l, r#"{"x":1,y":2}"#).is_err());
        // Columns the table has but does not read are skipped, objects of them included,
        // also where a read column shares their object.
        let names = ["a", "o.x", "o.y", "p.z", "p.w", "o"]
            .map(String::from)
            .to_vec();
        let l = JsonLayout::of(names, vec![DataType::BigInt; 6], |i| i == 1);
        assert!(matches!(
            l.root.find(b"a").map(|i| &l.root.entries[i]),
            Some(JsonEntry::Skip)
        ));
        assert!(matches!(
            l.root.find(b"p").map(|i| &l.root.entries[i]),
            Some(JsonEntry::Skip)
        ));
        for line in [
            r#"{"a":[1],"o":{"x":7,"y":"s"},"p":{"z":{},"w":1}}"#,
            r#"{"p":null,"o":{"y":2,"x":7},"a":"t","q":3}"#,
        ] {
            let want = vec![
                Scalar::Null,
                Scalar::Int(7),
                Scalar::Null,
                Scalar::Null,
                Scalar::Null,
                Scalar::Null,
            ];
            assert_eq!(decode(&l, line), Ok(want), "{line}");
        }
        // An empty key (a column `o.`) is predicted as `""`.
        let empty = layout(&[("o.", DataType::BigInt)]);
        assert_eq!(decode(&empty, r#"{"o":{"":4}}"#), Ok(vec![Scalar::Int(4)]));
        // A key that needs an escape in JSON is never taken from its raw bytes.
        let quoted = layout(&[("a\"b", DataType::BigInt)]);
        assert_eq!(decode(&quoted, r#"{"a\"b":5}"#), Ok(vec![Scalar::Int(5)]));
    }

    #[test]
    fn reads_nested_columns_and_skips_the_rest() {
        let l = layout(&[
            ("a", DataType::BigInt),
            ("o.s", DataType::Varchar),
            (
                "o.d",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("f", DataType::Double),
            ("b", DataType::Boolean),
        ]);
        let v = decode(
            &l,
            r#" { "x": [1, {"y": "}\"]"}, -2.5e3, true, null], "o": {"s": "h\u00e9\ud83d\ude00\n", "d": 1.005e1},
                "a": -9223372036854775808, "f": 1E2, "b": false, "o2": {} } "#,
        )
        .unwrap();
        assert_eq!(v[0], Scalar::Int(i64::MIN));
        assert_eq!(v[1], Scalar::str("hé😀\n"));
        assert_eq!(v[2].to_string(), "10.05");
        assert_eq!(v[3], Scalar::float(100.0));
        assert_eq!(v[4], Scalar::Bool(false));
        assert_eq!(decode(&l, r#"{"o": null}"#).unwrap()[1], Scalar::Null);
    }

    #[test]
    fn errors_name_the_field_and_the_column() {
        let l = layout(&[("a", DataType::BigInt), ("o.t", DataType::TimestampMillis)]);
        let e = |line: &str| decode(&l, line).unwrap_err();
        assert_eq!(
            e(r#"{"a":"x"}"#),
            "field `a`: expected BIGINT, got \"x\" at column 6"
        );
        assert_eq!(
            e(r#"{"a":1.5}"#),
            "field `a`: expected BIGINT, got the number 1.5 at column 6"
        );
        assert_eq!(
            e(r#"{"a":99999999999999999999}"#),
            "field `a`: 99999999999999999999 is out of the BIGINT range at column 6"
        );
        assert_eq!(
            e(r#"{"o":{"t":"soon"}}"#),
            "field `o.t`: expected a timestamp, got \"soon\" at column 11"
        );
        assert_eq!(
            e(r#"{"o":5}"#),
            "expected a JSON object or null, found `5` at column 6"
        );
        assert_eq!(
            e(r#"{"z":[1,}"#),
            "expected a JSON value, found `}` at column 9"
        );
        assert_eq!(
            e(r#"{"z":01}"#),
            "expected `,` or `}` in an object, found `1` at column 7"
        );
        assert_eq!(e(r#"{"z":"\q"}"#), "invalid escape, found `q` at column 8");
        assert_eq!(
            e(r#"{"a":1} x"#),
            "trailing characters after the object, found `x` at column 9"
        );
        assert_eq!(
            e(r#"{"a":1"#),
            "expected `,` or `}` in an object, found the end of the line"
        );
        assert_eq!(e(r#"[1]"#), "expected a JSON object, found `[` at column 1");
        assert_eq!(
            e(&format!(
                "{{\"z\":{}1{}}}",
                "[".repeat(200),
                "]".repeat(200)
            ))
            .split(',')
            .next(),
            Some("objects and arrays nested too deeply")
        );
    }

    /// A JSON value of a few kinds, nested.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|v| v.into()),
            (-1e6f64..1e6).prop_map(|v| v.into()),
            "[a-z\"\\\\/\u{e9}\u{1F600}\n\t ]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What a column of type `ty` reads from `v`, by serde_json's reading (the reference).
    fn reference(v: Option<&serde_json::Value>, ty: DataType) -> Option<Scalar> {
        use serde_json::Value as V;
        Some(match (v, ty) {
            (None | Some(V::Null), _) => Scalar::Null,
            (Some(V::String(s)), DataType::Varchar) => Scalar::str(s),
            (Some(V::String(s)), ty) => parse_as(s, ty)?,
            (Some(V::Bool(b)), DataType::Boolean) => Scalar::Bool(*b),
            (Some(V::Bool(b)), DataType::Varchar) => Scalar::str(&b.to_string()),
            (Some(V::Number(n)), DataType::Varchar) => Scalar::str(&n.to_string()),
            (Some(V::Number(n)), DataType::BigInt) => Scalar::Int(n.as_i64()?),
            (Some(V::Number(n)), DataType::Double) => Scalar::float(n.as_f64()?),
            (Some(V::Array(items)), DataType::Array(a)) => Scalar::Array(
                items
                    .iter()
                    .map(|v| reference(Some(v), a.element()))
                    .collect::<Option<_>>()?,
            ),
            (Some(V::Object(o)), DataType::Map(m)) => Scalar::map(
                o.iter()
                    .map(|(k, v)| Some((parse_as(k, m.key())?, reference(Some(v), m.value())?)))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    proptest! {
        /// The word-at-a-time search finds what a byte-by-byte one finds, at every length
        /// (the word loop, its tail, and the hand-over to memchr past 64 bytes).
        #[test]
        fn finds_the_first_quote_or_backslash(
            b in prop::collection::vec(prop_oneof![8 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')], 0..200),
        ) {
            let want = b.iter().position(|&c| c == b'"' || c == b'\\');
            prop_assert_eq!(quote_or_backslash(&b), want);
            let plain: Vec<u8> = b.iter().map(|&c| if c == b'"' || c == b'\\' { b'x' } else { c }).collect();
            prop_assert_eq!(quote_or_backslash(&plain), None);
        }

        /// The one-pass integer reader agrees with the general one where it answers, and
        /// answers for every integer of up to 18 digits.
        #[test]
        fn short_integers_are_read_as_the_general_path_reads_them(
            text in "-?[0-9]{0,20}[.eE,}x ]?",
            v in any::<i64>(),
        ) {
            let mut s = Scanner { b: text.as_bytes(), i: 0 };
            let general = s.number().ok().and_then(|(t, int)| int.then(|| parse_i64(t)).flatten());
            if let Some((fast, end)) = short_integer(text.as_bytes(), 0) {
                prop_assert_eq!(Some(fast), general, "{}", text);
                prop_assert_eq!(end, s.i);
            }
            let written = v.to_string();
            let digits = written.trim_start_matches('-').len();
            prop_assert_eq!(short_integer(written.as_bytes(), 0).is_some(), digits <= 18);
        }

        /// The inline comparison of quoted keys is `==`, at every length it is used for.
        #[test]
        fn short_eq_is_equality(
            a in prop::collection::vec(0u8..3, 2..40),
            flip in any::<prop::sample::Index>(),
        ) {
            prop_assert!(short_eq(&a, &a.clone()));
            let mut b = a.clone();
            let at = flip.index(b.len());
            b[at] ^= 1;
            prop_assert!(!short_eq(&a, &b));
        }

        /// Every line serde_json writes decodes to what serde_json reads back, for columns of
        /// every kind (maps and arrays of numbers and of strings included) at the top level and one level
        /// down; and a line cut short is an error.
        #[test]
        fn agrees_with_serde_json(
            fields in prop::collection::btree_map("[a-c]{1,2}", json_value(), 0..6),
            pretty in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let object = serde_json::Value::Object(fields.clone().into_iter().collect());
            let line = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                serde_json::to_string(&object).unwrap()
            };
            let mut cols = Vec::new();
            for key in ["a", "b", "ab", "c"] {
                let maps = [
                    DataType::Map(MapType::new(DataType::Varchar, DataType::BigInt).unwrap()),
                    DataType::Map(MapType::new(DataType::Varchar, DataType::Varchar).unwrap()),
                    DataType::Array(ArrayType::new(DataType::BigInt).unwrap()),
                    DataType::Array(ArrayType::new(DataType::Varchar).unwrap()),
                ];
                for ty in [DataType::Varchar, DataType::BigInt, DataType::Double, DataType::Boolean]
                    .into_iter()
                    .chain(maps)
                {
                    cols.push((key.to_string(), ty));
                    cols.push((format!("{key}.a"), ty));
                }
            }
            // One layout per column: a key is read as one type at a time.
            for (name, ty) in cols {
                let l = JsonLayout::of(vec![name.clone()], vec![ty], |_| true);
                let mut parts = name.split('.');
                let outer = fields.get(parts.next().unwrap());
                let v = match parts.next() {
                    None => outer,
                    Some(inner) => match outer {
                        Some(serde_json::Value::Object(o)) => o.get(inner),
                        Some(serde_json::Value::Null) | None => None,
                        Some(_) => {
                            prop_assert!(decode(&l, &line).is_err());
                            continue;
                        }
                    },
                };
                match reference(v, ty) {
                    Some(want) => prop_assert_eq!(decode(&l, &line), Ok(vec![want]), "{} {}", name, line),
                    None => prop_assert!(decode(&l, &line).is_err(), "{} {} {:?}", name, line, v),
                }
            }
            let l = JsonLayout::of(vec!["a".into()], vec![DataType::Varchar], |_| false);
            let cut = cut.index(line.len());
            if let Some(prefix) = line.get(..cut) {
                prop_assert!(decode(&l, prefix).is_err(), "{}", prefix);
            }
        }
    }
}
