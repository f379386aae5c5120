//! Accepted messages and their recipients.

use herald_domain::{
    EmailAddress, IdentityId, MessageId, MessageStatus, PurposeName, QueuedMessage, RecipientState,
    RecipientStatus, RelayProfileId, TenantId, Timestamp,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::convert::{parse, parse_with};
use crate::entity::{message, message_body, recipient};
use crate::{Script, StoreError};

/// What is stored beside a message's envelope.
pub struct MessageBody<'a> {
    /// The message's bytes, packed by [`crate::body::pack`].
    pub mime: &'a crate::body::Packed,
    /// JSON for events: to, from, subject, message-id.
    pub headers_json: &'a str,
    pub tags_json: &'a str,
    pub user_variables_json: &'a str,
}

/// Stores a message and its recipients (each with its starting status:
/// queued, held or suppressed; due at `deliver_after`), in the caller's
/// transaction.
pub async fn insert(
    db: &impl ConnectionTrait,
    m: &QueuedMessage,
    body: &MessageBody<'_>,
    recipients: &[(EmailAddress, RecipientStatus)],
) -> Result<(), StoreError> {
    insert_many(db, &[(m, body, recipients)]).await
}

/// A message to store: its envelope, body and recipients.
pub type NewMessage<'a> = (
    &'a QueuedMessage,
    &'a MessageBody<'a>,
    &'a [(EmailAddress, RecipientStatus)],
);

/// Stores many messages with few statements (a group commit): messages 32
/// per INSERT, recipients 256 per INSERT, in the shapes of [`crate::shaped`].
pub async fn insert_many(
    db: &impl ConnectionTrait,
    items: &[NewMessage<'_>],
) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    add_many(&mut script, items);
    script.run(db).await
}

