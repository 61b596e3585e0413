//! Group commit: one flush makes every game's appended events durable.
//!
//! A game appends its batch to the log (fast: it lands in sled's memory) and then waits here.
//! The committer takes every waiting game, runs one `sync`, and wakes them all. While a flush
//! runs, new waiters queue up for the next one, so under load each flush serves many games.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use umpire_store::Log;

use crate::config::Durability;
use crate::error::{HubError, Result};
use crate::metrics::Metrics;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The handle games use to wait for durability.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    /// `None` when durability is off: commits return at once.
    tx: Option<mpsc::UnboundedSender<Waiter>>,
}

impl Committer {
    /// Start the committer task for `log`. It ends when every handle is dropped.
    pub(crate) fn spawn(log: Arc<dyn Log>, durability: Durability, metrics: Arc<Metrics>) -> Self {
        if durability == Durability::None {
            return Committer { tx: None };
        }
        // Unbounded, but each game waits on at most one commit at a time, so the queue is
        // never longer than the number of live games.
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        // Not tracked with the games: it must outlive them at shutdown to commit their last
        // batches. It ends when the hub and every game task have dropped their handles.
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                if let Durability::Batched(window) = durability {
                    tokio::time::sleep(window).await;
                }
                let mut waiters = vec![first];
                while let Ok(more) = rx.try_recv() {
                    waiters.push(more);
                }
                let log = Arc::clone(&log);
                let started = Instant::now();
                // sled's flush blocks on the disk: keep it off the async workers.
                let result = match tokio::task::spawn_blocking(move || log.sync()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("the flush task failed: {e}")),
                };
                metrics.flushed(started.elapsed(), waiters.len());
                if let Err(e) = &result {
                    tracing::error!(error = %e, "flushing the log failed");
                }
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Committer { tx: Some(tx) }
    }

    /// Wait until everything appended before this call is durable.
    ///
    /// # Errors
    /// [`HubError::Store`] if the flush failed; [`HubError::Unavailable`] if the committer is gone.
    pub(crate) async fn commit(&self) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let (done, wait) = oneshot::channel();
        tx.send(done).map_err(|_| HubError::Unavailable)?;
        wait.await
            .map_err(|_| HubError::Unavailable)?
            .map_err(HubError::Store)
    }
}
