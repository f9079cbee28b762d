//! Building the notices and audit rows that the account provider's security events write with
//! them (lockout recovery, recovery codes, trusted contacts, a new second factor).
//!
//! NIST SP 800-63B (rev. 4) wants every recovery and every new authenticator announced to all
//! of the account's notification addresses, each notice saying how to repudiate the event; the
//! store writes these mails in the same transaction as the event ([`dar_store::NewMail`]), so a
//! notice is queued if and only if its event happened. Links in them are built from the
//! configured public origin, never from a request's `Host` header (OWASP).
//!
//! Bodies never hold a password, a token or a recovery code; an email code appears only in the
//! one message that delivers it.

use dar_store::{AccountId, NewAudit, NewMail, Store, StoreError};

/// The account's verified notification addresses (unverified ones get no security mail: the
/// owner never proved they read them).
///
/// # Errors
///
/// [`StoreError`] when the database fails (`?` turns it into an
/// [`AppError`](crate::error::AppError) in handlers).
pub(crate) async fn verified_addresses(
    store: &Store,
    account: AccountId,
) -> Result<Vec<String>, StoreError> {
    Ok(store
        .emails(account)
        .await?
        .into_iter()
        .filter(|e| e.verified_at.is_some())
        .map(|e| e.address)
        .collect())
}

/// One message per address, with the same subject and body, signed with `site` (the name users
/// know the provider by: [`crate::AppState::site_name`], or the configuration's `mail.site_name`).
pub(crate) fn to_all(site: &str, addresses: &[String], subject: &str, body: &str) -> Vec<NewMail> {
    addresses
        .iter()
        .map(|to| NewMail {
            to: to.clone(),
            subject: format!("[{site}] {subject}"),
            body: format!("Hello,\r\n\r\n{body}\r\n\r\n-- {site}\r\n"),
        })
        .collect()
}

/// An audit row: `actor` is `user`, `system`, `staff:<name>` or `contact:<username>`; the
/// detail names evidence by id, never by secret.
pub(crate) fn audit(
    account: AccountId,
    actor: &str,
    event: &str,
    detail: impl Into<String>,
    source: Option<std::net::IpAddr>,
) -> NewAudit {
    NewAudit {
        account: Some(account),
        actor: actor.to_owned(),
        event: event.to_owned(),
        detail: detail.into(),
        source_address: source.map(|ip| ip.to_string()),
    }
}

/// Unix seconds as a person reads them in a notice or a page: `2026-11-30 23:16:05 UTC`.
pub(crate) fn format_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{unix} (unix time)"))
}
