//! `/metrics`: the job's metrics in the Prometheus text format (0.0.4), encoded by the
//! `prometheus-client` crate from a snapshot taken at each scrape.
//!
//! Names follow Prometheus conventions (`streamcore_` prefix, base units, `_total` counters);
//! labels are `job`, `operator_id`, `operator_name`, `subtask` (and `exchange`, `split`,
//! `connector`, `topic`, `partition` where they apply). docs/operations.md lists them all.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use streamcore::metrics::{JobDetail, MetricsReader, NodeKind};
use streamcore::{JobSummary, Timestamp};

/// One scrape's snapshot.
#[derive(Debug)]
struct Snapshot {
    summary: JobSummary,
    detail: JobDetail,
    running: bool,
    now_ms: i64,
}

type Labels = Vec<(&'static str, String)>;

/// Writes one metric family: a descriptor, then one sample per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    family(
        e,
        name,
        help,
        unit,
        MetricType::Counter,
        samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    family(
        e,
        name,
        help,
        unit,
        MetricType::Gauge,
        samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

/// A watermark as seconds, when it is a real time (not "none yet" nor "end of input").
fn watermark_secs(w: Option<Timestamp>) -> Option<f64> {
    w.filter(|&w| w != Timestamp::MAX)
        .map(|w| w.millis() as f64 / 1e3)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let job = &self.summary.job;
        let jl = || -> Labels { vec![("job", job.clone())] };
        gauge(
            &mut e,
            "streamcore_job_running",
            "1 while the job runs, 0 once it ended.",
            None,
            [(jl(), if self.running { 1.0 } else { 0.0 })],
        )?;
        gauge(
            &mut e,
            "streamcore_job_uptime",
            "Time since the job started (or its whole run, once ended).",
            Some(&Unit::Seconds),
            [(jl(), self.summary.duration_ms / 1e3)],
        )?;
        counter(
            &mut e,
            "streamcore_job_records_ingested",
            "Records read by all sources.",
            None,
            [(jl(), self.summary.events_ingested as f64)],
        )?;
        counter(
            &mut e,
            "streamcore_job_records_emitted",
            "Records written by all sinks.",
            None,
            [(jl(), self.summary.events_emitted as f64)],
        )?;
        counter(
            &mut e,
            "streamcore_job_records_late",
            "Records that arrived after their windows (dropped or sent to a late output).",
            None,
            [(jl(), self.summary.events_late as f64)],
        )?;
        counter(
            &mut e,
            "streamcore_job_records_failed",
            "Records rejected (bad input or a failing function), whatever the error policy.",
            None,
            [(jl(), self.summary.events_failed as f64)],
        )?;
        counter(
            &mut e,
            "streamcore_job_records_dead_lettered",
            "Records written to the dead-letter sink.",
            None,
            [(jl(), self.summary.events_dead_lettered as f64)],
        )?;

        // Per operator and subtask.
        let ops = &self.detail.operators;
        let per_subtask = |f: &dyn Fn(&streamcore::metrics::SubtaskDetail) -> Option<f64>| {
            let mut out = Vec::new();
            for op in ops {
                for s in &op.subtasks {
                    if let Some(v) = f(s) {
                        out.push((
                            vec![
                                ("job", job.clone()),
                                ("operator_id", op.id.clone()),
                                ("operator_name", op.name.clone()),
                                ("subtask", s.subtask.to_string()),
                            ],
                            v,
                        ));
                    }
                }
            }
            out
        };
        counter(
            &mut e,
            "streamcore_operator_records_in",
            "Records into the operator instance (for a source: records read).",
            None,
            per_subtask(&|s| Some(s.records_in as f64)),
        )?;
        counter(
            &mut e,
            "streamcore_operator_records_out",
            "Records out of the operator instance on its main output.",
            None,
            per_subtask(&|s| Some(s.records_out as f64)),
        )?;
        counter(
            &mut e,
            "streamcore_operator_records_failed",
            "Records the operator instance rejected.",
            None,
            per_subtask(&|s| Some(s.failed as f64)),
        )?;
        counter(
            &mut e,
            "streamcore_operator_processing",
            "Time spent in the operator instance's own code.",
            Some(&Unit::Seconds),
            per_subtask(&|s| Some(s.processing_time_ms / 1e3)),
        )?;
        counter(
            &mut e,
            "streamcore_operator_late_records",
            "Records that arrived after their windows expired.",
            None,
            per_subtask(&|s| Some(s.late_records as f64)),
        )?;
        gauge(
            &mut e,
            "streamcore_operator_state_keys",
            "Keys (or key-window pairs) in the instance's state.",
            None,
            per_subtask(&|s| Some(s.state_keys as f64)),
        )?;
        gauge(
            &mut e,
            "streamcore_operator_state",
            "Estimated size of the instance's state.",
            Some(&Unit::Bytes),
            per_subtask(&|s| Some(s.state_bytes as f64)),
        )?;
        gauge(
            &mut e,
            "streamcore_operator_watermark",
            "The instance's current watermark, as event-time seconds since the Unix epoch \
             (absent before the first and after the end of input).",
            Some(&Unit::Seconds),
            per_subtask(&|s| watermark_secs(s.watermark)),
        )?;
        let now = self.now_ms as f64 / 1e3;
        gauge(
            &mut e,
            "streamcore_operator_watermark_lag",
            "Wall-clock time minus the instance's watermark.",
            Some(&Unit::Seconds),
            per_subtask(&|s| watermark_secs(s.watermark).map(|w| now - w)),
        )?;
        gauge(
            &mut e,
            "streamcore_operator_idle",
            "1 when the instance's input is idle (left out of watermarks downstream).",
            None,
            per_subtask(&|s| Some(if s.idle { 1.0 } else { 0.0 })),
        )?;
        let mut splits = Vec::new();
        let mut split_idle = Vec::new();
        let mut split_age = Vec::new();
        for op in ops.iter().filter(|o| o.kind == NodeKind::Source) {
            for s in &op.subtasks {
                for sp in &s.splits {
                    let labels = vec![
                        ("job", job.clone()),
                        ("operator_id", op.id.clone()),
                        ("operator_name", op.name.clone()),
                        ("subtask", s.subtask.to_string()),
                        ("split", sp.split.to_string()),
                    ];
                    if let Some(w) = watermark_secs(sp.watermark) {
                        splits.push((labels.clone(), w));
                    }
                    split_idle.push((labels.clone(), if sp.idle { 1.0 } else { 0.0 }));
                    split_age.push((labels, sp.last_record_ago_ms as f64 / 1e3));
                }
            }
        }
        gauge(
            &mut e,
            "streamcore_source_split_watermark",
            "What one source split allows the watermark to be (event-time seconds).",
            Some(&Unit::Seconds),
            splits,
        )?;
        gauge(
            &mut e,
            "streamcore_source_split_idle",
            "1 when the split is past its idle timeout.",
            None,
            split_idle,
        )?;
        gauge(
            &mut e,
            "streamcore_source_split_last_record_age",
            "Time since the split's last record.",
            Some(&Unit::Seconds),
            split_age,
        )?;
        // Operators' own counters and gauges.
        let mut own = Vec::new();
        for op in &self.summary.operators {
            let id = ops
                .iter()
                .find(|o| o.name == op.name)
                .map_or_else(String::new, |o| o.id.clone());
            for (name, v) in &op.metrics {
                own.push((
                    vec![
                        ("job", job.clone()),
                        ("operator_id", id.clone()),
                        ("operator_name", op.name.clone()),
                        ("metric", name.clone()),
                    ],
                    *v as f64,
                ));
            }
        }
        gauge(
            &mut e,
            "streamcore_operator_metric",
            "An operator's own counters and gauges (TaskContext::counter/gauge), summed over \
             its instances.",
            None,
            own,
        )?;

        // Exchanges: backpressure. A fused exchange (run in its senders' task) has no queue:
        // it reports what it carried, not fill, capacity or blocking.
        let ex = &self.summary.exchanges;
        let queued = || ex.iter().filter(|x| !x.fused);
        let el = |name: &str| -> Labels { vec![("job", job.clone()), ("exchange", name.into())] };
        counter(
            &mut e,
            "streamcore_exchange_records_sent",
            "Records sent over the exchange.",
            None,
            ex.iter().map(|x| (el(&x.name), x.events_sent as f64)),
        )?;
        counter(
            &mut e,
            "streamcore_exchange_batches_sent",
            "Batches sent over the exchange.",
            None,
            ex.iter().map(|x| (el(&x.name), x.batches_sent as f64)),
        )?;
        counter(
            &mut e,
            "streamcore_exchange_blocked",
            "Time senders spent blocked on full queues (backpressure).",
            Some(&Unit::Seconds),
            queued().map(|x| (el(&x.name), x.blocked_ms / 1e3)),
        )?;
        gauge(
            &mut e,
            "streamcore_exchange_queue_fill_mean_ratio",
            "Mean fill of the target queue at each send, 0 to 1.",
            None,
            queued().map(|x| (el(&x.name), x.mean_fill)),
        )?;
        gauge(
            &mut e,
            "streamcore_exchange_queue_fill_max_ratio",
            "Highest fill of a target queue seen, 0 to 1 (1: backpressure).",
            None,
            queued().map(|x| (el(&x.name), x.max_fill)),
        )?;
        gauge(
            &mut e,
            "streamcore_exchange_queue_capacity_batches",
            "Capacity of each receiving queue, in batches.",
            None,
            queued().map(|x| (el(&x.name), x.capacity_batches as f64)),
        )?;

        // Checkpoints.
        if let Some(c) = &self.summary.checkpoints {
            counter(
                &mut e,
                "streamcore_checkpoints_completed",
                "Checkpoints and savepoints completed.",
                None,
                [(jl(), c.completed as f64)],
            )?;
            counter(
                &mut e,
                "streamcore_checkpoints_failed",
                "Checkpoints that failed.",
                None,
                [(jl(), c.failed as f64)],
            )?;
            gauge(
                &mut e,
                "streamcore_checkpoint_last_duration",
                "Trigger-to-complete time of the last checkpoint.",
                Some(&Unit::Seconds),
                [(jl(), c.last_duration_ms / 1e3)],
            )?;
            gauge(
                &mut e,
                "streamcore_checkpoint_last_alignment",
                "The longest barrier alignment of a task in the last checkpoint.",
                Some(&Unit::Seconds),
                [(jl(), c.last_alignment_ms / 1e3)],
            )?;
            gauge(
                &mut e,
                "streamcore_checkpoint_last_size",
                "State written by the last checkpoint.",
                Some(&Unit::Bytes),
                [(jl(), c.last_size_bytes as f64)],
            )?;
            let last = self.detail.checkpoint_history.last();
            gauge(
                &mut e,
                "streamcore_checkpoint_last_completed_timestamp",
                "When the last checkpoint completed (seconds since the Unix epoch).",
                Some(&Unit::Seconds),
                last.map(|l| (jl(), l.completed_at_ms as f64 / 1e3)),
            )?;
            gauge(
                &mut e,
                "streamcore_checkpoint_last_age",
                "Time since the last checkpoint completed.",
                Some(&Unit::Seconds),
                last.map(|l| (jl(), (self.now_ms - l.completed_at_ms) as f64 / 1e3)),
            )?;
        }

        // Connectors: Kafka consumer lag, then every other numeric figure they report.
        let mut lag = Vec::new();
        let mut other = Vec::new();
        for c in &self.summary.connectors {
            let Some(fields) = c.metrics.as_object() else {
                continue;
            };
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("lag", serde_json::Value::Object(parts)) => {
                        for (tp, l) in parts {
                            let (topic, partition) = tp.rsplit_once('/').unwrap_or((tp, ""));
                            lag.push((
                                vec![
                                    ("job", job.clone()),
                                    ("connector", c.name.clone()),
                                    ("topic", topic.to_string()),
                                    ("partition", partition.to_string()),
                                ],
                                l.as_f64().unwrap_or(0.0),
                            ));
                        }
                    }
                    (_, v) if v.is_number() => other.push((
                        vec![
                            ("job", job.clone()),
                            ("connector", c.name.clone()),
                            ("metric", key.clone()),
                        ],
                        v.as_f64().unwrap_or(0.0),
                    )),
                    _ => {}
                }
            }
        }
        gauge(
            &mut e,
            "streamcore_kafka_consumer_lag",
            "Kafka consumer lag per topic partition, in records (as of the last statistics).",
            None,
            lag,
        )?;
        gauge(
            &mut e,
            "streamcore_connector_metric",
            "A source's or sink's own figures (records, bytes, transactions, commits…).",
            None,
            other,
        )?;
        Ok(())
    }
}

