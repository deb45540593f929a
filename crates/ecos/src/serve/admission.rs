//! Bounded concurrency with back-pressure: at most `max_in_flight` requests
//! are processed and at most `max_queued` wait; the next one is shed (503
//! with Retry-After) instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics as m;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// Every processing slot is busy and the waiting line is full.
    #[error("overloaded: {in_flight} requests in flight and {queued} waiting")]
    Shed {
        /// Requests being processed.
        in_flight: usize,
        /// Requests waiting.
        queued: usize,
    },
    /// No slot became free within the wait allowed.
    #[error("no processing slot became free within {0:?}")]
    Timeout(Duration),
    /// The service is shutting down.
    #[error("the service is shutting down")]
    Closed,
}

/// The admission gate.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

/// A processing slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_IN_FLIGHT).decrement(1.0);
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_ADMISSION).decrement(1.0);
    }
}

impl Admission {
    /// A gate with `max_in_flight` slots and room for `max_queued` waiting.
    pub fn new(max_in_flight: usize, max_queued: usize) -> Admission {
        Admission {
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_queued,
            queued: AtomicUsize::new(0),
        }
    }

    /// Requests being processed now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.slots.available_permits()
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Take a slot, waiting at most `wait` if the waiting line has room.
    pub async fn enter(&self, wait: Duration) -> Result<Slot, AdmissionError> {
        let slot = |p: OwnedSemaphorePermit| {
            metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_IN_FLIGHT).increment(1.0);
            Slot { _permit: p }
        };
        match self.slots.clone().try_acquire_owned() {
            Ok(p) => return Ok(slot(p)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(AdmissionError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let queued = self.queued.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_ADMISSION).increment(1.0);
        let _waiting = Waiting(&self.queued);
        if queued >= self.max_queued {
            return Err(AdmissionError::Shed {
                in_flight: self.in_flight(),
                queued,
            });
        }
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(slot(p)),
            Ok(Err(_)) => Err(AdmissionError::Closed),
            Err(_) => Err(AdmissionError::Timeout(wait)),
        }
    }

    /// Stop admitting and wait up to `grace` for every slot to be released.
    /// Returns the number of requests still in flight when it gave up.
    pub async fn drain(&self, grace: Duration) -> usize {
        let all = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        match tokio::time::timeout(grace, self.slots.acquire_many(all)).await {
            Ok(Ok(p)) => {
                p.forget();
                self.slots.close();
                0
            }
            _ => {
                self.slots.close();
                self.in_flight()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sheds_beyond_the_waiting_line_and_drains() {
        let a = Arc::new(Admission::new(1, 1));
        let first = a.enter(Duration::from_secs(1)).await.unwrap();
        assert_eq!(a.in_flight(), 1);
        let a2 = a.clone();
        let waiter =
            tokio::spawn(async move { a2.enter(Duration::from_secs(5)).await.map(|_| ()) });
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let shed = a.enter(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(
            shed,
            AdmissionError::Shed {
                in_flight: 1,
                queued: 1
            }
        );
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(a.queued(), 0);
        let held = a.enter(Duration::from_secs(1)).await.unwrap();
        let a3 = a.clone();
        let drain = tokio::spawn(async move { a3.drain(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!drain.is_finished(), "drain must wait for in-flight work");
        drop(held);
        assert_eq!(drain.await.unwrap(), 0);
        assert_eq!(
            a.enter(Duration::from_secs(1)).await.unwrap_err(),
            AdmissionError::Closed
        );
    }

    #[tokio::test]
    async fn waiting_times_out() {
        let a = Admission::new(1, 4);
        let _held = a.enter(Duration::from_secs(1)).await.unwrap();
        let e = a.enter(Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(e, AdmissionError::Timeout(Duration::from_millis(20)));
        assert_eq!(a.queued(), 0);
    }
}
