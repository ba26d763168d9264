//! [`StreamError`]: what can stop a job, and whose fault it was.

use thiserror::Error;

/// Why a job (or one of its parts) failed.
///
/// The variants say whose fault it was: the input (`BadInput`), user code (`UserFunction`,
/// `Panic`), the outside world (`Io`, `External`), the job's definition (`Config`), or the engine
/// itself (`Internal`). `Cancelled` is what the other tasks of a job report once one task failed:
/// the job reports the first error that is not `Cancelled`.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A record could not be decoded (policy `fail`).
    #[error("bad input in {origin}: {reason}")]
    BadInput {
        /// Source name and position: file and byte offset / line.
        origin: String,
        /// Why the record was rejected, naming the field.
        reason: String,
    },
    /// A user function reported an error for a record (policy `fail`).
    #[error("operator `{operator}` failed on {record}: {reason}")]
    UserFunction {
        /// The operator's name.
        operator: String,
        /// Which record: an [`crate::Event`] by its id and where it was read (file and line,
        /// Kafka partition and offset), any other record by its JSON form (cut short).
        record: String,
        /// The user function's error.
        reason: String,
    },
    /// A user function or operator panicked.
    #[error("`{task}` (subtask {subtask}) panicked: {message}")]
    Panic {
        /// The stage's head operator.
        task: String,
        /// Which parallel instance.
        subtask: usize,
        /// The panic message.
        message: String,
    },
    /// An I/O error reading or writing a file or stream.
    #[error("I/O error in {context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external system failed.
    #[error("{system}: {message}")]
    External {
        /// Which system (connector).
        system: String,
        /// What was being done, and what it said.
        message: String,
        /// The system's own error, when there is one: a caller can downcast it to decide
        /// (a database sink retries on a SQLSTATE class, say). See [`StreamError::external`].
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The job is not valid as defined.
    #[error("invalid job: {0}")]
    Config(String),
    /// Writing, reading or restoring a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Another task failed or the job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// A broken invariant: a bug in streamcore.
    #[error("internal error (a bug in streamcore): {0}")]
    Internal(String),
}

impl StreamError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StreamError::Io {
            context: context.into(),
            source,
        }
    }

    /// An external system's error: `message` says what was being done, `source` is the
    /// system's own error, kept for callers to inspect (its text is appended to the message).
    ///
    /// ```
    /// use streamcore::StreamError;
    /// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let e = StreamError::external("postgres", "connecting to 127.0.0.1:5432", refused);
    /// assert_eq!(e.to_string(), "postgres: connecting to 127.0.0.1:5432: refused");
    /// let source = std::error::Error::source(&e).unwrap();
    /// let io = source.downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    pub fn external(
        system: impl Into<String>,
        doing: impl std::fmt::Display,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        StreamError::External {
            system: system.into(),
            message: format!("{doing}: {source}"),
            source: Some(source),
        }
    }

    /// True for `Cancelled`: a consequence of another failure, not a cause.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, StreamError::Cancelled)
    }
}

/// Results of streamcore operations.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;
