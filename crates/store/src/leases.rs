//! Claiming due recipients for delivery. A claim marks recipients
//! `delivering` with a lease (owner, expiry) and is committed before any
//! SMTP is spoken; a worker that dies leaves leases that expire, and the
//! recipients are claimed again. PostgreSQL claims with `FOR UPDATE SKIP
//! LOCKED`, so concurrent workers take disjoint rows; SQLite's single
//! writer (IMMEDIATE transactions) serialises claims.

use herald_domain::{EmailAddress, MessageId, RecipientStatus, TenantId, Timestamp};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
};

use crate::StoreError;
use crate::convert::{parse, parse_with};
use crate::entity::recipient;

/// A recipient a worker now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub tenant_id: TenantId,
    pub message_id: MessageId,
    pub index: u32,
    pub address: EmailAddress,
    pub attempts: u32,
}

/// Claims up to `limit` due recipients (queued and due, or delivering with
/// an expired lease) for `owner` until `lease_until`. Call inside a write
/// transaction and commit before delivering.
pub async fn claim(
    db: &impl ConnectionTrait,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u64,
) -> Result<Vec<Claimed>, StoreError> {
    // Two queries, each a range of ix_recipient_due (status,
    // next_attempt_at): an OR of both would scan the table.
    let lock = db.get_database_backend() == DbBackend::Postgres;
    let mut expired = recipient::Entity::find()
        .filter(recipient::Column::Status.eq(RecipientStatus::Delivering.as_str()))
        .filter(recipient::Column::LeaseExpiresAt.lt(now.as_micros()))
        .limit(limit);
    if lock {
        expired = expired.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut rows = expired.all(db).await?;
    let left = limit.saturating_sub(rows.len() as u64);
    if left > 0 {
        let mut due = recipient::Entity::find()
            .filter(recipient::Column::Status.eq(RecipientStatus::Queued.as_str()))
            .filter(recipient::Column::NextAttemptAt.lte(now.as_micros()))
            .order_by_asc(recipient::Column::NextAttemptAt)
            .limit(left);
        if lock {
            due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        rows.extend(due.all(db).await?);
    }
    // One UPDATE per 200 claimed rows, naming each (message_id, idx).
    for chunk in rows.chunks(200) {
        recipient::Entity::update_many()
            .col_expr(
                recipient::Column::Status,
                Expr::value(RecipientStatus::Delivering.as_str()),
            )
            .col_expr(recipient::Column::LeaseOwner, Expr::value(owner))
            .col_expr(
                recipient::Column::LeaseExpiresAt,
                Expr::value(lease_until.as_micros()),
            )
            .col_expr(recipient::Column::UpdatedAt, Expr::value(now.as_micros()))
            .filter(
                Expr::tuple([
                    Expr::col(recipient::Column::MessageId),
                    Expr::col(recipient::Column::Idx),
                ])
                .in_tuples(chunk.iter().map(|r| (r.message_id.clone(), r.idx))),
            )
            .exec(db)
            .await?;
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Claimed {
            tenant_id: parse(&r.tenant_id, "tenant id")?,
            message_id: parse(&r.message_id, "message id")?,
            index: r.idx as u32,
            address: parse_with(&r.address, "recipient", EmailAddress::parse)?,
            attempts: r.attempts as u32,
        });
    }
    Ok(out)
}

/// The end of one recipient's attempt: its new status, attempts, next
/// attempt and last reply, lease released.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    pub claim: &'a Claimed,
    pub status: RecipientStatus,
    pub next_attempt_at: Timestamp,
    pub last_reply: Option<&'a str>,
}

/// Rows per statement in [`finish_many`] (six parameters each).
const FINISH_CHUNK: usize = 500;

/// Records the ends of attempts for recipients `owner` holds, one statement
/// per 500: an UPDATE joined to the new values. Returns the (message, index) pairs whose lease was
/// still held and are now recorded; the others are left unchanged.
pub async fn finish_many(
    db: &impl ConnectionTrait,
    owner: &str,
    items: &[Finish<'_>],
) -> Result<std::collections::HashSet<(MessageId, u32)>, StoreError> {
    let backend = db.get_database_backend();
    let now = Timestamp::now().as_micros();
    let mut kept = std::collections::HashSet::with_capacity(items.len());
    for chunk in items.chunks(FINISH_CHUNK) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6 + 2);
        let mut rows = Vec::with_capacity(chunk.len());
        for f in chunk {
            let first = values.len();
            values.extend([
                f.claim.message_id.to_string().into(),
                (f.claim.index as i32).into(),
                f.status.as_str().into(),
                ((f.claim.attempts + 1) as i32).into(),
                f.next_attempt_at.as_micros().into(),
                f.last_reply.map(str::to_owned).into(),
            ]);
            let cells: Vec<String> = (first..first + 6)
                .map(|i| placeholder(backend, i))
                .collect();
            rows.push(format!("({})", cells.join(", ")));
        }
        let updated_at = placeholder(backend, values.len());
        values.push(now.into());
        let owner_at = placeholder(backend, values.len());
        values.push(owner.into());
        let sql = format!(
            "WITH v (message_id, idx, status, attempts, next_attempt_at, last_reply) AS (VALUES {rows}) \
             UPDATE recipient SET status = v.status, attempts = v.attempts, \
             next_attempt_at = v.next_attempt_at, last_reply = v.last_reply, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = {updated_at} \
             FROM v WHERE recipient.message_id = v.message_id AND recipient.idx = v.idx \
             AND recipient.status = 'delivering' AND recipient.lease_owner = {owner_at} \
             RETURNING recipient.message_id, recipient.idx",
            rows = rows.join(", "),
        );
        let returned = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for r in returned {
            let id: String = r.try_get("", "message_id")?;
            let idx: i32 = r.try_get("", "idx")?;
            kept.insert((parse(&id, "message id")?, idx as u32));
        }
    }
    Ok(kept)
}

/// The `i`th (from 0) bind parameter in the backend's syntax.
fn placeholder(backend: DbBackend, i: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${}", i + 1),
        _ => "?".to_owned(),
    }
}

/// Puts claimed recipients back without an attempt, due at `until` (the
/// profile's throttle or batch pause said not yet).
pub async fn defer(
    db: &impl ConnectionTrait,
    owner: &str,
    claims: &[Claimed],
    until: Timestamp,
) -> Result<(), StoreError> {
    for c in claims {
        recipient::Entity::update_many()
            .col_expr(
                recipient::Column::Status,
                Expr::value(RecipientStatus::Queued.as_str()),
            )
            .col_expr(
                recipient::Column::NextAttemptAt,
                Expr::value(until.as_micros()),
            )
            .col_expr(
                recipient::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                recipient::Column::LeaseExpiresAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(recipient::Column::MessageId.eq(c.message_id.to_string()))
            .filter(recipient::Column::Idx.eq(c.index as i32))
            .filter(recipient::Column::Status.eq(RecipientStatus::Delivering.as_str()))
            .filter(recipient::Column::LeaseOwner.eq(owner))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Gives back what `owner` holds without an attempt (graceful shutdown).
pub async fn release_all(db: &impl ConnectionTrait, owner: &str) -> Result<u64, StoreError> {
    let res = recipient::Entity::update_many()
        .col_expr(
            recipient::Column::Status,
            Expr::value(RecipientStatus::Queued.as_str()),
        )
        .col_expr(
            recipient::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recipient::Column::LeaseExpiresAt,
            Expr::value(Option::<i64>::None),
        )
        .filter(recipient::Column::Status.eq(RecipientStatus::Delivering.as_str()))
        .filter(recipient::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
