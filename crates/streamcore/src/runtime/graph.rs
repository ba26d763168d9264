//! The job graph: nodes (sources, operators, sinks, exchange ends) grouped into stages, each
//! node carrying a type-erased builder that makes one parallel instance of it.
//!
//! The typed API ([`crate::api`]) adds nodes through the generic functions here, which capture
//! the record types in the builders; the executor later calls the builders once per parallel
//! instance, from the leaves of each stage up to its head.

use super::control::JobControl;
use super::exchange::{
    BroadcastSender, ExchangeReceiver, FusedMerge, FusedSender, KeySender, Merge, Outbox,
    RoundRobinSender,
};
use super::nodes::NodeCheckpoint;
use super::nodes::{OperatorNode, SinkNode, SourceRunner};
use super::push::{erase, join_consumers, ErasedPush};
use super::TaskRunner;
use crate::checkpoint::coordinator::CheckpointHub;
use crate::checkpoint::StateRestore;
use crate::context::{DeadLetter, DeadLetterQueue, ErrorPolicy, TaskContext, TaskInfo};
use crate::data::{Data, Key};
use crate::error::{Result, StreamError};
use crate::event_time::{EventTime, SplitWatermarks, WatermarkGenerator, WatermarkStrategy};
use crate::message::Envelope;
use crate::metrics::{ExchangeMetrics, NodeKind, OperatorMetrics};
use crate::operator::{Operator, Output, SidePort, TypedSide};
use crate::sink::Committer;
use crate::sink::{Sink, SinkWriter};
use crate::source::Source;
use crossbeam_channel::{Receiver, Sender};
use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// Everything a node's builder needs to make one parallel instance.
pub(crate) struct NodeEnv {
    pub(crate) info: TaskInfo,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) batch_size: usize,
    pub(crate) watermark_interval: std::time::Duration,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letters: Option<Arc<DeadLetterQueue>>,
    pub(crate) control: Arc<JobControl>,
    /// The node's id in the graph.
    pub(crate) node: usize,
    /// Set when the job runs with checkpoints.
    pub(crate) hub: Option<Arc<CheckpointHub>>,
    /// This instance's state, when the job restores from a checkpoint.
    pub(crate) restore: Option<StateRestore>,
    /// The job's state backend.
    pub(crate) state_backend: Option<Arc<crate::state::StateBackend>>,
}

impl NodeEnv {
    pub(crate) fn task_context(&self) -> TaskContext {
        let mut ctx = TaskContext::new(self.info.clone(), self.policy, self.dead_letters.clone());
        ctx.hub = self.hub.clone();
        ctx.metrics = self.metrics.clone();
        ctx.state_backend = self.state_backend.clone();
        ctx
    }

    /// The instance's link to the checkpoint coordinator, if the job checkpoints.
    pub(crate) fn node_checkpoint(&self) -> Option<NodeCheckpoint> {
        self.hub.as_ref().map(|hub| NodeCheckpoint {
            hub: hub.clone(),
            node: self.node,
            subtask: self.info.subtask,
            restore: self.restore.clone(),
        })
    }
}

/// Per-run resources that builders take from: source readers, exchange channels.
#[derive(Default)]
pub(crate) struct RunResources {
    /// Per node id: one reader per subtask (`Box<R>` erased), taken by the builder.
    pub(crate) readers: Vec<Vec<Option<Box<dyn Any + Send>>>>,
    /// Per exchange id.
    pub(crate) exchanges: Vec<Option<ExchangeRun>>,
}

