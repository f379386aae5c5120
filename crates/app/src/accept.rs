//! Group commit for accepted mail. A submission is durable only once its
//! message, recipients, events and idempotency key are committed; on SQLite
//! with synchronous=FULL each commit costs an fsync, so one commit per
//! submission caps acceptance at the disk's fsync rate. Instead every
//! accepted submission is handed to one writer task, which commits all the
//! submissions that arrived while the previous commit was on disk in one
//! transaction, then answers each of them. Nobody is answered before their
//! transaction committed. If a batch fails, its submissions are written
//! one by one so that one bad submission fails alone.
//!
//! The writer also looks up the batch's suppressed recipients inside the
//! transaction that stores the messages: a recipient suppressed before the
//! commit is never queued.
//!
//! On SQLite the writer runs on a thread of its own and the transaction on
//! SQLite's writer handle, borrowed from sqlx's thread
//! ([`herald_store::Batch`]): from BEGIN to COMMIT nothing crosses a thread.
//! It keeps the handle for the next group commit while submissions are
//! waiting (up to [`HOLD`]). While submissions keep coming, its group
//! commits start [`GATHER`] apart, so that a commit's fixed cost is shared
//! by many even when load is moderate.

use herald_domain::{
    EmailAddress, Event, EventKind, QueuedMessage, RecipientStatus, Severity, TenantId,
};
use herald_store::suppressions::{self, Found};
use herald_store::{
    Batch, Connection, DbBackend, Locked, Script, Store, StoreError, events, idempotency, messages,
};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::AppError;
use crate::send::Accepted;

/// Submissions per transaction at most.
const BATCH: usize = 256;

/// Everything one accepted submission writes.
pub(crate) struct Acceptance {
    pub queued: QueuedMessage,
    /// The message's bytes, compressed by the handler (not by the writer,
    /// which every submission waits for).
    pub mime: herald_store::body::Packed,
    pub headers_json: String,
    pub tags_json: String,
    pub vars_json: String,
    /// Distinct addresses, queued or held.
    pub recipients: Vec<(EmailAddress, RecipientStatus)>,
    /// One `accepted` event per recipient, in the same order.
    pub events: Vec<Event>,
    /// The answer, its `suppressed` filled in by the writer.
    pub accepted: Accepted,
    /// The Idempotency-Key and the request's hash, kept with the answer.
    pub idempotency: Option<(String, String)>,
}

impl Acceptance {
    /// Marks the recipients found on a suppression list: not queued, their
    /// event a permanent `rejected`.
    fn suppress(&mut self, found: &Found) {
        self.accepted.suppressed.clear();
        if found.is_empty() {
            return;
        }
        // The message's tags matter only for a listed recipient: most
        // batches have none, and skip the parse.
        let mut tags: Option<Vec<String>> = None;
        let tenant = self.queued.tenant_id;
        for ((address, status), e) in self.recipients.iter_mut().zip(&mut self.events) {
            let hits = found.get(tenant, address);
            if hits.is_empty() {
                continue;
            }
            let tags = tags
                .get_or_insert_with(|| serde_json::from_str(&self.tags_json).unwrap_or_default());
            let Some(kind) = hits.iter().find(|h| h.applies_to(tags)).map(|h| h.kind) else {
                continue;
            };
            *status = RecipientStatus::Suppressed;
            e.kind = EventKind::Rejected;
            e.severity = Some(Severity::Permanent);
            e.reason = Some(kind.reason().to_owned());
            e.description = Some(format!("{address} is on the {} list", kind.as_str()));
            self.accepted.suppressed.push(address.clone());
        }
    }
}

type Request = (Acceptance, oneshot::Sender<Result<Accepted, AppError>>);

/// The handle submissions use to reach the writer.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the writer (inside the runtime), on a thread of its own (see
    /// [`crate::writer_thread`]). It ends when the last handle is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(BATCH * 8);
        crate::writer_thread::spawn(
            store.backend(),
            "herald-accept",
            crate::writer_thread::Priority::AheadOfHandlers,
            writer(store, rx),
        );
        Self { tx }
    }

    /// Commits `a` (with others) and returns its answer once it is durable.
    pub async fn commit(&self, a: Acceptance) -> Result<Accepted, AppError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((a, done))
            .await
            .map_err(|_| AppError::Internal("the acceptance writer stopped".into()))?;
        wait.await
            .map_err(|_| AppError::Internal("the acceptance writer stopped".into()))?
    }
}

/// Each tenant of `batch` with its recipients.
fn wanted(batch: &[Acceptance]) -> Vec<(TenantId, Vec<&EmailAddress>)> {
    let mut wanted: Vec<(TenantId, Vec<&EmailAddress>)> = Vec::new();
    for a in batch {
        let addresses = a.recipients.iter().map(|(r, _)| r);
        match wanted.iter_mut().find(|(t, _)| *t == a.queued.tenant_id) {
            Some((_, known)) => known.extend(addresses),
            None => wanted.push((a.queued.tenant_id, addresses.collect())),
        }
    }
    wanted
}