/// The job's metrics now, in the Prometheus text format.
pub(crate) fn render(reader: &MetricsReader, running: bool) -> Result<String, std::fmt::Error> {
    let snapshot = Snapshot {
        // Detail first: its counters are then never above the summary's totals.
        detail: reader.detail(),
        summary: reader.summary(),
        running,
        now_ms: super::watermarks::now_ms(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The metrics of several jobs in one exposition: each family once (its `# HELP` and
/// `# TYPE` lines), with the samples of every job (told apart by the `job` label) under it.
pub(crate) fn render_all(jobs: &[(&MetricsReader, bool)]) -> Result<String, std::fmt::Error> {
    if let [(reader, running)] = jobs {
        return render(reader, *running);
    }
    let texts = jobs
        .iter()
        .map(|(reader, running)| render(reader, *running))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge_expositions(&texts))
}

/// Merges Prometheus text expositions: families in the order first seen, each with its
/// descriptor once and all its samples; one `# EOF` at the end.
fn merge_expositions(texts: &[String]) -> String {
    // (family name, descriptor lines, sample lines)
    let mut families: Vec<(String, String, String)> = Vec::new();
    let mut eof = false;
    for text in texts {
        let mut current: Option<usize> = None;
        let mut new_family = false;
        for line in text.lines() {
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("").to_string();
                match families.iter().position(|(n, _, _)| *n == name) {
                    Some(i) => {
                        current = Some(i);
                        new_family = false;
                    }
                    None => {
                        families.push((name, String::new(), String::new()));
                        current = Some(families.len() - 1);
                        new_family = true;
                    }
                }
            }
            let Some(i) = current else { continue };
            let (_, descriptor, samples) = &mut families[i];
            let target = if line.starts_with('#') {
                if !new_family {
                    continue;
                }
                descriptor
            } else {
                samples
            };
            target.push_str(line);
            target.push('\n');
        }
    }
    let mut out = String::with_capacity(texts.iter().map(String::len).sum());
    for (_, descriptor, samples) in &families {
        out.push_str(descriptor);
        out.push_str(samples);
    }
    if eof {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::metrics::ConnectorSummary;

    #[test]
    fn expositions_merge_by_family() {
        let a = "# HELP x_total X.\n# TYPE x_total counter\nx_total{job=\"a\"} 1\n# HELP y Y.\n# TYPE y gauge\ny{job=\"a\"} 2\n# EOF\n";
        let b = "# HELP x_total X.\n# TYPE x_total counter\nx_total{job=\"b\"} 3\n# HELP z Z.\n# TYPE z gauge\nz{job=\"b\"} 4\n# EOF\n";
        assert_eq!(
            merge_expositions(&[a.to_string(), b.to_string()]),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{job=\"a\"} 1\nx_total{job=\"b\"} 3\n# HELP y Y.\n# TYPE y gauge\ny{job=\"a\"} 2\n# HELP z Z.\n# TYPE z gauge\nz{job=\"b\"} 4\n# EOF\n"
        );
        assert_eq!(merge_expositions(&[]), "");
    }

    fn empty_detail() -> JobDetail {
        JobDetail {
            job: "j".into(),
            finished: false,
            duration_ms: 1000.0,
            graph: None,
            operators: Vec::new(),
            exchanges: Vec::new(),
            checkpoint_history: Vec::new(),
        }
    }

    #[test]
    fn kafka_lag_and_connector_figures_become_labelled_gauges() {
        let summary = JobSummary {
            job: "j".into(),
            duration_ms: 1000.0,
            events_ingested: 5,
            events_emitted: 4,
            events_filtered: 1,
            events_late: 0,
            events_failed: 0,
            events_dead_lettered: 2,
            events_per_second: 5.0,
            operators: Vec::new(),
            exchanges: Vec::new(),
            checkpoints: None,
            connectors: vec![ConnectorSummary {
                name: "bids".into(),
                metrics: serde_json::json!({
                    "records_in": 5,
                    "lag": {"bids/3": 42, "bids/0": 0},
                    "total_lag": 42,
                    "endpoint": "not a number: left out",
                }),
            }],
        };
        let snapshot = Snapshot {
            summary,
            detail: empty_detail(),
            running: true,
            now_ms: 0,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for line in [
            "# TYPE streamcore_kafka_consumer_lag gauge",
            "streamcore_kafka_consumer_lag{job=\"j\",connector=\"bids\",topic=\"bids\",partition=\"3\"} 42",
            "streamcore_kafka_consumer_lag{job=\"j\",connector=\"bids\",topic=\"bids\",partition=\"0\"} 0",
            "streamcore_connector_metric{job=\"j\",connector=\"bids\",metric=\"records_in\"} 5",
            "streamcore_connector_metric{job=\"j\",connector=\"bids\",metric=\"total_lag\"} 42",
            "streamcore_job_records_dead_lettered_total{job=\"j\"} 2",
            "streamcore_job_running{job=\"j\"} 1",
        ] {
            assert!(
                out.lines().any(|l| l == line || l == format!("{line}.0")),
                "{line} not in\n{out}"
            );
        }
        assert!(!out.contains("endpoint"));
        // No checkpoint family without checkpoints.
        assert!(!out.contains("streamcore_checkpoints_completed"));
    }
}
