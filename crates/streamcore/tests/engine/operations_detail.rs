//! What an operator of a running job sees through `MetricsReader::detail` (the HTTP API and
//! the watermark debugger read it): the job graph with its exchanges, per-subtask figures, the
//! watermark of each exchange channel and source split, and the earliest window waiting for the
//! watermark — of tumbling and of session windows.

use std::time::{Duration, Instant};
use streamcore::metrics::{JobDetail, NodeKind};
use streamcore::window::Windows;
use streamcore::{
    Job, JobConfig, Source, SourcePoll, SourceReader, TaskContext, Timestamp, WatermarkStrategy,
};

/// Emits `(t, key)` for t = 0, 100, …, 4_900 ms once, then nothing until the job stops.
struct Burst;
struct BurstReader(i64);

impl Source<(Timestamp, u32)> for Burst {
    type Reader = BurstReader;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> streamcore::Result<Vec<BurstReader>> {
        Ok(vec![BurstReader(0)])
    }
}

impl SourceReader<(Timestamp, u32)> for BurstReader {
    fn poll_batch(
        &mut self,
        out: &mut Vec<(Timestamp, u32)>,
        _: usize,
        _: &mut TaskContext,
    ) -> streamcore::Result<SourcePoll> {
        if self.0 < 5_000 {
            while self.0 < 5_000 {
                out.push((Timestamp(self.0), (self.0 / 100 % 3) as u32));
                self.0 += 100;
            }
            return Ok(SourcePoll::Ready);
        }
        std::thread::sleep(Duration::from_millis(2));
        Ok(SourcePoll::Idle)
    }
    fn initial_splits(&self) -> Vec<u64> {
        vec![0]
    }
}

fn wait_for(
    reader: &streamcore::metrics::MetricsReader,
    f: impl Fn(&JobDetail) -> bool,
) -> JobDetail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = reader.detail();
        if f(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "timed out: {d:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn detail_reports_graph_channels_splits_and_pending_windows() {
    let mut job = Job::new("ops");
    let events = job
        .source("burst", Burst)
        .with_watermarks(WatermarkStrategy::monotonous());
    let tumbling = events
        .clone()
        .key_by(|e: &(Timestamp, u32)| e.1)
        .window(Windows::tumbling(Duration::from_secs(10)))
        .count();
    let sessions = events
        .key_by(|e: &(Timestamp, u32)| e.1)
        .window(Windows::session(Duration::from_secs(1)))
        .count();
    tumbling.collect();
    sessions.collect();
    let handle = job.start(JobConfig::default().parallelism(2)).unwrap();
    let reader = handle.metrics_reader();

    // The graph: the source feeds both windows through hash exchanges; sinks are forward.
    let graph = reader.graph().expect("the graph is set at start");
    let source = graph
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::Source)
        .unwrap();
    assert_eq!(source.parallelism, 1);
    let windows: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| n.name.starts_with("window"))
        .collect();
    assert_eq!(windows.len(), 2, "{graph:#?}");
    for w in &windows {
        assert_eq!(w.parallelism, 2);
        let e = graph
            .edges
            .iter()
            .find(|e| e.from == source.index && e.to == w.index)
            .unwrap_or_else(|| panic!("no edge source -> {}: {graph:#?}", w.name));
        assert_eq!(e.exchange, "hash");
        assert_eq!(e.changelog, "append");
        assert!(graph
            .edges
            .iter()
            .any(|e| e.from == w.index && e.exchange == "forward"));
    }
    assert!(graph.nodes.iter().all(|n| n.kind != NodeKind::Exchange));

    // Running: every record read, the watermark at 4_899 (monotonous: max - 1), windows wait.
    let d = wait_for(&reader, |d| {
        d.operators
            .iter()
            .filter(|o| o.name.starts_with("window"))
            .all(|o| {
                o.subtasks
                    .iter()
                    .all(|s| s.watermark == Some(Timestamp(4_899)) && s.pending_window.is_some())
            })
    });
    let tumbling = d
        .operators
        .iter()
        .find(|o| o.node == windows[0].index)
        .unwrap();
    for s in &tumbling.subtasks {
        assert_eq!(
            s.pending_window,
            Some((Timestamp(0), Timestamp(10_000))),
            "{d:#?}"
        );
        assert!(s.watermark_since_ms.is_some());
    }
    let session = d
        .operators
        .iter()
        .find(|o| o.node == windows[1].index)
        .unwrap();
    // Keys 0, 1, 2 each have one session [first, last + 1 s): the earliest ends at 5_700.
    let ends: Vec<i64> = session
        .subtasks
        .iter()
        .filter_map(|s| s.pending_window.map(|(_, end)| end.millis()))
        .collect();
    assert!(
        ends.iter().all(|&e| (5_700..=5_900).contains(&e)),
        "{ends:?}"
    );
    // The source's split and the channels it feeds.
    let src = d
        .operators
        .iter()
        .find(|o| o.kind == NodeKind::Source)
        .unwrap();
    assert!(src.generates_watermarks);
    assert_eq!(src.idle_timeout_ms, None);
    let split = &src.subtasks[0].splits;
    assert_eq!(split.len(), 1, "{src:#?}");
    assert_eq!(split[0].watermark, Some(Timestamp(4_899)));
    assert!(!split[0].idle);
    assert_eq!(d.exchanges.len(), 2);
    for x in &d.exchanges {
        // One sender (the source), two receivers.
        assert_eq!(x.channels.len(), 2, "{x:#?}");
        for c in &x.channels {
            assert_eq!(c.sender_node, source.index);
            assert_eq!(c.sender_subtask, 0);
            assert_eq!(c.watermark, Some(Timestamp(4_899)));
            assert!(!c.idle && !c.ended && c.since_ms.is_some());
        }
    }
    assert!(!d.finished);

    handle.stop();
    handle.join().unwrap();
    let d = reader.detail();
    assert!(d.finished);
    for o in d.operators.iter().filter(|o| o.name.starts_with("window")) {
        for s in &o.subtasks {
            assert_eq!(s.watermark, Some(Timestamp::MAX));
            assert_eq!(s.pending_window, None, "every window fired at the end");
        }
    }
    assert!(d
        .exchanges
        .iter()
        .flat_map(|x| &x.channels)
        .all(|c| c.ended));
    assert!(d.checkpoint_history.is_empty());
}
