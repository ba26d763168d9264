//! Plans a run of a job graph (parallelism per stage, source readers, exchange channels,
//! metrics), builds every task, starts one thread per task, and hands back a [`JobHandle`].

use super::control::JobControl;
use super::graph::{
    Built, ExchangeRun, ExchangeSpec, Graph, NodeEnv, NodeOutputs, RunResources, StageHead,
};
use super::TaskRunner;
use crate::api::JobConfig;
use crate::checkpoint::coordinator::{self, CheckpointHub, Coordinator, Participant};
use crate::checkpoint::{
    CheckpointConfig, CheckpointKind, CheckpointStorage, LoadedCheckpoint, RestoreFrom,
    StateRestore,
};
use crate::context::{DeadLetterQueue, ErrorPolicy, TaskInfo};
use crate::error::{Result, StreamError};
use crate::metrics::CheckpointMetrics;
use crate::metrics::{
    GraphEdge, GraphNode, JobGraph, JobSummary, MetricsRegistry, NodeKind, OperatorMetrics,
};
use crate::sink::Committer;
use crate::state::key_groups_of;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running job: read its metrics while it runs, stop or cancel it, wait for its end.
pub struct JobHandle {
    threads: Vec<JoinHandle<()>>,
    coordinator: Option<JoinHandle<()>>,
    hub: Option<Arc<CheckpointHub>>,
    control: Arc<JobControl>,
    metrics: Arc<MetricsRegistry>,
    dead_letters: Option<Arc<DeadLetterQueue>>,
}

impl JobHandle {
    /// The job's metrics now.
    pub fn metrics(&self) -> JobSummary {
        self.metrics.summary()
    }

    /// A shared, cheap reader of the job's metrics, for another thread (an HTTP endpoint, a
    /// dashboard): it reads the same counters as [`JobHandle::metrics`], live while the job
    /// runs and final after it ended — it outlives [`JobHandle::join`].
    ///
    /// ```
    /// use streamcore::{Job, JobConfig};
    /// let mut job = Job::new("read-live");
    /// job.from_vec("n", (0..1000u32).collect()).filter(|n| n % 2 == 0).collect();
    /// let handle = job.start(JobConfig::default()).unwrap();
    /// let reader = handle.metrics_reader();
    /// let watcher = std::thread::spawn(move || reader.summary().events_ingested <= 1000);
    /// assert!(watcher.join().unwrap());
    /// let reader = handle.metrics_reader();
    /// handle.join().unwrap();
    /// assert_eq!(reader.summary().events_filtered, 500);
    /// ```
    pub fn metrics_reader(&self) -> crate::metrics::MetricsReader {
        crate::metrics::MetricsReader(self.metrics.clone())
    }

    /// Stops the sources at their next batch boundary; everything read so far is processed
    /// and flushed, and [`JobHandle::join`] returns `Ok`. The way to end an unbounded job.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Aborts the job: every task stops promptly and [`JobHandle::join`] returns
    /// [`StreamError::Cancelled`].
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// True once every task has ended.
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
            && self.coordinator.as_ref().is_none_or(|c| c.is_finished())
    }

    /// Takes a savepoint now (the job goes on) and waits for it: returns its directory.
    /// Needs a job running with checkpoints.
    pub fn savepoint(&self) -> Result<PathBuf> {
        self.request_savepoint(false)
    }

    /// Takes a savepoint, then stops the job at once without draining it: restoring the
    /// savepoint resumes exactly there. [`JobHandle::join`] then returns `Ok`, with
    /// `checkpoints.stopped_with_savepoint` set in the summary.
    pub fn stop_with_savepoint(&self) -> Result<PathBuf> {
        self.request_savepoint(true)
    }

    fn request_savepoint(&self, stop: bool) -> Result<PathBuf> {
        let hub = self.hub.as_ref().ok_or_else(|| {
            StreamError::Config("savepoints need a job running with checkpoints".into())
        })?;
        let reply = hub.request_savepoint(stop);
        loop {
            match reply.recv_timeout(super::control::CANCEL_CHECK) {
                Ok(result) => return result,
                Err(_) if self.control.is_cancelled() || self.is_finished() => {
                    return Err(StreamError::Checkpoint(
                        "the job ended before the savepoint completed".into(),
                    ))
                }
                Err(_) => {}
            }
        }
    }

    /// Waits for the job to end. Returns its metrics, or the first error of any task.
    pub fn join(self) -> Result<JobSummary> {
        for t in self.threads {
            // Task bodies catch their own panics; a join error cannot carry a new one.
            let _ = t.join();
        }
        if let Some(c) = self.coordinator {
            let _ = c.join();
        }
        if let Ok(mut finished) = self.metrics.finished.lock() {
            *finished = Some(self.metrics.started.elapsed());
        }
        let closed = match &self.dead_letters {
            Some(dlq) => dlq.close(),
            None => Ok(()),
        };
        if let Some(error) = self.control.take_error() {
            return Err(error);
        }
        if self.control.is_stopped_with_savepoint() {
            if let Some(c) = self.metrics.checkpoints.lock().ok().and_then(|c| c.clone()) {
                c.stopped_with_savepoint
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            closed?;
            return Ok(self.metrics.summary());
        }
        if self.control.is_cancelled() {
            return Err(StreamError::Cancelled);
        }
        closed?;
        Ok(self.metrics.summary())
    }
}

