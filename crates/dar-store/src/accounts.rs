//! The web accounts both roles' pages sign in (migrations `03xx`): plain methods on [`Store`].
//!
//! - `web_user`: a username (unique), an argon2id password hash (a PHC string; this crate
//!   never sees a password), the TOTP secret (RFC 6238) and per-factor failure counters.
//! - `web_session`: one row per browser session, keyed by the SHA-256 of the random id the
//!   session cookie carries (the caller hashes), so sessions are revocable on every instance
//!   ([`Store::revoke_all_sessions`]).
//!
//! - `web_parked_request`: cross-site protocol requests (§3.1 save-token, §3.2
//!   save-token-return) parked until a same-origin page takes them once
//!   ([`Store::park_request`], [`Store::take_parked_request`]).
//!
//! # The TOTP secret is a shared secret
//!
//! Whoever reads `web_user.totp_secret` can compute the user's codes. It is stored as given
//! (base32); a deployment should encrypt the column or the disk the database lives on, and
//! treat backups accordingly. Neither the secret nor the password hash ever appears in a
//! `Debug` output or a log line.
//!
//! # Failure counters
//!
//! Each factor has its own counter of consecutive failures, reset by a success. The caller
//! decides the limit (NIST SP 800-63B: at most 100 consecutive failures per method, after
//! which that method stops working; the account itself is never locked).

use crate::{Pool, Store, StoreError};

/// How often expired parked requests are deleted (seconds): the table holds at most this long
/// of expired requests besides the live ones.
pub(crate) const PARKED_PURGE_INTERVAL: i64 = 60;

/// Runs `$body` with `$pool` bound to the store's pool.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A web account's id (the `web_user` primary key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A sign-in factor, each with its own failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Factor {
    /// The password.
    Password,
    /// The TOTP code.
    Totp,
}

/// A web account as stored. `Debug` redacts the password hash and the TOTP secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct Account {
    /// The id.
    pub id: AccountId,
    /// The username (unique).
    pub username: String,
    /// The argon2id password hash, a PHC string.
    pub password_hash: String,
    /// The TOTP secret (base32), once enrolment started.
    pub totp_secret: Option<String>,
    /// Whether the user proved they hold the TOTP secret (enrolment complete).
    pub totp_confirmed: bool,
    /// Consecutive password failures.
    pub password_failures: i64,
    /// Consecutive TOTP failures.
    pub totp_failures: i64,
    /// When the account was created (unix seconds).
    pub created_at: i64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("totp_confirmed", &self.totp_confirmed)
            .field("password_failures", &self.password_failures)
            .field("totp_failures", &self.totp_failures)
            .finish_non_exhaustive()
    }
}

/// A live (not revoked) session as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// The signed-in account.
    pub account: AccountId,
    /// Whether the second factor was verified in this session.
    pub second_factor_ok: bool,
    /// When the session started (unix seconds).
    pub created_at: i64,
    /// When the session was last used (unix seconds).
    pub last_seen: i64,
}

const ACCOUNT_COLUMNS: &str = "web_user_id, username, password_hash, totp_secret, \
     totp_confirmed, password_failures, totp_failures, created_at";

type AccountRow = (i64, String, String, Option<String>, bool, i64, i64, i64);

fn account(row: AccountRow) -> Account {
    let (id, username, password_hash, totp_secret, totp_confirmed, pf, tf, created_at) = row;
    Account {
        id: AccountId(id),
        username,
        password_hash,
        totp_secret,
        totp_confirmed,
        password_failures: pf,
        totp_failures: tf,
        created_at,
    }
}

impl Store {
    /// Creates an account; `None` when the username is taken.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<AccountId>, StoreError> {
        let sql = "insert into web_user (username, password_hash, created_at) \
                   values ($1, $2, $3) on conflict (username) do nothing returning web_user_id";
        let id: Option<i64> = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(username)
            .bind(password_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        Ok(id.map(AccountId))
    }

