//! argon2id work (password hashes, recovery codes) on a small fixed pool of threads.
//!
//! Each argon2id run takes 46 MiB ([`dar_account_provider::lockout::argon2id`]) and a core's
//! worth of time. Tokio's blocking pool would run as many at once as requests arrive (up to
//! 512 threads), so a burst of sign-ins could ask for gigabytes at once. Here one thread per
//! core does all of it, queued: memory held for hashing is at most one run's per core, and a
//! burst waits instead of swapping (`docs/load.md`, "Memory"). The queue is bounded: past
//! [`QUEUE_PER_WORKER`] waiting jobs per thread a request is refused at once with 503
//! ([`AppError::Overloaded`]) rather than waiting past its timeout, and a job whose request
//! has already gone (timed out, disconnected) is skipped, not run.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};

use crate::error::AppError;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs that may wait per hashing thread. One argon2id run takes tens of milliseconds here, so
/// a full queue drains in a few seconds, well within the request timeout.
const QUEUE_PER_WORKER: usize = 32;

/// The server's pool, started on first use: one worker per available core.
static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Pool::new(workers, workers * QUEUE_PER_WORKER)
});

/// Worker threads fed by one bounded queue.
struct Pool {
    queue: Mutex<SyncSender<Job>>,
}

impl Pool {
    fn new(workers: usize, capacity: usize) -> Self {
        let (sender, receiver) = mpsc::sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..workers {
            let receiver = receiver.clone();
            // A worker that cannot start leaves the others; with none, `submit` reports it.
            let _ = std::thread::Builder::new()
                .name(format!("dar-argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panic ends the job (its caller sees the dropped answer), not
                            // the worker.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
        }
        Self {
            queue: Mutex::new(sender),
        }
    }

    async fn submit<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        let sent = self
            .queue
            .lock()
            .map_err(|_| AppError::internal(what, "the hashing pool is poisoned".to_owned()))?
            .try_send(job);
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(what, "hashing queue full: request refused");
                return Err(AppError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::internal(
                    what,
                    "the hashing pool has stopped".to_owned(),
                ));
            }
        }
        result
            .await
            .map_err(|_| AppError::internal(what, "the hashing work did not finish".to_owned()))
    }
}

/// Runs `work` (argon2id hashing or verification) on the server's hashing pool and waits for
/// it.
///
/// # Errors
///
/// [`AppError::Overloaded`] (503) when the queue is full; [`AppError`] (500, `what` in the
/// log) when the pool is gone or the work panicked.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    POOL.submit(what, work).await
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    #[tokio::test]
    async fn runs_work_off_the_async_threads_and_returns_its_result() {
        let caller = std::thread::current().id();
        let (value, thread) = run("test", move || (6 * 7, std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_ne!(thread, caller);
    }

    #[tokio::test]
    async fn many_callers_at_once_all_get_their_own_result() {
        let handles: Vec<_> = (0..32u32)
            .map(|i| tokio::spawn(run("test", move || i * 2)))
            .collect();
        for (i, handle) in (0..32u32).zip(handles) {
            assert_eq!(handle.await.unwrap().unwrap(), i * 2);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_with_overloaded_then_drains() {
        // A pool of its own: one worker, room for one waiting job.
        let pool = Arc::new(Pool::new(1, 1));
        let (started, gate) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let busy = {
            let (pool, started, gate) = (pool.clone(), started.clone(), gate.clone());
            tokio::spawn(async move {
                pool.submit("test", move || {
                    started.wait();
                    gate.wait();
                    1
                })
                .await
            })
        };
        // The worker holds the first job; the second waits in the queue.
        tokio::task::spawn_blocking({
            let started = started.clone();
            move || started.wait()
        })
        .await
        .unwrap();
        // The next job waits in the queue; its caller gives up (as a timed-out request does).
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = {
            let ran = ran.clone();
            pool.submit("test", move || {
                ran.store(true, std::sync::atomic::Ordering::SeqCst)
            })
        };
        let pending = tokio::time::timeout(std::time::Duration::from_millis(100), abandoned).await;
        assert!(
            pending.is_err(),
            "a queued job answered while the worker is held"
        );
        // The queue is full: refused at once.
        let error = pool.submit("test", || 3).await.unwrap_err();
        assert!(matches!(error, AppError::Overloaded), "{error:?}");
        assert_eq!(error.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        tokio::task::spawn_blocking(move || gate.wait())
            .await
            .unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 1);
        // The queue drains (the abandoned job is skipped, not run) and takes work again. The
        // first job's answer can arrive before the worker has taken the abandoned job off the
        // queue, so until then the queue may still be full: only `Overloaded` is allowed.
        let mut drained = None;
        for _ in 0..5_000 {
            match pool.submit("test", || 4).await {
                Ok(value) => {
                    drained = Some(value);
                    break;
                }
                Err(AppError::Overloaded) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(other) => panic!("unexpected error while the queue drains: {other:?}"),
            }
        }
        assert_eq!(drained, Some(4), "the queue never drained");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_the_pool_goes_on() {
        let error = run("test", || -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(error, AppError::Internal(_)), "{error:?}");
        assert_eq!(run("test", || 1).await.unwrap(), 1);
    }
}