/// The channels of one exchange for one run.
pub(crate) struct ExchangeRun {
    /// `Vec<Sender<Envelope<T>>>`, one per downstream subtask.
    pub(crate) senders: Box<dyn Any>,
    /// `Receiver<Envelope<T>>` per downstream subtask, taken by the receiving builders.
    pub(crate) receivers: Vec<Option<Box<dyn Any + Send>>>,
    /// Total number of upstream tasks.
    pub(crate) num_senders: usize,
    /// First sender index of each sending node: `(node id, offset)`.
    pub(crate) offsets: Vec<(usize, usize)>,
    pub(crate) metrics: Arc<ExchangeMetrics>,
    /// Set when every sender and the receiver of the exchange are one task and the receiving
    /// chain runs on that task's thread ([`crate::JobConfig::fuse_single_exchanges`]): no
    /// channels; the receiving stage is built first, its [`FusedMerge`] left in
    /// `fused_merge` (an `Arc<Mutex<FusedMerge<T>>>`) for the senders to share.
    pub(crate) fused: bool,
    pub(crate) fused_merge: Option<Box<dyn Any + Send>>,
}

/// What a builder made: a chain link, or (for a stage head) the task body, or (for the head
/// of a stage fused into its senders' task) the `Arc<Mutex<FusedMerge<T>>>` they share.
pub(crate) enum Built {
    Push(ErasedPush),
    Runner(Box<dyn TaskRunner>),
    Fused(Box<dyn Any + Send>),
}

/// The built consumers of a node's outputs.
pub(crate) struct NodeOutputs {
    pub(crate) main: Vec<ErasedPush>,
    pub(crate) sides: Vec<(u64, Box<dyn SidePort>)>,
}

pub(crate) type BuildFn = Box<dyn Fn(&NodeEnv, &mut RunResources, NodeOutputs) -> Result<Built>>;
pub(crate) type SideMaker = Box<dyn Fn(usize, Vec<ErasedPush>) -> Box<dyn SidePort>>;
/// Plans a source for a run: its parallelism and one erased reader per subtask, given the
/// job's parallelism, whether it checkpoints, and the positions to restore.
pub(crate) type PrepareFn =
    Box<dyn FnMut(usize, bool, Option<Vec<Vec<u8>>>) -> Result<Vec<Box<dyn Any + Send>>>>;
/// Makes the committer of an exactly-once sink.
pub(crate) type CommitterFn = Box<dyn FnMut() -> Result<Option<Box<dyn Committer>>>>;
/// Makes an exchange's channels: `(capacity, downstream parallelism) -> (senders, receivers)`.
pub(crate) type ChannelMaker =
    Box<dyn Fn(usize, usize) -> (Box<dyn Any>, Vec<Option<Box<dyn Any + Send>>>)>;

pub(crate) struct SideSpec {
    pub(crate) tag: u64,
    pub(crate) consumers: Vec<usize>,
    pub(crate) make: SideMaker,
}

/// Makes the watermark generator of one source reader (set by `Stream::with_watermarks`).
pub(crate) type WatermarkFactory<T> = Box<dyn Fn() -> Box<dyn WatermarkGenerator<T>>>;

pub(crate) struct Node {
    /// For sources: the `RefCell<Option<WatermarkFactory<T>>>` the source's builder reads.
    pub(crate) watermarks: Option<Rc<dyn Any>>,
    /// A source's or sink's own metrics.
    pub(crate) connector_metrics: Option<Arc<dyn crate::metrics::ConnectorMetrics>>,
    /// The display name: in metrics, logs and errors.
    pub(crate) name: String,
    /// The state identity the user set (`Stream::uid`); see [`Graph::state_ids`].
    pub(crate) uid: Option<String>,
    /// Set when the node's main output is updating (a changelog): the node where the
    /// updates start. Stateless operators and exchanges keep their input's.
    pub(crate) updating: Option<usize>,
    /// The schema of the node's main output, for streams of rows (`Stream::with_schema`);
    /// filters and exchanges keep their input's.
    pub(crate) schema: Option<std::sync::Arc<crate::row::Schema>>,
    pub(crate) kind: NodeKind,
    pub(crate) stage: usize,
    pub(crate) consumers: Vec<usize>,
    pub(crate) sides: Vec<SideSpec>,
    pub(crate) build: BuildFn,
    /// For sinks.
    pub(crate) committer: Option<CommitterFn>,
}

