use dar_store::{
    AccountId, EvidenceKind, NewAudit, NewEvidence, RecoveryId, RecoveryState, StateChange, Store,
};

use super::{StaffError, approve, deny, list, show};

const T0: i64 = 1_764_547_200;
const SITE: &str = "Example";

/// An account `alice` with a confirmed TOTP, two verified addresses and one unverified, and
/// two live sessions.
async fn account(store: &Store) -> AccountId {
    let id = store
        .create_account("alice", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", T0)
        .await
        .unwrap()
        .unwrap();
    assert!(store.set_totp_secret(id, "JBSWY3DPEHPK3PXP").await.unwrap());
    assert!(store.accept_totp_step(id, 1).await.unwrap());
    for (address, verified) in [
        ("alice@example.com", true),
        ("alice@example.org", true),
        ("unproven@example.net", false),
    ] {
        let email = store
            .add_email(id, address, T0, &[], &[])
            .await
            .unwrap()
            .unwrap();
        if verified {
            assert!(store.mark_email_verified(email, T0, &[]).await.unwrap());
        }
    }
    for session in ["session-a", "session-b"] {
        store.create_session(session, id, true, T0).await.unwrap();
    }
    id
}

/// A recovery of `account` with one delegated token, moved to `state`.
async fn recovery(
    store: &Store,
    account: AccountId,
    handle: &str,
    to: RecoveryState,
) -> RecoveryId {
    let started = NewAudit {
        account: Some(account),
        actor: "user".into(),
        event: "recovery.started".into(),
        detail: "started".into(),
        source_address: None,
    };
    let r = store
        .start_recovery(account, handle, T0 + 10, None, &[], &[started])
        .await
        .unwrap();
    let evidence = NewEvidence {
        kind: EvidenceKind::Delegated,
        reference: "00112233445566778899aabbccddeeff".into(),
        detail: "https://rp.example.net".into(),
    };
    assert!(
        store
            .add_evidence(r.id, &evidence, T0 + 20, &[])
            .await
            .unwrap()
    );
    if to != RecoveryState::Collecting {
        let mut change = StateChange::new(&[RecoveryState::Collecting], to, T0 + 30)
            .outcome_rule("recovery provider");
        if to == RecoveryState::Pending {
            change = change.completes_at(T0 + 30 + 259_200);
        }
        assert!(
            store
                .set_recovery_state(r.id, &change, &[], &[])
                .await
                .unwrap()
        );
    }
    r.id
}

async fn staff_audit(store: &Store, account: AccountId) -> Vec<dar_store::AuditRecord> {
    store
        .audit_events(Some(account), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.actor.starts_with("staff:"))
        .collect()
}

/// The mails queued since the last call (each call leases what it returns, beyond the test).
async fn queued(store: &Store) -> Vec<dar_store::MailRecord> {
    store
        .due_mail(T0 + 1_000_000, T0 + 2_000_000, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn approve_from_review_unlocks_notifies_and_audits_once() {
    for store in dar_store::testing::stores("staff_approve").await.unwrap() {
        let alice = account(&store).await;
        let id = recovery(&store, alice, "h1", RecoveryState::Review).await;

        let decision = approve(&store, SITE, id, "ann", T0 + 100).await.unwrap();
        assert_eq!(decision.from, RecoveryState::Review);
        assert_eq!(decision.to, RecoveryState::Unlocked);
        assert_eq!(decision.notices, 2, "one per verified address");

        let r = store.recovery(id).await.unwrap().unwrap();
        assert_eq!(r.state, RecoveryState::Unlocked);
        assert_eq!(r.decided_by.as_deref(), Some("staff:ann"));
        let a = store.account(alice).await.unwrap().unwrap();
        assert!(
            a.totp_secret.is_none() && !a.totp_confirmed,
            "second factor reset"
        );
        for session in ["session-a", "session-b"] {
            assert!(store.session(session).await.unwrap().is_none(), "revoked");
        }
        let mails = queued(&store).await;
        let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
        to.sort_unstable();
        assert_eq!(to, ["alice@example.com", "alice@example.org"]);
        for m in &mails {
            assert_eq!(m.subject, "[Example] Your account recovery was approved");
            assert!(m.body.contains(&format!("recovery {id}")), "{}", m.body);
            assert!(m.body.contains("set up a new second factor"));
            assert!(m.body.contains("contact Example's support"));
        }
        let audit = staff_audit(&store, alice).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].actor, "staff:ann");
        assert_eq!(audit[0].event, "recovery.approved");
        assert_eq!(audit[0].at, T0 + 100);
        assert!(audit[0].detail.contains(&format!("recovery {id}")));

        // A second approval is refused and writes nothing.
        let again = approve(&store, SITE, id, "bob", T0 + 200)
            .await
            .unwrap_err();
        assert!(
            matches!(
                again,
                StaffError::WrongState {
                    current: RecoveryState::Unlocked,
                    action: "approved",
                    ..
                }
            ),
            "{again:?}"
        );
        assert_eq!(
            again.to_string(),
            format!("recovery {id} is unlocked: only a recovery in review can be approved")
        );
        assert!(queued(&store).await.is_empty(), "no new mail");
        assert_eq!(
            staff_audit(&store, alice).await.len(),
            1,
            "no new audit row"
        );
        let r = store.recovery(id).await.unwrap().unwrap();
        assert_eq!(r.decided_by.as_deref(), Some("staff:ann"));
    }
}

#[tokio::test]
async fn approve_refuses_pending_refused_and_collecting() {
    for store in dar_store::testing::stores("staff_approve_states")
        .await
        .unwrap()
    {
        let alice = account(&store).await;
        for (handle, state) in [
            ("p", RecoveryState::Pending),
            ("r", RecoveryState::Refused),
            ("c", RecoveryState::Collecting),
        ] {
            let id = recovery(&store, alice, handle, state).await;
            let err = approve(&store, SITE, id, "ann", T0 + 100)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StaffError::WrongState { current, .. } if current == state),
                "{err:?}"
            );
            assert_eq!(store.recovery(id).await.unwrap().unwrap().state, state);
        }
        let a = store.account(alice).await.unwrap().unwrap();
        assert!(a.totp_confirmed, "nothing was reset");
        assert!(store.session("session-a").await.unwrap().is_some());
        assert!(queued(&store).await.is_empty());
        assert!(staff_audit(&store, alice).await.is_empty());
    }
}

