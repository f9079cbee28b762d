//! The recovery provider's tables (migrations `02xx`) and [`RecoveryProviderStore`] for
//! [`Store`].
//!
//! - `rp_saved_token`: one row per (issuer, token id) ever saved, unique across users; removal
//!   erases the token bytes and keeps the row, so a token once saved for one user is never
//!   saved for another (§6.8) nor silently revived. `signer_key_id` (migration `0201`) names
//!   the key the token verified with when saved, null for rows saved before it.
//! - `rp_recovery`: every exercise of a token (§3.4), permanent.
//! - `rp_outbox`: status callbacks (§3.6) and user notifications (§3.4 step 6), each written in
//!   the transaction of the change it reports.
//!
//! Times are unix seconds; token ids are lower-case hex. The same SQL (with `$n` placeholders)
//! runs on both backends. Token bytes are stored but never logged.

use dar_core::{KeyId, Options, Origin, TokenId};
use dar_recovery_provider::{
    NewSavedToken, OutboxEntry, OutboxId, OutboxMessage, RecoveryProviderStore, RecoveryRecord,
    RemovalReason, SaveTokenResult, SavedTokenBytes, SavedTokenSummary, StatusCallback, StoreFault,
    TokenStatus, UserId, UserNotification,
};
use time::OffsetDateTime;

use crate::{Pool, Store, StoreError};

/// Runs `$body` with `$tx` bound to a transaction on the store's backend, and commits it when
/// `$body` completes; an early return (`?` or `return`) rolls it back.
macro_rules! with_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the store's pool.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

const INSERT_OUTBOX: &str = "insert into rp_outbox (kind, url, issuer, token_id, status, \
     countersigned_id, user_id, nickname, event_at, created_at, next_attempt_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) returning rp_outbox_id";

/// Writes `$message` (an `&OutboxMessage`) to the outbox through `$ex`, returning its id.
macro_rules! insert_outbox {
    ($ex:expr, $message:expr, $at:expr) => {{
        let row = OutboxRow::from_message($message, $at);
        sqlx::query_scalar::<_, i64>(INSERT_OUTBOX)
            .bind(row.kind)
            .bind(row.url)
            .bind(row.issuer)
            .bind(row.token_id)
            .bind(row.status)
            .bind(row.countersigned_id)
            .bind(row.user_id)
            .bind(row.nickname)
            .bind(row.event_at)
            .bind(secs($at))
            .fetch_one($ex)
            .await?
    }};
}

const TOKEN_SUMMARY_COLUMNS: &str = "issuer, token_id, nickname, options, saved_at";
const RECOVERY_COLUMNS: &str = "user_id, issuer, token_id, countersigned_id, low_friction, \
     status_requested, recovered_at, repudiated_at";

type SummaryRow = (String, String, Option<String>, i64, i64);
type RecoveryRow = (String, String, String, String, bool, bool, i64, Option<i64>);
type OutboxDbRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
);