fn validate(graph: &Graph, config: &JobConfig) -> Result<()> {
    let bad = |m: String| Err(StreamError::Config(m));
    if let Some(first) = graph.errors.first() {
        return bad(match graph.errors.len() {
            1 => first.clone(),
            n => format!("{first} (and {} more mistakes in the job)", n - 1),
        });
    }
    if config.parallelism == 0 {
        return bad("parallelism must be at least 1".into());
    }
    if config.batch_size == 0 {
        return bad("batch size must be at least 1".into());
    }
    if config.queue_capacity == 0 {
        return bad("queue capacity must be at least 1 batch".into());
    }
    if config.key_groups == 0 || config.parallelism > config.key_groups as usize {
        return bad(format!(
            "parallelism {} exceeds the number of key groups {}",
            config.parallelism, config.key_groups
        ));
    }
    if config.error_policy == ErrorPolicy::DeadLetter && graph.dead_letters.is_none() {
        return bad(
            "error policy `dead-letter` needs a dead-letter sink (Job::dead_letters)".into(),
        );
    }
    if graph.stages.is_empty() {
        return bad("the job has no source".into());
    }
    Ok(())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The node whose output feeds `node` (the first one found: exchange ends have one).
fn upstream_of(graph: &Graph, node: usize) -> Option<usize> {
    graph.nodes.iter().position(|n| {
        n.consumers.contains(&node) || n.sides.iter().any(|s| s.consumers.contains(&node))
    })
}

/// The job graph as operators see it: exchange ends folded into edges that say how records
/// are routed. Called once the stages' parallelism is planned.
fn describe(graph: &Graph, ids: &[String]) -> JobGraph {
    let changelog = |updating: bool| if updating { "updating" } else { "append" };
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind != NodeKind::Exchange)
        .map(|(i, n)| GraphNode {
            index: i,
            name: n.name.clone(),
            id: ids[i].clone(),
            kind: n.kind,
            parallelism: graph.stages[n.stage].parallelism,
            stage: n.stage,
            changelog: changelog(n.updating.is_some()),
            schema: n.schema.as_ref().map(|s| s.to_string()),
        })
        .collect();
    // Where a consumer leads to, past exchange ends (an exchange may feed another directly):
    // (real node, routing of the last exchange crossed).
    fn resolve(graph: &Graph, consumer: usize, depth: usize) -> Vec<(usize, &'static str)> {
        if graph.nodes[consumer].kind != NodeKind::Exchange {
            return vec![(consumer, "forward")];
        }
        if depth > graph.exchanges.len() {
            return Vec::new();
        }
        for ex in &graph.exchanges {
            if let Some(pos) = ex.senders.iter().position(|&(n, _)| n == consumer) {
                let head = graph.stages[ex.downstream_stage].head;
                let routing = ex.partitioning.get(pos).copied().unwrap_or("hash");
                return graph.nodes[head]
                    .consumers
                    .iter()
                    .flat_map(|&c| resolve(graph, c, depth + 1))
                    .map(|(node, inner)| (node, if inner == "forward" { routing } else { inner }))
                    .collect();
            }
        }
        Vec::new()
    }
    let mut edges = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        if n.kind == NodeKind::Exchange {
            continue;
        }
        let main = n.consumers.iter().map(|&c| (c, false));
        let sides = n
            .sides
            .iter()
            .flat_map(|s| s.consumers.iter().map(|&c| (c, true)));
        for (consumer, side_output) in main.chain(sides) {
            for (to, exchange) in resolve(graph, consumer, 0) {
                edges.push(GraphEdge {
                    from: i,
                    to,
                    exchange,
                    side_output,
                    changelog: changelog(!side_output && n.updating.is_some()),
                });
            }
        }
    }
    JobGraph { nodes, edges }
}