pub(crate) enum StageHead {
    Source { prepare: PrepareFn },
    Exchange,
}

pub(crate) struct StageSpec {
    pub(crate) head: usize,
    pub(crate) kind: StageHead,
    /// Set when the run is planned.
    pub(crate) parallelism: usize,
    /// A parallelism the stage must have whatever the job's (1 for all-windows).
    pub(crate) fixed_parallelism: Option<usize>,
}

pub(crate) struct ExchangeSpec {
    pub(crate) name: String,
    /// The sending nodes, with their stages.
    pub(crate) senders: Vec<(usize, usize)>,
    pub(crate) downstream_stage: usize,
    pub(crate) make_channels: ChannelMaker,
    /// How each sender routes (`hash`, `rebalance`, `broadcast`), by position in `senders`.
    pub(crate) partitioning: Vec<&'static str>,
}

/// Where a stream comes from: a node's main output, or one of its side outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Port {
    pub(crate) node: usize,
    pub(crate) side: Option<u64>,
}

pub(crate) type DeadLetterFactory =
    Box<dyn FnMut(&TaskInfo) -> Result<Box<dyn SinkWriter<DeadLetter>>>>;

#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) stages: Vec<StageSpec>,
    pub(crate) exchanges: Vec<ExchangeSpec>,
    pub(crate) dead_letters: Option<DeadLetterFactory>,
    /// Mistakes found while the job was built (invalid windows, patterns, watermark
    /// placement…): builders record them instead of panicking, and `run` refuses the job with
    /// the first one, naming the operator.
    pub(crate) errors: Vec<String>,
}

