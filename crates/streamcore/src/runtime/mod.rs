//! The runtime: turns a job graph into tasks (one OS thread per parallel instance of each
//! stage, but for a stage fused into its senders' task), wires them with bounded exchanges,
//! runs them, and stops them all on the first failure.
//!
//! A *stage* is a tree of operators connected by forward edges, headed by a source or by the
//! receiving end of an exchange. Inside a stage records move by plain function calls
//! ([`push::Push`], one virtual call per batch); between stages they move in batches over
//! bounded channels ([`exchange`]), or — when every sender and the receiver are one task, as
//! at parallelism 1 — by a call into the receiving stage's chain, run in the senders' task
//! ([`crate::JobConfig::fuse_single_exchanges`]).

pub(crate) mod control;
pub(crate) mod exchange;
pub(crate) mod executor;
pub(crate) mod graph;
pub(crate) mod nodes;
pub(crate) mod push;

use crate::error::Result;
use control::JobControl;

/// The body of one task thread: a stage head driving its chain until the input ends.
pub(crate) trait TaskRunner: Send {
    fn run(self: Box<Self>, control: &JobControl) -> Result<()>;
}
