//! The delivery loop. It claims due recipients (committed with a lease
//! before any SMTP is spoken), runs up to `concurrency` deliveries at once,
//! and records their results through one committer task that writes many
//! results per transaction (group commit). On shutdown it stops claiming,
//! lets in-flight deliveries finish for a grace period, records them, and
//! gives back whatever it still holds; a worker that dies instead leaves
//! leases that expire and are claimed again.

use std::sync::Arc;
use std::time::Duration;

use herald_app::{Delivered, DeliveryContext, Herald};
use herald_mailer::PoolLimits;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Deliveries (SMTP transactions) in flight at once.
    pub concurrency: usize,
    /// Recipients claimed per query.
    pub claim_batch: u64,
    /// How long a claim lasts; a crashed worker's mail is retried after it.
    pub lease: Duration,
    /// How often an idle worker looks for due mail (it is also woken when
    /// mail is accepted in the same process).
    pub poll: Duration,
    /// How long shutdown waits for in-flight deliveries.
    pub shutdown_grace: Duration,
    pub pool: PoolLimits,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            claim_batch: 256,
            lease: Duration::from_secs(600),
            poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            pool: PoolLimits::default(),
        }
    }
}

/// A delivery's result and who waits for it to be committed.
type Recorded = (Delivered, oneshot::Sender<()>);

/// In-flight deliveries (sending, or sent and not yet recorded) per
/// sending slot: a crash repeats at most `concurrency × this`.
pub const IN_FLIGHT_PER_SLOT: usize = 16;

/// Results per commit at most.
const COMMIT_BATCH: usize = 512;

/// How long a committer waits for more results before committing fewer
/// than [`COMMIT_ENOUGH`]. A commit's cost is mostly per statement and per
/// transaction, not per row: committing what had arrived at once (about 60
/// results at 10,000 deliveries a second) cost 109 µs of CPU per delivered
/// message in herald-bench; gathering for 10 ms cost 84–96 µs. Recording a
/// result 10 ms later changes nothing for its sender, and the in-flight
/// bound (what a crash can repeat) is unchanged.
const COMMIT_LINGER: Duration = Duration::from_millis(10);

/// Results that are worth a commit without waiting for more.
const COMMIT_ENOUGH: usize = COMMIT_BATCH / 2;

/// Transactions recording results at once on PostgreSQL.
const POSTGRES_COMMITTERS: usize = 3;

/// A delivery worker of this process.
pub struct Worker {
    herald: Herald,
    config: WorkerConfig,
    owner: String,
}

impl Worker {
    pub fn new(herald: Herald, config: WorkerConfig) -> Self {
        let owner = format!("worker-{}-{}", std::process::id(), uuid::Uuid::now_v7());
        Self {
            herald,
            config,
            owner,
        }
    }

