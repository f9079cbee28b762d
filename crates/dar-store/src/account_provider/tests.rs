//! Row conversion and error mapping of the account provider store.

use super::*;

#[test]
fn rejects_corrupt_rows_with_a_typed_error() {
    let good: TokenRow = (
        "000102030405060708090a0b0c0d0e0f".into(),
        "user-42".into(),
        "https://rp.example.net".into(),
        "saved".into(),
        None,
        1_795_000_000,
        1_795_000_000,
        None,
        vec![0; 32],
        "abcd".into(),
        1,
    );
    assert!(token_from_row(good.clone()).is_ok());
    let mut bad_state = good.clone();
    bad_state.3 = "lost".into();
    assert_eq!(
        token_from_row(bad_state),
        Err(StoreFailure::Corrupt("token state").into())
    );
    let mut bad_hash = good.clone();
    bad_hash.8 = vec![0; 31];
    assert_eq!(
        token_from_row(bad_hash),
        Err(StoreFailure::Corrupt("hash length").into())
    );
    let mut bad_origin = good;
    bad_origin.2 = "https://RP.example.net/".into();
    assert_eq!(
        token_from_row(bad_origin),
        Err(StoreFailure::Corrupt("origin").into())
    );
}

#[test]
fn unavailable_stores_stay_unavailable() {
    assert_eq!(
        AccountProviderError::from(StoreError::Unavailable),
        AccountProviderError::Store(StoreFailure::Unavailable)
    );
}

#[tokio::test]
async fn numbered_placeholders_bind_by_number_on_sqlite() -> Result<(), StoreError> {
    // `$n` is what both backends share; SQLite must bind by the number, not by position.
    let store = Store::in_memory().await?;
    let Pool::Sqlite(pool) = &store.pool else {
        return Ok(());
    };
    let (a, b): (i64, String) = sqlx::query_as("select $2, $1")
        .bind("one")
        .bind(2_i64)
        .fetch_one(pool)
        .await?;
    assert_eq!((a, b.as_str()), (2, "one"));
    Ok(())
}