/// Every row `batch` writes, as few multi-row statements: messages, bodies,
/// recipients, events and idempotency keys (with their answers, so after
/// [`Acceptance::suppress`]).
fn script(backend: DbBackend, batch: &[Acceptance]) -> Result<Script, StoreError> {
    let bodies: Vec<messages::MessageBody<'_>> = batch
        .iter()
        .map(|a| messages::MessageBody {
            mime: &a.mime,
            headers_json: &a.headers_json,
            tags_json: &a.tags_json,
            user_variables_json: &a.vars_json,
        })
        .collect();
    let items: Vec<messages::NewMessage<'_>> = batch
        .iter()
        .zip(&bodies)
        .map(|(a, b)| (&a.queued, b, a.recipients.as_slice()))
        .collect();
    let evs: Vec<&Event> = batch.iter().flat_map(|a| &a.events).collect();
    let mut script = Script::new(backend);
    messages::add_many(&mut script, &items);
    events::add_many(&mut script, &evs);
    for a in batch {
        if let Some((key, hash)) = &a.idempotency {
            let answer = serde_json::to_string(&a.accepted)
                .map_err(|e| StoreError::Corrupt(format!("idempotent answer: {e}")))?;
            idempotency::add(&mut script, a.queued.tenant_id, key, hash, &answer);
        }
    }
    Ok(script)
}

/// The whole batch in one transaction on SQLite's writer handle, on this
/// thread.
fn write_locked(conn: &mut Locked<'_>, batch: &mut [Acceptance]) -> Result<(), StoreError> {
    conn.transaction(|tx| {
        let found = suppressions::lookup_locked(tx, &wanted(batch))?;
        for a in batch.iter_mut() {
            a.suppress(&found);
        }
        tx.run(script(DbBackend::Sqlite, batch)?)
    })
}

/// The whole batch in a sea-orm transaction (PostgreSQL).
async fn write_transaction(store: &Store, batch: &mut [Acceptance]) -> Result<(), StoreError> {
    let tx = store.begin().await?;
    let found = suppressions::lookup(tx.conn(), &wanted(batch)).await?;
    for a in batch.iter_mut() {
        a.suppress(&found);
    }
    script(tx.conn().get_database_backend(), batch)?
        .run(tx.conn())
        .await?;
    tx.commit().await
}

/// How long the writer keeps SQLite's writer connection across group
/// commits while submissions keep coming. Every other writer (delivery
/// results, claims, the API) waits meanwhile, for this long at most;
/// releasing and taking it again costs a few round trips to sqlx's thread.
const HOLD: Duration = Duration::from_millis(5);

/// While submissions keep coming, SQLite's group commits start at least
/// this far apart, and each takes everything that arrived meanwhile.
///
/// A commit has a cost of its own whatever it carries: the last, partly
/// filled page of each of the 14 tables and indexes a message touches is
/// written to the WAL again, and the WAL is synced (about 260 µs of the
/// writer's CPU per commit and 34 µs per message, from its CPU per message
/// at two batch sizes). Committing as soon as the previous commit ended
/// made commits small exactly when load was moderate: at 80% of the peak
/// rate, 8–10 submissions each at ~1,000 commits/s against 19–20 at the
/// peak, so a message cost the writer 58–64 µs there against 42–49 at the
/// peak, and 80% of the peak used as much CPU as the peak itself. With
/// commits at least 2 ms apart (at most 500/s), the writer's cost at 80%
/// fell to 40–51 µs per message, and the peak did not move
/// (`scripts/bench --parts acceptance`, interleaved runs; see the README).
/// A submission waits this long at most for its group to start. A group
/// commit that carried one submission is not followed by a wait: a lone
/// client sending one message after another is never held back.
const GATHER: Duration = Duration::from_millis(2);

/// Submissions taken from the queue, not yet answered.
struct Pending {
    batch: Vec<Acceptance>,
    waiting: Vec<oneshot::Sender<Result<Accepted, AppError>>>,
}

impl Pending {
    fn push(&mut self, (a, done): Request) {
        self.batch.push(a);
        self.waiting.push(done);
    }

    /// Adds whatever else is queued, up to [`BATCH`].
    fn fill(&mut self, rx: &mut mpsc::Receiver<Request>) {
        while self.batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => self.push(r),
                Err(_) => break,
            }
        }
    }

    /// Answers everyone after their one transaction committed (nobody, if
    /// they were answered one by one).
    fn committed(&mut self) {
        for (a, done) in self.batch.drain(..).zip(self.waiting.drain(..)) {
            let _ = done.send(Ok(a.accepted));
        }
    }

    /// Answers everyone with `error` (the writer connection could not be
    /// had).
    fn fail(&mut self, error: &str) {
        for done in self.waiting.drain(..) {
            let _ = done.send(Err(AppError::Internal(error.to_owned())));
        }
        self.batch.clear();
    }

    /// After their group commit failed with `error`: each submission, to
    /// be written alone, or, if it was alone, with that error.
    fn after_failure(
        &mut self,
        error: StoreError,
    ) -> impl Iterator<
        Item = (
            Acceptance,
            oneshot::Sender<Result<Accepted, AppError>>,
            Option<StoreError>,
        ),
    > + '_ {
        if self.batch.len() > 1 {
            tracing::warn!(error = %error, size = self.batch.len(), "a group commit failed; writing its submissions one by one");
        }
        let mut alone = (self.batch.len() == 1).then_some(error);
        self.batch
            .drain(..)
            .zip(self.waiting.drain(..))
            .map(move |(a, done)| (a, done, alone.take()))
    }
}

