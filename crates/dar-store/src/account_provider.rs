//! [`AccountProviderStore`] for [`Store`], on SQLite and PostgreSQL (migrations `01xx`).
//!
//! One SQL text serves both backends (`$n` placeholders, `on conflict`, `returning`); the
//! schemas differ only in column types. The exception is the commit of a recovery, the hot
//! path of recover-account-return, whose writes go to the database in one call: several
//! statements on SQLite, one statement of data-modifying CTEs on PostgreSQL. Times are unix
//! seconds. Every method that changes more than one row does so in one transaction, and the
//! single-use state it depends on is changed conditionally (compare-and-set), so concurrent
//! requests on any number of instances cannot both act on it. Constraint violations become
//! domain errors here: a duplicate countersigned id is [`AccountProviderError::Replayed`], a
//! second recovery of one token [`AccountProviderError::TokenAlreadyUsed`].

use dar_account_provider::{
    AccountProviderError, AccountProviderStore, AuditEntry, PendingSave, Purged, RecoveryCommit,
    RecoveryRecord, RevocationReason, StoreFailure, TokenRecord, Transition,
};
use dar_core::{Origin, TokenId};
use futures_util::StreamExt as _;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Executor as _, Row as _};
use time::OffsetDateTime;

use crate::{Pool, Store, StoreError};

/// Runs `$body` with `$pool` bound to the backend's pool; the body is compiled once per
/// backend, so the same SQL and code serve both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

const TOKEN_COLUMNS: &str = "ap_token_id, account_id, audience, state, revoked_reason, \
     created_at, updated_at, obsoletes, secret_hash, signing_key, sealing_key_id";

type TokenRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Vec<u8>,
    String,
    i64,
);

type RecoveryRow = (String, String, String, String, i64, bool, Option<i64>);

type AuditRow = (i64, String, String, String, String, Option<String>);

const INSERT_AUDIT: &str = "insert into ap_audit (at, event, ap_token_id, account_id, \
     recovery_provider, detail) values ($1, $2, $3, $4, $5, $6)";

/// §3.5 steps 9 and 16 on SQLite: the replay guard (a second insert of one countersigned id
/// fails on its key), the token used only if it is still in the state the decision saw, the
/// permanent record (one per token), the audit entry and, when given, the parked evidence.
/// Several statements in one call (sqlx runs them in turn on the connection's thread and
/// reports each one's rows): the call is one hand-off to that thread instead of five.
/// Parameters are numbered across all statements (`commit_query!` binds them). sqlx marks
/// several statements in one query as deprecated (`Query::execute_many`; only its SQLite
/// driver has them); the version pinned here runs them, and the refusal and race tests of
/// `tests/account_provider.rs` fail if an upgrade stops doing so.
const COMMIT_RECOVERY_SQLITE: &str = "\
    insert into ap_replay_guard (ap_replay_guard_id, ap_token_id, expires_at) \
        values ($1, $2, $3); \
    update ap_token set state = 'used', updated_at = $4 where ap_token_id = $2 and state = $5; \
    insert into ap_recovery (ap_recovery_id, ap_token_id, account_id, recovery_provider, \
        recovered_at, low_friction) values ($1, $2, $6, $7, $4, $8); \
    insert into ap_audit (at, event, ap_token_id, account_id, recovery_provider, detail) \
        values ($4, $9, $2, $6, $7, $1); \
    insert into web_parked_request (parked_hash, kind, payload, created_at, expires_at) \
        select $10, $11, $12, $4, $13 where $10 is not null";

