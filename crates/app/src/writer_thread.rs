//! Tasks that talk to SQLite's single writer run on a thread of their own.
//!
//! A group commit makes several round trips between its task and SQLite's
//! connection thread (begin, a few multi-row statements, commit). On the
//! shared runtime each round trip waited until a worker thread, busy
//! parsing requests or speaking SMTP, came back to the task, and the one
//! writer everyone waits for sat idle in between. On a thread of its own,
//! with a single-threaded runtime, the task is woken as soon as SQLite
//! answers.
//!
//! The acceptance writer's thread also asks to be scheduled ahead of the
//! rest of the process ([`WRITER_NICE`], [`Priority::AheadOfHandlers`]):
//! every submission waits for it, so time it spends waiting for a core is
//! added to all of them at once. The delivery results' committer does not
//! ([`Priority::Normal`]): nobody waits for one result, and ahead of the
//! delivery tasks it cost more than it saved (see [`Priority`]).
//!
//! Only SQLite's: its connections talk to their own threads through
//! channels, so any runtime may use them. A PostgreSQL connection belongs to
//! the runtime that opened it, and one opened here would fail once this
//! thread ended; PostgreSQL's tasks stay on the main runtime.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// The nice value a writer thread asks for (the rest of the process runs at
/// 0). At 80% of the acceptance peak on two cores, the request handlers and
/// the writer want about 1.8 cores between them, and at nice 0 the
/// acceptance writer waited for a core 0.61–0.64 s for each second it ran
/// (its `/proc/…/schedstat`, sampled each second of `scripts/bench --parts
/// acceptance`); at −10 it waited 0.27 s. A writer uses at most about half
/// a core, so the handlers keep the rest.
pub const WRITER_NICE: i32 = -10;

/// How a writer thread is scheduled against the rest of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// At [`WRITER_NICE`]: for the acceptance writer, which every
    /// submission waits for.
    AheadOfHandlers,
    /// At the process's own priority: for the delivery results' committer.
    /// At −10 it ran ahead of the tasks that speak SMTP whenever a result
    /// arrived, and every thread of the process cost more: in interleaved
    /// runs of `herald-bench --backend sqlite --parts raw,delivery` with
    /// little stolen by the host, Herald's CPU per delivered message was
    /// 128–137 µs at −10 (four runs; the committer alone 20–22 µs) and
    /// 75–129 µs at 0 (eleven runs; 10–16 µs). See docs/performance.md,
    /// "2026-12-03, evening".
    Normal,
}

/// Whether a writer thread was already refused its priority (said once).
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Sets the calling thread's nice value to [`WRITER_NICE`] (on Linux a nice
/// value is a thread's own). Raising a priority needs CAP_SYS_NICE, or an
/// RLIMIT_NICE that allows it (systemd's `LimitNICE=-10`); without either
/// the thread runs at the process's priority, and that is said once.
fn prioritize() {
    let current = std::thread::current();
    let name = current.name().unwrap_or_default();
    let me = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(me), WRITER_NICE) {
        Ok(()) => tracing::debug!(name, nice = WRITER_NICE, "writer thread prioritized"),
        Err(e) => {
            if !REFUSED.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    error = %e,
                    name,
                    "writer threads run at the process's priority; with CAP_SYS_NICE (or systemd's LimitNICE=-10) they would run ahead of request handlers under load"
                );
            }
        }
    }
}

/// Runs `task` to completion, on a new thread named `name` scheduled at
/// `priority` when `backend` is SQLite, else on the current runtime; the
/// returned handle finishes when the task does. If no thread can be
/// started, the task runs on the current runtime.
pub fn spawn<F>(
    backend: herald_store::Backend,
    name: &str,
    priority: Priority,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if backend != herald_store::Backend::Sqlite {
        return tokio::spawn(task);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, name, "no runtime for a writer thread; sharing the main one");
            return tokio::spawn(task);
        }
    };
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // The task is handed over through a slot so that it comes back if the
    // thread cannot be started.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(task)));
    let theirs = slot.clone();
    let started = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if priority == Priority::AheadOfHandlers {
                prioritize();
            }
            let task = theirs.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                runtime.block_on(task);
            }
            let _ = done.send(());
        });
    match started {
        Ok(_) => tokio::spawn(async move {
            let _ = finished.await;
        }),
        Err(e) => {
            tracing::warn!(error = %e, name, "cannot start a writer thread; sharing the main runtime");
            let task = slot.lock().ok().and_then(|mut t| t.take());
            tokio::spawn(async move {
                if let Some(task) = task {
                    task.await;
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{getpriority_process, setpriority_process};
    use rustix::thread::gettid;

    /// A thread's own nice value.
    fn nice() -> i32 {
        getpriority_process(Some(gettid())).expect("getpriority")
    }

    /// The name and nice value of a thread started by [`spawn`] at
    /// `priority`.
    async fn started_at(priority: Priority) -> (Option<String>, i32) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn(
            herald_store::Backend::Sqlite,
            "herald-test-writer",
            priority,
            async move {
                let _ = tx.send((std::thread::current().name().map(str::to_owned), nice()));
            },
        )
        .await
        .unwrap();
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn only_the_acceptance_writer_runs_ahead_of_the_rest_where_the_process_may_raise_priorities()
     {
        let ours = nice();
        // Whether this process may raise a thread's priority (root or
        // CAP_SYS_NICE may; scripts/test runs as root), tried on a thread
        // of its own.
        let allowed =
            std::thread::spawn(|| setpriority_process(Some(gettid()), WRITER_NICE).is_ok())
                .join()
                .unwrap();
        let (name, writer) = started_at(Priority::AheadOfHandlers).await;
        assert_eq!(name.as_deref(), Some("herald-test-writer"));
        assert_eq!(writer, if allowed { WRITER_NICE } else { ours });
        // The results' committer keeps the process's priority.
        let (name, committer) = started_at(Priority::Normal).await;
        assert_eq!(name.as_deref(), Some("herald-test-writer"));
        assert_eq!(committer, ours);
        // The caller's own thread is left as it was.
        assert_eq!(nice(), ours);
    }
}
