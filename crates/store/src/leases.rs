//! Claiming due recipients for delivery. A claim marks recipients
//! `delivering` with a lease (owner, expiry) and is committed before any
//! SMTP is spoken; a worker that dies leaves leases that expire, and the
//! recipients are claimed again. PostgreSQL claims with `FOR UPDATE SKIP
//! LOCKED`, so concurrent workers take disjoint rows; SQLite's single
//! writer (IMMEDIATE transactions) serialises claims.

use herald_domain::{EmailAddress, MessageId, RecipientStatus, TenantId, Timestamp};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value,
};

use crate::convert::{parse, parse_with};
use crate::entity::recipient;
use crate::{StoreError, placeholder};

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
    // Two statements, each an UPDATE of a range of ix_recipient_due
    // (status, next_attempt_at) returning what it claimed: an OR of both
    // ranges would scan the table. PostgreSQL locks the chosen rows with
    // SKIP LOCKED so that concurrent workers take disjoint ones.
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let mut out = Vec::new();
    let ranges = [
        (
            RecipientStatus::Delivering,
            "lease_expires_at < {now}",
            "lease_expires_at",
        ),
        (
            RecipientStatus::Queued,
            "next_attempt_at <= {now}",
            "next_attempt_at",
        ),
    ];
    for (status, due, order) in ranges {
        let left = limit.saturating_sub(out.len() as u64);
        if left == 0 {
            break;
        }
        let mut values: Vec<Value> = Vec::with_capacity(7);
        let mut bind = |v: Value| {
            values.push(v);
            placeholder(backend, values.len() - 1)
        };
        let set_status = bind(RecipientStatus::Delivering.as_str().into());
        let set_owner = bind(owner.into());
        let set_until = bind(lease_until.as_micros().into());
        let set_now = bind(now.as_micros().into());
        let from = bind(status.as_str().into());
        let due = due.replace("{now}", &bind(now.as_micros().into()));
        let limit = bind((left as i64).into());
        let sql = format!(
            "UPDATE recipient SET status = {set_status}, lease_owner = {set_owner}, \
             lease_expires_at = {set_until}, updated_at = {set_now} \
             WHERE (message_id, idx) IN (SELECT message_id, idx FROM recipient \
             WHERE status = {from} AND {due} ORDER BY {order} LIMIT {limit}{lock}) \
             RETURNING tenant_id, message_id, idx, address, attempts"
        );
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for r in rows {
            let tenant: String = r.try_get("", "tenant_id")?;
            let message: String = r.try_get("", "message_id")?;
            let idx: i32 = r.try_get("", "idx")?;
            let address: String = r.try_get("", "address")?;
            let attempts: i32 = r.try_get("", "attempts")?;
            out.push(Claimed {
                tenant_id: parse(&tenant, "tenant id")?,
                message_id: parse(&message, "message id")?,
                index: idx as u32,
                address: parse_with(&address, "recipient", EmailAddress::parse)?,
                attempts: attempts as u32,
            });
        }
    }
    // RETURNING comes in no particular order on PostgreSQL; a message's
    // recipients go out in the order they were given (RCPT TO follows the
    // To, Cc, Bcc lists).
    out.sort_unstable_by_key(|c| (c.message_id, c.index));
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
const FINISH_CHUNK: usize = 256;

/// Records the ends of attempts for recipients `owner` holds, 256 per
/// statement (see [`crate::shaped`]): an UPDATE joined to the new values.
/// Returns the (message, index) pairs whose lease was still held and are
/// now recorded; the others are left unchanged.
pub async fn finish_many(
    db: &impl ConnectionTrait,
    owner: &str,
    items: &[Finish<'_>],
) -> Result<std::collections::HashSet<(MessageId, u32)>, StoreError> {
    let backend = db.get_database_backend();
    let now = Timestamp::now().as_micros();
    let mut kept = std::collections::HashSet::with_capacity(items.len());
    for chunk in crate::shaped(items, FINISH_CHUNK) {
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