/// The same writes on PostgreSQL as one statement (PostgreSQL prepares one statement per call),
/// which is its own transaction: data-modifying CTEs, every write made only when the token's
/// update matched, so a commit decided on a state the token is no longer in writes nothing.
/// The answer is how many rows the update matched. A concurrent commit over the same token
/// waits on the token's row, then finds it used and matches none.
const COMMIT_RECOVERY_POSTGRES: &str = "\
    with used as (update ap_token set state = 'used', updated_at = $4 \
            where ap_token_id = $2 and state = $5 returning ap_token_id), \
        guard as (insert into ap_replay_guard (ap_replay_guard_id, ap_token_id, expires_at) \
            select $1, ap_token_id, $3 from used), \
        recovery as (insert into ap_recovery (ap_recovery_id, ap_token_id, account_id, \
            recovery_provider, recovered_at, low_friction) \
            select $1, ap_token_id, $6, $7, $4, $8 from used), \
        audit as (insert into ap_audit (at, event, ap_token_id, account_id, recovery_provider, \
            detail) select $4, $9, ap_token_id, $6, $7, $1 from used), \
        parked as (insert into web_parked_request (parked_hash, kind, payload, created_at, \
            expires_at) select $10, $11, $12, $4, $13 from used where $10 is not null) \
    select count(*) from used";

/// A failed recovery commit: a duplicate key of the replay guard or of the permanent record
/// is a replayed countersigned token, a second record of one token a used token (§3.5 steps
/// 9 and 16); anything else is the store's.
fn commit_error(e: sqlx::Error) -> AccountProviderError {
    match unique_violation(&e) {
        Some(what) if what.contains("ap_recovery") && what.contains("ap_token_id") => {
            AccountProviderError::TokenAlreadyUsed
        }
        Some(what) if what.contains("ap_replay_guard") || what.contains("ap_recovery") => {
            AccountProviderError::Replayed
        }
        _ => db(e),
    }
}

impl From<StoreError> for AccountProviderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable => Self::Store(StoreFailure::Unavailable),
            other => Self::Store(StoreFailure::Backend(other.to_string())),
        }
    }
}

fn db(e: sqlx::Error) -> AccountProviderError {
    if let sqlx::Error::Database(d) = &e {
        tracing::warn!(code = ?d.code(), "account provider store: {}", d.message());
    }
    StoreError::from(e).into()
}

/// Whether `e` is a unique violation, and on which constraint or column.
fn unique_violation(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Some(
            d.constraint()
                .map_or_else(|| d.message().to_owned(), str::to_owned),
        ),
        _ => None,
    }
}

fn secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn time_from(s: i64) -> Result<OffsetDateTime, AccountProviderError> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|_| StoreFailure::Corrupt("time").into())
}

fn id_from(s: &str) -> Result<TokenId, AccountProviderError> {
    TokenId::from_hex(s).map_err(|_| StoreFailure::Corrupt("token id").into())
}

fn origin_from(s: &str) -> Result<Origin, AccountProviderError> {
    Origin::from_wire("origin", s.as_bytes()).map_err(|_| StoreFailure::Corrupt("origin").into())
}

fn hash_from(v: &[u8]) -> Result<[u8; 32], AccountProviderError> {
    v.try_into()
        .map_err(|_| StoreFailure::Corrupt("hash length").into())
}

fn token_from_row(r: TokenRow) -> Result<TokenRecord, AccountProviderError> {
    let (id, account_id, audience, state, reason, created, updated, obsoletes, hash, key, seal) = r;
    Ok(TokenRecord {
        token_id: id_from(&id)?,
        account_id,
        audience: origin_from(&audience)?,
        state: state.parse()?,
        revoked_reason: reason.map(|r| r.parse::<RevocationReason>()).transpose()?,
        created_at: time_from(created)?,
        updated_at: time_from(updated)?,
        obsoletes: obsoletes.as_deref().map(id_from).transpose()?,
        secret_hash: hash_from(&hash)?,
        signing_key: key,
        sealing_key_id: u32::try_from(seal).map_err(|_| StoreFailure::Corrupt("sealing key id"))?,
    })
}

