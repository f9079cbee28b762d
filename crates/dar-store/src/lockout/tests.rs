use super::{
    EvidenceKind, MailId, MailRecord, NewAudit, NewMail, PendingFactor, PendingFactorId,
    PendingFactorState, RecoveryCodeId, RecoveryCodeRecord, RecoveryState, placeholders,
};
use crate::testing::stores;
use crate::{AccountId, Pool, StoreError};

#[test]
fn enums_round_trip_through_their_stored_spelling() {
    for s in RecoveryState::ALL {
        assert_eq!(RecoveryState::parse(s.as_str()), Some(*s));
        assert_eq!(s.to_string(), s.as_str());
    }
    for k in EvidenceKind::ALL {
        assert_eq!(EvidenceKind::parse(k.as_str()), Some(*k));
    }
    for p in PendingFactorState::ALL {
        assert_eq!(PendingFactorState::parse(p.as_str()), Some(*p));
    }
    assert_eq!(RecoveryState::parse("Pending"), None);
    assert_eq!(EvidenceKind::parse(""), None);
    assert!(matches!(
        RecoveryState::from_db("gone"),
        Err(StoreError::Corrupt("RecoveryState"))
    ));
    let open: Vec<_> = RecoveryState::ALL
        .iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str())
        .collect();
    assert_eq!(open, ["collecting", "pending", "review"]);
    assert_eq!(super::OPEN_STATES, "('collecting', 'pending', 'review')");
}

#[test]
fn debug_redacts_hashes_secrets_and_bodies() {
    let code = RecoveryCodeRecord {
        id: RecoveryCodeId(3),
        code_hash: "$argon2id$v=19$secret".into(),
    };
    let factor = PendingFactor {
        id: PendingFactorId(1),
        account: AccountId(2),
        totp_secret: "JBSWY3DPEHPK3PXP".into(),
        created_at: 1,
        effective_at: 2,
        state: PendingFactorState::Pending,
    };
    let mail = MailRecord {
        id: MailId(1),
        to: "a@example.com".into(),
        subject: "Your code".into(),
        body: "code 12345678".into(),
        created_at: 1,
        attempts: 0,
        last_error: None,
    };
    let new_mail = NewMail {
        to: "a@example.com".into(),
        subject: "Your code".into(),
        body: "code 12345678".into(),
    };
    let printed = format!("{code:?} {factor:?} {mail:?} {new_mail:?}");
    for secret in ["argon2id", "JBSWY3DPEHPK3PXP", "12345678"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("a@example.com"));
}

#[test]
fn placeholders_number_from_the_first() {
    assert_eq!(placeholders(8, 3), "$8, $9, $10");
    assert_eq!(placeholders(1, 1), "$1");
}

/// Runs `sql` directly, as something other than this module's methods would.
async fn execute(store: &crate::Store, sql: &'static str) -> Result<u64, sqlx::Error> {
    match &store.pool {
        Pool::Sqlite(pool) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Pool::Postgres(pool) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
}

fn refusal(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => panic!("expected the trigger's error, got {other}"),
    }
}

#[tokio::test]
async fn audit_rows_cannot_be_changed_or_deleted() {
    for store in stores("lockout_audit_append_only").await.unwrap() {
        let account = store
            .create_account("alice", "$argon2id$hash", 1)
            .await
            .unwrap()
            .unwrap();
        let audit = NewAudit {
            account: Some(account),
            actor: "user".into(),
            event: "recovery.started".into(),
            detail: "recovery 1".into(),
            source_address: Some("192.0.2.1".into()),
        };
        store.record_event(10, &[], &[audit]).await.unwrap();
        let e = execute(&store, "update audit_event set detail = 'edited'")
            .await
            .unwrap_err();
        assert_eq!(refusal(&e), "audit_event is append-only");
        let e = execute(&store, "delete from audit_event")
            .await
            .unwrap_err();
        assert_eq!(refusal(&e), "audit_event is append-only");
        if store.backend() == crate::Backend::Postgres {
            let e = execute(&store, "truncate audit_event").await.unwrap_err();
            assert_eq!(refusal(&e), "audit_event is append-only");
        }
        let rows = store.audit_events(Some(account), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].detail, "recovery 1");
        // Inserting stays possible.
        store.record_event(11, &[], &[]).await.unwrap();
        assert_eq!(
            execute(
                &store,
                "insert into audit_event (at, actor, event, detail) \
                 values (12, 'system', 'worker.started', '')"
            )
            .await
            .unwrap(),
            1
        );
        assert_eq!(store.audit_events(None, 10).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn delivery_erases_the_mail_body() {
    for store in stores("lockout_mail_body_erased").await.unwrap() {
        let mail = NewMail {
            to: "a@example.com".into(),
            subject: "Your code".into(),
            body: "code 12345678".into(),
        };
        store.record_event(10, &[mail], &[]).await.unwrap();
        let queued = store.due_mail(10, 70, 10).await.unwrap();
        assert_eq!(queued[0].body, "code 12345678");
        assert!(store.mark_mail_delivered(queued[0].id, 11).await.unwrap());
        let sql = "select body from mail_outbox";
        let bodies: Vec<String> = match &store.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        };
        assert_eq!(bodies, [""]);
    }
}
