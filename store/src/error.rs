//! What can go wrong in the store.

use crate::Seq;

/// A fail-stop problem: the store cannot do what was asked, and retrying will not help.
///
/// Expected outcomes (a write refused as stale) are not here: they are the inner `Result` of
/// [`crate::Log::commit`], so `?` cannot carry them off by accident. Cloneable, so that every
/// writer waiting on one failed flush can be told the same reason.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The sled database failed (I/O, or sled's own corruption report).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A file of the log could not be synced or opened.
    #[error("{0}")]
    Io(std::sync::Arc<std::io::Error>),
    /// A stored value starts with a format version this build does not know: the data was
    /// written by a newer umpire, or is not umpire's.
    #[error(
        "{what} has format version {found}, this build reads version {}",
        crate::FORMAT_VERSION
    )]
    UnknownVersion {
        /// Which kind of value.
        what: &'static str,
        /// The version byte found.
        found: u8,
    },
    /// A stored value could not be decoded.
    #[error("{what} is corrupt: {detail}")]
    Corrupt {
        /// Which kind of value.
        what: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The stream does not exist.
    #[error("stream {0} does not exist")]
    NoStream(u64),
    /// The log's folder is not open: reopening it after a failure did not succeed yet.
    #[error("the log in {0} is not open")]
    Closed(String),
    /// A networked store could not be reached, or answered with an error: the request may or
    /// may not have been applied (a write's outcome is then read back from the log).
    #[error("{0}")]
    Unavailable(String),
    /// The store holds less than it acknowledged: it was wiped, or restored from an older
    /// copy. Serving it would serve a shorter log than clients were told was durable, so the
    /// server stops writing instead.
    #[error("the store lost acknowledged data: {0}")]
    Lost(String),
    /// Another process holds the folder (sled locks it): two servers must not share a log.
    #[error(
        "the data folder {0} is in use by another process (another umpire?): stop it, or \
         serve another folder with --data"
    )]
    Locked(String),
}

impl StoreError {
    /// Whether the storage itself failed (an I/O error, sled refusing, the folder not open),
    /// rather than one stored value being unreadable: the log must be reopened
    /// ([`crate::Log::recover`]) before it is trusted again.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(_)
                | StoreError::Io(_)
                | StoreError::Closed(_)
                | StoreError::Unavailable(_)
                | StoreError::Lost(_)
        )
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(std::sync::Arc::new(e))
    }
}

/// Why a backend refused one write of a [`crate::Log::commit`]: an expected outcome, not a
/// failure of the store. Nothing of the refused write was applied.
///
/// Both mean the writer's picture of the stream is out of date and it must stop writing to
/// it: the stream is reloaded from the log (or, across processes, served by its new owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The stream is not at the version the writer expected: someone else appended, or the
    /// writer's view is stale.
    #[error("expected the stream at version {expected}, it is at {actual}")]
    Stale {
        /// The version the writer assumed.
        expected: Seq,
        /// The version the stream is at.
        actual: Seq,
    },
    /// The writer no longer holds the stream: in a log shared by several processes, another
    /// process took the stream over (this one stalled past its lease, or was cut off). A
    /// backend that one process holds alone (sled, memory) never refuses so.
    #[error("stream {stream} is now written by another process")]
    NotOwner {
        /// The stream.
        stream: u64,
    },
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