/// One group commit on SQLite's writer handle; if it fails, each of its
/// submissions on its own, so that one bad submission fails alone.
fn settle_locked(conn: &mut Locked<'_>, pending: &mut Pending) {
    if let Err(e) = write_locked(conn, &mut pending.batch) {
        for (mut a, done, failed) in pending.after_failure(e) {
            let one = match failed {
                Some(e) => Err(e),
                None => write_locked(conn, std::slice::from_mut(&mut a)),
            };
            let _ = done.send(answer(one, a));
        }
    }
    pending.committed();
}

/// The same on PostgreSQL, in sea-orm transactions.
async fn settle_transaction(store: &Store, pending: &mut Pending) {
    if let Err(e) = write_transaction(store, &mut pending.batch).await {
        for (mut a, done, failed) in pending.after_failure(e) {
            let one = match failed {
                Some(e) => Err(e),
                None => write_transaction(store, std::slice::from_mut(&mut a)).await,
            };
            let _ = done.send(answer(one, a));
        }
    }
    pending.committed();
}

/// When SQLite's last group commit started, and whether it had company
/// (more than one submission): the next one waits for [`GATHER`] after it
/// only then.
#[derive(Clone, Copy)]
struct Cadence {
    started: Instant,
    company: bool,
}

impl Cadence {
    fn now(pending: &Pending) -> Self {
        Self {
            started: Instant::now(),
            company: pending.batch.len() > 1,
        }
    }

    /// Waits until [`GATHER`] after the last group commit started, if it
    /// had company, then takes whatever arrived meanwhile. The writer's
    /// thread runs nothing but its task, and the sleep is precise where
    /// tokio's timers tick in whole milliseconds. (Where no thread could be
    /// started, the task shares the main runtime, whose worker its
    /// synchronous commits block already.)
    fn gather(self, rx: &mut mpsc::Receiver<Request>, pending: &mut Pending) {
        if self.company {
            std::thread::sleep((self.started + GATHER).saturating_duration_since(Instant::now()));
        }
        pending.fill(rx);
    }
}

/// Group commits on SQLite's writer handle, borrowed from sqlx's thread
/// for as long as submissions keep coming, up to [`HOLD`]: this thread does
/// nothing else meanwhile. Each group commit after one that had company
/// starts [`GATHER`] after it at the earliest.
async fn hold(
    conn: &mut Batch,
    rx: &mut mpsc::Receiver<Request>,
    pending: &mut Pending,
    last: &mut Cadence,
) {
    let since = Instant::now();
    let mut locked = match conn.lock().await {
        Ok(locked) => locked,
        Err(e) => return pending.fail(&e.to_string()),
    };
    loop {
        *last = Cadence::now(pending);
        settle_locked(&mut locked, pending);
        if locked.is_open() || since.elapsed() >= HOLD {
            return;
        }
        last.gather(rx, pending);
        if pending.batch.is_empty() {
            return;
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Request>) {
    let mut pending = Pending {
        batch: Vec::with_capacity(BATCH),
        waiting: Vec::with_capacity(BATCH),
    };
    let mut last = Cadence {
        started: Instant::now(),
        company: false,
    };
    while let Some(first) = rx.recv().await {
        pending.push(first);
        // Before taking the connection, which other writers may use
        // meanwhile. (PostgreSQL's commits never wait: `last` is SQLite's.)
        last.gather(&mut rx, &mut pending);
        match store.batch().await {
            Some(Ok(mut conn)) => hold(&mut conn, &mut rx, &mut pending, &mut last).await,
            Some(Err(e)) => pending.fail(&e.to_string()),
            None => settle_transaction(&store, &mut pending).await,
        }
    }
}

/// What the submitter of `a` is told: its answer, or why it was not
/// stored (a key saved meanwhile by a concurrent request with the same
/// Idempotency-Key is a conflict on it).
fn answer(written: Result<(), StoreError>, a: Acceptance) -> Result<Accepted, AppError> {
    match written {
        Ok(()) => Ok(a.accepted),
        Err(e) if e.is_unique_violation() && a.idempotency.is_some() => {
            Err(StoreError::Conflict("idempotency_key").into())
        }
        Err(e) => Err(e.into()),
    }
}
