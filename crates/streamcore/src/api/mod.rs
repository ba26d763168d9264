//! The typed API: build a [`Job`] from sources, chain operators on [`Stream`]s and
//! [`KeyedStream`]s, end in sinks, and run it with a [`JobConfig`].

mod changelog;
mod connected;
mod job;
mod keyed;
mod stream;
mod windowed;

pub use connected::{ConnectedStreams, KeyedConnectedStreams};
pub(crate) use job::millis;
pub use job::{Job, JobConfig};
pub use keyed::KeyedStream;
pub use stream::{NoKey, Stream};
pub use windowed::WindowedStream;