    /// The lease owner name this worker claims under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Delivers until `shutdown` turns true, then stops cleanly.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Worker {
            herald,
            config,
            owner,
        } = self;
        tracing::info!(%owner, concurrency = config.concurrency, "delivery worker started");
        // Every sending slot may hand its connection back at once: a pool
        // that kept fewer would close connections only to open them again.
        let mut pool = config.pool;
        pool.idle_per_key = pool.idle_per_key.max(config.concurrency);
        let ctx = Arc::new(DeliveryContext::new(pool));
        let (results, rx) = mpsc::channel::<Recorded>(COMMIT_BATCH * 4);
        // PostgreSQL commits on several connections at once, so several
        // committers overlap their round trips and fsyncs; SQLite has one
        // writer, where a second committer would only wait for it.
        let committers = match herald.store().backend() {
            herald_store::Backend::Sqlite => 1,
            herald_store::Backend::Postgres => POSTGRES_COMMITTERS,
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let committers: Vec<_> = (0..committers)
            .map(|i| {
                herald_app::writer_thread::spawn(
                    herald.store().backend(),
                    &format!("herald-record-{i}"),
                    herald_app::writer_thread::Priority::Normal,
                    commit_loop(herald.clone(), owner.clone(), rx.clone()),
                )
            })
            .collect();
        // Sending slots bound the SMTP sessions in flight; in-flight slots
        // (a delivery keeps one until its result is committed) bound what a
        // crash can repeat, with room to hide the commit's latency.
        let sending = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let permits = Arc::new(Semaphore::new(
            config.concurrency.max(1) * IN_FLIGHT_PER_SLOT,
        ));
        let signal = herald.queue_signal();
        let mut tasks = JoinSet::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        'outer: loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let jobs = match herald
                .claim_jobs(&owner, config.lease, config.claim_batch)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "claiming due mail failed");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = signal.notified() => {}
                    _ = tokio::time::sleep(config.poll) => {}
                    _ = sweep.tick() => ctx.close_idle().await,
                }
                continue;
            }
            for job in jobs {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'outer,
                    },
                    _ = shutdown.changed() => {
                        // Claimed but not started: released below.
                        break 'outer;
                    }
                };
                let herald = herald.clone();
                let ctx = ctx.clone();
                let results = results.clone();
                let sending = sending.clone();
                tasks.spawn(async move {
                    let done = match sending.acquire_owned().await {
                        Ok(_slot) => herald.deliver_job(job, &ctx).await,
                        Err(_) => return,
                    };
                    // The in-flight slot is free once the result is
                    // committed, so what a crash can repeat is bounded.
                    let (ack, committed) = oneshot::channel();
                    if results.send((done, ack)).await.is_ok() {
                        let _ = committed.await;
                    }
                    drop(permit);
                });
            }
        }
        tracing::info!(%owner, in_flight = tasks.len(), "delivery worker stopping");
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(%owner, "in-flight deliveries did not finish in time; their mail is released");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        drop(results);
        for c in committers {
            let _ = c.await;
        }
        match herald.release_claims(&owner).await {
            Ok(n) if n > 0 => tracing::info!(%owner, released = n, "released claimed mail"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(%owner, error = %e, "could not release claimed mail; it is retried when the lease ends")
            }
        }
        ctx.close_all().await;
        tracing::info!(%owner, "delivery worker stopped");
    }
}

/// Records results as they come, many per transaction. A failed commit is
/// retried; if it keeps failing the leases expire and the mail is
/// delivered again (at least once, never lost).
async fn commit_loop(
    herald: Herald,
    owner: String,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Recorded>>>,
) {
    let mut batch: Vec<Delivered> = Vec::with_capacity(COMMIT_BATCH);
    let mut acks = Vec::with_capacity(COMMIT_BATCH);
    loop {
        // One committer gathers while the others commit.
        {
            let mut rx = rx.lock().await;
            let Some((first, ack)) = rx.recv().await else {
                break;
            };
            batch.push(first);
            acks.push(ack);
            // Results keep coming while the first waits: gather them for a
            // moment, so that each commit carries a few hundred.
            let until = tokio::time::Instant::now() + COMMIT_LINGER;
            while batch.len() < COMMIT_BATCH {
                match rx.try_recv() {
                    Ok((r, ack)) => {
                        batch.push(r);
                        acks.push(ack);
                    }
                    Err(_) => {
                        if batch.len() >= COMMIT_ENOUGH {
                            break;
                        }
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some((r, ack))) => {
                                batch.push(r);
                                acks.push(ack);
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match herald.record_deliveries(&owner, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, attempt, "recording delivery results failed");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// Rows deleted per transaction by the event purge.
pub const PURGE_BATCH: u64 = 1000;

/// Deletes events older than each tenant's retention now and then every
/// `every`, until `shutdown` turns true. Each batch is its own short
/// transaction, so acceptance and delivery keep writing in between.
pub async fn purge_loop(herald: Herald, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        match herald.purge_events(PURGE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged events past their retention"),
            Err(e) => tracing::warn!(error = %e, "event purge failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Polls every profile's bounce mailbox when its `poll_minutes` have
/// passed (looking every `scan`), until `shutdown` turns true. A mailbox
/// is polled first as soon as it is seen.
pub async fn bounce_loop(herald: Herald, scan: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut last: std::collections::HashMap<_, tokio::time::Instant> = Default::default();
    loop {
        match herald.bounce_mailboxes().await {
            Ok(list) => {
                for (profile, every) in list {
                    if *shutdown.borrow() {
                        return;
                    }
                    if last.get(&profile.id).is_some_and(|t| t.elapsed() < every) {
                        continue;
                    }
                    last.insert(profile.id, tokio::time::Instant::now());
                    if let Err(e) = herald.poll_bounce_mailbox(&profile).await {
                        tracing::warn!(profile = %profile.id, error = %e, "recording bounce reports failed; trying again later");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing bounce mailboxes failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(scan) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
