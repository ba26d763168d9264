//! Flink-style connector options (`'key' = 'value'` maps, as in a SQL `WITH` clause): reading
//! them with errors that name the connector and the option, Flink's duration (`10 s`,
//! `15 min`) and memory-size (`128MB`) syntax, and refusing options nobody reads (a typo
//! should not be silently ignored).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use streamcore::{Result, StreamError};

/// An option map being read by one connector: remembers which keys were read, so that
/// [`Options::finish`] can refuse the others.
pub struct Options<'a> {
    connector: &'static str,
    map: &'a BTreeMap<String, String>,
    read: BTreeSet<&'a str>,
}

impl<'a> Options<'a> {
    /// Starts reading `map` for `connector` (named in errors).
    pub fn new(connector: &'static str, map: &'a BTreeMap<String, String>) -> Self {
        // `connector` itself is the caller's to check.
        let mut read = BTreeSet::new();
        if let Some((k, _)) = map.get_key_value("connector") {
            read.insert(k.as_str());
        }
        Options {
            connector,
            map,
            read,
        }
    }

    /// An error about option `key`.
    pub fn error(&self, key: &str, why: impl std::fmt::Display) -> StreamError {
        StreamError::Config(format!("{} option `{key}`: {why}", self.connector))
    }

    /// The value of `key`, if set.
    pub fn get(&mut self, key: &str) -> Option<&'a str> {
        let (k, v) = self.map.get_key_value(key)?;
        self.read.insert(k.as_str());
        Some(v.as_str())
    }

    /// The value of `key`; an error naming it when missing.
    pub fn required(&mut self, key: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| self.error(key, "is required"))
    }

    /// `key` parsed by `parse`, whose error is wrapped with the option's name.
    pub fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|e| self.error(key, e)),
        }
    }

    /// A duration option (Flink's syntax: `100 ms`, `10 s`, `15 min`, `1 h`, `1 d`).
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        self.parsed(key, parse_duration)
    }

    /// A memory-size option (Flink's syntax: `128MB`, `64 kb`, `1gb`; binary units).
    pub fn memory_size(&mut self, key: &str) -> Result<Option<u64>> {
        self.parsed(key, parse_memory_size)
    }

    /// An integer option.
    pub fn integer<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>> {
        self.parsed(key, |v| {
            v.trim()
                .parse()
                .map_err(|_| format!("`{v}` is not a whole number"))
        })
    }

    /// A boolean option (`true` / `false`).
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        self.parsed(key, |v| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{v}` is not true or false")),
        })
    }

    /// Every option whose key starts with `prefix`, as (rest of the key, value), marked read.
    pub fn with_prefix(&mut self, prefix: &str) -> Vec<(&'a str, &'a str)> {
        let mut out = Vec::new();
        for (k, v) in self.map.range(prefix.to_string()..) {
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            self.read.insert(k.as_str());
            out.push((rest, v.as_str()));
        }
        out
    }

    /// Refuses the options no one read, naming them.
    pub fn finish(self) -> Result<()> {
        let unknown: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| !self.read.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(StreamError::Config(format!(
                "{}: unsupported options: {}",
                self.connector,
                unknown.join(", ")
            )))
        }
    }
}

/// Parses a duration in Flink's syntax: a number and a unit (`ms`, `s`/`sec`/`seconds`,
/// `min`/`m`/`minutes`, `h`/`hours`, `d`/`days`); a bare number is milliseconds.
///
/// ```
/// use streamcore_connectors::options::parse_duration;
/// assert_eq!(parse_duration("15 min").unwrap().as_secs(), 900);
/// assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 500 ms, 10 s, 15 min, 1 h)"))?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (ms, s, min, h, d)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(value * seconds))
}

/// Parses a memory size in Flink's syntax: a number and a unit (`b`, `kb`/`k`, `mb`/`m`,
/// `gb`/`g`, `tb`/`t`; binary: 1 kb = 1024 bytes); a bare number is bytes.
///
/// ```
/// use streamcore_connectors::options::parse_memory_size;
/// assert_eq!(parse_memory_size("128MB").unwrap(), 128 << 20);
/// assert_eq!(parse_memory_size("512").unwrap(), 512);
/// ```
pub fn parse_memory_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a memory size (like 128mb, 1gb)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (b, kb, mb, gb, tb)"
            ))
        }
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_options_are_named() {
        let map: BTreeMap<String, String> = [
            ("connector", "redis"),
            ("url", "x"),
            ("ttl", "1 s"),
            ("kye", "k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut o = Options::new("redis", &map);
        assert_eq!(o.get("url"), Some("x"));
        assert_eq!(o.duration("ttl").unwrap(), Some(Duration::from_secs(1)));
        let missing = o.required("key").unwrap_err().to_string();
        assert!(
            missing.contains("redis option `key`: is required"),
            "{missing}"
        );
        let unknown = o.finish().unwrap_err().to_string();
        assert!(unknown.ends_with("unsupported options: kye"), "{unknown}");
    }

    #[test]
    fn flink_durations_and_sizes() {
        assert_eq!(parse_duration("30 s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1 d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1.5min").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_memory_size("1 kb").unwrap(), 1024);
        assert_eq!(parse_memory_size("2gb").unwrap(), 2 << 30);
        assert!(parse_memory_size("1.5mb").is_err());
    }
}