/// A task to start: its name, its subtask, its body.
type Task = (String, usize, Box<dyn TaskRunner>);

/// Whether every sender of `ex` is one task: the sending nodes are in stages of one instance
/// that run in one task (`host`: the stage whose task runs each stage) — a `key_by` at
/// parallelism 1, or a source feeding both sides of a join, one side through a stage of its
/// own fused into the source's task.
fn one_task(graph: &Graph, host: &[usize], ex: &ExchangeSpec) -> bool {
    let mut stages = ex.senders.iter().map(|&(_, stage)| stage);
    let first = stages.next();
    first.is_some_and(|s| {
        let single = |t: usize| graph.stages[t].parallelism == 1;
        single(s) && stages.all(|t| single(t) && host[t] == host[s])
    })
}

/// Plans, builds and starts `graph`.
pub(crate) fn launch(mut graph: Graph, job: &str, config: &JobConfig) -> Result<JobHandle> {
    validate(&graph, config)?;
    // What each node's state is keyed by in checkpoints (by node index).
    let ids = graph.state_ids()?;
    let job_name: Arc<str> = Arc::from(job);
    let registry = Arc::new(MetricsRegistry::new(job));
    *registry
        .connectors
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = graph
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), n.connector_metrics.clone()?)))
        .collect();
    let control = Arc::new(JobControl::default());

    let dead_letters = match graph.dead_letters.as_mut() {
        Some(factory) => {
            let info = TaskInfo {
                job: job_name.clone(),
                name: Arc::from("dead-letters"),
                id: Arc::from("dead-letters"),
                subtask: 0,
                parallelism: 1,
                key_groups: config.key_groups,
                checkpointing: config.checkpoints.is_some(),
            };
            Some(Arc::new(DeadLetterQueue::new(
                factory(&info)?,
                registry.dead_letters.clone(),
            )))
        }
        None => None,
    };

    // Checkpoints: storage, the checkpoint to restore, committers of exactly-once sinks.
    let mut checkpoints = match &config.checkpoints {
        Some(c) => Some(prepare_checkpoints(&mut graph, &ids, c, config, &registry)?),
        None => None,
    };
    if let Some(cp) = &checkpoints {
        if cp
            .restore
            .as_ref()
            .is_some_and(|r| r.manifest.kind == CheckpointKind::Final)
        {
            cp.metrics
                .already_finished
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut finished) = registry.finished.lock() {
                *finished = Some(registry.started.elapsed());
            }
            tracing::info!(
                job,
                "the restored checkpoint is the job's final one: nothing to run"
            );
            return Ok(JobHandle {
                threads: Vec::new(),
                coordinator: None,
                hub: None,
                control,
                metrics: registry,
                dead_letters,
            });
        }
    }
    let restore = checkpoints.as_ref().and_then(|c| c.restore.as_ref());
    let hub = checkpoints.as_ref().map(|c| c.hub.clone());

    // Parallelism per stage, and the source readers.
    let mut res = RunResources {
        readers: graph.nodes.iter().map(|_| Vec::new()).collect(),
        exchanges: graph.exchanges.iter().map(|_| None).collect(),
    };
    for stage in &mut graph.stages {
        stage.parallelism = match &mut stage.kind {
            StageHead::Source { prepare } => {
                let (name, id) = (&graph.nodes[stage.head].name, &ids[stage.head]);
                let positions = match restore {
                    Some(cp) => Some(source_positions(cp, name, id)?),
                    None => None,
                };
                let readers = prepare(config.parallelism, hub.is_some(), positions)?;
                let p = readers.len();
                res.readers[stage.head] = readers.into_iter().map(Some).collect();
                p
            }
            StageHead::Exchange => stage.fixed_parallelism.unwrap_or(config.parallelism),
        };
    }

    // Exchange channels. The task each stage runs in, by the stage heading it: a stage fused
    // into its senders' task runs in theirs (exchanges come in the order of their downstream
    // stages, after the stages that send into them).
    // Per stage, the fused exchange feeding it, if any.
    let mut host: Vec<usize> = (0..graph.stages.len()).collect();
    let mut fused_into: Vec<Option<usize>> = vec![None; graph.stages.len()];
    for (i, ex) in graph.exchanges.iter().enumerate() {
        let downstream = graph.stages[ex.downstream_stage].parallelism;
        let fused = config.fuse_single_exchanges && downstream == 1 && one_task(&graph, &host, ex);
        if fused {
            host[ex.downstream_stage] = host[ex.senders[0].1];
            fused_into[ex.downstream_stage] = Some(i);
        }
        let mut offsets = Vec::new();
        let mut num_senders = 0;
        for &(node, stage) in &ex.senders {
            offsets.push((node, num_senders));
            num_senders += graph.stages[stage].parallelism;
        }
        // A fused exchange has no channels: its senders call its receiving chain.
        let (senders, receivers) = if fused {
            (Box::new(()) as Box<dyn Any>, Vec::new())
        } else {
            (ex.make_channels)(config.queue_capacity, downstream)
        };
        // Who sends on each channel: the node upstream of each sending end, per subtask.
        let channel_senders = ex
            .senders
            .iter()
            .flat_map(|&(node, stage)| {
                let upstream = upstream_of(&graph, node).unwrap_or(node);
                (0..graph.stages[stage].parallelism).map(move |s| (upstream, s, stage))
            })
            .collect();
        let metrics = registry.register_exchange(
            &ex.name,
            config.queue_capacity,
            downstream,
            channel_senders,
            ex.downstream_stage,
            fused,
        );
        res.exchanges[i] = Some(ExchangeRun {
            senders,
            receivers,
            num_senders,
            offsets,
            metrics,
            fused,
            fused_merge: None,
        });
    }

    // Metrics per node and parallel instance (exchange ends report through their exchange).
    let node_metrics: Vec<Vec<Arc<OperatorMetrics>>> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = graph.stages[n.stage].parallelism;
            match n.kind {
                NodeKind::Exchange => (0..p).map(|_| Arc::default()).collect(),
                kind => registry.register_operator(&n.name, &ids[i], i, kind, p),
            }
        })
        .collect();
    *registry.graph.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Arc::new(describe(&graph, &ids)));

    // The state backend of this run (for `lsm`, a fresh LSM tree: state comes from the
    // checkpoint, if any).
    let state_backend = crate::state::StateBackend::open(&config.state, job)?;

    // Build every task. Downstream stages first (a stage's index is above its inputs'): a stage
    // fused into its senders' task is built as the merge its senders' builders then take.
    // Per stage, its tasks (none for a fused stage), in subtask order.
    let mut stage_tasks: Vec<Vec<Task>> = graph.stages.iter().map(|_| Vec::new()).collect();
    for (stage_index, stage) in graph.stages.iter().enumerate().rev() {
        // `subtask` indexes the per-node metrics inside `env_of`, not one slice of this loop.
        #[allow(clippy::needless_range_loop)]
        for subtask in 0..stage.parallelism {
            let mut env_of = |node: usize| NodeEnv {
                info: TaskInfo {
                    job: job_name.clone(),
                    name: Arc::from(graph.nodes[node].name.as_str()),
                    id: Arc::from(ids[node].as_str()),
                    subtask,
                    parallelism: stage.parallelism,
                    key_groups: config.key_groups,
                    checkpointing: hub.is_some(),
                },
                node,
                hub: hub.clone(),
                restore: restore.map(|cp| {
                    state_for(
                        cp,
                        &ids[node],
                        subtask,
                        stage.parallelism,
                        config.key_groups,
                    )
                }),
                metrics: node_metrics[node][subtask].clone(),
                state_backend: Some(state_backend.clone()),
                batch_size: config.batch_size,
                watermark_interval: config.watermark_interval,
                policy: config.error_policy,
                dead_letters: dead_letters.clone(),
                control: control.clone(),
            };
            match (
                build_node(&graph, stage.head, &mut env_of, &mut res)?,
                fused_into[stage_index],
            ) {
                (Built::Runner(r), None) => stage_tasks[stage_index].push((
                    graph.nodes[stage.head].name.clone(),
                    subtask,
                    r,
                )),
                (Built::Fused(merge), Some(exchange)) => {
                    if let Some(run) = res.exchanges[exchange].as_mut() {
                        run.fused_merge = Some(merge);
                    }
                }
                _ => {
                    return Err(StreamError::Internal(
                        "stage head built as the wrong kind".into(),
                    ))
                }
            }
        }
    }
    let tasks: Vec<_> = stage_tasks.into_iter().flatten().collect();
    // The senders hold the fused merges now: the run's resources go before the tasks start
    // (what a finished task drops is dropped on its own thread).
    drop(res);

    tracing::info!(
        job,
        tasks = tasks.len(),
        stages = graph.stages.len(),
        "starting job"
    );
    let mut threads = Vec::with_capacity(tasks.len());
    for (name, subtask, runner) in tasks {
        let task_control = control.clone();
        let thread_name = format!("{name}/{subtask}");
        let handle = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let control = task_control;
                match catch_unwind(AssertUnwindSafe(|| runner.run(&control))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => control.fail(e),
                    Err(payload) => control.fail(StreamError::Panic {
                        task: name,
                        subtask,
                        message: panic_message(payload.as_ref()),
                    }),
                }
            })
            .map_err(|e| StreamError::io(format!("starting thread {thread_name}"), e));
        match handle {
            Ok(h) => threads.push(h),
            Err(e) => {
                control.fail(StreamError::Cancelled);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
    }
    let coordinator = match checkpoints.take() {
        Some(cp) => {
            let participants = graph
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.kind != NodeKind::Exchange)
                .map(|(i, n)| Participant {
                    node: i,
                    id: ids[i].clone(),
                    parallelism: graph.stages[n.stage].parallelism,
                })
                .collect();
            let coordinator = Coordinator {
                rx: cp.rx,
                hub: cp.hub,
                storage: cp.storage,
                config: cp.config,
                job: job.to_string(),
                key_groups: config.key_groups,
                participants,
                committers: cp.committers,
                control: control.clone(),
                metrics: cp.metrics,
                next_id: cp.next_id,
            };
            let control = control.clone();
            let handle = std::thread::Builder::new()
                .name("checkpoint-coordinator".into())
                .spawn(move || {
                    if let Err(e) = coordinator.run() {
                        tracing::error!(error = %e, "checkpoint coordinator failed");
                        control.fail(e);
                    }
                })
                .map_err(|e| StreamError::io("starting the checkpoint coordinator", e))?;
            Some(handle)
        }
        None => None,
    };
    Ok(JobHandle {
        threads,
        coordinator,
        hub,
        control,
        metrics: registry,
        dead_letters,
    })
}

