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

/// Records the end of an attempt for a recipient `owner` holds: its new
/// status, attempts, next attempt and last reply, lease released. Returns
/// false when the lease was lost (expired and taken by another worker), in
/// which case nothing is changed.
pub async fn finish(
    db: &impl ConnectionTrait,
    owner: &str,
    c: &Claimed,
    status: RecipientStatus,
    next_attempt_at: Timestamp,
    last_reply: Option<&str>,
) -> Result<bool, StoreError> {
    let res = recipient::Entity::update_many()
        .col_expr(recipient::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            recipient::Column::Attempts,
            Expr::value((c.attempts + 1) as i32),
        )
        .col_expr(
            recipient::Column::NextAttemptAt,
            Expr::value(next_attempt_at.as_micros()),
        )
        .col_expr(
            recipient::Column::LastReply,
            Expr::value(last_reply.map(str::to_owned)),
        )
        .col_expr(
            recipient::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recipient::Column::LeaseExpiresAt,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            recipient::Column::UpdatedAt,
            Expr::value(Timestamp::now().as_micros()),
        )
        .filter(recipient::Column::MessageId.eq(c.message_id.to_string()))
        .filter(recipient::Column::Idx.eq(c.index as i32))
        .filter(recipient::Column::Status.eq(RecipientStatus::Delivering.as_str()))
        .filter(recipient::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
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
