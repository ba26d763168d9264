//! The watermark debugger: for each operator, which input channel and which source split
//! holds its watermark back, by how much and since when, and which window waits for it —
//! from a [`JobDetail`] (served as `/api/v1/jobs/{id}/watermarks`, shown by the dashboard,
//! printed by `streamcore explain-watermarks`).
//!
//! An input *holds* an operator's watermark back when it is the lowest of the operator's
//! active (neither idle nor ended) inputs and has not advanced for [`STALL_MS`]. The chain is
//! followed upstream, exchange by exchange, to the source split at its root.

use serde::Serialize;
use std::collections::HashMap;
use streamcore::metrics::{JobDetail, NodeKind, OperatorDetail, SubtaskDetail};
use streamcore::Timestamp;

/// An input that has not advanced for this long while it is the lowest one holds the
/// watermark back.
pub const STALL_MS: i64 = 1_000;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// Why an operator's watermark is where it is.
#[derive(Clone, Debug, Serialize)]
pub struct WatermarkReport {
    /// The job.
    pub job: String,
    /// When the report was made (wall-clock milliseconds).
    pub now_ms: i64,
    /// How many operators are held back.
    pub held: usize,
    /// Per operator, upstream first.
    pub operators: Vec<OperatorWatermark>,
}

/// One operator's watermark and what holds it.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorWatermark {
    /// Display name.
    pub operator: String,
    /// Stable operator id.
    pub operator_id: String,
    /// Source, operator, sink…
    pub kind: NodeKind,
    /// The lowest watermark over its subtasks (`None`: none yet).
    pub watermark: Option<Timestamp>,
    /// The subtask with that watermark.
    pub slowest_subtask: usize,
    /// Every subtask's input is idle.
    pub idle: bool,
    /// The earliest window not fired yet, over its subtasks.
    pub pending_window: Option<PendingWindow>,
    /// What holds the watermark back, if anything does.
    pub held_by: Option<Holder>,
    /// In words.
    pub explanation: String,
}

/// A window waiting for the watermark.
#[derive(Clone, Debug, Serialize)]
pub struct PendingWindow {
    /// Window start (inclusive).
    pub start: Timestamp,
    /// Window end (exclusive): it fires once the watermark reaches `end - 1`.
    pub end: Timestamp,
    /// The subtask holding it.
    pub subtask: usize,
}

/// The input at the root of a held-back watermark.
#[derive(Clone, Debug, Serialize)]
pub struct Holder {
    /// The operator (a source, usually) whose output holds it.
    pub operator: String,
    /// Its stable id.
    pub operator_id: String,
    /// Its subtask.
    pub subtask: usize,
    /// The source split, when the root is a split.
    pub split: Option<u64>,
    /// The exchange the held operator receives it through, if any.
    pub via_exchange: Option<String>,
    /// The holder's watermark (`None`: it never sent one).
    pub watermark: Option<Timestamp>,
    /// How far it is behind the most advanced input beside it (milliseconds).
    pub behind_ms: Option<i64>,
    /// How long it has not advanced (or, for a split, not produced a record).
    pub stalled_ms: i64,
    /// The source's idle timeout (`None`: a silent split holds the watermark forever).
    pub idle_timeout_ms: Option<u64>,
    /// What to do about it.
    pub advice: String,
}

fn fmt_ts(t: Option<Timestamp>) -> String {
    match t {
        None => "no watermark yet".into(),
        Some(Timestamp::MAX) => "the end of input".into(),
        Some(t) => fmt_time(t),
    }
}

/// An event time as UTC `YYYY-MM-DD HH:MM:SS.mmm` (proleptic Gregorian calendar).
pub fn fmt_time(t: Timestamp) -> String {
    let ms = t.millis();
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// "350 ms", "12 s", "4 min", "2 h".
pub fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 7_200_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

/// Lowest first; no watermark is the lowest of all.
fn rank(w: Option<Timestamp>) -> i64 {
    w.map_or(i64::MIN, |w| w.millis())
}

struct Index<'a> {
    detail: &'a JobDetail,
    by_node: HashMap<usize, &'a OperatorDetail>,
    stage_of: HashMap<usize, usize>,
    now: i64,
}

