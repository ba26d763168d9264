//! [`SinkMetrics`]: the live counters of the Redis, webhook and Parquet sinks — records and
//! bytes out, batches (round trips, requests, files), retries, errors and commit (flush)
//! latency, plus a few counters of one sink kind — shared by all parallel writers of a sink,
//! updated once per batch with relaxed atomic adds, and reported in the job summary through
//! [`streamcore::metrics::ConnectorMetrics`].

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Which sink the counters belong to: selects what [`SinkMetrics::report`] shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// The Redis sink: batches are pipelined round trips, commits are their latency.
    Redis,
    /// The webhook sink: batches are HTTP requests, commits are request latencies.
    Webhook,
    /// The Parquet sink: batches are row groups, commits are checkpoint commits of files.
    Parquet,
}

/// Live counters of one sink (all its writers).
#[derive(Debug)]
pub struct SinkMetrics {
    kind: SinkKind,
    /// Records written (changes applied, alerts sent, rows written).
    pub records_out: AtomicU64,
    /// Bytes sent (Redis commands, HTTP bodies) or written (Parquet files, compressed).
    pub bytes_out: AtomicU64,
    /// Round trips (Redis pipelines), requests (webhook) or row groups (Parquet).
    pub batches: AtomicU64,
    /// Attempts repeated after a failure (reconnects, HTTP retries).
    pub retries: AtomicU64,
    /// Failures: errors that failed the job, or requests that exhausted their retries.
    pub errors: AtomicU64,
    /// Redis: deletes applied (from `-D`, or `-U` not followed by a `+U` of the same key).
    pub deletes: AtomicU64,
    /// Webhook: alerts dropped as duplicates within the de-duplication window.
    pub deduplicated: AtomicU64,
    /// Webhook: alerts sent to the dead-letter output after exhausting their retries.
    pub dead_lettered: AtomicU64,
    /// Webhook: milliseconds spent waiting for the rate limit.
    pub rate_limited_ms: AtomicU64,
    /// Parquet: files committed (made visible).
    pub files_committed: AtomicU64,
    /// Commits (Redis round trips, webhook requests, Parquet checkpoint commits) timed.
    pub commits: AtomicU64,
    /// Microseconds of the last commit.
    pub commit_us_last: AtomicU64,
    /// Microseconds of the slowest commit.
    pub commit_us_max: AtomicU64,
    /// Microseconds of all commits.
    pub commit_us_total: AtomicU64,
}

impl SinkMetrics {
    /// Zeroed counters of a `kind` sink.
    pub fn new(kind: SinkKind) -> Self {
        SinkMetrics {
            kind,
            records_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rate_limited_ms: AtomicU64::new(0),
            files_committed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_us_last: AtomicU64::new(0),
            commit_us_max: AtomicU64::new(0),
            commit_us_total: AtomicU64::new(0),
        }
    }

    /// Records one commit's latency.
    pub fn commit_took(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.commits.fetch_add(1, Relaxed);
        self.commit_us_last.store(us, Relaxed);
        self.commit_us_max.fetch_max(us, Relaxed);
        self.commit_us_total.fetch_add(us, Relaxed);
    }

    /// The counters as a JSON object (only those that apply to this kind of sink).
    pub fn snapshot(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: &AtomicU64| {
            m.insert(k.to_string(), Value::from(v.load(Relaxed)));
        };
        put("records_out", &self.records_out);
        put("bytes_out", &self.bytes_out);
        let (batches, commits) = match self.kind {
            SinkKind::Redis => ("round_trips", "round_trip"),
            SinkKind::Webhook => ("requests", "request"),
            SinkKind::Parquet => ("row_groups", "commit"),
        };
        put(batches, &self.batches);
        put("retries", &self.retries);
        put("errors", &self.errors);
        match self.kind {
            SinkKind::Redis => put("deletes", &self.deletes),
            SinkKind::Webhook => {
                put("deduplicated", &self.deduplicated);
                put("dead_lettered", &self.dead_lettered);
                put("rate_limited_ms", &self.rate_limited_ms);
            }
            SinkKind::Parquet => put("files_committed", &self.files_committed),
        }
        if self.kind == SinkKind::Parquet {
            // (For the others, every batch is timed: the count is the batches'.)
            put("commits", &self.commits);
        }
        put(&format!("{commits}_us_last"), &self.commit_us_last);
        put(&format!("{commits}_us_max"), &self.commit_us_max);
        let n = self.commits.load(Relaxed);
        let avg = self
            .commit_us_total
            .load(Relaxed)
            .checked_div(n)
            .unwrap_or(0);
        m.insert(format!("{commits}_us_avg"), Value::from(avg));
        Value::Object(m)
    }
}

impl streamcore::metrics::ConnectorMetrics for SinkMetrics {
    fn report(&self) -> Value {
        self.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_counters_of_its_kind() {
        let m = SinkMetrics::new(SinkKind::Webhook);
        m.records_out.fetch_add(3, Relaxed);
        m.commit_took(Duration::from_micros(10));
        m.commit_took(Duration::from_micros(30));
        let r = m.snapshot();
        assert_eq!(r["records_out"], 3);
        assert_eq!(
            r["requests"], 0,
            "requests are counted apart from their latency"
        );
        assert_eq!(r["request_us_max"], 30);
        assert_eq!(r["request_us_avg"], 20);
        assert!(r.get("files_committed").is_none());
    }
}
