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
//! Only SQLite's: its connections talk to their own threads through
//! channels, so any runtime may use them. A PostgreSQL connection belongs to
//! the runtime that opened it, and one opened here would fail once this
//! thread ended; PostgreSQL's tasks stay on the main runtime.

use std::future::Future;

/// Runs `task` to completion, on a new thread named `name` when `backend`
/// is SQLite, else on the current runtime; the returned handle finishes
/// when the task does. If no thread can be started, the task runs on the
/// current runtime.
pub fn spawn<F>(backend: herald_store::Backend, name: &str, task: F) -> tokio::task::JoinHandle<()>
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