impl Graph {
    fn push_node(&mut self, name: &str, kind: NodeKind, stage: usize, build: BuildFn) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            name: format!("{name}#{id}"),
            uid: None,
            updating: None,
            schema: None,
            kind,
            stage,
            consumers: Vec::new(),
            sides: Vec::new(),
            build,
            watermarks: None,
            committer: None,
            connector_metrics: None,
        });
        id
    }

    /// Makes the source behind `node` generate watermarks with `strategy`, per split: `node`
    /// is the source itself, or a filter chained to it (filters keep the record type, so the
    /// source's records have the same event times; the filtered-out ones count too, as they
    /// would at the source).
    ///
    /// Anywhere else (after an operator that changes the record type, or an exchange: the
    /// source's splits are no longer known) the job is refused, saying where to move it.
    pub(crate) fn set_watermarks<T: Data + EventTime>(
        &mut self,
        node: usize,
        strategy: WatermarkStrategy,
    ) {
        let mut at = node;
        loop {
            if let Some(cell) = self.nodes[at]
                .watermarks
                .as_ref()
                .and_then(|c| c.downcast_ref::<RefCell<Option<WatermarkFactory<T>>>>())
            {
                *cell.borrow_mut() =
                    Some(Box::new(move || Box::new(SplitWatermarks::new(strategy))));
                return;
            }
            let producer = (self.nodes[at].kind == NodeKind::Filter)
                .then(|| self.producers_of(at))
                .and_then(|p| match p[..] {
                    [one] if self.nodes[one].stage == self.nodes[at].stage => Some(one),
                    _ => None,
                });
            match producer {
                Some(p) => at = p,
                None => {
                    let message = format!(
                        "with_watermarks on `{}`: watermarks are generated per source split, so \
                         call it on a source's stream or after filters of it — not after `{}`, \
                         which changes the records or their partitioning (move with_watermarks \
                         up to the source)",
                        self.nodes[node].name, self.nodes[at].name
                    );
                    return self.refuse(message);
                }
            }
        }
    }

    /// The nodes whose main output feeds `node`.
    fn producers_of(&self, node: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].consumers.contains(&node))
            .collect()
    }

    /// Adds `id` as a consumer of `port`.
    fn connect(&mut self, port: Port, id: usize) {
        let node = &mut self.nodes[port.node];
        match port.side {
            None => node.consumers.push(id),
            Some(tag) => node
                .sides
                .iter_mut()
                .find(|s| s.tag == tag)
                .expect("side port registered before use")
                .consumers
                .push(id),
        }
    }

    /// Records a mistake in the job's definition; `run` and `start` refuse the job with it.
    pub(crate) fn refuse(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Renames a node (keeping its id suffix off: the user chose the name).
    pub(crate) fn rename(&mut self, node: usize, name: &str) {
        self.nodes[node].name = name.to_string();
    }

    /// Marks `node`'s main output as updating: the changelog starts there.
    pub(crate) fn mark_updating(&mut self, node: usize) {
        self.nodes[node].updating = Some(node);
    }

    /// Marks `node`'s main output as append-only: it turns a changelog into rows that are
    /// never withdrawn (the final rows of a bounded input).
    pub(crate) fn mark_append_only(&mut self, node: usize) {
        self.nodes[node].updating = None;
    }

    /// Where the updates of the stream at `port` start, if it is updating (side outputs —
    /// late records, say — are append-only).
    pub(crate) fn updating_origin(&self, port: Port) -> Option<usize> {
        match port.side {
            None => self.nodes[port.node].updating,
            Some(_) => None,
        }
    }

    /// Sets a node's state identity.
    pub(crate) fn set_uid(&mut self, node: usize, uid: &str) {
        self.nodes[node].uid = Some(uid.to_string());
    }

    /// Every node's state identity, by node index: what checkpoints key its state by.
    ///
    /// A node's id is the one the user set with `Stream::uid`, or else its display name (the
    /// name given with `Stream::name`, or `kind#index` by position in the graph). Ids the user
    /// set must be unique: a duplicate is an error naming both operators. A display name that
    /// is not unique (two operators named alike, or one named like another's id) gets its
    /// node index appended; should that still meet another id, the job is refused, so no two
    /// nodes ever restore the same state.
    pub(crate) fn state_ids(&self) -> Result<Vec<String>> {
        let mut explicit: std::collections::HashMap<&str, usize> = Default::default();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(uid) = n.uid.as_deref() {
                if uid.is_empty() {
                    return Err(StreamError::Config(format!(
                        "operator `{}` has an empty id (Stream::uid)",
                        n.name
                    )));
                }
                if let Some(&other) = explicit.get(uid) {
                    return Err(StreamError::Config(format!(
                        "operators `{}` and `{}` both have the id `{uid}`: ids name operator state in checkpoints and must be unique (Stream::uid)",
                        self.nodes[other].name, n.name
                    )));
                }
                explicit.insert(uid, i);
            }
        }
        let mut name_count: std::collections::HashMap<&str, usize> = Default::default();
        for n in self.nodes.iter().filter(|n| n.uid.is_none()) {
            *name_count.entry(n.name.as_str()).or_default() += 1;
        }
        let ids: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.uid.as_deref() {
                Some(uid) => uid.to_string(),
                None if name_count[n.name.as_str()] > 1
                    || explicit.contains_key(n.name.as_str()) =>
                {
                    format!("{}#{i}", n.name)
                }
                None => n.name.clone(),
            })
            .collect();
        // A generated id (`name#position`) may still meet a name or uid chosen like it.
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        for (i, id) in ids.iter().enumerate() {
            if let Some(&other) = seen.get(id.as_str()) {
                return Err(StreamError::Config(format!(
                    "operators `{}` and `{}` would both keep their state under the id `{id}`: give one of them its own id (Stream::uid)",
                    self.nodes[other].name, self.nodes[i].name
                )));
            }
            seen.insert(id, i);
        }
        Ok(ids)
    }

    /// Adds a source; it heads a new stage.
    pub(crate) fn add_source<T: Data, S: Source<T>>(&mut self, name: &str, source: S) -> Port {
        let id = self.nodes.len();
        let stage = self.stages.len();
        let source_name = name.to_string();
        let connector_metrics = source.connector_metrics();
        let source = Rc::new(RefCell::new(source));
        let for_committer = source.clone();
        let prepare: PrepareFn = Box::new(move |job_parallelism, checkpointing, positions| {
            let mut source = source.borrow_mut();
            let parallelism = source.parallelism(job_parallelism).max(1);
            if checkpointing && !source.supports_checkpoints() {
                return Err(StreamError::Config(format!(
                    "source `{source_name}` cannot record its position in checkpoints; run the job without checkpoints or use a source that can"
                )));
            }
            let readers = match positions {
                Some(p) => source.restore_readers(parallelism, p)?,
                None => source.create_readers(parallelism)?,
            };
            if readers.len() != parallelism {
                return Err(StreamError::Internal(format!(
                    "source made {} readers for parallelism {parallelism}",
                    readers.len()
                )));
            }
            Ok(readers
                .into_iter()
                .map(|r| Box::new(r) as Box<dyn Any + Send>)
                .collect())
        });
        self.stages.push(StageSpec {
            head: id,
            kind: StageHead::Source { prepare },
            parallelism: 0,
            fixed_parallelism: None,
        });
        let watermarks: Rc<RefCell<Option<WatermarkFactory<T>>>> = Rc::default();
        let factory = watermarks.clone();
        let build: BuildFn = Box::new(move |env, res, outputs| {
            let reader = res.readers[id][env.info.subtask]
                .take()
                .and_then(|r| r.downcast::<S::Reader>().ok())
                .ok_or_else(|| StreamError::Internal("source reader missing".into()))?;
            Ok(Built::Runner(Box::new(SourceRunner {
                reader: *reader,
                watermarks: factory.borrow().as_ref().map(|make| make()),
                watermark_interval: env.watermark_interval,
                ctx: env.task_context(),
                down: join_consumers::<T>(outputs.main),
                metrics: env.metrics.clone(),
                batch_size: env.batch_size,
                checkpoint: env.node_checkpoint(),
            })))
        });
        self.push_node(name, NodeKind::Source, stage, build);
        self.nodes[id].watermarks = Some(watermarks);
        self.nodes[id].committer = Some(Box::new(move || for_committer.borrow_mut().committer()));
        self.nodes[id].connector_metrics = connector_metrics;
        Port {
            node: id,
            side: None,
        }
    }

    /// Adds an operator consuming `input`, fused into the input's stage.
    pub(crate) fn add_operator<Op>(
        &mut self,
        input: Port,
        name: &str,
        kind: NodeKind,
        op: Op,
    ) -> Port
    where
        Op: Operator + Clone,
    {
        let stage = self.nodes[input.node].stage;
        let build: BuildFn = Box::new(move |env, _res, outputs| {
            if env.hub.is_some() && !op.supports_checkpoints() {
                return Err(StreamError::Config(format!(
                    "operator `{}` does not support checkpoints yet; run the job without checkpoints",
                    env.info.name
                )));
            }
            let out = Output::new(
                env.batch_size,
                join_consumers::<Op::Out>(outputs.main),
                outputs.sides,
            );
            let node = OperatorNode {
                op: op.clone(),
                prototype: env.hub.is_some().then(|| op.clone()),
                ctx: env.task_context(),
                out,
                metrics: env.metrics.clone(),
                rejected_seen: 0,
                published_stats: Default::default(),
                checkpoint: env.node_checkpoint(),
            };
            Ok(Built::Push(erase::<Op::In>(Box::new(node))))
        });
        let id = self.push_node(name, kind, stage, build);
        self.nodes[id].updating = self.updating_origin(input);
        if kind == NodeKind::Filter && input.side.is_none() {
            self.nodes[id].schema = self.nodes[input.node].schema.clone();
        }
        self.connect(input, id);
        Port {
            node: id,
            side: None,
        }
    }

    /// Registers side output `tag` (of type `U`) on `node`, returning its port.
    pub(crate) fn side_port<U: Data>(&mut self, node: usize, tag: u64) -> Port {
        let sides = &mut self.nodes[node].sides;
        if !sides.iter().any(|s| s.tag == tag) {
            let make: SideMaker = Box::new(|batch_size, consumers| {
                Box::new(TypedSide::<U> {
                    buf: Vec::new(),
                    batch_size,
                    down: join_consumers::<U>(consumers),
                })
            });
            sides.push(SideSpec {
                tag,
                consumers: Vec::new(),
                make,
            });
        }
        Port {
            node,
            side: Some(tag),
        }
    }

    /// Adds a sink consuming `input`, fused into the input's stage.
    pub(crate) fn add_sink<T: Data, S: Sink<T>>(&mut self, input: Port, name: &str, sink: S) {
        let stage = self.nodes[input.node].stage;
        let connector_metrics = sink.connector_metrics();
        let accepts_updates = sink.accepts_updates();
        let sink = Rc::new(RefCell::new(sink));
        let for_committer = sink.clone();
        let build: BuildFn = Box::new(move |env, _res, _outputs| {
            let writer = sink.borrow_mut().create_writer(&env.info)?;
            let node = SinkNode {
                writer,
                metrics: env.metrics.clone(),
                checkpoint: env.node_checkpoint(),
                _t: std::marker::PhantomData,
            };
            Ok(Built::Push(erase::<T>(Box::new(node))))
        });
        let id = self.push_node(name, NodeKind::Sink, stage, build);
        if let Some(origin) = self.updating_origin(input) {
            if !accepts_updates {
                let message = format!(
                    "sink `{}` takes append-only streams, but its input is updating: `{}` \
                     emits changes (inserts, updates, deletes) of a result table. Write it to a \
                     sink that takes updates (a changelog or upsert sink), or keep only what \
                     cannot change",
                    self.nodes[id].name, self.nodes[origin].name
                );
                self.refuse(message);
            }
        }
        self.nodes[id].committer = Some(Box::new(move || for_committer.borrow_mut().committer()));
        self.nodes[id].connector_metrics = connector_metrics;
        self.connect(input, id);
    }

    /// Adds an exchange from `inputs` (one or more streams) to a new stage, returning the port
    /// of the new stage's head. `key` routes by key group; `None` spreads batches round-robin.
    pub(crate) fn add_exchange<T, K, KF>(
        &mut self,
        inputs: &[Port],
        broadcast_inputs: &[Port],
        name: &str,
        key: Option<KF>,
        parallelism: Option<usize>,
    ) -> Port
    where
        T: Data,
        K: Key,
        KF: Fn(&T) -> K + Clone + Send + 'static,
    {
        let exchange = self.exchanges.len();
        let downstream_stage = self.stages.len();
        let mut senders = Vec::new();
        let mut partitioning = Vec::new();
        let routed = inputs.iter().map(|&p| (p, false));
        for (input, broadcast) in routed.chain(broadcast_inputs.iter().map(|&p| (p, true))) {
            let stage = self.nodes[input.node].stage;
            let send_node = self.nodes.len();
            let build: BuildFn = {
                let key = key.clone();
                Box::new(move |env, res, _outputs| {
                    let run = res.exchanges[exchange]
                        .as_mut()
                        .ok_or_else(|| StreamError::Internal("exchange not planned".into()))?;
                    let from = run
                        .offsets
                        .iter()
                        .find(|(n, _)| *n == send_node)
                        .map(|(_, o)| *o)
                        .expect("sending node has an offset")
                        + env.info.subtask;
                    if run.fused {
                        // The receiving stage's chain, built already: records go straight in.
                        let merge = run
                            .fused_merge
                            .as_ref()
                            .and_then(|m| m.downcast_ref::<Arc<Mutex<FusedMerge<T>>>>())
                            .ok_or_else(|| {
                                StreamError::Internal(
                                    "fused exchange built without its chain".into(),
                                )
                            })?
                            .clone();
                        return Ok(Built::Push(erase::<T>(Box::new(FusedSender {
                            from,
                            merge,
                        }))));
                    }
                    let queues = run
                        .senders
                        .downcast_ref::<Vec<Sender<Envelope<T>>>>()
                        .expect("exchange channel type")
                        .clone();
                    let outbox = Outbox {
                        from,
                        metrics: run.metrics.clone(),
                        control: env.control.clone(),
                        queues,
                    };
                    let push: Box<dyn super::push::Push<T>> = match &key {
                        _ if broadcast => Box::new(BroadcastSender { outbox }),
                        Some(key_fn) => Box::new(KeySender {
                            buffers: (0..outbox.queues.len()).map(|_| Vec::new()).collect(),
                            outbox,
                            key_fn: key_fn.clone(),
                            key_groups: env.info.key_groups,
                            _k: std::marker::PhantomData,
                        }),
                        None => Box::new(RoundRobinSender {
                            next: env.info.subtask % outbox.queues.len(),
                            outbox,
                        }),
                    };
                    Ok(Built::Push(erase::<T>(push)))
                })
            };
            let id = self.push_node(&format!("{name}-send"), NodeKind::Exchange, stage, build);
            self.connect(input, id);
            senders.push((id, stage));
            partitioning.push(match (broadcast, key.is_some()) {
                (true, _) => "broadcast",
                (false, true) => "hash",
                (false, false) => "rebalance",
            });
        }
        let head = self.nodes.len();
        let build: BuildFn = Box::new(move |env, res, outputs| {
            let run = res.exchanges[exchange]
                .as_mut()
                .ok_or_else(|| StreamError::Internal("exchange not planned".into()))?;
            let merge = Merge::new(
                run.num_senders,
                join_consumers::<T>(outputs.main),
                env.hub.clone(),
                run.metrics.clone(),
                env.info.subtask,
            );
            if run.fused {
                let fused = FusedMerge {
                    merge,
                    opened: false,
                    ended: false,
                };
                return Ok(Built::Fused(Box::new(Arc::new(Mutex::new(fused)))));
            }
            let queue = run.receivers[env.info.subtask]
                .take()
                .and_then(|r| r.downcast::<Receiver<Envelope<T>>>().ok())
                .ok_or_else(|| StreamError::Internal("exchange receiver missing".into()))?;
            Ok(Built::Runner(Box::new(ExchangeReceiver {
                queue: *queue,
                merge,
            })))
        });
        self.stages.push(StageSpec {
            head,
            kind: StageHead::Exchange,
            parallelism: 0,
            fixed_parallelism: parallelism,
        });
        let make_channels: ChannelMaker = Box::new(|capacity, parallelism| {
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..parallelism)
                .map(|_| crossbeam_channel::bounded::<Envelope<T>>(capacity))
                .unzip();
            let receivers = receivers
                .into_iter()
                .map(|r| Some(Box::new(r) as Box<dyn Any + Send>))
                .collect();
            (Box::new(senders) as Box<dyn Any>, receivers)
        });
        let exchange_name = name.to_string();
        let updating = inputs
            .iter()
            .chain(broadcast_inputs)
            .find_map(|&p| self.updating_origin(p));
        let schema = inputs
            .first()
            .filter(|p| p.side.is_none())
            .and_then(|p| self.nodes[p.node].schema.clone());
        self.push_node(name, NodeKind::Operator, downstream_stage, build);
        self.nodes[head].updating = updating;
        self.nodes[head].schema = schema;
        // The receiving head only forwards; it is not an operator users think about.
        self.nodes[head].kind = NodeKind::Exchange;
        self.exchanges.push(ExchangeSpec {
            name: exchange_name,
            senders,
            downstream_stage,
            make_channels,
            partitioning,
        });
        Port {
            node: head,
            side: None,
        }
    }
}