/// Adds to `script` the statements that insert `items` (messages, their
/// bodies and recipients).
pub fn add_many(script: &mut Script, items: &[NewMessage<'_>]) {
    let backend = script.backend();
    let now = Timestamp::now().as_micros();
    for chunk in crate::shaped(items, 32) {
        let rows = chunk.iter().map(|(m, body, recipients)| {
            let statuses: Vec<RecipientStatus> = recipients.iter().map(|(_, s)| *s).collect();
            message::ActiveModel {
                id: Set(m.id.to_string()),
                tenant_id: Set(m.tenant_id.to_string()),
                profile_id: Set(m.profile_id.map(|p| p.to_string())),
                identity_id: Set(m.identity_id.map(|i| i.to_string())),
                purpose: Set(m.purpose.as_ref().map(|p| p.to_string())),
                mail_from: Set(m.mail_from.to_string()),
                message_id_header: Set(m.message_id_header.clone()),
                subject: Set(m.subject.clone()),
                headers: Set(body.headers_json.to_owned()),
                tags: Set(body.tags_json.to_owned()),
                user_variables: Set(body.user_variables_json.to_owned()),
                size: Set(m.size as i64),
                test_mode: Set(m.test_mode),
                deliver_after: Set(m.deliver_after.as_micros()),
                status: Set(MessageStatus::of(&statuses).to_string()),
                created_at: Set(m.created_at.as_micros()),
                updated_at: Set(now),
            }
        });
        script.push(message::Entity::insert_many(rows).build(backend));
        let bodies = chunk.iter().map(|(m, body, _)| message_body::ActiveModel {
            message_id: Set(m.id.to_string()),
            mime: Set(body.mime.bytes.clone()),
            compression: Set(body.mime.compression.map(str::to_owned)),
        });
        script.push(message_body::Entity::insert_many(bodies).build(backend));
    }
    let rows: Vec<recipient::ActiveModel> = items
        .iter()
        .flat_map(|(m, _, recipients)| {
            recipients
                .iter()
                .enumerate()
                .map(move |(i, (a, status))| recipient::ActiveModel {
                    message_id: Set(m.id.to_string()),
                    idx: Set(i as i32),
                    tenant_id: Set(m.tenant_id.to_string()),
                    address: Set(a.to_string()),
                    address_key: Set(a.as_str().to_lowercase()),
                    status: Set(status.to_string()),
                    attempts: Set(0),
                    next_attempt_at: Set(m.deliver_after.as_micros()),
                    lease_owner: Set(None),
                    lease_expires_at: Set(None),
                    last_reply: Set(None),
                    updated_at: Set(now),
                })
        })
        .collect();
    for chunk in crate::shaped(&rows, 256) {
        script.push(recipient::Entity::insert_many(chunk.to_vec()).build(backend));
    }
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Option<QueuedMessage>, StoreError> {
    message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(to_message)
        .transpose()
}

/// The message's RFC 5322 bytes (read when it is delivered).
pub async fn mime(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Option<Vec<u8>>, StoreError> {
    if get(db, tenant, id).await?.is_none() {
        return Ok(None);
    }
    message_body::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(message_body::Model::into_mime)
        .transpose()
}

pub async fn recipients(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Vec<RecipientState>, StoreError> {
    recipient::Entity::find()
        .filter(recipient::Column::TenantId.eq(tenant.to_string()))
        .filter(recipient::Column::MessageId.eq(id.to_string()))
        .order_by_asc(recipient::Column::Idx)
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            Ok(RecipientState {
                message_id: parse(&r.message_id, "message id")?,
                index: r.idx as u32,
                address: parse_with(&r.address, "recipient", EmailAddress::parse)?,
                status: parse(&r.status, "recipient status")?,
                attempts: r.attempts as u32,
                next_attempt_at: Timestamp::from_micros(r.next_attempt_at),
                last_reply: r.last_reply,
            })
        })
        .collect()
}

/// Messages of `profile` that are not finished (queued or held).
pub async fn unfinished_using_profile(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    profile: RelayProfileId,
) -> Result<u64, StoreError> {
    Ok(message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::ProfileId.eq(profile.to_string()))
        .filter(
            message::Column::Status
                .is_in([MessageStatus::Queued.as_str(), MessageStatus::Held.as_str()]),
        )
        .count(db)
        .await?)
}

/// Moves the unfinished messages of `from` to `to` (finished ones keep
/// their history and lose the link when the profile is deleted).
pub async fn move_profile(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    from: RelayProfileId,
    to: RelayProfileId,
) -> Result<(), StoreError> {
    message::Entity::update_many()
        .col_expr(message::Column::ProfileId, Expr::value(to.to_string()))
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::ProfileId.eq(from.to_string()))
        .filter(
            message::Column::Status
                .is_in([MessageStatus::Queued.as_str(), MessageStatus::Held.as_str()]),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// A tenant's messages newest first, optionally of one status, before the
/// `(created_at, id)` cursor (a row-value comparison, for the index).
pub async fn page(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    status: Option<MessageStatus>,
    before: Option<(Timestamp, MessageId)>,
    limit: u64,
) -> Result<Vec<(QueuedMessage, MessageStatus)>, StoreError> {
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::ExprTrait;
    let mut q = message::Entity::find().filter(message::Column::TenantId.eq(tenant.to_string()));
    if let Some(s) = status {
        q = q.filter(message::Column::Status.eq(s.as_str()));
    }
    if let Some((ts, id)) = before {
        q = q.filter(
            Expr::tuple([
                Expr::col(message::Column::CreatedAt),
                Expr::col(message::Column::Id),
            ])
            .lt(Expr::tuple([
                Expr::val(ts.as_micros()),
                Expr::val(id.to_string()),
            ])),
        );
    }
    q.order_by_desc(message::Column::CreatedAt)
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            let status = parse(&r.status, "message status")?;
            Ok((to_message(r)?, status))
        })
        .collect()
}

