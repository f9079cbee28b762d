use super::{AccountId, Factor};
use crate::testing::stores;

#[tokio::test]
async fn accounts_sessions_and_counters() {
    for store in stores("accounts_sessions_and_counters").await.unwrap() {
        let id = store
            .create_account("alice", "$argon2id$hash", 100)
            .await
            .unwrap()
            .unwrap();
        // A taken username is refused without error.
        assert_eq!(store.create_account("alice", "x", 101).await.unwrap(), None);
        let a = store.account_by_username("alice").await.unwrap().unwrap();
        assert_eq!((a.id, a.totp_confirmed), (id, false));
        assert!(!format!("{a:?}").contains("argon2id"));
        assert!(store.account_by_username("bob").await.unwrap().is_none());

        // TOTP enrolment: each step accepted once, a confirmed secret never replaced.
        assert!(
            !store.accept_totp_step(id, 5).await.unwrap(),
            "no secret yet"
        );
        assert!(store.set_totp_secret(id, "JBSWY3DPEHPK3PXP").await.unwrap());
        assert!(store.accept_totp_step(id, 5).await.unwrap());
        assert!(
            !store.accept_totp_step(id, 5).await.unwrap(),
            "replayed step"
        );
        assert!(!store.accept_totp_step(id, 4).await.unwrap(), "older step");
        assert!(store.accept_totp_step(id, 6).await.unwrap());
        assert!(!store.set_totp_secret(id, "OTHER").await.unwrap());
        let a = store.account(id).await.unwrap().unwrap();
        assert!(a.totp_confirmed);
        assert_eq!(a.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));

        // Failure counters, per factor.
        assert_eq!(store.record_failure(id, Factor::Password).await.unwrap(), 1);
        assert_eq!(store.record_failure(id, Factor::Password).await.unwrap(), 2);
        assert_eq!(store.record_failure(id, Factor::Totp).await.unwrap(), 1);
        store.reset_failures(id, Factor::Password).await.unwrap();
        let a = store.account(id).await.unwrap().unwrap();
        assert_eq!((a.password_failures, a.totp_failures), (0, 1));
        assert!(store.accept_totp_step(id, 7).await.unwrap());
        assert_eq!(store.account(id).await.unwrap().unwrap().totp_failures, 0);
        assert_eq!(
            store
                .record_failure(AccountId(9999), Factor::Totp)
                .await
                .unwrap(),
            0
        );

        // Sessions: second factor, revocation of one and of all.
        store.create_session("h1", id, false, 200).await.unwrap();
        store.create_session("h2", id, true, 201).await.unwrap();
        let s = store.session("h1").await.unwrap().unwrap();
        assert_eq!((s.account, s.second_factor_ok), (id, false));
        assert!(store.set_second_factor_ok("h1", 202).await.unwrap());
        store.touch_session("h1", 203).await.unwrap();
        let s = store.session("h1").await.unwrap().unwrap();
        assert!(s.second_factor_ok);
        assert_eq!(s.last_seen, 203);
        store.revoke_session("h1").await.unwrap();
        assert!(store.session("h1").await.unwrap().is_none());
        assert!(!store.set_second_factor_ok("h1", 204).await.unwrap());
        store.create_session("h3", id, true, 205).await.unwrap();
        assert_eq!(store.revoke_all_sessions(id).await.unwrap(), 2);
        assert!(store.session("h2").await.unwrap().is_none());
        assert!(store.session("h3").await.unwrap().is_none());
        assert!(store.session("unknown").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn parked_requests_are_taken_once_before_they_expire() {
    for store in stores("parked_requests_are_taken_once").await.unwrap() {
        store
            .park_request("p1", "save", "a=1", 100, 200)
            .await
            .unwrap();
        store
            .park_request("p2", "save", "b=2", 100, 150)
            .await
            .unwrap();
        assert_eq!(
            store.take_parked_request("p1", "other", 110).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .take_parked_request("p1", "save", 110)
                .await
                .unwrap()
                .as_deref(),
            Some("a=1")
        );
        assert_eq!(
            store.take_parked_request("p1", "save", 111).await.unwrap(),
            None
        );
        assert_eq!(
            store.take_parked_request("p2", "save", 150).await.unwrap(),
            None
        );
        // Expired rows are swept at the next park.
        store
            .park_request("p3", "save", "c", 300, 400)
            .await
            .unwrap();
        assert!(
            store
                .park_request("p3", "save", "c", 300, 400)
                .await
                .is_err()
        );
    }
}