impl<'a> Index<'a> {
    fn source_of_stage(&self, stage: usize) -> Option<&'a OperatorDetail> {
        self.detail
            .operators
            .iter()
            .find(|o| o.kind == NodeKind::Source && self.stage_of.get(&o.node) == Some(&stage))
    }

    /// Inside a source subtask: its lowest split that is not idle, if it has had no record
    /// for `min_stall_ms` (0 when a stalled channel downstream already says it holds).
    fn split_holder(
        &self,
        source: &OperatorDetail,
        subtask: usize,
        min_stall_ms: i64,
    ) -> Option<Holder> {
        let s = source.subtasks.get(subtask)?;
        if s.watermark == Some(Timestamp::MAX) {
            return None;
        }
        let active: Vec<_> = s.splits.iter().filter(|sp| !sp.idle).collect();
        let lowest = active.iter().min_by_key(|sp| rank(sp.watermark))?;
        if (lowest.last_record_ago_ms as i64) < min_stall_ms {
            return None;
        }
        let highest = active.iter().filter_map(|sp| sp.watermark).max();
        Some(Holder {
            operator: source.name.clone(),
            operator_id: source.id.clone(),
            subtask,
            split: Some(lowest.split),
            via_exchange: None,
            watermark: lowest.watermark,
            behind_ms: highest
                .map(|h| h.millis() - lowest.watermark.map_or(h.millis(), |w| w.millis())),
            stalled_ms: lowest.last_record_ago_ms as i64,
            idle_timeout_ms: source.idle_timeout_ms,
            advice: match source.idle_timeout_ms {
                None => "no idle timeout is set: set one (`--idle-timeout` on the command line, \
                         `WatermarkStrategy::with_idle_timeout` in code) so that a split without \
                         records stops holding the watermark back"
                    .into(),
                Some(t) => format!(
                    "the split is not idle yet (idle timeout {}); if it stays silent it stops \
                     holding the watermark back then",
                    fmt_duration(t as i64)
                ),
            },
        })
    }

    /// What holds subtask `subtask` of `op` back, following the chain upstream.
    fn holder(&self, op: &OperatorDetail, subtask: usize) -> Option<Holder> {
        if op.kind == NodeKind::Source {
            return self.split_holder(op, subtask, STALL_MS);
        }
        self.stage_holder(*self.stage_of.get(&op.node)?, subtask, 0)
    }

    /// What holds subtask `subtask` of stage `stage` back: its lowest input channel if that
    /// stalled, traced to its root upstream.
    fn stage_holder(&self, stage: usize, subtask: usize, depth: usize) -> Option<Holder> {
        if depth > 32 {
            return None;
        }
        let inputs: Vec<_> = self
            .detail
            .exchanges
            .iter()
            .filter(|x| x.downstream_stage == stage)
            .flat_map(|x| {
                x.channels
                    .iter()
                    .filter(move |c| c.receiver == subtask)
                    .map(move |c| (x, c))
            })
            .collect();
        if inputs.is_empty() {
            // Fed by a source in its own stage, by function calls.
            let source = self.source_of_stage(stage)?;
            let min_stall = if depth == 0 { STALL_MS } else { 0 };
            return self.split_holder(source, subtask, min_stall);
        }
        let active: Vec<_> = inputs.iter().filter(|(_, c)| !c.idle && !c.ended).collect();
        let (exchange, lowest) = active.iter().min_by_key(|(_, c)| rank(c.watermark))?;
        let since = lowest
            .since_ms
            .unwrap_or(self.now - self.detail.duration_ms as i64);
        let stalled = self.now - since;
        if stalled < STALL_MS {
            return None;
        }
        let highest = active.iter().filter_map(|(_, c)| c.watermark).max();
        let behind = highest
            .map(|h| h.millis() - lowest.watermark.map_or(h.millis(), |w| w.millis()))
            .filter(|&b| b > 0);
        let root = self.stage_holder(lowest.sender_stage, lowest.sender_subtask, depth + 1);
        let mut holder = root.unwrap_or_else(|| {
            // The sender itself: an operator, or the receiving end of another exchange.
            let (operator, operator_id) = match self.by_node.get(&lowest.sender_node) {
                Some(o) => (o.name.clone(), o.id.clone()),
                None => {
                    let name = self
                        .detail
                        .exchanges
                        .iter()
                        .find(|x| x.downstream_stage == lowest.sender_stage)
                        .map_or_else(|| "?".to_string(), |x| format!("exchange {}", x.name));
                    (name.clone(), name)
                }
            };
            Holder {
                advice: format!(
                    "`{operator}` subtask {} has not sent a newer watermark for {}: is it busy \
                     or blocked (see its backpressure)?",
                    lowest.sender_subtask,
                    fmt_duration(stalled)
                ),
                operator,
                operator_id,
                subtask: lowest.sender_subtask,
                split: None,
                via_exchange: None,
                watermark: lowest.watermark,
                behind_ms: None,
                stalled_ms: stalled,
                idle_timeout_ms: None,
            }
        });
        holder
            .via_exchange
            .get_or_insert_with(|| exchange.name.clone());
        holder.behind_ms = holder.behind_ms.or(behind);
        // Published a few times a second: the channel's stall is at least as current.
        holder.stalled_ms = holder.stalled_ms.max(stalled);
        Some(holder)
    }

    fn explain(&self, op: &OperatorDetail) -> OperatorWatermark {
        let slowest: Option<&SubtaskDetail> = op.subtasks.iter().min_by_key(|s| rank(s.watermark));
        let subtask = slowest.map_or(0, |s| s.subtask);
        let watermark = slowest.and_then(|s| s.watermark);
        let idle = !op.subtasks.is_empty() && op.subtasks.iter().all(|s| s.idle);
        let pending_window = op
            .subtasks
            .iter()
            .filter_map(|s| {
                s.pending_window.map(|(start, end)| PendingWindow {
                    start,
                    end,
                    subtask: s.subtask,
                })
            })
            .min_by_key(|w| w.end);
        let held_by = if watermark == Some(Timestamp::MAX) || idle {
            None
        } else {
            // The pending window's subtask if there is one (that is what waits), else the slowest.
            let at = pending_window.as_ref().map_or(subtask, |w| w.subtask);
            self.holder(op, at).or_else(|| self.holder(op, subtask))
        };
        let mut text = String::new();
        if let Some(w) = &pending_window {
            text.push_str(&format!(
                "window [{}, {}) of `{}` waits for watermark ≥ {}; ",
                fmt_time(w.start),
                fmt_time(w.end),
                op.name,
                fmt_time(Timestamp(w.end.millis() - 1))
            ));
        } else {
            text.push_str(&format!("`{}`: ", op.name));
        }
        match &held_by {
            Some(h) => {
                let what = match h.split {
                    Some(split) => format!(
                        "split `{split}` of `{}` (subtask {})",
                        h.operator, h.subtask
                    ),
                    None => format!("`{}` subtask {}", h.operator, h.subtask),
                };
                let silent = if h.split.is_some() {
                    format!("no record for {}", fmt_duration(h.stalled_ms))
                } else {
                    format!("no newer watermark for {}", fmt_duration(h.stalled_ms))
                };
                text.push_str(&format!(
                    "held at {} by {what}, {silent}",
                    fmt_ts(watermark)
                ));
                if let Some(b) = h.behind_ms.filter(|&b| b > 0) {
                    text.push_str(&format!(", {} behind the other inputs", fmt_duration(b)));
                }
                text.push_str(" — ");
                text.push_str(&h.advice);
            }
            None if idle => text.push_str("its input is idle: nothing holds it back"),
            None if watermark == Some(Timestamp::MAX) => {
                text.push_str("the input ended: every window fired")
            }
            None => text.push_str(&format!(
                "watermark {}, nothing holds it back",
                fmt_ts(watermark)
            )),
        }
        OperatorWatermark {
            operator: op.name.clone(),
            operator_id: op.id.clone(),
            kind: op.kind,
            watermark,
            slowest_subtask: subtask,
            idle,
            pending_window,
            held_by,
            explanation: text,
        }
    }
}

