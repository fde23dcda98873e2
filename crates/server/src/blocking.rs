//! CPU-bound work from request handlers: a query evaluation, a push of thousands of log lines.
//!
//! Such work must not stall the runtime worker that other requests share. `spawn_blocking`
//! moves it to another thread, which costs two thread wake-ups on the request's path (there
//! and back); on a busy machine each wake-up can wait milliseconds for a core, which turned a
//! 1 ms query into 5–15 ms in the query benchmark. On the multi-threaded runtime the work
//! runs in place instead: `block_in_place` hands this worker's other tasks to another thread
//! and the request carries on without waiting for anyone. Tests on a current-thread runtime,
//! where that is not allowed, get `spawn_blocking`.

use tokio::runtime::{Handle, RuntimeFlavor};

/// The work panicked.
#[derive(Debug, thiserror::Error)]
#[error("the work failed: {0}")]
pub struct Panicked(String);

/// Runs `work`, which may take milliseconds of CPU, without stalling other requests.
pub async fn cpu_bound<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Panicked> {
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tokio::task::block_in_place(work)))
            .map_err(|panic| Panicked(panic_text(&panic)));
    }
    tokio::task::spawn_blocking(work).await.map_err(|e| Panicked(e.to_string()))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