/// What a run with checkpoints needs before its tasks start.
struct CheckpointSetup {
    storage: Arc<dyn CheckpointStorage>,
    config: CheckpointConfig,
    restore: Option<LoadedCheckpoint>,
    committers: Vec<(usize, Box<dyn Committer>)>,
    hub: Arc<CheckpointHub>,
    rx: crossbeam_channel::Receiver<coordinator::HubMessage>,
    metrics: Arc<CheckpointMetrics>,
    next_id: u64,
}

/// Opens the storage, loads the checkpoint to restore (if asked), re-commits its sinks'
/// transactions and aborts what an earlier run left uncommitted.
fn prepare_checkpoints(
    graph: &mut Graph,
    ids: &[String],
    c: &CheckpointConfig,
    config: &JobConfig,
    registry: &MetricsRegistry,
) -> Result<CheckpointSetup> {
    let storage = c.open_storage()?;
    let metrics = Arc::new(CheckpointMetrics::default());
    *registry
        .checkpoints
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(metrics.clone());
    let started = std::time::Instant::now();
    let restore = match &c.restore {
        None => None,
        Some(RestoreFrom::Latest) => storage.load_latest()?,
        Some(RestoreFrom::Path(p)) => Some(storage.load(&p.into())?),
    };
    if let Some(cp) = &restore {
        for skipped in &cp.skipped {
            tracing::warn!(reason = %skipped, "skipped a checkpoint");
        }
        if cp.manifest.key_groups != config.key_groups {
            return Err(StreamError::Checkpoint(format!(
                "{} was written with {} key groups, the job has {}: key groups are fixed for a job's life",
                cp.location.display(),
                cp.manifest.key_groups,
                config.key_groups
            )));
        }
        for (id, instances) in &cp.nodes {
            let has_state = instances
                .iter()
                .any(|i| !i.snapshot.is_empty() || !i.committables.is_empty());
            if !has_state || ids.contains(id) {
                continue;
            }
            if c.allow_non_restored_state {
                tracing::warn!(
                    operator = %id,
                    from = %cp.location.display(),
                    "dropping state of an operator this job does not have (allow_non_restored_state)"
                );
                metrics
                    .dropped_state
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                let known = ids.join("`, `");
                return Err(StreamError::Checkpoint(format!(
                    "{} holds state of operator `{id}`, which this job does not have (its operators are `{known}`): give the operator that should take it over the id `{id}` (Stream::uid), or drop the state with allow_non_restored_state (--allow-non-restored-state)",
                    cp.location.display()
                )));
            }
        }
        *metrics
            .restored_from
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(cp.location.display().to_string());
        tracing::info!(from = %cp.location.display(), "restoring");
    }
    let mut committers = Vec::new();
    for (id, node) in graph.nodes.iter_mut().enumerate() {
        if let Some(make) = node.committer.as_mut() {
            if let Some(committer) = make()? {
                committers.push((id, committer));
            }
        }
    }
    // Downstream first: a sink's output is committed before a source tells its broker that
    // the input behind it was consumed (a crash in between repeats output, never loses it).
    committers.reverse();
    if let Some(cp) = &restore {
        // The crashed run may have completed this checkpoint without committing it all.
        for (id, committer) in &committers {
            if let Some(instances) = cp.node(&ids[*id]) {
                for c in instances.iter().flat_map(|i| &i.committables) {
                    committer.commit(c)?;
                }
            }
        }
    }
    for (_, committer) in &committers {
        committer.abort_uncommitted()?;
    }
    *metrics.restore_ms.lock().unwrap_or_else(|p| p.into_inner()) = restore
        .as_ref()
        .map(|_| started.elapsed().as_secs_f64() * 1e3);
    let (hub, rx) = coordinator::channel(metrics.clone());
    Ok(CheckpointSetup {
        // Ids go on from the restored checkpoint's, as in Flink: restored into another
        // directory, a job must not reuse ids its sinks already named committed output by.
        next_id: storage.next_id()?.max(
            restore
                .as_ref()
                .map_or(0, |cp| cp.manifest.checkpoint_id + 1),
        ),
        storage,
        config: c.clone(),
        restore,
        committers,
        hub,
        rx,
        metrics,
    })
}