/// Explains every operator's watermark in `detail` as of `now_ms`.
pub fn explain(detail: &JobDetail, now_ms: i64) -> WatermarkReport {
    let stage_of = detail
        .graph
        .as_ref()
        .map(|g| g.nodes.iter().map(|n| (n.index, n.stage)).collect())
        .unwrap_or_default();
    let index = Index {
        detail,
        by_node: detail.operators.iter().map(|o| (o.node, o)).collect(),
        stage_of,
        now: now_ms,
    };
    let operators: Vec<_> = detail.operators.iter().map(|o| index.explain(o)).collect();
    WatermarkReport {
        job: detail.job.clone(),
        now_ms,
        held: operators.iter().filter(|o| o.held_by.is_some()).count(),
        operators,
    }
}

impl WatermarkReport {
    /// The report as text, one paragraph per operator.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "job `{}`: {} of {} operators held back\n",
            self.job,
            self.held,
            self.operators.len()
        );
        // Each piece of advice once: operators held by the same input repeat only the facts.
        let mut advised = std::collections::HashSet::new();
        for op in &self.operators {
            out.push_str(if op.held_by.is_some() {
                "HELD "
            } else {
                "ok   "
            });
            let text = match &op.held_by {
                Some(h) if !advised.insert(h.advice.as_str()) => op
                    .explanation
                    .strip_suffix(&format!(" — {}", h.advice))
                    .unwrap_or(&op.explanation),
                _ => &op.explanation,
            };
            out.push_str(text);
            out.push('\n');
        }
        if self.held == 0 {
            out.push_str("nothing holds a watermark back\n");
        }
        out
    }
}

