//! Group commit for accepted mail. A submission is durable only once its
//! message, recipients, events and idempotency key are committed; on SQLite
//! with synchronous=FULL each commit costs an fsync, so one commit per
//! submission caps acceptance at the disk's fsync rate. Instead every
//! accepted submission is handed to one writer task, which commits all the
//! submissions that arrived while the previous commit was on disk in one
//! transaction, then answers each of them. Nobody is answered before their
//! transaction committed. If a batch fails, its submissions are written
//! one by one so that one bad submission fails alone.

use herald_domain::{EmailAddress, Event, QueuedMessage, RecipientStatus, TenantId};
use herald_store::{Connection, Store, StoreError, events, idempotency, messages};
use tokio::sync::{mpsc, oneshot};

use crate::AppError;

/// Submissions per transaction at most.
const BATCH: usize = 256;

/// Everything one accepted submission writes.
pub(crate) struct Acceptance {
    pub queued: QueuedMessage,
    pub mime: Vec<u8>,
    pub headers_json: String,
    pub tags_json: String,
    pub vars_json: String,
    pub recipients: Vec<(EmailAddress, RecipientStatus)>,
    pub events: Vec<Event>,
    /// Tenant, key, request hash and the answer to repeat.
    pub idempotency: Option<(TenantId, String, String, String)>,
}

type Request = (Acceptance, oneshot::Sender<Result<(), AppError>>);

/// The handle submissions use to reach the writer.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the writer task (inside the runtime).
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(BATCH * 8);
        tokio::spawn(writer(store, rx));
        Self { tx }
    }

    /// Commits `a` (with others) and returns once it is durable.
    pub async fn commit(&self, a: Acceptance) -> Result<(), AppError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((a, done))
            .await
            .map_err(|_| AppError::Internal("the acceptance writer stopped".into()))?;
        wait.await
            .map_err(|_| AppError::Internal("the acceptance writer stopped".into()))?
    }
}

async fn write(db: &impl Connection, a: &Acceptance) -> Result<(), StoreError> {
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
    if let Some((tenant, key, hash, answer)) = &a.idempotency {
        idempotency::insert(db, *tenant, key, hash, answer).await?;
    }
    Ok(())
}

/// The whole batch with a few multi-row statements.
async fn write_batch(store: &Store, batch: &[Request]) -> Result<(), StoreError> {
    let tx = store.begin().await?;
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
    messages::insert_many(tx.conn(), &items).await?;
    let evs: Vec<Event> = batch
        .iter()
        .flat_map(|(a, _)| a.events.iter().cloned())
        .collect();
    events::insert_many(tx.conn(), &evs).await?;
    for (a, _) in batch {
        if let Some((tenant, key, hash, answer)) = &a.idempotency {
            idempotency::insert(tx.conn(), *tenant, key, hash, answer).await?;
        }
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
        match write_batch(&store, &batch).await {
            Ok(()) => {
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, done)) = batch.pop() {
                    let _ = done.send(Err(e.into()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "a group commit failed; writing its submissions one by one");
                for (a, done) in batch.drain(..) {
                    let one = async {
                        let tx = store.begin().await?;
                        write(tx.conn(), &a).await?;
                        tx.commit().await
                    };
                    let _ = done.send(one.await.map_err(AppError::from));
                }
            }
        }
    }
}
