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
//! On SQLite the transaction is a [`herald_store::Batch`]: BEGIN goes with
//! the suppression lookup and COMMIT with the inserts, two round trips to
//! SQLite's thread instead of four, and the writer keeps the connection for
//! the next group commit while submissions are waiting (up to [`HOLD`]),
//! which saves the pool's check of each released connection.

use herald_domain::{
    EmailAddress, Event, EventKind, QueuedMessage, RecipientStatus, Severity, TenantId,
};
use herald_store::suppressions::{self, Found};
use herald_store::{
    Batch, Connection, DbBackend, Script, Store, StoreError, events, idempotency, messages,
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
        crate::writer_thread::spawn(store.backend(), "herald-accept", writer(store, rx));
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
    let evs: Vec<Event> = batch
        .iter()
        .flat_map(|a| a.events.iter().cloned())
        .collect();
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

/// The whole batch in one transaction. On SQLite, on the writer connection
/// `held` (taken if there is none); it is dropped if the batch fails.
async fn write_batch(
    store: &Store,
    held: &mut Option<Batch>,
    batch: &mut [Acceptance],
) -> Result<(), StoreError> {
    let conn = match held.take() {
        Some(conn) => conn,
        None => match store.batch().await {
            Some(conn) => conn?,
            None => return write_transaction(store, batch).await,
        },
    };
    let conn = held.insert(conn);
    let written = write_on(conn, batch).await;
    if written.is_err() {
        *held = None;
    }
    written
}

async fn write_on(conn: &mut Batch, batch: &mut [Acceptance]) -> Result<(), StoreError> {
    let rows = conn
        .begin_with(suppressions::lookup_statements(
            DbBackend::Sqlite,
            &wanted(batch),
        ))
        .await?;
    let prepared = Found::from_rows(rows).and_then(|found| {
        for a in batch.iter_mut() {
            a.suppress(&found);
        }
        script(DbBackend::Sqlite, batch)
    });
    match prepared {
        Ok(script) => conn.commit_with(script).await,
        Err(e) => {
            conn.rollback().await;
            Err(e)
        }
    }
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
/// commits while submissions keep coming. Releasing it costs the pool's
/// check of the connection, a round trip the next group commit would wait
/// for; holding it makes every other writer (delivery results, claims, the
/// API) wait, for this long at most.
const HOLD: Duration = Duration::from_millis(5);

async fn writer(store: Store, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Acceptance> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<Result<Accepted, AppError>>> = Vec::with_capacity(BATCH);
    let mut held: Option<Batch> = None;
    let mut held_since = Instant::now();
    while let Some((a, done)) = rx.recv().await {
        batch.push(a);
        waiting.push(done);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok((a, done)) => {
                    batch.push(a);
                    waiting.push(done);
                }
                Err(_) => break,
            }
        }
        if held.is_none() {
            held_since = Instant::now();
        }
        match write_batch(&store, &mut held, &mut batch).await {
            Ok(()) => {
                for (a, done) in batch.drain(..).zip(waiting.drain(..)) {
                    let _ = done.send(Ok(a.accepted));
                }
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, size = batch.len(), "a group commit failed; writing its submissions one by one");
                for (mut a, done) in batch.drain(..).zip(waiting.drain(..)) {
                    let one = write_batch(&store, &mut held, std::slice::from_mut(&mut a)).await;
                    let _ = done.send(answer(one, a));
                }
            }
            Err(e) => {
                if let (Some(a), Some(done)) = (batch.pop(), waiting.pop()) {
                    let _ = done.send(answer(Err(e), a));
                }
            }
        }
        // Answered; the connection stays only for submissions already
        // waiting.
        if rx.is_empty() || held_since.elapsed() >= HOLD {
            held = None;
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