    /// The account with this username.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("select {ACCOUNT_COLUMNS} from web_user where username = $1");
        let row: Option<AccountRow> = with_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(account))
    }

    /// The account with this id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let sql = format!("select {ACCOUNT_COLUMNS} from web_user where web_user_id = $1");
        let row: Option<AccountRow> = with_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(account))
    }

    /// Sets the TOTP secret of an account whose enrolment is not complete; `false` when it is
    /// (a confirmed secret is never replaced here).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn set_totp_secret(&self, id: AccountId, secret: &str) -> Result<bool, StoreError> {
        let sql = "update web_user set totp_secret = $2 \
                   where web_user_id = $1 and totp_confirmed = false";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(id.0)
            .bind(secret)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Accepts a verified TOTP time step: completes enrolment, resets the TOTP failure counter
    /// and remembers the step. `false` when this step (or a later one) was already accepted,
    /// so each code is accepted once (RFC 6238 §5.2); one statement decides, so two
    /// concurrent uses of one code cannot both succeed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn accept_totp_step(&self, id: AccountId, step: i64) -> Result<bool, StoreError> {
        let sql = "update web_user set totp_confirmed = true, totp_last_step = $2, \
                   totp_failures = 0 \
                   where web_user_id = $1 and totp_secret is not null \
                   and (totp_last_step is null or totp_last_step < $2)";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(id.0)
            .bind(step)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Counts one more consecutive failure of `factor`; returns the new count.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn record_failure(&self, id: AccountId, factor: Factor) -> Result<i64, StoreError> {
        let sql = match factor {
            Factor::Password => {
                "update web_user set password_failures = password_failures + 1 \
                 where web_user_id = $1 returning password_failures"
            }
            Factor::Totp => {
                "update web_user set totp_failures = totp_failures + 1 \
                 where web_user_id = $1 returning totp_failures"
            }
        };
        let n: Option<i64> = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(id.0)
            .fetch_optional(pool)
            .await?);
        Ok(n.unwrap_or(0))
    }

    /// Resets the failure counter of `factor` after a success.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn reset_failures(&self, id: AccountId, factor: Factor) -> Result<(), StoreError> {
        let sql = match factor {
            Factor::Password => "update web_user set password_failures = 0 where web_user_id = $1",
            Factor::Totp => "update web_user set totp_failures = 0 where web_user_id = $1",
        };
        with_pool!(self, pool => sqlx::query(sql).bind(id.0).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Records a new session for `account`. `session_hash` is the hex SHA-256 of the session
    /// id (never the id itself).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including a duplicate hash).
    pub async fn create_session(
        &self,
        session_hash: &str,
        account: AccountId,
        second_factor_ok: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = "insert into web_session (session_hash, web_user_id, created_at, last_seen, \
                   second_factor_ok) values ($1, $2, $3, $3, $4)";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(session_hash)
            .bind(account.0)
            .bind(now)
            .bind(second_factor_ok)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The live session with this hash: `None` when unknown or revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn session(&self, session_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = "select web_user_id, second_factor_ok, created_at, last_seen from web_session \
                   where session_hash = $1 and revoked = false";
        let row: Option<(i64, bool, i64, i64)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(session_hash)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(
            |(account, second_factor_ok, created_at, last_seen)| SessionRecord {
                account: AccountId(account),
                second_factor_ok,
                created_at,
                last_seen,
            },
        ))
    }

    /// Marks a live session's second factor as verified; `false` when the session is unknown
    /// or revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn set_second_factor_ok(
        &self,
        session_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = "update web_session set second_factor_ok = true, last_seen = $2 \
                   where session_hash = $1 and revoked = false";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(session_hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Updates a session's last use.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn touch_session(&self, session_hash: &str, now: i64) -> Result<(), StoreError> {
        let sql = "update web_session set last_seen = $2 where session_hash = $1";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(session_hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Revokes one session (sign-out).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn revoke_session(&self, session_hash: &str) -> Result<(), StoreError> {
        let sql = "update web_session set revoked = true where session_hash = $1";
        with_pool!(self, pool => sqlx::query(sql).bind(session_hash).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Revokes every session of an account, on every instance sharing the database; returns
    /// how many were live.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn revoke_all_sessions(&self, account: AccountId) -> Result<u64, StoreError> {
        let sql = "update web_session set revoked = true \
                   where web_user_id = $1 and revoked = false";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(account.0)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n)
    }

    /// Parks a request body under `parked_hash` (hex SHA-256 of a random id; the caller
    /// hashes) until `expires_at`. Expired rows are deleted first, at most once a minute.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including a duplicate hash).
    pub async fn park_request(
        &self,
        parked_hash: &str,
        kind: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.purge_parked_if_due(now).await?;
        with_pool!(self, pool => {
            sqlx::query(
                "insert into web_parked_request (parked_hash, kind, payload, created_at, \
                 expires_at) values ($1, $2, $3, $4, $5)",
            )
            .bind(parked_hash)
            .bind(kind)
            .bind(payload)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Deletes the expired parked requests, at most once per [`PARKED_PURGE_INTERVAL`] per
    /// process: an expired request is never taken ([`Store::take_parked_request`] checks the
    /// time), so the purge only bounds the table, and a write per park would cost a
    /// transaction (on SQLite, a `fsync`) per cross-site request.
    pub(crate) async fn purge_parked_if_due(&self, now: i64) -> Result<(), sqlx::Error> {
        use std::sync::atomic::Ordering;
        let last = self.parked_purged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PARKED_PURGE_INTERVAL
            || self
                .parked_purged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        with_pool!(self, pool => {
            sqlx::query("delete from web_parked_request where expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The parked request of this kind, left in place; `None` when unknown, of another kind
    /// or expired.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn peek_parked_request(
        &self,
        parked_hash: &str,
        kind: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let sql = "select payload from web_parked_request \
                   where parked_hash = $1 and kind = $2 and expires_at > $3";
        let payload: Option<String> = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(parked_hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        Ok(payload)
    }

    /// The parked request of this kind, removed in the same statement so it is taken once;
    /// `None` when unknown, of another kind, expired or already taken.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn take_parked_request(
        &self,
        parked_hash: &str,
        kind: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let sql = "delete from web_parked_request \
                   where parked_hash = $1 and kind = $2 and expires_at > $3 returning payload";
        let payload: Option<String> = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(parked_hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        Ok(payload)
    }
}

#[cfg(test)]
mod tests;
