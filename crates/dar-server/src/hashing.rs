//! argon2id work (password hashes, recovery codes) on a small fixed pool of threads.
//!
//! Each argon2id run takes 46 MiB ([`dar_account_provider::lockout::argon2id`]) and a core's
//! worth of time. Tokio's blocking pool would run as many at once as requests arrive (up to
//! 512 threads), so a burst of sign-ins could ask for gigabytes at once. Here one thread per
//! core does all of it, queued: memory held for hashing is at most one run's per core, and a
//! burst waits (bounded by the request timeout) instead of swapping (`docs/load.md`,
//! "Memory").

use std::sync::mpsc;
use std::sync::{LazyLock, Mutex};

use crate::error::AppError;

type Job = Box<dyn FnOnce() + Send>;

/// The pool's queue, started on first use: one worker per available core.
static POOL: LazyLock<Mutex<mpsc::Sender<Job>>> = LazyLock::new(|| {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = std::sync::Arc::new(Mutex::new(receiver));
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for i in 0..workers {
        let receiver = receiver.clone();
        // A worker that cannot start leaves the others; with none, `run` reports the error.
        let _ = std::thread::Builder::new()
            .name(format!("dar-argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panic ends the job (its caller sees the dropped answer), not the
                        // worker.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                }
            });
    }
    Mutex::new(sender)
});

/// Runs `work` (argon2id hashing or verification) on the hashing pool and waits for it.
///
/// # Errors
///
/// [`AppError`] (500, `what` in the log) when the pool is gone or the work panicked.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    POOL.lock()
        .map_err(|_| AppError::internal(what, "the hashing pool is poisoned".to_owned()))?
        .send(job)
        .map_err(|_| AppError::internal(what, "the hashing pool has stopped".to_owned()))?;
    result
        .await
        .map_err(|_| AppError::internal(what, "the hashing work did not finish".to_owned()))
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_the_pool_goes_on() {
        let error = run("test", || -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(error, AppError::Internal(_)), "{error:?}");
        assert_eq!(run("test", || 1).await.unwrap(), 1);
    }
}
