//! Plans a run of a job graph (parallelism per stage, source readers, exchange channels,
//! metrics), builds every task, starts one thread per task, and hands back a [`JobHandle`].

use super::control::JobControl;
use super::graph::{Built, ExchangeRun, Graph, NodeEnv, NodeOutputs, RunResources, StageHead};
use super::TaskRunner;
use crate::api::JobConfig;
use crate::context::{DeadLetterQueue, ErrorPolicy, TaskInfo};
use crate::error::{Result, StreamError};
use crate::metrics::{JobSummary, MetricsRegistry, NodeKind, OperatorMetrics};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running job: read its metrics while it runs, stop or cancel it, wait for its end.
pub struct JobHandle {
    threads: Vec<JoinHandle<()>>,
    control: Arc<JobControl>,
    metrics: Arc<MetricsRegistry>,
    dead_letters: Option<Arc<DeadLetterQueue>>,
}

impl JobHandle {
    /// The job's metrics now.
    pub fn metrics(&self) -> JobSummary {
        self.metrics.summary()
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
    }

    /// Waits for the job to end. Returns its metrics, or the first error of any task.
    pub fn join(self) -> Result<JobSummary> {
        for t in self.threads {
            // Task bodies catch their own panics; a join error cannot carry a new one.
            let _ = t.join();
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
        if self.control.is_cancelled() {
            return Err(StreamError::Cancelled);
        }
        closed?;
        Ok(self.metrics.summary())
    }
}

fn validate(graph: &Graph, config: &JobConfig) -> Result<()> {
    let bad = |m: String| Err(StreamError::Config(m));
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

/// Plans, builds and starts `graph`.
pub(crate) fn launch(mut graph: Graph, job: &str, config: &JobConfig) -> Result<JobHandle> {
    validate(&graph, config)?;
    let job_name: Arc<str> = Arc::from(job);
    let registry = Arc::new(MetricsRegistry::new(job));
    let control = Arc::new(JobControl::default());

    let dead_letters = match graph.dead_letters.as_mut() {
        Some(factory) => {
            let info = TaskInfo {
                job: job_name.clone(),
                name: Arc::from("dead-letters"),
                subtask: 0,
                parallelism: 1,
                key_groups: config.key_groups,
            };
            Some(Arc::new(DeadLetterQueue::new(
                factory(&info)?,
                registry.dead_letters.clone(),
            )))
        }
        None => None,
    };

    // Parallelism per stage, and the source readers.
    let mut res = RunResources {
        readers: graph.nodes.iter().map(|_| Vec::new()).collect(),
        exchanges: graph.exchanges.iter().map(|_| None).collect(),
    };
    for stage in &mut graph.stages {
        stage.parallelism = match &mut stage.kind {
            StageHead::Source { prepare } => {
                let readers = prepare(config.parallelism)?;
                let p = readers.len();
                res.readers[stage.head] = readers.into_iter().map(Some).collect();
                p
            }
            StageHead::Exchange => stage.fixed_parallelism.unwrap_or(config.parallelism),
        };
    }

    // Exchange channels.
    for (i, ex) in graph.exchanges.iter().enumerate() {
        let downstream = graph.stages[ex.downstream_stage].parallelism;
        let mut offsets = Vec::new();
        let mut num_senders = 0;
        for &(node, stage) in &ex.senders {
            offsets.push((node, num_senders));
            num_senders += graph.stages[stage].parallelism;
        }
        let (senders, receivers) = (ex.make_channels)(config.queue_capacity, downstream);
        let metrics = registry.register_exchange(&ex.name, config.queue_capacity, downstream);
        res.exchanges[i] = Some(ExchangeRun {
            senders,
            receivers,
            num_senders,
            offsets,
            metrics,
        });
    }

    // Metrics per node and parallel instance (exchange ends report through their exchange).
    let node_metrics: Vec<Vec<Arc<OperatorMetrics>>> = graph
        .nodes
        .iter()
        .map(|n| {
            let p = graph.stages[n.stage].parallelism;
            match n.kind {
                NodeKind::Exchange => (0..p).map(|_| Arc::default()).collect(),
                kind => registry.register_operator(&n.name, kind, p),
            }
        })
        .collect();

    // Build every task.
    let mut tasks: Vec<(String, usize, Box<dyn TaskRunner>)> = Vec::new();
    for stage in &graph.stages {
        // `subtask` indexes the per-node metrics inside `env_of`, not one slice of this loop.
        #[allow(clippy::needless_range_loop)]
        for subtask in 0..stage.parallelism {
            let mut env_of = |node: usize| NodeEnv {
                info: TaskInfo {
                    job: job_name.clone(),
                    name: Arc::from(graph.nodes[node].name.as_str()),
                    subtask,
                    parallelism: stage.parallelism,
                    key_groups: config.key_groups,
                },
                metrics: node_metrics[node][subtask].clone(),
                batch_size: config.batch_size,
                watermark_interval: config.watermark_interval,
                policy: config.error_policy,
                dead_letters: dead_letters.clone(),
                control: control.clone(),
            };
            match build_node(&graph, stage.head, &mut env_of, &mut res)? {
                Built::Runner(r) => tasks.push((graph.nodes[stage.head].name.clone(), subtask, r)),
                Built::Push(_) => {
                    return Err(StreamError::Internal("stage head built as a link".into()))
                }
            }
        }
    }

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
    Ok(JobHandle {
        threads,
        control,
        metrics: registry,
        dead_letters,
    })
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
                Built::Runner(_) => Err(StreamError::Internal(
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
