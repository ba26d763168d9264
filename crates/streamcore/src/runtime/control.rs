//! [`JobControl`]: the one piece of state all tasks of a running job share — whether the job
//! must stop, and the first error that made it stop.

use crate::error::StreamError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long a blocked send or receive waits before checking whether the job was cancelled:
/// the bound on how long a failure takes to stop every task.
pub(crate) const CANCEL_CHECK: Duration = Duration::from_millis(20);

#[derive(Default)]
pub(crate) struct JobControl {
    cancelled: AtomicBool,
    stopping: AtomicBool,
    stopped_with_savepoint: AtomicBool,
    first_error: Mutex<Option<StreamError>>,
}

impl JobControl {
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Stops the job. Records `error` as the job's error unless it is a consequence
    /// (`Cancelled`) or an earlier error was recorded.
    pub(crate) fn fail(&self, error: StreamError) {
        if !error.is_cancelled() {
            let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                tracing::debug!(%error, "job failed");
                *slot = Some(error);
            }
        }
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Asks the sources to stop at their next batch boundary; the job then drains and ends.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Ends the job right after a savepoint: tasks stop without draining (what they did after
    /// the savepoint is not committed), and the job counts as stopped, not failed.
    pub(crate) fn stop_with_savepoint(&self) {
        self.stopped_with_savepoint.store(true, Ordering::Relaxed);
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_stopped_with_savepoint(&self) -> bool {
        self.stopped_with_savepoint.load(Ordering::Relaxed)
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn take_error(&self) -> Option<StreamError> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}
