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
//! The writer also looks up the batch's suppressed recipients, one query per
//! tenant inside the transaction that stores the messages: a recipient
//! suppressed before the commit is never queued.

use std::collections::HashMap;

use herald_domain::{EmailAddress, Event, EventKind, QueuedMessage, RecipientStatus, Severity};
use herald_store::suppressions::{self, Hit};
use herald_store::{Connection, Script, Store, StoreError, events, idempotency, messages};
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
    /// Marks the recipients found on a suppression list (keys are lowercase
    /// addresses): not queued, their event a permanent `rejected`.
    fn suppress(&mut self, found: &HashMap<String, Vec<Hit>>) {
        self.accepted.suppressed.clear();
        // The message's tags matter only for a listed recipient: most
        // batches have none, and skip the parse.
        let mut tags: Option<Vec<String>> = None;
        for ((address, status), e) in self.recipients.iter_mut().zip(&mut self.events) {
            let Some(hits) = found.get(&address.as_str().to_lowercase()) else {
                continue;
            };
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

/// The suppressions among `batch`'s recipients, one query per tenant.
async fn suppress(db: &impl Connection, batch: &mut [&mut Acceptance]) -> Result<(), StoreError> {
    let mut tenants: Vec<_> = batch.iter().map(|a| a.queued.tenant_id).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for tenant in tenants {
        let addresses: Vec<&EmailAddress> = batch
            .iter()
            .filter(|a| a.queued.tenant_id == tenant)
            .flat_map(|a| a.recipients.iter().map(|(r, _)| r))
            .collect();
        let mut found: HashMap<String, Vec<Hit>> = HashMap::new();
        for (address, hit) in suppressions::lookup(db, tenant, &addresses).await? {
            found.entry(address).or_default().push(hit);
        }
        for a in batch.iter_mut().filter(|a| a.queued.tenant_id == tenant) {
            a.suppress(&found);
        }
    }
    Ok(())
}

/// The idempotency row of `a`, with its answer.
async fn remember(db: &impl Connection, a: &Acceptance) -> Result<(), StoreError> {
    if let Some((key, hash)) = &a.idempotency {
        let answer = serde_json::to_string(&a.accepted)
            .map_err(|e| StoreError::Corrupt(format!("idempotent answer: {e}")))?;
        idempotency::insert(db, a.queued.tenant_id, key, hash, &answer).await?;
    }
    Ok(())
}

async fn write(db: &impl Connection, a: &mut Acceptance) -> Result<(), StoreError> {
    suppress(db, &mut [&mut *a]).await?;
    messages::insert(
        db,
        &a.queued,
        &messages::MessageBody {
            mime: &a.mime,
            headers_json: &a.headers_json,
            tags_json: &a.tags_json,
            user_variables_json: &a.vars_json,
        },
        &a.recipients,
    )
    .await?;
    events::insert_many(db, &a.events).await?;
    remember(db, a).await
}

/// The whole batch with a few multi-row statements.
async fn write_batch(store: &Store, batch: &mut [Request]) -> Result<(), StoreError> {
    let tx = store.begin().await?;
    let mut all: Vec<&mut Acceptance> = batch.iter_mut().map(|(a, _)| a).collect();
    suppress(tx.conn(), &mut all).await?;
    let bodies: Vec<messages::MessageBody<'_>> = batch
        .iter()
        .map(|(a, _)| messages::MessageBody {
            mime: &a.mime,
            headers_json: &a.headers_json,
            tags_json: &a.tags_json,
            user_variables_json: &a.vars_json,
        })
        .collect();
    let items: Vec<messages::NewMessage<'_>> = batch
        .iter()
        .zip(&bodies)
        .map(|((a, _), b)| (&a.queued, b, a.recipients.as_slice()))
        .collect();
    let evs: Vec<Event> = batch
        .iter()
        .flat_map(|(a, _)| a.events.iter().cloned())
        .collect();
    // One call to the database for all of them.
    let mut script = Script::new(tx.conn().get_database_backend());
    messages::add_many(&mut script, &items);
    events::add_many(&mut script, &evs);
    script.run(tx.conn()).await?;
    for (a, _) in batch.iter() {
        remember(tx.conn(), a).await?;
    }
    tx.commit().await
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match write_batch(&store, &mut batch).await {
            Ok(()) => {
                for (a, done) in batch.drain(..) {
                    let _ = done.send(Ok(a.accepted));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, done)) = batch.pop() {
                    let _ = done.send(Err(e.into()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "a group commit failed; writing its submissions one by one");
                for (mut a, done) in batch.drain(..) {
                    let one = async {
                        let tx = store.begin().await?;
                        write(tx.conn(), &mut a).await?;
                        tx.commit().await
                    };
                    let _ = done.send(one.await.map(|()| a.accepted).map_err(AppError::from));
                }
            }
        }
    }
}