impl Store {
    async fn rp_save_token(
        &self,
        token: &NewSavedToken,
        on_saved: Option<&OutboxMessage>,
    ) -> Result<SaveTokenResult, StoreError> {
        let issuer = token.issuer.as_str();
        let token_id = token.token_id.to_string();
        let at = secs(token.saved_at);
        let signer = token.signer.map(|id| id.to_string());
        let result = with_tx!(self, tx => {
            // One statement decides ownership: concurrent saves of one token serialize on the
            // (issuer, token_id) key and exactly one inserts.
            let inserted = sqlx::query(
                "insert into rp_saved_token (user_id, issuer, token_id, token, options, \
                 nickname, login_hint, login_hint_sha256, saved_at, signer_key_id) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 on conflict (issuer, token_id) do nothing",
            )
            .bind(token.user.as_str())
            .bind(issuer)
            .bind(&token_id)
            .bind(token.token.as_slice())
            .bind(i64::from(token.options.bits()))
            .bind(token.nickname.as_deref())
            .bind(token.login_hint.as_deref())
            .bind(token.login_hint_sha256.as_deref())
            .bind(at)
            .bind(&signer)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let existing: Option<(String, Option<i64>)> = sqlx::query_as(
                    "select user_id, removed_at from rp_saved_token \
                     where issuer = $1 and token_id = $2",
                )
                .bind(issuer)
                .bind(&token_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((owner, removed_at)) = existing else {
                    return Err(corrupt("saved token vanished during save"));
                };
                return Ok(if owner != token.user.as_str() {
                    SaveTokenResult::OwnedByAnotherUser
                } else if removed_at.is_some() {
                    SaveTokenResult::Removed
                } else {
                    SaveTokenResult::AlreadySaved
                });
            }
            // §3.1 obsoletes: the same user's token of the same issuer, in this transaction.
            if let Some(old) = token.obsoletes.filter(|o| *o != token.token_id) {
                sqlx::query(
                    "update rp_saved_token set token = null, removed_at = $4, \
                     removed_reason = 'obsoleted' \
                     where user_id = $1 and issuer = $2 and token_id = $3 \
                     and removed_at is null",
                )
                .bind(token.user.as_str())
                .bind(issuer)
                .bind(old.to_string())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(message) = on_saved {
                insert_outbox!(&mut *tx, message, token.saved_at);
            }
            SaveTokenResult::Saved
        });
        Ok(result)
    }

    async fn rp_list_tokens(&self, user: &UserId) -> Result<Vec<SavedTokenSummary>, StoreError> {
        let sql = format!(
            "select {TOKEN_SUMMARY_COLUMNS} from rp_saved_token \
             where user_id = $1 and removed_at is null \
             order by saved_at, rp_saved_token_id"
        );
        let rows: Vec<SummaryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user.as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(summary).collect()
    }

    async fn rp_token_bytes(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
    ) -> Result<Option<SavedTokenBytes>, StoreError> {
        let row: Option<(Option<Vec<u8>>, Option<String>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "select token, signer_key_id from rp_saved_token \
                 where user_id = $1 and issuer = $2 and token_id = $3 and removed_at is null",
            )
            .bind(user.as_str())
            .bind(issuer.as_str())
            .bind(token_id.to_string())
            .fetch_optional(pool)
            .await?
        });
        let Some((Some(token), signer)) = row else {
            return Ok(None);
        };
        let signer = signer
            .map(|text| text.parse::<KeyId>())
            .transpose()
            .map_err(|_| corrupt("stored signer key id"))?;
        Ok(Some(SavedTokenBytes { token, signer }))
    }

    async fn rp_rename_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        nickname: Option<&str>,
    ) -> Result<bool, StoreError> {
        let renamed = with_pool!(self, pool => {
            sqlx::query(
                "update rp_saved_token set nickname = $4 \
                 where user_id = $1 and issuer = $2 and token_id = $3 and removed_at is null",
            )
            .bind(user.as_str())
            .bind(issuer.as_str())
            .bind(token_id.to_string())
            .bind(nickname)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(renamed > 0)
    }

    async fn rp_remove_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        reason: RemovalReason,
        at: OffsetDateTime,
        on_removed: Option<&OutboxMessage>,
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let removed = sqlx::query(
                "update rp_saved_token set token = null, removed_at = $4, removed_reason = $5 \
                 where user_id = $1 and issuer = $2 and token_id = $3 and removed_at is null",
            )
            .bind(user.as_str())
            .bind(issuer.as_str())
            .bind(token_id.to_string())
            .bind(secs(at))
            .bind(reason.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if removed == 0 {
                return Ok(false);
            }
            if let Some(message) = on_removed {
                insert_outbox!(&mut *tx, message, at);
            }
        });
        Ok(true)
    }

    async fn rp_record_recovery(
        &self,
        record: &RecoveryRecord,
        notification: &OutboxMessage,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            sqlx::query(
                "insert into rp_recovery (user_id, issuer, token_id, countersigned_id, \
                 low_friction, status_requested, recovered_at, repudiated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(record.user.as_str())
            .bind(record.issuer.as_str())
            .bind(record.token_id.to_string())
            .bind(record.countersigned_id.to_string())
            .bind(record.low_friction)
            .bind(record.status_requested)
            .bind(secs(record.recovered_at))
            .bind(record.repudiated_at.map(secs))
            .execute(&mut *tx)
            .await?;
            insert_outbox!(&mut *tx, notification, record.recovered_at);
        });
        Ok(())
    }

    async fn rp_find_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
    ) -> Result<Option<RecoveryRecord>, StoreError> {
        let sql = format!(
            "select {RECOVERY_COLUMNS} from rp_recovery \
             where user_id = $1 and countersigned_id = $2"
        );
        let row: Option<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user.as_str())
                .bind(countersigned_id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(recovery).transpose()
    }

    async fn rp_list_recoveries(&self, user: &UserId) -> Result<Vec<RecoveryRecord>, StoreError> {
        let sql = format!(
            "select {RECOVERY_COLUMNS} from rp_recovery where user_id = $1 \
             order by recovered_at desc, rp_recovery_id desc"
        );
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user.as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(recovery).collect()
    }

    async fn rp_repudiate_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
        at: OffsetDateTime,
        on_repudiated: Option<&OutboxMessage>,
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let changed = sqlx::query(
                "update rp_recovery set repudiated_at = $3 \
                 where user_id = $1 and countersigned_id = $2 and repudiated_at is null",
            )
            .bind(user.as_str())
            .bind(countersigned_id.to_string())
            .bind(secs(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            if let Some(message) = on_repudiated {
                insert_outbox!(&mut *tx, message, at);
            }
        });
        Ok(true)
    }

    async fn rp_queue(
        &self,
        message: &OutboxMessage,
        at: OffsetDateTime,
    ) -> Result<OutboxId, StoreError> {
        let id = with_pool!(self, pool => insert_outbox!(pool, message, at));
        Ok(OutboxId(id))
    }

    async fn rp_pending_outbox(
        &self,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows: Vec<OutboxDbRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "select rp_outbox_id, kind, issuer, token_id, status, countersigned_id, \
                 user_id, nickname, event_at, created_at, attempts from rp_outbox \
                 where delivered_at is null and next_attempt_at <= $1 \
                 order by rp_outbox_id limit $2",
            )
            .bind(secs(now))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(outbox_entry).collect()
    }

    async fn rp_mark_outbox_delivered(
        &self,
        id: OutboxId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "update rp_outbox set delivered_at = $2 \
                 where rp_outbox_id = $1 and delivered_at is null",
            )
            .bind(id.0)
            .bind(secs(at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn rp_mark_outbox_failed(
        &self,
        id: OutboxId,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "update rp_outbox set attempts = attempts + 1, next_attempt_at = $2 \
                 where rp_outbox_id = $1 and delivered_at is null",
            )
            .bind(id.0)
            .bind(secs(next_attempt_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

impl RecoveryProviderStore for Store {
    async fn save_token(
        &self,
        token: &NewSavedToken,
        on_saved: Option<&OutboxMessage>,
    ) -> Result<SaveTokenResult, StoreFault> {
        self.rp_save_token(token, on_saved).await.map_err(fault)
    }

    async fn list_tokens(&self, user: &UserId) -> Result<Vec<SavedTokenSummary>, StoreFault> {
        self.rp_list_tokens(user).await.map_err(fault)
    }

    async fn token_bytes(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
    ) -> Result<Option<SavedTokenBytes>, StoreFault> {
        self.rp_token_bytes(user, issuer, token_id)
            .await
            .map_err(fault)
    }

    async fn rename_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        nickname: Option<&str>,
    ) -> Result<bool, StoreFault> {
        self.rp_rename_token(user, issuer, token_id, nickname)
            .await
            .map_err(fault)
    }

    async fn remove_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        reason: RemovalReason,
        at: OffsetDateTime,
        on_removed: Option<&OutboxMessage>,
    ) -> Result<bool, StoreFault> {
        self.rp_remove_token(user, issuer, token_id, reason, at, on_removed)
            .await
            .map_err(fault)
    }

    async fn record_recovery(
        &self,
        record: &RecoveryRecord,
        notification: &OutboxMessage,
    ) -> Result<(), StoreFault> {
        self.rp_record_recovery(record, notification)
            .await
            .map_err(fault)
    }

    async fn find_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
    ) -> Result<Option<RecoveryRecord>, StoreFault> {
        self.rp_find_recovery(user, countersigned_id)
            .await
            .map_err(fault)
    }

    async fn list_recoveries(&self, user: &UserId) -> Result<Vec<RecoveryRecord>, StoreFault> {
        self.rp_list_recoveries(user).await.map_err(fault)
    }

    async fn repudiate_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
        at: OffsetDateTime,
        on_repudiated: Option<&OutboxMessage>,
    ) -> Result<bool, StoreFault> {
        self.rp_repudiate_recovery(user, countersigned_id, at, on_repudiated)
            .await
            .map_err(fault)
    }

    async fn queue(
        &self,
        message: &OutboxMessage,
        at: OffsetDateTime,
    ) -> Result<OutboxId, StoreFault> {
        self.rp_queue(message, at).await.map_err(fault)
    }

    async fn pending_outbox(
        &self,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<OutboxEntry>, StoreFault> {
        self.rp_pending_outbox(limit, now).await.map_err(fault)
    }

    async fn mark_outbox_delivered(
        &self,
        id: OutboxId,
        at: OffsetDateTime,
    ) -> Result<(), StoreFault> {
        self.rp_mark_outbox_delivered(id, at).await.map_err(fault)
    }

    async fn mark_outbox_failed(
        &self,
        id: OutboxId,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreFault> {
        self.rp_mark_outbox_failed(id, next_attempt_at)
            .await
            .map_err(fault)
    }
}

/// Logs the detail (never a token: none is in any key or message) and keeps only whether a
/// retry may help.
fn fault(e: StoreError) -> StoreFault {
    tracing::error!(error = ?e, "recovery provider store failed");
    match e {
        StoreError::Unavailable => StoreFault::Unavailable,
        _ => StoreFault::Failed,
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

fn secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_secs(s: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|_| corrupt("time out of range"))
}

fn origin(text: &str) -> Result<Origin, StoreError> {
    Origin::from_wire("issuer", text.as_bytes()).map_err(|_| corrupt("stored origin"))
}

fn token_id(text: &str) -> Result<TokenId, StoreError> {
    TokenId::from_hex(text).map_err(|_| corrupt("stored token id"))
}

fn summary(row: SummaryRow) -> Result<SavedTokenSummary, StoreError> {
    let (issuer, id, nickname, options, saved_at) = row;
    let options = u8::try_from(options)
        .ok()
        .and_then(|b| Options::from_bits(b).ok())
        .ok_or_else(|| corrupt("stored options"))?;
    Ok(SavedTokenSummary {
        issuer: origin(&issuer)?,
        token_id: token_id(&id)?,
        nickname,
        options,
        saved_at: from_secs(saved_at)?,
    })
}

fn recovery(row: RecoveryRow) -> Result<RecoveryRecord, StoreError> {
    let (user, issuer, id, cs_id, low_friction, status_requested, at, repudiated) = row;
    Ok(RecoveryRecord {
        user: UserId::new(user),
        issuer: origin(&issuer)?,
        token_id: token_id(&id)?,
        countersigned_id: token_id(&cs_id)?,
        low_friction,
        status_requested,
        recovered_at: from_secs(at)?,
        repudiated_at: repudiated.map(from_secs).transpose()?,
    })
}

/// The columns of an outbox row, from a message.
struct OutboxRow {
    kind: &'static str,
    url: Option<String>,
    issuer: String,
    token_id: String,
    status: Option<&'static str>,
    countersigned_id: Option<String>,
    user_id: Option<String>,
    nickname: Option<String>,
    event_at: i64,
}

impl OutboxRow {
    fn from_message(message: &OutboxMessage, at: OffsetDateTime) -> Self {
        match message {
            OutboxMessage::TokenStatus(cb) => Self {
                kind: message.kind(),
                url: Some(cb.url()),
                issuer: cb.issuer.to_string(),
                token_id: cb.token_id.to_string(),
                status: Some(cb.status.as_str()),
                countersigned_id: cb.countersigned_id.map(|i| i.to_string()),
                user_id: None,
                nickname: None,
                event_at: secs(at),
            },
            OutboxMessage::UserNotification(n) => Self {
                kind: message.kind(),
                url: None,
                issuer: n.issuer.to_string(),
                token_id: n.token_id.to_string(),
                status: None,
                countersigned_id: Some(n.countersigned_id.to_string()),
                user_id: Some(n.user.as_str().to_owned()),
                nickname: n.nickname.clone(),
                event_at: secs(n.at),
            },
        }
    }
}

fn outbox_entry(row: OutboxDbRow) -> Result<OutboxEntry, StoreError> {
    let (id, kind, issuer, tid, status, cs_id, user, nickname, event_at, created_at, attempts) =
        row;
    let issuer = origin(&issuer)?;
    let token_id = token_id(&tid)?;
    let countersigned_id = cs_id.as_deref().map(self::token_id).transpose()?;
    let message = match kind.as_str() {
        "token_status" => OutboxMessage::TokenStatus(StatusCallback {
            issuer,
            token_id,
            status: status
                .as_deref()
                .and_then(TokenStatus::parse)
                .ok_or_else(|| corrupt("stored status"))?,
            countersigned_id,
        }),
        "user_notification" => OutboxMessage::UserNotification(UserNotification {
            user: UserId::new(user.ok_or_else(|| corrupt("notification without user"))?),
            issuer,
            token_id,
            countersigned_id: countersigned_id
                .ok_or_else(|| corrupt("notification without countersigned id"))?,
            nickname,
            at: from_secs(event_at)?,
        }),
        _ => return Err(corrupt("stored outbox kind")),
    };
    Ok(OutboxEntry {
        id: OutboxId(id),
        message,
        created_at: from_secs(created_at)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests;