/// `streamcore explain-watermarks`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The job's HTTP endpoint, e.g. `http://127.0.0.1:8081` (the job runs with `--http`).
    #[arg(long, value_name = "URL")]
    pub http: String,
    /// The job's id [default: the endpoint's only job].
    #[arg(long)]
    pub job: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Fetches a running job's watermark report and prints it.
pub fn run(args: ExplainArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let job = match args.job {
        Some(j) => j,
        None => {
            let jobs: serde_json::Value =
                serde_json::from_str(&super::client::get(&args.http, "/api/v1/jobs")?)
                    .context("reading the job list")?;
            jobs["jobs"][0]["id"]
                .as_str()
                .context("the endpoint runs no job")?
                .to_string()
        }
    };
    let format = if args.json { "json" } else { "text" };
    let body = super::client::get(
        &args.http,
        &format!("/api/v1/jobs/{job}/watermarks?format={format}"),
    )?;
    print!("{body}");
    if args.json {
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_like_a_clock() {
        assert_eq!(fmt_time(Timestamp(0)), "1970-01-01 00:00:00.000");
        assert_eq!(
            fmt_time(Timestamp(1_700_000_010_123)),
            "2023-11-14 22:13:30.123"
        );
        assert_eq!(
            fmt_time(Timestamp(951_782_400_000)),
            "2000-02-29 00:00:00.000"
        );
        assert_eq!(fmt_time(Timestamp(-1)), "1969-12-31 23:59:59.999");
        assert_eq!(fmt_duration(350), "350 ms");
        assert_eq!(fmt_duration(12_400), "12 s");
        assert_eq!(fmt_duration(240_000), "4 min");
    }
}