impl Store {
    /// The delegated recoveries countersigned by `recovery_provider` at or after `from` and
    /// before `until`, oldest first, at most `limit` (§6.8: told that a recovery provider's key
    /// was compromised in a window, the account provider reviews the recoveries it
    /// countersigned then).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails or a row does not decode
    /// ([`StoreError::Corrupt`]).
    pub async fn recoveries_through(
        &self,
        recovery_provider: &Origin,
        from: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RecoveryRecord>, StoreError> {
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "select ap_recovery_id, ap_token_id, account_id, recovery_provider, \
                 recovered_at, low_friction, repudiated_at from ap_recovery \
                 where recovery_provider = $1 and recovered_at >= $2 and recovered_at < $3 \
                 order by recovered_at, ap_recovery_id limit $4",
            )
            .bind(recovery_provider.as_str())
            .bind(secs(from))
            .bind(secs(until))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| recovery_from_row(row).map_err(|_| StoreError::Corrupt("ap_recovery row")))
            .collect()
    }
}

fn recovery_from_row(r: RecoveryRow) -> Result<RecoveryRecord, AccountProviderError> {
    let (cs, token, account_id, rp, at, low_friction, repudiated) = r;
    Ok(RecoveryRecord {
        countersigned_id: id_from(&cs)?,
        token_id: id_from(&token)?,
        account_id,
        recovery_provider: origin_from(&rp)?,
        recovered_at: time_from(at)?,
        low_friction,
        repudiated_at: repudiated.map(time_from).transpose()?,
    })
}

fn audit_from_row(r: AuditRow) -> Result<AuditEntry, AccountProviderError> {
    let (at, event, token, account_id, rp, detail) = r;
    Ok(AuditEntry {
        at: time_from(at)?,
        event: event.parse()?,
        token_id: id_from(&token)?,
        account_id,
        recovery_provider: origin_from(&rp)?,
        detail,
    })
}

/// Binds an audit entry to [`INSERT_AUDIT`] and runs it on `$conn`.
macro_rules! insert_audit {
    ($conn:expr, $entry:expr) => {{
        let e: &AuditEntry = $entry;
        sqlx::query(INSERT_AUDIT)
            .bind(secs(e.at))
            .bind(e.event.as_str())
            .bind(e.token_id.to_string())
            .bind(e.account_id.as_str())
            .bind(e.recovery_provider.as_str())
            .bind(e.detail.as_deref())
            .execute($conn)
            .await
            .map_err(db)
    }};
}

/// Whether `$id` is in the replay guard, on `$conn` (a pool or a connection); a failure
/// returns from the enclosing function.
macro_rules! is_replayed_on {
    ($conn:expr, $id:expr) => {{
        let row: Option<(String,)> = sqlx::query_as(
            "select ap_replay_guard_id from ap_replay_guard where ap_replay_guard_id = $1",
        )
        .bind($id.to_string())
        .fetch_optional($conn)
        .await
        .map_err(db)?;
        row.is_some()
    }};
}