#[tokio::test]
async fn deny_from_review_notifies_with_a_cleaned_reason() {
    for store in dar_store::testing::stores("staff_deny").await.unwrap() {
        let alice = account(&store).await;
        let id = recovery(&store, alice, "h1", RecoveryState::Review).await;
        let reason = format!("caller could not\r\nFrom: forged\x07 {}", "x".repeat(600));

        let decision = deny(&store, SITE, id, " ann ", &reason, T0 + 100)
            .await
            .unwrap();
        assert_eq!(decision.to, RecoveryState::Denied);
        assert_eq!(decision.notices, 2);

        let r = store.recovery(id).await.unwrap().unwrap();
        assert_eq!(r.state, RecoveryState::Denied);
        assert_eq!(r.decided_by.as_deref(), Some("staff:ann"));
        let a = store.account(alice).await.unwrap().unwrap();
        assert!(a.totp_confirmed, "a denial resets nothing");
        assert!(store.session("session-a").await.unwrap().is_some());

        let audit = staff_audit(&store, alice).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].event, "recovery.denied");
        let detail = &audit[0].detail;
        assert!(
            detail.contains("reason: caller could not  From: forged "),
            "{detail}"
        );
        assert!(!detail.chars().any(char::is_control));
        let kept = detail
            .split("reason: ")
            .nth(1)
            .unwrap()
            .split("; ")
            .next()
            .unwrap();
        assert_eq!(kept.chars().count(), super::MAX_REASON_CHARS);
        for m in queued(&store).await {
            assert_eq!(m.subject, "[Example] Your account recovery was denied");
            assert!(
                m.body
                    .contains("The reason given: caller could not  From: forged")
            );
            assert!(!m.body.contains("\r\nFrom: forged"));
        }

        let again = deny(&store, SITE, id, "ann", "again", T0 + 200)
            .await
            .unwrap_err();
        assert!(
            matches!(
                again,
                StaffError::WrongState {
                    current: RecoveryState::Denied,
                    ..
                }
            ),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn deny_stops_a_pending_timed_unlock_but_not_a_refused_recovery() {
    for store in dar_store::testing::stores("staff_deny_states")
        .await
        .unwrap()
    {
        let alice = account(&store).await;
        let pending = recovery(&store, alice, "p", RecoveryState::Pending).await;
        deny(&store, SITE, pending, "ann", "owner called", T0 + 100)
            .await
            .unwrap();
        let r = store.recovery(pending).await.unwrap().unwrap();
        assert_eq!(r.state, RecoveryState::Denied);
        // The worker can no longer complete it.
        assert!(
            !store
                .complete_unlock(pending, T0 + 400_000, &[], &[])
                .await
                .unwrap()
        );

        let refused = recovery(&store, alice, "r", RecoveryState::Refused).await;
        let err = deny(&store, SITE, refused, "ann", "no", T0 + 100)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StaffError::WrongState {
                    current: RecoveryState::Refused,
                    action: "denied",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    for store in dar_store::testing::stores("staff_bad_input").await.unwrap() {
        let alice = account(&store).await;
        let id = recovery(&store, alice, "h1", RecoveryState::Review).await;

        let unknown = RecoveryId(id.0 + 1000);
        assert!(matches!(
            approve(&store, SITE, unknown, "ann", T0).await.unwrap_err(),
            StaffError::UnknownRecovery(r) if r == unknown
        ));
        assert!(matches!(
            deny(&store, SITE, unknown, "ann", "why", T0)
                .await
                .unwrap_err(),
            StaffError::UnknownRecovery(_)
        ));
        assert!(matches!(
            show(&store, unknown).await.unwrap_err(),
            StaffError::UnknownRecovery(_)
        ));
        for name in ["", "   ", "ann\nstaff:bob", "a".repeat(65).as_str()] {
            let err = approve(&store, SITE, id, name, T0).await.unwrap_err();
            assert!(
                matches!(err, StaffError::InvalidStaffName(_)),
                "{name:?}: {err:?}"
            );
        }
        assert!(matches!(
            deny(&store, SITE, id, "ann", " \n\t ", T0)
                .await
                .unwrap_err(),
            StaffError::EmptyReason
        ));
        assert_eq!(
            store.recovery(id).await.unwrap().unwrap().state,
            RecoveryState::Review
        );
        assert!(queued(&store).await.is_empty());
        assert!(staff_audit(&store, alice).await.is_empty());
    }
}

#[tokio::test]
async fn list_and_show_give_evidence_and_history() {
    for store in dar_store::testing::stores("staff_list_show").await.unwrap() {
        let alice = account(&store).await;
        let review = recovery(&store, alice, "h1", RecoveryState::Review).await;
        let pending = recovery(&store, alice, "h2", RecoveryState::Pending).await;

        let all = list(&store, None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|r| r.id).collect::<Vec<_>>(),
            [pending, review],
            "newest first"
        );
        assert!(
            all.iter()
                .all(|r| r.username == "alice" && r.evidence_count == 1)
        );
        assert_eq!(all[0].completes_at, Some(T0 + 30 + 259_200));
        assert_eq!(all[1].outcome_rule.as_deref(), Some("recovery provider"));

        let in_review = list(&store, Some(RecoveryState::Review), 10).await.unwrap();
        assert_eq!(in_review.len(), 1);
        assert_eq!(in_review[0].id, review);
        assert_eq!(list(&store, None, 1).await.unwrap().len(), 1, "limit");

        let detail = show(&store, review).await.unwrap();
        assert_eq!(detail.recovery.state, RecoveryState::Review);
        assert_eq!(detail.username, "alice");
        assert_eq!(detail.evidence.len(), 1);
        assert_eq!(detail.evidence[0].kind, EvidenceKind::Delegated);
        assert_eq!(detail.evidence[0].detail, "https://rp.example.net");
        assert_eq!(
            detail
                .audit
                .iter()
                .filter(|a| a.event == "recovery.started")
                .count(),
            2,
            "the account's history, both recoveries"
        );
    }
}

#[tokio::test]
async fn concurrent_decisions_have_one_winner() {
    for store in dar_store::testing::stores("staff_concurrent")
        .await
        .unwrap()
    {
        let alice = account(&store).await;
        let id = recovery(&store, alice, "h1", RecoveryState::Review).await;
        let (approved, denied) = tokio::join!(
            approve(&store, SITE, id, "ann", T0 + 100),
            deny(&store, SITE, id, "bob", "looks forged", T0 + 100),
        );
        let (winner, loser) = match (approved, denied) {
            (Ok(a), Err(e)) => (a, e),
            (Err(e), Ok(d)) => (d, e),
            other => panic!("exactly one decision must win: {other:?}"),
        };
        assert!(
            matches!(loser, StaffError::WrongState { current, .. } if current == winner.to),
            "{loser:?}"
        );
        assert_eq!(store.recovery(id).await.unwrap().unwrap().state, winner.to);
        assert_eq!(queued(&store).await.len(), 2, "only the winner's notices");
        assert_eq!(staff_audit(&store, alice).await.len(), 1);
    }
}