/// The positions of every reader of source `name` (state id `id`) in the checkpoint.
fn source_positions(cp: &LoadedCheckpoint, name: &str, id: &str) -> Result<Vec<Vec<u8>>> {
    let instances = cp.node(id).ok_or_else(|| {
        StreamError::Checkpoint(format!(
            "{} has no position for source `{name}` (id `{id}`; was it written by another job, or was the source's id changed?)",
            cp.location.display()
        ))
    })?;
    instances
        .iter()
        .map(|i| {
            i.snapshot.operator.clone().ok_or_else(|| {
                StreamError::Checkpoint(format!(
                    "{}: reader {} of source `{name}` recorded no position",
                    cp.location.display(),
                    i.subtask
                ))
            })
        })
        .collect()
}

/// The state instance `subtask` of `parallelism` of the node with state id `id` restores: the
/// key groups it owns now, from whichever old instance wrote them, and every old instance's
/// operator state.
fn state_for(
    cp: &LoadedCheckpoint,
    id: &str,
    subtask: usize,
    parallelism: usize,
    key_groups: u32,
) -> StateRestore {
    let mut state = StateRestore::default();
    let owned = key_groups_of(subtask, key_groups, parallelism);
    for inst in cp.node(id).unwrap_or_default() {
        for (g, bytes) in &inst.snapshot.groups {
            if owned.contains(g) {
                state.groups.push((*g, bytes.clone()));
            }
        }
        if let Some(op) = &inst.snapshot.operator {
            state.operator.push(op.clone());
        }
    }
    state
}

/// Builds one parallel instance of `node` and everything downstream of it in its stage;
/// `env_of` says which instance.
fn build_node(
    graph: &Graph,
    node: usize,
    env_of: &mut dyn FnMut(usize) -> NodeEnv,
    res: &mut RunResources,
) -> Result<Built> {
    let n = &graph.nodes[node];
    let env = env_of(node);
    let mut build_all = |consumers: &[usize], res: &mut RunResources| -> Result<Vec<_>> {
        consumers
            .iter()
            .map(|&c| match build_node(graph, c, env_of, res)? {
                Built::Push(p) => Ok(p),
                Built::Runner(_) | Built::Fused(_) => Err(StreamError::Internal(
                    "consumer built as a stage head".into(),
                )),
            })
            .collect()
    };
    let main = build_all(&n.consumers, res)?;
    let mut sides = Vec::with_capacity(n.sides.len());
    for side in &n.sides {
        let consumers = build_all(&side.consumers, res)?;
        sides.push((side.tag, (side.make)(env.batch_size, consumers)));
    }
    (n.build)(&env, res, NodeOutputs { main, sides })
}