/// [`AccountProviderStore::replayed_and_token`] on `$conn`: one round trip for the usual
/// case, where the token exists; a failure returns from the enclosing function.
macro_rules! replayed_and_token_on {
    ($conn:expr, $countersigned_id:expr, $token_id:expr) => {{
        let sql = format!(
            "select {TOKEN_COLUMNS}, exists(select 1 from ap_replay_guard \
             where ap_replay_guard_id = $1) from ap_token where ap_token_id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind($countersigned_id.to_string())
            .bind($token_id.to_string())
            .fetch_optional($conn)
            .await
            .map_err(db)?;
        // The token's columns decode as a `TokenRow` (which reads its eleven columns by
        // position); the replay guard's answer is the twelfth.
        let found: Option<(TokenRow, bool)> = row
            .map(|row| Ok((sqlx::FromRow::from_row(&row)?, row.try_get(11)?)))
            .transpose()
            .map_err(db)?;
        match found {
            Some((token, replayed)) => (replayed, Some(token_from_row(token)?)),
            None => (is_replayed_on!($conn, $countersigned_id), None),
        }
    }};
}

/// Binds the numbered parameters of [`COMMIT_RECOVERY_SQLITE`] and
/// [`COMMIT_RECOVERY_POSTGRES`] for `$c`.
macro_rules! commit_query {
    ($sql:expr, $c:expr, $cs:expr, $token:expr) => {{
        let c: &RecoveryCommit = $c;
        let handoff = c.handoff.as_ref();
        sqlx::query($sql)
            .bind($cs)
            .bind($token)
            .bind(secs(c.guard_expires_at))
            .bind(secs(c.at))
            .bind(c.from.as_str())
            .bind(c.account_id.as_str())
            .bind(c.recovery_provider.as_str())
            .bind(c.low_friction)
            .bind(dar_account_provider::AuditEvent::Recovered.as_str())
            .bind(handoff.map(|h| h.key_hash.as_str()))
            .bind(handoff.map(|h| h.kind.as_str()))
            .bind(handoff.map(|h| h.payload.as_str()))
            .bind(handoff.map(|h| secs(h.expires_at)))
    }};
}

/// [`AccountProviderStore::commit_recovery`] on a SQLite connection: a transaction around
/// one call of [`COMMIT_RECOVERY_SQLITE`]. A refusal at any statement drops the transaction,
/// which rolls back the ones before.
async fn commit_sqlite(
    conn: &mut SqliteConnection,
    c: &RecoveryCommit,
) -> Result<(), AccountProviderError> {
    let (cs, token) = (c.countersigned_id.to_string(), c.token_id.to_string());
    let mut tx = conn.begin().await.map_err(db)?;
    // One result per statement; the second is the token's update.
    let mut results = (&mut *tx).execute_many(commit_query!(
        COMMIT_RECOVERY_SQLITE,
        c,
        cs.as_str(),
        token.as_str()
    ));
    let mut used = 0;
    let mut step = 0;
    while let Some(result) = results.next().await {
        let result = result.map_err(commit_error)?;
        if step == 1 {
            used = result.rows_affected();
        }
        step += 1;
    }
    drop(results);
    if used == 0 {
        return Err(AccountProviderError::TokenAlreadyUsed);
    }
    tx.commit().await.map_err(db)
}

/// [`AccountProviderStore::commit_recovery`] on a PostgreSQL connection: one statement,
/// [`COMMIT_RECOVERY_POSTGRES`], its own transaction.
async fn commit_postgres(
    conn: &mut PgConnection,
    c: &RecoveryCommit,
) -> Result<(), AccountProviderError> {
    let (cs, token) = (c.countersigned_id.to_string(), c.token_id.to_string());
    let used: i64 = commit_query!(COMMIT_RECOVERY_POSTGRES, c, cs.as_str(), token.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(commit_error)?
        .try_get(0)
        .map_err(db)?;
    if used == 0 {
        // Nothing was written. The commit that used the token first may have been one of this
        // same countersigned token, which is then a replay.
        return Err(if is_replayed_on!(&mut *conn, c.countersigned_id) {
            AccountProviderError::Replayed
        } else {
            AccountProviderError::TokenAlreadyUsed
        });
    }
    Ok(())
}

impl AccountProviderStore for Store {
    async fn insert_token(
        &self,
        r: &TokenRecord,
        pending: &PendingSave,
        audit: &AuditEntry,
    ) -> Result<(), AccountProviderError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(db)?;
            sqlx::query(
                "insert into ap_token (ap_token_id, account_id, audience, state, revoked_reason, \
                 created_at, updated_at, obsoletes, secret_hash, signing_key, sealing_key_id) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(r.token_id.to_string())
            .bind(r.account_id.as_str())
            .bind(r.audience.as_str())
            .bind(r.state.as_str())
            .bind(r.revoked_reason.map(RevocationReason::as_str))
            .bind(secs(r.created_at))
            .bind(secs(r.updated_at))
            .bind(r.obsoletes.map(|t| t.to_string()))
            .bind(r.secret_hash.to_vec())
            .bind(r.signing_key.as_str())
            .bind(i64::from(r.sealing_key_id))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query(
                "insert into ap_save_state (ap_save_state_id, session_hash, ap_token_id, \
                 expires_at) values ($1, $2, $3, $4)",
            )
            .bind(pending.state_hash.to_vec())
            .bind(pending.session_hash.to_vec())
            .bind(pending.token_id.to_string())
            .bind(secs(pending.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn token(&self, token_id: TokenId) -> Result<Option<TokenRecord>, AccountProviderError> {
        let sql = format!("select {TOKEN_COLUMNS} from ap_token where ap_token_id = $1");
        let row: Option<TokenRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(token_id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(token_from_row).transpose()
    }

    async fn tokens_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<TokenRecord>, AccountProviderError> {
        let sql = format!(
            "select {TOKEN_COLUMNS} from ap_token where account_id = $1 \
             order by created_at, ap_token_id"
        );
        let rows: Vec<TokenRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(account_id)
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        rows.into_iter().map(token_from_row).collect()
    }

    async fn take_pending_save(
        &self,
        state_hash: &[u8; 32],
        session_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<TokenId>, AccountProviderError> {
        // One statement: the state is consumed atomically, and only by its own session.
        let row: Option<(String,)> = with_pool!(self, pool => {
            sqlx::query_as(
                "delete from ap_save_state where ap_save_state_id = $1 and session_hash = $2 \
                 and expires_at > $3 returning ap_token_id",
            )
            .bind(state_hash.to_vec())
            .bind(session_hash.to_vec())
            .bind(secs(now))
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(|(id,)| id_from(&id)).transpose()
    }

    async fn apply_transition(&self, t: &Transition) -> Result<bool, AccountProviderError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(db)?;
            // Compare-and-set first: the write lock is taken before anything is read.
            let done = sqlx::query(
                "update ap_token set state = $1, revoked_reason = $2, updated_at = $3 \
                 where ap_token_id = $4 and state = $5",
            )
            .bind(t.to.as_str())
            .bind(t.revoked_reason.map(RevocationReason::as_str))
            .bind(secs(t.at))
            .bind(t.token_id.to_string())
            .bind(t.from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            insert_audit!(&mut *tx, &t.audit)?;
            if let Some(old) = t.revoke_replaced {
                let revoked: Option<(String,)> = sqlx::query_as(
                    "update ap_token set state = 'revoked', revoked_reason = 'replaced', \
                     updated_at = $1 where ap_token_id = $2 and account_id = $3 \
                     and state not in ('used', 'revoked') returning audience",
                )
                .bind(secs(t.at))
                .bind(old.to_string())
                .bind(t.audit.account_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                if let Some((audience,)) = revoked {
                    let entry = AuditEntry {
                        at: t.at,
                        event: dar_account_provider::AuditEvent::Revoked,
                        token_id: old,
                        account_id: t.audit.account_id.clone(),
                        recovery_provider: origin_from(&audience)?,
                        detail: Some(RevocationReason::Replaced.as_str().to_owned()),
                    };
                    insert_audit!(&mut *tx, &entry)?;
                }
            }
            if let Some(cs) = t.repudiate_recovery {
                let marked: Option<(String,)> = sqlx::query_as(
                    "update ap_recovery set repudiated_at = $1 where ap_recovery_id = $2 \
                     and ap_token_id = $3 and repudiated_at is null returning recovery_provider",
                )
                .bind(secs(t.at))
                .bind(cs.to_string())
                .bind(t.token_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                if let Some((rp,)) = marked {
                    let entry = AuditEntry {
                        at: t.at,
                        event: dar_account_provider::AuditEvent::RecoveryRepudiated,
                        token_id: t.token_id,
                        account_id: t.audit.account_id.clone(),
                        recovery_provider: origin_from(&rp)?,
                        detail: Some(cs.to_string()),
                    };
                    insert_audit!(&mut *tx, &entry)?;
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
    }

    async fn is_replayed(&self, countersigned_id: TokenId) -> Result<bool, AccountProviderError> {
        Ok(with_pool!(self, pool => is_replayed_on!(pool, countersigned_id)))
    }

    async fn replayed_and_token(
        &self,
        countersigned_id: TokenId,
        token_id: TokenId,
    ) -> Result<(bool, Option<TokenRecord>), AccountProviderError> {
        Ok(with_pool!(self, pool => replayed_and_token_on!(pool, countersigned_id, token_id)))
    }

    async fn commit_recovery(&self, c: &RecoveryCommit) -> Result<(), AccountProviderError> {
        if c.handoff.is_some() {
            self.purge_parked_if_due(secs(c.at)).await.map_err(db)?;
        }
        match &self.pool {
            Pool::Sqlite(pool) => commit_sqlite(&mut *pool.acquire().await.map_err(db)?, c).await,
            Pool::Postgres(pool) => {
                commit_postgres(&mut *pool.acquire().await.map_err(db)?, c).await
            }
        }
    }

    async fn recover<A, D, F>(
        &self,
        countersigned_id: TokenId,
        token_id: TokenId,
        decide: F,
    ) -> Result<Result<A, D>, AccountProviderError>
    where
        A: Send,
        D: Send,
        F: FnOnce(
                bool,
                Option<TokenRecord>,
            ) -> Result<Result<(RecoveryCommit, A), D>, AccountProviderError>
            + Send,
    {
        // One connection for the reads and the commit: taking one from the pool and giving it
        // back each cost a round trip (sqlx pings a connection given back), on SQLite through
        // the one connection every request queues for.
        macro_rules! on_one_connection {
            ($pool:expr, $commit:ident) => {{
                let mut conn = $pool.acquire().await.map_err(db)?;
                let (replayed, record) =
                    replayed_and_token_on!(&mut *conn, countersigned_id, token_id);
                match decide(replayed, record)? {
                    Ok((commit, accepted)) => {
                        $commit(&mut conn, &commit).await?;
                        (commit, accepted)
                    }
                    Err(declined) => return Ok(Err(declined)),
                }
            }};
        }
        let (commit, accepted) = match &self.pool {
            Pool::Sqlite(pool) => on_one_connection!(pool, commit_sqlite),
            Pool::Postgres(pool) => on_one_connection!(pool, commit_postgres),
        };
        // With the connection given back: on SQLite the purge needs the same one. The
        // recovery is committed by now, so a failed purge must not turn it into an error (the
        // token is used; the user could not try again): it only bounds the table, and the
        // next one due tries again.
        if commit.handoff.is_some()
            && let Err(e) = self.purge_parked_if_due(secs(commit.at)).await
        {
            tracing::warn!("purging expired parked requests after a recovery failed: {e}");
        }
        Ok(Ok(accepted))
    }

    async fn recoveries_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<RecoveryRecord>, AccountProviderError> {
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "select ap_recovery_id, ap_token_id, account_id, recovery_provider, \
                 recovered_at, low_friction, repudiated_at from ap_recovery \
                 where account_id = $1 order by recovered_at, ap_recovery_id",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter().map(recovery_from_row).collect()
    }

    async fn audit_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<AuditEntry>, AccountProviderError> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "select at, event, ap_token_id, account_id, recovery_provider, detail \
                 from ap_audit where account_id = $1 order by ap_audit_id",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter().map(audit_from_row).collect()
    }

    async fn count_status_event(
        &self,
        recovery_provider: &Origin,
        window_start: i64,
    ) -> Result<u64, AccountProviderError> {
        // One atomic upsert: every instance counts in the same row.
        let (n,): (i64,) = with_pool!(self, pool => {
            sqlx::query_as(
                "insert into ap_status_rate (recovery_provider, window_start, event_count) \
                 values ($1, $2, 1) on conflict (recovery_provider, window_start) \
                 do update set event_count = ap_status_rate.event_count + 1 \
                 returning event_count",
            )
            .bind(recovery_provider.as_str())
            .bind(window_start)
            .fetch_one(pool)
            .await
            .map_err(db)?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        windows_before: i64,
    ) -> Result<Purged, AccountProviderError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(db)?;
            let states = sqlx::query("delete from ap_save_state where expires_at <= $1")
                .bind(secs(now))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let guard = sqlx::query("delete from ap_replay_guard where expires_at <= $1")
                .bind(secs(now))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let windows = sqlx::query("delete from ap_status_rate where window_start < $1")
                .bind(windows_before)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(Purged {
                save_states: states.rows_affected(),
                replay_guard: guard.rows_affected(),
                rate_windows: windows.rows_affected(),
            })
        })
    }
}

#[cfg(test)]
mod tests;