/// The recipients of message `id` whose status is one of `statuses`.
fn recipients_in(tenant: TenantId, id: MessageId, statuses: &[RecipientStatus]) -> Condition {
    Condition::all()
        .add(recipient::Column::TenantId.eq(tenant.to_string()))
        .add(recipient::Column::MessageId.eq(id.to_string()))
        .add(recipient::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
}

/// The addresses matching `which`, read before an update changes them.
async fn addresses(
    db: &impl ConnectionTrait,
    which: Condition,
) -> Result<Vec<EmailAddress>, StoreError> {
    recipient::Entity::find()
        .filter(which)
        .order_by_asc(recipient::Column::Idx)
        .all(db)
        .await?
        .iter()
        .map(|r| parse_with(&r.address, "recipient", EmailAddress::parse))
        .collect()
}

/// Cancels the recipients not yet sent (queued or held; one being
/// delivered right now is not stopped) and updates the message's status.
/// Returns the cancelled addresses.
pub async fn cancel_unsent(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Vec<EmailAddress>, StoreError> {
    let which = recipients_in(
        tenant,
        id,
        &[RecipientStatus::Queued, RecipientStatus::Held],
    );
    let cancelled = addresses(db, which.clone()).await?;
    recipient::Entity::update_many()
        .col_expr(
            recipient::Column::Status,
            Expr::value(RecipientStatus::Cancelled.as_str()),
        )
        .col_expr(
            recipient::Column::UpdatedAt,
            Expr::value(Timestamp::now().as_micros()),
        )
        .filter(which)
        .exec(db)
        .await?;
    refresh_status(db, tenant, id).await?;
    Ok(cancelled)
}

/// Puts a message's failed and cancelled recipients back in the queue, due
/// now with their attempts reset (suppressed ones stay suppressed).
/// Returns the requeued addresses.
pub async fn requeue(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Vec<EmailAddress>, StoreError> {
    let which = recipients_in(
        tenant,
        id,
        &[RecipientStatus::Failed, RecipientStatus::Cancelled],
    );
    let requeued = addresses(db, which.clone()).await?;
    let now = Timestamp::now().as_micros();
    recipient::Entity::update_many()
        .col_expr(
            recipient::Column::Status,
            Expr::value(RecipientStatus::Queued.as_str()),
        )
        .col_expr(recipient::Column::Attempts, Expr::value(0))
        .col_expr(recipient::Column::NextAttemptAt, Expr::value(now))
        .col_expr(
            recipient::Column::LastReply,
            Expr::value(Option::<String>::None),
        )
        .col_expr(recipient::Column::UpdatedAt, Expr::value(now))
        .filter(which)
        .exec(db)
        .await?;
    refresh_status(db, tenant, id).await?;
    Ok(requeued)
}

/// Makes a message's queued recipients due now (the queue view's "retry
/// now"); returns how many.
pub async fn retry_now(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<u64, StoreError> {
    let now = Timestamp::now().as_micros();
    let res = recipient::Entity::update_many()
        .col_expr(recipient::Column::NextAttemptAt, Expr::value(now))
        .col_expr(recipient::Column::UpdatedAt, Expr::value(now))
        .filter(recipients_in(tenant, id, &[RecipientStatus::Queued]))
        .filter(recipient::Column::NextAttemptAt.gt(now))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// How many recipients, across all tenants, have `status` (metrics and
/// benchmarks).
pub async fn count_recipients(
    db: &impl ConnectionTrait,
    status: RecipientStatus,
) -> Result<u64, StoreError> {
    Ok(recipient::Entity::find()
        .filter(recipient::Column::Status.eq(status.as_str()))
        .count(db)
        .await?)
}

/// Whether any recipient is still queued or being delivered (two index
/// lookups, however long the queue).
pub async fn has_unfinished(db: &impl ConnectionTrait) -> Result<bool, StoreError> {
    for status in [RecipientStatus::Queued, RecipientStatus::Delivering] {
        let one = recipient::Entity::find()
            .select_only()
            .column(recipient::Column::Idx)
            .filter(recipient::Column::Status.eq(status.as_str()))
            .into_tuple::<i32>()
            .one(db)
            .await?;
        if one.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whose credentials a held message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderScope {
    /// Messages sent as this identity.
    Identity(IdentityId),
    /// Messages of this profile sent with its own credentials (no identity).
    Profile(RelayProfileId),
}

impl SenderScope {
    fn messages(self, tenant: TenantId) -> sea_orm::sea_query::SelectStatement {
        use sea_orm::sea_query::Query;
        let mut q = Query::select();
        q.column(message::Column::Id)
            .from(message::Entity)
            .and_where(message::Column::TenantId.eq(tenant.to_string()))
            .and_where(
                message::Column::Status
                    .is_in([MessageStatus::Queued.as_str(), MessageStatus::Held.as_str()]),
            );
        match self {
            SenderScope::Identity(i) => {
                q.and_where(message::Column::IdentityId.eq(i.to_string()));
            }
            SenderScope::Profile(p) => {
                q.and_where(message::Column::ProfileId.eq(p.to_string()))
                    .and_where(message::Column::IdentityId.is_null());
            }
        }
        q
    }
}

/// Moves the recipients of `scope`'s unfinished messages from one status to
/// another (due now) and refreshes those messages' status. Returns how many
/// recipients moved.
async fn move_scope(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    scope: SenderScope,
    from: RecipientStatus,
    to: RecipientStatus,
) -> Result<u64, StoreError> {
    let ids: Vec<String> = message::Entity::find()
        .filter(message::Column::Id.in_subquery(scope.messages(tenant)))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let now = Timestamp::now().as_micros();
    let mut moved = 0;
    for chunk in crate::shaped(&ids, 256) {
        let res = recipient::Entity::update_many()
            .col_expr(recipient::Column::Status, Expr::value(to.as_str()))
            .col_expr(recipient::Column::NextAttemptAt, Expr::value(now))
            .col_expr(recipient::Column::UpdatedAt, Expr::value(now))
            .filter(recipient::Column::MessageId.is_in(chunk.iter().cloned()))
            .filter(recipient::Column::Status.eq(from.as_str()))
            .exec(db)
            .await?;
        moved += res.rows_affected;
        let ids = chunk
            .iter()
            .map(|id| parse(id, "message id"))
            .collect::<Result<Vec<MessageId>, _>>()?;
        refresh_statuses(db, &ids).await?;
    }
    Ok(moved)
}

/// Holds the queued mail of a sender whose credentials were refused.
pub async fn hold(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    scope: SenderScope,
) -> Result<u64, StoreError> {
    move_scope(
        db,
        tenant,
        scope,
        RecipientStatus::Queued,
        RecipientStatus::Held,
    )
    .await
}

/// Puts a sender's held mail back in the queue, due now.
pub async fn release(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    scope: SenderScope,
) -> Result<u64, StoreError> {
    move_scope(
        db,
        tenant,
        scope,
        RecipientStatus::Held,
        RecipientStatus::Queued,
    )
    .await
}

/// The messages (with their MIME bytes) a worker claimed recipients of.
pub async fn for_delivery(
    db: &impl ConnectionTrait,
    ids: &[MessageId],
) -> Result<Vec<(QueuedMessage, Vec<u8>)>, StoreError> {
    let backend = db.get_database_backend();
    let mut out = Vec::with_capacity(ids.len());
    // One query per 256 messages, each row with its body beside it.
    for chunk in crate::shaped(ids, 256) {
        let list: Vec<String> = (0..chunk.len())
            .map(|i| crate::placeholder(backend, i))
            .collect();
        let sql = format!(
            "SELECT m.*, b.mime AS body_mime, b.compression AS body_compression \
             FROM message m LEFT JOIN message_body b ON b.message_id = m.id \
             WHERE m.id IN ({})",
            list.join(", ")
        );
        let values: Vec<sea_orm::Value> = chunk.iter().map(|i| i.to_string().into()).collect();
        let rows = db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await?;
        for r in rows {
            let row = <message::Model as sea_orm::FromQueryResult>::from_query_result(&r, "")?;
            // A message without a readable body cannot be delivered; it
            // stays claimed until its lease ends, and shows in the logs.
            let Some(mime) = r.try_get::<Option<Vec<u8>>>("", "body_mime")? else {
                tracing::error!(message = %row.id, "message body missing");
                continue;
            };
            let compression: Option<String> = r.try_get("", "body_compression")?;
            let mime = match crate::body::unpack(mime, compression.as_deref()) {
                Ok(mime) => mime,
                Err(e) => {
                    tracing::error!(message = %row.id, error = %e, "message body unreadable");
                    continue;
                }
            };
            let message = to_message(row)?;
            out.push((message, mime));
        }
    }
    Ok(out)
}

/// Recomputes many messages' statuses from their recipients' (after a
/// worker recorded results): one UPDATE per 256 messages, each message's
/// status computed in the database by [`status_from_recipients`].
pub async fn refresh_statuses(
    db: &impl ConnectionTrait,
    ids: &[MessageId],
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    for chunk in crate::shaped(ids, 256) {
        message::Entity::update_many()
            .col_expr(
                message::Column::Status,
                Expr::cust(status_from_recipients().as_str()),
            )
            .col_expr(message::Column::UpdatedAt, Expr::value(now))
            .filter(message::Column::Id.is_in(chunk.iter().map(|i| i.to_string())))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// [`MessageStatus::of`] as SQL for PostgreSQL and SQLite: a subquery
/// that summarises the recipients of the `message` row being updated. Each
/// rule of `of` is a count of recipients in a set of statuses, and the sets
/// come from the domain's own predicates, so the two cannot drift apart
/// silently (a test compares them over every mix of statuses).
fn status_from_recipients() -> &'static String {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        use MessageStatus as M;
        use RecipientStatus as R;
        let any = |pick: &dyn Fn(R) -> bool| {
            let set: Vec<String> = R::ALL
                .iter()
                .filter(|s| pick(**s))
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            format!(
                "SUM(CASE WHEN r.status IN ({}) THEN 1 ELSE 0 END) > 0",
                set.join(", ")
            )
        };
        let waiting = any(&|s| !s.is_final() && s != R::Held);
        let held = any(&|s| s == R::Held);
        let delivered = any(&|s| s == R::Delivered);
        let failed = any(&|s| matches!(s, R::Failed | R::Suppressed));
        let cancelled = any(&|s| s == R::Cancelled);
        format!(
            "(SELECT CASE \
             WHEN {waiting} THEN '{queued}' \
             WHEN {held} THEN '{m_held}' \
             WHEN {delivered} AND NOT ({failed}) AND NOT ({cancelled}) THEN '{sent}' \
             WHEN {delivered} THEN '{partial}' \
             WHEN {failed} THEN '{m_failed}' \
             WHEN {cancelled} THEN '{m_cancelled}' \
             ELSE '{queued}' END \
             FROM recipient r WHERE r.message_id = message.id)",
            queued = M::Queued.as_str(),
            m_held = M::Held.as_str(),
            sent = M::Sent.as_str(),
            partial = M::Partial.as_str(),
            m_failed = M::Failed.as_str(),
            m_cancelled = M::Cancelled.as_str(),
        )
    })
}

/// Recomputes a message's status from its recipients'.
pub async fn refresh_status(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<MessageStatus, StoreError> {
    let statuses: Vec<RecipientStatus> = recipients(db, tenant, id)
        .await?
        .into_iter()
        .map(|r| r.status)
        .collect();
    let status = MessageStatus::of(&statuses);
    message::Entity::update_many()
        .col_expr(message::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            message::Column::UpdatedAt,
            Expr::value(Timestamp::now().as_micros()),
        )
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(status)
}

/// A message's summary status.
pub async fn status(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Option<MessageStatus>, StoreError> {
    message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(|m| parse(&m.status, "message status"))
        .transpose()
}

fn to_message(r: message::Model) -> Result<QueuedMessage, StoreError> {
    Ok(QueuedMessage {
        id: parse(&r.id, "message id")?,
        tenant_id: parse(&r.tenant_id, "tenant id")?,
        profile_id: r
            .profile_id
            .as_deref()
            .map(|p| parse(p, "relay profile id"))
            .transpose()?,
        identity_id: r
            .identity_id
            .as_deref()
            .map(|i| parse(i, "identity id"))
            .transpose()?,
        purpose: r
            .purpose
            .as_deref()
            .map(|p| parse_with(p, "purpose", PurposeName::parse))
            .transpose()?,
        mail_from: parse_with(&r.mail_from, "mail from", EmailAddress::parse)?,
        message_id_header: r.message_id_header,
        subject: r.subject,
        size: r.size as u64,
        test_mode: r.test_mode,
        deliver_after: Timestamp::from_micros(r.deliver_after),
        created_at: Timestamp::from_micros(r.created_at),
    })
}

/// A recipient that was handed over but then reported failed (a bounce
/// report arriving later): its status becomes failed with the report's
/// words. Returns false when it is not (or no longer) `delivered`, so a
/// report read twice changes nothing the second time.
pub async fn bounced(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
    index: u32,
    reply: &str,
) -> Result<bool, StoreError> {
    let res = recipient::Entity::update_many()
        .col_expr(
            recipient::Column::Status,
            Expr::value(RecipientStatus::Failed.as_str()),
        )
        .col_expr(recipient::Column::LastReply, Expr::value(reply))
        .col_expr(
            recipient::Column::UpdatedAt,
            Expr::value(Timestamp::now().as_micros()),
        )
        .filter(recipient::Column::TenantId.eq(tenant.to_string()))
        .filter(recipient::Column::MessageId.eq(id.to_string()))
        .filter(recipient::Column::Idx.eq(index as i32))
        .filter(recipient::Column::Status.eq(RecipientStatus::Delivered.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// A message's tags (`o:tag`), as stored at acceptance.
pub async fn tags(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: MessageId,
) -> Result<Vec<String>, StoreError> {
    let Some(row) = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant.to_string()))
        .filter(message::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
    else {
        return Ok(Vec::new());
    };
    serde_json::from_str(&row.tags)
        .map_err(|e| StoreError::Corrupt(format!("tags of message {id}: {e}")))
}
